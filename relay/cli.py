"""The ``relay`` command (also ``python -m relay``).

    relay serve [--config FILE] [--workers N]    run the server
    relay dev                                    dev broker + server with deploy/dev.toml
    relay send PROVIDER [--event NAME | --body FILE] [--url URL]
    relay tail [--type T] [--json]               print canonical events as they arrive
    relay find (--order ID | --id ID | --provider P) [--since T] [--until T] [--json]
    relay replay [--provider P] [--reason R] [--since T] [--until T] [--id ID] [--dry-run] [--rate N]
                 [--trust-unverified]
    relay dlq list [filters] / relay dlq show ID inspect dead letters and their replays
    relay check-config [FILE | --config FILE]    validate a config, name the bad key
    relay console [--config FILE] [--rebuild]    the operator console ([console] in the config)
    relay --version

The config file comes from ``--config``, else ``RELAY_CONFIG``, else
``deploy/dev.toml`` (so ``relay send`` and ``relay tail`` work next to ``relay dev``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import orjson

from relay import __version__
from relay.config import (
    Config,
    ConfigError,
    check_paths,
    check_tracing,
    describe_shared,
    load_config,
    shared_keys,
)
from relay.devbroker import DevBrokerError
from relay.errors import StartupError
from relay.inert import inert, inert_json, moment_text
from relay.settings import KafkaConfig
from relay.sink import KafkaUnavailable
from schemas import NormalizationError, parse_payload
from schemas.decoder import DecodeError, Event, PaymentEvent, decode_event
from schemas.records import ReplayOutcome, ReplayResult
from schemas.values import rfc3339

if TYPE_CHECKING:
    from relay.replay import FiledLetter, LetterFilter, Listing

# Package data (deploy/dev.toml links to it), so a plain `pip install .` has it too.
DEV_CONFIG = Path(__file__).resolve().parent / "dev.toml"


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help()
        return 2
    try:
        return int(args.run(args) or 0)
    except ConfigError as error:
        print(f"config error: {error}", file=sys.stderr)
        return 2
    except (StartupError, DevBrokerError, KafkaUnavailable) as error:
        # What the operator can fix, in one line: a taken port, a locked spool, no dev broker,
        # brokers that cannot be reached or refuse the login.
        print(f"relay: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="relay", description="Webhook relay for payment providers"
    )
    parser.add_argument("--version", action="version", version=f"relay {__version__}")
    commands = parser.add_subparsers(metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the server")
    _config_option(serve)
    serve.add_argument("--workers", type=int, default=1, help="worker processes (SO_REUSEPORT)")
    serve.set_defaults(run=_serve)

    dev = commands.add_parser("dev", help="run the dev broker and the server with deploy/dev.toml")
    dev.add_argument("--port", type=int, default=9092, help="dev broker port (default 9092)")
    dev.set_defaults(run=_dev)

    send = commands.add_parser("send", help="sign and POST a sample webhook")
    _config_option(send)
    send.add_argument("provider", help="a provider instance name from the config")
    which = send.add_mutually_exclusive_group()
    which.add_argument("--event", help="sample event name (default: the profile's first)")
    which.add_argument("--body", type=Path, help="send this file's bytes as the body, signed")
    send.add_argument("--url", help="base URL (default: http://127.0.0.1:<server.port>)")
    send.set_defaults(run=_send)

    tail = commands.add_parser("tail", help="print canonical events from the topic")
    _config_option(tail)
    tail.add_argument("--type", dest="event_type", help="only events whose type starts with this")
    tail.add_argument("--json", action="store_true", help="print whole events as JSON lines")
    tail.add_argument("--from-beginning", action="store_true", help="start at the oldest event")
    tail.set_defaults(run=_tail)

    replay = commands.add_parser("replay", help="bring dead letters back through normalize")
    _config_option(replay)
    _filter_options(replay)
    replay.add_argument(
        "--dry-run", action="store_true", help="show what would happen, change nothing"
    )
    replay.add_argument("--rate", type=float, help="at most N letters per second")
    replay.add_argument(
        "--trust-unverified",
        action="store_true",
        help="DANGEROUS: replay letters that hold no signature headers (filed before Relay "
        "kept them) without verifying them; anyone who can write to the dead-letter topic "
        "can forge such a letter (README: Dead letters and replay)",
    )
    _json_option(replay, "print the summary as one JSON object")
    replay.set_defaults(run=_replay)

    find = commands.add_parser("find", help="find events and dead letters by order, id or provider")
    _config_option(find)
    find.add_argument(
        "--order",
        metavar="ID",
        help="merchant order id (the provider's order id where it sends none)",
    )
    find.add_argument("--id", dest="record_id", metavar="ID", help="event id or dead letter id")
    find.add_argument("--provider", metavar="NAME", help="provider instance")
    find.add_argument(
        "--since",
        type=_moment,
        metavar="T",
        help="received at or after (ISO 8601; UTC if no zone; default: 24 hours before --until)",
    )
    find.add_argument(
        "--until",
        type=_moment,
        metavar="T",
        help="received before (ISO 8601; UTC if no zone; default: now)",
    )
    _json_option(find, "one JSON object per match (JSON Lines)")
    find.set_defaults(run=_find)

    dlq = commands.add_parser("dlq", help="inspect dead letters")
    dlq_commands = dlq.add_subparsers(metavar="ACTION", required=True)
    dlq_list = dlq_commands.add_parser("list", help="list dead letters and their last replay")
    _config_option(dlq_list)
    _filter_options(dlq_list)
    _json_option(dlq_list, "one JSON object per letter (JSON Lines)")
    dlq_list.set_defaults(run=_dlq_list)
    dlq_show = dlq_commands.add_parser("show", help="show one dead letter and its replays")
    _config_option(dlq_show)
    dlq_show.add_argument("letter_id", metavar="ID")
    _json_option(dlq_show, "one JSON object")
    dlq_show.set_defaults(run=_dlq_show)

    console = commands.add_parser("console", help="serve the operator console ([console])")
    _config_option(console)
    console.add_argument(
        "--rebuild", action="store_true", help="read both topics again into a new index"
    )
    console.set_defaults(run=_console)

    check = commands.add_parser("check-config", help="validate a config file")
    check.add_argument("file", type=Path, nargs="?", help="the config (or --config)")
    _config_option(check)
    check.set_defaults(run=_check_config)
    return parser


def _config_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config", type=Path, help="TOML config (default: $RELAY_CONFIG or deploy/dev.toml)"
    )


def _json_option(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("--json", action="store_true", help=what)


def _filter_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--provider", help="only this provider instance")
    parser.add_argument("--reason", help="only this reason code (e.g. unknown_status)")
    parser.add_argument(
        "--since", type=_moment, help="received at or after (ISO 8601; UTC if no zone)"
    )
    parser.add_argument("--until", type=_moment, help="received before (ISO 8601; UTC if no zone)")
    parser.add_argument("--id", dest="letter_id", help="only the dead letter with this id")


def _moment(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO 8601 time") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _letter_filter(args: argparse.Namespace) -> LetterFilter:
    from relay.replay import LetterFilter

    return LetterFilter(
        provider=args.provider,
        reason=args.reason,
        since=args.since,
        until=args.until,
        id=args.letter_id,
    )


def _replay(args: argparse.Namespace) -> int:
    from relay.replay import UNVERIFIABLE, progress_stream, replay

    _quiet_kafka_client()
    config = load_config(_config_path(args))
    check_tracing(config)
    summary = asyncio.run(
        replay(
            config,
            _letter_filter(args),
            dry_run=args.dry_run,
            rate=args.rate,
            progress=progress_stream(),
            trust_unverified=args.trust_unverified,
        )
    )
    print(summary.to_json(args.dry_run).decode() if args.json else summary.table(args.dry_run))
    unverifiable = summary.failed[UNVERIFIABLE]
    if unverifiable:
        print(
            f"relay replay: {unverifiable} letter(s) hold no signature headers (filed before "
            "Relay kept them), so they cannot be verified and were not replayed; "
            "--trust-unverified replays them unverified, which is safe only if nothing but "
            "Relay can write to the dead-letter topic",
            file=sys.stderr,
        )
    return 1 if summary.failed_total else 0


def _find(args: argparse.Namespace) -> int:
    """Exit 0 when something was found, 1 when nothing was, 2 when the search could not run."""
    from relay.find import DEFAULT_WINDOW, FindQuery, find

    criteria = {"--order": args.order, "--id": args.record_id, "--provider": args.provider}
    if all(value is None for value in criteria.values()):
        print(
            "relay find: say what to find: --order ID, --id ID or --provider NAME", file=sys.stderr
        )
        return 2
    for option, value in criteria.items():
        if value == "":
            print(f"relay find: {option} is empty", file=sys.stderr)
            return 2
    since = args.since or (args.until or datetime.now(UTC)) - DEFAULT_WINDOW
    if args.until is not None and since >= args.until:
        print(
            f"relay find: --since {rfc3339(since)} is not before --until {rfc3339(args.until)}",
            file=sys.stderr,
        )
        return 2
    config = load_config(_config_path(args))
    _quiet_kafka_client()
    query = FindQuery(
        since=since,
        until=args.until,
        order=args.order,
        id=args.record_id,
        provider=args.provider,
    )
    try:
        result = asyncio.run(find(config, query, err=sys.stderr, show_progress=sys.stderr.isatty()))
    except KafkaUnavailable as error:
        print(f"relay find: {error}", file=sys.stderr)
        return 2
    for topic in result.missing_topics:
        print(f"relay find: topic {topic!r} does not exist: nothing read there", file=sys.stderr)
    if args.json:
        for match in result.matches:
            print(inert_json(match.to_json().decode()))
    elif result.matches:
        rows = [
            (
                moment_text(match.received_at),
                match.kind.value,
                inert(match.provider),
                inert(match.describe()),
                inert(match.id),
                inert(match.order_id or "-"),
                f"{match.partition}@{match.offset}",
            )
            for match in result.matches
        ]
        header = ("received_at", "kind", "provider", "type / reason", "id", "order", "at")
        print(_table(header, rows))
    print(result.summary(query), file=sys.stderr)
    return 0 if result.matches else 1


def _table(header: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> str:
    """Columns padded to their widest cell, two spaces apart; the last one unpadded."""
    widths = [max(len(row[column]) for row in [header, *rows]) for column in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in [header, *rows]
    )


def _dlq_list(args: argparse.Namespace) -> int:
    from relay.replay import list_letters

    _quiet_kafka_client()
    config = load_config(_config_path(args))
    listing = asyncio.run(list_letters(config, _letter_filter(args)))
    letters = listing.letters
    if args.json:
        for filed in letters:
            document = _letter_document(config, filed, with_body=False)
            print(inert_json(orjson.dumps(document).decode()))
    else:
        print(
            f"{'id':32}  {'provider':12}  {'reason':20}  {'received_at':24}  {'attempts':8}  "
            "last replay"
        )
        for filed in letters:
            letter = filed.letter
            print(
                f"{inert(letter.id):32}  {inert(letter.provider):12}  {inert(letter.reason):20}  "
                f"{moment_text(letter.received_at):24}  {letter.attempts:<8}  "
                f"{_describe_replay(filed.last_replay)}"
            )
    notes = [f"{len(letters)} dead letter(s)"]
    if listing.unreadable:
        notes.append(f"{listing.unreadable} unreadable record(s) skipped")
    if listing.ignored_outcomes:
        notes.append(f"{listing.ignored_outcomes} unsigned replay outcome(s) ignored")
    print("; ".join(notes), file=sys.stderr)
    _warn_unauthenticated(config, listing)
    return 0


def _warn_unauthenticated(config: Config, listing: Listing) -> None:
    from relay.replay import unauthenticated_warning

    if listing.unauthenticated_outcomes:
        print(
            f"relay dlq: {listing.unauthenticated_outcomes} replay outcome(s) shown "
            f"unauthenticated: {unauthenticated_warning(config)}",
            file=sys.stderr,
        )


def _dlq_show(args: argparse.Namespace) -> int:
    from relay.replay import LetterFilter, list_letters

    _quiet_kafka_client()
    config = load_config(_config_path(args))
    listing = asyncio.run(list_letters(config, LetterFilter(id=args.letter_id)))
    _warn_unauthenticated(config, listing)
    letters = listing.letters
    if not letters:
        print(inert(f"no dead letter {args.letter_id!r}"), file=sys.stderr)
        return 1
    if args.json:
        documents = [_letter_document(config, filed, with_body=True) for filed in letters]
        print(inert_json(orjson.dumps({"id": args.letter_id, "letters": documents}).decode()))
        return 0
    for filed in letters:
        document = _letter_document(config, filed, with_body=True)
        document.pop("body_base64")
        body = filed.letter.body
        try:
            parse_payload(body)
        except NormalizationError:
            document["body_text"] = body.decode("utf-8", errors="replace")
        else:
            # As received, byte for byte: a parsed and re-written body could turn 12.50 into 12.5.
            document["body"] = orjson.Fragment(body)
        print(inert_json(orjson.dumps(document, option=orjson.OPT_INDENT_2).decode()))
    return 0


def _letter_document(config: Config, filed: FiledLetter, *, with_body: bool) -> dict[str, Any]:
    """A letter as ``relay dlq`` prints it in JSON: the dead-letter document (the body only
    ``with_body``), the order it names, where it is, and its replays (oldest first)."""
    from relay.replay import letter_order_id

    document: dict[str, Any] = orjson.loads(filed.letter.to_json())
    if not with_body:
        del document["body_base64"]
    document.update(
        order_id=letter_order_id(config, filed.letter),
        topic=filed.topic,
        partition=filed.partition,
        offset=filed.offset,
        replays=[_replay_document(outcome) for outcome in filed.replays],
    )
    return document


def _replay_document(outcome: ReplayOutcome) -> dict[str, Any]:
    document: dict[str, Any] = orjson.loads(outcome.to_json())
    for about_the_letter in ("letter_id", "provider", "attempts"):
        del document[about_the_letter]
    return document


def _describe_replay(outcome: ReplayOutcome | None) -> str:
    if outcome is None:
        return "-"
    at = moment_text(outcome.at)
    if outcome.outcome is ReplayResult.REPLAYED:
        return f"replayed {at}"
    if outcome.outcome is ReplayResult.DUPLICATE:
        return f"duplicate {at} (already published)"
    filed_again = f", filed again as attempt {outcome.new_attempts}" if outcome.new_attempts else ""
    return inert(f"failed again {at}: {outcome.reason}{filed_again}")


def _quiet_kafka_client() -> None:
    """aiokafka logs each failed connection on stderr; the command's own one line
    (``relay: kafka: ...``) says it better, once."""
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)


def _config_path(args: argparse.Namespace) -> Path:
    if args.config:
        return Path(args.config)
    return Path(os.environ.get("RELAY_CONFIG") or DEV_CONFIG)


def _serve(args: argparse.Namespace) -> int:
    from relay.logs import setup_logging
    from relay.server import run

    setup_logging()
    path = _config_path(args)
    config = load_config(path)
    check_paths(config)
    check_tracing(config)
    run(config, path, args.workers)
    return 0


def _console(args: argparse.Namespace) -> int:
    from relay.console.app import run_console
    from relay.logs import setup_logging

    setup_logging()
    _quiet_kafka_client()
    config = load_config(_config_path(args))
    if not config.console.enabled:
        raise ConfigError(
            "console.enabled",
            "the console is off: set enabled = true in [console], with operators "
            "or an SSO proxy (README: Console)",
        )
    if args.rebuild:
        for suffix in ("", "-wal", "-shm"):
            Path(config.console.index_path + suffix).unlink(missing_ok=True)
    run_console(config)
    return 0


def _dev(args: argparse.Namespace) -> int:
    from relay.devbroker import DevBroker, free_port
    from relay.kafka import create_topics
    from relay.logs import setup_logging
    from relay.server import serve_forever

    setup_logging()
    port = args.port if _port_free(args.port) else free_port()
    with DevBroker(port=port) as broker:
        os.environ["RELAY_KAFKA_BOOTSTRAP_SERVERS"] = broker.bootstrap_servers
        config = load_config(DEV_CONFIG)
        asyncio.run(
            create_topics(config.kafka, [config.kafka.topic, config.kafka.dead_letter_topic])
        )
        # Its own process, as in production: the console's reading costs the webhook path
        # nothing. The dev broker keeps nothing across runs, so neither does its index.
        console = subprocess.Popen(
            [sys.executable, "-m", "relay", "console", "--config", str(DEV_CONFIG), "--rebuild"]
        )
        try:
            _print_dev_banner(config, broker.bootstrap_servers, port != 9092)
            asyncio.run(serve_forever(config))
        finally:
            console.terminate()
            console.wait(10)
    return 0


def _print_dev_banner(config: Config, bootstrap: str, moved: bool) -> None:
    url = f"http://127.0.0.1:{config.server.port}"
    env = f"RELAY_KAFKA_BOOTSTRAP_SERVERS={bootstrap} " if moved else ""
    lines = [
        "",
        f"Relay dev is running: {url}  (dev broker tansu at {bootstrap}, config {DEV_CONFIG.name})",
        "Providers: "
        + ", ".join(f"{name} ({i.profile.name})" for name, i in config.providers.items()),
        "",
        "In another shell (after `. .venv/bin/activate`):",
        "  relay send invoices            # sign and POST a sample webhook (also: collect,",
        "                                 # topup, payout, payin; --event NAME for others)",
        f"  {env}relay tail --from-beginning   # watch canonical events arrive",
        f"  curl -s {url}/readyz",
        "",
        f"Console: http://{config.console.host}:{config.console.port}  (dev operator token: "
        f"{_dev_token(config)})",
        "",
        "Ctrl-C stops the server and the dev broker.",
        "",
    ]
    print("\n".join(lines), flush=True)


def _dev_token(config: Config) -> str:
    """The dev config's replay operator's token: a demo value, public on purpose."""
    return next(
        (operator.token for operator in config.console.operators if operator.role == "replay"),
        "(none configured)",
    )


def _port_free(port: int) -> bool:
    import socket

    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _send(args: argparse.Namespace) -> int:
    import aiohttp

    from relay.samples import UnknownSample, signed_sample
    from verifiers import VerificationError
    from verifiers.keys import UnusableKey

    config = load_config(_config_path(args))
    instance = config.providers.get(args.provider)
    if instance is None:
        print(
            f"no provider {args.provider!r} in the config (have: {', '.join(config.providers)})",
            file=sys.stderr,
        )
        return 2
    try:
        request = signed_sample(
            instance,
            event=args.event,
            body=args.body.read_bytes() if args.body else None,
            now=time.time(),
        )
    except UnknownSample as error:
        print(error, file=sys.stderr)
        return 2
    except UnusableKey as error:
        print(
            f"relay send: providers.{instance.name} cannot be signed for: {error} "
            "(set signing_key to the provider's private key to send samples, e.g. in a test "
            "environment)",
            file=sys.stderr,
        )
        return 2
    except VerificationError as error:  # a body the scheme cannot sign (Adyen's: no items)
        print(
            f"relay send: the {instance.profile.name} profile cannot sign this body: {error}",
            file=sys.stderr,
        )
        return 2
    base = args.url or f"http://127.0.0.1:{config.server.port}"
    url = f"{base.rstrip('/')}/webhooks/{instance.name}"

    async def post() -> tuple[int, bytes]:
        async with (
            aiohttp.ClientSession() as session,
            session.post(url, data=request.body, headers=request.headers) as response,
        ):
            return response.status, await response.read()

    try:
        status, answer = asyncio.run(post())
    except aiohttp.ClientError as error:
        print(f"POST {url} failed: {error}", file=sys.stderr)
        return 1
    print(f"POST {url} -> {status} {answer.decode(errors='replace')}")
    return 0 if status < 300 else 1


def _tail(args: argparse.Namespace) -> int:
    from relay.kafka import TopicReader

    _quiet_kafka_client()
    config = load_config(_config_path(args))

    async def tail() -> None:
        async with TopicReader(
            config.kafka,
            config.kafka.topic,
            subscribe=True,
            from_beginning=args.from_beginning,
        ) as reader:
            print(
                f"tailing {config.kafka.topic} on {config.kafka.bootstrap_servers} (Ctrl-C stops)",
                file=sys.stderr,
                flush=True,
            )
            async for record in reader:
                try:
                    event = decode_event(record.value, record.headers)
                    # The decoder reads UTF-16 and UTF-32 JSON too; --json prints the record as is.
                    text = record.value.decode() if args.json else ""
                except (DecodeError, UnicodeDecodeError) as error:
                    note = f"{record.where}: not a Relay event: {error}"
                    print(inert(note), file=sys.stderr, flush=True)
                    continue
                if args.event_type and not event.type.startswith(args.event_type):
                    continue
                print(_json_line(text) if args.json else _describe(event), flush=True)

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(tail())
    return 0


def _otlp_traces_endpoint(env: Mapping[str, str]) -> str:
    """Where the OTLP exporter sends spans and which variable says so, read as the exporter
    reads them; a user and password in the URL are not shown."""
    url = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    source = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
    if not url:
        base = env.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        source = (
            "OTEL_EXPORTER_OTLP_ENDPOINT"
            if base
            else "the default; set OTEL_EXPORTER_OTLP_ENDPOINT"
        )
        url = f"{(base or 'http://localhost:4318').rstrip('/')}/v1/traces"
    parts = urlsplit(url)
    if "@" in parts.netloc:
        url = urlunsplit(parts._replace(netloc="***@" + parts.netloc.rpartition("@")[2]))
    return f"{url} ({source})"


def _describe(event: Event) -> str:
    parts = [moment_text(event.received_at), event.type, f"id={event.id}"]
    if event.subject is not None:
        parts.append(f"order={event.subject}")
    if isinstance(event, PaymentEvent) and event.data.amount is not None:
        unit = event.data.asset or event.data.currency or ""
        parts.append(f"amount={event.data.amount} {unit}".rstrip())
    return inert("  ".join(parts))


def _json_line(text: str) -> str:
    """A record's JSON text on one line, inert. The decoder read it as strict JSON, where
    tabs, line breaks and carriage returns can only be whitespace between tokens."""
    return inert_json(text.replace("\r", " ").replace("\n", " ").replace("\t", " "))


async def _check_kafka(kafka: KafkaConfig, topics: list[str]) -> list[str]:
    """The handshake and login first (each failure named), then which topics are missing."""
    from relay.kafka import find_missing_topics, probe

    await probe(kafka)
    return await find_missing_topics(kafka, topics)


def _describe_console(config: Config) -> str:
    console = config.console
    scheme = "https" if console.tls_certfile else "http"
    if console.proxy_user_header:
        who = (
            f"behind an SSO proxy naming users in {console.proxy_user_header} "
            f"({len(console.proxy_replay_users)} may replay)"
        )
    else:
        replayers = sum(1 for operator in console.operators if operator.role == "replay")
        who = f"{len(console.operators)} operator(s) with tokens ({replayers} may replay)"
    return f"on at {scheme}://{console.host}:{console.port}, {who}"


def _check_config(args: argparse.Namespace) -> int:
    from relay.kafka import HandshakeFailed

    if args.file is not None and args.config is not None:
        print("relay check-config: give the config once, as FILE or --config", file=sys.stderr)
        return 2
    path = args.file or _config_path(args)
    config = load_config(path)
    check_paths(config)
    check_tracing(config)
    print(f"{path}: OK ({len(config.providers)} providers: {', '.join(config.providers)})")
    if config.tracing.enabled:
        print(
            f"tracing: on, {config.tracing.sample_ratio:.0%} of webhooks recorded, spans to "
            f"{_otlp_traces_endpoint(os.environ)}"
        )
    if config.console.enabled:
        print(f"console: {_describe_console(config)}")
    for instance in config.providers.values():
        if instance.profile.flows and instance.flow is None:
            choices = " or ".join(f'"{flow}"' for flow in instance.profile.flows)
            print(
                f"note: providers.{instance.name}: no flow is set, so each notification's flow "
                f"is inferred from its signed members; set flow = {choices} if this instance "
                "serves one direction"
            )
    for shared in shared_keys(config):
        # A warning, not an error: one sender's account split into routes may share its key.
        print(f"warning: {describe_shared(shared)}", file=sys.stderr)
    kafka = config.kafka
    topics = [kafka.topic, kafka.dead_letter_topic]
    # The config can be right and the cluster still unable to take events: check
    # the topics when the broker is reachable from here; an unreachable one is
    # normal (a laptop checking a production config) and not an error.
    _quiet_kafka_client()
    try:
        missing = asyncio.run(_check_kafka(kafka, topics))
    except HandshakeFailed as refused:
        # Reachable, and it refused Relay: the config is wrong for this cluster.
        print(f"kafka {kafka.bootstrap_servers}: {refused}", file=sys.stderr)
        return 1
    except KafkaUnavailable as error:
        print(f"kafka {kafka.bootstrap_servers}: not reachable, topics not checked ({error})")
        return 0
    for topic in missing:
        print(
            f"kafka.topic: topic {topic!r} does not exist on {kafka.bootstrap_servers} and the "
            "broker does not create topics on first use: create it before serving",
            file=sys.stderr,
        )
    if missing:
        return 1
    login = f", logged in with {kafka.sasl_mechanism}" if kafka.sasl_mechanism else ""
    print(
        f"kafka {kafka.bootstrap_servers} ({kafka.security_protocol}{login}): "
        f"topics {', '.join(topics)} exist"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The mutation fuzzer over HTTP: hostile requests of every kind against a real Relay.

Relay is a real ``relay serve`` process on a free port (so the RSS measured is Relay's alone,
and the fuzzer and Relay run on separate cores), publishing to the session's broker. Cases
come from :mod:`tests.fuzz.mutations`; well-formed ones go through an HTTP client with
keep-alive, the byte-level ones over raw sockets. Asserted over the whole run:

- no answer is a 5xx (and no connection dies without one where a request was whole);
- no case that must be refused (a forged or mutated request) is answered 2xx;
- every valid request (control) is answered 2xx, so the checks above are not vacuous;
- the topics hold a record for every valid request answered 2xx, and for no refused one:
  each record's token is that of an accepted case, and no event is published twice;
- afterwards Relay is healthy, ready, accepts a fresh request of every instance, has logged
  no error, and stops cleanly on SIGTERM;
- Relay's RSS after the run is within ``RSS_MARGIN_BYTES`` of its RSS after the warm-up.

``RELAY_FUZZ_REQUESTS`` sets the number of requests (CI default 5,000; ``make fuzz`` runs
100,000) and ``RELAY_FUZZ_SEED`` the seed (printed with the figures, to replay a run).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import re
import signal
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import psutil
import pytest
from multidict import CIMultiDict
from yarl import URL

from relay.config import Config, parse_config
from relay.devbroker import free_port
from relay.kafka import ReadRecord, TopicReader
from relay.settings import KafkaConfig
from tests.conftest import TestBroker
from tests.fuzz.instances import fuzz_providers
from tests.fuzz.mutations import TOKEN, Case, Fuzzer
from tests.fuzz.topics import record_text
from tests.relay_process import RelayProcess

REQUESTS = int(os.environ.get("RELAY_FUZZ_REQUESTS", "5000"))
SEED = int(os.environ.get("RELAY_FUZZ_SEED", str(random.randrange(1 << 32))))
WARMUP = 1000
CONCURRENCY = 24
# Growth of Relay's RSS allowed between after the warm-up and after the run: the memory dedup
# store keeps every accepted event id (a few hundred bytes each) and allocator pools grow to
# the peak of concurrent requests (each may hold a 1 MiB body); a leak per request would not
# fit (100,000 requests: 640 bytes each).
RSS_MARGIN_BYTES = 64 * 1024 * 1024
READ_TIMEOUT_S = 1.0
# Raw sockets wait this long for an answer: far beyond the read timeout and any ack budget.
ANSWER_WAIT_S = 30.0
# Headers Relay refuses before reading them all: the client may see the close before the 400.
CUT_OFF_KINDS = {"huge_header", "many_headers"}
STATUS_LINE = re.compile(rb"^HTTP/1\.[01] (\d{3}) ", re.MULTILINE)


@dataclass
class Tally:
    statuses: Counter[int] = field(default_factory=Counter)
    by_kind: Counter[str] = field(default_factory=Counter)
    server_errors: list[str] = field(default_factory=list)
    accepted_forgeries: list[str] = field(default_factory=list)
    refused_controls: list[str] = field(default_factory=list)
    accepted_tokens: set[str] = field(default_factory=set)
    accepted_controls: set[str] = field(default_factory=set)

    @property
    def requests(self) -> int:
        return sum(self.statuses.values())

    def record(self, case: Case, status: int, all_statuses: Iterable[int], detail: str) -> None:
        self.statuses[status] += 1
        self.by_kind[case.kind.split(":")[0]] += 1
        where = f"{case.kind} {case.instance} {case.token}: {status} {detail[:200]!r}"
        if any(code >= 500 for code in (status, *all_statuses)):
            self.server_errors.append(where)
        if status == 0 and case.raw is None and case.kind not in CUT_OFF_KINDS:
            self.server_errors.append(f"no answer to a whole request: {where}")
        if 200 <= status < 300:
            self.accepted_tokens.add(case.token)
            if case.control:
                self.accepted_controls.add(case.token)
            if case.must_reject:
                self.accepted_forgeries.append(where)
        elif case.control:
            self.refused_controls.append(where)


def fuzz_document(broker: TestBroker, topic: str, var: Path, port: int) -> dict[str, Any]:
    return {
        "server": {"host": "127.0.0.1", "port": port, "read_timeout_s": READ_TIMEOUT_S},
        "kafka": {
            "bootstrap_servers": broker.bootstrap_servers,
            "topic": topic,
            "idempotence": broker.idempotence,
        },
        # The production default: the memory backend's entries would pin memory (by design,
        # for the TTL) and blur what the RSS margin is there to catch.
        "dedup": {"backend": "sqlite", "path": str(var / "dedup.sqlite3")},
        "spool": {"path": str(var / "spool")},
        "providers": fuzz_providers(),
    }


def toml(document: dict[str, Any]) -> str:
    """TOML for a config document of tables, strings, numbers and lists of strings."""
    lines: list[str] = []

    def table(name: str, values: dict[str, Any]) -> None:
        lines.append(f"[{name}]")
        lines.extend(f"{key} = {json.dumps(value)}" for key, value in values.items())
        lines.append("")

    for section, values in document.items():
        if section == "providers":
            for name, provider in values.items():
                table(f"providers.{name}", provider)
        else:
            table(section, values)
    return "\n".join(lines)


@contextlib.asynccontextmanager
async def running(
    broker: TestBroker, topic: str, var: Path
) -> AsyncIterator[tuple[Config, RelayProcess]]:
    """A ``relay serve`` process with the fuzz instances, and the same config for signing."""
    for name in (topic, f"{topic}.dlq"):
        broker.create_topic(name)
    document = fuzz_document(broker, topic, var, free_port())
    config_path = var / "fuzz.toml"
    config_path.write_text(toml(document), encoding="utf-8")
    relay = RelayProcess(config_path, document["server"]["port"], var / "relay.log")
    try:
        await relay.start()
        await relay.wait_drained(30)  # connected to Kafka
        yield parse_config(document, env={}), relay
    finally:
        relay.kill()


async def send(
    session: aiohttp.ClientSession, base: str, host: str, port: int, case: Case
) -> tuple[int, list[int], str]:
    """The case's answer: status (0 when the connection closed without one), every status
    line seen (raw), and the start of the body."""
    if case.raw is not None:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            writer.write(case.raw)
            received = b""
            with contextlib.suppress(ConnectionError):
                async with asyncio.timeout(ANSWER_WAIT_S):
                    while chunk := await reader.read(65536):
                        received += chunk
        finally:
            writer.close()
        statuses = [int(code) for code in STATUS_LINE.findall(received)]
        return (statuses[0] if statuses else 0), statuses, received[:300].decode("latin-1")
    request = case.request
    try:
        async with session.request(
            request.method,
            URL(base + request.path, encoded=True),
            data=request.body,
            headers=CIMultiDict(request.headers),
            skip_auto_headers=("Content-Type",),
        ) as response:
            text = await response.text(errors="replace")
            return response.status, [], text
    except (aiohttp.ClientError, ConnectionError) as error:
        # Relay closes after refusing headers it will not read (too many, too long): the
        # client may see the close before the 400. Whole requests never end this way.
        return 0, [], f"{type(error).__name__}: {error}"


async def run_cases(
    fuzzer: Fuzzer, count: int, host: str, port: int, tally: Tally, *, slow_budget: int
) -> None:
    base = f"http://{host}:{port}"
    semaphore = asyncio.Semaphore(CONCURRENCY)
    slow_left = slow_budget
    connector = aiohttp.TCPConnector(limit=CONCURRENCY)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one(case: Case) -> None:
            async with semaphore:
                status, statuses, detail = await send(session, base, host, port, case)
            tally.record(case, status, statuses, detail)
            if case.control and 200 <= status < 300:
                fuzzer.accepted.append(case)
                del fuzzer.accepted[:-200]

        pending: set[asyncio.Task[None]] = set()
        made = 0
        while made < count:
            case = fuzzer.case()
            if case.slow:
                if slow_left <= 0:
                    continue
                slow_left -= 1
            made += 1
            pending.add(asyncio.create_task(one(case)))
            if len(pending) >= CONCURRENCY * 4:
                _, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        await asyncio.gather(*pending)


async def read_records(bootstrap: str, topics: list[str], tokens: set[str]) -> list[ReadRecord]:
    """Every record of ``topics`` once every token in ``tokens`` has been seen in one (or a
    deadline passes: the assertions then say what is missing), plus a second for late ones."""
    records: list[ReadRecord] = []
    async with contextlib.AsyncExitStack() as stack:
        readers = [
            await stack.enter_async_context(
                TopicReader(KafkaConfig(bootstrap_servers=bootstrap), name)
            )
            for name in topics
        ]
        assigned = [False] * len(topics)
        seen: set[str] = set()
        deadline = time.monotonic() + 120
        settle: float | None = None
        while time.monotonic() < deadline and (settle is None or time.monotonic() < settle):
            for index, reader in enumerate(readers):
                if not assigned[index]:
                    assigned[index] = await reader.assign(resume=False)
                    continue
                for record in await reader.poll(0.1):
                    records.append(record)
                    seen.update(token.decode() for token in TOKEN.findall(record_text(record)))
            if settle is None and tokens <= seen:
                settle = time.monotonic() + 1.0
            await asyncio.sleep(0)
    return records


def rss(relay: RelayProcess) -> int:
    assert relay.process is not None
    return psutil.Process(relay.process.pid).memory_info().rss


def logged_errors(relay: RelayProcess) -> list[str]:
    lines = relay.log_path.read_text(errors="replace").splitlines()
    return [line for line in lines if '"level":"error"' in line or "Traceback" in line]


def figures(tally: Tally, seconds: float, rss_before: int, rss_after: int, records: int) -> str:
    refused = {code: n for code, n in sorted(tally.statuses.items()) if not 200 <= code < 300}
    accepted = sum(n for code, n in tally.statuses.items() if 200 <= code < 300)
    return "\n".join(
        [
            "",
            f"relay fuzz: seed {SEED}, {tally.requests} requests ({WARMUP} of them warm-up, "
            f"{REQUESTS} measured in {seconds:.1f} s, "
            f"{REQUESTS / seconds:.0f}/s)",
            f"  2xx: {accepted}   refused by status: {refused} (0 = closed without an answer)",
            "  4xx by code: "
            + ", ".join(f"{c}: {n}" for c, n in refused.items() if 400 <= c < 500),
            f"  5xx: {sum(n for c, n in tally.statuses.items() if c >= 500)}"
            f"   accepted forgeries: {len(tally.accepted_forgeries)}"
            f"   refused controls: {len(tally.refused_controls)}",
            f"  records published: {records} for {len(tally.accepted_tokens)} accepted tokens",
            f"  RSS before {rss_before / 2**20:.1f} MiB, after {rss_after / 2**20:.1f} MiB "
            f"(growth {(rss_after - rss_before) / 2**20:+.1f} MiB, margin "
            f"{RSS_MARGIN_BYTES / 2**20:.0f} MiB)",
            "  cases by kind: " + ", ".join(f"{k} {n}" for k, n in sorted(tally.by_kind.items())),
        ]
    )


async def test_fuzz_every_profile_over_http(
    broker: TestBroker, topic: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tally = Tally()
    async with running(broker, topic, tmp_path) as (config, relay):
        fuzzer = Fuzzer(config, SEED)
        host, port = "127.0.0.1", relay.port
        await run_cases(fuzzer, WARMUP, host, port, tally, slow_budget=2)
        rss_before = rss(relay)
        started = time.monotonic()
        await run_cases(fuzzer, REQUESTS, host, port, tally, slow_budget=5)
        seconds = time.monotonic() - started
        rss_after = rss(relay)

        # Still healthy, ready, and accepting: a fresh valid request of every instance.
        async with aiohttp.ClientSession() as session:
            base = f"http://{host}:{port}"
            for route in ("/healthz", "/readyz"):
                async with session.get(base + route) as response:
                    assert response.status == 200, (route, await response.text())
            for name in config.providers:
                case = _control_for(fuzzer, name)
                status, _, detail = await send(session, base, host, port, case)
                tally.record(case, status, [], detail)
                assert 200 <= status < 300, (name, status, detail)

        await relay.wait_drained(60)  # anything spooled is in Kafka now
        records = await read_records(
            broker.bootstrap_servers,
            [config.kafka.topic, config.kafka.dead_letter_topic],
            tally.accepted_controls,
        )
        relay.send_signal(signal.SIGTERM)
        exit_code = await relay.wait_exit()
        errors = logged_errors(relay)

    with capsys.disabled():
        print(figures(tally, seconds, rss_before, rss_after, len(records)))

    assert tally.server_errors == [], tally.server_errors[:20]
    assert tally.accepted_forgeries == [], tally.accepted_forgeries[:20]
    assert tally.refused_controls == [], tally.refused_controls[:20]
    assert errors == [], errors[:20]
    assert exit_code == 0

    record_tokens: Counter[str] = Counter()
    event_ids: Counter[tuple[bytes, bytes]] = Counter()
    for record in records:
        tokens = {token.decode() for token in TOKEN.findall(record_text(record))}
        assert tokens, f"a record from no fuzz case: {record.value[:300]!r}"
        record_tokens.update(tokens)
        if not record.topic.endswith(".dlq"):
            # From the headers: an authentic raw body may hold numbers some parsers refuse.
            # A CloudEvent is identified by source and id: two instances may share an id.
            headers = dict(record.headers)
            event_ids[headers["relay_source"], headers["relay_id"]] += 1
    unexpected = set(record_tokens) - tally.accepted_tokens
    assert not unexpected, f"records published for refused requests: {sorted(unexpected)[:20]}"
    # Authentic hostile bodies may legitimately share an event id (a field the id is made of
    # replaced by the same constant), and a duplicate is acknowledged without a record; every
    # control has an id of its own.
    lost = tally.accepted_controls - set(record_tokens)
    assert not lost, f"acknowledged but never published: {sorted(lost)[:20]}"
    assert [key for key, n in event_ids.items() if n > 1] == [], "an event was published twice"

    assert rss_after - rss_before < RSS_MARGIN_BYTES


def _control_for(fuzzer: Fuzzer, name: str) -> Case:
    instance = fuzzer.config.providers[name]
    request, token = fuzzer.signed(instance)
    return Case("control", name, token, request, must_reject=False, control=True)

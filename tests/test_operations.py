"""Operating Relay: the /metrics scrape after a mixed run, one JSON log line per
webhook, and no secret, key or signature in the logs at any level.

In-process apps share prometheus-client's default registry, so each test names
its provider instances uniquely and reads exact values for them; series that
cannot be made unique (``provider="unknown"``, Kafka publish latency, replay
counts) are read as the difference between two scrapes. The spool gauges, the
sums over worker processes and the startup and shutdown lines are checked on a
real ``relay serve`` in a subprocess.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import logging
import os
import signal
import socket
import sys
import time
import tomllib
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from aiokafka.errors import KafkaTimeoutError
from cryptography.hazmat.primitives import serialization
from prometheus_client.parser import text_string_to_metric_families

from relay.app import build_app
from relay.config import Config, KafkaConfig, load_config, parse_config
from relay.http import SERVICES
from relay.kafka import KafkaSink
from relay.logs import RepeatFilter, effective_config
from relay.records import KafkaRecord
from relay.replay import LetterFilter, replay
from relay.sink import KafkaUnavailable
from tests.conftest import (
    INVOICE_SECRET,
    RelayUnderTest,
    SignedWebhook,
    make_config,
    signed_webhook,
    start_relay,
)
from verifiers.keys import load_private_key, private_pem

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse_metrics(text: str) -> Samples:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    """A sample's value; 0 for a series not exported yet (a counter never incremented)."""
    return samples.get((name, frozenset(labels.items())), 0.0)


async def scrape(relay: RelayUnderTest) -> Samples:
    response = await relay.client.get("/metrics")
    assert response.status == 200
    assert response.content_type == "text/plain"
    return parse_metrics(await response.text())


def closed_port() -> int:
    """A port nothing listens on: a Kafka there is down."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def start_without_kafka(aiohttp_client: Any, config: Config) -> RelayUnderTest:
    """A Relay whose broker is unreachable: it serves at once and spools."""
    client = await aiohttp_client(build_app(config))
    services = client.app[SERVICES]
    assert not services.sink.connected
    return RelayUnderTest(client, config, services)


def changed(webhook: SignedWebhook, **headers: str) -> SignedWebhook:
    return SignedWebhook(webhook.path, webhook.body, {**webhook.headers, **headers})


def without(webhook: SignedWebhook, header: str) -> SignedWebhook:
    headers = {k: v for k, v in webhook.headers.items() if k.lower() != header.lower()}
    return SignedWebhook(webhook.path, webhook.body, headers)


def invoice_with_status(config: Config, provider: str, status: str) -> SignedWebhook:
    """An authentic invoice webhook with a status no mapping knows: a dead letter."""
    document = orjson.loads(signed_webhook(config, provider).body)
    document["status"] = status
    return signed_webhook(
        config, provider, body=orjson.dumps(document), headers={"X-Webhook-Id": uuid.uuid4().hex}
    )


INVOICE = {"profile": "usdt-invoice", "secrets": [INVOICE_SECRET]}


async def test_metrics_after_a_mixed_run(
    aiohttp_client: Any, kafka_bootstrap: str, topic: str, tmp_path: Path
) -> None:
    tag = uuid.uuid4().hex[:8]
    inv, locked, spooling, full = (f"{name}-{tag}" for name in ("inv", "locked", "spool", "full"))
    main = await start_relay(
        aiohttp_client,
        make_config(
            bootstrap=kafka_bootstrap,
            topic=topic,
            var=tmp_path / "main",
            server={"max_body_bytes": 4096},
            providers={inv: INVOICE, locked: {**INVOICE, "allow_ips": ["192.0.2.0/24"]}},
        ),
    )
    down = f"127.0.0.1:{closed_port()}"
    spooled = await start_without_kafka(
        aiohttp_client,
        make_config(bootstrap=down, topic=topic, var=tmp_path / "b", providers={spooling: INVOICE}),
    )
    # Kafka down and a spool too small for any record: nothing durable can take it (503).
    unavailable = await start_without_kafka(
        aiohttp_client,
        make_config(
            bootstrap=down,
            topic=topic,
            var=tmp_path / "c",
            providers={full: INVOICE},
            spool={"max_bytes": 64},
        ),
    )
    before = await scrape(main)

    async def post(relay: RelayUnderTest, webhook: SignedWebhook, status: int) -> None:
        response = await relay.post(webhook)
        assert response.status == status, await response.text()

    accepted = [signed_webhook(main.config, inv) for _ in range(3)]
    for webhook in accepted:
        await post(main, webhook, 200)
    for _ in range(2):
        await post(main, accepted[0], 200)  # a provider's retry
    forged = changed(accepted[1], **{"X-Webhook-Signature": "0" * 64})
    await post(main, forged, 401)
    await post(
        main, changed(signed_webhook(main.config, inv), **{"X-Webhook-Signature": "0" * 64}), 401
    )
    await post(main, without(signed_webhook(main.config, inv), "X-Webhook-Signature"), 401)
    await post(
        main, changed(signed_webhook(main.config, inv), **{"Content-Type": "text/plain"}), 415
    )
    await post(main, signed_webhook(main.config, inv, body=b'{"pad": "' + b"x" * 5000 + b'"}'), 413)
    await post(main, signed_webhook(main.config, locked), 403)
    unknown = signed_webhook(main.config, inv)
    await post(main, SignedWebhook(f"/webhooks/nobody-{tag}", unknown.body, unknown.headers), 404)
    await post(main, invoice_with_status(main.config, inv, "refunded"), 200)
    for _ in range(2):
        await post(spooled, signed_webhook(spooled.config, spooling), 200)
    await post(unavailable, signed_webhook(unavailable.config, full), 503)

    # The dead letter comes back once its status has a mapping.
    replay_config = make_config(
        bootstrap=kafka_bootstrap,
        topic=topic,
        var=tmp_path / "replay",
        providers={inv: {**INVOICE, "statuses": {"refunded": "failed"}}},
    )
    summary = await replay(replay_config, LetterFilter(provider=inv))
    assert summary.replayed == 1

    after = await scrape(main)
    webhooks = "relay_webhooks_total"
    assert value(after, webhooks, provider=inv, outcome="accepted") == 3
    assert value(after, webhooks, provider=inv, outcome="duplicate") == 2
    assert value(after, webhooks, provider=inv, outcome="rejected") == 5
    assert value(after, webhooks, provider=inv, outcome="dead_lettered") == 1
    assert value(after, webhooks, provider=inv, outcome="spooled") == 0
    assert value(after, webhooks, provider=locked, outcome="rejected") == 1
    assert value(after, webhooks, provider=spooling, outcome="spooled") == 2
    assert value(after, webhooks, provider=full, outcome="unavailable") == 1
    unknown_rejections = value(after, webhooks, provider="unknown", outcome="rejected") - value(
        before, webhooks, provider="unknown", outcome="rejected"
    )
    assert unknown_rejections == 1

    rejected = "relay_webhooks_rejected_total"
    assert value(after, rejected, provider=inv, reason="signature_mismatch") == 2
    assert value(after, rejected, provider=inv, reason="missing_signature") == 1
    assert value(after, rejected, provider=inv, reason="unsupported_media_type") == 1
    assert value(after, rejected, provider=inv, reason="body_too_large") == 1
    assert value(after, rejected, provider=locked, reason="forbidden_address") == 1
    assert (
        value(after, rejected, provider="unknown", reason="unknown_provider")
        - value(before, rejected, provider="unknown", reason="unknown_provider")
        == 1
    )
    assert value(after, rejected, provider=full, reason="unavailable") == 0

    assert value(after, "relay_dead_letters_total", provider=inv, reason="unknown_status") == 1
    assert value(after, "relay_dedup_hits_total", provider=inv) == 2
    # Every acknowledged webhook is timed: accepted, duplicates, the dead letter; spooled too.
    latency = "relay_ack_latency_seconds"
    assert value(after, f"{latency}_count", provider=inv) == 6
    assert value(after, f"{latency}_bucket", provider=inv, le="+Inf") == 6
    assert value(after, f"{latency}_count", provider=spooling) == 2
    assert value(after, f"{latency}_count", provider=full) == 0
    # Kafka acknowledged three events, the dead letter, the replayed event and the record
    # of what the replay did with the letter.
    publish = "relay_kafka_publish_seconds_count"
    assert value(after, publish) - value(before, publish) == 6
    replayed = "relay_replay_total"
    assert (
        value(after, replayed, outcome="replayed") - value(before, replayed, outcome="replayed")
        == 1
    )


def read_lines(stream: io.StringIO) -> list[dict[str, Any]]:
    """Every line written since the last read, each of which must be one JSON object."""
    text = stream.getvalue()
    stream.seek(0)
    stream.truncate()
    return [orjson.loads(line) for line in text.splitlines()]


async def test_one_log_line_per_webhook(
    aiohttp_client: Any,
    kafka_bootstrap: str,
    topic: str,
    tmp_path: Path,
    json_log: io.StringIO,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    relay = await start_relay(
        aiohttp_client,
        make_config(bootstrap=kafka_bootstrap, topic=topic, var=tmp_path / "a"),
    )
    down = f"127.0.0.1:{closed_port()}"
    spooling = await start_without_kafka(
        aiohttp_client, make_config(bootstrap=down, topic=topic, var=tmp_path / "b")
    )
    full = await start_without_kafka(
        aiohttp_client,
        make_config(bootstrap=down, topic=topic, var=tmp_path / "c", spool={"max_bytes": 64}),
    )
    first = signed_webhook(relay.config)
    forged = changed(signed_webhook(relay.config), **{"X-Webhook-Signature": "0" * 64})
    cases = [
        (relay, first, 200, "accepted", None, "info"),
        (relay, first, 200, "duplicate", None, "info"),
        (
            relay,
            invoice_with_status(relay.config, "invoices", "refunded"),
            200,
            "dead_lettered",
            "unknown_status",
            "warning",
        ),
        (relay, forged, 401, "rejected", "signature_mismatch", "warning"),
        (spooling, signed_webhook(spooling.config), 200, "spooled", None, "info"),
        (full, signed_webhook(full.config), 503, "unavailable", "unavailable", "error"),
    ]
    read_lines(json_log)
    for target, webhook, status, outcome, reason, level in cases:
        response = await target.post(webhook)
        assert response.status == status
        lines = read_lines(json_log)
        [line] = [line for line in lines if line["msg"] == "webhook"]
        assert line["level"] == level
        assert line["logger"] == "relay.http"
        assert line["provider"] == "invoices"
        assert line["outcome"] == outcome
        assert line["status"] == status
        assert line["reason"] == reason
        assert line["latency_ms"] >= 0
        assert line["pid"] == os.getpid()
        assert bool(line["event_id"]) is (status == 200)
        # Nothing else about this request at info or above; the Kafka-less apps' reconnect
        # lines are about the broker, not a request.
        others = [
            other
            for other in lines
            if other is not line
            and other["level"] != "debug"
            and not other["logger"].startswith(("relay.kafka", "aiokafka"))
        ]
        assert others == []

    # A bug in the pipeline: 500, and the traceback inside the request's one line.
    async def broken(*args: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(relay.services.pipeline, "receive", broken)
    response = await relay.post(signed_webhook(relay.config))
    assert response.status == 500
    assert (await response.json())["error"] == "internal_error"
    [line] = [line for line in read_lines(json_log) if line["level"] != "debug"]
    assert (line["msg"], line["outcome"], line["status"]) == ("webhook", "error", 500)
    assert "RuntimeError: a bug" in line["exc"]


ROOT = Path(__file__).resolve().parent.parent
DEV_TOML = ROOT / "deploy" / "dev.toml"


def dev_document(bootstrap: str, topic: str, var: Path) -> dict[str, Any]:
    """deploy/dev.toml with this test's broker, topic and directories."""
    # make_config creates the topics where the broker does not, and knows its idempotence.
    kafka = make_config(bootstrap=bootstrap, topic=topic, var=var).kafka
    document = tomllib.loads(DEV_TOML.read_text())
    document["server"] |= {"port": 0}
    document["kafka"] |= {
        "bootstrap_servers": bootstrap,
        "topic": topic,
        "dlq_topic": "",
        "idempotence": kafka.idempotence,
    }
    document["dedup"] = {"backend": "sqlite", "path": str(var / "dedup.sqlite3")}
    document["spool"] = {"path": str(var / "spool")}
    document["replay"] = {"outcome_key": "replay-outcome-key-of-the-log-tests-0123456789"}
    return document


def secret_material(document: Mapping[str, Any]) -> set[str]:
    """Every secret and private key of the instances, as written and in the other
    encodings a careless log line could use (PEM, base64 and hex DER, hex of a secret)."""
    found: set[str] = set()
    outcome_key = document.get("replay", {}).get("outcome_key")
    if outcome_key:
        found |= {outcome_key, outcome_key.encode().hex()}
    for table in document["providers"].values():
        for secret in [*table.get("secrets", []), *table.get("authorizations", [])]:
            found |= {secret, secret.encode().hex(), base64.b64encode(secret.encode()).decode()}
        if "signing_key" in table:
            key = load_private_key(table["signing_key"])
            der = key.private_bytes(
                serialization.Encoding.DER,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
            pem_body = "".join(private_pem(key).splitlines()[1:-1])
            found |= {table["signing_key"], pem_body, der.hex(), base64.b64encode(der).decode()}
    return found


def signatures(webhook: SignedWebhook) -> set[str]:
    """The signature values a request carries, in headers or in a ``sign`` body field."""
    found = {value for name, value in webhook.headers.items() if "sign" in name.lower()}
    with contextlib.suppress(orjson.JSONDecodeError):
        document = orjson.loads(webhook.body)
        if isinstance(document, dict) and isinstance(document.get("sign"), str):
            found.add(document["sign"])
    return found


def assert_not_in(text: str, material: set[str]) -> None:
    """No piece of 24 characters of any material appears: a truncated or wrapped copy
    (a PEM line, the start of a key) is caught as well as a whole one."""
    for item in material:
        pieces = {item} if len(item) <= 24 else {item[i : i + 24] for i in range(len(item) - 23)}
        leaked = [piece for piece in pieces if piece in text]
        assert not leaked, f"secret material in the logs: {leaked[0][:6]}..."


def tampered(webhook: SignedWebhook) -> SignedWebhook:
    """The same request with one field added after signing: every scheme must refuse it.
    Adyen signs each notification item, not the body: one item's signed field changes."""
    document = orjson.loads(webhook.body)
    if "notificationItems" in document:
        document["notificationItems"][0]["NotificationRequestItem"]["merchantReference"] += "!"
    else:
        document["tampered"] = "yes"
    return SignedWebhook(webhook.path, orjson.dumps(document), webhook.headers)


def stripped(webhook: SignedWebhook) -> SignedWebhook:
    """The request without its signature (header, body field, or each Adyen item's)."""
    document = {k: v for k, v in orjson.loads(webhook.body).items() if k != "sign"}
    for item in document.get("notificationItems", []):
        item["NotificationRequestItem"].get("additionalData", {}).pop("hmacSignature", None)
    headers = {k: v for k, v in webhook.headers.items() if "sign" not in k.lower()}
    return SignedWebhook(webhook.path, orjson.dumps(document), headers)


async def test_no_secret_key_or_signature_in_the_logs(
    aiohttp_client: Any,
    kafka_bootstrap: str,
    topic: str,
    tmp_path: Path,
    json_log: io.StringIO,
) -> None:
    document = dev_document(kafka_bootstrap, topic, tmp_path / "a")
    config = parse_config(document, env={})
    relay = await start_relay(aiohttp_client, config)
    down = f"127.0.0.1:{closed_port()}"
    spooling_doc = dev_document(down, topic, tmp_path / "b")
    spooling = await start_without_kafka(aiohttp_client, parse_config(spooling_doc, env={}))
    full_doc = dev_document(down, topic, tmp_path / "c")
    full_doc["spool"]["max_bytes"] = 64
    full = await start_without_kafka(aiohttp_client, parse_config(full_doc, env={}))

    sent: list[SignedWebhook] = []
    answers: dict[str, list[int]] = {}
    for name in config.providers:
        accepted = signed_webhook(config, name)
        # Authentic but not a payment notification of this provider: a dead letter.
        odd = signed_webhook(config, name, body=_odd_body(config.providers[name].profile.name))
        requests = [
            (relay, accepted),
            (relay, accepted),
            (relay, odd),
            (relay, tampered(accepted)),
            (relay, stripped(accepted)),
            (spooling, signed_webhook(spooling.config, name)),
            (full, signed_webhook(full.config, name)),
        ]
        for target, webhook in requests:
            response = await target.post(webhook)
            answers.setdefault(name, []).append(response.status)
            sent.append(webhook)
    assert answers == {name: [200, 200, 200, 401, 401, 200, 503] for name in config.providers}

    lines = read_lines(json_log)
    outcomes = [(line["provider"], line["outcome"]) for line in lines if line["msg"] == "webhook"]
    expected = ["accepted", "duplicate", "dead_lettered", "rejected", "rejected", "spooled"]
    assert outcomes == [
        (name, outcome) for name in config.providers for outcome in [*expected, "unavailable"]
    ]
    assert any(line["level"] == "debug" for line in lines), "DEBUG lines were not captured"
    text = "\n".join(orjson.dumps(line).decode() for line in lines)
    material = secret_material(document)
    for webhook in sent:
        material |= signatures(webhook)
    assert_not_in(text, material)
    # The config as the startup line shows it is as clean.
    assert_not_in(orjson.dumps(effective_config(config), default=str).decode(), material)


# Adyen signs each item of a batch, not the body: its odd notification is one signed item
# with an outcome its table does not list (CAPTURE_FAILED:false), an unknown_status letter.
ODD_ADYEN = orjson.dumps(
    {
        "live": "false",
        "notificationItems": [
            {
                "NotificationRequestItem": {
                    "eventCode": "CAPTURE_FAILED",
                    "success": "false",
                    "pspReference": "ODD0000000000001",
                    "merchantAccountCode": "DevMerchant",
                    "merchantReference": "ORDER-ODD",
                    "amount": {"value": 100, "currency": "EUR"},
                    "additionalData": {},
                }
            }
        ],
    }
)


def _odd_body(profile: str) -> bytes:
    return ODD_ADYEN if profile == "adyen" else b'{"unexpected":"shape"}'


class Served:
    """``relay serve`` in a subprocess, its stderr read as JSON lines as they come."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.lines: list[dict[str, Any]] = []
        self.raw = ""
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def start(cls, config: Path, *args: str, env: Mapping[str, str] | None = None) -> Served:
        clean = {k: v for k, v in os.environ.items() if not k.startswith(("RELAY_", "PROMETHEUS_"))}
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "relay",
            "serve",
            "--config",
            str(config),
            *args,
            cwd=ROOT,
            env={**clean, **(env or {})},
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        return cls(process)

    async def _read(self) -> None:
        assert self.process.stderr is not None
        async for raw in self.process.stderr:
            text = raw.decode()
            self.raw += text
            self.lines.append(orjson.loads(text))

    async def wait_for(self, predicate: Callable[[list[dict[str, Any]]], bool]) -> None:
        deadline = time.monotonic() + 60
        while not predicate(self.lines):
            assert self.process.returncode is None, f"relay serve exited:\n{self.raw}"
            assert time.monotonic() < deadline, f"timed out; the log so far:\n{self.raw}"
            await asyncio.sleep(0.05)

    def messages(self, msg: str) -> list[dict[str, Any]]:
        return [line for line in self.lines if line["msg"] == msg]

    async def stop(self) -> int:
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(self.process.wait(), 60)
        await self._reader
        return code


async def post_each(url: str, webhooks: list[SignedWebhook]) -> list[int]:
    """POST every webhook on its own connection (so SO_REUSEPORT spreads them over workers)."""
    statuses = []
    connector = aiohttp.TCPConnector(force_close=True)
    async with aiohttp.ClientSession(connector=connector) as session:
        for webhook in webhooks:
            async with session.post(
                url + webhook.path, data=webhook.body, headers=webhook.headers
            ) as response:
                statuses.append(response.status)
    return statuses


DEV_PROVIDERS = DEV_TOML.read_text().partition("\n[providers.")[1:]


async def test_serve_logs_startup_webhooks_and_shutdown_without_secrets(
    kafka_bootstrap: str, topic: str, tmp_path: Path
) -> None:
    """The real ``relay serve`` at DEBUG with every dev profile: JSON lines only, the startup
    line shows the effective config, one line per webhook, the shutdown lines, no secret."""
    redis_password = "hunter2-dedup-redis-password"
    kafka = make_config(bootstrap=kafka_bootstrap, topic=topic, var=tmp_path).kafka
    path = tmp_path / "relay.toml"
    path.write_text(
        f"""
[server]
host = "127.0.0.1"
port = 0
shutdown_grace_s = 2

[kafka]
bootstrap_servers = "{kafka_bootstrap}"
topic = "{topic}"
idempotence = {str(kafka.idempotence).lower()}

[dedup]
backend = "sqlite"
path = "{tmp_path / "dedup.sqlite3"}"
url = "redis://relay:${{REDIS_PASSWORD}}@127.0.0.1:6379/0"   # unused by sqlite, still shown

[spool]
path = "{tmp_path / "spool"}"
"""
        + "".join(DEV_PROVIDERS)
    )
    served = await Served.start(
        path, env={"RELAY_LOG_LEVEL": "DEBUG", "REDIS_PASSWORD": redis_password}
    )
    try:
        await served.wait_for(lambda lines: any(line["msg"] == "serving" for line in lines))
        [serving] = served.messages("serving")
        url = f"http://{serving['listening'][0]}"
        config = load_config(path, env={"REDIS_PASSWORD": redis_password})
        sent: list[SignedWebhook] = []
        for name in config.providers:
            accepted = signed_webhook(config, name)
            odd = signed_webhook(config, name, body=_odd_body(config.providers[name].profile.name))
            webhooks = [accepted, accepted, odd, tampered(accepted)]
            assert await post_each(url, webhooks) == [200, 200, 200, 401]
            sent += webhooks
        await served.wait_for(lambda lines: len(served.messages("webhook")) == len(sent))
    finally:
        code = await served.stop()
    assert code == 0

    shown = serving["config"]
    assert list(shown["providers"]) == list(config.providers)
    assert shown["providers"]["invoices"]["secrets"] == 1
    assert shown["providers"]["topup"]["public_keys"][0].startswith("sha256:")
    assert shown["providers"]["payin"]["signing_key"] is True
    assert shown["dedup"]["url"] == "redis://***@127.0.0.1:6379/0"
    assert shown["kafka"]["dlq_topic"] == f"{topic}.dlq"
    outcomes = [(line["provider"], line["outcome"]) for line in served.messages("webhook")]
    assert outcomes == [
        (name, outcome)
        for name in config.providers
        for outcome in ("accepted", "duplicate", "dead_lettered", "rejected")
    ]
    assert [line["msg"] for line in served.lines[-2:]] == [
        "shutting down: no new connections, finishing in-flight requests",
        "stopped",
    ]
    assert served.lines[-1]["uptime_s"] > 0
    assert any(line["level"] == "debug" for line in served.lines)
    material = secret_material(tomllib.loads("".join(DEV_PROVIDERS))) | {redis_password}
    for webhook in sent:
        material |= signatures(webhook)
    assert_not_in(served.raw, material)


async def test_metrics_are_summed_over_workers(tmp_path: Path) -> None:
    """``relay serve --workers 2`` with Kafka down: every answer is spooled, and a scrape
    of either worker counts the webhooks both answered and both spools' depth."""
    port = closed_port()  # free now; the workers bind it
    path = tmp_path / "relay.toml"
    path.write_text(
        f"""
[server]
host = "127.0.0.1"
port = {port}
shutdown_grace_s = 1

[kafka]
bootstrap_servers = "127.0.0.1:{closed_port()}"
topic = "payments.events"

[dedup]
backend = "sqlite"
path = "{tmp_path / "dedup.sqlite3"}"

[spool]
path = "{tmp_path / "spool"}"

[providers.invoices]
profile = "usdt-invoice"
secrets = ["{INVOICE_SECRET}"]
"""
    )
    config = load_config(path)
    temp = tmp_path / "tmp"  # where the server keeps the workers' metric files
    temp.mkdir()
    served = await Served.start(path, "--workers", "2", env={"TMPDIR": str(temp)})
    url = f"http://127.0.0.1:{port}"
    try:
        await served.wait_for(lambda lines: sum(line["msg"] == "serving" for line in lines) == 2)
        assert len(list(temp.glob("relay-metrics-*/*.db"))) >= 2
        fresh = [signed_webhook(config) for _ in range(40)]
        retries = fresh[:5]
        forged = [
            changed(signed_webhook(config), **{"X-Webhook-Signature": "0" * 64}) for _ in range(3)
        ]
        assert await post_each(url, fresh) == [200] * 40
        assert await post_each(url, retries) == [200] * 5
        assert await post_each(url, forged) == [401] * 3
        await served.wait_for(lambda lines: len(served.messages("webhook")) == 48)
        workers = {line["pid"] for line in served.messages("webhook")}
        assert len(workers) == 2, "every request went to one worker: the sum proves nothing"

        async def scrape_any() -> Samples:
            connector = aiohttp.TCPConnector(force_close=True)
            async with (
                aiohttp.ClientSession(connector=connector) as session,
                session.get(f"{url}/metrics") as response,
            ):
                assert response.status == 200
                return parse_metrics(await response.text())

        # The spool gauges are refreshed every second in each worker.
        samples = await scrape_any()
        deadline = time.monotonic() + 30
        while value(samples, "relay_spool_depth") != 40 and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
            samples = await scrape_any()
        for scraped in [samples, *[await scrape_any() for _ in range(4)]]:
            webhooks = "relay_webhooks_total"
            assert value(scraped, webhooks, provider="invoices", outcome="spooled") == 40
            assert value(scraped, webhooks, provider="invoices", outcome="duplicate") == 5
            assert value(scraped, webhooks, provider="invoices", outcome="rejected") == 3
            assert value(scraped, webhooks, provider="invoices", outcome="accepted") == 0
            assert (
                value(
                    scraped,
                    "relay_webhooks_rejected_total",
                    provider="invoices",
                    reason="signature_mismatch",
                )
                == 3
            )
            assert value(scraped, "relay_dedup_hits_total", provider="invoices") == 5
            assert value(scraped, "relay_ack_latency_seconds_count", provider="invoices") == 45
            assert value(scraped, "relay_spool_depth") == 40
            assert value(scraped, "relay_spool_oldest_age_seconds") > 0
    finally:
        code = await served.stop()
    assert code == 0
    assert {line["pid"] for line in served.messages("stopped")} == workers
    assert list(temp.iterdir()) == [], "the metric files outlived the server"


def test_a_broker_outage_does_not_flood_the_log() -> None:
    """aiokafka repeats its connection errors ten times a second while a broker is down."""
    repeats = RepeatFilter("aiokafka", interval_s=60.0)

    def passes(name: str, template: str, at: float) -> bool:
        record = logging.makeLogRecord(
            {"name": name, "msg": template, "args": (111, "refused"), "created": at}
        )
        return repeats.filter(record)

    unable = "Unable connect to node with id %s: %s"
    outage = [passes("aiokafka", unable, 1000 + tick / 10) for tick in range(600)]
    assert outage == [True] + [False] * 599
    assert passes("aiokafka.cluster", "Unable to update metadata from %s", 1001)
    assert passes("aiokafka", unable, 1060)  # a minute later: once more
    assert all(passes("relay.kafka", "kafka not reachable, retrying", 1000) for _ in range(3))


async def test_readyz_names_no_broker_address(
    aiohttp_client: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """/readyz may be reachable from outside; aiokafka's messages name broker addresses.
    It says which kind of error (the class name), the log says where."""
    caplog.set_level(logging.WARNING, logger="relay.kafka")
    port = closed_port()
    relay = await start_without_kafka(
        aiohttp_client,
        make_config(bootstrap=f"127.0.0.1:{port}", topic="unused", var=tmp_path),
    )
    for _ in range(200):
        if relay.services.sink.last_error is not None:
            break
        await asyncio.sleep(0.05)
    response = await relay.client.get("/readyz")
    text = await response.text()
    assert orjson.loads(text)["kafka"] == {
        "connected": False,
        "error": "KafkaConnectionError",
        "missing_topics": [],
    }
    assert "127.0.0.1" not in text and str(port) not in text
    logged = [r for r in caplog.records if r.getMessage() == "kafka not reachable, retrying"]
    assert logged and str(port) in vars(logged[0])["error"]


class _FailingProducer:
    """A started producer whose broker stopped answering, as aiokafka reports it: the
    record is taken into a batch, and the batch's future fails after the request timeout."""

    async def send(self, *args: Any, **kwargs: Any) -> asyncio.Future[None]:
        timed_out: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        timed_out.set_exception(
            KafkaTimeoutError("no answer from broker-3.kafka.internal:9092 (10.1.2.3:9092)")
        )
        return timed_out


async def test_a_failed_send_shows_its_class_in_readyz_and_its_message_in_the_log_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="relay.kafka")
    sink = KafkaSink(KafkaConfig())
    sink._producer = _FailingProducer()
    sink._connected.set()
    record = KafkaRecord(topic="payments.events", key=b"k", value=b"{}", headers=())
    for _ in range(3):
        with pytest.raises(KafkaUnavailable) as caught:
            await sink.send(record)
        assert "broker-3.kafka.internal:9092" in str(caught.value)  # for the operator
    assert sink.last_error == "KafkaTimeoutError"
    assert not sink.healthy
    logged = [r for r in caplog.records if r.getMessage() == "kafka is not taking records"]
    assert len(logged) == 1, "once when Kafka stops taking records, not once per record"
    assert "10.1.2.3:9092" in vars(logged[0])["error"]

"""Tracing: spans for receive, verify, publish and replay, recorded with the
OpenTelemetry SDK's in-memory exporter; the ``traceparent`` every record carries; the trace id
in the log line; and nothing of OpenTelemetry loaded when tracing is off."""

from __future__ import annotations

import ast
import dataclasses
import json
import logging
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import jsonschema
import orjson
import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from relay.app import build_app
from relay.cli import main
from relay.config import Config, ConfigError, parse_config
from relay.http import SERVICES
from relay.replay import LetterFilter, replay
from relay.settings import TracingConfig
from tests.conftest import (
    INVOICE_SECRET,
    RelayUnderTest,
    event_of,
    make_config,
    read_topic,
    signed_webhook,
)

SCHEMA = json.loads(
    (Path(__file__).parent.parent / "schemas" / "payment-event.schema.json").read_text()
)
# What a provider (or anyone) may send in front of Relay: linked to, never continued.
SENDER_TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
SENDER_TRACEPARENT = f"00-{SENDER_TRACE_ID}-b9c7c989f97918e1-01"


def traced(config: Config, **settings: Any) -> Config:
    return dataclasses.replace(config, tracing=TracingConfig(enabled=True, **settings))


async def start_traced(
    aiohttp_client: Any, config: Config, exporter: InMemorySpanExporter
) -> RelayUnderTest:
    client = await aiohttp_client(build_app(config, span_exporter=exporter))
    services = client.app[SERVICES]
    assert await services.sink.wait_connected(10), "Relay did not connect to the broker"
    return RelayUnderTest(client, config, services)


def by_name(spans: Sequence[ReadableSpan]) -> dict[str, list[ReadableSpan]]:
    named: dict[str, list[ReadableSpan]] = {}
    for span in spans:
        named.setdefault(span.name, []).append(span)
    return named


def hex_ids(span: ReadableSpan) -> tuple[str, str]:
    context = span.get_span_context()
    assert context is not None
    return f"{context.trace_id:032x}", f"{context.span_id:016x}"


def traceparent_of(span: ReadableSpan) -> str:
    context = span.get_span_context()
    assert context is not None
    trace_id, span_id = hex_ids(span)
    return f"00-{trace_id}-{span_id}-{context.trace_flags:02x}"


def assert_child_of(child: ReadableSpan, parent: ReadableSpan) -> None:
    assert child.parent is not None, child.name
    assert parent.context is not None
    assert child.parent.span_id == parent.context.span_id, child.name
    assert hex_ids(child)[0] == hex_ids(parent)[0], child.name


def assert_linked_to(span: ReadableSpan, earlier: ReadableSpan) -> None:
    [link] = span.links
    assert (f"{link.context.trace_id:032x}", f"{link.context.span_id:016x}") == hex_ids(earlier)
    assert hex_ids(span)[0] != hex_ids(earlier)[0]  # a trace of its own


def attribute_values(spans: Sequence[ReadableSpan]) -> list[str]:
    return [str(value) for span in spans for value in (span.attributes or {}).values()]


def webhook_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "relay.http" and r.getMessage() == "webhook"]


async def test_a_webhook_is_one_trace_that_its_record_carries(
    aiohttp_client: Any,
    kafka_bootstrap: str,
    topic: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="relay.http")
    exporter = InMemorySpanExporter()
    config = traced(make_config(bootstrap=kafka_bootstrap, topic=topic, var=tmp_path))
    relay = await start_traced(aiohttp_client, config, exporter)
    webhook = signed_webhook(config, order="ORDER-T1", headers={"traceparent": SENDER_TRACEPARENT})

    assert (await relay.post(webhook)).status == 200

    spans = by_name(exporter.get_finished_spans())
    assert set(spans) == {"receive", "verify", "publish"}
    [receive] = spans["receive"]
    assert receive.parent is None  # the sender's trace is not continued...
    assert receive.kind is SpanKind.SERVER
    [link] = receive.links  # ...but linked
    assert f"{link.context.trace_id:032x}" == SENDER_TRACE_ID
    trace_id = hex_ids(receive)[0]
    assert trace_id != SENDER_TRACE_ID
    for name in ("verify", "publish"):
        [step] = spans[name]
        assert_child_of(step, receive)
        assert step.status.status_code is StatusCode.UNSET
    assert dict(receive.attributes or {}) == {
        "relay.provider": "invoices",
        "http.request.method": "POST",
        "relay.outcome": "accepted",
        "cloudevents.event_id": webhook.headers["X-Webhook-Id"],
        "http.response.status_code": 200,
    }
    [publish] = spans["publish"]
    assert publish.kind is SpanKind.PRODUCER
    assert (publish.attributes or {})["messaging.destination.name"] == topic
    assert (publish.attributes or {})["relay.durability"] == "kafka"
    # Names, codes and ids only: no secret, signature, body or header value.
    values = attribute_values(exporter.get_finished_spans())
    for secret in (INVOICE_SECRET, webhook.headers["x-webhook-signature"], "ORDER-T1"):
        assert not any(secret in value for value in values)

    [record] = await read_topic(kafka_bootstrap, topic, expect=1)
    event = event_of(record)
    jsonschema.validate(event, SCHEMA)
    traceparent = traceparent_of(receive)
    assert event["traceparent"] == traceparent  # CloudEvents distributed-tracing extension
    assert dict(record.headers)["traceparent"] == traceparent.encode()

    [line] = webhook_lines(caplog)
    assert line.trace_id == trace_id  # type: ignore[attr-defined]


async def test_a_forged_webhook_ends_in_a_failed_receive_span_and_publishes_nothing(
    aiohttp_client: Any,
    kafka_bootstrap: str,
    topic: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="relay.http")
    exporter = InMemorySpanExporter()
    config = traced(make_config(bootstrap=kafka_bootstrap, topic=topic, var=tmp_path))
    relay = await start_traced(aiohttp_client, config, exporter)
    webhook = signed_webhook(config, headers={"x-webhook-signature": "00" * 32})

    assert (await relay.post(webhook)).status == 401

    spans = by_name(exporter.get_finished_spans())
    assert set(spans) == {"receive", "verify"}
    [receive], [verify] = spans["receive"], spans["verify"]
    assert_child_of(verify, receive)
    for span in (receive, verify):
        assert span.status.status_code is StatusCode.ERROR
        assert span.status.description == "signature_mismatch"
    attributes = receive.attributes or {}
    assert attributes["relay.outcome"] == "rejected"
    assert attributes["relay.reason"] == "signature_mismatch"
    assert attributes["http.response.status_code"] == 401
    assert "cloudevents.event_id" not in attributes  # unverified ids are not worth keeping
    assert receive.links == ()  # no traceparent sent: nothing to link
    [line] = webhook_lines(caplog)
    assert line.trace_id == hex_ids(receive)[0]  # type: ignore[attr-defined]
    assert await read_topic(kafka_bootstrap, topic, expect=0, settle_s=0.5) == []


async def test_an_unknown_route_is_traced_as_unknown(
    aiohttp_client: Any, kafka_bootstrap: str, topic: str, tmp_path: Path
) -> None:
    exporter = InMemorySpanExporter()
    config = traced(make_config(bootstrap=kafka_bootstrap, topic=topic, var=tmp_path))
    relay = await start_traced(aiohttp_client, config, exporter)
    webhook = signed_webhook(config)

    response = await relay.client.post("/webhooks/scanner", data=webhook.body)
    assert response.status == 404
    assert (await relay.client.get("/healthz")).status == 200  # not a webhook: no span

    [receive] = exporter.get_finished_spans()
    assert (receive.attributes or {})["relay.provider"] == "unknown"
    assert receive.status.description == "unknown_provider"


async def test_each_replay_is_a_new_trace_linked_to_the_one_that_filed_the_letter(
    aiohttp_client: Any, kafka_bootstrap: str, topic: str, tmp_path: Path
) -> None:
    providers: dict[str, Any] = {
        "invoices": {"profile": "usdt-invoice", "secrets": [INVOICE_SECRET]}
    }
    common: dict[str, Any] = {"bootstrap": kafka_bootstrap, "topic": topic, "var": tmp_path}
    dedup = {"backend": "sqlite", "path": str(tmp_path / "dedup.sqlite3")}
    before = traced(make_config(**common, providers=providers, dedup=dedup))
    providers["invoices"]["statuses"] = {"refunded": "failed"}
    after = traced(make_config(**common, providers=providers, dedup=dedup))
    received = InMemorySpanExporter()
    relay = await start_traced(aiohttp_client, before, received)
    body = orjson.dumps({"invoice_reference": "ORD-TR", "status": "refunded"})
    assert (await relay.post(signed_webhook(before, body=body))).status == 200

    filed = by_name(received.get_finished_spans())
    [receive], [publish] = filed["receive"], filed["publish"]
    assert (receive.attributes or {})["relay.outcome"] == "dead_lettered"
    assert (receive.attributes or {})["relay.reason"] == "unknown_status"
    assert receive.status.status_code is StatusCode.UNSET  # acknowledged: not an error
    assert (publish.attributes or {})["messaging.destination.name"] == (
        before.kafka.dead_letter_topic
    )
    [letter] = await read_topic(kafka_bootstrap, before.kafka.dead_letter_topic, expect=1)
    assert dict(letter.headers)["traceparent"] == traceparent_of(receive).encode()

    # Replayed with the old config: fails again, filed again under the replay's trace.
    failed_again = InMemorySpanExporter()
    summary = await replay(before, LetterFilter(), idle_s=0.5, span_exporter=failed_again)
    assert dict(summary.failed) == {"unknown_status": 1}
    spans = by_name(failed_again.get_finished_spans())
    # The letter is verified again before anything is published, under the replay's span.
    assert set(spans) == {"replay", "verify", "publish"}
    [first] = spans["replay"]
    assert first.parent is None
    assert first.kind is SpanKind.CONSUMER
    assert_linked_to(first, receive)
    assert (first.attributes or {})["relay.attempt"] == 2
    assert (first.attributes or {})["relay.outcome"] == "failed_again"
    assert first.status.description == "unknown_status"
    assert_child_of(spans["verify"][0], first)
    assert_child_of(spans["publish"][0], first)
    letters = await read_topic(kafka_bootstrap, before.kafka.dead_letter_topic, expect=2)
    assert dict(letters[1].headers)["traceparent"] == traceparent_of(first).encode()

    # Replayed once the status is known: published under a trace linked to the last attempt.
    replayed = InMemorySpanExporter()
    summary = await replay(after, LetterFilter(), idle_s=0.5, span_exporter=replayed)
    assert summary.replayed == 1
    spans = by_name(replayed.get_finished_spans())
    [second] = spans["replay"]
    assert_linked_to(second, first)
    assert (second.attributes or {})["relay.outcome"] == "replayed"
    assert second.status.status_code is StatusCode.UNSET
    assert_child_of(spans["publish"][0], second)
    [record] = await read_topic(kafka_bootstrap, topic, expect=1)
    assert event_of(record)["traceparent"] == traceparent_of(second)
    assert dict(record.headers)["traceparent"] == traceparent_of(second).encode()


async def test_tracing_off_writes_records_and_log_lines_as_before(
    aiohttp_client: Any,
    kafka_bootstrap: str,
    topic: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="relay.http")
    exporter = InMemorySpanExporter()
    config = make_config(bootstrap=kafka_bootstrap, topic=topic, var=tmp_path)
    relay = await start_traced(aiohttp_client, config, exporter)

    assert (await relay.post(signed_webhook(config))).status == 200

    assert exporter.get_finished_spans() == ()
    [record] = await read_topic(kafka_bootstrap, topic, expect=1)
    assert "traceparent" not in event_of(record)
    assert "traceparent" not in dict(record.headers)
    [line] = webhook_lines(caplog)
    assert not hasattr(line, "trace_id")


async def test_sample_ratio_zero_records_no_span_and_still_publishes(
    aiohttp_client: Any, kafka_bootstrap: str, topic: str, tmp_path: Path
) -> None:
    exporter = InMemorySpanExporter()
    config = traced(
        make_config(bootstrap=kafka_bootstrap, topic=topic, var=tmp_path), sample_ratio=0.0
    )
    relay = await start_traced(aiohttp_client, config, exporter)

    assert (await relay.post(signed_webhook(config))).status == 200

    assert exporter.get_finished_spans() == ()
    [record] = await read_topic(kafka_bootstrap, topic, expect=1)
    # Not sampled, still a trace context: its sampled flag (bit 0) is clear, so a consumer
    # that follows Relay's sampling records nothing either.
    flags = event_of(record)["traceparent"].rsplit("-", 1)[1]
    assert int(flags, 16) & 1 == 0


# Serves one signed webhook through the aiohttp app, Kafka unreachable (it is spooled), then
# prints whether anything of OpenTelemetry was imported.
_SERVE_ONE = """
import asyncio, dataclasses, sys
from aiohttp.test_utils import TestClient, TestServer
from relay.app import build_app
from relay.settings import TracingConfig
from tests.conftest import make_config, signed_webhook
from pathlib import Path

async def main(var, enabled):
    config = make_config(
        bootstrap="127.0.0.1:9", topic="t", var=Path(var), create_topics=False,
        server={"shutdown_grace_s": 0.2},  # the spool keeps the webhook: no drain to wait for
    )
    config = dataclasses.replace(config, tracing=TracingConfig(enabled=enabled))
    async with TestClient(TestServer(build_app(config))) as client:
        webhook = signed_webhook(config)
        response = await client.post(webhook.path, data=webhook.body, headers=webhook.headers)
        assert response.status == 200, response.status

asyncio.run(main(sys.argv[1], sys.argv[2] == "on"))
print(sorted({m.split('.')[0] for m in sys.modules if m.startswith('opentelemetry')}))
"""


@pytest.mark.parametrize(("tracing", "loaded"), [("off", "[]"), ("on", "['opentelemetry']")])
def test_tracing_off_imports_nothing_of_opentelemetry(
    tmp_path: Path, tracing: str, loaded: str
) -> None:
    result = subprocess.run(
        [sys.executable, "-c", _SERVE_ONE, str(tmp_path), tracing],
        capture_output=True,
        text=True,
        cwd=Path(__file__).parent.parent,
        # OTLP has nowhere to go here: the exporter's retries must not hold the exit.
        env={"OTEL_EXPORTER_OTLP_TIMEOUT": "1", **_environment()},
        timeout=60,
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == loaded


def runtime_imports(node: ast.AST) -> Iterator[str]:
    """Modules a file imports when it runs: not those under ``if TYPE_CHECKING:``."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and ast.unparse(child.test) == "TYPE_CHECKING":
            for branch in child.orelse:
                yield from runtime_imports(branch)
            continue
        if isinstance(child, ast.Import):
            yield from (alias.name for alias in child.names)
        elif isinstance(child, ast.ImportFrom) and child.level == 0:
            yield child.module or ""
        yield from runtime_imports(child)


def test_relay_otel_is_the_only_module_that_imports_opentelemetry() -> None:
    importers = {
        path.name
        for path in (Path(__file__).parent.parent / "relay").rglob("*.py")
        for module in runtime_imports(ast.parse(path.read_text(), str(path)))
        if module.split(".")[0] == "opentelemetry"
    }

    assert importers == {"otel.py"}


def _environment() -> dict[str, str]:
    import os

    return {name: value for name, value in os.environ.items() if not name.startswith("OTEL_")}


def test_check_config_says_in_one_line_that_tracing_needs_the_extra(tmp_path: Path) -> None:
    path = tmp_path / "relay.toml"
    path.write_text(
        "[tracing]\nenabled = true\n\n"
        f'[spool]\npath = "{tmp_path / "spool"}"\n\n'
        '[dedup]\nbackend = "memory"\n\n'
        f'[providers.invoices]\nprofile = "usdt-invoice"\nsecrets = ["{INVOICE_SECRET}"]\n'
    )
    # As if the extra were not installed: importing opentelemetry fails.
    code = (
        "import sys; sys.modules['opentelemetry'] = None; "
        "from relay.cli import main; sys.exit(main(['check-config', sys.argv[1]]))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=60
    )

    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "config error: tracing.enabled: tracing is on but OpenTelemetry is not installed: "
        "pip install 'webhook-relay[tracing]', or set enabled = false"
    ]


def test_check_config_says_where_spans_go_without_a_password(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "relay.toml"
    path.write_text(
        "[tracing]\nenabled = true\nsample_ratio = 0.25\n\n"
        '[kafka]\nbootstrap_servers = "127.0.0.1:9"\n\n'
        f'[spool]\npath = "{tmp_path / "spool"}"\n\n'
        '[dedup]\nbackend = "memory"\n\n'
        f'[providers.invoices]\nprofile = "usdt-invoice"\nsecrets = ["{INVOICE_SECRET}"]\n'
    )
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "https://user:hunter2@collector:4318/")
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", raising=False)

    assert main(["check-config", str(path)]) == 0

    out = capsys.readouterr().out
    assert (
        "tracing: on, 25% of webhooks recorded, spans to "
        "https://***@collector:4318/v1/traces (OTEL_EXPORTER_OTLP_ENDPOINT)"
    ) in out.splitlines()
    assert "hunter2" not in out


@pytest.mark.parametrize(
    ("section", "key"),
    [
        ({"sample_ratio": 1.5}, "tracing.sample_ratio"),
        ({"sample_ratio": -0.1}, "tracing.sample_ratio"),
        ({"service_name": " "}, "tracing.service_name"),
        ({"enabled": "yes"}, "tracing.enabled"),
        ({"endpoint": "http://collector:4318"}, "tracing.endpoint"),
    ],
)
def test_bad_tracing_settings_name_the_key(
    tmp_path: Path, section: dict[str, Any], key: str
) -> None:
    document = {
        "tracing": section,
        "spool": {"path": str(tmp_path / "spool")},
        "providers": {"invoices": {"profile": "usdt-invoice", "secrets": [INVOICE_SECRET]}},
    }
    with pytest.raises(ConfigError) as raised:
        parse_config(document, env={})
    assert raised.value.key == key


def test_tracing_is_off_by_default(tmp_path: Path) -> None:
    config = make_config(bootstrap="127.0.0.1:9", topic="t", var=tmp_path, create_topics=False)
    assert config.tracing == TracingConfig(enabled=False, service_name="relay", sample_ratio=1.0)

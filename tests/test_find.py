"""``relay find`` on real brokers: by order, id and provider, over a window, across the
events and dead-letter topics.

Webhooks go through an in-process Relay where what matters is the path a real
webhook takes; the window tests write records with chosen receive times through
the same record builders Relay uses, and the command-line tests run ``relay
find`` as a process for its output and exit codes.
"""

from __future__ import annotations

import io
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from relay.config import Config
from relay.deadletter import dead_letter_record, make_dead_letter
from relay.find import CLOCK_MARGIN, FindQuery, FindResult, find
from relay.kafka import KafkaSink
from relay.providers import usdt_invoice
from relay.records import KafkaRecord, to_kafka_record
from schemas.event import Message, NormalizeContext
from schemas.payload import parse_payload
from tests.conftest import (
    INVOICE_SECRET,
    TestBroker,
    event_of,
    make_config,
    read_topic,
    signed_webhook,
    start_relay,
)
from tests.poison import (
    ESCAPES,
    assert_inert,
    skipped_lines,
    unreadable_events,
    unreadable_letters,
)
from tests.relay_process import run_relay, unused_port

GOLDEN = Path(__file__).parent / "golden"
HOUR = timedelta(hours=1)


def _providers() -> dict[str, Any]:
    invoices = {"profile": "usdt-invoice", "secrets": [INVOICE_SECRET]}
    return {"invoices": invoices, "invoices-b": dict(invoices)}


def _invoice(order: str, status: str, amount: str = "12.50") -> bytes:
    return orjson.dumps(
        {
            "invoice_reference": order,
            "status": status,
            "asset_code": "USDT_TRC20",
            "amount_usdt_exact": amount,
        }
    )


async def _find(config: Config, **criteria: Any) -> tuple[FindResult, str]:
    """``find`` over the last 24 hours (unless ``since`` is given), and what it said on stderr."""
    err = io.StringIO()
    criteria.setdefault("since", datetime.now(UTC) - timedelta(hours=24))
    result = await find(config, FindQuery(**criteria), err=err, idle_s=0.5)
    return result, err.getvalue()


def _found(result: FindResult) -> list[tuple[str, str, str | None]]:
    return [(match.kind.value, match.provider, match.order_id) for match in result.matches]


async def test_find_by_order_id_and_provider_across_events_and_dead_letters(
    aiohttp_client: Any, kafka_bootstrap: str, topic: str, tmp_path: Path
) -> None:
    config = make_config(
        bootstrap=kafka_bootstrap, topic=topic, var=tmp_path, providers=_providers()
    )
    relay = await start_relay(aiohttp_client, config)
    webhooks = [
        ("invoices", _invoice("ORD-1", "confirmed"), "wh-1"),
        ("invoices", _invoice("ORD-1", "refunded"), "wh-2"),  # unknown status: a dead letter
        ("invoices", _invoice("ORD-2", "confirmed"), "wh-3"),
        ("invoices-b", _invoice("ORD-1", "pending"), "wh-4"),  # the same order id elsewhere
    ]
    for provider, body, webhook_id in webhooks:
        webhook = signed_webhook(config, provider, body=body, headers={"X-Webhook-Id": webhook_id})
        assert (await relay.post(webhook)).status == 200
    await read_topic(kafka_bootstrap, topic, expect=3)
    [letter] = await read_topic(kafka_bootstrap, config.kafka.dead_letter_topic, expect=1)
    letter_id = orjson.loads(letter.value)["id"]

    by_order, err = await _find(config, order="ORD-1")
    assert sorted(_found(by_order)) == [
        ("dead-letter", "invoices", "ORD-1"),
        ("event", "invoices", "ORD-1"),
        ("event", "invoices-b", "ORD-1"),
    ]
    assert err == ""
    assert by_order.read == {topic: 3, config.kafka.dead_letter_topic: 1}
    # Received in the order posted, and shown in that order.
    assert [match.id for match in by_order.matches] == ["wh-1", letter_id, "wh-4"]
    event, dead, _ = by_order.matches
    assert (event.type, event.amount, event.asset, event.topic) == (
        "payment.payin.succeeded",
        "12.50",
        "USDT",
        topic,
    )
    assert (dead.reason, dead.attempts, dead.type, dead.amount) == ("unknown_status", 1, None, None)
    assert (dead.topic, dead.partition, dead.offset) == (
        letter.topic,
        letter.partition,
        letter.offset,
    )

    one_provider, _ = await _find(config, order="ORD-1", provider="invoices")
    assert sorted(_found(one_provider)) == [
        ("dead-letter", "invoices", "ORD-1"),
        ("event", "invoices", "ORD-1"),
    ]
    by_provider, _ = await _find(config, provider="invoices-b")
    assert _found(by_provider) == [("event", "invoices-b", "ORD-1")]
    by_event_id, _ = await _find(config, id="wh-3")
    assert _found(by_event_id) == [("event", "invoices", "ORD-2")]
    by_letter_id, _ = await _find(config, id=letter_id)
    assert _found(by_letter_id) == [("dead-letter", "invoices", "ORD-1")]
    nothing, _ = await _find(config, order="ORD-404")
    assert nothing.matches == []
    assert "nothing found" in nothing.summary(FindQuery(since=datetime.now(UTC)))


def _event_record(config: Config, order: str, received_at: datetime) -> KafkaRecord:
    body = _invoice(order, "confirmed")
    context = NormalizeContext(provider="invoices", profile="usdt-invoice", received_at=received_at)
    event = usdt_invoice.normalize(Message(body, parse_payload(body)), context)
    return to_kafka_record(event, config.kafka.topic)


def _letter_record(config: Config, order: str, received_at: datetime) -> KafkaRecord:
    letter = make_dead_letter(
        provider="invoices",
        profile="usdt-invoice",
        reason="unknown_status",
        message="the status 'refunded' in 'status' is not a known status",
        received_at=received_at,
        headers={},
        body=_invoice(order, "refunded"),
    )
    return dead_letter_record(letter, config.kafka.dead_letter_topic)


async def _publish(config: Config, records: list[KafkaRecord]) -> None:
    sink = KafkaSink(config.kafka)
    await sink.start()
    try:
        assert await sink.wait_connected(10)
        for record in records:
            await sink.send(record)
    finally:
        await sink.stop()


async def test_the_window_is_when_relay_received_the_webhook(
    tansu: TestBroker, topic: str, tmp_path: Path
) -> None:
    config = make_config(bootstrap=tansu.bootstrap_servers, topic=topic, var=tmp_path)
    now = datetime.now(UTC).replace(microsecond=0)
    # Written now, received earlier: as a replay or a spool drain writes them.
    received = {
        "ORD-OLD": now - 25 * HOUR,
        "ORD-EDGE": now - 3 * HOUR,
        "ORD-NEW": now - 1 * HOUR,
    }
    await _publish(
        config,
        [_event_record(config, order, at) for order, at in received.items()]
        + [_letter_record(config, order, at) for order, at in received.items()],
    )

    def orders(result: FindResult) -> list[tuple[str, str | None]]:
        return [(match.kind.value, match.order_id) for match in result.matches]

    last_day, _ = await _find(config, provider="invoices")  # the default window: 24 hours
    assert orders(last_day) == [
        ("dead-letter", "ORD-EDGE"),
        ("event", "ORD-EDGE"),
        ("dead-letter", "ORD-NEW"),
        ("event", "ORD-NEW"),
    ]
    # since inclusive, until exclusive, to the millisecond.
    edges, _ = await _find(
        config, provider="invoices", since=received["ORD-EDGE"], until=received["ORD-NEW"]
    )
    assert orders(edges) == [("dead-letter", "ORD-EDGE"), ("event", "ORD-EDGE")]
    just_after, _ = await _find(
        config,
        provider="invoices",
        since=received["ORD-EDGE"] + timedelta(milliseconds=1),
        until=received["ORD-NEW"] + timedelta(milliseconds=1),
    )
    assert orders(just_after) == [("dead-letter", "ORD-NEW"), ("event", "ORD-NEW")]
    older, _ = await _find(config, order="ORD-OLD", since=now - 26 * HOUR)
    assert orders(older) == [("dead-letter", "ORD-OLD"), ("event", "ORD-OLD")]


@pytest.mark.apache_kafka
async def test_reading_starts_where_the_window_does(
    apache_kafka_broker: TestBroker, topic: str, tmp_path: Path
) -> None:
    """Apache Kafka looks offsets up by time: records written days before the window are
    never fetched (tansu answers by its own append time, so there they would be)."""
    config = make_config(bootstrap=apache_kafka_broker.bootstrap_servers, topic=topic, var=tmp_path)
    days_ago = datetime.now(UTC) - timedelta(days=3)
    old = [_event_record(config, f"ORD-OLD-{i}", days_ago) for i in range(40)]
    producer = AIOKafkaProducer(bootstrap_servers=config.kafka.bootstrap_servers, acks="all")
    await producer.start()
    try:
        for record in old:
            # Each partition's timestamps as a Relay running three days ago wrote them.
            await producer.send_and_wait(
                record.topic,
                record.value,
                key=record.key,
                headers=list(record.headers),
                timestamp_ms=int(days_ago.timestamp() * 1000),
            )
    finally:
        await producer.stop()
    recent = datetime.now(UTC) - HOUR
    await _publish(config, [_event_record(config, f"ORD-NEW-{i}", recent) for i in range(3)])

    result, _ = await _find(config, provider="invoices")
    assert [match.order_id for match in result.matches] == [f"ORD-NEW-{i}" for i in range(3)]
    assert result.read[topic] == 3
    whole, _ = await _find(config, provider="invoices", since=days_ago - CLOCK_MARGIN)
    assert len(whole.matches) == 43
    assert whole.read[topic] == 43


def _config_file(config: Config, folder: Path) -> Path:
    path = folder / "find.toml"
    path.write_text(
        f"""
[kafka]
bootstrap_servers = "{config.kafka.bootstrap_servers}"
topic = "{config.kafka.topic}"
idempotence = false

[providers.invoices]
profile = "usdt-invoice"
secrets = ["{INVOICE_SECRET}"]
"""
    )
    return path


async def test_the_command_prints_matches_and_exits_by_what_it_found(
    aiohttp_client: Any, tansu: TestBroker, topic: str, tmp_path: Path
) -> None:
    config = make_config(bootstrap=tansu.bootstrap_servers, topic=topic, var=tmp_path)
    relay = await start_relay(aiohttp_client, config)
    for body in (_invoice("ORD-CLI", "confirmed"), _invoice("ORD-CLI", "refunded")):
        assert (await relay.post(signed_webhook(config, body=body))).status == 200
    # Not Relay's, but keyed like an event of the order looked for: read, named, skipped.
    await _publish(config, [KafkaRecord(topic, b"invoices:ORD-CLI", b"not an event", ())])
    [published] = [
        event_of(record)
        for record in await read_topic(tansu.bootstrap_servers, topic, expect=2)
        if record.value != b"not an event"
    ]
    await read_topic(tansu.bootstrap_servers, config.kafka.dead_letter_topic, expect=1)
    config_file = str(_config_file(config, tmp_path))

    found = run_relay("find", "--config", config_file, "--order", "ORD-CLI", env={})
    assert found.returncode == 0, found.stderr
    header, event_line, letter_line = found.stdout.splitlines()
    assert header.split() == [
        "received_at", "kind", "provider", "type", "/", "reason", "id", "order", "at"
    ]  # fmt: skip
    assert event_line.split()[:6] == [
        published["relayreceivedat"],
        "event",
        "invoices",
        "payment.payin.succeeded",
        published["id"],
        "ORD-CLI",
    ]
    assert letter_line.split()[1:4] == ["dead-letter", "invoices", "unknown_status"]
    assert re.fullmatch(r"\d+@\d+", letter_line.split()[-1])
    complaint, summary = found.stderr.splitlines()
    assert re.fullmatch(
        rf"{topic}/\d+@\d+: not a Relay event: header content-type is missing \(.*\)", complaint
    )
    assert re.fullmatch(
        r"2 found \(1 event, 1 dead letter\) received \S+Z \.\. now; read 2 records of "
        rf"{topic}, 1 record of {topic}\.dlq; 1 foreign record skipped",
        summary,
    )

    as_json = run_relay("find", "--config", config_file, "--order", "ORD-CLI", "--json", env={})
    assert as_json.returncode == 0, as_json.stderr
    documents = [json.loads(line) for line in as_json.stdout.splitlines()]
    event_document = {
        "received_at": published["relayreceivedat"],
        "kind": "event",
        "provider": "invoices",
        "type": "payment.payin.succeeded",
        "reason": None,
        "id": published["id"],
        "order_id": "ORD-CLI",
        "amount": "12.50",
        "asset": "USDT",
        "attempts": None,
        "topic": topic,
    }
    assert {key: documents[0][key] for key in event_document} == event_document
    assert documents[1]["kind"] == "dead-letter"
    assert (documents[1]["reason"], documents[1]["attempts"]) == ("unknown_status", 1)
    for document in documents:
        assert isinstance(document["partition"], int) and isinstance(document["offset"], int)

    nothing = run_relay("find", "--config", config_file, "--order", "ORD-NONE", env={})
    assert (nothing.returncode, nothing.stdout) == (1, "")
    assert nothing.stderr.startswith("nothing found received ")


def test_usage_and_unreachable_kafka_are_one_line_and_exit_2(tmp_path: Path) -> None:
    config = make_config(
        bootstrap=f"127.0.0.1:{unused_port()}", topic="payments.events", var=tmp_path
    )
    config_file = str(_config_file(config, tmp_path))

    def relay_find(*args: str) -> tuple[int, str]:
        done = run_relay("find", "--config", config_file, *args, env={})
        assert done.stdout == ""
        assert len(done.stderr.splitlines()) == 1, done.stderr
        return done.returncode, done.stderr.strip()

    assert relay_find() == (
        2,
        "relay find: say what to find: --order ID, --id ID or --provider NAME",
    )
    assert relay_find("--order", "") == (2, "relay find: --order is empty")
    code, said = relay_find("--order", "A", "--since", "2026-01-02", "--until", "2026-01-01")
    assert (code, said) == (
        2,
        "relay find: --since 2026-01-02T00:00:00Z is not before --until 2026-01-01T00:00:00Z",
    )
    code, said = relay_find("--order", "A")
    assert code == 2
    assert said.startswith(f"relay find: kafka: {config.kafka.bootstrap_servers}: ")
    missing = run_relay("find", "--config", str(tmp_path / "nope.toml"), "--order", "A", env={})
    assert missing.returncode == 2
    assert missing.stderr.startswith("config error: ")


async def test_the_command_passes_over_poison_and_prints_escapes_inert(
    aiohttp_client: Any, tansu: TestBroker, topic: str, tmp_path: Path
) -> None:
    """An order id holding terminal escapes (the provider writes it) is shown escaped, and
    records neither decoder can read, keyed as candidates, are each named and skipped."""
    config = make_config(bootstrap=tansu.bootstrap_servers, topic=topic, var=tmp_path)
    relay = await start_relay(aiohttp_client, config)
    order = f"ORD-{ESCAPES}"
    for body in (_invoice(order, "confirmed"), _invoice(order, "refunded")):
        assert (await relay.post(signed_webhook(config, body=body))).status == 200
    events = unreadable_events(topic, b"invoices:ORD-1")
    letters = unreadable_letters(config.kafka.dead_letter_topic)
    await _publish(config, [*events.values(), *letters.values()])
    await read_topic(tansu.bootstrap_servers, topic, expect=1 + len(events))
    config_file = str(_config_file(config, tmp_path))

    found = run_relay("find", "--config", config_file, "--provider", "invoices", env={})
    assert found.returncode == 0, found.stderr
    assert_inert(found.stdout, found.stderr)
    _, event_line, letter_line = found.stdout.splitlines()
    shown = "ORD-\\x1b]0;pwned\\x07\\x1b[2J\\x1b]52;c;cm0gLXJmIH4=\\x07\\x9b31m\\u202e"
    assert event_line.split()[1:3] + event_line.split()[-2:-1] == ["event", "invoices", shown]
    assert letter_line.split()[1:4] == ["dead-letter", "invoices", "unknown_status"]
    assert len(skipped_lines(found.stderr, topic, "event")) == len(events)
    dead_letter_topic = config.kafka.dead_letter_topic
    assert len(skipped_lines(found.stderr, dead_letter_topic, "dead letter")) == len(letters)
    skipped = len(events) + len(letters)
    assert found.stderr.splitlines()[-1].endswith(f"; {skipped} foreign records skipped")

    as_json = run_relay("find", "--config", config_file, "--provider", "invoices", "--json", env={})
    assert as_json.returncode == 0, as_json.stderr
    assert_inert(as_json.stdout)
    assert [json.loads(line)["order_id"] for line in as_json.stdout.splitlines()] == [order] * 2

    # Nothing readable matches: still "nothing found" (1), never a crash.
    nothing = run_relay("find", "--config", config_file, "--order", "ORD-1", env={})
    assert (nothing.returncode, nothing.stdout) == (1, ""), nothing.stderr
    assert len(skipped_lines(nothing.stderr, topic, "event")) == len(events)

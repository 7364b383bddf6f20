"""Relay on Apache Kafka where it enforces what the dev broker does not.

Production defaults and production faults, on the session's Apache Kafka
(``apache_kafka_broker`` in conftest: auto-creation off, ``message.max.bytes``
at its default, a durable log):

- idempotent producer (Relay's default): one record per webhook, as DESIGN 3 says;
- ``kill -9`` of the broker in the middle of a stream: every acknowledged
  webhook is on the topic once the spool drains;
- the broker killed while nothing is sent: ``/readyz`` says so, and when it is back;
- a missing topic: not ready, named in the log and by ``relay check-config``,
  events spooled and published once it exists;
- an event larger than the broker accepts: 413 before any acknowledgement.
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonschema
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from relay.cli import main as relay_cli
from relay.pipeline import Inbound, normalize
from relay.records import to_kafka_record
from tests.conftest import (
    INVOICE_SECRET,
    RelayUnderTest,
    SignedWebhook,
    TestBroker,
    event_of,
    make_config,
    read_topic,
    report_apache_kafka_note,
    signed_webhook,
    start_relay,
)

pytestmark = pytest.mark.apache_kafka

SCHEMA = json.loads(
    (Path(__file__).parent.parent / "schemas" / "payment-event.schema.json").read_text()
)
MIB = 1024 * 1024
# usdt-invoice's own limit is 64 KiB: raised (with the server's) for the events near 1 MiB.
LARGE_INVOICES = {
    "invoices": {"profile": "usdt-invoice", "secrets": [INVOICE_SECRET], "max_body_bytes": 4 * MIB}
}


async def wait_until_drained(relay: RelayUnderTest, timeout_s: float = 60.0) -> None:
    """Until the spool holds nothing: every spooled event has reached Kafka."""
    deadline = time.monotonic() + timeout_s
    while relay.services.spool.contains_pending():
        assert time.monotonic() < deadline, (
            f"the spool still holds {relay.services.spool.depth} events"
        )
        await asyncio.sleep(0.1)


async def readiness(relay: RelayUnderTest) -> tuple[int, dict[str, Any]]:
    response = await relay.client.get("/readyz")
    return response.status, await response.json()


async def metric(relay: RelayUnderTest, name: str, **labels: str) -> float:
    """A counter of the invoices instance from ``/metrics`` (the registry is per process)."""
    text = await (await relay.client.get("/metrics")).text()
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and sample.labels == {"provider": "invoices", **labels}
    )


async def test_idempotent_producer_publishes_each_webhook_once(
    aiohttp_client: Any, apache_kafka_broker: TestBroker, topic: str, tmp_path: Path
) -> None:
    config = make_config(bootstrap=apache_kafka_broker.bootstrap_servers, topic=topic, var=tmp_path)
    assert config.kafka.idempotence is True  # the production default, which tansu cannot grant
    relay = await start_relay(aiohttp_client, config)
    webhooks = [signed_webhook(config, order=f"ORDER-{n}") for n in range(20)]
    for webhook in webhooks:
        assert (await relay.post(webhook)).status == 200
    # A provider's retries of the first five change nothing.
    retries = await asyncio.gather(*(relay.post(webhook) for webhook in webhooks[:5]))
    assert [response.status for response in retries] == [200] * 5

    records = await read_topic(config.kafka.bootstrap_servers, topic, expect=20, settle_s=1.0)

    assert sorted(event_of(record)["id"] for record in records) == sorted(
        webhook.headers["X-Webhook-Id"] for webhook in webhooks
    )
    for record in records:
        event = event_of(record)
        jsonschema.validate(event, SCHEMA)
        assert record.key == f"invoices:{event['subject']}".encode()
        headers = dict(record.headers)
        assert headers["content-type"] == b"application/cloudevents+json"
        assert headers["relay_id"] == event["id"].encode()
        assert headers["relay_type"] == event["type"].encode() == b"payment.payin.succeeded"
        assert headers["relay_source"] == b"relay/invoices"
    assert relay.services.spool.depth == 0


async def test_broker_killed_mid_stream_loses_no_acknowledged_webhook(
    aiohttp_client: Any, apache_kafka_broker: TestBroker, topic: str, tmp_path: Path
) -> None:
    kafka = apache_kafka_broker.apache_kafka
    assert kafka is not None
    total, kill_after, concurrency = 300, 100, 10
    # A provider timeout of 2 s gives a 1 s ack budget: while the broker is
    # down, events go to the spool instead of waiting for it.
    providers = {
        "invoices": {"profile": "usdt-invoice", "secrets": [INVOICE_SECRET], "timeout_s": 2}
    }
    config = make_config(
        bootstrap=apache_kafka_broker.bootstrap_servers,
        topic=topic,
        var=tmp_path,
        providers=providers,
    )
    relay = await start_relay(aiohttp_client, config)
    webhooks = [signed_webhook(config, order=f"ORDER-{n}") for n in range(total)]
    statuses: dict[str, int] = {}
    slots = asyncio.Semaphore(concurrency)
    posting = 0
    spooled_before = await metric(relay, "relay_webhooks_total", outcome="spooled")

    async def deliver(webhook: SignedWebhook) -> None:
        nonlocal posting
        async with slots:
            posting += 1
            response = await relay.post(webhook)
            posting -= 1
            statuses[webhook.headers["X-Webhook-Id"]] = response.status

    async def crash_and_restart() -> int:
        """SIGKILL while webhooks are in flight; return how many were."""
        # Completions come in bursts (one produce request acknowledges several
        # records): poll for a moment inside a burst, not between two.
        while len(statuses) < kill_after or posting == 0:
            await asyncio.sleep(0.001)
        in_flight = posting
        kafka.kill()  # no controlled shutdown: in-flight produce requests get no answer
        # In a thread: Relay keeps taking webhooks while the JVM comes back.
        await asyncio.to_thread(kafka.start)
        return in_flight

    try:
        in_flight_at_kill, *_ = await asyncio.gather(
            crash_and_restart(), *(deliver(webhook) for webhook in webhooks)
        )
    finally:
        if not kafka.running:
            kafka.start()  # the rest of the session needs its broker
    still_spooled = relay.services.spool.depth
    spooled = await metric(relay, "relay_webhooks_total", outcome="spooled") - spooled_before
    await wait_until_drained(relay)

    acknowledged = {event_id for event_id, status in statuses.items() if status == 200}
    records = await read_topic(
        config.kafka.bootstrap_servers, topic, expect=len(acknowledged), settle_s=2.0, timeout_s=60
    )
    copies = collections.Counter(event_of(record)["id"] for record in records)
    duplicates = sum(count - 1 for count in copies.values())
    report_apache_kafka_note(
        f"kill -9 mid-stream ({in_flight_at_kill} webhooks in flight): {len(acknowledged)} of "
        f"{total} acknowledged, {spooled:.0f} of them from the spool ({still_spooled} still "
        f"spooled once the broker was back), {len(records)} records on the topic, "
        f"{len(copies)} distinct events, {duplicates} duplicates"
    )
    assert collections.Counter(statuses.values()) == {200: total}
    assert spooled > 0, "the broker was down longer than the ack budget: some must have spooled"
    assert set(copies) == acknowledged
    assert duplicates == 0, f"{duplicates} events were published twice: {copies.most_common(3)}"


async def test_readyz_notices_the_broker_killed_while_nothing_is_sent(
    aiohttp_client: Any, apache_kafka_broker: TestBroker, topic: str, tmp_path: Path
) -> None:
    """With no webhook arriving no send fails: the broker watch (``[kafka]
    readiness_check_s``) is what tells ``/readyz`` that the broker is gone, and back."""
    kafka = apache_kafka_broker.apache_kafka
    assert kafka is not None
    config = make_config(bootstrap=apache_kafka_broker.bootstrap_servers, topic=topic, var=tmp_path)
    relay = await start_relay(aiohttp_client, config)
    assert (await readiness(relay))[1]["kafka"]["connected"] is True

    try:
        kafka.kill()
        status, lost = await _readiness_when(relay, lambda ready: not ready["kafka"]["connected"])
    finally:
        await asyncio.to_thread(kafka.start)  # the rest of the session needs its broker
    assert (lost["kafka"]["connected"], lost["kafka"]["error"]) == (False, "broker not answering")
    assert status == 200  # the spool takes webhooks meanwhile
    status, back = await _readiness_when(relay, lambda ready: ready["kafka"]["connected"])
    assert (status, back["kafka"]["connected"], back["kafka"]["error"]) == (200, True, None)


async def _readiness_when(
    relay: RelayUnderTest, condition: Callable[[dict[str, Any]], bool], timeout_s: float = 90.0
) -> tuple[int, dict[str, Any]]:
    """The first ``/readyz`` answer whose document meets ``condition`` (a generous wait-until)."""
    deadline = time.monotonic() + timeout_s
    while True:
        status, ready = await readiness(relay)
        if condition(ready) or time.monotonic() > deadline:
            return status, ready
        await asyncio.sleep(0.1)


async def test_missing_topic_spools_until_it_exists(
    aiohttp_client: Any,
    apache_kafka_broker: TestBroker,
    topic: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.INFO, logger="relay.kafka")
    config = make_config(
        bootstrap=apache_kafka_broker.bootstrap_servers,
        topic=topic,
        var=tmp_path,
        create_topics=False,
    )
    dead_letters = config.kafka.dead_letter_topic
    config_file = tmp_path / "relay.toml"
    config_file.write_text(
        "[kafka]\n"
        f'bootstrap_servers = "{config.kafka.bootstrap_servers}"\n'
        f'topic = "{topic}"\n'
        "[providers.invoices]\n"
        'profile = "usdt-invoice"\n'
        f'secrets = ["{INVOICE_SECRET}"]\n'
    )
    relay = await start_relay(aiohttp_client, config)

    status, document = await readiness(relay)
    assert status == 503
    assert document["ready"] is False
    assert document["kafka"]["missing_topics"] == sorted([topic, dead_letters])
    named = [r for r in caplog.records if r.name == "relay.kafka" and r.levelno == logging.ERROR]
    assert named and topic in named[0].getMessage()
    assert sorted(vars(named[0])["topics"]) == sorted([topic, dead_letters])

    assert await asyncio.to_thread(relay_cli, ["check-config", str(config_file)]) == 1
    complaint = capsys.readouterr().err
    assert f"topic {topic!r} does not exist" in complaint
    assert f"topic {dead_letters!r} does not exist" in complaint

    webhooks = [signed_webhook(config, order=f"ORDER-{n}") for n in range(5)]
    for webhook in webhooks:
        assert (await relay.post(webhook)).status == 200
    assert relay.services.spool.depth == 5  # acknowledged because spooled: nothing sent yet

    apache_kafka_broker.create_topic(topic)
    apache_kafka_broker.create_topic(dead_letters)
    await wait_until_drained(relay)

    status, document = await readiness(relay)
    assert (status, document["kafka"]["missing_topics"]) == (200, [])
    assert await asyncio.to_thread(relay_cli, ["check-config", str(config_file)]) == 0
    records = await read_topic(config.kafka.bootstrap_servers, topic, expect=5, settle_s=1.0)
    assert sorted(event_of(record)["id"] for record in records) == sorted(
        webhook.headers["X-Webhook-Id"] for webhook in webhooks
    )


async def test_oversized_event_is_refused_before_any_acknowledgement(
    aiohttp_client: Any, apache_kafka_broker: TestBroker, topic: str, tmp_path: Path
) -> None:
    # The body limit is set above the broker's 1 MiB so that the event's own size decides.
    config = make_config(
        bootstrap=apache_kafka_broker.bootstrap_servers,
        topic=topic,
        var=tmp_path,
        server={"max_body_bytes": 4 * MIB},
        providers=LARGE_INVOICES,
    )
    assert config.kafka.max_message_bytes == MIB  # Kafka's default message.max.bytes
    relay = await start_relay(aiohttp_client, config)
    sample = orjson.loads(signed_webhook(config, order="ORDER-BIG").body)
    oversized = signed_webhook(
        config, body=orjson.dumps({**sample, "memo": "x" * (MIB + 1024)}), order="ORDER-BIG"
    )
    before = await metric(relay, "relay_webhooks_rejected_total", reason="event_too_large")

    response = await relay.post(oversized)

    assert response.status == 413
    error = await response.json()
    assert error["error"] == "event_too_large"
    assert f"over the broker's limit of {MIB} bytes" in error["message"]
    assert (
        await metric(relay, "relay_webhooks_rejected_total", reason="event_too_large") == before + 1
    )
    # Refused, not acknowledged: nothing spooled, nothing dead-lettered, and the
    # next webhook goes through as usual.
    assert relay.services.spool.depth == 0
    small = signed_webhook(config, order="ORDER-SMALL")
    assert (await relay.post(small)).status == 200
    [record] = await read_topic(config.kafka.bootstrap_servers, topic, expect=1, settle_s=1.0)
    assert event_of(record)["id"] == small.headers["X-Webhook-Id"]
    assert (
        await read_topic(
            config.kafka.bootstrap_servers,
            config.kafka.dead_letter_topic,
            expect=0,
            settle_s=0.5,
            timeout_s=2,
        )
        == []
    )


async def test_an_event_just_under_the_limit_is_taken_by_the_broker(
    aiohttp_client: Any, apache_kafka_broker: TestBroker, topic: str, tmp_path: Path
) -> None:
    """Relay's size check counts the record batch framing as the broker does: an event that
    Relay lets through is one Apache Kafka accepts, not one it refuses after the check."""
    config = make_config(
        bootstrap=apache_kafka_broker.bootstrap_servers,
        topic=topic,
        var=tmp_path,
        server={"max_body_bytes": 4 * MIB},
        providers=LARGE_INVOICES,
    )
    instance = config.providers["invoices"]
    relay = await start_relay(aiohttp_client, config)
    sample = orjson.loads(signed_webhook(config, order="ORDER-EDGE").body)
    webhook_id = "wh-edge-0001"

    def size_with(memo_bytes: int) -> int:
        body = orjson.dumps({**sample, "memo": "x" * memo_bytes})
        # Milliseconds in relayreceivedat, as almost every real receive time has.
        moment = datetime(2026, 1, 1, 0, 0, 0, 123000, tzinfo=UTC)
        event = normalize(Inbound(instance, body, {"x-webhook-id": webhook_id}, moment))
        return to_kafka_record(event, topic).size

    memo = MIB - 2048
    memo += config.kafka.max_message_bytes - 8 - size_with(memo)  # 8 bytes under the limit
    body = orjson.dumps({**sample, "memo": "x" * memo})
    response = await relay.post(
        signed_webhook(config, body=body, headers={"X-Webhook-Id": webhook_id})
    )

    assert response.status == 200, await response.text()
    [record] = await read_topic(config.kafka.bootstrap_servers, topic, expect=1, settle_s=1.0)
    assert event_of(record)["id"] == webhook_id
    assert relay.services.spool.depth == 0

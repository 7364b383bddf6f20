"""Relay's records read through the official CloudEvents Python SDK (``cloudevents``, pinned).

Signed webhooks go through a running Relay to a real broker; the records are
read back and handed, as a consumer would, to the SDK's documented Kafka calls:
``from_kafka`` (2.x: picks the content mode by itself), its convenience twin
``from_kafka_event``, and the 1.x API that 2.x still ships as
``cloudevents.v1.kafka``. The SDK must see a structured-mode event: the
event's own id, type, source and time, and ``data`` the canonical payment data.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

from cloudevents.core.bindings.kafka import KafkaMessage, from_kafka, from_kafka_event
from cloudevents.core.formats.json import JSONFormat
from cloudevents.v1 import kafka as v1_kafka

from tests.conftest import (
    INVOICE_SECRET,
    event_of,
    make_config,
    read_topic,
    signed_webhook,
    start_relay,
)


def _message(record: Any) -> KafkaMessage:
    """The SDK's client-neutral message, built from a record as its docs show."""
    return KafkaMessage(headers=dict(record.headers), key=record.key, value=record.value)


def test_event_records_carry_no_header_that_means_binary_mode() -> None:
    """``from_kafka`` reads any ``ce_`` header as binary mode (see schemas/records.py)."""
    from relay.providers import usdt_invoice
    from relay.records import to_kafka_record
    from schemas.event import Message, NormalizeContext
    from schemas.payload import parse_payload

    body = b'{"invoice_reference":"R-1","status":"pending","amount_usdt_exact":"1.5"}'
    context = NormalizeContext("invoices", "usdt-invoice", datetime.now(UTC))
    event = usdt_invoice.normalize(Message(body, parse_payload(body)), context)
    headers = to_kafka_record(event, "payments.events").headers
    assert [name for name, _ in headers if name.lower().startswith("ce_")] == []


async def test_the_sdk_reads_a_payment_event_with_its_own_attributes_and_data(
    aiohttp_client: Any, kafka_bootstrap: str, topic: str, tmp_path: Any
) -> None:
    relay = await start_relay(
        aiohttp_client, make_config(bootstrap=kafka_bootstrap, topic=topic, var=tmp_path)
    )
    # Paid an hour ago: a time the SDK made up at read time could not pass for it.
    webhook = signed_webhook(relay.config, order="ORDER-CE-1", now=time.time() - 3600)
    assert (await relay.post(webhook)).status == 200
    [record] = await read_topic(kafka_bootstrap, topic, expect=1)
    published = event_of(record)
    paid_at = datetime.fromisoformat(json.loads(webhook.body)["paid_at"])

    for event in (from_kafka(_message(record), JSONFormat()), from_kafka_event(_message(record))):
        assert event.get_id() == webhook.headers["X-Webhook-Id"]
        assert event.get_type() == "payment.payin.succeeded"
        assert event.get_source() == "relay/invoices"
        assert event.get_subject() == "ORDER-CE-1"
        assert event.get_time() == paid_at
        assert event.get_datacontenttype() == "application/json"
        assert event.get_dataschema() == "urn:relay:payment-event:v1"
        assert event.get_extension("relayreceivedat") == published["relayreceivedat"]
        # The SDK adds the record key as the partitioning extension.
        assert event.get_extension("partitionkey") == "invoices:ORDER-CE-1"
        data = event.get_data()
        assert isinstance(data, dict)
        assert data == published["data"]
        assert (data["flow"], data["status"], data["final"]) == ("payin", "succeeded", True)
        assert (data["amount"], data["amount_received"]) == ("150.0000", "150.0000")
        assert data["raw"] == json.loads(webhook.body)


async def test_the_sdk_reads_a_generic_event_and_fills_in_a_missing_time(
    aiohttp_client: Any, kafka_bootstrap: str, topic: str, tmp_path: Any
) -> None:
    """A github event has no time of its own: Relay writes none, and the SDK's event
    constructor stamps the read time (README: read ``relayreceivedat`` instead)."""
    providers = {"hooks": {"profile": "github", "secrets": [INVOICE_SECRET]}}
    config = make_config(bootstrap=kafka_bootstrap, topic=topic, var=tmp_path, providers=providers)
    relay = await start_relay(aiohttp_client, config)
    webhook = signed_webhook(config, "hooks")
    assert (await relay.post(webhook)).status == 200
    [record] = await read_topic(kafka_bootstrap, topic, expect=1)
    published = event_of(record)
    assert "time" not in published

    before_read = datetime.now(UTC)
    event = from_kafka(_message(record), JSONFormat())
    assert event.get_id() == webhook.headers["X-GitHub-Delivery"]
    assert (event.get_type(), event.get_source()) == ("github.issues", "relay/hooks")
    assert event.get_datacontenttype() == "application/json"
    assert event.get_dataschema() == "urn:relay:webhook-event:v1"
    assert event.get_data() == {
        "provider": "hooks",
        "profile": "github",
        "raw": json.loads(webhook.body),
    }
    read_time = event.get_time()
    assert read_time is not None and read_time >= before_read


async def test_the_1x_api_reads_the_event_but_takes_datacontenttype_from_the_record(
    aiohttp_client: Any, kafka_bootstrap: str, topic: str, tmp_path: Any
) -> None:
    """1.x has no auto-detecting call; its ``from_structured`` is right but for two
    quirks the README names: ``datacontenttype`` becomes the record's ``content-type``,
    and every header becomes an attribute."""
    relay = await start_relay(
        aiohttp_client, make_config(bootstrap=kafka_bootstrap, topic=topic, var=tmp_path)
    )
    webhook = signed_webhook(relay.config, order="ORDER-CE-2")
    assert (await relay.post(webhook)).status == 200
    [record] = await read_topic(kafka_bootstrap, topic, expect=1)
    published = event_of(record)

    event = v1_kafka.from_structured(
        v1_kafka.KafkaMessage(dict(record.headers), record.key, record.value)
    )
    assert event["id"] == webhook.headers["X-Webhook-Id"]
    assert (event["type"], event["source"]) == ("payment.payin.succeeded", "relay/invoices")
    assert event["time"] == published["time"]
    assert event.get_data() == published["data"]
    assert event["datacontenttype"] == "application/cloudevents+json"
    assert event["relay_id"] == webhook.headers["X-Webhook-Id"]
    assert event["partitionkey"] == record.key

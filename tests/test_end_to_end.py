"""Relay end to end on a real broker: signed webhooks in, canonical events on Kafka out."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import jsonschema
import orjson
import pytest

from schemas.decoder import PaymentEvent, decode_dead_letter, decode_event
from tests.conftest import (
    INVOICE_SECRET,
    RelayUnderTest,
    event_of,
    make_config,
    read_topic,
    signed_webhook,
    start_relay,
)

SCHEMA = json.loads(
    (Path(__file__).parent.parent / "schemas" / "payment-event.schema.json").read_text()
)


async def test_signed_webhook_becomes_one_canonical_event(relay_app: RelayUnderTest) -> None:
    webhook = signed_webhook(relay_app.config, order="ORDER-12345")
    response = await relay_app.post(webhook)
    assert response.status == 200
    assert await response.read() == b""

    [record] = await read_topic(
        relay_app.config.kafka.bootstrap_servers, relay_app.config.kafka.topic, expect=1
    )
    event = event_of(record)
    jsonschema.validate(event, SCHEMA)
    assert record.key == b"invoices:ORDER-12345"
    headers = dict(record.headers)
    assert headers["content-type"] == b"application/cloudevents+json"
    assert headers["relay_id"] == webhook.headers["X-Webhook-Id"].encode()
    assert headers["relay_type"] == b"payment.payin.succeeded"
    assert headers["relay_source"] == b"relay/invoices"
    assert event["id"] == webhook.headers["X-Webhook-Id"]
    assert event["subject"] == "ORDER-12345"
    data = event["data"]
    assert data["amount"] == "150.0000"
    assert isinstance(data["amount"], str)
    assert (data["status"], data["final"], data["provider_status"]) == (
        "succeeded",
        True,
        "confirmed",
    )
    assert (data["asset"], data["network"]) == ("USDT", "TRON")
    assert event["time"].endswith("Z")
    assert datetime.fromisoformat(event["time"]).utcoffset() == timedelta(0)
    assert data["raw"] == orjson.loads(webhook.body)


async def test_sequential_retries_give_one_record(relay_app: RelayUnderTest) -> None:
    webhook = signed_webhook(relay_app.config)
    for _ in range(3):
        response = await relay_app.post(webhook)
        assert response.status == 200
    records = await read_topic(
        relay_app.config.kafka.bootstrap_servers,
        relay_app.config.kafka.topic,
        expect=1,
        settle_s=1.0,
    )
    assert len(records) == 1


async def test_twenty_concurrent_retries_give_one_record(relay_app: RelayUnderTest) -> None:
    webhook = signed_webhook(relay_app.config)
    responses = await asyncio.gather(*(relay_app.post(webhook) for _ in range(20)))
    assert [r.status for r in responses] == [200] * 20
    records = await read_topic(
        relay_app.config.kafka.bootstrap_servers,
        relay_app.config.kafka.topic,
        expect=1,
        settle_s=1.0,
    )
    assert len(records) == 1


async def test_a_status_change_is_a_new_event(relay_app: RelayUnderTest) -> None:
    pending = signed_webhook(relay_app.config, event="pending", order="ORD-1")
    confirmed = signed_webhook(relay_app.config, event="confirmed", order="ORD-1")
    for webhook in (pending, confirmed):
        assert (await relay_app.post(webhook)).status == 200
    records = await read_topic(
        relay_app.config.kafka.bootstrap_servers, relay_app.config.kafka.topic, expect=2
    )
    assert [event_of(r)["data"]["status"] for r in records] == ["pending", "succeeded"]
    assert {r.key for r in records} == {b"invoices:ORD-1"}


async def _error(response: object) -> dict[str, str]:
    body = await response.json()  # type: ignore[attr-defined]
    assert set(body) == {"error", "message"}
    return body


async def test_unknown_provider_is_404(relay_app: RelayUnderTest) -> None:
    webhook = signed_webhook(relay_app.config)
    response = await relay_app.client.post(
        "/webhooks/nobody", data=webhook.body, headers=webhook.headers
    )
    assert response.status == 404
    assert (await _error(response))["error"] == "unknown_provider"


async def test_wrong_method_is_405(relay_app: RelayUnderTest) -> None:
    response = await relay_app.client.get("/webhooks/invoices")
    assert response.status == 405
    assert (await _error(response))["error"] == "method_not_allowed"


async def test_wrong_content_type_is_415(relay_app: RelayUnderTest) -> None:
    webhook = signed_webhook(relay_app.config, headers={"Content-Type": "text/plain"})
    response = await relay_app.post(webhook)
    assert response.status == 415
    assert (await _error(response))["error"] == "unsupported_media_type"


@pytest.mark.parametrize(
    ("tamper", "code"),
    [
        (lambda h: h.pop("x-webhook-signature"), "missing_signature"),
        (lambda h: h.update({"x-webhook-signature": "zz" * 32}), "malformed_signature"),
        (lambda h: h.update({"x-webhook-signature": "00" * 32}), "signature_mismatch"),
    ],
)
async def test_bad_signatures_are_401_and_publish_nothing(
    relay_app: RelayUnderTest, tamper: object, code: str
) -> None:
    webhook = signed_webhook(relay_app.config)
    tamper(webhook.headers)  # type: ignore[operator]
    response = await relay_app.post(webhook)
    assert response.status == 401
    error = await _error(response)
    assert error["error"] == code
    assert INVOICE_SECRET not in error["message"]
    records = await read_topic(
        relay_app.config.kafka.bootstrap_servers,
        relay_app.config.kafka.topic,
        expect=0,
        settle_s=0.3,
        timeout_s=2,
    )
    assert records == []


@pytest.mark.parametrize("valid_first", [True, False])
async def test_of_repeated_headers_the_first_counts(
    relay_app: RelayUnderTest, valid_first: bool
) -> None:
    """Written by hand: aiohttp's client keeps only the last of a repeated header."""
    webhook = signed_webhook(relay_app.config)
    signature = "x-webhook-signature"
    signatures = [
        f"X-Webhook-Signature: {webhook.headers[signature]}",
        f"x-webhook-signature: {'00' * 32}",  # names ignore case
    ]
    if not valid_first:
        signatures.reverse()
    others = [f"{name}: {value}" for name, value in webhook.headers.items() if name != signature]
    start = [f"POST {webhook.path} HTTP/1.1", "Host: relay", "Connection: close"]
    head = "\r\n".join([*start, f"Content-Length: {len(webhook.body)}", *others, *signatures])
    url = relay_app.client.make_url("/")
    reader, writer = await asyncio.open_connection(url.host, url.port)
    writer.write(head.encode() + b"\r\n\r\n" + webhook.body)
    status_line = await reader.readline()
    writer.close()
    assert status_line.split()[1] == (b"200" if valid_first else b"401")


async def test_tampered_body_is_401(relay_app: RelayUnderTest) -> None:
    webhook = signed_webhook(relay_app.config)
    tampered = webhook.body.replace(b"150.0000", b"950.0000")
    response = await relay_app.client.post(webhook.path, data=tampered, headers=webhook.headers)
    assert response.status == 401


async def test_body_over_the_limit_is_413(aiohttp_client, kafka_bootstrap, topic, tmp_path) -> None:
    config = make_config(
        bootstrap=kafka_bootstrap, topic=topic, var=tmp_path, server={"max_body_bytes": 1024}
    )
    relay = await start_relay(aiohttp_client, config)
    webhook = signed_webhook(config, body=b'{"pad": "' + b"x" * 2048 + b'"}')
    response = await relay.post(webhook)
    assert response.status == 413
    assert (await _error(response))["error"] == "body_too_large"


async def test_address_outside_the_allow_list_is_403(
    aiohttp_client, kafka_bootstrap, topic, tmp_path
) -> None:
    providers = {
        "invoices": {
            "profile": "usdt-invoice",
            "secrets": [INVOICE_SECRET],
            "allow_ips": ["203.0.113.0/24"],
        }
    }
    config = make_config(bootstrap=kafka_bootstrap, topic=topic, var=tmp_path, providers=providers)
    relay = await start_relay(aiohttp_client, config)
    response = await relay.post(signed_webhook(config))
    assert response.status == 403
    assert (await _error(response))["error"] == "forbidden_address"


async def test_authentic_but_unknown_status_is_dead_lettered_and_acknowledged(
    relay_app: RelayUnderTest,
) -> None:
    body = orjson.dumps(
        {"invoice_reference": "ORD-9", "status": "refunded", "amount_usdt_exact": "1.0"}
    )
    response = await relay_app.post(signed_webhook(relay_app.config, body=body))
    assert response.status == 200
    kafka = relay_app.config.kafka
    [letter] = await read_topic(kafka.bootstrap_servers, kafka.dead_letter_topic, expect=1)
    document = orjson.loads(letter.value)
    assert document["reason"] == "unknown_status"
    assert document["provider"] == "invoices"
    assert INVOICE_SECRET not in letter.value.decode()
    assert (
        await read_topic(kafka.bootstrap_servers, kafka.topic, expect=0, settle_s=0.2, timeout_s=2)
        == []
    )


async def test_health_and_readiness(relay_app: RelayUnderTest) -> None:
    assert (await relay_app.client.get("/healthz")).status == 200
    ready = await relay_app.client.get("/readyz")
    assert ready.status == 200
    document = await ready.json()
    assert document["ready"] is True
    assert document["kafka"]["connected"] is True


def test_amounts_never_pass_through_float() -> None:
    # The invoice sample's amount keeps its trailing zeros through parse and normalize.
    from schemas.payload import parse_payload

    assert parse_payload(b'{"a": 150.0000}')["a"] == Decimal("150.0000")
    assert str(parse_payload(b'{"a": 150.0000}')["a"]) == "150.0000"


async def test_authentic_values_outside_the_ranges_are_dead_letters_never_5xx(
    aiohttp_client, kafka_bootstrap, topic, tmp_path
) -> None:
    """Each was a 500 on every retry, or an event the decoder could not read (issue 23).
    Now: an out-of-range time or a nested number past what decimal holds is a dead letter,
    acknowledged; a nested number at the end of the range is an event that decodes; an
    unsigned body with such a number is a 400 before any signature work."""
    providers = {
        "invoices": {"profile": "usdt-invoice", "secrets": [INVOICE_SECRET]},
        "collect": {
            "profile": "usdt-collect-pay",
            "algorithm": "md5",
            "secrets": ["e2e-md5-merchant-key"],
        },
    }
    config = make_config(bootstrap=kafka_bootstrap, topic=topic, var=tmp_path, providers=providers)
    relay = await start_relay(aiohttp_client, config)
    late = orjson.dumps(
        {
            "invoice_reference": "ORD-LATE",
            "status": "confirmed",
            "amount_usdt_exact": "1.0",
            "paid_at": "9999-12-31T23:59:59-01:00",
        }
    )
    huge = (
        b'{"orderId":"C-HUGE","status":1,"actualAmount":"1","extra":{"n":1e999999999999999999999}}'
    )
    inside = (
        b'{"orderId":"C-IN","status":1,"actualAmount":"1","extra":{"n":[1e999999,'
        + b"9" * 4300
        + b"]}}"
    )
    webhooks = [
        signed_webhook(config, "invoices", body=late),
        signed_webhook(config, "collect", body=huge),
        signed_webhook(config, "collect", body=inside),
    ]
    for webhook in webhooks:
        for _ in range(2):  # a retry gets the same answer
            response = await relay.post(webhook)
            assert response.status == 200, await response.text()
    signed = signed_webhook(config, "collect", body=b'{"orderId":"C-U","status":1}')
    # The signature keeps its shape, so only the number stands before the signature check.
    forged = signed.body.replace(b'"status":1', b'"status":1e999999999999999999999')
    response = await relay.post(dataclasses.replace(signed, body=forged))
    assert response.status == 400
    assert (await _error(response))["error"] == "malformed_body"

    kafka = config.kafka
    letters = await read_topic(kafka.bootstrap_servers, kafka.dead_letter_topic, expect=2)
    reasons = {
        decode_dead_letter(letter.value, letter.headers).body: (
            decode_dead_letter(letter.value, letter.headers).reason
        )
        for letter in letters
    }
    assert reasons == {webhooks[0].body: "invalid_time", webhooks[1].body: "out_of_range"}
    [record] = await read_topic(kafka.bootstrap_servers, kafka.topic, expect=1)
    event = decode_event(record.value, record.headers)
    assert isinstance(event, PaymentEvent)
    assert event.data.merchant_order_id == "C-IN"
    assert event.data.raw["extra"]["n"] == [Decimal("1e999999"), 10**4300 - 1]

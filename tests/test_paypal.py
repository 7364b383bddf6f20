"""PayPal end to end: what a captured transmission can and cannot make Relay publish.

The signature binds the body only by its CRC32 (tests/crc_forgery.py rewrites a body and
keeps it), so the signed transmission id is the event id: a forged body under a captured
transmission is a duplicate, on receipt and on replay. A dead letter replays once the
status is known; a letter whose body no longer matches its transmission is refused.
"""

from __future__ import annotations

import base64
import io
import zlib
from pathlib import Path
from typing import Any

import orjson

from relay.config import Config
from relay.records import KafkaRecord
from relay.replay import LetterFilter, list_letters, replay
from schemas.records import DeadLetter
from tests.conftest import (
    SignedWebhook,
    event_of,
    make_config,
    read_topic,
    signed_webhook,
    start_relay,
)
from tests.crc_forgery import PLACEHOLDER, forge
from tests.poison import DEAD_LETTER, publish
from tests.test_profiles import PUBLIC_PROVIDERS

INSTANCE = "hooks-paypal"


def _providers(**extra: Any) -> dict[str, Any]:
    return {INSTANCE: {**PUBLIC_PROVIDERS[INSTANCE], **extra}}


def _capture(status: str, order: str = "42311647XV020574X") -> bytes:
    return orjson.dumps(
        {
            "id": "WH-58D329510W468432D-8HN650336L201105X",
            "event_version": "1.0",
            "create_time": "2026-01-02T03:03:58.940Z",
            "resource_type": "capture",
            "event_type": "PAYMENT.CAPTURE.COMPLETED",
            "summary": "Payment completed for $ 30.00 USD",
            "resource": {
                "id": order,
                "status": status,
                "amount": {"currency_code": "USD", "value": "30.00"},
            },
            "links": [],
        }
    )


def _forged(genuine: bytes, order: str) -> bytes:
    """Another event id and order, with the genuine body's CRC32."""
    rewritten = genuine.replace(b"42311647XV020574X", order.encode())
    rewritten = rewritten.replace(b"WH-58D329510W468432D", b"WH-FORGED00000000000").replace(
        b'"links":[]', b'"links":[],"x":"' + PLACEHOLDER + b'"'
    )
    return forge(rewritten, zlib.crc32(genuine))


async def test_a_forged_body_under_a_captured_transmission_publishes_nothing_new(
    aiohttp_client: Any, kafka_bootstrap: str, topic: str, tmp_path: Path
) -> None:
    config = make_config(
        bootstrap=kafka_bootstrap, topic=topic, var=tmp_path, providers=_providers()
    )
    relay = await start_relay(aiohttp_client, config)
    genuine = signed_webhook(config, INSTANCE, body=_capture("COMPLETED"))
    forged = SignedWebhook(
        genuine.path, _forged(genuine.body, "9FORGED0000000000"), genuine.headers
    )
    assert zlib.crc32(forged.body) == zlib.crc32(genuine.body) and forged.body != genuine.body
    for webhook in (genuine, forged, forged):
        response = await relay.post(webhook)
        assert response.status == 200, await response.text()
    [record] = await read_topic(kafka_bootstrap, topic, expect=1, settle_s=0.5)
    event = event_of(record)
    assert event["id"] == genuine.headers["paypal-transmission-id"]
    assert event["data"]["provider_order_id"] == "42311647XV020574X"
    assert (
        await read_topic(
            kafka_bootstrap, config.kafka.dead_letter_topic, expect=0, settle_s=0.3, timeout_s=1
        )
        == []
    )


async def test_a_paypal_dead_letter_replays_and_a_forged_one_does_not(
    aiohttp_client: Any, kafka_bootstrap: str, topic: str, tmp_path: Path
) -> None:
    common: dict[str, Any] = {"bootstrap": kafka_bootstrap, "topic": topic, "var": tmp_path}
    dedup = {"backend": "sqlite", "path": str(tmp_path / "dedup.sqlite3")}
    before = make_config(**common, providers=_providers(), dedup=dedup)
    after = make_config(**common, providers=_providers(statuses={"MYSTERY": "failed"}), dedup=dedup)
    relay = await start_relay(aiohttp_client, before)
    genuine = signed_webhook(before, INSTANCE, body=_capture("MYSTERY"))
    assert (await relay.post(genuine)).status == 200
    listing = await list_letters(before, LetterFilter(), idle_s=0.5)
    [filed] = listing.letters
    letter = filed.letter
    assert letter.reason == "unknown_status"
    assert set(letter.signature_headers or {}) >= {
        "paypal-transmission-sig",
        "paypal-transmission-id",
        "paypal-transmission-time",
        "paypal-auth-algo",
    }
    # Moved onto another body (another CRC32): refused. With the same CRC32: it verifies,
    # and is the same transmission, so the two make one event.
    other = _capture("MYSTERY", order="9FORGED0000000000")
    same_crc = _forged(genuine.body, "9FORGED0000000001")
    await publish(
        before.kafka, [_letter(before, letter, other, "1"), _letter(before, letter, same_crc, "2")]
    )

    summary = await replay(after, LetterFilter(), idle_s=0.5, err=io.StringIO())
    assert (summary.matched, summary.replayed, summary.duplicates, dict(summary.failed)) == (
        3,
        1,
        1,
        {"unverified": 1},
    )
    # One event for the one transmission. Which of the two bodies it carries is not decided
    # by the signature (the letters may sit on different partitions): the README says so.
    [record] = await read_topic(kafka_bootstrap, topic, expect=1, settle_s=1.0)
    event = event_of(record)
    assert event["id"] == genuine.headers["paypal-transmission-id"]
    assert event["data"]["status"] == "failed"


def _letter(config: Config, genuine: DeadLetter, body: bytes, mark: str) -> KafkaRecord:
    """The genuine letter with another body, as anyone who can write the topic files one."""
    document = orjson.loads(genuine.to_json())
    document |= {"id": mark * 32, "body_base64": base64.b64encode(body).decode()}
    return KafkaRecord(
        config.kafka.dead_letter_topic,
        f"{INSTANCE}:{document['id']}".encode(),
        orjson.dumps(document),
        DEAD_LETTER,
    )

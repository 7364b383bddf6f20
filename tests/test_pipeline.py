"""Pipeline rules that need no broker: what reaches the provider when a step fails, and
what gets published when an attacker re-sends a captured, validly signed message."""

from __future__ import annotations

import dataclasses
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn
from zoneinfo import ZoneInfo

import orjson
import pytest

from relay.config import Config
from relay.deadletter import dead_letter_id
from relay.dedup import DedupUnavailable, MemoryDedup, dead_letter_key, dedup_key
from relay.delivery import Durability
from relay.errors import Unavailable
from relay.pipeline import Inbound, Outcome, Pipeline, Result, normalize
from relay.records import KafkaRecord
from schemas import Message, NormalizationError, NormalizeContext
from tests.conftest import INVOICE_SECRET, make_config, signed_webhook


class _StoreFailingWhileWaiting(MemoryDedup):
    """A store that answers the claim, then becomes unreachable while a duplicate waits."""

    async def wait_settled(self, key: str, timeout_s: float) -> None:
        raise DedupUnavailable("connection lost")


class _NoDelivery:
    async def deliver(
        self, record: KafkaRecord, kafka_wait_s: float, dedup_key: str | None
    ) -> NoReturn:
        raise AssertionError("a duplicate that cannot be settled must not be delivered")


async def test_dedup_store_failing_while_a_duplicate_waits_is_503(tmp_path: Path) -> None:
    config = make_config(bootstrap="127.0.0.1:9", topic="t", var=tmp_path)
    instance = config.providers["invoices"]
    webhook = signed_webhook(config, headers={"X-Webhook-Id": "wh-1"})
    store = _StoreFailingWhileWaiting(ttl_s=60)
    # The first attempt is in flight (the profile's id header is unsigned: the content is claimed).
    identity = instance.profile.identity(webhook.body, instance.params)
    await store.claim(dedup_key("invoices", identity))
    pipeline = Pipeline(config, store, _NoDelivery())
    headers = {name.lower(): value for name, value in webhook.headers.items()}

    with pytest.raises(Unavailable) as raised:
        await pipeline.receive(instance, webhook.body, headers, datetime.now(UTC))

    assert raised.value.status == 503
    assert raised.value.retry_after_s is not None


class _Recorder:
    """A deliverer that takes every record at once, as an acknowledging broker would."""

    def __init__(self) -> None:
        self.records: list[KafkaRecord] = []

    async def deliver(
        self, record: KafkaRecord, kafka_wait_s: float, dedup_key: str | None
    ) -> Durability:
        self.records.append(record)
        return Durability.KAFKA

    def events(self) -> list[dict[str, Any]]:
        return [orjson.loads(record.value) for record in self.records if record.topic == "t"]

    def letters(self) -> list[dict[str, Any]]:
        return [orjson.loads(record.value) for record in self.records if record.topic == "t.dlq"]


COLLECT = {"profile": "usdt-collect-pay", "algorithm": "md5", "secrets": ["collect-secret"]}
STRIPE = {"profile": "stripe", "secrets": ["whsec_pipeline"]}
TOPUP = {"profile": "wallet-topup", "algorithm": "hmac-sha256", "secrets": ["topup-secret"]}


def _pipeline(
    tmp_path: Path, providers: dict[str, Any] | None = None, **sections: Any
) -> tuple[Pipeline, _Recorder, Config]:
    config = make_config(
        bootstrap="127.0.0.1:9", topic="t", var=tmp_path, providers=providers, **sections
    )
    recorder = _Recorder()
    return Pipeline(config, MemoryDedup(ttl_s=600), recorder), recorder, config


async def _post(
    pipeline: Pipeline,
    config: Config,
    provider: str,
    body: bytes,
    headers: dict[str, str],
    received_at: datetime | None = None,
) -> Result:
    lowered = {name.lower(): value for name, value in headers.items()}
    result = await pipeline.receive(
        config.providers[provider], body, lowered, received_at or datetime.now(UTC)
    )
    assert isinstance(result, Result), "a single message's result"
    return result


async def test_a_body_posted_again_with_fresh_id_headers_publishes_nothing_new(
    tmp_path: Path,
) -> None:
    pipeline, recorder, config = _pipeline(tmp_path)
    webhook = signed_webhook(config, headers={"X-Webhook-Id": "wh-first"})
    outcomes = []
    for webhook_id in ("wh-first", "wh-second", "wh-third", "dlq:anything:1"):
        headers = {**webhook.headers, "X-Webhook-Id": webhook_id}
        outcomes.append((await _post(pipeline, config, "invoices", webhook.body, headers)).outcome)

    assert outcomes == [Outcome.ACCEPTED] + [Outcome.DUPLICATE] * 3
    assert [event["id"] for event in recorder.events()] == ["wh-first"]


async def test_a_respelled_sign_field_message_is_the_same_event(tmp_path: Path) -> None:
    pipeline, recorder, config = _pipeline(tmp_path, {"collect": COLLECT})
    webhook = signed_webhook(config, "collect", event="success")
    signature = orjson.loads(webhook.body)["sign"]
    # The attacker's copy: same signature, the status re-spelled (2 as 2.0e0), a null member
    # added, members reordered. It verifies (the signed string is the same) and reads the same.
    payload = orjson.loads(webhook.body)
    respelled = {key: payload[key] for key in reversed(payload) if key != "sign"}
    respelled["status"] = orjson.Fragment(b"2.0e0")
    respelled["errorMsg"] = None
    body = orjson.dumps(respelled)[:-1] + b',"sign":' + orjson.dumps(signature) + b"}"

    first = await _post(pipeline, config, "collect", webhook.body, webhook.headers)
    second = await _post(pipeline, config, "collect", body, webhook.headers)

    assert (first.outcome, second.outcome) == (Outcome.ACCEPTED, Outcome.DUPLICATE)
    assert second.event_id == first.event_id
    assert len(recorder.events()) == 1


async def test_an_unsigned_empty_member_does_not_change_the_flow(tmp_path: Path) -> None:
    pipeline, recorder, config = _pipeline(tmp_path, {"collect": COLLECT})
    payout = b'{"orderId":"PO-1","orderNo":"P9","amount":"5","status":1}'
    webhook = signed_webhook(config, "collect", body=payout)
    with_null = webhook.body.replace(b'"status":1', b'"status":1,"actualAmount":null')

    # Whichever arrives first, the one event is the payout the provider signed.
    await _post(pipeline, config, "collect", with_null, webhook.headers)
    second = await _post(pipeline, config, "collect", webhook.body, webhook.headers)

    assert second.outcome is Outcome.DUPLICATE
    assert [event["data"]["flow"] for event in recorder.events()] == ["payout"]


async def test_an_event_id_cannot_claim_a_dead_letter_key(tmp_path: Path) -> None:
    """A signed Stripe event whose id is what a dead letter's key used to be
    (``dlq:<letter id>:1``) must not suppress that dead letter."""
    pipeline, recorder, config = _pipeline(tmp_path, {"pay": STRIPE})
    instance = config.providers["pay"]
    no_type = signed_webhook(config, "pay", body=b'{"id":"evt_no_type","object":"event"}')
    letter_id = dead_letter_id("pay", instance.profile.identity(no_type.body, instance.params))
    claimant = orjson.dumps({"id": f"dlq:{letter_id}:1", "type": "x", "created": 1})
    claiming = signed_webhook(config, "pay", body=claimant)

    assert (await _post(pipeline, config, "pay", claiming.body, claiming.headers)).outcome is (
        Outcome.ACCEPTED
    )
    result = await _post(pipeline, config, "pay", no_type.body, no_type.headers)

    assert result.outcome is Outcome.DEAD_LETTERED
    assert [letter["reason"] for letter in recorder.letters()] == ["missing_field"]


def test_dead_letter_keys_are_outside_every_event_key() -> None:
    letter_key = dead_letter_key("pay", "abc", 1)
    for event_id in ("abc:1", "dlq:abc:1", "\x1eabc:1", letter_key):
        assert dedup_key("pay", event_id) != letter_key


async def test_a_notification_older_than_max_age_is_dead_lettered_not_published(
    tmp_path: Path,
) -> None:
    pipeline, recorder, config = _pipeline(
        tmp_path, {"invoices": {"profile": "usdt-invoice", "secrets": [INVOICE_SECRET]}}
    )
    paid_long_ago = time.time() - 8 * 86400  # past the default max_age_s, the 7-day TTL
    webhook = signed_webhook(config, event="confirmed", now=paid_long_ago)

    first = await _post(pipeline, config, "invoices", webhook.body, webhook.headers)
    respelled = {**webhook.headers, "X-Webhook-Id": "another"}
    second = await _post(pipeline, config, "invoices", webhook.body, respelled)

    assert (first.outcome, first.reason) == (Outcome.DEAD_LETTERED, "stale_event")
    # The same one letter, not a second: acknowledged, nothing new made durable.
    assert (second.outcome, second.durability) == (Outcome.DEAD_LETTERED, None)
    assert recorder.events() == []
    assert len(recorder.letters()) == 1
    # An operator's replay does not apply the check: it publishes.
    letter = recorder.letters()[0]
    replayed = await pipeline.process(
        Inbound(
            config.providers["invoices"],
            webhook.body,
            letter["headers"],
            datetime.fromisoformat(letter["received_at"]),
            attempts=2,
        )
    )
    assert replayed.outcome is Outcome.ACCEPTED
    assert len(recorder.events()) == 1


async def test_max_age_is_per_instance(tmp_path: Path) -> None:
    pipeline, _recorder, config = _pipeline(
        tmp_path,
        {"invoices": {"profile": "usdt-invoice", "secrets": [INVOICE_SECRET], "max_age_s": 3600}},
    )
    webhook = signed_webhook(config, event="confirmed", now=time.time() - 7200)
    result = await _post(pipeline, config, "invoices", webhook.body, webhook.headers)
    assert (result.outcome, result.reason) == (Outcome.DEAD_LETTERED, "stale_event")


async def test_an_unsigned_timestamp_header_does_not_make_an_old_notification_fresh(
    tmp_path: Path,
) -> None:
    pipeline, _recorder, config = _pipeline(tmp_path, {"topup": TOPUP}, dedup={"ttl_s": 3600})
    created = datetime.fromtimestamp(time.time() - 7200, UTC).strftime("%Y-%m-%d %H:%M:%S")
    body = orjson.dumps(
        {
            "event": "topup.status",
            "data": {"orderId": "T-1", "status": "COMPLETED", "created": created},
        }
    )
    webhook = signed_webhook(
        config, "topup", body=body, headers={"X-Timestamp": str(int(time.time()))}
    )
    result = await _post(pipeline, config, "topup", webhook.body, webhook.headers)
    assert (result.outcome, result.reason) == (Outcome.DEAD_LETTERED, "stale_event")


async def test_a_signed_timestamp_is_the_freshness_guard(tmp_path: Path) -> None:
    """A Stripe event created long ago, signed now: its signed timestamp is within the
    tolerance, so it is fresh whatever its own time says."""
    pipeline, _recorder, config = _pipeline(tmp_path, {"pay": STRIPE}, dedup={"ttl_s": 3600})
    old = orjson.dumps({"id": "evt_old", "type": "x", "created": int(time.time()) - 86400})
    webhook = signed_webhook(config, "pay", body=old)
    result = await _post(pipeline, config, "pay", webhook.body, webhook.headers)
    assert result.outcome is Outcome.ACCEPTED


def test_normalize_hands_the_normalizer_every_instance_setting(tmp_path: Path) -> None:
    # relay.pipeline.normalize builds the context positionally: a field order change shows here.
    config = make_config(bootstrap="127.0.0.1:9", topic="t", var=tmp_path)
    contexts: list[NormalizeContext] = []

    def capture(message: Message, ctx: NormalizeContext) -> NoReturn:
        contexts.append(ctx)
        raise NormalizationError("captured", "the context is all this test needs")

    invoices = config.providers["invoices"]
    instance = dataclasses.replace(
        invoices,
        profile=dataclasses.replace(invoices.profile, normalize=capture),
        timezone=ZoneInfo("Asia/Shanghai"),
        flow="payout",
        status_overrides={"held": "under_review"},
        id_header="x-delivery",
    )
    received_at = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    inbound = Inbound(instance, b'{"status": "held"}', {}, received_at, traceparent=traceparent)

    with pytest.raises(NormalizationError):
        normalize(inbound)

    assert contexts == [
        NormalizeContext(
            provider="invoices",
            profile="usdt-invoice",
            received_at=received_at,
            timezone=ZoneInfo("Asia/Shanghai"),
            flow="payout",
            status_overrides={"held": "under_review"},
            id_header="x-delivery",
            traceparent=traceparent,
        )
    ]

"""Pipeline rules that need no broker: what reaches the provider when a step fails, and
what gets published when an attacker re-sends a captured, validly signed message."""

from __future__ import annotations

import dataclasses
import time
from datetime import UTC, datetime
from decimal import Decimal
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
from schemas.decoder import PaymentEvent, decode_event
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


COLLECT = {"profile": "usdt-collect-pay", "algorithm": "md5", "secrets": ["collect-secret-01234"]}
STRIPE = {"profile": "stripe", "secrets": ["whsec_pipeline-01"]}
TOPUP = {"profile": "wallet-topup", "algorithm": "hmac-sha256", "secrets": ["topup-secret-0123"]}


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


async def test_a_notification_dated_in_the_future_is_dead_lettered_not_published(
    tmp_path: Path,
) -> None:
    """Before, only the past was checked: a notification dated a year ahead was published,
    and published again by whoever re-sent it once the dedup window had forgotten it."""
    pipeline, recorder, config = _pipeline(tmp_path, INVOICES)
    webhook = signed_webhook(config, event="confirmed", now=time.time() + 86400 * 365)

    first = await _post(pipeline, config, "invoices", webhook.body, webhook.headers)
    again = await _post(pipeline, config, "invoices", webhook.body, webhook.headers)

    assert (first.outcome, first.reason) == (Outcome.DEAD_LETTERED, "future_event")
    assert (again.outcome, again.durability) == (Outcome.DEAD_LETTERED, None)
    assert recorder.events() == []
    [letter] = recorder.letters()
    assert "max_future_s (300s)" in letter["message"]
    # An operator's replay does not apply the check: it publishes.
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


async def test_max_future_is_a_clock_skew_tolerance_per_instance(tmp_path: Path) -> None:
    providers = {
        "invoices": {"profile": "usdt-invoice", "secrets": [INVOICE_SECRET]},
        "strict": {"profile": "usdt-invoice", "secrets": [INVOICE_SECRET], "max_future_s": 10},
    }
    pipeline, _recorder, config = _pipeline(tmp_path, providers)
    ahead = signed_webhook(config, event="confirmed", now=time.time() + 120)

    tolerated = await _post(pipeline, config, "invoices", ahead.body, ahead.headers)
    refused = await _post(pipeline, config, "strict", ahead.body, ahead.headers)

    assert tolerated.outcome is Outcome.ACCEPTED
    assert (refused.outcome, refused.reason) == (Outcome.DEAD_LETTERED, "future_event")
    assert config.providers["invoices"].max_future_s == 300
    # The two windows together fit in the dedup window, so a replay after it is stale.
    assert config.providers["invoices"].max_age_s == 604800 - 300


async def test_a_signed_timestamp_vouches_for_a_future_event_time(tmp_path: Path) -> None:
    pipeline, _recorder, config = _pipeline(tmp_path, {"pay": STRIPE})
    ahead = orjson.dumps({"id": "evt_ahead", "type": "x", "created": int(time.time()) + 86400})
    webhook = signed_webhook(config, "pay", body=ahead)
    result = await _post(pipeline, config, "pay", webhook.body, webhook.headers)
    assert result.outcome is Outcome.ACCEPTED


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


# --- values outside what an event may carry (schemas.ranges) -----------------------------

INVOICES = {"invoices": {"profile": "usdt-invoice", "secrets": [INVOICE_SECRET]}}
HUGE_EXPONENT = b"1e999999999999999999999"  # past what decimal holds at all
LONG_INTEGER = b"9" * 5000  # past the 4,300 digits Python reads an integer from


def _invoice(paid_at: str = "2024-01-15T14:32:00Z", **extra: Any) -> bytes:
    fields = {
        "invoice_reference": "INV-RANGE",
        "status": "confirmed",
        "amount_usdt_exact": "150.0000",
        "paid_at": paid_at,
        **extra,
    }
    return orjson.dumps(fields)


@pytest.mark.parametrize(
    ("provider", "body", "reason"),
    [
        pytest.param(
            "invoices",
            _invoice(note=orjson.Fragment(HUGE_EXPONENT)),
            "out_of_range",
            id="whole-body-huge-exponent",
        ),
        pytest.param(
            "invoices",
            _invoice(note=orjson.Fragment(LONG_INTEGER)),
            "out_of_range",
            id="whole-body-long-integer",
        ),
        pytest.param(
            "invoices", _invoice("9999-12-31T23:59:59-01:00"), "invalid_time", id="iso-year-10000"
        ),
        pytest.param(
            "collect",
            b'{"orderId":"R-1","orderNo":"P-1","amount":"5","actualAmount":"5","status":2,'
            b'"payTime":"9999-12-31 23:59:59"}',
            "invalid_time",
            id="new-york-year-10000",
        ),
        pytest.param(
            "collect",
            b'{"orderId":"R-2","status":2,"actualAmount":"5","extra":{"n":' + HUGE_EXPONENT + b"}}",
            "out_of_range",
            id="sign-field-nested-huge-exponent",
        ),
        pytest.param(
            "collect",
            b'{"orderId":"R-3","status":2,"actualAmount":"5","extra":[' + LONG_INTEGER + b"]}",
            "out_of_range",
            id="sign-field-nested-long-integer",
        ),
        pytest.param(
            "collect",
            b'{"orderId":"R-4","status":2,"actualAmount":"5","extra":'
            + b"[" * 70
            + b"]" * 70
            + b"}",
            "malformed_json",
            id="sign-field-nested-too-deep",
        ),
    ],
)
async def test_an_authentic_body_outside_the_ranges_is_dead_lettered_once(
    tmp_path: Path, provider: str, body: bytes, reason: str
) -> None:
    """Before: a 500 on every retry (InvalidOperation, OverflowError), or an event the
    decoder cannot read. Now: one dead letter, acknowledged, and no event."""
    pipeline, recorder, config = _pipeline(tmp_path, {**INVOICES, "collect": COLLECT})
    webhook = signed_webhook(config, provider, body=body)

    first = await _post(pipeline, config, provider, webhook.body, webhook.headers)
    again = await _post(pipeline, config, provider, webhook.body, webhook.headers)

    assert (first.outcome, first.reason) == (Outcome.DEAD_LETTERED, reason)
    assert (again.outcome, again.durability) == (Outcome.DEAD_LETTERED, None)
    assert recorder.events() == []
    assert [letter["reason"] for letter in recorder.letters()] == [reason]


async def test_an_authentic_body_at_the_ends_of_the_ranges_is_an_event_the_decoder_reads(
    tmp_path: Path,
) -> None:
    pipeline, recorder, config = _pipeline(tmp_path, {**INVOICES, "collect": COLLECT})
    inside = b"[1e999999,-1e-999999," + b"9" * 4300 + b"]"
    collect = signed_webhook(
        config,
        "collect",
        body=b'{"orderId":"R-5","status":2,"actualAmount":"5","extra":' + inside + b"}",
    )
    result = await _post(pipeline, config, "collect", collect.body, collect.headers)
    # The last second of the year 9999 in UTC; processed as a replay is (no freshness
    # check, which would dead-letter a time so far ahead).
    invoice = _invoice("9999-12-31T22:59:59-01:00", note=orjson.Fragment(inside))
    replayed = await pipeline.process(
        Inbound(config.providers["invoices"], invoice, {}, datetime.now(UTC))
    )

    assert (result.outcome, replayed.outcome) == (Outcome.ACCEPTED, Outcome.ACCEPTED)
    collected, invoiced = (
        decode_event(record.value, record.headers) for record in recorder.records
    )
    assert isinstance(collected, PaymentEvent) and isinstance(invoiced, PaymentEvent)
    assert collected.data.raw["extra"] == [Decimal("1e999999"), Decimal("-1e-999999"), 10**4300 - 1]
    assert invoiced.data.raw["note"] == collected.data.raw["extra"]
    assert invoiced.time == datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)


class _BrokenNormalizer(Exception):
    pass


async def test_whatever_else_a_normalizer_raises_on_authentic_input_is_a_dead_letter(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The safety net: a bug in a normalizer must not turn an authentic message into a 500
    on every retry (and a loss when the provider gives up)."""
    pipeline, recorder, config = _pipeline(tmp_path)
    instance = config.providers["invoices"]

    def broken(message: Message, ctx: NormalizeContext) -> NoReturn:
        raise _BrokenNormalizer("a bug")

    broken_profile = dataclasses.replace(instance.profile, normalize=broken)
    broken_instance = dataclasses.replace(instance, profile=broken_profile)
    webhook = signed_webhook(config)
    headers = {name.lower(): value for name, value in webhook.headers.items()}

    results = []
    for _ in range(2):
        result = await pipeline.receive(broken_instance, webhook.body, headers, datetime.now(UTC))
        assert isinstance(result, Result), "a single message's result"
        results.append(result)

    assert [(result.outcome, result.reason) for result in results] == [
        (Outcome.DEAD_LETTERED, "normalizer_error")
    ] * 2
    assert [letter["reason"] for letter in recorder.letters()] == ["normalizer_error"]
    assert "_BrokenNormalizer" in recorder.letters()[0]["message"]
    tracebacks = [record for record in caplog.records if record.exc_info]
    assert len(tracebacks) == 2  # once per webhook handled: never swallowed silently
    assert recorder.events() == []

"""Adyen standard webhooks: every notification item its own payment (or webhook) event.

A request is ``{"live": ..., "notificationItems": [{"NotificationRequestItem":
{...}}, ...]}``: a batch (Adyen's JSON webhooks send one item, its SOAP ones up
to six; :mod:`verifiers.adyen` accepts at most 100). Every item carries its own
HMAC signature, and :mod:`verifiers.adyen` refuses the whole request when any
one does not verify. Each item is then normalized, deduplicated and, if it
cannot be normalized, dead-lettered on its own (:mod:`relay.pipeline`).

**Only the signed fields are read.** The signature covers eight fields of an
item: ``pspReference``, ``originalReference``, ``merchantAccountCode``,
``merchantReference``, ``amount.value``, ``amount.currency``, ``eventCode``,
``success``. The normalizer reads those and nothing else (the payload it gets
is :attr:`verifiers.adyen.Item.signed`). The rest of an item (``eventDate``,
``reason``, ``paymentMethod``, ``additionalData`` with the dispute status and
the refusal reason, the request's ``live``) is not covered: anyone holding a
signed item could change it, so it stays in ``raw`` only, never in a typed
field. ``raw`` is the item as Adyen sent it (its ``{"NotificationRequestItem":
...}`` element of the array, byte for byte).

- ``time``: null. Adyen's only time, ``eventDate``, is unsigned; so there is no
  ``max_age_s`` or ``max_future_s`` check either, and deduplication is the replay
  guard.
- Event id: a hash of (``eventCode``, ``pspReference``, ``success``): Adyen's
  duplicates share the event code and the PSP reference, and a notification
  whose outcome changed is a new event.
- Flow and status: from ``eventCode`` and ``success`` together, the table
  below keyed ``<eventCode>:<success>`` (``provider_status`` says the same, and
  an instance's ``statuses`` override uses these keys). An event code the table
  does not name is published as a webhook event ``adyen.<eventCode>``
  (``REPORT_AVAILABLE``, ``RECURRING_CONTRACT``, ``AUTHORISATION_ADJUSTMENT``,
  ``CANCEL_OR_REFUND``, whose outcome, cancelled or refunded, only the unsigned
  ``additionalData`` says, ...); a known code with an outcome the table does not
  have is ``unknown_status``. Event codes:
  https://docs.adyen.com/development-resources/webhooks/webhook-types#event-codes,
  disputes https://docs.adyen.com/risk-management/disputes-api/dispute-notifications.
- ``amount``: ``amount.value`` in minor units with Adyen's own currency table
  (:data:`schemas.currencies.ADYEN`); for a modification (capture, refund) the
  modification's own amount. ``amount_received`` and ``fee`` are null: the
  signed fields do not say them.
- ``merchant_order_id``: ``merchantReference``; ``provider_order_id``: the
  payment, ``originalReference`` for a modification or a dispute, else
  ``pspReference``. ``failure_reason`` is null (``reason`` is unsigned).

Statuses: an ``AUTHORISATION`` that succeeded is ``authorized``; a ``CAPTURE``
that succeeded ``succeeded``. Adyen sends ``CAPTURE`` by default only for
manual captures: a merchant with automatic capture gets ``authorized`` and no
later ``succeeded`` unless the ``CAPTURE`` event code is enabled. A capture that
failed (``CAPTURE`` false, ``CAPTURE_FAILED``, which Adyen resubmits) and a
cancellation that failed leave the payment ``authorized``.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import orjson

import verifiers.adyen
from relay.providers.base import Ack, BatchItem, Profile, body_identity
from relay.samples import Sample, SampleBuilder, SampleEvent
from schemas.currencies import ADYEN as ADYEN_CURRENCIES
from schemas.currencies import currency_code, minor_units
from schemas.errors import NormalizationError
from schemas.event import CanonicalEvent, Message, NormalizeContext, payment_event_v2, webhook_event
from schemas.payload import array_member
from schemas.values import map_status, stable_id
from verifiers import VerificationError

# Event code -> flow; each code's outcomes are in STATUSES.
FLOWS: Mapping[str, str] = {
    "AUTHORISATION": "payin",
    "CAPTURE": "payin",
    "CAPTURE_FAILED": "payin",
    "CANCELLATION": "payin",
    "TECHNICAL_CANCEL": "payin",
    "OFFER_CLOSED": "payin",
    "REFUND": "refund",
    "REFUND_FAILED": "refund",
    "REFUNDED_REVERSED": "refund",
    "REFUND_WITH_DATA": "refund",
    "POSTPONED_REFUND": "refund",
    "VOID_PENDING_REFUND": "refund",
    "REQUEST_FOR_INFORMATION": "dispute",
    "NOTIFICATION_OF_CHARGEBACK": "dispute",
    "CHARGEBACK": "dispute",
    "SECOND_CHARGEBACK": "dispute",
    "CHARGEBACK_REVERSED": "dispute",
    "PREARBITRATION_WON": "dispute",
    "PREARBITRATION_LOST": "dispute",
    "PAYOUT_THIRDPARTY": "payout",
    "PAYOUT_DECLINE": "payout",
    "PAYOUT_EXPIRE": "payout",
    "PAIDOUT_REVERSED": "payout",
}
STATUSES: Mapping[str, str] = {
    "AUTHORISATION:true": "authorized",
    "AUTHORISATION:false": "failed",
    "CAPTURE:true": "succeeded",
    "CAPTURE:false": "authorized",
    "CAPTURE_FAILED:true": "authorized",
    "CANCELLATION:true": "canceled",
    "CANCELLATION:false": "authorized",
    "TECHNICAL_CANCEL:true": "canceled",
    "OFFER_CLOSED:true": "expired",
    "REFUND:true": "succeeded",
    "REFUND:false": "failed",
    "REFUND_FAILED:true": "failed",
    "REFUNDED_REVERSED:true": "failed",
    "REFUND_WITH_DATA:true": "succeeded",
    "REFUND_WITH_DATA:false": "failed",
    "POSTPONED_REFUND:true": "pending",
    "VOID_PENDING_REFUND:true": "canceled",
    "REQUEST_FOR_INFORMATION:true": "pending",
    "NOTIFICATION_OF_CHARGEBACK:true": "pending",
    "CHARGEBACK:true": "pending",
    "SECOND_CHARGEBACK:true": "lost",
    "CHARGEBACK_REVERSED:true": "won",
    "PREARBITRATION_WON:true": "won",
    "PREARBITRATION_LOST:true": "lost",
    "PAYOUT_THIRDPARTY:true": "processing",
    "PAYOUT_THIRDPARTY:false": "failed",
    "PAYOUT_DECLINE:true": "canceled",
    "PAYOUT_EXPIRE:true": "expired",
    "PAIDOUT_REVERSED:true": "failed",
}


def items(body: bytes, params: verifiers.adyen.Params) -> tuple[BatchItem, ...]:
    """The request's notification items: each one's bytes, signed fields and identity
    (the SHA-256 of its signed string)."""
    try:
        read = verifiers.adyen.read(body)
    except VerificationError as error:
        # Reached only by a body verified under other options (a replay after a config
        # change): the live path refused it with the same error before this.
        raise NormalizationError("malformed_json", str(error)) from None
    elements = array_member(body, "notificationItems")
    return tuple(
        BatchItem(raw, item.signed, hashlib.sha256(item.content).hexdigest())
        for (raw, _), item in zip(elements, read, strict=True)
    )


def identity(body: bytes, params: verifiers.adyen.Params) -> str:
    """The identity of a whole request (named only when it cannot be read as items)."""
    try:
        return hashlib.sha256(verifiers.adyen.signed_content(body, params)).hexdigest()
    except VerificationError:
        return body_identity(body, params)


def normalize(message: Message, ctx: NormalizeContext) -> CanonicalEvent:
    signed: Mapping[str, str] = message.payload
    code, success = signed["eventCode"], signed["success"]
    if not code:
        raise NormalizationError("missing_field", "the field 'eventCode' is missing")
    event_id = stable_id(code, signed["pspReference"], success)
    flow = FLOWS.get(code)
    if flow is None:
        return webhook_event(message, ctx, event_id=event_id, sender_type=code)
    provider_status = f"{code}:{success}"
    status = map_status(provider_status, "eventCode:success", STATUSES, ctx.status_overrides)
    currency = signed["currency"] or None
    return payment_event_v2(
        message,
        ctx,
        event_id=event_id,
        flow=flow,
        status=status,
        provider_status=provider_status,
        time=None,
        merchant_order_id=signed["merchantReference"] or None,
        provider_order_id=signed["originalReference"] or signed["pspReference"] or None,
        amount=minor_units(signed["value"], currency, ADYEN_CURRENCIES, "amount.value"),
        currency=None if currency is None else currency_code(currency, ADYEN_CURRENCIES),
    )


def order_id(payload: Any, metadata_key: str | None) -> str | None:
    """The order a payment item is keyed by (its merchant reference, else the payment's
    PSP reference); None for an item published as a webhook event."""
    if not isinstance(payload, Mapping) or payload.get("eventCode") not in FLOWS:
        return None
    return (
        payload.get("merchantReference")
        or payload.get("originalReference")
        or payload.get("pspReference")
        or None
    )


def _psp(order: str, what: str) -> str:
    """A 16-character PSP reference, as Adyen's, stable for one order and one step."""
    return uuid.uuid5(uuid.NAMESPACE_URL, f"{order}/{what}").hex[:16].upper()


def _notification(*items: tuple[str, str, int, str]) -> SampleBuilder:
    """A standard webhook with one item per ``(eventCode, success, value, currency)``,
    all about one order's payment (its merchant reference). ``amount`` comes first in
    each item, so that the first digit of the body is a signed one."""

    def build(now: float, order: str) -> Sample:
        payment = _psp(order, "payment")
        notification_items = []
        for position, (code, success, value, currency) in enumerate(items):
            modification = code != "AUTHORISATION"
            item: dict[str, object] = {
                "amount": {"currency": currency, "value": value},
                "eventCode": code,
                "eventDate": datetime.fromtimestamp(int(now), UTC).isoformat(),
                "merchantAccountCode": "RelayTestMerchant",
                "merchantReference": order,
                "paymentMethod": "visa",
                "pspReference": _psp(order, f"{code}/{position}") if modification else payment,
                "reason": "",
                "success": success,
            }
            if modification:
                item["originalReference"] = payment
            notification_items.append({"NotificationRequestItem": item})
        body = {"live": "false", "notificationItems": notification_items}
        return Sample(orjson.dumps(body))

    return build


SAMPLES: Mapping[str, SampleEvent] = {
    "AUTHORISATION": SampleEvent(
        _notification(("AUTHORISATION", "true", 1000, "EUR")), "payment.payin.authorized"
    ),
    "CAPTURE": SampleEvent(
        _notification(("CAPTURE", "true", 1000, "EUR")), "payment.payin.succeeded"
    ),
    "REFUND": SampleEvent(
        _notification(("REFUND", "true", 500, "EUR")), "payment.refund.succeeded"
    ),
    "NOTIFICATION_OF_CHARGEBACK": SampleEvent(
        _notification(("NOTIFICATION_OF_CHARGEBACK", "true", 1000, "EUR")),
        "payment.dispute.pending",
    ),
    "REPORT_AVAILABLE": SampleEvent(
        _notification(("REPORT_AVAILABLE", "true", 0, "EUR")), "adyen.REPORT_AVAILABLE"
    ),
    "batch": SampleEvent(
        _notification(
            ("AUTHORISATION", "true", 5000, "JPY"),
            ("CAPTURE", "true", 5000, "JPY"),
            ("REFUND", "true", 1250, "KWD"),
        ),
        ("payment.payin.authorized", "payment.payin.succeeded", "payment.refund.succeeded"),
    ),
}

BODY_LIMIT = 128 * 1024
"""The ``adyen`` instances' default body limit. The signatures are inside the body, so
every request is parsed whole before any of them can be checked: measured, a refused body
near 1 MiB cost 50 to 77 ms of CPU (members, numbers) against 2 ms for a header-signed
profile. Adyen's JSON webhooks carry one item of a few KB (SOAP ones up to six); 128 KiB
holds 100 items of 1.3 KB and bounds a forged body's parse at about 10 ms. An instance
whose items are larger raises it with ``max_body_bytes``."""

PROFILE = Profile(
    name="adyen",
    document=None,
    scheme=verifiers.adyen,
    params=verifiers.adyen.Params(),
    fixed_params=("form",),
    basic_auth=True,
    normalize=normalize,
    items=items,
    identity=identity,
    order_id=order_id,
    samples=SAMPLES,
    ack=Ack(body=b"[accepted]"),
    timeout_s=10,
    max_body_bytes=BODY_LIMIT,
)

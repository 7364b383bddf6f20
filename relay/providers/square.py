"""Square: webhook events to payment events (version 2), or to generic webhook events.

Sources: Square's webhook reference (developer.squareup.com/reference/square/webhooks:
``payment.created``/``payment.updated``, ``refund.created``/``refund.updated``,
``dispute.created``, ``dispute.state.updated`` (``dispute.state.changed`` before
2021), ``payout.sent``/``payout.paid``/``payout.failed``) and the object types of
square/square-python-sdk (``src/square/types``: ``payment.py``, ``payment_refund.py``,
``dispute.py``/``dispute_state.py``, ``payout.py``/``payout_status.py``); amounts per
developer.squareup.com/docs/build-basics/working-with-monetary-amounts.

The body is an event: ``event_id`` (the event id, unique per event and the same on every
retry), ``type``, ``created_at`` (RFC 3339, the event's time) and ``data`` with ``type``
(the object kind), ``id`` and ``object.<kind>``, the object as it was when Square sent
the event. Events whose type starts with ``payment.``, ``refund.``, ``dispute.`` or
``payout.`` are payment events; any other type is a generic webhook event,
``square.<type>``. An event whose ``data.object`` does not hold the object its type
announces is ``unknown_event_type``.

Flow: ``payment`` is ``payin``, ``refund`` is ``refund``, ``dispute`` is ``dispute``,
``payout`` (Square paying the balance out to the seller's bank) is ``payout``.

Status: the object's ``status`` (a dispute's ``state``) through the table of its kind
below; ``provider_status`` is that value as sent. A payment is ``APPROVED`` once the card
is authorized and not yet captured (delayed capture), ``COMPLETED`` once captured. A
payment keeps ``COMPLETED`` when it is refunded: the refunds are their own events, in the
refund flow. A dispute ``ACCEPTED`` by the seller is lost; an inquiry closed without a
chargeback (``INQUIRY_CLOSED``) is canceled. An instance's ``statuses`` override these
keys, and an unknown value is ``unknown_status``.

Fields:
- ``amount`` and ``currency``: the object's ``amount_money`` (a payment's ``total_money``,
  which adds the tip, when present). Money amounts are integers "in the smallest
  denomination of the currency", ISO 4217's minor unit (:data:`ISO_4217`: 500 JPY is
  500, 1000 KWD is 1.000); an unknown currency is ``unknown_currency``.
- ``amount_received``: a ``COMPLETED`` payment's ``total_money`` (what was captured);
  null otherwise. ``fee`` is null: ``processing_fee`` may arrive only in a later update
  and may hold adjustments.
- ``merchant_order_id``: a payment's ``reference_id`` (the seller's own id of the
  payment, Square's only field for it); refunds, disputes and payouts carry none.
- ``provider_order_id``: the payment the object belongs to, so that a payment, its
  refunds and its disputes share it: a payment's ``id``, a refund's ``payment_id``, a
  dispute's ``disputed_payment.payment_id``; a payout's own ``id``.
- ``failure_reason``: a failed payment's first ``card_details.errors[].code``
  (``CARD_DECLINED``, ...), a dispute's ``reason`` (``NO_KNOWLEDGE``, ...); else null.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

import orjson

import verifiers.square
from relay.providers.base import Ack, Profile, fields_only
from relay.samples import Sample, SampleBuilder, SampleEvent, iso_utc
from schemas.currencies import ISO_4217, currency_code, minor_units
from schemas.errors import NormalizationError
from schemas.event import (
    CanonicalEvent,
    Message,
    NormalizeContext,
    payment_event_v2,
    webhook_event,
)
from schemas.values import (
    field,
    from_iso,
    loose_text,
    map_status,
    require_object,
    required_text,
    text,
)

PAYMENT_STATUSES = {
    "PENDING": "pending",
    "APPROVED": "authorized",
    "COMPLETED": "succeeded",
    "CANCELED": "canceled",
    "FAILED": "failed",
}
REFUND_STATUSES = {
    "PENDING": "pending",
    "COMPLETED": "succeeded",
    "REJECTED": "failed",
    "FAILED": "failed",
}
DISPUTE_STATES = {
    "INQUIRY_EVIDENCE_REQUIRED": "pending",
    "INQUIRY_PROCESSING": "under_review",
    "INQUIRY_CLOSED": "canceled",
    "EVIDENCE_REQUIRED": "pending",
    "PROCESSING": "under_review",
    "WON": "won",
    "LOST": "lost",
    "ACCEPTED": "lost",
}
PAYOUT_STATUSES = {
    "SENT": "processing",
    "PAID": "succeeded",
    "FAILED": "failed",
}

# Object kind (the event type's first word) -> (flow, status field, status table).
_KINDS: Mapping[str, tuple[str, str, Mapping[str, str]]] = {
    "payment": ("payin", "status", PAYMENT_STATUSES),
    "refund": ("refund", "status", REFUND_STATUSES),
    "dispute": ("dispute", "state", DISPUTE_STATES),
    "payout": ("payout", "status", PAYOUT_STATUSES),
}


def normalize(message: Message, ctx: NormalizeContext) -> CanonicalEvent:
    payload = require_object(message.payload)
    event_id = required_text(payload, "event_id")
    event_type = required_text(payload, "type")
    time = from_iso(field(payload, "created_at"), "created_at")
    kind = event_type.partition(".")[0]
    if kind not in _KINDS:
        return webhook_event(message, ctx, event_id=event_id, sender_type=event_type, time=time)
    obj = _object(payload, kind, event_type)
    flow, status_field, table = _KINDS[kind]
    provider_status = field(obj, status_field, required=True)
    status = map_status(provider_status, status_field, table, ctx.status_overrides)
    money = field(obj, "total_money") if kind == "payment" else None
    money = require_object(money or field(obj, "amount_money", required=True), "the money")
    currency = field(money, "currency")
    amount = minor_units(field(money, "amount", required=True), currency, ISO_4217)
    return payment_event_v2(
        message,
        ctx,
        event_id=event_id,
        flow=flow,
        status=status,
        provider_status=provider_status,
        time=time,
        merchant_order_id=text(field(obj, "reference_id"), "reference_id")
        if kind == "payment"
        else None,
        provider_order_id=_payment_id(kind, obj),
        amount=amount,
        amount_received=amount if kind == "payment" and provider_status == "COMPLETED" else None,
        currency=currency_code(currency, ISO_4217),
        failure_reason=_failure_reason(kind, obj),
    )


def order_id(payload: Any) -> str | None:
    """The order a payment event of this payload is keyed by (a payment's
    ``reference_id``, else the payment's id), read leniently; None for a generic event's."""
    if not isinstance(payload, dict):
        return None
    kind = str(payload.get("type")).partition(".")[0]
    if kind not in _KINDS:
        return None
    obj = payload.get("data")
    for name in ("object", kind):
        obj = obj.get(name) if isinstance(obj, dict) else None
    if not isinstance(obj, dict):
        return None
    if kind == "payment":
        return loose_text(obj, "reference_id") or loose_text(obj, "id")
    if kind == "dispute":
        return loose_text(obj, "disputed_payment", "payment_id")
    return loose_text(obj, "payment_id" if kind == "refund" else "id")


def _object(payload: Mapping[str, Any], kind: str, event_type: str) -> Mapping[str, Any]:
    data = require_object(field(payload, "data", required=True), "'data'")
    objects = require_object(field(data, "object", required=True), "'data.object'")
    obj = field(objects, kind)
    if obj is None:
        raise NormalizationError(
            "unknown_event_type", f"a {event_type!r} event carries no {kind!r} object"
        )
    return require_object(obj, f"'data.object.{kind}'")


def _payment_id(kind: str, obj: Mapping[str, Any]) -> str:
    if kind == "refund":
        return required_text(obj, "payment_id")
    if kind == "dispute":
        disputed = require_object(
            field(obj, "disputed_payment", required=True), "'disputed_payment'"
        )
        return required_text(disputed, "payment_id")
    return required_text(obj, "id")


def _failure_reason(kind: str, obj: Mapping[str, Any]) -> str | None:
    if kind == "dispute":
        return text(field(obj, "reason"), "reason")
    if kind != "payment" or field(obj, "status") != "FAILED":
        return None
    card = field(obj, "card_details")
    errors = field(require_object(card, "'card_details'"), "errors") if card else None
    if not errors:
        return None
    if not isinstance(errors, list):
        raise NormalizationError("invalid_field", "the field 'card_details.errors' is not a list")
    first = require_object(errors[0], "'card_details.errors[0]'")
    return text(field(first, "code"), "card_details.errors[0].code")


def _square(event_type: str, kind: str, status: str, **fields: object) -> SampleBuilder:
    """A Square event about one object of a 20.00 USD payment whose ``reference_id`` is
    the order reference."""

    def build(now: float, order: str) -> Sample:
        payment = uuid.uuid5(uuid.NAMESPACE_URL, order).hex[:29]
        obj: dict[str, object] = {
            "id": {"payment": payment, "payout": f"po_{order}"}.get(kind, f"{kind}_{order}"),
            "amount_money": {"amount": 2000, "currency": "USD"},
            "created_at": iso_utc(now - 60),
            "updated_at": iso_utc(now),
            "location_id": "L88917AVBK2S5",
            ("state" if kind == "dispute" else "status"): status,
            **fields,
        }
        if kind == "payment":
            obj |= {"total_money": obj["amount_money"], "reference_id": order}
        elif kind == "refund":
            obj["payment_id"] = payment
        elif kind == "dispute":
            obj["disputed_payment"] = {"payment_id": payment}
        body = {
            "merchant_id": "ML82H4QPKMGXY",
            "type": event_type,
            "event_id": str(uuid.uuid4()),
            "created_at": iso_utc(now),
            "data": {"type": kind, "id": obj["id"], "object": {kind: obj}},
        }
        return Sample(orjson.dumps(body))

    return build


def _square_customer(now: float, order: str) -> Sample:
    body = {
        "merchant_id": "ML82H4QPKMGXY",
        "type": "customer.updated",
        "event_id": str(uuid.uuid4()),
        "created_at": iso_utc(now),
        "data": {
            "type": "customer",
            "id": "JDKYHBWT1D4F8MFH63DBMEN8Y4",
            "object": {"customer": {"id": "JDKYHBWT1D4F8MFH63DBMEN8Y4", "reference_id": order}},
        },
    }
    return Sample(orjson.dumps(body))


SAMPLES: Mapping[str, SampleEvent] = {
    "payment.updated": SampleEvent(
        _square("payment.updated", "payment", "COMPLETED"), "payment.payin.succeeded"
    ),
    "payment.created": SampleEvent(
        _square("payment.created", "payment", "APPROVED"), "payment.payin.authorized"
    ),
    "refund.updated": SampleEvent(
        _square("refund.updated", "refund", "COMPLETED"), "payment.refund.succeeded"
    ),
    "dispute.created": SampleEvent(
        _square("dispute.created", "dispute", "EVIDENCE_REQUIRED", reason="NO_KNOWLEDGE"),
        "payment.dispute.pending",
    ),
    "payout.paid": SampleEvent(
        _square("payout.paid", "payout", "PAID"), "payment.payout.succeeded"
    ),
    "customer.updated": SampleEvent(_square_customer, "square.customer.updated"),
}

PROFILE = Profile(
    name="square",
    document=None,
    scheme=verifiers.square,
    # notification_url has no default: each instance sets its subscription's URL.
    params=verifiers.square.Params(),
    normalize=normalize,
    order_id=fields_only(order_id),
    samples=SAMPLES,
    ack=Ack(),
    timeout_s=10,
)

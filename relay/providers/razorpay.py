"""Razorpay: webhook events to payment events (version 2), or to generic webhook events.

Sources: razorpay.com/docs/webhooks (the event envelope, the ``X-Razorpay-Event-Id``
header, "respond with 2xx"), razorpay.com/docs/webhooks/payloads (payments, refunds,
disputes, settlements; RazorpayX payouts), razorpay.com/docs/api (payment, refund, dispute,
settlement and payout entities: amounts "in the smallest unit of the currency", 50000 is
500 INR) and razorpay-python's mocks (``tests/mocks/fake_payment_authorized_webhook.json``,
``fake_refund.json``, ``dispute.json``, ``fake_settlement.json``, ``fake_payout.json``).

The body is an event: ``event`` (its type), ``contains`` (the entities it carries),
``payload.<entity>.entity`` (each as it was when Razorpay sent the event) and
``created_at`` (UNIX seconds, the event's time). The body holds no event id: Razorpay
sends it in ``X-Razorpay-Event-Id``, the same on every retry, which the signature does not
cover; it is the event id when present (deduplication claims the signed body's identity),
else a hash of the body. Payment events, by the type's prefix:

- ``payment.dispute.*``: flow ``dispute``, the ``dispute`` entity's ``status``;
- ``payment.*``: flow ``payin``, the ``payment`` entity's ``status``;
- ``refund.*``: flow ``refund``, the ``refund`` entity's ``status``;
- ``payout.*`` (RazorpayX) and ``settlement.*`` (Razorpay paying the balance out to the
  merchant): flow ``payout``, the ``payout`` or ``settlement`` entity's ``status``.

Every other event (``order.paid``, ``invoice.*``, ``subscription.*``, ...) is a generic
webhook event ``razorpay.<event>``. An event without the entity its type announces is
``unknown_event_type``.

Status: the entity's own ``status`` through its table below, so a late delivery says what
the entity was when sent (Razorpay's SDK mock sends a ``payment.authorized`` event whose
payment is already ``captured``: succeeded). A payout ``reversed`` after it was processed
(the bank returned it) is failed. An instance's ``statuses`` override these and an unknown
value is ``unknown_status``.

Fields:
- ``amount``, ``currency``: the entity's ``amount`` and ``currency`` in the currency's
  smallest unit, ISO 4217's (:data:`schemas.currencies.ISO_4217`: paise for INR, 1000 KWD
  fils is 1.000 KWD, JPY whole); ``fee``: a payment's or settlement's ``fees``/``fee``
  (Razorpay's fee, GST included), a payout's ``fees``.
- ``amount_received``: a captured payment's ``amount``; else null.
- ``merchant_order_id``: the value under the instance's ``order_id_metadata_key`` in the
  entity's ``notes`` (the merchant's key-value pairs), else null.
- ``provider_order_id``: the payment, so a payment, its refunds and its disputes share it
  (a payment's ``id``, a refund's or dispute's ``payment_id``); a payout's or settlement's
  own ``id``.
- ``failure_reason``: a payment's ``error_code`` (``BAD_REQUEST_ERROR``, ...), a dispute's
  ``reason_code``, a payout's ``status_details.reason``; else null.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

import orjson

import verifiers.hmac_header
from relay.providers.base import Ack, Profile, body_id, hmac_content_identity
from relay.samples import Sample, SampleBuilder, SampleEvent
from schemas.currencies import ISO_4217, currency_code, minor_units
from schemas.errors import NormalizationError
from schemas.event import (
    CanonicalEvent,
    Message,
    NormalizeContext,
    header_id,
    payment_event_v2,
    webhook_event,
)
from schemas.values import (
    field,
    from_unix,
    loose_text,
    map_status,
    require_object,
    required_text,
    text,
)

PAYMENT_STATUSES = {
    "created": "pending",
    "authorized": "authorized",
    "captured": "succeeded",
    "refunded": "refunded",
    "failed": "failed",
}
REFUND_STATUSES = {
    "pending": "pending",
    "processed": "succeeded",
    "failed": "failed",
}
DISPUTE_STATUSES = {
    "open": "pending",
    "under_review": "under_review",
    "won": "won",
    "lost": "lost",
    "closed": "canceled",
}
PAYOUT_STATUSES = {
    "queued": "pending",
    "pending": "pending",
    "processing": "processing",
    "processed": "succeeded",
    "rejected": "failed",
    "failed": "failed",
    "reversed": "failed",
    "cancelled": "canceled",
}
SETTLEMENT_STATUSES = {
    "created": "pending",
    "processed": "succeeded",
    "failed": "failed",
}

# Event type prefix, longest first -> (entity, flow, status table).
_KINDS: tuple[tuple[str, str, str, Mapping[str, str]], ...] = (
    ("payment.dispute.", "dispute", "dispute", DISPUTE_STATUSES),
    ("payment.", "payment", "payin", PAYMENT_STATUSES),
    ("refund.", "refund", "refund", REFUND_STATUSES),
    ("payout.", "payout", "payout", PAYOUT_STATUSES),
    ("settlement.", "settlement", "payout", SETTLEMENT_STATUSES),
)
# Where each entity names the payment it belongs to; payouts and settlements name themselves.
_PAYMENT_ID = {"payment": "id", "refund": "payment_id", "dispute": "payment_id"}
_FEE = {"payment": "fee", "settlement": "fees", "payout": "fees"}


def normalize(message: Message, ctx: NormalizeContext) -> CanonicalEvent:
    payload = require_object(message.payload)
    event_type = required_text(payload, "event")
    event_id = header_id(message, ctx) or body_id(message)
    time = from_unix(field(payload, "created_at"), "created_at")
    kind = _kind(event_type)
    if kind is None:
        return webhook_event(message, ctx, event_id=event_id, sender_type=event_type, time=time)
    name, flow, table = kind
    entity = _entity(payload, name, event_type)
    provider_status = field(entity, "status", required=True)
    status = map_status(provider_status, "status", table, ctx.status_overrides)
    currency = field(entity, "currency")
    amount = minor_units(field(entity, "amount", required=True), currency, ISO_4217)
    fee_field = _FEE.get(name)
    return payment_event_v2(
        message,
        ctx,
        event_id=event_id,
        flow=flow,
        status=status,
        provider_status=provider_status,
        time=time,
        merchant_order_id=_merchant_order_id(entity, ctx.order_id_metadata_key),
        provider_order_id=required_text(entity, _PAYMENT_ID.get(name, "id")),
        amount=amount,
        amount_received=amount if name == "payment" and provider_status == "captured" else None,
        fee=minor_units(field(entity, fee_field), currency, ISO_4217, fee_field)
        if fee_field
        else None,
        currency=currency_code(currency, ISO_4217),
        failure_reason=_failure_reason(name, entity),
    )


def order_id(payload: Any, metadata_key: str | None) -> str | None:
    """The order a payment event of this payload is keyed by (the merchant's order id in the
    entity's ``notes`` under ``metadata_key``, else the payment's, payout's or settlement's
    id), read leniently; None for a generic event's."""
    if not isinstance(payload, dict) or not isinstance(payload.get("event"), str):
        return None
    kind = _kind(payload["event"])
    if kind is None:
        return None
    name = kind[0]
    entity = payload.get("payload")
    for key in (name, "entity"):
        entity = entity.get(key) if isinstance(entity, dict) else None
    if not isinstance(entity, dict):
        return None
    merchant = loose_text(entity, "notes", metadata_key) if metadata_key else None
    return merchant or loose_text(entity, _PAYMENT_ID.get(name, "id"))


def _kind(event_type: str) -> tuple[str, str, Mapping[str, str]] | None:
    for prefix, name, flow, table in _KINDS:
        if event_type.startswith(prefix):
            return name, flow, table
    return None


def _entity(payload: Mapping[str, Any], name: str, event_type: str) -> Mapping[str, Any]:
    entities = require_object(field(payload, "payload", required=True), "'payload'")
    wrapper = field(entities, name)
    if wrapper is None:
        raise NormalizationError(
            "unknown_event_type", f"a {event_type!r} event carries no {name!r} entity"
        )
    wrapper = require_object(wrapper, f"'payload.{name}'")
    return require_object(field(wrapper, "entity", required=True), f"'payload.{name}.entity'")


def _merchant_order_id(entity: Mapping[str, Any], key: str | None) -> str | None:
    if not key:
        return None
    notes = field(entity, "notes")
    # Razorpay writes notes without any pair as an empty array.
    if notes is None or notes == []:
        return None
    return text(field(require_object(notes, "'notes'"), key), f"notes.{key}")


def _failure_reason(name: str, entity: Mapping[str, Any]) -> str | None:
    if name == "payment":
        return text(field(entity, "error_code"), "error_code")
    if name == "dispute":
        return text(field(entity, "reason_code"), "reason_code")
    if name == "payout":
        details = field(entity, "status_details")
        if details is None:
            return None
        return text(field(require_object(details, "'status_details'"), "reason"), "reason")
    return None


def _razorpay(event_type: str, name: str, status: str, **fields: object) -> SampleBuilder:
    """A Razorpay event about one entity of a 500.00 INR payment whose ``notes.order_id`` is
    the order reference, with its event id in ``X-Razorpay-Event-Id``."""

    def build(now: float, order: str) -> Sample:
        payment = f"pay_{uuid.uuid5(uuid.NAMESPACE_URL, order).hex[:14]}"
        entity: dict[str, object] = {
            "id": payment if name == "payment" else f"{name[:4]}_{uuid.uuid4().hex[:14]}",
            "entity": name,
            "amount": 50000,
            "currency": "INR",
            "status": status,
            "notes": {"order_id": order},
            "created_at": int(now) - 60,
            **fields,
        }
        if name in ("refund", "dispute"):
            entity["payment_id"] = payment
        body = {
            "entity": "event",
            "account_id": "acc_BFQ7uQEaa7j2z7",
            "event": event_type,
            "contains": [name],
            "payload": {name: {"entity": entity}},
            "created_at": int(now),
        }
        return Sample(orjson.dumps(body), {"X-Razorpay-Event-Id": uuid.uuid4().hex[:14]})

    return build


def _order_paid(now: float, order: str) -> Sample:
    body = {
        "entity": "event",
        "account_id": "acc_BFQ7uQEaa7j2z7",
        "event": "order.paid",
        "contains": ["order"],
        "payload": {"order": {"entity": {"id": "order_DaaS6LOUAASb7Y", "receipt": order}}},
        "created_at": int(now),
    }
    return Sample(orjson.dumps(body), {"X-Razorpay-Event-Id": uuid.uuid4().hex[:14]})


SAMPLES: Mapping[str, SampleEvent] = {
    "payment.captured": SampleEvent(
        _razorpay("payment.captured", "payment", "captured", fee=1180, captured=True),
        "payment.payin.succeeded",
    ),
    "payment.authorized": SampleEvent(
        _razorpay("payment.authorized", "payment", "authorized"), "payment.payin.authorized"
    ),
    "payment.failed": SampleEvent(
        _razorpay("payment.failed", "payment", "failed", error_code="BAD_REQUEST_ERROR"),
        "payment.payin.failed",
    ),
    "refund.processed": SampleEvent(
        _razorpay("refund.processed", "refund", "processed"), "payment.refund.succeeded"
    ),
    "payment.dispute.created": SampleEvent(
        _razorpay("payment.dispute.created", "dispute", "open", reason_code="chargeback"),
        "payment.dispute.pending",
    ),
    "payout.processed": SampleEvent(
        _razorpay("payout.processed", "payout", "processed", fees=590),
        "payment.payout.succeeded",
    ),
    "order.paid": SampleEvent(_order_paid, "razorpay.order.paid"),
}

PROFILE = Profile(
    name="razorpay",
    document=None,
    scheme=verifiers.hmac_header,
    params=verifiers.hmac_header.Params(header="x-razorpay-signature"),
    normalize=normalize,
    identity=hmac_content_identity,
    order_id=order_id,
    order_metadata=True,
    samples=SAMPLES,
    ack=Ack(),
    # Razorpay's pages give no timeout figure; 5 s keeps the ack budget short either way.
    timeout_s=5,
    kept_headers=("x-razorpay-event-id",),
    id_header="x-razorpay-event-id",
)

"""PayPal (REST webhooks): captures, authorizations, orders, refunds, disputes and payouts.

Signature: RSA-SHA256 over ``transmission id|transmission time|webhook id|crc32(body)``
with the certificate ``PAYPAL-CERT-URL`` names (:mod:`verifiers.paypal`), fetched,
checked and cached by :mod:`relay.certificates` (the profile's ``resolve_keys``), or
pinned by the instance (``public_keys``: the certificate's PEM). ``webhook_id`` is
required. PayPal waits for a 2xx and retries a failed delivery up to 25 times over 3
days.

Every notification is ``{id, event_version, create_time, resource_type, event_type,
summary, resource, links}``
(https://developer.paypal.com/api/rest/webhooks/event-names/):

- ``PAYMENT.CAPTURE.*`` but ``REFUNDED`` (resource: a capture) is a ``payin``: the
  status is ``resource.status`` through :data:`CAPTURE_STATUSES`, the id the capture's,
  amount ``resource.amount``.
- ``PAYMENT.CAPTURE.REFUNDED`` and ``PAYMENT.REFUND.*`` (resource: a refund) are a
  ``refund``: ``resource.status`` through :data:`REFUND_STATUSES`, the refund's id and
  amount.
- ``PAYMENT.AUTHORIZATION.*`` is a ``payin``: :data:`AUTHORIZATION_STATUSES`.
- ``CHECKOUT.ORDER.*`` is a ``payin``: :data:`ORDER_STATUSES`, amount the first
  purchase unit's.
- ``CUSTOMER.DISPUTE.*`` is a ``dispute``: ``resource.status``, or for a resolved
  dispute ``RESOLVED:<dispute_outcome.outcome_code>``, through :data:`DISPUTE_STATUSES`;
  id ``dispute_id``, amount ``dispute_amount``.
- ``PAYMENT.PAYOUTSBATCH.*`` is a ``payout``: ``batch_header.batch_status`` through
  :data:`PAYOUT_STATUSES`, id ``payout_batch_id``, amount ``batch_header.amount``;
  ``PAYMENT.PAYOUTS-ITEM.*`` one item of it: ``transaction_status``, id
  ``payout_item_id``, amount ``payout_item.amount``.
- Everything else (billing plans, subscriptions, the older ``PAYMENT.SALE.*``) is a
  generic webhook event ``paypal.<event_type>``.

Amounts are PayPal's major-unit decimal strings (``{"value": "10.99",
"currency_code": "USD"}``; the Payouts API writes ``currency``), kept as sent, the code
checked against ISO 4217.

Decisions:

- Identity: the signed ``PAYPAL-TRANSMISSION-ID`` is the event id, and so the dedup
  key; the body's own ``id`` (``WH-...``) is not: the signature binds the body only by
  its CRC32, which anyone can forge, so a captured transmission posted again with a
  rewritten body (a new ``id``, another status) is a duplicate of the first, never a
  second event. The transmission time must be within ``timestamp_tolerance_s`` (300 s),
  far below the dedup window, so a transmission cannot outlive its dedup key. The cost:
  if PayPal sends a retry as a new transmission, it is a second event with the same
  body ``id`` (in ``raw``), which consumers may merge on.
- What the offline check proves: that PayPal signed this transmission id and time for
  this webhook; not the body (see the README's Security section). ``confirm_with_api``
  asks PayPal's ``verify-webhook-signature`` too.
- Time: the notification's ``create_time``.
- Body limit: 64 KiB by default (:data:`~relay.providers.base.DOCUMENT_BODY_LIMIT`).
- ``PAYMENT.CAPTURE.REVERSED`` (PayPal returned the funds to the payer, a chargeback
  or reversal) is ``refunded``; an order ``APPROVED`` by the buyer and not yet
  captured is ``authorized``; a dispute resolved in the buyer's favour is ``lost``,
  in the seller's or cancelled by the buyer ``won``. An instance's ``statuses``
  override any of them.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

import orjson

import verifiers.paypal
from relay.providers.base import DOCUMENT_BODY_LIMIT, Ack, Profile, fields_only
from relay.samples import Sample, SampleBuilder, SampleEvent, iso_utc
from schemas import NormalizationError
from schemas.currencies import ISO_4217, currency_code
from schemas.event import CanonicalEvent, Message, NormalizeContext, payment_event_v2, webhook_event
from schemas.values import (
    amount,
    field,
    from_iso,
    loose_text,
    map_status,
    require_object,
    required_text,
    text,
)
from verifiers.keys import KeyRing

CAPTURE_STATUSES = {
    "COMPLETED": "succeeded",
    "PENDING": "pending",
    "DECLINED": "failed",
    "DENIED": "failed",
    "FAILED": "failed",
    "PARTIALLY_REFUNDED": "partially_refunded",
    "REFUNDED": "refunded",
    "REVERSED": "refunded",
}
REFUND_STATUSES = {
    "COMPLETED": "succeeded",
    "PENDING": "pending",
    "FAILED": "failed",
    "CANCELLED": "canceled",
}
AUTHORIZATION_STATUSES = {
    "CREATED": "authorized",
    "PENDING": "pending",
    "CAPTURED": "succeeded",
    "PARTIALLY_CAPTURED": "processing",
    "DENIED": "failed",
    "EXPIRED": "expired",
    "VOIDED": "canceled",
}
ORDER_STATUSES = {
    "CREATED": "pending",
    "SAVED": "pending",
    "PAYER_ACTION_REQUIRED": "pending",
    "APPROVED": "authorized",
    "COMPLETED": "succeeded",
    "VOIDED": "canceled",
}
DISPUTE_STATUSES = {
    "OPEN": "under_review",
    "WAITING_FOR_BUYER_RESPONSE": "under_review",
    "WAITING_FOR_SELLER_RESPONSE": "under_review",
    "UNDER_REVIEW": "under_review",
    "RESOLVED:RESOLVED_BUYER_FAVOUR": "lost",
    "RESOLVED:RESOLVED_SELLER_FAVOUR": "won",
    "RESOLVED:CANCELED_BY_BUYER": "won",
}
PAYOUT_STATUSES = {
    "PENDING": "pending",
    "PROCESSING": "processing",
    "UNCLAIMED": "pending",
    "ONHOLD": "under_review",
    "SUCCESS": "succeeded",
    "DENIED": "failed",
    "FAILED": "failed",
    "BLOCKED": "failed",
    "RETURNED": "failed",
    "CANCELED": "canceled",
    "REFUNDED": "refunded",
    "REVERSED": "refunded",
}

_TRANSMISSION = verifiers.paypal.TRANSMISSION_ID


def normalize(message: Message, ctx: NormalizeContext) -> CanonicalEvent:
    event_id = message.headers.get(_TRANSMISSION)
    if not event_id:
        # Never for a verified request: the signature covers the header.
        raise NormalizationError("missing_field", "the PAYPAL-TRANSMISSION-ID header is missing")
    payload = message.payload
    event_type = (
        text(field(payload, "event_type"), "event_type") if isinstance(payload, dict) else None
    )
    if event_type is None:
        # PayPal always names the type; a signed body that does not is passed on, not lost.
        return webhook_event(message, ctx, event_id=event_id, sender_type=None)
    time = from_iso(field(payload, "create_time"), "create_time")
    kind = _kind(event_type)
    if kind is None:
        return webhook_event(message, ctx, event_id=event_id, sender_type=event_type, time=time)
    resource = require_object(field(payload, "resource", required=True), "'resource'")
    flow, table, provider_status, order, money, currency_name = _read(kind, resource)
    return payment_event_v2(
        message,
        ctx,
        event_id=event_id,
        flow=flow,
        status=map_status(provider_status, "status", table, ctx.status_overrides),
        provider_status=provider_status,
        time=time,
        provider_order_id=order,
        amount=amount(field(money, "value", required=True), "amount.value"),
        currency=currency_code(field(money, currency_name), ISO_4217, f"amount.{currency_name}"),
    )


def _kind(event_type: str) -> str | None:
    if event_type == "PAYMENT.CAPTURE.REFUNDED" or event_type.startswith("PAYMENT.REFUND."):
        return "refund"
    for prefix, kind in _PREFIXES:
        if event_type.startswith(prefix):
            return kind
    return None


_PREFIXES = (
    ("PAYMENT.CAPTURE.", "capture"),
    ("PAYMENT.AUTHORIZATION.", "authorization"),
    ("CHECKOUT.ORDER.", "order"),
    ("CUSTOMER.DISPUTE.", "dispute"),
    ("PAYMENT.PAYOUTSBATCH.", "batch"),
    ("PAYMENT.PAYOUTS-ITEM.", "item"),
)


def _read(
    kind: str, resource: Mapping[str, Any]
) -> tuple[str, Mapping[str, str], str, str, Mapping[str, Any], str]:
    """``(flow, status table, provider status, provider order id, amount object, name of its
    currency member)`` of a payment resource."""
    if kind in ("capture", "refund", "authorization"):
        table = {
            "capture": CAPTURE_STATUSES,
            "refund": REFUND_STATUSES,
            "authorization": AUTHORIZATION_STATUSES,
        }[kind]
        flow = "refund" if kind == "refund" else "payin"
        return (
            flow,
            table,
            required_text(resource, "status"),
            required_text(resource, "id"),
            _money(resource, "amount"),
            "currency_code",
        )
    if kind == "order":
        units = field(resource, "purchase_units", required=True)
        if not isinstance(units, list) or not units:
            raise NormalizationError("invalid_field", "purchase_units is not a non-empty list")
        unit = require_object(units[0], "'purchase_units[0]'")
        status = required_text(resource, "status")
        return (
            "payin",
            ORDER_STATUSES,
            status,
            required_text(resource, "id"),
            _money(unit, "amount"),
            "currency_code",
        )
    if kind == "dispute":
        status = required_text(resource, "status")
        if status == "RESOLVED":
            outcome = require_object(
                field(resource, "dispute_outcome", required=True), "'dispute_outcome'"
            )
            status = f"RESOLVED:{required_text(outcome, 'outcome_code')}"
        return (
            "dispute",
            DISPUTE_STATUSES,
            status,
            required_text(resource, "dispute_id"),
            _money(resource, "dispute_amount"),
            "currency_code",
        )
    if kind == "batch":
        header = require_object(field(resource, "batch_header", required=True), "'batch_header'")
        return (
            "payout",
            PAYOUT_STATUSES,
            required_text(header, "batch_status"),
            required_text(header, "payout_batch_id"),
            _money(header, "amount"),
            "currency",
        )
    item = require_object(field(resource, "payout_item", required=True), "'payout_item'")
    return (
        "payout",
        PAYOUT_STATUSES,
        required_text(resource, "transaction_status"),
        required_text(resource, "payout_item_id"),
        _money(item, "amount"),
        "currency",
    )


def _money(holder: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    return require_object(field(holder, name, required=True), f"'{name}'")


def _order(payload: Any) -> str | None:
    """The ``provider_order_id`` a payment event of this payload has (read leniently: a dead
    letter's payload failed :func:`normalize`); None for a generic event's."""
    kind = _kind(loose_text(payload, "event_type") or "")
    if kind in ("capture", "refund", "authorization", "order"):
        return loose_text(payload, "resource", "id")
    if kind == "dispute":
        return loose_text(payload, "resource", "dispute_id")
    if kind == "batch":
        return loose_text(payload, "resource", "batch_header", "payout_batch_id")
    if kind == "item":
        return loose_text(payload, "resource", "payout_item_id")
    return None


async def _resolve_keys(
    body: bytes, headers: Mapping[str, str], params: Any, keys: KeyRing, now: float
) -> KeyRing:
    # Imported here, where the server runs it: the module stays free of aiohttp, so the
    # normalizer is importable without the server (tests/test_providers.py).
    from relay.certificates import resolve_keys

    return await resolve_keys(body, headers, params, keys, now)


def _capture(status: str, event_type: str, value: str = "30.00") -> SampleBuilder:
    def build(now: float, order: str) -> Sample:
        created = iso_utc(now)
        body = {
            "id": f"WH-{uuid.uuid4().hex[:17].upper()}",
            "event_version": "1.0",
            "create_time": created,
            "resource_type": "capture",
            "resource_version": "2.0",
            "event_type": event_type,
            "summary": f"Payment {status.lower()} for $ {value} USD",
            "resource": {
                "id": order,
                "status": status,
                "amount": {"currency_code": "USD", "value": value},
                "final_capture": True,
                "create_time": created,
                "update_time": created,
            },
            "links": [],
        }
        return Sample(orjson.dumps(body), {})

    return build


def _refund(now: float, order: str) -> Sample:
    created = iso_utc(now)
    body = {
        "id": f"WH-{uuid.uuid4().hex[:17].upper()}",
        "event_version": "1.0",
        "create_time": created,
        "resource_type": "refund",
        "resource_version": "2.0",
        "event_type": "PAYMENT.CAPTURE.REFUNDED",
        "summary": "A $ 10.00 USD capture payment was refunded",
        "resource": {
            "id": order,
            "status": "COMPLETED",
            "amount": {"currency_code": "USD", "value": "10.00"},
            "create_time": created,
            "update_time": created,
        },
        "links": [],
    }
    return Sample(orjson.dumps(body), {})


def _plan(now: float, order: str) -> Sample:
    body = {
        "id": f"WH-{uuid.uuid4().hex[:17].upper()}",
        "event_version": "1.0",
        "create_time": iso_utc(now),
        "resource_type": "plan",
        "event_type": "BILLING.PLAN.CREATED",
        "summary": "A billing plan was created",
        "resource": {"id": order, "state": "CREATED", "name": "T-Shirt of the Month Club Plan"},
        "links": [],
    }
    return Sample(orjson.dumps(body), {})


SAMPLES: Mapping[str, SampleEvent] = {
    "PAYMENT.CAPTURE.COMPLETED": SampleEvent(
        _capture("COMPLETED", "PAYMENT.CAPTURE.COMPLETED"), "payment.payin.succeeded"
    ),
    "PAYMENT.CAPTURE.PENDING": SampleEvent(
        _capture("PENDING", "PAYMENT.CAPTURE.PENDING"), "payment.payin.pending"
    ),
    "PAYMENT.CAPTURE.REFUNDED": SampleEvent(_refund, "payment.refund.succeeded"),
    "BILLING.PLAN.CREATED": SampleEvent(_plan, "paypal.BILLING.PLAN.CREATED"),
}

PROFILE = Profile(
    name="paypal",
    document=None,
    scheme=verifiers.paypal,
    params=verifiers.paypal.Params(),
    normalize=normalize,
    order_id=fields_only(_order),
    samples=SAMPLES,
    ack=Ack(),
    timeout_s=10,
    kept_headers=(_TRANSMISSION, verifiers.paypal.TRANSMISSION_TIME),
    # PayPal's notifications are one JSON object of a few KiB: a megabyte is not PayPal.
    max_body_bytes=DOCUMENT_BODY_LIMIT,
    resolve_keys=_resolve_keys,
)

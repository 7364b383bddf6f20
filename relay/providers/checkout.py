"""Checkout.com: webhook events to payment events (version 2), or to generic webhook events.

Sources: checkout.com/docs/developer-resources/webhooks (the event envelope, the
``Cko-Signature`` header and the optional ``Authorization`` value the merchant sets on
the webhook; payment and dispute event types), checkout.com/docs/payments/accept-payments/
format-the-amount-value (minor units, :data:`schemas.currencies.CHECKOUT`) and
api-reference.checkout.com (the ``Webhook`` payloads of payment and dispute events).

The body is an event: ``id`` (``evt_...``, the event id, the same on every retry),
``type``, ``created_on`` (ISO 8601, the event's time) and ``data``, the payment action or
dispute the event reports. The event type is the status: Checkout.com's payment events
carry no status field of their own in every case, and each type names one state. So
``provider_status`` is the type, and the flow is the table the type is in:

- refund types (``payment_refunded``, ``payment_refund_pending``,
  ``payment_refund_declined``): ``refund``;
- any other ``payment_*`` type: ``payin``;
- ``dispute_*``: ``dispute``.

A ``payment_*`` or ``dispute_*`` type the tables do not know is ``unknown_status`` (an
instance maps it with ``statuses = { payment_returned = "failed" }``, read in the pay-in
flow or, for ``dispute_*``, the dispute flow); every other type (``card_verified``,
``source_updated``, ...) is a generic webhook event ``checkout.<type>``.

Readings: ``payment_approved`` is an authorization, ``payment_captured`` the money taken;
a declined capture leaves the authorization (``payment_capture_declined`` is failed: the
capture did not happen and Checkout.com will not retry it), a declined void too
(``payment_void_declined`` is authorized). A dispute expired unanswered or accepted is
lost; one canceled by the issuer, or resolved before it became a chargeback, is canceled.

Fields:
- ``amount``, ``currency``: ``data.amount`` in Checkout.com's minor units
  (:data:`schemas.currencies.CHECKOUT`: JPY and ISK whole, BHD and KWD in thousandths, CLP
  in hundredths); for a capture or refund, the amount of that action.
- ``amount_received``: a captured or paid payment's ``data.amount``; else null.
- ``merchant_order_id``: ``data.reference`` (a payment's reference, the merchant's order
  id) or a dispute's ``data.payment_reference``.
- ``provider_order_id``: the payment (``data.id`` of a payment event, a dispute's
  ``data.payment_id``), so a payment, its refunds and its disputes share it.
- ``failure_reason``: a payment's ``data.response_code`` when it is not approved
  (``20051``, ...), a dispute's ``data.category`` (``fraudulent``, ...); else null.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

import orjson

import verifiers.hmac_header
from relay.providers.base import Ack, Profile, fields_only
from relay.samples import Sample, SampleBuilder, SampleEvent, iso_utc
from schemas.currencies import CHECKOUT as CHECKOUT_CURRENCIES
from schemas.currencies import currency_code, minor_units
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

PAYMENT_TYPES = {
    "payment_pending": "pending",
    "payment_approved": "authorized",
    "payment_declined": "failed",
    "payment_expired": "expired",
    "payment_canceled": "canceled",
    "payment_voided": "canceled",
    "payment_void_declined": "authorized",
    "payment_capture_pending": "processing",
    "payment_captured": "succeeded",
    "payment_capture_declined": "failed",
    "payment_paid": "succeeded",
    "payment_authentication_failed": "failed",
}
REFUND_TYPES = {
    "payment_refund_pending": "pending",
    "payment_refunded": "succeeded",
    "payment_refund_declined": "failed",
}
DISPUTE_TYPES = {
    "dispute_received": "pending",
    "dispute_evidence_required": "pending",
    "dispute_evidence_submitted": "under_review",
    "dispute_arbitration_evidence_submitted": "under_review",
    "dispute_won": "won",
    "dispute_arbitration_won": "won",
    "dispute_lost": "lost",
    "dispute_arbitration_lost": "lost",
    "dispute_accepted": "lost",
    "dispute_expired": "lost",
    "dispute_canceled": "canceled",
    "dispute_resolved": "canceled",
}
_RECEIVED = frozenset({"payment_captured", "payment_paid"})


def normalize(message: Message, ctx: NormalizeContext) -> CanonicalEvent:
    payload = require_object(message.payload)
    event_id = required_text(payload, "id")
    event_type = required_text(payload, "type")
    time = from_iso(field(payload, "created_on"), "created_on")
    flow = _flow(event_type)
    if flow is None:
        return webhook_event(message, ctx, event_id=event_id, sender_type=event_type, time=time)
    table = {"refund": REFUND_TYPES, "dispute": DISPUTE_TYPES}.get(flow, PAYMENT_TYPES)
    status = map_status(event_type, "type", table, ctx.status_overrides)
    data = require_object(field(payload, "data", required=True), "'data'")
    currency = field(data, "currency")
    amount = minor_units(field(data, "amount", required=True), currency, CHECKOUT_CURRENCIES)
    dispute = flow == "dispute"
    return payment_event_v2(
        message,
        ctx,
        event_id=event_id,
        flow=flow,
        status=status,
        provider_status=event_type,
        time=time,
        merchant_order_id=text(
            field(data, "payment_reference" if dispute else "reference"), "reference"
        ),
        provider_order_id=required_text(data, "payment_id" if dispute else "id"),
        amount=amount,
        amount_received=amount if event_type in _RECEIVED else None,
        currency=currency_code(currency, CHECKOUT_CURRENCIES),
        failure_reason=_failure_reason(flow, data),
    )


def order_id(payload: Any) -> str | None:
    """The order a payment event of this payload is keyed by (the merchant's reference,
    else the payment's id), read leniently; None for a generic event's."""
    if not isinstance(payload, dict) or not isinstance(payload.get("type"), str):
        return None
    flow = _flow(payload["type"])
    if flow is None:
        return None
    dispute = flow == "dispute"
    return loose_text(
        payload, "data", "payment_reference" if dispute else "reference"
    ) or loose_text(payload, "data", "payment_id" if dispute else "id")


def _flow(event_type: str) -> str | None:
    if event_type in REFUND_TYPES:
        return "refund"
    if event_type.startswith("payment_"):
        return "payin"
    return "dispute" if event_type.startswith("dispute_") else None


def _failure_reason(flow: str, data: Mapping[str, Any]) -> str | None:
    if flow == "dispute":
        return text(field(data, "category"), "category")
    if field(data, "approved") is not False:
        return None
    return text(field(data, "response_code"), "response_code")


def _checkout(event_type: str, **fields: object) -> SampleBuilder:
    """A Checkout.com event about a 20.00 GBP payment whose ``reference`` is the order."""

    def build(now: float, order: str) -> Sample:
        payment = f"pay_{uuid.uuid5(uuid.NAMESPACE_URL, order).hex[:26]}"
        data: dict[str, object] = {
            "action_id": f"act_{uuid.uuid4().hex[:26]}",
            "amount": 2000,
            "currency": "GBP",
            "processed_on": iso_utc(now),
            **fields,
        }
        if event_type.startswith("dispute_"):
            data |= {
                "id": f"dsp_{uuid.uuid4().hex[:22]}",
                "payment_id": payment,
                "payment_reference": order,
            }
        else:
            data |= {"id": payment, "reference": order}
        body = {
            "id": f"evt_{uuid.uuid4().hex[:26]}",
            "type": event_type,
            "version": "1.0.33",
            "created_on": iso_utc(now),
            "data": data,
        }
        return Sample(orjson.dumps(body))

    return build


def _card_verified(now: float, order: str) -> Sample:
    body = {
        "id": f"evt_{uuid.uuid4().hex[:26]}",
        "type": "card_verified",
        "created_on": iso_utc(now),
        "data": {"id": "pay_y3oqhf46pyzuxjbcn2giaqnb44", "reference": order},
    }
    return Sample(orjson.dumps(body))


SAMPLES: Mapping[str, SampleEvent] = {
    "payment_captured": SampleEvent(
        _checkout("payment_captured", approved=True), "payment.payin.succeeded"
    ),
    "payment_approved": SampleEvent(
        _checkout("payment_approved", approved=True, status="Authorized", response_code="10000"),
        "payment.payin.authorized",
    ),
    "payment_declined": SampleEvent(
        _checkout("payment_declined", approved=False, status="Declined", response_code="20051"),
        "payment.payin.failed",
    ),
    "payment_refunded": SampleEvent(
        _checkout("payment_refunded", approved=True), "payment.refund.succeeded"
    ),
    "dispute_received": SampleEvent(
        _checkout("dispute_received", category="fraudulent", reason_code="10.4"),
        "payment.dispute.pending",
    ),
    "card_verified": SampleEvent(_card_verified, "checkout.card_verified"),
}

PROFILE = Profile(
    name="checkout",
    document=None,
    scheme=verifiers.hmac_header,
    params=verifiers.hmac_header.Params(header="cko-signature"),
    normalize=normalize,
    order_id=fields_only(order_id),
    samples=SAMPLES,
    ack=Ack(),
    # Checkout.com's pages give no timeout figure; 5 s keeps the ack budget short either way.
    timeout_s=5,
)

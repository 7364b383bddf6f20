"""GoCardless: every event of a webhook its own payment (or webhook) event.

A webhook is ``{"events": [...], "meta": {"webhook_id": ...}}``, one or more
events that "need not have anything in common", signed whole: ``Webhook-Signature``
is the hex HMAC-SHA256 of the raw body with the endpoint's secret
(``hmac-header``). GoCardless asks for 498 (Token Invalid) when the signature is
invalid (``refusal_status = 498``) and a 2xx within 10 s, and says that webhooks
may arrive out of order and that "webhooks about unknown events should be ignored,
and return 204 No Content" (the API reference's Webhooks section,
https://developer.gocardless.com/api-reference; the 2xx and 10 s from
https://developer.gocardless.com/getting-started/api/staying-up-to-date-with-webhooks).
Each event is normalized, deduplicated and, if it cannot be normalized,
dead-lettered on its own (:mod:`relay.pipeline`); ``raw`` is the event as sent,
byte for byte, and the whole body is signed, so every field of it may be read.

- Event id: the event's ``id`` (``EV...``); ``time``: its ``created_at``.
- Events of ``payments``, ``refunds`` and ``payouts`` are payment events, the
  flow the resource's (``payin``, ``refund``, ``payout``) except the chargeback
  actions of a payment (``charged_back``, ``chargeback_cancelled``,
  ``chargeback_settled``), which are the ``dispute`` flow. The status is the
  ``action`` through the tables below (``provider_status`` is the action; an
  instance's ``statuses`` override names actions). An action they do not have is
  ``unknown_status``: never guessed. The actions that say nothing of the money
  (a payout's ``fx_rate_confirmed`` and ``tax_exchange_rates_confirmed``, a
  payment's ``surcharge_fee_credited`` and ``surcharge_fee_debited``) and every
  other resource type (mandates, subscriptions, billing requests, ...) are
  webhook events ``gocardless.<resource_type>.<action>``.
- Amounts: null, with ``currency``. GoCardless events carry no amount (the
  resource, which the API serves, has it); nothing is invented.
- ``merchant_order_id``: the value under the instance's ``order_id_metadata_key``
  in the event's ``resource_metadata`` (the metadata the merchant set on the
  payment, refund or payout), else null. ``provider_order_id``: the payment
  (``links.payment``), else the resource itself (``links.refund``,
  ``links.payout``). ``failure_reason``: ``details.cause`` for an event whose
  status is ``failed``, ``canceled`` or ``lost``, GoCardless's "simplified and
  predictable key indicating what triggered the event".

Acknowledgement: ``200`` with no body. GoCardless asks that events a receiver
does not know be ignored with a ``204``; Relay ignores none (it publishes them
as webhook events) and GoCardless counts any 2xx as delivered.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping
from typing import Any

import orjson

import verifiers.hmac_header
from relay.providers.base import Ack, BatchItem, Profile, hmac_content_identity
from relay.samples import Sample, SampleBuilder, SampleEvent, iso_utc
from schemas.errors import NormalizationError
from schemas.event import CanonicalEvent, Message, NormalizeContext, payment_event_v2, webhook_event
from schemas.payload import array_member
from schemas.values import (
    field,
    from_iso,
    loose_text,
    map_status,
    require_object,
    required_text,
    text,
)

PAYMENT_ACTIONS = {
    "created": "pending",
    "customer_approval_granted": "pending",
    "resubmission_requested": "pending",
    "submitted": "processing",
    "confirmed": "succeeded",
    "paid_out": "succeeded",
    "customer_approval_denied": "failed",
    "failed": "failed",
    "late_failure_settled": "failed",
    "cancelled": "canceled",
    "charged_back": "lost",
    "chargeback_settled": "lost",
    "chargeback_cancelled": "won",
}
REFUND_ACTIONS = {
    "created": "pending",
    "paid": "succeeded",
    "refund_settled": "succeeded",
    "failed": "failed",
    "funds_returned": "failed",
    "cancelled": "canceled",
}
PAYOUT_ACTIONS = {"paid": "succeeded"}

# Resource type -> (flow, action table).
_RESOURCES: Mapping[str, tuple[str, Mapping[str, str]]] = {
    "payments": ("payin", PAYMENT_ACTIONS),
    "refunds": ("refund", REFUND_ACTIONS),
    "payouts": ("payout", PAYOUT_ACTIONS),
}
_DISPUTE_ACTIONS = frozenset({"charged_back", "chargeback_settled", "chargeback_cancelled"})
# Actions of a payment resource that are no change of its status.
_INFORMATIONAL = frozenset(
    {
        ("payouts", "fx_rate_confirmed"),
        ("payouts", "tax_exchange_rates_confirmed"),
        ("payments", "surcharge_fee_credited"),
        ("payments", "surcharge_fee_debited"),
    }
)
# The resource's own link, where no payment is linked.
_OWN_LINK = {"payments": "payment", "refunds": "refund", "payouts": "payout"}
_FAILURES = frozenset({"failed", "canceled", "lost"})


def items(body: bytes, params: verifiers.hmac_header.Params) -> tuple[BatchItem, ...]:
    """The webhook's events; each one's identity is the SHA-256 of its bytes, which the
    body's signature pins."""
    events = array_member(body, "events")
    if not events:
        raise NormalizationError("missing_field", "the webhook's 'events' list is empty")
    return tuple(BatchItem(raw, value, hashlib.sha256(raw).hexdigest()) for raw, value in events)


def normalize(message: Message, ctx: NormalizeContext) -> CanonicalEvent:
    event = require_object(message.payload, "the event")
    event_id = required_text(event, "id")
    resource = required_text(event, "resource_type")
    action = required_text(event, "action")
    time = from_iso(field(event, "created_at"), "created_at")
    kind = _RESOURCES.get(resource)
    if kind is None or (resource, action) in _INFORMATIONAL:
        return webhook_event(
            message, ctx, event_id=event_id, sender_type=f"{resource}.{action}", time=time
        )
    flow, table = kind
    if resource == "payments" and action in _DISPUTE_ACTIONS:
        flow = "dispute"
    status = map_status(action, "action", table, ctx.status_overrides)
    links = require_object(field(event, "links") or {}, "'links'")
    provider_order = text(field(links, "payment"), "links.payment") or text(
        field(links, _OWN_LINK[resource]), f"links.{_OWN_LINK[resource]}"
    )
    if provider_order is None:
        raise NormalizationError(
            "missing_field", f"the field 'links.{_OWN_LINK[resource]}' is missing"
        )
    return payment_event_v2(
        message,
        ctx,
        event_id=event_id,
        flow=flow,
        status=status,
        provider_status=action,
        time=time,
        merchant_order_id=_merchant_order_id(event, ctx.order_id_metadata_key),
        provider_order_id=provider_order,
        failure_reason=_failure_reason(event) if status[0] in _FAILURES else None,
    )


def order_id(payload: Any, metadata_key: str | None) -> str | None:
    """The order a payment event is keyed by (the merchant's order id in the event's
    ``resource_metadata``, else the payment or resource linked), read leniently; None
    for an event published as a webhook event."""
    if not isinstance(payload, dict):
        return None
    resource = payload.get("resource_type")
    if not isinstance(resource, str) or resource not in _RESOURCES:
        return None
    if (resource, payload.get("action")) in _INFORMATIONAL:
        return None
    merchant = loose_text(payload, "resource_metadata", metadata_key) if metadata_key else None
    return (
        merchant
        or loose_text(payload, "links", "payment")
        or loose_text(payload, "links", _OWN_LINK[resource])
    )


def _merchant_order_id(event: Mapping[str, Any], key: str | None) -> str | None:
    if not key:
        return None
    metadata = field(event, "resource_metadata")
    if metadata is None:
        return None
    return text(
        field(require_object(metadata, "'resource_metadata'"), key), f"resource_metadata.{key}"
    )


def _failure_reason(event: Mapping[str, Any]) -> str | None:
    details = field(event, "details")
    if details is None:
        return None
    return text(field(require_object(details, "'details'"), "cause"), "details.cause")


def _event_id() -> str:
    return f"EV{uuid.uuid4().hex[:12].upper()}"


def _webhook(*events: tuple[str, str, str]) -> SampleBuilder:
    """A webhook with one event per ``(resource_type, action, cause)``, all about one
    order's payment; the order reference is the payment's metadata ``order_id`` (what an
    instance's ``order_id_metadata_key`` names)."""

    def build(now: float, order: str) -> Sample:
        payment = f"PM{uuid.uuid5(uuid.NAMESPACE_URL, order).hex[:12].upper()}"
        created_at = iso_milliseconds(now)
        documents = []
        for resource, action, cause in events:
            links = {"payment": payment}
            if resource == "refunds":
                links["refund"] = (
                    f"RF{uuid.uuid5(uuid.NAMESPACE_URL, order + '/refund').hex[:12].upper()}"
                )
            elif resource == "payouts":
                links = {"payout": f"PO{uuid.uuid5(uuid.NAMESPACE_URL, order).hex[:12].upper()}"}
            elif resource == "mandates":
                links = {"mandate": f"MD{uuid.uuid5(uuid.NAMESPACE_URL, order).hex[:12].upper()}"}
            documents.append(
                {
                    "id": _event_id(),
                    "created_at": created_at,
                    "resource_type": resource,
                    "action": action,
                    "links": links,
                    "details": {"origin": "gocardless", "cause": cause, "description": cause},
                    "metadata": {},
                    "resource_metadata": {"order_id": order},
                }
            )
        body = {"events": documents, "meta": {"webhook_id": f"WB{uuid.uuid4().hex[:12].upper()}"}}
        return Sample(orjson.dumps(body))

    return build


def iso_milliseconds(now: float) -> str:
    """GoCardless's ``created_at``: UTC with milliseconds and ``Z``."""
    millis = int(now * 1000)
    seconds, remainder = divmod(millis, 1000)
    return iso_utc(seconds).removesuffix("Z") + f".{remainder:03d}Z"


SAMPLES: Mapping[str, SampleEvent] = {
    "payments.confirmed": SampleEvent(
        _webhook(("payments", "confirmed", "payment_confirmed")), "payment.payin.succeeded"
    ),
    "payments.failed": SampleEvent(
        _webhook(("payments", "failed", "insufficient_funds")), "payment.payin.failed"
    ),
    "refunds.paid": SampleEvent(
        _webhook(("refunds", "paid", "refund_paid")), "payment.refund.succeeded"
    ),
    "payouts.paid": SampleEvent(
        _webhook(("payouts", "paid", "payout_paid")), "payment.payout.succeeded"
    ),
    "mandates.created": SampleEvent(
        _webhook(("mandates", "created", "mandate_created")), "gocardless.mandates.created"
    ),
    "batch": SampleEvent(
        _webhook(
            ("payments", "created", "payment_created"),
            ("payments", "submitted", "payment_submitted"),
            ("payments", "confirmed", "payment_confirmed"),
        ),
        ("payment.payin.pending", "payment.payin.processing", "payment.payin.succeeded"),
    ),
}

PROFILE = Profile(
    name="gocardless",
    document=None,
    scheme=verifiers.hmac_header,
    params=verifiers.hmac_header.Params(header="webhook-signature", refusal_status=498),
    normalize=normalize,
    items=items,
    identity=hmac_content_identity,
    order_id=order_id,
    order_metadata=True,
    samples=SAMPLES,
    ack=Ack(),
    timeout_s=10,
)

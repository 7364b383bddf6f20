"""Document 003 (USDT invoices): webhook payload to canonical pay-in event.

Payload fields: ``invoice_reference``, ``merchant_id``, ``status``,
``asset_code`` (``USDT_TRC20`` ...), ``payout_address``, ``amount_usdt_exact``,
``tx_hash``, ``metadata``, ``paid_at`` (ISO 8601 UTC).

Decisions where the document is silent:
- Event id: the instance's id header (``X-Webhook-Id`` unless it names another); without it, a hash of
  (``invoice_reference``, ``status``, ``amount_usdt_exact``, ``paid_at``).
- ``amount`` is ``amount_usdt_exact``; ``amount_received`` equals it only for
  ``confirmed`` (the provider confirms exact payment), else null.
- ``time`` is ``paid_at``; absent (pending, expired) means no ``time`` attribute.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

import orjson

import verifiers.hmac_header
from relay.providers.base import (
    DOCUMENT_BODY_LIMIT,
    Ack,
    Profile,
    fields_only,
    hmac_content_identity,
)
from relay.samples import Sample, SampleBuilder, SampleEvent, iso_utc
from schemas.event import CanonicalEvent, Message, NormalizeContext, header_id, payment_event
from schemas.values import (
    amount,
    asset_network,
    field,
    from_iso,
    loose_text,
    map_status,
    require_object,
    stable_id,
    text,
)

STATUSES = {
    "pending": "pending",
    "confirmed": "succeeded",
    "expired": "expired",
    "cancelled": "failed",
}


def normalize(message: Message, ctx: NormalizeContext) -> CanonicalEvent:
    payload = require_object(message.payload)
    provider_status = field(payload, "status", required=True)
    status = map_status(provider_status, "status", STATUSES, ctx.status_overrides)
    reference = text(field(payload, "invoice_reference", required=True), "invoice_reference")
    exact = amount(field(payload, "amount_usdt_exact"), "amount_usdt_exact")
    paid_at = from_iso(field(payload, "paid_at"), "paid_at")
    asset, network = asset_network(field(payload, "asset_code"))
    event_id = header_id(message, ctx) or stable_id(reference, provider_status, exact, paid_at)
    return payment_event(
        message,
        ctx,
        event_id=event_id,
        flow="payin",
        status=status,
        provider_status=provider_status,
        time=paid_at,
        merchant_order_id=reference,
        amount=exact,
        amount_received=exact if provider_status == "confirmed" else None,
        asset=asset,
        network=network,
        tx_hash=text(field(payload, "tx_hash"), "tx_hash"),
        address=text(field(payload, "payout_address"), "payout_address"),
    )


def order_id(payload: Any) -> str | None:
    """The order this payload's events are keyed by (``invoice_reference``), read leniently
    (a dead letter's payload failed :func:`normalize`); None when it names none."""
    return loose_text(payload, "invoice_reference")


def _sample(status: str, paid: bool) -> SampleBuilder:
    def build(now: float, order: str) -> Sample:
        body = {
            "invoice_reference": order,
            "merchant_id": "550e8400-e29b-41d4-a716-446655440000",
            "status": status,
            "asset_code": "USDT_TRC20",
            "payout_address": "TXyz123abc456",
            "amount_usdt_exact": "150.0000",
            "tx_hash": "abc123def789" if paid else None,
            "metadata": {"orderId": order, "customerId": "user-001"},
            "paid_at": iso_utc(now) if paid else None,
        }
        return Sample(
            orjson.dumps(body), {"X-Webhook-Id": str(uuid.uuid4()), "X-Invoice-Reference": order}
        )

    return build


SAMPLES: Mapping[str, SampleEvent] = {
    "confirmed": SampleEvent(_sample("confirmed", paid=True), "payment.payin.succeeded"),
    "pending": SampleEvent(_sample("pending", paid=False), "payment.payin.pending"),
    "expired": SampleEvent(_sample("expired", paid=False), "payment.payin.expired"),
}

PROFILE = Profile(
    name="usdt-invoice",
    document="003",
    scheme=verifiers.hmac_header,
    params=verifiers.hmac_header.Params(header="x-webhook-signature"),
    normalize=normalize,
    order_id=fields_only(order_id),
    samples=SAMPLES,
    identity=hmac_content_identity,
    ack=Ack(),
    timeout_s=30,
    kept_headers=("x-invoice-reference",),
    id_header="x-webhook-id",
    max_body_bytes=DOCUMENT_BODY_LIMIT,
)

"""Coinbase Commerce: charge events to payment events (version 2), or to generic webhook events.

Sources: docs.cdp.coinbase.com/commerce (webhooks overview: the delivery envelope, the
``X-CC-Webhook-Signature`` header, "respond with 200", retries with backoff up to three
days; the charge resource: ``pricing``, ``payments``, ``timeline`` and its statuses and
``context``s; the event types ``charge:created``, ``charge:pending``, ``charge:confirmed``,
``charge:failed``, ``charge:delayed``, ``charge:resolved``) and coinbase-commerce-python
(``tests/test_webhook.py``: the ``charge:created`` delivery of its signature vector;
``coinbase_commerce/webhook.py``: the event is the body's ``event``).

The body is a delivery: ``id`` (the delivery's number), ``scheduled_for``,
``attempt_number`` and ``event``: ``id`` (a UUID, the event id, the same on every retry),
``type``, ``created_at`` (the event's time) and ``data``, the charge as it was when the
event was sent. ``charge:*`` events are pay-ins; any other type is a generic webhook event
``coinbase-commerce.<type>``.

Status: the charge's latest ``timeline`` entry (the last one), which every charge event
carries and which the event type follows, so a late delivery says what the charge was:
NEW pending, PENDING (a payment seen, awaiting confirmations) processing, COMPLETED and
RESOLVED (an unresolved charge the merchant resolved) succeeded, EXPIRED expired,
CANCELED canceled, FAILED failed. UNRESOLVED is read with its ``context``: UNDERPAID
underpaid, OVERPAID overpaid, DELAYED (paid after expiry), MULTIPLE, MANUAL and OTHER
under_review. ``provider_status`` is the entry's status as sent; an instance's
``statuses`` override the keys above (an UNRESOLVED entry's key is its context), and an
unknown one is ``unknown_status``.

Fields:
- ``amount``, ``currency``, ``fiat_amount``, ``fiat_currency``: the price, ``pricing.local``
  (a major-unit decimal string such as ``"100.00"``, kept as sent, and its fiat
  currency, which must be ISO 4217's): both version 2's amount and the crypto profiles'
  fiat price. Null for a charge without a price (``pricing_type`` ``no_price``).
- ``amount_received``: the sum of the payments' ``value.local.amount`` (exact decimal
  arithmetic), in the same currency; null before any payment.
- ``asset``, ``network``, ``tx_hash``, ``address``: of the latest payment (the last of
  ``payments``): ``value.crypto.currency`` (``USDC``, ``ETH``, ...), ``network`` as a
  canonical code (``ethereum`` is ETH, ``polygon`` POLYGON, ``base`` BASE; others
  upper-cased), ``transaction_id``, and the charge's ``addresses`` entry for that network;
  before any payment, the hash and network of the latest timeline entry that names a
  ``payment``, else null.
- ``merchant_order_id``: the value under the instance's ``order_id_metadata_key`` in the
  charge's ``metadata``, else null; ``provider_order_id``: the charge's ``code``.
- ``failure_reason``: an UNRESOLVED entry's ``context`` (``UNDERPAID``, ...), else null.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import orjson

import verifiers.hmac_header
from relay.providers.base import Ack, Profile
from relay.samples import Sample, SampleBuilder, SampleEvent, iso_utc
from schemas.currencies import ISO_4217, currency_code
from schemas.errors import NormalizationError
from schemas.event import (
    CanonicalEvent,
    Message,
    NormalizeContext,
    payment_event_v2,
    webhook_event,
)
from schemas.values import (
    amount,
    asset_network,
    field,
    from_iso,
    loose_text,
    map_status,
    require_object,
    required_text,
    text,
)

CHARGE_STATUSES = {
    "NEW": "pending",
    "PENDING": "processing",
    "COMPLETED": "succeeded",
    "RESOLVED": "succeeded",
    "EXPIRED": "expired",
    "CANCELED": "canceled",
    "FAILED": "failed",
    # UNRESOLVED, by its context:
    "UNDERPAID": "underpaid",
    "OVERPAID": "overpaid",
    "DELAYED": "under_review",
    "MULTIPLE": "under_review",
    "MANUAL": "under_review",
    "OTHER": "under_review",
}


def normalize(message: Message, ctx: NormalizeContext) -> CanonicalEvent:
    delivery = require_object(message.payload)
    event = require_object(field(delivery, "event", required=True), "'event'")
    event_id = required_text(event, "id")
    event_type = required_text(event, "type")
    time = from_iso(field(event, "created_at"), "created_at")
    if not event_type.startswith("charge:"):
        return webhook_event(message, ctx, event_id=event_id, sender_type=event_type, time=time)
    charge = require_object(field(event, "data", required=True), "'event.data'")
    latest = _latest_entry(charge)
    provider_status = field(latest, "status", required=True)
    context = field(latest, "context") if provider_status == "UNRESOLVED" else None
    key = context if provider_status == "UNRESOLVED" else provider_status
    name = "timeline.context" if provider_status == "UNRESOLVED" else "timeline.status"
    status = map_status(key, name, CHARGE_STATUSES, ctx.status_overrides)
    price, currency = _price(charge)
    payment = _latest_payment(charge)
    asset, network, tx_hash, address = _chain(charge, latest, payment)
    return payment_event_v2(
        message,
        ctx,
        event_id=event_id,
        flow="payin",
        status=status,
        provider_status=provider_status,
        time=time,
        merchant_order_id=_merchant_order_id(charge, ctx.order_id_metadata_key),
        provider_order_id=required_text(charge, "code"),
        amount=price,
        amount_received=_received(charge, currency),
        currency=currency,
        asset=asset,
        network=network,
        fiat_currency=currency,
        fiat_amount=price,
        tx_hash=tx_hash,
        address=address,
        failure_reason=text(context, "timeline.context"),
    )


def order_id(payload: Any, metadata_key: str | None) -> str | None:
    """The order a charge event of this payload is keyed by (the merchant's order id in the
    charge's ``metadata`` under ``metadata_key``, else the charge's code), read leniently;
    None for a generic event's."""
    event = payload.get("event") if isinstance(payload, dict) else None
    if not isinstance(event, dict) or not str(event.get("type")).startswith("charge:"):
        return None
    merchant = loose_text(event, "data", "metadata", metadata_key) if metadata_key else None
    return merchant or loose_text(event, "data", "code")


def _latest_entry(charge: Mapping[str, Any]) -> Mapping[str, Any]:
    timeline = field(charge, "timeline", required=True)
    if not isinstance(timeline, list) or not timeline:
        raise NormalizationError("invalid_field", "the field 'timeline' is not a list of entries")
    return require_object(timeline[-1], "the latest timeline entry")


def _latest_payment(charge: Mapping[str, Any]) -> Mapping[str, Any] | None:
    payments = _payments(charge)
    return payments[-1] if payments else None


def _payments(charge: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    payments = field(charge, "payments")
    if payments is None:
        return []
    if not isinstance(payments, list):
        raise NormalizationError("invalid_field", "the field 'payments' is not a list")
    return [require_object(payment, "a payment") for payment in payments]


def _price(charge: Mapping[str, Any]) -> tuple[str | None, str | None]:
    pricing = field(charge, "pricing")
    local = field(require_object(pricing, "'pricing'"), "local") if pricing else None
    if local is None:
        return None, None
    local = require_object(local, "'pricing.local'")
    price = amount(field(local, "amount", required=True), "pricing.local.amount")
    return price, currency_code(field(local, "currency"), ISO_4217, "pricing.local.currency")


def _received(charge: Mapping[str, Any], currency: str | None) -> str | None:
    total: Decimal | None = None
    for payment in _payments(charge):
        value = require_object(field(payment, "value", required=True), "a payment's 'value'")
        local = require_object(field(value, "local", required=True), "a payment's 'value.local'")
        paid_in = currency_code(field(local, "currency"), ISO_4217, "value.local.currency")
        if currency is not None and paid_in != currency:
            raise NormalizationError(
                "invalid_field", "a payment's local currency is not the charge's pricing currency"
            )
        paid = amount(field(local, "amount", required=True), "value.local.amount")
        total = (total or Decimal(0)) + Decimal(paid or "0")
    # Decimal addition of decimal strings is exact; the sum keeps the longest fraction.
    return None if total is None else amount(total, "amount_received")


def _chain(
    charge: Mapping[str, Any], latest: Mapping[str, Any], payment: Mapping[str, Any] | None
) -> tuple[str | None, str | None, str | None, str | None]:
    """(asset, network, tx hash, address) of the latest payment, else of the latest timeline
    entry naming one."""
    if payment is None:
        seen = field(latest, "payment")
        if seen is None:
            return None, None, None, None
        seen = require_object(seen, "the timeline entry's 'payment'")
        network = text(field(seen, "network"), "payment.network")
        return None, asset_network(network)[1], text(field(seen, "transaction_id"), "tx"), None
    network = text(field(payment, "network"), "payment.network")
    value = require_object(field(payment, "value", required=True), "a payment's 'value'")
    crypto = field(value, "crypto")
    asset = (
        text(field(require_object(crypto, "'value.crypto'"), "currency"), "value.crypto.currency")
        if crypto
        else None
    )
    addresses = field(charge, "addresses")
    address = (
        text(field(require_object(addresses, "'addresses'"), network), "address")
        if addresses and network
        else None
    )
    return (
        asset,
        asset_network(network)[1],
        text(field(payment, "transaction_id"), "transaction_id"),
        address,
    )


def _merchant_order_id(charge: Mapping[str, Any], key: str | None) -> str | None:
    if not key:
        return None
    metadata = field(charge, "metadata")
    if metadata is None:
        return None
    return text(field(require_object(metadata, "'metadata'"), key), f"metadata.{key}")


def _delivery(event_type: str, charge: dict[str, object], now: float) -> Sample:
    body = {
        "id": 1,
        "scheduled_for": iso_utc(now),
        "attempt_number": 1,
        "event": {
            "id": str(uuid.uuid4()),
            "type": event_type,
            "api_version": "2018-03-22",
            "created_at": iso_utc(now),
            "data": charge,
        },
    }
    return Sample(orjson.dumps(body))


def _charge(event_type: str, *statuses: str, paid: bool = False) -> SampleBuilder:
    """A 20.00 USD charge whose ``metadata.order_id`` is the order reference, its timeline
    through ``statuses``, paid in USDC on Base when ``paid``."""

    def build(now: float, order: str) -> Sample:
        tx_hash = "0x" + uuid.uuid5(uuid.NAMESPACE_URL, order).hex * 2
        charge: dict[str, object] = {
            "id": str(uuid.uuid5(uuid.NAMESPACE_URL, order)),
            "code": f"C{uuid.uuid5(uuid.NAMESPACE_URL, order).hex[:7].upper()}",
            "name": "Relay sample",
            "pricing_type": "fixed_price",
            "pricing": {
                "local": {"amount": "20.00", "currency": "USD"},
                "usdc": {"amount": "20.000000", "currency": "USDC"},
            },
            "metadata": {"order_id": order},
            "addresses": {"base": "0x1f0a1e32a4cbd7e8a1ad4f1e3d5e5e3bd0a8c4b2"},
            "timeline": [{"time": iso_utc(now), "status": status} for status in statuses],
            "payments": [
                {
                    "network": "base",
                    "transaction_id": tx_hash,
                    "status": "CONFIRMED",
                    "value": {
                        "local": {"amount": "20.00", "currency": "USD"},
                        "crypto": {"amount": "20.000000", "currency": "USDC"},
                    },
                }
            ]
            if paid
            else [],
            "created_at": iso_utc(now - 60),
        }
        return _delivery(event_type, charge, now)

    return build


SAMPLES: Mapping[str, SampleEvent] = {
    "charge:confirmed": SampleEvent(
        _charge("charge:confirmed", "NEW", "PENDING", "COMPLETED", paid=True),
        "payment.payin.succeeded",
    ),
    "charge:created": SampleEvent(_charge("charge:created", "NEW"), "payment.payin.pending"),
    "charge:pending": SampleEvent(
        _charge("charge:pending", "NEW", "PENDING", paid=True), "payment.payin.processing"
    ),
    "charge:failed": SampleEvent(
        _charge("charge:failed", "NEW", "EXPIRED"), "payment.payin.expired"
    ),
}

PROFILE = Profile(
    name="coinbase-commerce",
    document=None,
    scheme=verifiers.hmac_header,
    params=verifiers.hmac_header.Params(header="x-cc-webhook-signature"),
    normalize=normalize,
    order_id=order_id,
    order_metadata=True,
    samples=SAMPLES,
    ack=Ack(),
    timeout_s=10,
)

"""Document 004 (pay-in orders): webhook event to canonical pay-in event.

The body is the provider's webhook envelope ``{event_id, type,
created_timestamp, data}`` with the pay-in order object in ``data``, or that
order object bare. Order fields used: ``order_id``, ``reference_code``,
``payable_amount``, ``payable_currency`` (``ETH_USDT``), ``chain_id``,
``received_token_amount``, ``fee_amount``, ``pricing_currency``,
``pricing_amount``, ``receiving_address``, ``status``, ``updated_timestamp``
(UNIX seconds), ``transactions``.

Decisions where the document is silent:
- The body is an envelope when it has ``data`` and no ``order_id``; anything
  else is read as a bare order.
- Event id: the envelope's ``event_id`` (the provider's own id, the same on
  every retry); without it, a hash of (``order_id``, ``status``,
  ``received_token_amount``, ``updated_timestamp`` in UTC), so a further
  partial payment within one status is a new event.
- Every envelope ``type`` is published (a late-transaction event too); the
  status is always the order's own. The type stays in ``raw``.
- ``time`` is the order's ``updated_timestamp`` (seconds, as documented for
  the order's times); without it, the envelope's ``created_timestamp``, whose
  unit the document does not give: from 1e11 up it is read as milliseconds,
  below as seconds.
- ``merchant_order_id`` is ``reference_code`` (the merchant's reference; the
  developer's reference stays in ``raw``), ``provider_order_id`` is
  ``order_id``.
- ``amount`` is ``payable_amount`` and ``amount_received`` is
  ``received_token_amount``, both in the token; ``fee`` is ``fee_amount``,
  which the document denominates in ``pricing_currency`` (in the token when
  there is none).
- ``payable_currency`` (``ETH_USDT``) gives asset and network; ``chain_id``
  gives the network when the currency code names none.
- ``fiat_currency``/``fiat_amount`` are ``pricing_currency``/``pricing_amount``
  only when ``pricing_currency`` is set: without it, ``pricing_amount`` is in
  the token and is not a fiat amount.
- ``address`` is ``receiving_address`` (``address`` in older payloads).
- ``tx_hash``: ``transactions[].tx_hash`` when the order's transactions
  carry exactly one distinct hash; with several (an order paid in parts) it
  is null rather than an arbitrary one, and ``raw`` lists them all.
- The deprecated fields the document lists are not read; ``raw`` keeps them.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

import orjson

import verifiers.ed25519_header
from relay.providers.base import DOCUMENT_BODY_LIMIT, Ack, Profile, fields_only
from relay.samples import Sample, SampleBuilder, SampleEvent
from schemas.errors import NormalizationError
from schemas.event import CanonicalEvent, Message, NormalizeContext, payment_event
from schemas.values import (
    amount,
    asset_network,
    field,
    from_unix,
    loose_text,
    map_status,
    require_object,
    required_text,
    stable_id,
    text,
)

STATUSES = {
    "Pending": "pending",
    "Processing": "processing",
    "Completed": "succeeded",
    "Expired": "expired",
    "Underpaid": "underpaid",
}


def normalize(message: Message, ctx: NormalizeContext) -> CanonicalEvent:
    payload = require_object(message.payload)
    envelope: dict[str, Any] = {}
    order = payload
    if "data" in payload and "order_id" not in payload:
        envelope = payload
        order = require_object(payload["data"], "'data'")
    provider_status = field(order, "status", required=True)
    status = map_status(provider_status, "status", STATUSES, ctx.status_overrides)
    order_id = required_text(order, "order_id")
    received = amount(field(order, "received_token_amount"), "received_token_amount")
    updated = from_unix(field(order, "updated_timestamp"), "updated_timestamp")
    event_id = text(field(envelope, "event_id"), "event_id") or stable_id(
        order_id, provider_status, received, updated
    )
    asset, network = asset_network(text(field(order, "payable_currency"), "payable_currency"))
    pricing_currency = text(field(order, "pricing_currency"), "pricing_currency")
    pricing_amount = amount(field(order, "pricing_amount"), "pricing_amount")
    return payment_event(
        message,
        ctx,
        event_id=event_id,
        flow="payin",
        status=status,
        provider_status=provider_status,
        time=updated
        or from_unix(field(envelope, "created_timestamp"), "created_timestamp", unit="auto"),
        merchant_order_id=text(field(order, "reference_code"), "reference_code"),
        provider_order_id=order_id,
        amount=amount(field(order, "payable_amount"), "payable_amount"),
        amount_received=received,
        fee=amount(field(order, "fee_amount"), "fee_amount"),
        asset=asset,
        network=network or asset_network(text(field(order, "chain_id"), "chain_id"))[1],
        fiat_currency=pricing_currency,
        fiat_amount=pricing_amount if pricing_currency is not None else None,
        tx_hash=_tx_hash(field(order, "transactions")),
        address=text(
            field(order, "receiving_address") or field(order, "address"), "receiving_address"
        ),
    )


def order_id(payload: Any) -> str | None:
    """The order this payload's events are keyed by (the order's ``reference_code``, else
    its ``order_id``), read leniently (a dead letter's payload failed :func:`normalize`);
    None when it names none."""
    order = payload
    if isinstance(payload, dict) and "data" in payload and "order_id" not in payload:
        order = payload["data"]
    return loose_text(order, "reference_code") or loose_text(order, "order_id")


def _tx_hash(transactions: Any) -> str | None:
    if transactions is None:
        return None
    if not isinstance(transactions, list):
        raise NormalizationError("invalid_field", "the field 'transactions' is not a list")
    hashes = set()
    for transaction in transactions:
        tx_hash = text(field(require_object(transaction, "a transaction"), "tx_hash"), "tx_hash")
        if tx_hash is not None:
            hashes.add(tx_hash)
    return hashes.pop() if len(hashes) == 1 else None


def _sample(status: str) -> SampleBuilder:
    def build(now: float, order: str) -> Sample:
        received = {"Completed": "103.03", "Underpaid": "50.00"}.get(status, "0")
        body = {
            "event_id": str(uuid.uuid4()),
            "type": "payin.order.updated",
            "created_timestamp": int(now),
            "data": {
                "order_id": str(int(now * 1000)),
                "merchant_id": "1001",
                "reference_code": order,
                "developer_reference_code": f"P-{order}",
                "pricing_currency": "USD",
                "pricing_amount": "100.00",
                "fee_amount": "2.00",
                "payable_currency": "ETH_USDT",
                "payable_amount": "103.03",
                "chain_id": "ETH",
                "receiving_address": "0x1234567890abcdef1234567890abcdef12345678",
                "status": status,
                "received_token_amount": received,
                "created_timestamp": int(now) - 60,
                "updated_timestamp": int(now),
                "expired_timestamp": int(now) + 1800,
                "transactions": [],
            },
        }
        return Sample(orjson.dumps(body))

    return build


SAMPLES: Mapping[str, SampleEvent] = {
    "completed": SampleEvent(_sample("Completed"), "payment.payin.succeeded"),
    "processing": SampleEvent(_sample("Processing"), "payment.payin.processing"),
    "underpaid": SampleEvent(_sample("Underpaid"), "payment.payin.underpaid"),
}

PROFILE = Profile(
    name="payin-order",
    document="004",
    scheme=verifiers.ed25519_header,
    params=verifiers.ed25519_header.Params(),
    normalize=normalize,
    order_id=fields_only(order_id),
    samples=SAMPLES,
    ack=Ack(),
    # The provider's documented default: the ack budget is 1 s.
    timeout_s=2,
    max_body_bytes=DOCUMENT_BODY_LIMIT,
)

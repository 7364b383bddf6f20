"""Paddle Billing: notifications to payment events (version 2), or to generic webhook events.

Sources: developer.paddle.com/webhooks (the notification envelope, "respond within 5
seconds"), developer.paddle.com/api-reference (transaction, adjustment and payout
entities; amounts "as a string in the lowest denomination for a currency") and
paddle-python-sdk's notification fixtures (``tests/Unit/Entities/_fixtures/notification/
entity``, ``examples/_fixtures/webhook_payload.json``) and enums (``TransactionStatus``,
``AdjustmentStatus``, ``CurrencyCode``).

The body is a notification: ``event_id`` (``evt_...``, the event id: Paddle sends the same
one on every retry and to every destination), ``event_type``, ``occurred_at`` (RFC 3339,
the event's time), ``notification_id`` and ``data``, the entity as it was when the event
occurred. Payment events:

- ``transaction.*``: flow ``payin``, the transaction's ``status``;
- ``adjustment.*`` whose ``action`` is ``refund``: flow ``refund``, the adjustment's
  ``status``; ``chargeback``, ``chargeback_warning`` or ``chargeback_reverse``: flow
  ``dispute``, read from the action (the adjustment's status only says whether Paddle
  applied it): a chargeback is lost, a warning pending, a reversed chargeback won, and
  ``provider_status`` is the action;
- ``payout.*``: flow ``payout``, the payout's ``status``.

Every other event, adjustments that credit or reverse a credit included, is a generic
webhook event ``paddle.<event_type>``.

Status: through the tables below; an instance's ``statuses`` override them and an unknown
value is ``unknown_status``. ``paid`` has two readings: Paddle has collected the money but
not yet processed the transaction (invoice number, subscription), which ``completed`` then
says. Paddle recommends fulfilling on ``transaction.completed``, so ``paid`` is
``processing`` by default; ``statuses = { paid = "succeeded" }`` reads it as the money
received. A failed payment attempt (``transaction.payment_failed``) leaves the transaction
``ready`` or ``billed``, pending, since the customer may pay again; ``past_due`` (a renewal
not yet collected) is pending too.

Fields:
- ``amount``, ``fee``, ``currency``: a transaction's ``details.totals`` ``grand_total``
  and ``fee`` (null until paid), an adjustment's ``totals.total``, a payout's ``amount``,
  with the entity's ``currency_code``. Amounts are converted from the lowest denomination
  with :data:`schemas.currencies.PADDLE` (``"1500"`` JPY is 1500); a currency Paddle does
  not list (any three-decimal one) is ``unknown_currency``.
- ``amount_received``: a ``paid`` or ``completed`` transaction's grand total; else null.
- ``merchant_order_id``: the value under the instance's ``order_id_metadata_key`` in the
  entity's ``custom_data`` (transactions and adjustments), else null.
- ``provider_order_id``: the transaction, so a payment, its refunds and its chargebacks
  share it: a transaction's ``id``, an adjustment's ``transaction_id``; a payout's own ``id``.
- ``failure_reason``: a transaction's latest payment attempt's ``error_code`` (``payments``
  lists the latest first: ``declined``, ``authentication_failed``, ...), else null.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

import orjson

import verifiers.paddle
from relay.providers.base import Ack, Profile
from relay.samples import Sample, SampleBuilder, SampleEvent, iso_utc
from schemas.currencies import PADDLE as PADDLE_CURRENCIES
from schemas.currencies import currency_code, minor_units
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

TRANSACTION_STATUSES = {
    "draft": "pending",
    "ready": "pending",
    "billed": "pending",
    "past_due": "pending",
    "paid": "processing",
    "completed": "succeeded",
    "canceled": "canceled",
}
REFUND_STATUSES = {
    "pending_approval": "pending",
    "approved": "succeeded",
    "rejected": "failed",
    "reversed": "canceled",
}
CHARGEBACK_ACTIONS = {
    "chargeback_warning": "pending",
    "chargeback": "lost",
    "chargeback_reverse": "won",
}
PAYOUT_STATUSES = {
    "unpaid": "pending",
    "paid": "succeeded",
}


def normalize(message: Message, ctx: NormalizeContext) -> CanonicalEvent:
    payload = require_object(message.payload)
    event_id = required_text(payload, "event_id")
    event_type = required_text(payload, "event_type")
    time = from_iso(field(payload, "occurred_at"), "occurred_at")
    kind = event_type.partition(".")[0]
    data = field(payload, "data")
    flow = _flow(kind, data)
    if flow is None:
        return webhook_event(message, ctx, event_id=event_id, sender_type=event_type, time=time)
    entity = require_object(data, "'data'")
    currency = field(entity, "currency_code")
    if flow == "payout":
        provider_status = field(entity, "status", required=True)
        status = map_status(provider_status, "status", PAYOUT_STATUSES, ctx.status_overrides)
        amount = _amount(field(entity, "amount", required=True), currency, "amount")
        return payment_event_v2(
            message,
            ctx,
            event_id=event_id,
            flow=flow,
            status=status,
            provider_status=provider_status,
            time=time,
            provider_order_id=required_text(entity, "id"),
            amount=amount,
            currency=currency_code(currency, PADDLE_CURRENCIES),
        )
    merchant_order_id = _merchant_order_id(entity, ctx.order_id_metadata_key)
    if flow == "payin":
        provider_status = field(entity, "status", required=True)
        status = map_status(provider_status, "status", TRANSACTION_STATUSES, ctx.status_overrides)
        details = require_object(field(entity, "details", required=True), "'details'")
        totals = require_object(field(details, "totals", required=True), "'details.totals'")
        amount = _amount(field(totals, "grand_total", required=True), currency, "grand_total")
        return payment_event_v2(
            message,
            ctx,
            event_id=event_id,
            flow=flow,
            status=status,
            provider_status=provider_status,
            time=time,
            merchant_order_id=merchant_order_id,
            provider_order_id=required_text(entity, "id"),
            amount=amount,
            amount_received=amount if provider_status in ("paid", "completed") else None,
            fee=_amount(field(totals, "fee"), currency, "fee"),
            currency=currency_code(currency, PADDLE_CURRENCIES),
            failure_reason=_failure_reason(entity),
        )
    if flow == "refund":
        provider_status = field(entity, "status", required=True)
        status = map_status(provider_status, "status", REFUND_STATUSES, ctx.status_overrides)
    else:
        provider_status = field(entity, "action", required=True)
        status = map_status(provider_status, "action", CHARGEBACK_ACTIONS, ctx.status_overrides)
    totals = require_object(field(entity, "totals", required=True), "'totals'")
    return payment_event_v2(
        message,
        ctx,
        event_id=event_id,
        flow=flow,
        status=status,
        provider_status=provider_status,
        time=time,
        merchant_order_id=merchant_order_id,
        provider_order_id=required_text(entity, "transaction_id"),
        amount=_amount(field(totals, "total", required=True), currency, "total"),
        currency=currency_code(currency, PADDLE_CURRENCIES),
    )


def order_id(payload: Any, metadata_key: str | None) -> str | None:
    """The order a payment event of this payload is keyed by (the merchant's order id in
    ``custom_data`` under ``metadata_key``, else the transaction's or payout's id), read
    leniently; None for a generic event's."""
    if not isinstance(payload, dict):
        return None
    event_type = payload.get("event_type")
    entity = payload.get("data")
    if not isinstance(event_type, str) or not isinstance(entity, dict):
        return None
    flow = _flow(event_type.partition(".")[0], entity)
    if flow is None:
        return None
    merchant = loose_text(entity, "custom_data", metadata_key) if metadata_key else None
    if merchant and flow != "payout":
        return merchant
    name = "transaction_id" if flow in ("refund", "dispute") else "id"
    return loose_text(entity, name)


def _flow(kind: str, data: Any) -> str | None:
    """The flow of an event of this kind carrying ``data``, or None for a generic event."""
    if kind == "transaction":
        return "payin"
    if kind == "payout":
        return "payout"
    if kind != "adjustment":
        return None
    action = data.get("action") if isinstance(data, dict) else None
    if action == "refund":
        return "refund"
    return "dispute" if action in CHARGEBACK_ACTIONS else None


def _amount(value: Any, currency: Any, name: str) -> str | None:
    # Paddle's amounts are strings; a JSON number is not what it sends.
    if value is not None and not isinstance(value, str):
        raise NormalizationError("invalid_amount", f"the amount {name!r} is not a string")
    return minor_units(value, currency, PADDLE_CURRENCIES, name)


def _merchant_order_id(entity: Mapping[str, Any], key: str | None) -> str | None:
    if not key:
        return None
    custom = field(entity, "custom_data")
    if custom is None:
        return None
    return text(field(require_object(custom, "'custom_data'"), key), f"custom_data.{key}")


def _failure_reason(transaction: Mapping[str, Any]) -> str | None:
    payments = field(transaction, "payments")
    if not payments:
        return None
    if not isinstance(payments, list):
        raise NormalizationError("invalid_field", "the field 'payments' is not a list")
    latest = require_object(payments[0], "'payments[0]'")
    return text(field(latest, "error_code"), "payments[0].error_code")


def _notification(event_type: str, entity: dict[str, object], now: float) -> Sample:
    body = {
        "event_id": f"evt_{uuid.uuid4().hex[:26]}",
        "event_type": event_type,
        "occurred_at": iso_utc(now),
        "notification_id": f"ntf_{uuid.uuid4().hex[:26]}",
        "data": entity,
    }
    return Sample(orjson.dumps(body))


def _transaction(event_type: str, status: str, error: str | None = None) -> SampleBuilder:
    """A 20.00 USD transaction whose ``custom_data.order_id`` is the order reference."""

    def build(now: float, order: str) -> Sample:
        paid = status in ("paid", "completed")
        entity: dict[str, object] = {
            "id": f"txn_{uuid.uuid5(uuid.NAMESPACE_URL, order).hex[:26]}",
            "status": status,
            "customer_id": "ctm_01hv6y1jedq4p1n0yqn5ba3ky4",
            "currency_code": "USD",
            "origin": "web",
            "collection_mode": "automatic",
            "custom_data": {"order_id": order},
            "details": {
                "totals": {
                    "subtotal": "1840",
                    "tax": "160",
                    "discount": "0",
                    "total": "2000",
                    "grand_total": "2000",
                    "fee": "150" if paid else None,
                    "earnings": "1690" if paid else None,
                    "currency_code": "USD",
                }
            },
            "payments": [
                {
                    "amount": "2000",
                    "status": "error" if error else "captured",
                    "error_code": error,
                    "created_at": iso_utc(now - 30),
                }
            ]
            if paid or error
            else [],
            "created_at": iso_utc(now - 60),
            "updated_at": iso_utc(now),
        }
        return _notification(event_type, entity, now)

    return build


def _adjustment(event_type: str, status: str) -> SampleBuilder:
    def build(now: float, order: str) -> Sample:
        entity: dict[str, object] = {
            "id": f"adj_{uuid.uuid4().hex[:26]}",
            "action": "refund",
            "reason": "error",
            "status": status,
            "transaction_id": f"txn_{uuid.uuid5(uuid.NAMESPACE_URL, order).hex[:26]}",
            "customer_id": "ctm_01hv6y1jedq4p1n0yqn5ba3ky4",
            "currency_code": "USD",
            "custom_data": {"order_id": order},
            "totals": {"subtotal": "1840", "tax": "160", "total": "2000", "currency_code": "USD"},
            "created_at": iso_utc(now - 60),
            "updated_at": iso_utc(now),
        }
        return _notification(event_type, entity, now)

    return build


def _payout(now: float, order: str) -> Sample:
    entity: dict[str, object] = {
        "id": f"pay_{uuid.uuid5(uuid.NAMESPACE_URL, order).hex[:26]}",
        "status": "paid",
        "amount": "10000",
        "currency_code": "USD",
        "remittance_reference": order,
    }
    return _notification("payout.paid", entity, now)


def _customer(now: float, order: str) -> Sample:
    entity: dict[str, object] = {
        "id": "ctm_01hs0tqf76sxmp7ba5e4mw1sc8",
        "name": order,
        "status": "active",
        "custom_data": None,
    }
    return _notification("customer.created", entity, now)


SAMPLES: Mapping[str, SampleEvent] = {
    "transaction.completed": SampleEvent(
        _transaction("transaction.completed", "completed"), "payment.payin.succeeded"
    ),
    "transaction.paid": SampleEvent(
        _transaction("transaction.paid", "paid"), "payment.payin.processing"
    ),
    "transaction.payment_failed": SampleEvent(
        _transaction("transaction.payment_failed", "ready", error="declined"),
        "payment.payin.pending",
    ),
    "adjustment.created": SampleEvent(
        _adjustment("adjustment.created", "pending_approval"), "payment.refund.pending"
    ),
    "adjustment.updated": SampleEvent(
        _adjustment("adjustment.updated", "approved"), "payment.refund.succeeded"
    ),
    "payout.paid": SampleEvent(_payout, "payment.payout.succeeded"),
    "customer.created": SampleEvent(_customer, "paddle.customer.created"),
}

PROFILE = Profile(
    name="paddle",
    document=None,
    scheme=verifiers.paddle,
    params=verifiers.paddle.Params(),
    normalize=normalize,
    order_id=order_id,
    order_metadata=True,
    samples=SAMPLES,
    ack=Ack(),
    timeout_s=5,
)

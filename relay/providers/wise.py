"""Wise: transfer state changes as payouts, balance credits as pay-ins, the rest as webhooks.

Signature: ``X-Signature-SHA256``, RSA-SHA256 over the raw body with Wise's
published key (:mod:`verifiers.wise`; the instance's ``environment`` says
whether production's or the sandbox's). Wise waits 5 s for a 2xx and retries
for two weeks.

Every notification is ``{data, subscription_id, event_type, schema_version,
sent_at}`` (https://docs.wise.com/guides/developer/webhooks/event-types):

- ``transfers#state-change`` is a ``payout`` (a Wise transfer sends money out):
  the status is ``data.current_state`` through :data:`TRANSFER_STATUSES`,
  ``provider_order_id`` the transfer's id (``data.resource.id``). The event
  carries no amount: ``amount`` and ``currency`` are null.
- ``balances#credit``, and ``balances#update`` with ``transaction_type``
  ``credit``, are a ``payin`` (money arrived on a balance): the status is the
  transaction type through :data:`PAYIN_STATUSES` (a credit has happened:
  ``succeeded``), ``amount`` and ``currency`` are ``data.amount`` and
  ``data.currency`` (major units, a JSON number read as its exact decimal text;
  codes checked against ISO 4217), ``provider_order_id`` the
  ``transfer_reference`` where the event has one (``balances#update``), else the
  balance account's id (``balances#credit`` names nothing finer).
- ``account-details-payment#state-change`` (a pay-in to the merchant's account
  details) is a ``payin`` too: its status is ``data.current_status``
  (``PENDING``, ``PROCESSING``, ``COMPLETED``, ``CANCELLED``, ``REFUNDED``)
  through the same table, amount, currency and id those of ``data.transfer``.
- Everything else (a debit, ``transfers#active-cases``, cards, profiles ...) is a
  generic webhook event ``wise.<event_type>``; a body without ``event_type`` (Wise
  always sends one) is a generic ``wise`` event whose id is the body's hash.

Decisions:

- Identity: Wise gives no event id. ``X-Delivery-Id`` is not signed, so it is
  kept as a header and never used: the event id is a hash of the signed
  notification without ``sent_at`` (subscription, type, schema version, the
  whole ``data`` and any member Wise does not document), so a retry of one
  notification is one event whether or not Wise re-stamps ``sent_at``, and two
  state changes of one transfer are two.
- Time: ``data.occurred_at`` (when the change happened), else ``sent_at``.
- Body limit: 64 KiB by default (:data:`~relay.providers.base.DOCUMENT_BODY_LIMIT`),
  dozens of times the largest documented notification.
- ``charged_back`` (the payer's bank took the funding back) is ``failed``,
  ``bounced_back`` (not final: delivered late or refunded) ``processing``, and
  ``unknown`` (Wise is asking for information) ``under_review``; an instance's
  ``statuses`` override any of them.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from typing import Any

import orjson

import verifiers.wise
from relay.providers.base import DOCUMENT_BODY_LIMIT, Ack, Profile, body_id, fields_only
from relay.samples import Sample, SampleBuilder, SampleEvent, iso_utc
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
    stable_id,
    text,
)

TRANSFER_STATUSES = {
    "incoming_payment_waiting": "pending",
    "incoming_payment_initiated": "pending",
    "processing": "processing",
    "funds_converted": "processing",
    "outgoing_payment_sent": "succeeded",
    "bounced_back": "processing",
    "cancelled": "canceled",
    "funds_refunded": "refunded",
    "charged_back": "failed",
    "unknown": "under_review",
}
PAYIN_STATUSES = {
    "credit": "succeeded",
    "PENDING": "pending",
    "PROCESSING": "processing",
    "COMPLETED": "succeeded",
    "CANCELLED": "canceled",
    "REFUNDED": "refunded",
}

_TRANSFER_EVENTS = frozenset({"transfers#state-change"})
_BALANCE_EVENTS = frozenset({"balances#credit", "balances#update"})
_ACCOUNT_DETAILS_EVENTS = frozenset({"account-details-payment#state-change"})
# The members of Wise's envelope (``sent_at`` is left out of the id on purpose).
_DOCUMENTED = frozenset({"data", "subscription_id", "event_type", "schema_version", "sent_at"})


def normalize(message: Message, ctx: NormalizeContext) -> CanonicalEvent:
    payload = message.payload
    event_type = (
        text(field(payload, "event_type"), "event_type") if isinstance(payload, dict) else None
    )
    if event_type is None:
        # Wise always names the type; a signed body that does not is passed on, not lost.
        return webhook_event(message, ctx, event_id=body_id(message), sender_type=None)
    data = require_object(field(payload, "data", required=True), "'data'")
    event_id = _event_id(payload, event_type, data)
    time = from_iso(field(data, "occurred_at"), "data.occurred_at") or from_iso(
        field(payload, "sent_at"), "sent_at"
    )
    if event_type in _TRANSFER_EVENTS:
        resource = require_object(field(data, "resource", required=True), "'data.resource'")
        provider_status = field(data, "current_state", required=True)
        return payment_event_v2(
            message,
            ctx,
            event_id=event_id,
            flow="payout",
            status=map_status(
                provider_status, "current_state", TRANSFER_STATUSES, ctx.status_overrides
            ),
            provider_status=provider_status,
            time=time,
            provider_order_id=required_text(resource, "id"),
        )
    if event_type in _ACCOUNT_DETAILS_EVENTS:
        transfer = require_object(field(data, "transfer", required=True), "'data.transfer'")
        provider_status = field(data, "current_status", required=True)
        return payment_event_v2(
            message,
            ctx,
            event_id=event_id,
            flow="payin",
            status=map_status(
                provider_status, "current_status", PAYIN_STATUSES, ctx.status_overrides
            ),
            provider_status=provider_status,
            time=time,
            provider_order_id=required_text(transfer, "id"),
            amount=amount(field(transfer, "amount", required=True), "transfer.amount"),
            currency=currency_code(field(transfer, "currency"), ISO_4217, "transfer.currency"),
        )
    transaction_type = field(data, "transaction_type")
    if event_type in _BALANCE_EVENTS and transaction_type != "debit":
        resource = require_object(field(data, "resource", required=True), "'data.resource'")
        return payment_event_v2(
            message,
            ctx,
            event_id=event_id,
            flow="payin",
            status=map_status(
                transaction_type, "transaction_type", PAYIN_STATUSES, ctx.status_overrides
            ),
            provider_status=transaction_type,
            time=time,
            provider_order_id=text(field(data, "transfer_reference"), "transfer_reference")
            or required_text(resource, "id"),
            amount=amount(field(data, "amount", required=True), "amount"),
            currency=currency_code(field(data, "currency"), ISO_4217),
        )
    return webhook_event(message, ctx, event_id=event_id, sender_type=event_type, time=time)


def _event_id(payload: Mapping[str, Any], event_type: str, data: Mapping[str, Any]) -> str:
    """A hash of what the notification says, ``sent_at`` aside (module docstring)."""
    # Decimals as their text: the parsed body holds no float, and the same body always
    # writes the same text.
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    parts = [field(payload, "subscription_id"), event_type, field(payload, "schema_version")]
    # Any member Wise does not document is signed too: it counts (after the documented
    # ones, so a documented notification's id is what it always was).
    rest = {name: value for name, value in payload.items() if name not in _DOCUMENTED}
    if rest:
        parts.append(json.dumps(rest, sort_keys=True, separators=(",", ":"), default=str))
    return stable_id("wise", *parts, canonical)


def _order(payload: Any) -> str | None:
    """The ``provider_order_id`` a payment event of this payload has (read leniently: a dead
    letter's payload failed :func:`normalize`); None for a generic event's."""
    event_type = loose_text(payload, "event_type")
    if event_type in _TRANSFER_EVENTS:
        return loose_text(payload, "data", "resource", "id")
    if event_type in _ACCOUNT_DETAILS_EVENTS:
        return loose_text(payload, "data", "transfer", "id")
    if event_type in _BALANCE_EVENTS and loose_text(payload, "data", "transaction_type") != "debit":
        return loose_text(payload, "data", "transfer_reference") or loose_text(
            payload, "data", "resource", "id"
        )
    return None


def _transfer(state: str, previous: str | None) -> SampleBuilder:
    def build(now: float, order: str) -> Sample:
        body = {
            "data": {
                "resource": {
                    "type": "transfer",
                    "id": order,
                    "profile_id": 16055450,
                    "account_id": 14124090,
                },
                "current_state": state,
                "previous_state": previous,
                "occurred_at": iso_utc(now),
            },
            "subscription_id": "90aa8e14-4ef1-4a56-861c-f3c9cde097ea",
            "event_type": "transfers#state-change",
            "schema_version": "2.0.0",
            "sent_at": iso_utc(now),
        }
        return Sample(orjson.dumps(body), {"X-Delivery-Id": str(uuid.uuid4())})

    return build


def _balance_update(now: float, order: str) -> Sample:
    body = {
        "data": {
            "resource": {"id": 2, "profile_id": 2, "type": "balance-account"},
            "amount": orjson.Fragment(b"70.25"),
            "balance_id": 111,
            "channel_name": "TRANSFER",
            "currency": "GBP",
            "occurred_at": iso_utc(now),
            "post_transaction_balance_amount": orjson.Fragment(b"88.93"),
            "step_id": 1234567,
            "transaction_type": "credit",
            "transfer_reference": order,
        },
        "subscription_id": "f2264fe5-a0f5-4dab-a1b4-6faa87761425",
        "event_type": "balances#update",
        "schema_version": "3.0.0",
        "sent_at": iso_utc(now),
    }
    return Sample(orjson.dumps(body), {"X-Delivery-Id": str(uuid.uuid4())})


def _active_cases(now: float, order: str) -> Sample:
    body = {
        "data": {
            "resource": {"type": "transfer", "id": order, "profile_id": 222, "account_id": 333},
            "active_cases": ["deposit_amount_less_invoice"],
        },
        "subscription_id": "01234567-89ab-cdef-0123-456789abcdef",
        "event_type": "transfers#active-cases",
        "schema_version": "2.0.0",
        "sent_at": iso_utc(now),
    }
    return Sample(orjson.dumps(body), {"X-Delivery-Id": str(uuid.uuid4())})


SAMPLES: Mapping[str, SampleEvent] = {
    "transfers#state-change": SampleEvent(
        _transfer("outgoing_payment_sent", "funds_converted"), "payment.payout.succeeded"
    ),
    "transfers#state-change.processing": SampleEvent(
        _transfer("processing", "incoming_payment_waiting"), "payment.payout.processing"
    ),
    "balances#update": SampleEvent(_balance_update, "payment.payin.succeeded"),
    "transfers#active-cases": SampleEvent(_active_cases, "wise.transfers#active-cases"),
}

PROFILE = Profile(
    name="wise",
    document=None,
    scheme=verifiers.wise,
    params=verifiers.wise.Params(),
    normalize=normalize,
    order_id=fields_only(_order),
    samples=SAMPLES,
    ack=Ack(),
    timeout_s=5,
    kept_headers=("x-delivery-id", "x-test-notification"),
    # Wise's notifications are one small JSON object (the largest documented, swift-in#credit,
    # is under 2 KiB): a megabyte from Wise's route is not Wise.
    max_body_bytes=DOCUMENT_BODY_LIMIT,
)

"""Stripe: event objects to payment events (version 2), or to generic webhook events.

The body is a Stripe event: ``id`` (``evt_...``, the event id), ``type``,
``created`` (UNIX seconds, the event's time) and ``data.object``, the API
object the event is about. Events whose type starts with ``payment_intent.``,
``charge.``, ``refund.`` or ``payout.`` are payment events; every other type
is published as a generic webhook event, ``stripe.<type>``, as before.

A payment event's flow follows the object the event carries (``data.object.object``):

- ``payment_intent`` and ``charge``: ``payin``;
- ``refund`` (``refund.*``, and ``charge.refund.updated``): ``refund``;
- ``dispute`` (``charge.dispute.*``): ``dispute``;
- ``payout``: ``payout`` (Stripe paying the balance out to the merchant's bank).

An object the event type does not announce (a ``payout.*`` event carrying a
charge) is ``unknown_event_type``: it is not read as something else.

Status: the object's own ``status`` through the table of its kind below, so a
late or repeated delivery says what the object was when Stripe sent it. A
charge says more than its status: the table's keys for charges are the states
:func:`_charge_state` reads (a succeeded charge not yet captured is
``uncaptured``, refunded in part or in full ``partially_refunded`` or
``refunded``, an uncaptured one refunded has had its authorisation released;
a ``charge.expired`` event is ``expired``). ``provider_status`` is always the
object's ``status`` as sent. An instance's ``statuses`` override those keys,
and an unknown value is ``unknown_status``.

Fields:
- ``amount``: the object's ``amount``; ``amount_received``: a payment
  intent's ``amount_received``, a charge's ``amount_captured``; ``currency``:
  the object's ``currency``, upper-cased. Amounts are converted from minor
  units with Stripe's table (:data:`schemas.currencies.STRIPE`); a currency
  it does not list is ``unknown_currency``. ``fee`` is null: Stripe's fee is
  in the balance transaction, which the event does not carry.
- ``merchant_order_id``: the value under the instance's
  ``order_id_metadata_key`` in the object's ``metadata`` (Stripe copies no
  metadata between objects: a refund carries its own), else null.
- ``provider_order_id``: the payment the object belongs to, so that one
  payment's intent, charge, refunds and disputes share it (and, without a
  merchant order id, one record key and partition): the object's
  ``payment_intent`` (a payment intent's own ``id``), else its ``charge`` (a
  charge's own ``id``), else the object's ``id`` (payouts).
- ``failure_reason``: Stripe's code for why: a payment intent's
  ``last_payment_error.code`` (its ``type`` when it has no code), a charge's
  or payout's ``failure_code``, a refund's ``failure_reason``, a dispute's
  ``reason`` (``fraudulent``, ``duplicate``, ...).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

import orjson

import verifiers.stripe
from relay.providers.base import Ack, Profile
from relay.samples import Sample, SampleBuilder, SampleEvent
from schemas.currencies import STRIPE as STRIPE_CURRENCIES
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
    from_unix,
    loose_text,
    map_status,
    require_object,
    required_text,
    text,
)

PAYMENT_INTENT_STATUSES = {
    "requires_payment_method": "pending",
    "requires_confirmation": "pending",
    "requires_action": "pending",
    "processing": "processing",
    "requires_capture": "authorized",
    "succeeded": "succeeded",
    "canceled": "canceled",
}
CHARGE_STATUSES = {
    "pending": "pending",
    "uncaptured": "authorized",
    "succeeded": "succeeded",
    "partially_refunded": "partially_refunded",
    "refunded": "refunded",
    "released": "canceled",
    "expired": "expired",
    "failed": "failed",
}
REFUND_STATUSES = {
    "pending": "pending",
    "requires_action": "pending",
    "succeeded": "succeeded",
    "failed": "failed",
    "canceled": "canceled",
}
DISPUTE_STATUSES = {
    "warning_needs_response": "pending",
    "needs_response": "pending",
    "warning_under_review": "under_review",
    "under_review": "under_review",
    "won": "won",
    "lost": "lost",
    "warning_closed": "canceled",
    "prevented": "canceled",
}
PAYOUT_STATUSES = {
    "pending": "pending",
    "in_transit": "processing",
    "paid": "succeeded",
    "failed": "failed",
    "canceled": "canceled",
}

# Object kind -> (flow, status table).
_KINDS: Mapping[str, tuple[str, Mapping[str, str]]] = {
    "payment_intent": ("payin", PAYMENT_INTENT_STATUSES),
    "charge": ("payin", CHARGE_STATUSES),
    "refund": ("refund", REFUND_STATUSES),
    "dispute": ("dispute", DISPUTE_STATUSES),
    "payout": ("payout", PAYOUT_STATUSES),
}
# Event type prefix -> the object kinds its events carry.
_PREFIXES: Mapping[str, frozenset[str]] = {
    "payment_intent": frozenset({"payment_intent"}),
    "charge": frozenset({"charge", "refund", "dispute"}),
    "refund": frozenset({"refund"}),
    "payout": frozenset({"payout"}),
}


def normalize(message: Message, ctx: NormalizeContext) -> CanonicalEvent:
    payload = require_object(message.payload)
    event_id = required_text(payload, "id")
    event_type = required_text(payload, "type")
    time = from_unix(field(payload, "created"), "created")
    kinds = _PREFIXES.get(event_type.partition(".")[0])
    if kinds is None:
        return webhook_event(message, ctx, event_id=event_id, sender_type=event_type, time=time)
    data = require_object(field(payload, "data", required=True), "'data'")
    obj = require_object(field(data, "object", required=True), "'data.object'")
    kind = text(field(obj, "object"), "object")
    if kind not in kinds:
        raise NormalizationError(
            "unknown_event_type",
            f"a {event_type!r} event carries {'no object kind' if kind is None else repr(kind)}",
        )
    flow, table = _KINDS[kind]
    provider_status = field(obj, "status", required=True)
    state = _charge_state(event_type, obj, provider_status) if kind == "charge" else provider_status
    status = map_status(state, "status", table, ctx.status_overrides)
    currency = field(obj, "currency")
    return payment_event_v2(
        message,
        ctx,
        event_id=event_id,
        flow=flow,
        status=status,
        provider_status=provider_status,
        time=time,
        merchant_order_id=_merchant_order_id(obj, ctx.order_id_metadata_key),
        provider_order_id=_payment_id(obj),
        amount=_amount(obj, "amount", currency),
        amount_received=_amount(obj, _RECEIVED.get(kind), currency),
        currency=None if currency is None else currency_code(currency, STRIPE_CURRENCIES),
        failure_reason=_failure_reason(kind, obj),
    )


def order_id(payload: Any, metadata_key: str | None) -> str | None:
    """The order a payment event of this payload is keyed by (the merchant's order id in
    the object's metadata under ``metadata_key``, else the payment's id), read leniently
    (a dead letter's payload failed :func:`normalize`); None for a generic event's."""
    if not isinstance(payload, dict):
        return None
    event_type = payload.get("type")
    if not isinstance(event_type, str) or event_type.partition(".")[0] not in _PREFIXES:
        return None
    data = payload.get("data")
    obj = data.get("object") if isinstance(data, dict) else None
    if not isinstance(obj, dict):
        return None
    merchant = loose_text(obj, "metadata", metadata_key) if metadata_key else None
    return merchant or next(
        (
            value
            for name in _PAYMENT_ID_FIELDS
            if (value := loose_text(obj, name) or loose_text(obj, name, "id"))
        ),
        None,
    )


# The field holding what each kind received; refunds, disputes and payouts have none.
_RECEIVED = {"payment_intent": "amount_received", "charge": "amount_captured"}
# Where an object names the payment it belongs to, most specific first.
_PAYMENT_ID_FIELDS = ("payment_intent", "charge", "id")


def _charge_state(event_type: str, charge: Mapping[str, Any], status: Any) -> Any:
    """The key of a charge in ``CHARGE_STATUSES``: its status, refined by its flags."""
    if event_type == "charge.expired":
        return "expired"
    if status != "succeeded":
        return status
    captured = field(charge, "captured", required=True)
    refunded = field(charge, "refunded") or False
    amount_refunded = field(charge, "amount_refunded") or 0
    for name, value, kind in (
        ("captured", captured, bool),
        ("refunded", refunded, bool),
        ("amount_refunded", amount_refunded, int),
    ):
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise NormalizationError(
                "invalid_field", f"the field {name!r} is not a {kind.__name__}"
            )
    if not captured:
        return "released" if refunded else "uncaptured"
    if refunded:
        return "refunded"
    return "partially_refunded" if amount_refunded > 0 else "succeeded"


def _merchant_order_id(obj: Mapping[str, Any], key: str | None) -> str | None:
    if not key:
        return None
    metadata = field(obj, "metadata")
    if metadata is None:
        return None
    return text(field(require_object(metadata, "'metadata'"), key), f"metadata.{key}")


def _payment_id(obj: Mapping[str, Any]) -> str:
    for name in _PAYMENT_ID_FIELDS:
        value = field(obj, name)
        # An expanded reference is the object itself: its id names it.
        if isinstance(value, dict):
            value = field(value, "id")
        payment = text(value, name)
        if payment is not None:
            return payment
    raise NormalizationError("missing_field", "the field 'id' is missing")


def _amount(obj: Mapping[str, Any], name: str | None, currency: Any) -> str | None:
    if name is None:
        return None
    return minor_units(field(obj, name), currency, STRIPE_CURRENCIES, name)


def _failure_reason(kind: str, obj: Mapping[str, Any]) -> str | None:
    if kind == "payment_intent":
        error = field(obj, "last_payment_error")
        if error is None:
            return None
        error = require_object(error, "'last_payment_error'")
        return text(field(error, "code") or field(error, "type"), "last_payment_error.code")
    name = {"refund": "failure_reason", "dispute": "reason"}.get(kind, "failure_code")
    return text(field(obj, name), name)


def _stripe(event_type: str, kind: str, status: str, **fields: object) -> SampleBuilder:
    """A Stripe event about one object; the order reference is in the object's metadata
    under ``order_id`` (what an instance's ``order_id_metadata_key`` names)."""

    def build(now: float, order: str) -> Sample:
        payment = f"pi_{uuid.uuid5(uuid.NAMESPACE_URL, order).hex[:24]}"
        prefix = {"payment_intent": "pi", "charge": "ch", "refund": "re", "dispute": "dp"}
        obj: dict[str, object] = {
            "id": payment if kind == "payment_intent" else f"{prefix.get(kind, 'po')}_{order}",
            "object": kind,
            "amount": 2000,
            "currency": "usd",
            "created": int(now) - 60,
            "livemode": False,
            "metadata": {"order_id": order},
            "status": status,
            **fields,
        }
        if kind in ("charge", "refund", "dispute"):
            obj["payment_intent"] = payment
        body = {
            "id": f"evt_{uuid.uuid4().hex[:24]}",
            "object": "event",
            "api_version": "2024-06-20",
            "type": event_type,
            "created": int(now),
            "data": {"object": obj},
            "livemode": False,
        }
        return Sample(orjson.dumps(body))

    return build


def _stripe_customer(now: float, order: str) -> Sample:
    body = {
        "id": f"evt_{uuid.uuid4().hex[:24]}",
        "object": "event",
        "type": "customer.updated",
        "created": int(now),
        "data": {
            "object": {"id": "cus_9s6XKzkNRiz8i3", "object": "customer", "description": order}
        },
    }
    return Sample(orjson.dumps(body))


SAMPLES: Mapping[str, SampleEvent] = {
    "payment_intent.succeeded": SampleEvent(
        _stripe("payment_intent.succeeded", "payment_intent", "succeeded", amount_received=2000),
        "payment.payin.succeeded",
    ),
    "payment_intent.amount_capturable_updated": SampleEvent(
        _stripe(
            "payment_intent.amount_capturable_updated",
            "payment_intent",
            "requires_capture",
            amount_received=0,
        ),
        "payment.payin.authorized",
    ),
    "charge.refunded": SampleEvent(
        _stripe(
            "charge.refunded",
            "charge",
            "succeeded",
            amount_captured=2000,
            amount_refunded=2000,
            captured=True,
            refunded=True,
        ),
        "payment.payin.refunded",
    ),
    "refund.created": SampleEvent(
        _stripe("refund.created", "refund", "pending"), "payment.refund.pending"
    ),
    "charge.dispute.created": SampleEvent(
        _stripe("charge.dispute.created", "dispute", "needs_response", reason="fraudulent"),
        "payment.dispute.pending",
    ),
    "payout.paid": SampleEvent(
        _stripe("payout.paid", "payout", "paid"), "payment.payout.succeeded"
    ),
    "customer.updated": SampleEvent(_stripe_customer, "stripe.customer.updated"),
}

PROFILE = Profile(
    name="stripe",
    document=None,
    scheme=verifiers.stripe,
    params=verifiers.stripe.Params(),
    normalize=normalize,
    order_id=order_id,
    order_metadata=True,
    samples=SAMPLES,
    ack=Ack(),
    timeout_s=10,
)

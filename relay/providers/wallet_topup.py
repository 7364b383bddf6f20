"""Document 001 (wallet top-up, fiat to stablecoin): webhook to canonical top-up event.

Body: ``{"event": "topup.status", "data": {orderId, status, created,
quoteSnapshot: {fee, feeCurrency, sourceAmount, sourceCurrency, targetAmount,
targetCurrency}}}``; the amounts are JSON numbers in the document's example
(``32.87``) and are kept exactly as written.

Decisions where the document is silent:
- Only ``event`` = ``topup.status`` is documented; any other value is
  ``unknown_event_type`` (a dead letter, replayable once Relay knows it).
- Event id: hash of (``data.orderId``, ``data.status``). The notification has
  no event time or amount that changes within one status, so one status of
  one order is one event.
- ``merchant_order_id`` is ``orderId``, as is ``provider_order_id``: the
  create-order request takes no merchant reference, so the id the merchant
  stores from its response is the only handle it has on the order, and using
  it keeps ``subject`` and the Kafka key (one order's events on one
  partition) meaningful.
- ``time`` is ``created``, the only time the notification carries (it is the
  order's creation, not the status change). It has no zone: the instance's
  ``timezone`` says which, UTC when unset; an explicit offset wins.
- ``amount`` is ``targetAmount`` (the stablecoin to credit) and ``asset`` is
  ``targetCurrency`` as sent; ``fiat_amount``/``fiat_currency`` are
  ``sourceAmount``/``sourceCurrency``. ``fee`` is ``quoteSnapshot.fee``,
  denominated in ``feeCurrency`` (a fiat currency in the example, which the
  canonical event has no field for: ``raw`` keeps it).
- ``amount_received`` is null: the notification repeats the quote and never
  reports an amount actually credited. ``network`` is null: it belongs to the
  wallet, which the notification does not name.
- ``CREDITED`` appears in the document's list filter but not in the status
  list: it is not guessed (``unknown_status``); an instance that sees it can
  map it with ``status_overrides``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import orjson

import verifiers.header_signature
from relay.providers.base import DOCUMENT_BODY_LIMIT, Ack, Profile, fields_only
from relay.samples import Sample, SampleBuilder, SampleEvent
from schemas.errors import NormalizationError
from schemas.event import CanonicalEvent, Message, NormalizeContext, payment_event
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

EVENT_TYPE = "topup.status"
STATUSES = {
    "TRANSFERRING": "processing",
    "COMPLETED": "succeeded",
    "FAILED": "failed",
}


def normalize(message: Message, ctx: NormalizeContext) -> CanonicalEvent:
    payload = require_object(message.payload)
    event_type = field(payload, "event", required=True)
    if event_type != EVENT_TYPE:
        raise NormalizationError(
            "unknown_event_type", f"the event {event_type!r} is not {EVENT_TYPE!r}"
        )
    data = require_object(field(payload, "data", required=True), "'data'")
    provider_status = field(data, "status", required=True)
    status = map_status(provider_status, "data.status", STATUSES, ctx.status_overrides)
    order_id = required_text(data, "orderId")
    quote = field(data, "quoteSnapshot")
    quote = {} if quote is None else require_object(quote, "'data.quoteSnapshot'")
    return payment_event(
        message,
        ctx,
        event_id=stable_id(order_id, provider_status),
        flow="topup",
        status=status,
        provider_status=provider_status,
        time=from_iso(field(data, "created"), "data.created", zone=ctx.timezone),
        merchant_order_id=order_id,
        provider_order_id=order_id,
        amount=amount(field(quote, "targetAmount"), "targetAmount"),
        fee=amount(field(quote, "fee"), "fee"),
        asset=text(field(quote, "targetCurrency"), "targetCurrency"),
        fiat_currency=text(field(quote, "sourceCurrency"), "sourceCurrency"),
        fiat_amount=amount(field(quote, "sourceAmount"), "sourceAmount"),
    )


def order_id(payload: Any) -> str | None:
    """The order this payload's events are keyed by (``data.orderId``), read leniently
    (a dead letter's payload failed :func:`normalize`); None when it names none."""
    return loose_text(payload, "data", "orderId")


def _sample(status: str) -> SampleBuilder:
    def build(now: float, order: str) -> Sample:
        body = {
            "event": "topup.status",
            "data": {
                "orderId": order,
                "status": status,
                "created": datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%d %H:%M:%S"),
                "quoteSnapshot": {
                    "fee": 1,
                    "feeCurrency": "USD",
                    "sourceAmount": 50,
                    "sourceCurrency": "AUD",
                    "targetAmount": 32.87,
                    "targetCurrency": "USDT",
                },
            },
        }
        return Sample(orjson.dumps(body))

    return build


SAMPLES: Mapping[str, SampleEvent] = {
    "completed": SampleEvent(_sample("COMPLETED"), "payment.topup.succeeded"),
    "transferring": SampleEvent(_sample("TRANSFERRING"), "payment.topup.processing"),
    "failed": SampleEvent(_sample("FAILED"), "payment.topup.failed"),
}

PROFILE = Profile(
    name="wallet-topup",
    document="001",
    scheme=verifiers.header_signature,
    params=verifiers.header_signature.Params(),
    normalize=normalize,
    order_id=fields_only(order_id),
    samples=SAMPLES,
    ack=Ack(body=b'{"status":"1"}', content_type="application/json"),
    timeout_s=10,
    max_body_bytes=DOCUMENT_BODY_LIMIT,
)

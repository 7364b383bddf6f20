"""Document 002 (v2 payout): notification to canonical payout event.

The notification body is the ``data`` object of the query-order response plus
``sign``: ``merchantId``, ``appId``, ``merchantOrderNo``, ``orderNo``,
``channelName``, ``tokenSymbol``, ``tokenCount``, ``tokenFeeCount``,
``currencyId``, ``payHash``, ``transactionID``, ``receiver``, ``state``,
``extra`` (a JSON string), ``payTime`` (an integer).

Decisions where the document is silent:
- Event id: hash of (``orderNo``, ``state``, ``payHash``): a new state, or a
  hash appearing for the same state, is a new event; a retry is not.
- ``payTime`` is UNIX time; 0 (the document's example for an order not yet
  paid) means none, so ``time`` is null. Seconds or milliseconds is decided by
  magnitude: from 1e11 up it is milliseconds (1e11 seconds would be the year
  5138, 1e11 milliseconds is 1973), below it is seconds.
- ``amount`` is ``tokenCount`` and ``asset`` is ``tokenSymbol`` as sent (the
  example's ``USD`` is kept: Relay does not second-guess the provider's
  symbol). ``fee`` is ``tokenFeeCount``, whose ``""`` means none.
- ``network`` is null: ``currencyId`` is an opaque id, and the document names
  no chain field. ``amount_received`` and ``failure_reason`` are null: the
  notification has no such fields (a failure reason, if any, stays in
  ``raw``'s ``extra``).
- ``tx_hash`` is ``payHash`` (``""`` until the transfer is on chain);
  ``transactionID`` is the channel's own reference and stays in ``raw``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

import verifiers.sign_field
from relay.providers.base import (
    DOCUMENT_BODY_LIMIT,
    Ack,
    Profile,
    fields_only,
    signed_string_identity,
    signed_view,
)
from relay.samples import Sample, SampleBuilder, SampleEvent
from schemas.event import CanonicalEvent, Message, NormalizeContext, payment_event
from schemas.values import (
    amount,
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
    "PENDING": "pending",
    "DONE_PAYMENT": "succeeded",
    "FAILED": "failed",
}


def normalize(message: Message, ctx: NormalizeContext) -> CanonicalEvent:
    payload = require_object(message.payload)
    provider_status = field(payload, "state", required=True)
    status = map_status(provider_status, "state", STATUSES, ctx.status_overrides)
    order_no = required_text(payload, "orderNo")
    pay_hash = text(field(payload, "payHash"), "payHash")
    return payment_event(
        message,
        ctx,
        event_id=stable_id(order_no, provider_status, pay_hash),
        flow="payout",
        status=status,
        provider_status=provider_status,
        time=from_unix(field(payload, "payTime"), "payTime", unit="auto"),
        merchant_order_id=text(field(payload, "merchantOrderNo"), "merchantOrderNo"),
        provider_order_id=order_no,
        amount=amount(field(payload, "tokenCount"), "tokenCount"),
        fee=amount(field(payload, "tokenFeeCount"), "tokenFeeCount"),
        asset=text(field(payload, "tokenSymbol"), "tokenSymbol"),
        tx_hash=pay_hash,
        address=text(field(payload, "receiver"), "receiver"),
    )


def order_id(payload: Any) -> str | None:
    """The order this payload's events are keyed by (``merchantOrderNo``, else ``orderNo``), read leniently
    (a dead letter's payload failed :func:`normalize`); None when it names none."""
    return loose_text(payload, "merchantOrderNo") or loose_text(payload, "orderNo")


def _sample(state: str) -> SampleBuilder:
    def build(now: float, order: str) -> Sample:
        body = {
            "merchantId": 2,
            "appId": "app-caf118dc-4e23-4ced-ab23-8a3f65d5071a",
            "merchantOrderNo": order,
            "orderNo": str(int(now * 1_000_000)),
            "channelName": "xpay",
            "tokenSymbol": "USDT",
            "tokenCount": "25.5",
            "tokenFeeCount": "0.1",
            "currencyId": "P575ItNeMxM6fy6zhbnrlezYlvQnHMLZ",
            "payHash": "0x9f2c" + order.encode().hex() if state == "DONE_PAYMENT" else "",
            "transactionID": "",
            "receiver": "0xB0c5852ff023291D0de6333c9155b2f884368559",
            "state": state,
            "extra": '{"description":"payout transaction"}',
            "payTime": int(now) if state == "DONE_PAYMENT" else 0,
        }
        return Sample(orjson.dumps(body))

    return build


SAMPLES: Mapping[str, SampleEvent] = {
    "done": SampleEvent(_sample("DONE_PAYMENT"), "payment.payout.succeeded"),
    "pending": SampleEvent(_sample("PENDING"), "payment.payout.pending"),
    "failed": SampleEvent(_sample("FAILED"), "payment.payout.failed"),
}

PROFILE = Profile(
    name="v2-payout",
    document="002",
    scheme=verifiers.sign_field,
    params=verifiers.sign_field.Params(key_suffix="", nested="sorted_compact", encoding="base64"),
    normalize=normalize,
    order_id=fields_only(order_id),
    samples=SAMPLES,
    payload=signed_view,
    identity=signed_string_identity,
    ack=Ack(body=b'{"code":0,"msg":"success"}', content_type="application/json"),
    timeout_s=10,
    max_body_bytes=DOCUMENT_BODY_LIMIT,
)

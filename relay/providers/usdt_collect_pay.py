"""Document 000 (stablecoin collection and payout): notification to canonical event.

One profile serves both directions. The notification carries the fields of
the matching query response: ``orderId`` (merchant), ``orderNo`` (platform),
``amount``, ``actualAmount`` (collection only), ``fee``, ``status`` (an
integer), ``payTime`` (New York time, ``yyyy-MM-dd HH:mm:ss``, when status=2),
``errorMsg`` (when status=3) and ``sign``. Fields may arrive as strings or as
JSON numbers; the provider adds fields over time.

Decisions where the document is silent:
- Flow: ``ctx.flow`` (``payin`` or ``payout``) when the instance sets it, else
  inferred: ``actualAmount`` appears only in collection notifications, so its
  presence (even empty) means ``payin``, its absence ``payout``. Statuses 4 and
  5 exist only for collections; on a payout they are ``unknown_status``.
- Event id: hash of (``orderNo`` or ``orderId``, ``status``, ``actualAmount``
  or ``amount``, ``payTime`` in UTC). Numbers and strings hash alike (``2``
  and ``"2"``, ``10`` and ``"10"``), so a retry that re-encodes a field keeps
  its id.
- ``payTime`` is read in ``America/New_York`` with the zone's rules for that
  date, so the offset is -05:00 or -04:00 as it was then. The repeated hour
  when daylight saving ends is read as its first occurrence (EDT), a wall time
  in the skipped hour as the instant it names in standard time (02:30 on the
  spring-forward day is 07:30Z): the document gives no offset to decide by.
  ``time`` is null when there is no ``payTime`` (only successes carry one).
- Asset and network: the notification documents none. When it carries the
  apply request's fields, ``currency`` (or ``coin``) gives the asset if it
  names a stablecoin (a fiat ``currency`` is left in ``raw``: the document
  does not say which amount it denominates), and ``inBankCode`` (collection)
  or ``bankCode`` (payout) gives the network (``TRX`` is TRON, ``BASEEVM``
  BASE); the cashier code ``EWALLET`` names no chain and gives null.
- ``address``: ``bankNo`` (the collection address in the apply response) or
  ``accountNo`` (the payout address in the apply request) when present.
- ``amount_received`` is ``actualAmount``; payouts have none, so it is null.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

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
from schemas.errors import NormalizationError
from schemas.event import CanonicalEvent, Message, NormalizeContext, payment_event
from schemas.values import (
    amount,
    asset_network,
    field,
    from_local,
    loose_text,
    map_status,
    require_object,
    stable_id,
    text,
)

COLLECTION_STATUSES = {
    "0": "pending",
    "1": "processing",
    "2": "succeeded",
    "3": "failed",
    "4": "underpaid",
    "5": "overpaid",
    "-1": "under_review",
}
PAYOUT_STATUSES = {
    "0": "pending",
    "1": "processing",
    "2": "succeeded",
    "3": "failed",
    "-1": "under_review",
}
_TABLES = {"payin": COLLECTION_STATUSES, "payout": PAYOUT_STATUSES}

NEW_YORK = ZoneInfo("America/New_York")
PAY_TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
# The cashier: the payer picks the chain on the provider's page.
_NO_CHAIN = "EWALLET"


def normalize(message: Message, ctx: NormalizeContext) -> CanonicalEvent:
    payload = require_object(message.payload)
    flow = _flow(payload, ctx)
    provider_status = field(payload, "status", required=True)
    status = map_status(provider_status, "status", _TABLES[flow], ctx.status_overrides)
    merchant_order_id = text(field(payload, "orderId"), "orderId")
    provider_order_id = text(field(payload, "orderNo"), "orderNo")
    order_key = provider_order_id or merchant_order_id
    if order_key is None:
        raise NormalizationError("missing_field", "neither 'orderNo' nor 'orderId' is present")
    ordered = amount(field(payload, "amount"), "amount")
    received = amount(field(payload, "actualAmount"), "actualAmount")
    pay_time = from_local(field(payload, "payTime"), "payTime", PAY_TIME_FORMAT, NEW_YORK)
    asset, network = _asset_network(payload)
    return payment_event(
        message,
        ctx,
        event_id=stable_id(order_key, provider_status, received or ordered, pay_time),
        flow=flow,
        status=status,
        provider_status=provider_status,
        time=pay_time,
        merchant_order_id=merchant_order_id,
        provider_order_id=provider_order_id,
        amount=ordered,
        amount_received=received,
        fee=amount(field(payload, "fee"), "fee"),
        asset=asset,
        network=network,
        address=text(field(payload, "bankNo") or field(payload, "accountNo"), "address"),
        failure_reason=text(field(payload, "errorMsg"), "errorMsg"),
    )


def order_id(payload: Any) -> str | None:
    """The order this payload's events are keyed by (``orderId``, else ``orderNo``), read leniently
    (a dead letter's payload failed :func:`normalize`); None when it names none."""
    return loose_text(payload, "orderId") or loose_text(payload, "orderNo")


def _flow(payload: dict[str, Any], ctx: NormalizeContext) -> str:
    if ctx.flow is None:
        return "payin" if "actualAmount" in payload else "payout"
    if ctx.flow not in _TABLES:
        raise NormalizationError(
            "invalid_field", f"the instance's flow {ctx.flow!r} is not payin or payout"
        )
    return ctx.flow


def _asset_network(payload: dict[str, Any]) -> tuple[str | None, str | None]:
    asset = None
    for name in ("coin", "currency"):
        asset, _ = asset_network(text(field(payload, name), name))
        if asset is not None:
            break
    code = text(field(payload, "inBankCode") or field(payload, "bankCode"), "bankCode")
    if code is None or code.upper() == _NO_CHAIN:
        return asset, None
    _, network = asset_network(code)
    return asset, network


def _sample(status: int) -> SampleBuilder:
    def build(now: float, order: str) -> Sample:
        new_york = datetime.fromtimestamp(now, NEW_YORK)
        body = {
            "orderId": order,
            "orderNo": f"P{int(now * 1000)}",
            "amount": "100.00",
            "actualAmount": "100.00" if status == 2 else "0",
            "fee": "0.50",
            "status": status,
            "payTime": new_york.strftime(PAY_TIME_FORMAT) if status == 2 else "",
        }
        return Sample(orjson.dumps(body))

    return build


SAMPLES: Mapping[str, SampleEvent] = {
    "success": SampleEvent(_sample(2), "payment.payin.succeeded"),
    "paying": SampleEvent(_sample(1), "payment.payin.processing"),
    "failed": SampleEvent(_sample(3), "payment.payin.failed"),
}

PROFILE = Profile(
    name="usdt-collect-pay",
    document="000",
    scheme=verifiers.sign_field,
    params=verifiers.sign_field.Params(),
    normalize=normalize,
    order_id=fields_only(order_id),
    samples=SAMPLES,
    payload=signed_view,
    identity=signed_string_identity,
    flows=("payin", "payout"),
    # Uppercase SUCCESS: anything else is retried every 5 minutes, 5 times.
    ack=Ack(body=b"SUCCESS"),
    timeout_s=10,
    max_body_bytes=DOCUMENT_BODY_LIMIT,
)

"""The canonical event: a CloudEvents 1.0 envelope around payment data.

Normalizers build events with :func:`payment_event`, :func:`payment_event_v2` or
:func:`webhook_event`; nothing else decides the envelope's shape. ``data.raw`` is
the provider's body embedded byte for byte (an :class:`orjson.Fragment`), so the
original is never re-serialized, reordered or rounded.

Two versions of the payment event are published, each closed (a consumer that
validates one sees every field it must handle). Version 1
(``urn:relay:payment-event:v1``) is what the stablecoin profiles have always
published, unchanged: flows ``FLOWS_V1``, statuses ``STATUSES_V1``. Version 2
(``urn:relay:payment-event:v2``), for card and bank providers, is version 1 plus
``currency`` (the ISO 4217 code of ``amount``, ``amount_received`` and ``fee``,
converted from the provider's minor units) and the flows and statuses that card
payments need (``FLOWS``, ``schemas.values.STATUSES``). A decoder that knows only
version 1 refuses version 2 as an unsupported dataschema instead of misreading a
refund as a pay-in.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import orjson

from schemas.errors import NormalizationError
from schemas.values import STATUSES_V1, rfc3339

PAYMENT_SCHEMA = "urn:relay:payment-event:v1"
PAYMENT_SCHEMA_V2 = "urn:relay:payment-event:v2"
WEBHOOK_SCHEMA = "urn:relay:webhook-event:v1"

# Which way the money moves (README, "The canonical event").
FLOWS_V1 = frozenset({"payin", "payout", "topup"})
FLOWS = FLOWS_V1 | {"refund", "dispute"}

PAYMENT_FIELDS = (
    "merchant_order_id",
    "provider_order_id",
    "amount",
    "amount_received",
    "fee",
    "asset",
    "network",
    "fiat_currency",
    "fiat_amount",
    "tx_hash",
    "address",
    "failure_reason",
)
_PAYMENT_FIELD_SET = frozenset(PAYMENT_FIELDS)
# Every payment field null, in PAYMENT_FIELDS order: the fields a normalizer passes
# overwrite their values in place, so the order of ``data`` is always this one.
_ABSENT_PAYMENT_FIELDS: dict[str, str | None] = dict.fromkeys(PAYMENT_FIELDS)

# Version 2: ``currency`` after the amounts it is the unit of.
PAYMENT_FIELDS_V2 = (*PAYMENT_FIELDS[:5], "currency", *PAYMENT_FIELDS[5:])
_PAYMENT_FIELD_SET_V2 = frozenset(PAYMENT_FIELDS_V2)
_ABSENT_PAYMENT_FIELDS_V2: dict[str, str | None] = dict.fromkeys(PAYMENT_FIELDS_V2)


@dataclass(frozen=True, slots=True)
class Message:
    """An authentic message: the exact body, its parsed payload, and allow-listed headers."""

    body: bytes
    payload: Any
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class NormalizeContext:
    """What a normalizer may know besides the message: the instance's settings.

    ``timezone`` is where zone-less provider times are read; ``flow`` fixes
    the flow for profiles that serve several; ``status_overrides`` maps extra
    provider status values (instance config) to canonical statuses;
    ``id_header`` names the header holding the sender's webhook id where the
    profile lets the instance choose it (generic ``hmac``); ``traceparent`` is
    the W3C trace context Relay handles the message under, when tracing is on;
    ``order_id_metadata_key`` names the key of the provider's merchant metadata
    that holds the merchant's order id, for profiles whose payments carry such
    metadata (Stripe's ``metadata``).
    """

    provider: str
    profile: str
    received_at: datetime
    timezone: ZoneInfo | None = None
    flow: str | None = None
    status_overrides: Mapping[str, str] = field(default_factory=dict)
    id_header: str | None = None
    traceparent: str | None = None
    order_id_metadata_key: str | None = None


@dataclass(frozen=True, slots=True)
class CanonicalEvent:
    """One canonical event; :meth:`to_json` is the Kafka record value.

    ``traceparent`` is the CloudEvents distributed-tracing extension attribute: the W3C
    trace context of Relay's span that received the message (only when tracing is on).
    """

    id: str
    type: str
    source: str
    subject: str | None
    time: str | None
    dataschema: str
    relayreceivedat: str
    data: dict[str, Any]
    traceparent: str | None = None

    def envelope(self) -> dict[str, Any]:
        envelope: dict[str, Any] = {
            "specversion": "1.0",
            "id": self.id,
            "source": self.source,
            "type": self.type,
        }
        if self.subject is not None:
            envelope["subject"] = self.subject
        if self.time is not None:
            envelope["time"] = self.time
        envelope["datacontenttype"] = "application/json"
        envelope["dataschema"] = self.dataschema
        envelope["relayreceivedat"] = self.relayreceivedat
        if self.traceparent is not None:
            envelope["traceparent"] = self.traceparent
        envelope["data"] = self.data
        return envelope

    def to_json(self) -> bytes:
        return orjson.dumps(self.envelope())


Normalizer = Callable[[Message, NormalizeContext], CanonicalEvent]


def payment_event(
    message: Message,
    ctx: NormalizeContext,
    *,
    event_id: str,
    flow: str,
    status: tuple[str, bool],
    provider_status: Any,
    time: str | None,
    **fields: str | None,
) -> CanonicalEvent:
    """A version 1 payment event. ``fields`` are the names in ``PAYMENT_FIELDS``; absent ones
    are null. A status only version 2 has (an instance's ``statuses`` override can name one)
    is ``unknown_status``: a version 1 event cannot carry it."""
    if not _PAYMENT_FIELD_SET.issuperset(fields):
        raise TypeError(f"not payment fields: {sorted(fields.keys() - _PAYMENT_FIELD_SET)}")
    if status[0] not in STATUSES_V1:
        raise NormalizationError(
            "unknown_status",
            f"the status {status[0]!r} is not one this profile's events "
            f"({PAYMENT_SCHEMA}) can carry",
        )
    return _payment(
        message,
        ctx,
        PAYMENT_SCHEMA,
        _ABSENT_PAYMENT_FIELDS,
        event_id,
        flow,
        status,
        provider_status,
        time,
        fields,
    )


def payment_event_v2(
    message: Message,
    ctx: NormalizeContext,
    *,
    event_id: str,
    flow: str,
    status: tuple[str, bool],
    provider_status: Any,
    time: str | None,
    **fields: str | None,
) -> CanonicalEvent:
    """A version 2 payment event (card and bank providers). ``fields`` are the names in
    ``PAYMENT_FIELDS_V2``: those of version 1 and ``currency``; absent ones are null."""
    if not _PAYMENT_FIELD_SET_V2.issuperset(fields):
        raise TypeError(f"not payment fields: {sorted(fields.keys() - _PAYMENT_FIELD_SET_V2)}")
    if flow not in FLOWS:
        raise TypeError(f"not a canonical flow: {flow!r}")
    return _payment(
        message,
        ctx,
        PAYMENT_SCHEMA_V2,
        _ABSENT_PAYMENT_FIELDS_V2,
        event_id,
        flow,
        status,
        provider_status,
        time,
        fields,
    )


def _payment(
    message: Message,
    ctx: NormalizeContext,
    dataschema: str,
    absent: Mapping[str, str | None],
    event_id: str,
    flow: str,
    status: tuple[str, bool],
    provider_status: Any,
    time: str | None,
    fields: Mapping[str, str | None],
) -> CanonicalEvent:
    """Either version's event: ``data`` in one display over the version's null template."""
    canonical_status, final = status
    _require_utf8(event_id=event_id, provider_status=str(provider_status), **fields)
    data: dict[str, Any] = {
        "provider": ctx.provider,
        "profile": ctx.profile,
        "flow": flow,
        "status": canonical_status,
        "final": final,
        "provider_status": None if provider_status is None else str(provider_status),
        **absent,
        **fields,
        "raw": orjson.Fragment(message.body),
    }
    # Positional, in the field order: matching nine keywords is a quarter of building the
    # event. The golden files pin every field.
    return CanonicalEvent(
        event_id,  # id
        f"payment.{flow}.{canonical_status}",  # type
        f"relay/{ctx.provider}",  # source
        fields.get("merchant_order_id"),  # subject
        time,
        dataschema,
        rfc3339(ctx.received_at),  # relayreceivedat
        data,
        ctx.traceparent,
    )


def webhook_event(
    message: Message,
    ctx: NormalizeContext,
    *,
    event_id: str,
    sender_type: str | None,
    time: str | None = None,
) -> CanonicalEvent:
    """A generic (non-payment) event: ``<profile>.<sender's type>``, data ``{provider, profile, raw}``."""
    _require_utf8(event_id=event_id, sender_type=sender_type)
    return CanonicalEvent(
        id=event_id,
        type=f"{ctx.profile}.{sender_type}" if sender_type else ctx.profile,
        source=f"relay/{ctx.provider}",
        subject=None,
        time=time,
        dataschema=WEBHOOK_SCHEMA,
        relayreceivedat=rfc3339(ctx.received_at),
        data={
            "provider": ctx.provider,
            "profile": ctx.profile,
            "raw": orjson.Fragment(message.body),
        },
        traceparent=ctx.traceparent,
    )


def header_id(message: Message, ctx: NormalizeContext) -> str | None:
    """The sender's own event id, from the instance's id header when it has one and sent it."""
    if not ctx.id_header:
        return None
    return message.headers.get(ctx.id_header.lower()) or None


def _require_utf8(**values: str | None) -> None:
    """Refuse lone surrogates (valid in JSON text, not in UTF-8): the event could not be written."""
    for name, value in values.items():
        # isascii() only reads a flag of the string: only non-ASCII text can hold a surrogate.
        if value is None or value.isascii():
            continue
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise NormalizationError(
                "invalid_field", f"the value of {name!r} is not valid Unicode"
            ) from None

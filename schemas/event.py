"""The canonical event: a CloudEvents 1.0 envelope around payment data.

Normalizers build events with :func:`payment_event` or :func:`webhook_event`;
nothing else decides the envelope's shape. ``data.raw`` is the provider's body
embedded byte for byte (an :class:`orjson.Fragment`), so the original is never
re-serialized, reordered or rounded.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import orjson

from schemas.errors import NormalizationError
from schemas.values import rfc3339

PAYMENT_SCHEMA = "urn:relay:payment-event:v1"
WEBHOOK_SCHEMA = "urn:relay:webhook-event:v1"

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
    the W3C trace context Relay handles the message under, when tracing is on.
    """

    provider: str
    profile: str
    received_at: datetime
    timezone: ZoneInfo | None = None
    flow: str | None = None
    status_overrides: Mapping[str, str] = field(default_factory=dict)
    id_header: str | None = None
    traceparent: str | None = None


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
    """A payment event. ``fields`` are the names in ``PAYMENT_FIELDS``; absent ones are null."""
    if not _PAYMENT_FIELD_SET.issuperset(fields):
        raise TypeError(f"not payment fields: {sorted(fields.keys() - _PAYMENT_FIELD_SET)}")
    canonical_status, final = status
    _require_utf8(event_id=event_id, provider_status=str(provider_status), **fields)
    data: dict[str, Any] = {
        "provider": ctx.provider,
        "profile": ctx.profile,
        "flow": flow,
        "status": canonical_status,
        "final": final,
        "provider_status": None if provider_status is None else str(provider_status),
        **_ABSENT_PAYMENT_FIELDS,
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
        PAYMENT_SCHEMA,  # dataschema
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

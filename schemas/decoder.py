"""Typed decoding of Relay's Kafka records, for downstream Python services.

Relay publishes each canonical event as a CloudEvents 1.0 event in structured
JSON mode (DESIGN.md section 3) and each dead letter as a JSON document
(section 6). :func:`decode_event` turns a record's value, and optionally its
headers, into a frozen :class:`PaymentEvent` or :class:`WebhookEvent`;
:func:`decode_dead_letter` turns a dead-letter record into a
:class:`schemas.records.DeadLetter`, the format Relay writes (and ``relay
replay`` reads with this same function); :func:`decode_dlq_record` reads any
record of the dead-letter topic, a letter or a ``relay replay`` outcome
(:class:`schemas.records.ReplayOutcome`). Anything that breaks the contract raises a
:class:`DecodeError` subclass naming what is wrong, so a consumer can park the
record instead of guessing. This module imports no Kafka client: pass
``record.value`` and ``record.headers``. Consumers install it without the
server as the ``relay-events`` distribution (``pip install ./relay-events``).

Usage in an aiokafka consumer loop::

    from aiokafka import AIOKafkaConsumer
    from schemas.decoder import DecodeError, PaymentEvent, UnsupportedSchema, decode_event

    consumer = AIOKafkaConsumer(
        "payments.events",
        bootstrap_servers="localhost:9092",
        group_id="ledger",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        async for record in consumer:
            try:
                event = decode_event(record.value, record.headers)
            except UnsupportedSchema as error:
                park(record, error)  # written by a newer Relay: upgrade this service
            except DecodeError as error:
                park(record, error)  # breaks the contract: never retry it as is
            else:
                if isinstance(event, PaymentEvent) and event.data.final:
                    settle(event.data.merchant_order_id, event.data.amount_received)
            await consumer.commit()
    finally:
        await consumer.stop()

Decisions:

- Amounts are :class:`decimal.Decimal` built from the published strings (which
  must match the schema's one decimal notation), so ``150.0000`` keeps its
  four places; no value ever passes through a float.
- Both versions of the payment event decode to :class:`PaymentEvent`:
  version 2 (card and bank providers) is version 1 plus ``currency`` and more
  flows and statuses; a version 1 event reads with ``currency`` None, and a
  flow or status only version 2 has is an error in a version 1 event.
- ``flow`` and ``status`` are :class:`Flow` and :class:`Status`, string enums:
  a type checker sees every value the payment events can hold, and they still
  compare equal to plain strings (``event.data.status == "succeeded"``).
- ``raw`` is the provider's payload as parsed JSON: integers are ``int``,
  other numbers ``Decimal`` (their exact text), never ``float``.
- Times are aware ``datetime`` objects in UTC. Relay writes ``Z`` times; any
  RFC 3339 offset is accepted and converted.
- Values: every number and time Relay publishes is inside :mod:`schemas.ranges`
  (numbers of at most 4,300 digits with an exponent within ±999,999, times in the
  years 1 to 9999 in UTC), and the decoder reads every one of them, whatever the
  process's integer-text limit (``sys.set_int_max_str_digits``). A value outside
  them is a :class:`MalformedRecord` (a number) or an ``Invalid...`` error (a time).
- Whatever the bytes, the decoders raise only :class:`DecodeError` subclasses
  (``value`` None, a tombstone's, is a :class:`MalformedRecord`); a property test
  holds them to it over arbitrary and mutated records.
- Missing or ill-typed attributes and payment fields are errors, as in
  ``payment-event.schema.json``; attributes the decoder does not know are
  ignored, so adding an optional CloudEvents extension does not break readers.
- Headers: names match exactly (Relay writes them lower-case); where a name
  repeats, the last value counts, as with the Java client's ``lastHeader``.
- Routing headers: ``relay_id``, ``relay_type``, ``relay_source``; records
  written before they were renamed (see :mod:`schemas.records`) carry
  ``ce_id``, ``ce_type``, ``ce_source`` and ``ce_specversion`` instead. Both
  are accepted, so a topic holding old and new records reads through: one of
  the two id headers must be there, and every routing header present must
  agree with the value.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, NoReturn, TypeVar

from schemas import ranges
from schemas.event import FLOWS_V1, PAYMENT_SCHEMA, PAYMENT_SCHEMA_V2, WEBHOOK_SCHEMA
from schemas.records import (
    CLOUDEVENTS_CONTENT_TYPE,
    DEAD_LETTER_CONTENT_TYPE,
    REPLAY_OUTCOME_CONTENT_TYPE,
    DeadLetter,
    ReplayOutcome,
    ReplayResult,
)

KNOWN_SCHEMAS = (PAYMENT_SCHEMA, PAYMENT_SCHEMA_V2, WEBHOOK_SCHEMA)

# The schema's decimal pattern; written without \d, which also matches non-ASCII digits.
_DECIMAL = re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?")


class DecodeError(ValueError):
    """A record this decoder cannot turn into a typed value. Retrying will not help."""


class MalformedRecord(DecodeError):
    """The value is not a JSON object (not JSON, not UTF-8, or another JSON type)."""


class InvalidEvent(DecodeError):
    """A required attribute or data field is missing or has the wrong type; ``field`` names it."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"invalid event: {field} {problem}")
        self.field = field


class InvalidDeadLetter(DecodeError):
    """A dead-letter document's field is missing or has the wrong type; ``field`` names it."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"invalid dead letter: {field} {problem}")
        self.field = field


class InvalidReplayOutcome(DecodeError):
    """A replay outcome document's field is missing or has the wrong type; ``field`` names it."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"invalid replay outcome: {field} {problem}")
        self.field = field


class UnsupportedSchema(DecodeError):
    """The event's ``dataschema`` is not one this decoder knows (e.g. a newer version)."""

    def __init__(self, dataschema: str) -> None:
        super().__init__(
            f"unsupported dataschema {dataschema!r}: this decoder knows "
            f"{', '.join(KNOWN_SCHEMAS)}; a newer Relay may have written it, so upgrade "
            "the decoder before reading such events"
        )
        self.dataschema = dataschema
        self.known = KNOWN_SCHEMAS


class HeaderMismatch(DecodeError):
    """A record header is missing, or disagrees with the value; ``header`` names it."""

    def __init__(self, header: str, problem: str) -> None:
        super().__init__(f"header {header} {problem}")
        self.header = header


class Flow(StrEnum):
    PAYIN = "payin"
    PAYOUT = "payout"
    TOPUP = "topup"
    REFUND = "refund"
    DISPUTE = "dispute"


class Status(StrEnum):
    PENDING = "pending"
    PROCESSING = "processing"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    EXPIRED = "expired"
    UNDERPAID = "underpaid"
    OVERPAID = "overpaid"
    PARTIALLY_PAID = "partially_paid"
    UNDER_REVIEW = "under_review"
    AUTHORIZED = "authorized"
    CANCELED = "canceled"
    REFUNDED = "refunded"
    PARTIALLY_REFUNDED = "partially_refunded"
    WON = "won"
    LOST = "lost"

    @property
    def final(self) -> bool:
        """True when no later status is expected for the order."""
        return self in _FINAL_STATUSES


_FINAL_STATUSES = frozenset(
    {
        Status.SUCCEEDED,
        Status.FAILED,
        Status.EXPIRED,
        Status.UNDERPAID,
        Status.OVERPAID,
        Status.CANCELED,
        Status.REFUNDED,
        Status.WON,
        Status.LOST,
    }
)
# What a version 1 event can hold.
_V1_STATUSES = frozenset(
    {
        Status.PENDING,
        Status.PROCESSING,
        Status.SUCCEEDED,
        Status.FAILED,
        Status.EXPIRED,
        Status.UNDERPAID,
        Status.OVERPAID,
        Status.PARTIALLY_PAID,
        Status.UNDER_REVIEW,
    }
)


@dataclass(frozen=True, slots=True)
class PaymentData:
    """``data`` of a payment event (``urn:relay:payment-event:v1`` or ``v2``); None where
    the provider sent nothing. ``currency`` (version 2) is the ISO 4217 code of ``amount``,
    ``amount_received`` and ``fee``; None in every version 1 event."""

    provider: str
    profile: str
    flow: Flow
    status: Status
    final: bool
    provider_status: str
    merchant_order_id: str | None
    provider_order_id: str | None
    amount: Decimal | None
    amount_received: Decimal | None
    fee: Decimal | None
    currency: str | None
    asset: str | None
    network: str | None
    fiat_currency: str | None
    fiat_amount: Decimal | None
    tx_hash: str | None
    address: str | None
    failure_reason: str | None
    raw: Any


@dataclass(frozen=True, slots=True)
class PaymentEvent:
    """A payment provider's notification, normalized (``urn:relay:payment-event:v1`` or ``v2``).

    ``id`` is the deduplication key (unique per ``source``); ``time`` is when
    the provider says it happened, ``received_at`` when Relay received it.
    """

    id: str
    source: str
    type: str
    subject: str | None
    time: datetime | None
    received_at: datetime
    data: PaymentData


@dataclass(frozen=True, slots=True)
class WebhookEvent:
    """A generic webhook passed through (``urn:relay:webhook-event:v1``): github, stripe, ..."""

    id: str
    source: str
    type: str
    subject: str | None
    time: datetime | None
    received_at: datetime
    provider: str
    profile: str
    raw: Any


Event = PaymentEvent | WebhookEvent


def decode_event(value: bytes, headers: Sequence[tuple[str, bytes]] | None = None) -> Event:
    """Decode a record of the events topic; pass ``record.headers`` to check them too.

    Raises :class:`UnsupportedSchema` for a ``dataschema`` other than the
    payment event's v1 and v2 and the webhook event's v1, :class:`InvalidEvent` naming the attribute or field that is
    missing or ill-typed, :class:`MalformedRecord` for a value that is not a
    JSON object, and :class:`HeaderMismatch` when headers are given and
    ``content-type`` is not CloudEvents JSON, neither ``relay_id`` nor (on
    older records) ``ce_id`` is there, or a routing header present differs
    from the event's attribute.
    """
    named = dict(headers) if headers is not None else None
    if named is not None:
        _check_content_type(named, CLOUDEVENTS_CONTENT_TYPE)
    document = _Fields(_parse(value), InvalidEvent)
    specversion = document.text("specversion")
    if specversion != "1.0":
        document.fail("specversion", f"must be '1.0', got {_show(specversion)}")
    dataschema = document.text("dataschema")
    # Checked before the other attributes: another version may have another shape.
    if dataschema not in KNOWN_SCHEMAS:
        raise UnsupportedSchema(dataschema)
    datacontenttype = document.text("datacontenttype")
    if datacontenttype != "application/json":
        document.fail(
            "datacontenttype", f"must be 'application/json', got {_show(datacontenttype)}"
        )
    id_ = document.text("id")
    source = document.text("source")
    if not source.startswith("relay/") or source == "relay/":
        document.fail("source", f"must be 'relay/<provider>', got {_show(source)}")
    type_ = document.text("type")
    subject = document.optional_text("subject")
    time_text = document.optional_text("time")
    time = None if time_text is None else document.time("time", time_text)
    received_at = document.time("relayreceivedat", document.text("relayreceivedat"))
    data = _Fields(document.object("data"), InvalidEvent, "data.")
    provider = data.text("provider")
    profile = data.text("profile")
    event: Event
    if dataschema != WEBHOOK_SCHEMA:
        event = PaymentEvent(
            id=id_,
            source=source,
            type=type_,
            subject=subject,
            time=time,
            received_at=received_at,
            data=_payment_data(data, provider, profile, version_2=dataschema == PAYMENT_SCHEMA_V2),
        )
    else:
        event = WebhookEvent(
            id=id_,
            source=source,
            type=type_,
            subject=subject,
            time=time,
            received_at=received_at,
            provider=provider,
            profile=profile,
            raw=data.present("raw"),
        )
    if named is not None:
        _check_routing_headers(named, specversion, id_, type_, source)
    return event


def decode_dead_letter(
    value: bytes, headers: Sequence[tuple[str, bytes]] | None = None
) -> DeadLetter:
    """Decode a record of the dead-letter topic; pass ``record.headers`` to check them too.

    Raises :class:`InvalidDeadLetter` naming a missing or ill-typed field,
    :class:`MalformedRecord` for a value that is not a JSON object, and
    :class:`HeaderMismatch` when headers are given and ``content-type`` is not
    the dead-letter type, or ``relay_reason``/``relay_provider`` differ from
    the document.
    """
    named = dict(headers) if headers is not None else None
    if named is not None:
        _check_content_type(named, DEAD_LETTER_CONTENT_TYPE)
    document = _Fields(_parse(value), InvalidDeadLetter)
    received_at_text = document.text("received_at")
    # Letters from before attempts, dead_lettered_at, relay_version and signature_headers
    # were written read with the defaults they had then: one attempt, dead-lettered when
    # received, unknown, and no headers to verify the message again with (None).
    raw_headers = document.get("headers", {})
    if not _string_object(raw_headers):
        document.fail("headers", "must be an object of strings")
    signature_headers = document.get("signature_headers", None)
    if signature_headers is not None and not _string_object(signature_headers):
        document.fail("signature_headers", "must be null or an object of strings")
    attempts = document.get("attempts", 1)
    if not isinstance(attempts, int) or isinstance(attempts, bool) or attempts < 1:
        document.fail("attempts", f"must be a positive integer, got {_show(attempts)}")
    relay_version = document.get("relay_version", "")
    if not isinstance(relay_version, str):
        document.fail("relay_version", f"must be a string, got {_show(relay_version)}")
    # Only the letters of a batch's notifications have an item.
    item = document.get("item", None)
    if item is not None and (not isinstance(item, int) or isinstance(item, bool) or item < 0):
        document.fail("item", f"must be a non-negative integer, got {_show(item)}")
    try:
        body = base64.b64decode(document.text("body_base64", empty=True), validate=True)
    except ValueError:  # binascii.Error, or a character outside ASCII
        document.fail("body_base64", "is not standard base64")
    letter = DeadLetter(
        id=document.text("id"),
        provider=document.text("provider"),
        profile=document.text("profile"),
        reason=document.text("reason"),
        message=document.text("message", empty=True),
        received_at=document.time("received_at", received_at_text),
        dead_lettered_at=document.time(
            "dead_lettered_at", document.get("dead_lettered_at", received_at_text)
        ),
        headers=raw_headers,
        body=body,
        attempts=attempts,
        relay_version=relay_version,
        signature_headers=signature_headers,
        item=item,
    )
    if named is not None:
        for name, expected in (
            ("relay_reason", letter.reason),
            ("relay_provider", letter.provider),
        ):
            if name in named:
                _check_equal(named, name, expected)
    return letter


def decode_replay_outcome(
    value: bytes, headers: Sequence[tuple[str, bytes]] | None = None
) -> ReplayOutcome:
    """Decode a replay outcome record of the dead-letter topic; pass ``record.headers`` to
    check them too.

    Raises :class:`InvalidReplayOutcome` naming a missing or ill-typed field,
    :class:`MalformedRecord` for a value that is not a JSON object, and
    :class:`HeaderMismatch` when headers are given and ``content-type`` is not
    the replay outcome type, or ``relay_outcome``/``relay_provider`` differ
    from the document.
    """
    named = dict(headers) if headers is not None else None
    if named is not None:
        _check_content_type(named, REPLAY_OUTCOME_CONTENT_TYPE)
    document = _Fields(_parse(value), InvalidReplayOutcome)
    outcome = ReplayOutcome(
        letter_id=document.text("letter_id"),
        provider=document.text("provider"),
        attempts=document.positive_int("attempts"),
        outcome=document.enum("outcome", ReplayResult),
        at=document.time("at", document.present("at")),
        relay_version=document.text("relay_version", empty=True),
        reason=document.nullable_text("reason"),
        event_id=document.nullable_text("event_id"),
        new_attempts=(
            None
            if document.present("new_attempts") is None
            else document.positive_int("new_attempts")
        ),
    )
    if named is not None:
        for name, expected in (
            ("relay_outcome", outcome.outcome.value),
            ("relay_provider", outcome.provider),
        ):
            if name in named:
                _check_equal(named, name, expected)
    return outcome


def decode_dlq_record(
    value: bytes, headers: Sequence[tuple[str, bytes]]
) -> DeadLetter | ReplayOutcome:
    """Decode any record of the dead-letter topic: a letter, or what a replay did with one.

    The ``content-type`` header tells them apart: a record with neither type
    raises :class:`HeaderMismatch`, and one that breaks its format raises as
    :func:`decode_dead_letter` and :func:`decode_replay_outcome` do.
    """
    try:
        _check_content_type(dict(headers), REPLAY_OUTCOME_CONTENT_TYPE)
    except HeaderMismatch:
        return decode_dead_letter(value, headers)
    return decode_replay_outcome(value, headers)


def _payment_data(data: _Fields, provider: str, profile: str, *, version_2: bool) -> PaymentData:
    flow = data.enum("flow", Flow)
    status = data.enum("status", Status)
    if not version_2:
        if flow not in FLOWS_V1:
            data.fail("flow", f"{flow.value!r} is not a flow of {PAYMENT_SCHEMA} events")
        if status not in _V1_STATUSES:
            data.fail("status", f"{status.value!r} is not a status of {PAYMENT_SCHEMA} events")
    final = data.present("final")
    if not isinstance(final, bool):
        data.fail("final", f"must be a boolean, got {_show(final)}")
    if final != status.final:
        data.fail("final", f"is {final} but status {status.value!r} says {status.final}")
    return PaymentData(
        provider=provider,
        profile=profile,
        flow=flow,
        status=status,
        final=final,
        provider_status=data.text("provider_status"),
        merchant_order_id=data.nullable_text("merchant_order_id"),
        provider_order_id=data.nullable_text("provider_order_id"),
        amount=data.decimal("amount"),
        amount_received=data.decimal("amount_received"),
        fee=data.decimal("fee"),
        currency=data.nullable_text("currency") if version_2 else None,
        asset=data.nullable_text("asset"),
        network=data.nullable_text("network"),
        fiat_currency=data.nullable_text("fiat_currency"),
        fiat_amount=data.decimal("fiat_amount"),
        tx_hash=data.nullable_text("tx_hash"),
        address=data.nullable_text("address"),
        failure_reason=data.nullable_text("failure_reason"),
        raw=data.present("raw"),
    )


def _string_object(value: Any) -> bool:
    return isinstance(value, dict) and all(
        isinstance(item, str) for pair in value.items() for item in pair
    )


def _parse(value: bytes) -> dict[str, Any]:
    # The standard library rather than orjson: parse_float keeps raw's
    # non-integer numbers as Decimal (their exact text) where orjson gives floats.
    # schemas.ranges reads every number Relay publishes, and refuses the others.
    if not isinstance(value, bytes | bytearray | str):
        # A compacted topic's tombstone has no value (None).
        raise MalformedRecord(f"the record value is {type(value).__name__}, not bytes")
    try:
        document = ranges.loads(value)
    except ranges.OutOfRange as exc:
        raise MalformedRecord(f"the record value has {exc}") from None
    except (ValueError, RecursionError) as exc:
        raise MalformedRecord(f"the record value is not JSON: {exc}") from None
    if not isinstance(document, dict):
        raise MalformedRecord(
            f"the record value is a JSON {type(document).__name__}, not an object"
        )
    return document


_EnumT = TypeVar("_EnumT", bound=StrEnum)


class _Fields:
    """Typed reads from one JSON object, raising ``error`` with the field's dotted path."""

    def __init__(
        self,
        document: dict[str, Any],
        error: type[InvalidEvent | InvalidDeadLetter | InvalidReplayOutcome],
        prefix: str = "",
    ) -> None:
        self._document = document
        self._error = error
        self._prefix = prefix

    def fail(self, name: str, problem: str) -> NoReturn:
        raise self._error(self._prefix + name, problem)

    def get(self, name: str, default: Any) -> Any:
        return self._document.get(name, default)

    def present(self, name: str) -> Any:
        """The value, which may be anything (even null), but must be there."""
        if name not in self._document:
            self.fail(name, "is missing")
        return self._document[name]

    def text(self, name: str, *, empty: bool = False) -> str:
        value = self.present(name)
        if not isinstance(value, str) or (not value and not empty):
            self.fail(name, f"must be a {'' if empty else 'non-empty '}string, got {_show(value)}")
        return value

    def optional_text(self, name: str) -> str | None:
        """An attribute that may be absent, but is a non-empty string when there."""
        return self.text(name) if name in self._document else None

    def nullable_text(self, name: str) -> str | None:
        """A field that must be there, as null or a non-empty string."""
        return None if self.present(name) is None else self.text(name)

    def positive_int(self, name: str) -> int:
        value = self.present(name)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            self.fail(name, f"must be a positive integer, got {_show(value)}")
        return value

    def decimal(self, name: str) -> Decimal | None:
        value = self.present(name)
        if value is None:
            return None
        if not isinstance(value, str) or not _DECIMAL.fullmatch(value):
            self.fail(name, f"must be a decimal string such as '150.0000', got {_show(value)}")
        return Decimal(value)

    def enum(self, name: str, kind: type[_EnumT]) -> _EnumT:
        value = self.present(name)
        try:
            return kind(value)
        except ValueError:
            known = ", ".join(member.value for member in kind)
            self.fail(name, f"must be one of {known}, got {_show(value)}")

    def object(self, name: str) -> dict[str, Any]:
        value = self.present(name)
        if not isinstance(value, dict):
            self.fail(name, f"must be an object, got {_show(value)}")
        return value

    def time(self, name: str, value: Any) -> datetime:
        """An RFC 3339 time with an offset, as an aware UTC datetime."""
        if not isinstance(value, str):
            self.fail(name, f"must be an RFC 3339 time, got {_show(value)}")
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            self.fail(name, f"must be an RFC 3339 time, got {_show(value)}")
        if moment.tzinfo is None:
            self.fail(name, f"must have a UTC offset, got {_show(value)}")
        try:
            return ranges.utc(moment)
        except ranges.OutOfRange:
            self.fail(name, f"must be within the years 1 to 9999 in UTC, got {_show(value)}")


def _check_content_type(headers: Mapping[str, bytes], expected: str) -> None:
    value = headers.get("content-type")
    if not isinstance(value, bytes):
        raise HeaderMismatch("content-type", f"is missing (expected {expected})")
    # Media type parameters (e.g. charset=utf-8, which the CloudEvents Kafka
    # binding allows) do not change what the body is.
    media_type = value.decode("utf-8", errors="replace").split(";", 1)[0].strip().lower()
    if media_type != expected:
        raise HeaderMismatch("content-type", f"is {_show(media_type)}, expected {expected}")


def _check_routing_headers(
    headers: Mapping[str, bytes], specversion: str, id_: str, type_: str, source: str
) -> None:
    if "relay_id" not in headers and "ce_id" not in headers:
        raise HeaderMismatch("relay_id", "is missing")
    # The ce_* names are those of records written before the rename. Type and
    # source are optional for other producers, but when present a router relies on them.
    for name, expected in (
        ("relay_id", id_),
        ("relay_type", type_),
        ("relay_source", source),
        ("ce_id", id_),
        ("ce_type", type_),
        ("ce_source", source),
        ("ce_specversion", specversion),
    ):
        if name in headers:
            _check_equal(headers, name, expected)


def _check_equal(headers: Mapping[str, bytes], name: str, expected: str) -> None:
    value = headers[name]
    # surrogatepass: a lone surrogate escape ("\ud800") is valid JSON, not valid UTF-8.
    if value != expected.encode("utf-8", "surrogatepass"):
        shown = value.decode("utf-8", errors="replace") if isinstance(value, bytes) else None
        raise HeaderMismatch(name, f"is {_show(shown)} but the value says {_show(expected)}")


_LONG_NUMBER = 10**77


def _show(value: Any) -> str:
    """A JSON value for an error message, cut short: a hostile record must not flood the logs."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int) and abs(value) >= _LONG_NUMBER:
        # Written out it would be cut anyway, and a process may forbid writing it (the
        # integer-text limit, sys.set_int_max_str_digits).
        return "a number of more than 77 digits"
    if isinstance(value, int | Decimal):
        text = f"the number {value}"
    elif isinstance(value, str):
        text = repr(value)
    else:
        return "an array" if isinstance(value, list) else "an object"
    return text if len(text) <= 80 else text[:77] + "..."

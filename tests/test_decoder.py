"""The consumer-side decoder (``schemas/decoder.py``) against what Relay publishes.

Every event the golden cases produce is published through the real record
builder (``relay.records.to_kafka_record``) and decoded back with its headers;
every field must round-trip exactly (amounts as ``Decimal`` of the published
string, times in UTC, ``raw`` with each number's text intact). Each rejection
names the attribute or header, and each record the decoder rejects as invalid
is also rejected by the published JSON Schema, so the decoder is never
stricter than the contract by accident.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import jsonschema
import orjson
import pytest

import relay
from relay.deadletter import dead_letter_record, make_dead_letter
from relay.profiles import PROFILES
from relay.providers import stripe, usdt_invoice
from relay.records import KafkaRecord, to_kafka_record
from schemas import decoder
from schemas.decoder import (
    DecodeError,
    Flow,
    HeaderMismatch,
    InvalidDeadLetter,
    InvalidEvent,
    MalformedRecord,
    PaymentData,
    PaymentEvent,
    Status,
    UnsupportedSchema,
    WebhookEvent,
    decode_dead_letter,
    decode_event,
)
from schemas.event import (
    FLOWS,
    FLOWS_V1,
    PAYMENT_FIELDS,
    PAYMENT_FIELDS_V2,
    PAYMENT_SCHEMA,
    PAYMENT_SCHEMA_V2,
    WEBHOOK_SCHEMA,
    CanonicalEvent,
    Message,
    NormalizeContext,
    payment_event,
    webhook_event,
)
from schemas.payload import parse_payload
from schemas.records import DeadLetter
from schemas.values import FINAL_STATUSES, STATUSES, STATUSES_V1, rfc3339

GOLDEN = Path(__file__).parent / "golden"
SCHEMA = json.loads((Path(decoder.__file__).parent / "payment-event.schema.json").read_text())
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA, format_checker=jsonschema.FormatChecker())
TOPIC = "payments.events"
RECEIVED_AT = datetime(2026, 1, 2, 3, 4, 5, 250_000, tzinfo=UTC)
AMOUNT_FIELDS = ("amount", "amount_received", "fee", "fiat_amount")
TEXT_FIELDS = tuple(name for name in PAYMENT_FIELDS if name not in AMOUNT_FIELDS)


# -- what Relay publishes ------------------------------------------------------


@dataclass(frozen=True)
class GoldenEvent:
    """A golden case that produces an event: its input body and the expected event's text."""

    name: str
    body: bytes
    out: bytes


def _golden_events() -> list[GoldenEvent]:
    events = []
    for out in sorted(GOLDEN.glob("*/*.out.json")):
        text = out.read_bytes()
        document = json.loads(text)
        source = out.with_name(out.name.replace(".out.json", ".in.json"))
        if not source.exists():
            # Braintree's case is its XML (``.in.xml``); the event's raw is that notification
            # as JSON, all strings, which the expected event holds as the normalizer wrote it.
            if "error" in document:
                continue
            events.append(
                GoldenEvent(
                    f"{out.parent.name}/{out.name}", orjson.dumps(document["data"]["raw"]), text
                )
            )
            continue
        body = source.read_bytes()
        if isinstance(document, list):
            # A batch: each item's event, whose raw is the item's own bytes.
            profile = PROFILES[out.parent.name]
            assert profile.items is not None
            items = profile.items(body, profile.params)
            for index, (item, element) in enumerate(zip(items, document, strict=True)):
                if "error" not in element:
                    name = f"{out.parent.name}/{out.name}[{index}]"
                    events.append(GoldenEvent(name, item.body, json.dumps(element).encode()))
            continue
        if "error" in document:
            continue  # a case that records an expected NormalizationError: no event
        events.append(GoldenEvent(f"{out.parent.name}/{out.name}", body, text))
    return events


GOLDEN_EVENTS = _golden_events()


def _exact(text: bytes) -> Any:
    """JSON as the decoder must read it: non-integer numbers as Decimal, with their text."""
    return json.loads(text, parse_float=Decimal)


def _published(golden: GoldenEvent) -> KafkaRecord:
    """The Kafka record Relay publishes for a golden event, built by Relay's own code.

    ``raw`` is the input body embedded as it is, as the normalizers do; the
    other fields come from the expected event, which holds no numbers.
    """
    document = json.loads(golden.out)
    event = CanonicalEvent(
        id=document["id"],
        type=document["type"],
        source=document["source"],
        subject=document.get("subject"),
        time=document.get("time"),
        dataschema=document["dataschema"],
        relayreceivedat=document["relayreceivedat"],
        data={**document["data"], "raw": orjson.Fragment(golden.body)},
    )
    return to_kafka_record(event, TOPIC)


INVOICE = {
    "invoice_reference": "ORDER-12345",
    "status": "confirmed",
    "asset_code": "USDT_TRC20",
    "payout_address": "TXyz123abc456",
    "amount_usdt_exact": "150.0000",
    "tx_hash": "abc123def789",
    "paid_at": "2024-01-15T14:32:00Z",
}


def _context(provider: str, profile: str) -> NormalizeContext:
    return NormalizeContext(provider=provider, profile=profile, received_at=RECEIVED_AT)


def _payment_record(body: bytes | None = None) -> KafkaRecord:
    body = orjson.dumps(INVOICE) if body is None else body
    message = Message(body, parse_payload(body), {"x-webhook-id": "whl_0b7e2a4c"})
    event = usdt_invoice.normalize(message, _context("invoices", "usdt-invoice"))
    return to_kafka_record(event, TOPIC)


# A Stripe charge.refunded event, trimmed to what the normalizer reads: a version 2 event.
CHARGE_REFUNDED = {
    "id": "evt_1PgcA17B7WZ01zgkWq4Ks9xRf",
    "object": "event",
    "created": 1721949720,
    "type": "charge.refunded",
    "data": {
        "object": {
            "id": "ch_3PgafyB7WZ01zgkW1X7dQ2mN",
            "object": "charge",
            "amount": 1099,
            "amount_captured": 1099,
            "amount_refunded": 400,
            "captured": True,
            "refunded": False,
            "currency": "usd",
            "metadata": {"order_id": "ORDER-1001"},
            "payment_intent": "pi_3PgafyB7WZ01zgkW1r5Tq9Zc",
            "status": "succeeded",
        }
    },
}


def _card_record() -> KafkaRecord:
    body = orjson.dumps(CHARGE_REFUNDED)
    context = NormalizeContext(
        provider="cards",
        profile="stripe",
        received_at=RECEIVED_AT,
        order_id_metadata_key="order_id",
    )
    event = stripe.normalize(Message(body, parse_payload(body)), context)
    return to_kafka_record(event, TOPIC)


def _webhook_record() -> KafkaRecord:
    body = b'{"type":"ping","reference":"r-1"}'
    event = webhook_event(
        Message(body, parse_payload(body)),
        _context("hooks", "hmac"),
        event_id="evt_1",
        sender_type="ping",
    )
    return to_kafka_record(event, TOPIC)


def _floats(value: Any) -> Iterator[Any]:
    """Every float reachable from a decoded value (dataclasses, dicts, lists)."""
    if isinstance(value, float):
        yield value
    elif dataclasses.is_dataclass(value):
        for item in dataclasses.fields(value):
            yield from _floats(getattr(value, item.name))
    elif isinstance(value, dict):
        for item in value.values():
            yield from _floats(item)
    elif isinstance(value, list):
        for item in value:
            yield from _floats(item)


def _assert_utc(moment: datetime | None, text: str) -> None:
    assert moment is not None
    assert moment.tzinfo is UTC
    assert rfc3339(moment) == text  # the producer's own formatter gives the text back


# -- golden events round-trip --------------------------------------------------


def test_golden_events_cover_both_kinds() -> None:
    """The parametrized round trip below is not vacuous: every dataschema is there."""
    kinds = {json.loads(golden.out)["dataschema"] for golden in GOLDEN_EVENTS}
    assert kinds == {PAYMENT_SCHEMA, PAYMENT_SCHEMA_V2, WEBHOOK_SCHEMA}


@pytest.mark.parametrize("golden", GOLDEN_EVENTS, ids=[golden.name for golden in GOLDEN_EVENTS])
def test_decodes_golden_event(golden: GoldenEvent) -> None:
    expected = _exact(golden.out)
    record = _published(golden)
    event = decode_event(record.value, record.headers)
    assert event == decode_event(golden.out)  # the golden text and the record agree

    assert (event.id, event.source, event.type) == (
        expected["id"],
        expected["source"],
        expected["type"],
    )
    assert event.subject == expected.get("subject")
    _assert_utc(event.received_at, expected["relayreceivedat"])
    if "time" in expected:
        _assert_utc(event.time, expected["time"])
    else:
        assert event.time is None

    data = expected["data"]
    if expected["dataschema"] != WEBHOOK_SCHEMA:
        assert isinstance(event, PaymentEvent)
        payment = event.data
        # A version 1 event has no currency field; it decodes as None.
        assert payment.currency == data.get("currency")
        for name in AMOUNT_FIELDS:
            value = getattr(payment, name)
            if data[name] is None:
                assert value is None, name
            else:
                assert type(value) is Decimal, name
                # as_tuple: the same digits and exponent, so 150.0000 is not 150.
                assert value.as_tuple() == Decimal(data[name]).as_tuple(), name
        for name in (*TEXT_FIELDS, "provider", "profile", "provider_status"):
            assert getattr(payment, name) == data[name], name
        assert isinstance(payment.flow, Flow) and payment.flow == data["flow"]
        assert isinstance(payment.status, Status) and payment.status == data["status"]
        assert payment.final is data["final"]
        raw = payment.raw
    else:
        assert isinstance(event, WebhookEvent)
        assert (event.provider, event.profile) == (data["provider"], data["profile"])
        raw = event.raw
    # repr tells Decimal("150.0000") from Decimal("150.0"): every number's text survives.
    assert repr(raw) == repr(data["raw"])
    assert list(_floats(event)) == []


# -- the contract the decoder mirrors -----------------------------------------


def test_payment_data_has_every_contract_field() -> None:
    names = [item.name for item in dataclasses.fields(PaymentData)]
    assert names[2:-1] == ["flow", "status", "final", "provider_status", *PAYMENT_FIELDS_V2]
    assert set(names) == set(SCHEMA["$defs"]["paymentDataV2"]["required"])
    assert set(SCHEMA["$defs"]["paymentData"]["required"]) == set(names) - {"currency"}
    assert [name for name in PAYMENT_FIELDS_V2 if name != "currency"] == list(PAYMENT_FIELDS)


def test_enums_match_the_contract() -> None:
    v1 = SCHEMA["$defs"]["paymentData"]["properties"]
    v2 = SCHEMA["$defs"]["paymentDataV2"]["properties"]
    assert {status.value for status in Status} == STATUSES == set(v2["status"]["enum"])
    assert set(v1["status"]["enum"]) == STATUSES_V1
    assert {status.value for status in Status if status.final} == FINAL_STATUSES
    assert (
        set(SCHEMA["$defs"]["paymentDataV2"]["if"]["properties"]["status"]["enum"])
        == FINAL_STATUSES
    )
    assert (
        set(SCHEMA["$defs"]["paymentData"]["if"]["properties"]["status"]["enum"])
        == FINAL_STATUSES & STATUSES_V1
    )
    assert [flow.value for flow in Flow] == v2["flow"]["enum"]
    assert set(v2["flow"]["enum"]) == FLOWS and set(v1["flow"]["enum"]) == FLOWS_V1
    assert Status.SUCCEEDED == "succeeded"  # plain strings still compare equal


def test_known_schemas_match_the_contract() -> None:
    assert set(decoder.KNOWN_SCHEMAS) == set(SCHEMA["properties"]["dataschema"]["enum"])


def test_decoder_imports_no_kafka_client_and_no_relay() -> None:
    code = (
        "import sys, schemas.decoder; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'aiokafka', 'aiohttp', 'relay'}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


# -- dataschema versions ------------------------------------------------------


@pytest.mark.parametrize(
    "dataschema", ["urn:relay:payment-event:v3", "urn:relay:webhook-event:v2", "urn:other:v1"]
)
def test_rejects_another_dataschema(dataschema: str) -> None:
    document = json.loads(_payment_record().value)
    document["dataschema"] = dataschema
    # Another version may have another shape: the version is reported, not a missing field.
    del document["data"]
    with pytest.raises(UnsupportedSchema) as info:
        decode_event(json.dumps(document).encode())
    message = str(info.value)
    assert dataschema in message
    assert PAYMENT_SCHEMA in message and WEBHOOK_SCHEMA in message
    assert PAYMENT_SCHEMA_V2 in message
    assert info.value.dataschema == dataschema
    assert set(info.value.known) == {PAYMENT_SCHEMA, PAYMENT_SCHEMA_V2, WEBHOOK_SCHEMA}


def test_a_card_event_decodes_with_its_currency() -> None:
    record = _card_record()
    event = decode_event(record.value, record.headers)
    assert isinstance(event, PaymentEvent)
    assert event.type == "payment.payin.partially_refunded"
    assert (event.data.flow, event.data.status, event.data.final) == (
        Flow.PAYIN,
        Status.PARTIALLY_REFUNDED,
        False,
    )
    assert (event.data.amount, event.data.amount_received, event.data.currency) == (
        Decimal("10.99"),
        Decimal("10.99"),
        "USD",
    )
    assert event.subject == event.data.merchant_order_id == "ORDER-1001"


def test_a_version_1_event_has_no_currency() -> None:
    event = decode_event(_payment_record().value)
    assert isinstance(event, PaymentEvent)
    assert event.data.currency is None


# -- missing and ill-typed attributes ------------------------------------------

Change = Callable[[dict[str, Any]], None]


def _set(path: str, value: Any) -> Change:
    def change(document: dict[str, Any]) -> None:
        *parents, name = path.split(".")
        for parent in parents:
            document = document[parent]
        document[name] = value

    return change


def _drop(path: str) -> Change:
    def change(document: dict[str, Any]) -> None:
        *parents, name = path.split(".")
        for parent in parents:
            document = document[parent]
        del document[name]

    return change


INVALID: list[tuple[str, str, Change, str]] = [
    ("no id", "payment", _drop("id"), "id"),
    ("id a number", "payment", _set("id", 5), "id"),
    ("empty id", "payment", _set("id", ""), "id"),
    ("no source", "payment", _drop("source"), "source"),
    ("source not relay/", "payment", _set("source", "invoices"), "source"),
    ("type null", "payment", _set("type", None), "type"),
    ("no specversion", "payment", _drop("specversion"), "specversion"),
    ("specversion 0.3", "payment", _set("specversion", "0.3"), "specversion"),
    ("no dataschema", "payment", _drop("dataschema"), "dataschema"),
    ("dataschema a number", "payment", _set("dataschema", 1), "dataschema"),
    ("datacontenttype text", "payment", _set("datacontenttype", "text/plain"), "datacontenttype"),
    ("no datacontenttype", "payment", _drop("datacontenttype"), "datacontenttype"),
    ("subject null", "payment", _set("subject", None), "subject"),
    ("subject a number", "payment", _set("subject", 7), "subject"),
    ("time not a time", "payment", _set("time", "yesterday"), "time"),
    ("time without offset", "payment", _set("time", "2024-01-15T14:32:00"), "time"),
    ("time as UNIX seconds", "payment", _set("time", 1705329120), "time"),
    ("no relayreceivedat", "payment", _drop("relayreceivedat"), "relayreceivedat"),
    ("no data", "payment", _drop("data"), "data"),
    ("data a string", "payment", _set("data", "x"), "data"),
    ("amount a JSON number", "payment", _set("data.amount", 150.0), "data.amount"),
    ("amount in exponent notation", "payment", _set("data.amount", "1.5e2"), "data.amount"),
    ("amount with a separator", "payment", _set("data.amount", "1,500.00"), "data.amount"),
    ("amount with a plus sign", "payment", _set("data.amount", "+5"), "data.amount"),
    ("fee left out", "payment", _drop("data.fee"), "data.fee"),
    ("flow outside the enum", "payment", _set("data.flow", "refund"), "data.flow"),
    ("status outside the enum", "payment", _set("data.status", "paid"), "data.status"),
    ("final a string", "payment", _set("data.final", "true"), "data.final"),
    ("final disagreeing", "payment", _set("data.final", False), "data.final"),
    ("no provider", "payment", _drop("data.provider"), "data.provider"),
    ("provider_status null", "payment", _set("data.provider_status", None), "data.provider_status"),
    ("tx_hash a number", "payment", _set("data.tx_hash", 5), "data.tx_hash"),
    ("asset empty", "payment", _set("data.asset", ""), "data.asset"),
    ("no raw", "payment", _drop("data.raw"), "data.raw"),
    ("currency left out", "card", _drop("data.currency"), "data.currency"),
    ("currency a number", "card", _set("data.currency", 840), "data.currency"),
    ("card flow outside the enum", "card", _set("data.flow", "transfer"), "data.flow"),
    ("card final disagreeing", "card", _set("data.final", True), "data.final"),
    ("webhook without profile", "webhook", _drop("data.profile"), "data.profile"),
    ("webhook provider a number", "webhook", _set("data.provider", 3), "data.provider"),
    ("webhook without raw", "webhook", _drop("data.raw"), "data.raw"),
]


@pytest.mark.parametrize(
    ("kind", "change", "field"),
    [case[1:] for case in INVALID],
    ids=[case[0] for case in INVALID],
)
def test_rejects_invalid_attribute(kind: str, change: Change, field: str) -> None:
    record = {"payment": _payment_record, "card": _card_record, "webhook": _webhook_record}[kind]()
    document = json.loads(record.value)
    change(document)
    assert not VALIDATOR.is_valid(document), "the published contract rejects it too"
    with pytest.raises(InvalidEvent) as info:
        decode_event(json.dumps(document).encode())
    assert info.value.field == field
    assert field in str(info.value)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (_set("data.flow", "dispute"), "data.flow"),
        (_set("data.status", "authorized"), "data.status"),
    ],
    ids=["a version 2 flow", "a version 2 status"],
)
def test_a_version_1_event_holds_only_version_1_values(change: Change, field: str) -> None:
    """A refund is never read as a version 1 event: consumers of version 1 know no refunds."""
    document = json.loads(_payment_record().value)
    change(document)
    assert not VALIDATOR.is_valid(document)
    with pytest.raises(InvalidEvent) as info:
        decode_event(json.dumps(document).encode())
    assert info.value.field == field


@pytest.mark.parametrize(
    "value",
    [b"{", b"[1, 2]", b'"text"', b'{"id": NaN}', b"\xff\xfe\x00", b"[" * 100_000],
    ids=["truncated", "array", "string", "NaN", "not UTF-8", "nested too deep"],
)
def test_rejects_a_value_that_is_not_a_json_object(value: bytes) -> None:
    with pytest.raises(MalformedRecord):
        decode_event(value)


# -- values outside what an event may carry (schemas.ranges) ---------------------


def _with_raw_number(number: bytes) -> bytes:
    """A published payment event whose raw holds ``number``, nested (spliced in as text:
    a record another producer, or a Relay before the ranges, could have written)."""
    return _payment_record().value.replace(b'"paid_at"', b'"n":{"x":[' + number + b']},"paid_at"')


@pytest.mark.parametrize(
    "number",
    [
        b"1e999999999999999999999",  # past what decimal holds at all: it raised InvalidOperation
        b"-1e-999999999999999999999",
        b"1e1000000",
        b"9" * 4301,
        b"1." + b"0" * 4300,
    ],
    ids=["huge-exponent", "tiny-exponent", "exponent-past-the-bound", "long-integer", "long"],
)
def test_a_raw_number_outside_the_ranges_is_a_malformed_record(number: bytes) -> None:
    with pytest.raises(MalformedRecord, match="out of range"):
        decode_event(_with_raw_number(number))


def test_raw_numbers_at_the_ends_of_the_ranges_decode() -> None:
    event = decode_event(_with_raw_number(b"1e999999,-1e-999999," + b"9" * 4300))
    assert isinstance(event, PaymentEvent)
    assert event.data.raw["n"]["x"] == [Decimal("1e999999"), Decimal("-1e-999999"), 10**4300 - 1]


def test_a_long_raw_integer_decodes_whatever_the_process_limit() -> None:
    """Python's integer-text limit is per process: a consumer may lower it, and what Relay
    publishes must still decode."""
    previous = sys.get_int_max_str_digits()
    sys.set_int_max_str_digits(640)
    try:
        event = decode_event(_with_raw_number(b"9" * 4300))
    finally:
        sys.set_int_max_str_digits(previous)
    assert isinstance(event, PaymentEvent)
    assert event.data.raw["n"]["x"] == [10**4300 - 1]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("time", "9999-12-31T23:59:59-01:00"),
        ("time", "0001-01-01T00:00:00+00:01"),
        ("relayreceivedat", "9999-12-31T23:59:59.999-00:01"),
    ],
)
def test_a_time_outside_the_years_1_to_9999_in_utc_is_invalid(name: str, value: str) -> None:
    """It raised OverflowError (not a DecodeError) converting to UTC."""
    document = json.loads(_payment_record().value)
    document[name] = value
    with pytest.raises(InvalidEvent, match="years 1 to 9999") as info:
        decode_event(json.dumps(document).encode())
    assert info.value.field == name


def test_an_id_that_is_not_valid_unicode_is_a_header_mismatch() -> None:
    """A lone surrogate escape is valid JSON; comparing it with the header raised
    UnicodeEncodeError."""
    record = _payment_record()
    value = record.value.replace(b'"id":"', b'"id":"\\ud800', 1)
    with pytest.raises(HeaderMismatch) as info:
        decode_event(value, record.headers)
    assert info.value.header == "relay_id"


@pytest.mark.parametrize("value", [None, 5], ids=["tombstone", "int"])
def test_a_value_that_is_not_bytes_is_a_malformed_record(value: Any) -> None:
    """A compacted topic's tombstone has no value: ``record.value`` is None."""
    for decode in (decode_event, decode_dead_letter):
        with pytest.raises(MalformedRecord):
            decode(value)


def test_error_messages_are_short_for_huge_values() -> None:
    document = json.loads(_payment_record().value)
    document["data"]["flow"] = "x" * 100_000
    with pytest.raises(InvalidEvent) as info:
        decode_event(json.dumps(document).encode())
    assert len(str(info.value)) < 300


def test_errors_form_one_hierarchy() -> None:
    for error in (
        MalformedRecord,
        InvalidEvent,
        InvalidDeadLetter,
        UnsupportedSchema,
        HeaderMismatch,
    ):
        assert issubclass(error, DecodeError)
    assert issubclass(DecodeError, ValueError)


# -- what the decoder tolerates -------------------------------------------------


def test_ignores_an_unknown_extension_attribute() -> None:
    document = json.loads(_payment_record().value)
    document["traceparent"] = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    event = decode_event(json.dumps(document).encode())
    assert event == decode_event(_payment_record().value)


def test_converts_a_time_with_an_offset_to_utc() -> None:
    document = json.loads(_payment_record().value)
    document["time"] = "2024-01-15T22:32:00.5+08:00"
    event = decode_event(json.dumps(document).encode())
    assert event.time == datetime(2024, 1, 15, 14, 32, 0, 500_000, tzinfo=UTC)
    assert event.time is not None and event.time.tzinfo is UTC


# -- amounts never become floats -----------------------------------------------


def test_amounts_and_raw_numbers_are_decimal_never_float() -> None:
    body = (
        b'{"status":"2","amount":150.0000,"tiny":1e-7,"huge":1e400,'
        b'"big":123456789012345678901234567890,"nested":[0.1,{"x":-2.50}]}'
    )
    values = {
        "amount": "150.0000",
        "amount_received": "0.00000001",
        "fee": "123456789012345678901234567890.123456789",
        "fiat_amount": "-0.5",
    }
    event = payment_event(
        Message(body, parse_payload(body)),
        _context("collect", "usdt-collect-pay"),
        event_id="a" * 32,
        flow="payin",
        status=("succeeded", True),
        provider_status="2",
        time=None,
        **values,
    )
    record = to_kafka_record(event, TOPIC)
    decoded = decode_event(record.value, record.headers)
    assert isinstance(decoded, PaymentEvent)
    for name, text in values.items():
        value = getattr(decoded.data, name)
        assert type(value) is Decimal
        assert value.as_tuple() == Decimal(text).as_tuple()
    raw = decoded.data.raw
    assert repr(raw["amount"]) == "Decimal('150.0000')"
    assert raw["tiny"] == Decimal("1e-7") and raw["huge"] == Decimal("1e400")
    assert raw["big"] == 123456789012345678901234567890
    assert raw["nested"] == [Decimal("0.1"), {"x": Decimal("-2.50")}]
    assert list(_floats(decoded)) == []


def test_an_amount_sent_as_a_json_number_decodes_exactly() -> None:
    body = orjson.dumps({**INVOICE, "amount_usdt_exact": "PLACEHOLDER"}).replace(
        b'"PLACEHOLDER"', b"5000000.000001"
    )
    event = decode_event(_payment_record(body).value)
    assert isinstance(event, PaymentEvent)
    assert event.data.amount == Decimal("5000000.000001")
    assert repr(event.data.raw["amount_usdt_exact"]) == "Decimal('5000000.000001')"


# -- headers --------------------------------------------------------------------


def _with_header(record: KafkaRecord, name: str, value: bytes | None) -> list[tuple[str, bytes]]:
    """The record's headers with ``name`` replaced by ``value``, or dropped when None."""
    headers = [(key, item) for key, item in record.headers if key != name]
    return headers if value is None else [*headers, (name, value)]


def test_accepts_the_headers_relay_writes() -> None:
    for record in (_payment_record(), _webhook_record()):
        assert decode_event(record.value, record.headers) == decode_event(record.value)


def test_accepts_a_charset_parameter_and_takes_the_last_repeated_header() -> None:
    record = _payment_record()
    headers = [
        ("content-type", b"text/plain"),
        *_with_header(record, "content-type", b"application/cloudevents+json; charset=UTF-8"),
    ]
    assert decode_event(record.value, headers) == decode_event(record.value)


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("content-type", b"application/json", "application/cloudevents+json"),
        ("content-type", b"application/vnd.relay.dead-letter+json", "cloudevents"),
        ("content-type", None, "missing"),
        ("relay_id", b"another-id", "another-id"),
        ("relay_id", None, "missing"),
        ("relay_type", b"payment.payin.pending", "payment.payin.succeeded"),
        ("relay_source", b"relay/other", "relay/invoices"),
    ],
    ids=[
        "json",
        "dead letter",
        "no content-type",
        "relay_id differs",
        "no relay_id",
        "relay_type differs",
        "relay_source differs",
    ],
)
def test_rejects_headers_that_disagree(name: str, value: bytes | None, expected: str) -> None:
    record = _payment_record()
    with pytest.raises(HeaderMismatch) as info:
        decode_event(record.value, _with_header(record, name, value))
    assert info.value.header == name
    assert expected in str(info.value)


def _legacy_headers(record: KafkaRecord) -> list[tuple[str, bytes]]:
    """The headers Relay wrote before its routing headers were renamed to ``relay_*``."""
    named = dict(record.headers)
    return [
        ("content-type", named["content-type"]),
        ("ce_specversion", b"1.0"),
        ("ce_id", named["relay_id"]),
        ("ce_type", named["relay_type"]),
        ("ce_source", named["relay_source"]),
    ]


def test_accepts_the_ce_headers_of_records_written_before_the_rename() -> None:
    for record in (_payment_record(), _webhook_record()):
        assert decode_event(record.value, _legacy_headers(record)) == decode_event(record.value)


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("ce_id", b"another-id", "another-id"),
        ("ce_type", b"payment.payin.pending", "payment.payin.succeeded"),
        ("ce_source", b"relay/other", "relay/invoices"),
        ("ce_specversion", b"0.3", "1.0"),
    ],
    ids=["ce_id differs", "ce_type differs", "ce_source differs", "ce_specversion differs"],
)
def test_rejects_old_ce_headers_that_disagree(name: str, value: bytes, expected: str) -> None:
    record = _payment_record()
    headers = [*_legacy_headers(record), (name, value)]
    with pytest.raises(HeaderMismatch) as info:
        decode_event(record.value, headers)
    assert info.value.header == name
    assert expected in str(info.value)


def test_a_wrong_relay_id_fails_even_beside_a_right_ce_id() -> None:
    record = _payment_record()
    headers = [
        *_with_header(record, "relay_id", b"another-id"),
        ("ce_id", dict(record.headers)["relay_id"]),
    ]
    with pytest.raises(HeaderMismatch) as info:
        decode_event(record.value, headers)
    assert info.value.header == "relay_id"


def test_checks_content_type_before_parsing() -> None:
    """A record from another producer is reported by its header, not as broken JSON."""
    with pytest.raises(HeaderMismatch):
        decode_event(b"\x00binary", [("content-type", b"application/octet-stream")])


# -- dead letters -----------------------------------------------------------------


def _dead_letter(**overrides: Any) -> DeadLetter:
    arguments: dict[str, Any] = {
        "provider": "collect",
        "profile": "usdt-collect-pay",
        "reason": "unknown_status",
        "message": "the status '9' in 'status' is not a known status",
        "received_at": RECEIVED_AT,
        "headers": {"x-webhook-id": "whl_1"},
        # Not UTF-8 on purpose: the body is bytes and must come back as sent.
        "body": b'{"status":9}\xff\x00',
        "attempts": 3,
    }
    return make_dead_letter(**(arguments | overrides))


def test_a_dead_letter_reads_back_as_filed() -> None:
    letter = _dead_letter()
    read = decode_dead_letter(letter.to_json())
    assert read == letter
    assert read.received_at == RECEIVED_AT and read.received_at.tzinfo is UTC
    assert read.dead_lettered_at.tzinfo is UTC
    assert read.body == b'{"status":9}\xff\x00'
    assert (read.attempts, read.relay_version) == (3, relay.__version__)


def test_dead_letter_headers_are_checked() -> None:
    letter = _dead_letter()
    record = dead_letter_record(letter, "payments.events.dlq")
    assert decode_dead_letter(record.value, record.headers) == decode_dead_letter(record.value)
    with pytest.raises(HeaderMismatch) as info:
        decode_dead_letter(record.value, _with_header(record, "relay_reason", b"invalid_amount"))
    assert info.value.header == "relay_reason"
    with pytest.raises(HeaderMismatch) as info:
        decode_dead_letter(record.value, _with_header(record, "relay_provider", b"other"))
    assert info.value.header == "relay_provider"
    with pytest.raises(HeaderMismatch) as info:
        decode_dead_letter(record.value, _payment_record().headers)
    assert info.value.header == "content-type"


def test_a_dead_letter_is_not_an_event() -> None:
    record = dead_letter_record(_dead_letter(), "payments.events.dlq")
    with pytest.raises(HeaderMismatch):
        decode_event(record.value, record.headers)
    with pytest.raises(InvalidEvent):
        decode_event(record.value)


def test_a_letter_from_before_the_optional_fields_reads_with_their_old_defaults() -> None:
    """``relay replay`` reads letters with this decoder: old letters must still replay."""
    document = json.loads(_dead_letter().to_json())
    for name in ("dead_lettered_at", "attempts", "relay_version", "headers"):
        del document[name]
    letter = decode_dead_letter(json.dumps(document).encode())
    assert (letter.attempts, letter.relay_version, dict(letter.headers)) == (1, "", {})
    assert letter.dead_lettered_at == letter.received_at == RECEIVED_AT


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (_drop("reason"), "reason"),
        (_set("provider", ""), "provider"),
        (_set("body_base64", "not base64!"), "body_base64"),
        (_set("body_base64", "é"), "body_base64"),  # raised ValueError, not a DecodeError
        (_set("received_at", "9999-12-31T23:59:59-01:00"), "received_at"),
        (_set("attempts", 0), "attempts"),
        (_set("attempts", True), "attempts"),
        (_set("attempts", "2"), "attempts"),
        (_set("headers", {"x-webhook-id": 1}), "headers"),
        (_set("received_at", "yesterday"), "received_at"),
        (_set("dead_lettered_at", None), "dead_lettered_at"),
        (_set("relay_version", 1), "relay_version"),
    ],
    ids=lambda value: value if isinstance(value, str) else "",
)
def test_rejects_an_invalid_dead_letter(change: Change, field: str) -> None:
    document = json.loads(_dead_letter().to_json())
    change(document)
    with pytest.raises(InvalidDeadLetter) as info:
        decode_dead_letter(json.dumps(document).encode())
    assert info.value.field == field
    assert field in str(info.value)


def test_rejects_a_dead_letter_that_is_not_an_object() -> None:
    with pytest.raises(MalformedRecord):
        decode_dead_letter(b"[]")


def test_an_error_naming_a_long_integer_does_not_write_it_out() -> None:
    """A process may forbid writing a long integer as text: the error must not raise that."""
    document = json.loads(_payment_record().value)
    document["id"] = 10**4000
    value = json.dumps(document).encode()
    previous = sys.get_int_max_str_digits()
    sys.set_int_max_str_digits(640)
    try:
        with pytest.raises(InvalidEvent, match="more than 77 digits"):
            decode_event(value)
    finally:
        sys.set_int_max_str_digits(previous)

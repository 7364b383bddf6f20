"""``schemas/asyncapi.yaml`` against what Relay actually writes to Kafka.

The AsyncAPI document is read by people and code generators in other
languages, so it must not drift: its header names and content types are
compared with the records built by ``relay.records.to_kafka_record`` and
``relay.deadletter.dead_letter_record``, its record-key patterns with their keys,
its dead letter and replay outcome schemas with ``DeadLetter.to_json`` and
``ReplayOutcome.to_json``, and its topics with the config defaults. A renamed
header or a new dead-letter field fails here.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonschema
import orjson
import pytest
import yaml

from relay.deadletter import (
    dead_letter_record,
    make_dead_letter,
    make_replay_outcome,
    replay_outcome_record,
)
from relay.providers import stripe, usdt_invoice, v2_payout
from relay.records import KafkaRecord, to_kafka_record
from relay.settings import KafkaConfig
from schemas import decoder
from schemas.decoder import decode_dead_letter, decode_event
from schemas.event import Message, NormalizeContext, webhook_event
from schemas.payload import parse_payload
from schemas.records import (
    CLOUDEVENTS_CONTENT_TYPE,
    DEAD_LETTER_CONTENT_TYPE,
    REPLAY_OUTCOME_CONTENT_TYPE,
    ReplayResult,
)

SPEC_PATH = Path(decoder.__file__).parent / "asyncapi.yaml"
SPEC: dict[str, Any] = yaml.safe_load(SPEC_PATH.read_text())
EVENT_SCHEMA_PATH = SPEC_PATH.parent / "payment-event.schema.json"
RECEIVED_AT = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
KAFKA = KafkaConfig()
TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b9c7c989f97918e1-01"
# Written only when tracing is on: documented, never required.
OPTIONAL_HEADERS = {"traceparent"}


def _resolve(ref: str) -> Any:
    """A local reference (``#/a/b``) in the AsyncAPI document."""
    assert ref.startswith("#/"), ref
    node: Any = SPEC
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        if isinstance(node.get("$ref"), str):
            yield node["$ref"]
        for value in node.values():
            yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


def _message(name: str) -> dict[str, Any]:
    return SPEC["components"]["messages"][name]


def _context(provider: str, profile: str, traceparent: str | None = None) -> NormalizeContext:
    return NormalizeContext(
        provider=provider, profile=profile, received_at=RECEIVED_AT, traceparent=traceparent
    )


def _payment_record(traceparent: str | None = None) -> KafkaRecord:
    body = b'{"invoice_reference":"ORDER-1","status":"confirmed","amount_usdt_exact":"150.0000"}'
    message = Message(body, parse_payload(body), {"x-webhook-id": "whl_1"})
    event = usdt_invoice.normalize(message, _context("invoices", "usdt-invoice", traceparent))
    return to_kafka_record(event, KAFKA.topic)


def _payout_record_without_merchant_order() -> KafkaRecord:
    """A payment event whose provider sends no merchant order id: the provider's order id."""
    body = b'{"orderNo":"P-778","state":"PENDING","amount":"5.00","sign":"x"}'
    event = v2_payout.normalize(Message(body, parse_payload(body)), _context("payout", "v2-payout"))
    assert event.subject is None
    return to_kafka_record(event, KAFKA.topic)


def _webhook_record() -> KafkaRecord:
    """An event without a merchant order id: its key uses the event id."""
    body = b'{"type":"ping"}'
    event = webhook_event(
        Message(body, parse_payload(body)),
        _context("hooks", "hmac"),
        event_id="evt_1",
        sender_type="ping",
    )
    return to_kafka_record(event, KAFKA.topic)


def _dead_letter_record(traceparent: str | None = None) -> KafkaRecord:
    letter = make_dead_letter(
        provider="collect",
        profile="usdt-collect-pay",
        reason="unknown_status",
        message="the status '9' in 'status' is not a known status",
        received_at=RECEIVED_AT,
        headers={"x-webhook-id": "whl_1"},
        body=b'{"status":9}',
    )
    return dead_letter_record(letter, KAFKA.dead_letter_topic, traceparent)


def _header_names(record: KafkaRecord) -> list[str]:
    return [name for name, _ in record.headers]


def _headers_document(record: KafkaRecord) -> dict[str, str]:
    return {name: value.decode() for name, value in record.headers}


def test_is_asyncapi_3() -> None:
    assert re.fullmatch(r"3\.[0-9]+\.[0-9]+", SPEC["asyncapi"])
    assert SPEC["info"]["title"] and SPEC["info"]["version"]


def test_local_references_resolve() -> None:
    refs = list(_refs(SPEC))
    assert refs
    for ref in refs:
        if ref.startswith("#/"):
            assert _resolve(ref) is not None, ref
        else:
            assert (SPEC_PATH.parent / ref).is_file(), ref


def test_channels_are_the_configured_topics() -> None:
    channels = SPEC["channels"]
    assert {channel["address"] for channel in channels.values()} == {
        "payments.events",
        "payments.events.dlq",
    }
    # The defaults Relay's config uses, so the document names the real topics.
    assert {KAFKA.topic, KAFKA.dead_letter_topic} == {"payments.events", "payments.events.dlq"}
    for channel in channels.values():
        assert channel["bindings"]["kafka"]["topic"] == channel["address"]
        assert "configurable" in channel["description"] or "[kafka]" in channel["description"]


def test_relay_sends_to_both_topics_and_consumers_receive() -> None:
    actions = set()
    for operation in SPEC["operations"].values():
        channel = _resolve(operation["channel"]["$ref"])
        actions.add((operation["action"], channel["address"]))
        for message in operation["messages"]:
            # An operation's messages are its channel's messages.
            assert message["$ref"].startswith(operation["channel"]["$ref"] + "/messages/")
            assert _resolve(message["$ref"])
    assert actions == {
        ("send", "payments.events"),
        ("send", "payments.events.dlq"),
        ("receive", "payments.events"),
        ("receive", "payments.events.dlq"),
    }


def test_event_payload_is_the_published_json_schema() -> None:
    payload = _message("canonicalEvent")["payload"]
    assert "draft-2020-12" in payload["schemaFormat"]
    target = (SPEC_PATH.parent / payload["schema"]["$ref"]).resolve()
    assert target == EVENT_SCHEMA_PATH.resolve()
    assert target.is_file()
    schema = json.loads(target.read_text())
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"


@pytest.mark.parametrize(
    ("message", "record", "content_type"),
    [
        ("canonicalEvent", _payment_record(), CLOUDEVENTS_CONTENT_TYPE),
        ("canonicalEvent", _webhook_record(), CLOUDEVENTS_CONTENT_TYPE),
        ("deadLetter", _dead_letter_record(), DEAD_LETTER_CONTENT_TYPE),
        ("canonicalEvent", _payment_record(TRACEPARENT), CLOUDEVENTS_CONTENT_TYPE),
        ("deadLetter", _dead_letter_record(TRACEPARENT), DEAD_LETTER_CONTENT_TYPE),
    ],
    ids=["payment event", "webhook event", "dead letter", "traced event", "traced dead letter"],
)
def test_headers_match_the_records_relay_writes(
    message: str, record: KafkaRecord, content_type: str
) -> None:
    spec = _message(message)
    headers = spec["headers"]
    names = _header_names(record)
    assert set(headers["properties"]) == set(names) | OPTIONAL_HEADERS
    assert set(headers["required"]) == set(names) - OPTIONAL_HEADERS
    jsonschema.Draft7Validator(headers).validate(_headers_document(record))
    assert spec["contentType"] == content_type
    assert headers["properties"]["content-type"]["const"] == content_type


@pytest.mark.parametrize(
    ("message", "record"),
    [
        ("canonicalEvent", _payment_record()),
        ("canonicalEvent", _webhook_record()),
        ("deadLetter", _dead_letter_record()),
    ],
    ids=["payment event", "webhook event", "dead letter"],
)
def test_record_keys_match_the_documented_pattern(message: str, record: KafkaRecord) -> None:
    key = _message(message)["bindings"]["kafka"]["key"]
    assert re.fullmatch(key["pattern"], record.key.decode())


def test_record_key_rules_are_the_documented_ones() -> None:
    assert _payment_record().key == b"invoices:ORDER-1"
    assert _payout_record_without_merchant_order().key == b"payout:P-778"
    assert _webhook_record().key == b"hooks:evt_1"
    letter = orjson.loads(_dead_letter_record().value)
    assert _dead_letter_record().key == f"collect:{letter['id']}".encode()
    description = _message("canonicalEvent")["description"]
    assert "<provider>:<merchant order id>" in description
    assert "<provider>:<provider order id>" in description
    assert "<provider>:<event id>" in description
    assert "<provider>:<dead letter id>" in _message("deadLetter")["description"]


def test_correlation_id_is_the_relay_id_header() -> None:
    message = _message("canonicalEvent")
    assert message["correlationId"]["location"] == "$message.header#/relay_id"
    assert "relay_id" in _header_names(_payment_record())


def test_dead_letter_schema_matches_the_document() -> None:
    payload = _message("deadLetter")["payload"]
    assert "draft-2020-12" in payload["schemaFormat"]
    schema = payload["schema"]
    jsonschema.Draft202012Validator.check_schema(schema)
    document = orjson.loads(_dead_letter_record().value)
    validator = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())
    validator.validate(document)
    # ``item`` is written only in the letters of a batch's notifications.
    assert set(schema["properties"]) == set(document) | {"item"}
    assert set(schema["required"]) == set(document)
    validator.validate({**document, "item": 2})
    assert not validator.is_valid({**document, "item": -1})


@pytest.mark.parametrize(
    "example", _message("canonicalEvent")["examples"], ids=lambda example: example["name"]
)
def test_each_example_is_a_valid_event_with_its_headers(example: dict[str, Any]) -> None:
    event_schema = json.loads(EVENT_SCHEMA_PATH.read_text())
    jsonschema.Draft202012Validator(
        event_schema, format_checker=jsonschema.FormatChecker()
    ).validate(example["payload"])
    jsonschema.Draft7Validator(_message("canonicalEvent")["headers"]).validate(example["headers"])
    headers = [(name, str(value).encode()) for name, value in example["headers"].items()]
    event = decode_event(json.dumps(example["payload"]).encode(), headers)
    assert event.id == example["payload"]["id"]


def test_the_card_example_is_what_the_stripe_normalizer_makes() -> None:
    """The documented version 2 example is Relay's own output for its raw body."""
    (example,) = [e for e in _message("canonicalEvent")["examples"] if e["name"] == "cardRefunded"]
    payload = example["payload"]
    body = orjson.dumps(payload["data"]["raw"])
    received = datetime.fromisoformat(payload["relayreceivedat"])
    context = NormalizeContext(
        provider="cards", profile="stripe", received_at=received, order_id_metadata_key="order_id"
    )
    event = stripe.normalize(Message(body, parse_payload(body)), context)
    assert json.loads(event.to_json()) == payload


def _replay_outcome_records() -> list[KafkaRecord]:
    """One record per kind of outcome a replay files, about the letter above."""
    letter = decode_dead_letter(_dead_letter_record().value)
    outcomes = [
        make_replay_outcome(letter, ReplayResult.REPLAYED, event_id="0d598d11d3643950"),
        make_replay_outcome(letter, ReplayResult.DUPLICATE, event_id="0d598d11d3643950"),
        make_replay_outcome(
            letter, ReplayResult.FAILED_AGAIN, reason="unknown_status", new_attempts=2
        ),
        make_replay_outcome(letter, ReplayResult.FAILED_AGAIN, reason="unknown_provider"),
    ]
    records = [replay_outcome_record(outcome, KAFKA.dead_letter_topic) for outcome in outcomes]
    signed = replay_outcome_record(outcomes[0], KAFKA.dead_letter_topic, "k" * 32)
    return [*records, signed]


@pytest.mark.parametrize(
    "record",
    _replay_outcome_records(),
    ids=["replayed", "duplicate", "failed again", "failed, instance gone", "signed"],
)
def test_replay_outcomes_match_their_message(record: KafkaRecord) -> None:
    spec = _message("replayOutcome")
    headers = spec["headers"]
    names = set(_header_names(record))
    # Written only with [replay] outcome_key: documented, never required.
    assert set(headers["properties"]) == names | {"relay_outcome_mac"}
    assert set(headers["required"]) == names - {"relay_outcome_mac"}
    jsonschema.Draft7Validator(headers).validate(_headers_document(record))
    assert spec["contentType"] == REPLAY_OUTCOME_CONTENT_TYPE
    assert headers["properties"]["content-type"]["const"] == REPLAY_OUTCOME_CONTENT_TYPE
    # Keyed like the letter: the same partition, after it.
    assert record.key == _dead_letter_record().key
    assert re.fullmatch(spec["bindings"]["kafka"]["key"]["pattern"], record.key.decode())
    schema = spec["payload"]["schema"]
    jsonschema.Draft202012Validator.check_schema(schema)
    document = orjson.loads(record.value)
    jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker()).validate(
        document
    )
    assert set(schema["properties"]) == set(document) == set(schema["required"])
    assert set(schema["properties"]["outcome"]["enum"]) == {result.value for result in ReplayResult}
    assert headers["properties"]["relay_outcome"]["enum"] == schema["properties"]["outcome"]["enum"]


def test_the_dead_letter_channel_carries_both_kinds_of_record() -> None:
    channel = SPEC["channels"]["deadLetters"]
    assert set(channel["messages"]) == {"deadLetter", "replayOutcome"}
    for operation in ("publishDeadLetter", "receiveDeadLetter"):
        messages = {ref["$ref"] for ref in SPEC["operations"][operation]["messages"]}
        assert messages == {
            "#/channels/deadLetters/messages/deadLetter",
            "#/channels/deadLetters/messages/replayOutcome",
        }

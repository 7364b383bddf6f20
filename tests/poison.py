"""Hostile records for the operator tools: what anyone who can write to a topic can put there.

Each tool that reads a topic (``relay tail``, ``find``, ``dlq list``/``show``,
``replay``) must pass over every unreadable record here with one line on stderr
naming it, go on, and print what it does show without a raw control character.
The records are built by hand (not through Relay's writers): they are what a
stranger writes.
"""

from __future__ import annotations

import base64
import re
from typing import Any

import orjson

from relay.kafka import KafkaSink
from relay.records import KafkaRecord
from relay.settings import KafkaConfig

DEAD_LETTER = (("content-type", b"application/vnd.relay.dead-letter+json"),)
EVENT = (("content-type", b"application/cloudevents+json"), ("relay_id", b"evt-poison"))

# What a terminal must never receive raw: a window title (OSC 0), clear screen (CSI 2J),
# a clipboard write (OSC 52), the 8-bit CSI, and a right-to-left override.
ESCAPES = "\x1b]0;pwned\x07\x1b[2J\x1b]52;c;cm0gLXJmIH4=\x07\x9b31m\u202e"
RAW_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


async def publish(kafka: KafkaConfig, records: list[KafkaRecord]) -> None:
    """Write ``records`` as they are, in order."""
    sink = KafkaSink(kafka)
    await sink.start()
    try:
        assert await sink.wait_connected(10)
        for record in records:
            await sink.send(record)
    finally:
        await sink.stop()


def assert_inert(*outputs: str) -> None:
    """No control character but line breaks and tabs reaches the terminal."""
    for output in outputs:
        found = RAW_CONTROL.search(output)
        assert found is None, f"a raw {found.group()!r} in {output[:200]!r}"


def skipped_lines(stderr: str, topic: str, what: str) -> list[str]:
    """The lines naming records passed over on ``topic``, as ``<topic>/<partition>@<offset>``."""
    pattern = re.compile(rf"{re.escape(topic)}/\d+@\d+: not a Relay {what}: .+")
    return [line for line in stderr.splitlines() if pattern.fullmatch(line)]


def letter_document(**fields: Any) -> dict[str, Any]:
    """A dead-letter document of the ``invoices`` instance; ``fields`` replace its own."""
    body = b'{"invoice_reference":"ORD-POISON","status":"refunded"}'
    return {
        "id": "0" * 32,
        "provider": "invoices",
        "profile": "usdt-invoice",
        "reason": "unknown_status",
        "message": "the status 'refunded' in 'status' is not a known status",
        "received_at": "2026-01-02T03:04:05Z",
        "dead_lettered_at": "2026-01-02T03:04:05Z",
        "headers": {},
        "body_base64": base64.b64encode(body).decode(),
        "attempts": 1,
        "relay_version": "0.1.0",
    } | fields


def unreadable_letters(topic: str) -> dict[str, KafkaRecord]:
    """Records of the dead-letter topic the decoder refuses, by what is wrong with them."""

    def record(name: str, value: bytes, headers: Any = DEAD_LETTER) -> tuple[str, KafkaRecord]:
        return name, KafkaRecord(topic, f"invoices:{name}".encode(), value, headers)

    return dict(
        [
            record("malformed-json", b'{"id": "x", "provider": '),
            record("not-utf8", b'{"id": "\xff\xfe"}'),
            record("wrong-types", orjson.dumps(letter_document(attempts="1", provider=7))),
            record(
                "extreme-time",
                orjson.dumps(letter_document(received_at="9999-12-31T23:59:59-01:00")),
            ),
            record(
                "huge-exponent",
                orjson.dumps(letter_document()).replace(b'"attempts":1', b'"attempts":1e999999999'),
            ),
            record("no-content-type", orjson.dumps(letter_document()), ()),
        ]
    )


def unreadable_events(topic: str, key: bytes) -> dict[str, KafkaRecord]:
    """Records of the events topic the decoder refuses, keyed ``key`` (so that ``relay find``
    takes them for candidates and decodes them)."""
    event = {
        "specversion": "1.0",
        "id": "evt-poison",
        "source": "relay/invoices",
        "type": "payment.payin.succeeded",
        "datacontenttype": "application/json",
        "dataschema": "urn:relay:webhook-event:v1",
        "relayreceivedat": "2026-01-02T03:04:05Z",
        "data": {"provider": "invoices", "profile": "usdt-invoice", "raw": {}},
    }
    return {
        name: KafkaRecord(topic, key, value, EVENT)
        for name, value in (
            ("malformed-json", b'{"specversion": "1.0", "id": '),
            ("not-utf8", b'{"id": "\xff"}'),
            ("wrong-types", orjson.dumps(event | {"specversion": 1, "id": 5})),
            (
                "extreme-time",
                orjson.dumps(event | {"relayreceivedat": "9999-12-31T23:59:59-01:00"}),
            ),
            (
                "huge-exponent",
                orjson.dumps(event)
                .replace(b'"raw":{}', b'"raw":{"n":1e999999999}')
                .replace(b'"specversion":"1.0"', b'"specversion":1e999999999'),
            ),
        )
    }

"""The two record formats Relay publishes, defined once: written here, read here.

An event record is a CloudEvent in structured JSON mode: its value is the
event (:meth:`schemas.event.CanonicalEvent.to_json`), its headers the content
type and the ``relay_id``, ``relay_type`` and ``relay_source`` a router reads
without parsing the value (:func:`event_headers`). A dead-letter record's value
is a :class:`DeadLetter` document (:meth:`DeadLetter.to_json`), its headers the
content type, the reason and the provider (:func:`dead_letter_headers`).

No event record header starts with ``ce_``. The CloudEvents Kafka binding
lets a structured-mode record repeat attributes as ``ce_*`` headers and tells
a receiver to pick the mode by ``content-type``, but the official Python SDK
(``cloudevents`` 2.x, ``cloudevents.core.bindings.kafka.from_kafka``) picks
binary mode on any ``ce_`` header: it then took the whole envelope for
``data`` and stamped ``time`` with the read time. Routing headers named
``relay_*``, like the dead-letter ones, read correctly under both rules.
Records written before the rename carry ``ce_specversion``, ``ce_id``,
``ce_type`` and ``ce_source`` instead; ``schemas/decoder.py`` accepts either.

Relay writes records with these functions (``relay/records.py``,
``relay/deadletter.py``); ``schemas/decoder.py`` reads both back, and every
reader (``relay replay``, ``relay dlq``, ``relay tail``, consumers) goes
through it. Like the rest of ``schemas/``, this module imports nothing of
``relay`` and no Kafka client.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

import orjson

from schemas.values import rfc3339

CLOUDEVENTS_CONTENT_TYPE = "application/cloudevents+json"
DEAD_LETTER_CONTENT_TYPE = "application/vnd.relay.dead-letter+json"

Headers = tuple[tuple[str, bytes], ...]

_CLOUDEVENTS_CONTENT_TYPE = CLOUDEVENTS_CONTENT_TYPE.encode()
_DEAD_LETTER_CONTENT_TYPE = DEAD_LETTER_CONTENT_TYPE.encode()


def trace_headers(traceparent: str | None) -> Headers:
    """The W3C ``traceparent`` header of a record written under a traced span; none when
    tracing is off. Written on event and dead-letter records alike, after their own headers."""
    return () if traceparent is None else (("traceparent", traceparent.encode()),)


def event_headers(id_: str, type_: str, source: str) -> Headers:
    """An event record's headers: what a router reads without parsing the value (no ``ce_*``)."""
    return (
        ("content-type", _CLOUDEVENTS_CONTENT_TYPE),
        ("relay_id", id_.encode()),
        ("relay_type", type_.encode()),
        ("relay_source", source.encode()),
    )


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A dead letter: an authentic message Relay could not publish, and why.

    ``body`` is the exact body Relay received; ``headers`` the allow-listed
    request headers (never secrets); ``reason`` a stable code such as
    ``unknown_status``; ``attempts`` how many times Relay tried (a replay that
    fails again files the letter once more, one attempt up); ``relay_version``
    the version that filed it.
    """

    id: str
    provider: str
    profile: str
    reason: str
    message: str
    received_at: datetime
    dead_lettered_at: datetime
    headers: Mapping[str, str]
    body: bytes
    attempts: int
    relay_version: str

    def to_json(self) -> bytes:
        return orjson.dumps(
            {
                "id": self.id,
                "provider": self.provider,
                "profile": self.profile,
                "reason": self.reason,
                "message": self.message,
                "received_at": rfc3339(self.received_at),
                "dead_lettered_at": rfc3339(self.dead_lettered_at),
                "headers": dict(self.headers),
                "body_base64": base64.b64encode(self.body).decode(),
                "attempts": self.attempts,
                "relay_version": self.relay_version,
            }
        )


def dead_letter_headers(letter: DeadLetter) -> Headers:
    """A dead-letter record's headers: enough to route or count letters unparsed."""
    return (
        ("content-type", _DEAD_LETTER_CONTENT_TYPE),
        ("relay_reason", letter.reason.encode()),
        ("relay_provider", letter.provider.encode()),
    )

"""The record formats Relay publishes, defined once: written here, read here.

An event record is a CloudEvent in structured JSON mode: its value is the
event (:meth:`schemas.event.CanonicalEvent.to_json`), its headers the content
type and the ``relay_id``, ``relay_type`` and ``relay_source`` a router reads
without parsing the value (:func:`event_headers`). A dead-letter record's value
is a :class:`DeadLetter` document (:meth:`DeadLetter.to_json`), its headers the
content type, the reason and the provider (:func:`dead_letter_headers`).
The dead-letter topic also holds a :class:`ReplayOutcome` record for each
letter a ``relay replay`` handled (:func:`replay_outcome_headers`): what
became of a letter is kept next to it, so no other topic has to exist on a
cluster that creates none on first use.

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
``relay/deadletter.py``); ``schemas/decoder.py`` reads them back, and every
reader (``relay replay``, ``relay dlq``, ``relay tail``, consumers) goes
through it. Like the rest of ``schemas/``, this module imports nothing of
``relay`` and no Kafka client.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

import orjson

from schemas.values import rfc3339

CLOUDEVENTS_CONTENT_TYPE = "application/cloudevents+json"
DEAD_LETTER_CONTENT_TYPE = "application/vnd.relay.dead-letter+json"
REPLAY_OUTCOME_CONTENT_TYPE = "application/vnd.relay.replay-outcome+json"

Headers = tuple[tuple[str, bytes], ...]

_CLOUDEVENTS_CONTENT_TYPE = CLOUDEVENTS_CONTENT_TYPE.encode()
_DEAD_LETTER_CONTENT_TYPE = DEAD_LETTER_CONTENT_TYPE.encode()
_REPLAY_OUTCOME_CONTENT_TYPE = REPLAY_OUTCOME_CONTENT_TYPE.encode()


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
    the version that filed it. ``signature_headers`` are the request headers
    the instance's verifier read, as received (signatures and their
    timestamps, which travel in clear; never a credential header such as
    ``Authorization``), so that ``relay replay`` verifies the message again
    before publishing it; None where they are not known (letters filed
    before Relay kept them). ``item``, only for a notification of a batch
    request: its position in the body, which stays the whole signed request.
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
    signature_headers: Mapping[str, str] | None = None
    item: int | None = None

    def to_json(self) -> bytes:
        document = {
            "id": self.id,
            "provider": self.provider,
            "profile": self.profile,
            "reason": self.reason,
            "message": self.message,
            "received_at": rfc3339(self.received_at),
            "dead_lettered_at": rfc3339(self.dead_lettered_at),
            "headers": dict(self.headers),
            "signature_headers": (
                None if self.signature_headers is None else dict(self.signature_headers)
            ),
            "body_base64": base64.b64encode(self.body).decode(),
            "attempts": self.attempts,
            "relay_version": self.relay_version,
        }
        if self.item is not None:
            document["item"] = self.item
        return orjson.dumps(document)


def dead_letter_headers(letter: DeadLetter) -> Headers:
    """A dead-letter record's headers: enough to route or count letters unparsed."""
    return (
        ("content-type", _DEAD_LETTER_CONTENT_TYPE),
        ("relay_reason", letter.reason.encode()),
        ("relay_provider", letter.provider.encode()),
    )


class ReplayResult(StrEnum):
    """What one ``relay replay`` did with one dead letter."""

    REPLAYED = "replayed"
    """Normalized and published: a new event on the topic."""
    DUPLICATE = "duplicate"
    """Normalized, and its event was already on the topic (the dedup store said so)."""
    FAILED_AGAIN = "failed_again"
    """Still not publishable; filed again as a new letter when its instance still exists."""


@dataclass(frozen=True, slots=True)
class ReplayOutcome:
    """What a replay did with one letter, filed on the dead-letter topic after it.

    A letter is one filing: ``letter_id`` and ``attempts`` name it (a letter
    that fails again is filed as a new one, same id, ``attempts`` + 1, which
    ``new_attempts`` names). ``event_id`` is the event published or found
    already published; ``reason`` why it failed again; ``at`` when the replay
    handled it; ``relay_version`` the version that replayed it.
    """

    letter_id: str
    provider: str
    attempts: int
    outcome: ReplayResult
    at: datetime
    relay_version: str
    reason: str | None = None
    event_id: str | None = None
    new_attempts: int | None = None

    def to_json(self) -> bytes:
        return orjson.dumps(
            {
                "letter_id": self.letter_id,
                "provider": self.provider,
                "attempts": self.attempts,
                "outcome": self.outcome.value,
                "reason": self.reason,
                "event_id": self.event_id,
                "new_attempts": self.new_attempts,
                "at": rfc3339(self.at),
                "relay_version": self.relay_version,
            }
        )


def replay_outcome_headers(outcome: ReplayOutcome) -> Headers:
    """A replay outcome record's headers: its own content type, so that readers of
    dead letters tell it apart unparsed (an older Relay skips it as not a letter)."""
    return (
        ("content-type", _REPLAY_OUTCOME_CONTENT_TYPE),
        ("relay_outcome", outcome.outcome.value.encode()),
        ("relay_provider", outcome.provider.encode()),
    )

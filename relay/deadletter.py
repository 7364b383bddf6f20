"""Dead letters: authentic messages Relay could not turn into a published event.

A dead letter keeps everything needed to try again later (``relay replay``
re-enters the pipeline at normalize): the instance, the exact body (base64),
the allow-listed headers, when it was received, why it failed, and for a
notification of a batch request, which item of the body it is about (the body
stays the whole signed request). It never holds
a secret: only headers a profile lists as worth keeping are copied, and
signature headers are never on those lists. The format is
:class:`schemas.records.DeadLetter`; this module files letters as records,
and the records of what a replay did with each
(:class:`schemas.records.ReplayOutcome`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import UTC, datetime

from relay import __version__
from relay.records import KafkaRecord
from schemas.records import (
    DeadLetter,
    ReplayOutcome,
    ReplayResult,
    dead_letter_headers,
    replay_outcome_headers,
    trace_headers,
)


def dead_letter_id(provider: str, identity: str) -> str:
    """One signed message from one instance is one dead letter, however often it comes and
    however it is re-spelled: ``identity`` is the signed content's (``Profile.identity``)."""
    return hashlib.sha256(f"{provider}\x1f{identity}".encode()).hexdigest()[:32]


def make_dead_letter(
    *,
    provider: str,
    profile: str,
    reason: str,
    message: str,
    received_at: datetime,
    headers: Mapping[str, str],
    body: bytes,
    identity: str | None = None,
    attempts: int = 1,
    item: int | None = None,
) -> DeadLetter:
    """``identity`` defaults to the body's SHA-256 (a scheme that signs the exact bytes);
    ``item``: the position of the notification the letter is about, in a batch body."""
    return DeadLetter(
        id=dead_letter_id(provider, identity or hashlib.sha256(body).hexdigest()),
        provider=provider,
        profile=profile,
        reason=reason,
        message=message,
        received_at=_to_milliseconds(received_at),
        headers=dict(headers),
        body=body,
        attempts=attempts,
        dead_lettered_at=_to_milliseconds(datetime.now(UTC)),
        relay_version=__version__,
        item=item,
    )


def dead_letter_record(
    letter: DeadLetter, topic: str, traceparent: str | None = None
) -> KafkaRecord:
    """The record that files ``letter``: keyed by provider and letter id, so one
    letter's attempts stay in order on one partition. ``traceparent`` (tracing on) is
    the span's that filed it, which ``relay replay`` links its own trace to."""
    return KafkaRecord(
        topic=topic,
        key=f"{letter.provider}:{letter.id}".encode(),
        value=letter.to_json(),
        headers=dead_letter_headers(letter) + trace_headers(traceparent),
    )


def make_replay_outcome(
    letter: DeadLetter,
    outcome: ReplayResult,
    *,
    reason: str | None = None,
    event_id: str | None = None,
    new_attempts: int | None = None,
) -> ReplayOutcome:
    """What this Relay's replay did with ``letter``, now."""
    return ReplayOutcome(
        letter_id=letter.id,
        provider=letter.provider,
        attempts=letter.attempts,
        outcome=outcome,
        at=_to_milliseconds(datetime.now(UTC)),
        relay_version=__version__,
        reason=reason,
        event_id=event_id,
        new_attempts=new_attempts,
    )


def replay_outcome_record(outcome: ReplayOutcome, topic: str) -> KafkaRecord:
    """The record that files ``outcome``: keyed like its letter, so it lands on the
    letter's partition, after the letter."""
    return KafkaRecord(
        topic=topic,
        key=f"{outcome.provider}:{outcome.letter_id}".encode(),
        value=outcome.to_json(),
        headers=replay_outcome_headers(outcome),
    )


def _to_milliseconds(moment: datetime) -> datetime:
    # Letters are written with millisecond times: a letter read back equals the one filed.
    return moment.astimezone(UTC).replace(microsecond=moment.microsecond // 1000 * 1000)

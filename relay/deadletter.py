"""Dead letters: authentic messages Relay could not turn into a published event.

A dead letter keeps everything needed to try again later (``relay replay``
verifies it again, then re-enters the pipeline at normalize): the instance, the
exact body (base64), the allow-listed headers, the headers the instance's
verifier read (signatures and their timestamps: they travel in clear, and prove
nothing without the body they sign), when it was received, why it failed, and
for a notification of a batch request, which item of the body it is about (the
body stays the whole signed request, so that it can be verified again). It
never holds a secret: no key, and no credential header (``Authorization``,
``Proxy-Authorization``, ``Cookie``; see :func:`relay.pipeline.signature_headers`).
The format is
:class:`schemas.records.DeadLetter`; this module files letters as records,
and the records of what a replay did with each
(:class:`schemas.records.ReplayOutcome`).

A replay outcome is what ``relay dlq`` shows as a letter's fate, and anyone who
can write to the dead-letter topic can write one. With ``[replay] outcome_key``
set, each outcome record carries an HMAC-SHA256 of its value under that key
(header ``relay_outcome_mac``, hex), and readers believe only those that carry
a right one (:func:`outcome_authentic`); the key is Relay's alone, so a forged
outcome is ignored. Without a key, outcomes are written unsigned and can only
be shown as unauthenticated.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping, Sequence
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
    signature_headers: Mapping[str, str] | None = None,
    item: int | None = None,
) -> DeadLetter:
    """``identity`` defaults to the body's SHA-256 (a scheme that signs the exact bytes);
    ``signature_headers`` None means they are not known (the letter cannot be verified);
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
        signature_headers=None if signature_headers is None else dict(signature_headers),
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


OUTCOME_MAC_HEADER = "relay_outcome_mac"
# Bound into every MAC, so that the outcome key signs nothing but replay outcomes.
_OUTCOME_CONTEXT = b"relay replay outcome v1\x00"


def replay_outcome_record(outcome: ReplayOutcome, topic: str, key: str = "") -> KafkaRecord:
    """The record that files ``outcome``: keyed like its letter, so it lands on the
    letter's partition, after the letter; signed when ``key`` (``[replay] outcome_key``) is."""
    value = outcome.to_json()
    headers = replay_outcome_headers(outcome)
    if key:
        headers += ((OUTCOME_MAC_HEADER, _outcome_mac(key, value)),)
    return KafkaRecord(
        topic=topic,
        key=f"{outcome.provider}:{outcome.letter_id}".encode(),
        value=value,
        headers=headers,
    )


def outcome_authentic(key: str, value: bytes, headers: Sequence[tuple[str, bytes]]) -> bool:
    """True when the outcome record carries the MAC of its value under ``key``."""
    given = [header for name, header in headers if name == OUTCOME_MAC_HEADER]
    return len(given) == 1 and hmac.compare_digest(given[0], _outcome_mac(key, value))


def _outcome_mac(key: str, value: bytes) -> bytes:
    return hmac.new(key.encode(), _OUTCOME_CONTEXT + value, "sha256").hexdigest().encode()


def _to_milliseconds(moment: datetime) -> datetime:
    # Letters are written with millisecond times: a letter read back equals the one filed.
    return moment.astimezone(UTC).replace(microsecond=moment.microsecond // 1000 * 1000)

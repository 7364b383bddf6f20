"""Kafka records for the decoder's properties: valid ones Relay builds, and hostile mutations.

The valid records are what Relay writes: the event of every sample of every fuzz instance
(``relay.samples``, through the pipeline's own ``normalize`` and record builder), a dead
letter of each, and a replay outcome of each kind. :func:`mutate` changes one of them the
way a broken or hostile producer could: a member anywhere (``raw`` included) replaced by a
value from :data:`HOSTILE_VALUES` (numbers and times at and past :mod:`schemas.ranges`,
lone surrogates, wrong types, deep nesting), a member dropped, bytes flipped, cut or
inserted, a header changed or dropped. Plain :mod:`random` drives it, so the same cases
can be made here for hypothesis and for a process that has only the ``relay-events``
distribution installed.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from relay.config import Config
from relay.deadletter import (
    dead_letter_record,
    make_dead_letter,
    make_replay_outcome,
    replay_outcome_record,
)
from relay.pipeline import Inbound, normalize
from relay.records import to_kafka_record
from relay.samples import signed_sample
from schemas import NormalizationError
from schemas.records import ReplayResult

Headers = tuple[tuple[str, bytes], ...]


@dataclass(frozen=True)
class Record:
    kind: str
    """``event``, ``dead_letter`` or ``replay_outcome``: what Relay wrote it as."""
    value: bytes
    headers: Headers


# JSON texts spliced in where a member was.
HOSTILE_VALUES = (
    "1e999999999999999999999",
    "-1e-999999999999999999999",
    "1e1000000",
    "1e999999",
    "-1e-999999",
    "9" * 4300,
    "9" * 4301,
    "-" + "9" * 5000,
    "1." + "0" * 4300,
    "0",
    "-0.0",
    "1.5",
    '"9999-12-31T23:59:59-01:00"',
    '"0001-01-01T00:00:00+01:00"',
    '"9999-12-31T23:59:59Z"',
    '"2024-01-15T14:32:00"',
    '"\\ud800"',
    '"\\udfff\\ud800x"',
    '"é"',
    '"1.5e2"',
    '"150.0000"',
    '""',
    '"a"',
    '"relay/x"',
    '"urn:relay:payment-event:v1"',
    '"urn:relay:webhook-event:v1"',
    '"succeeded"',
    "null",
    "true",
    "false",
    "[]",
    "{}",
    '{"a":1e999999999999999999999}',
    "[" * 3000 + "]" * 3000,
)
HOSTILE_HEADERS = (b"", b"\xff\xfe", b"\xed\xa0\x80", b"application/json", b"x" * 300)
HEADER_NAMES = (
    "content-type",
    "relay_id",
    "relay_type",
    "relay_source",
    "ce_id",
    "ce_type",
    "ce_source",
    "ce_specversion",
    "relay_reason",
    "relay_provider",
    "relay_outcome",
)


def valid_records(config: Config, now: float) -> list[Record]:
    records: list[Record] = []
    received_at = datetime.fromtimestamp(now, UTC)
    for name in sorted(config.providers):
        instance = config.providers[name]
        for event in sorted(instance.profile.samples):
            sample = signed_sample(instance, event=event, order="fz0000000000000000", now=now)
            headers = {key.lower(): value for key, value in sample.headers.items()}
            try:
                built = normalize(Inbound(instance, sample.body, headers, received_at))
            except NormalizationError:
                continue
            record = to_kafka_record(built, "events")
            records.append(Record("event", record.value, tuple(record.headers)))
        letter = make_dead_letter(
            provider=name,
            profile=instance.profile.name,
            reason="unknown_status",
            message="the status '9' is not a known status",
            received_at=received_at,
            headers={"x-webhook-id": "whl_1"},
            body=b'{"status":9}\xff',
            attempts=2,
        )
        filed = dead_letter_record(letter, "events.dlq")
        records.append(Record("dead_letter", filed.value, tuple(filed.headers)))
        for result in ReplayResult:
            outcome = make_replay_outcome(letter, result, reason="x", event_id="e", new_attempts=3)
            told = replay_outcome_record(outcome, "events.dlq")
            records.append(Record("replay_outcome", told.value, tuple(told.headers)))
    return records


def mutate(rng: random.Random, record: Record) -> Record:
    """``record`` with one to three changes (the kind stays: what it was written as)."""
    value, headers = record.value, record.headers
    for _ in range(rng.randint(1, 3)):
        change = rng.random()
        if change < 0.5:
            value = _splice(rng, value)
        elif change < 0.65:
            value = _drop_member(rng, value)
        elif change < 0.85:
            value = _garble(rng, value)
        else:
            headers = _change_header(rng, headers)
    return Record(record.kind, value, headers)


def _document(value: bytes) -> Any:
    try:
        return json.loads(value)
    except (ValueError, RecursionError):
        return None


_PLACEHOLDER = "\u0000hostile"


def _splice(rng: random.Random, value: bytes) -> bytes:
    document = _document(value)
    if document is None:
        return _garble(rng, value)
    replaced = _replace_somewhere(rng, document, _PLACEHOLDER)
    text = json.dumps(replaced).replace(json.dumps(_PLACEHOLDER), rng.choice(HOSTILE_VALUES))
    return text.encode("utf-8", "surrogatepass")


def _replace_somewhere(rng: random.Random, document: Any, value: Any) -> Any:
    if isinstance(document, dict) and document and rng.random() < 0.7:
        key = rng.choice(sorted(document))
        return {**document, key: _replace_somewhere(rng, document[key], value)}
    if isinstance(document, list) and document and rng.random() < 0.7:
        index = rng.randrange(len(document))
        changed = _replace_somewhere(rng, document[index], value)
        return [*document[:index], changed, *document[index + 1 :]]
    return value


def _drop_member(rng: random.Random, value: bytes) -> bytes:
    document = _document(value)
    if not isinstance(document, dict) or not document:
        return _garble(rng, value)
    target = document
    while True:
        key = rng.choice(sorted(target))
        child = target[key]
        if isinstance(child, dict) and child and rng.random() < 0.5:
            target = child
            continue
        del target[key]
        return json.dumps(document).encode()


def _garble(rng: random.Random, value: bytes) -> bytes:
    data = bytearray(value)
    choice = rng.random()
    if not data or choice < 0.3:
        data[rng.randrange(len(data) + 1) :] = b""  # cut
    elif choice < 0.7:
        for _ in range(rng.randint(1, 4)):
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)  # flip bits
    else:
        at = rng.randrange(len(data) + 1)
        data[at:at] = rng.choice([b"\\", b'"', b"{", b"]", b",", b"\xff", b"\\ud800", b"1e9999"])
    return bytes(data)


def _change_header(rng: random.Random, headers: Headers) -> Headers:
    name = rng.choice(HEADER_NAMES)
    kept = tuple(header for header in headers if header[0] != name)
    if rng.random() < 0.3:
        return kept  # dropped
    value = rng.choice([*HOSTILE_HEADERS, *(item for _, item in headers)])
    return (*kept, (name, value))


def hostile_records(records: list[Record], rng: random.Random, count: int) -> list[Record]:
    """``count`` cases: mostly mutated records, some arbitrary bytes."""
    cases = []
    for _ in range(count):
        if rng.random() < 0.15:
            raw = bytes(rng.randrange(256) for _ in range(rng.randrange(64)))
            cases.append(Record("bytes", raw, ()))
        else:
            cases.append(mutate(rng, rng.choice(records)))
    return cases

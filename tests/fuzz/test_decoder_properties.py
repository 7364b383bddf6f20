"""Property tests of the consumer-side decoder (:mod:`schemas.decoder`):

- whatever the record (arbitrary bytes and headers, or a record Relay wrote, mutated by
  ``tests/fuzz/records.py``: numbers and times at and past :mod:`schemas.ranges`, lone
  surrogates, members dropped or of the wrong type, bytes cut or flipped, headers changed),
  ``decode_event``, ``decode_dead_letter``, ``decode_replay_outcome`` and
  ``decode_dlq_record`` raise only :class:`DecodeError` subclasses, with headers or without;
- the same cases, decoded by the ``relay-events`` distribution installed alone in a fresh
  interpreter (what a consumer runs), raise only ``DecodeError`` there too.

The third property, that every event the normalizers build from an arbitrary authentic
payload decodes (or the payload is a dead letter), is in ``test_properties.py`` beside the
normalizer's own. Counts: ``RELAY_FUZZ_RECORDS`` hypothesis examples per property and
cases for the installed distribution (CI default 200; ``make fuzz`` more),
``RELAY_FUZZ_SEED`` seeds the installed run.
"""

from __future__ import annotations

import base64
import json
import os
import random
import subprocess
import sys
import time
from collections.abc import Sequence

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from relay.config import parse_config
from schemas.decoder import (
    DecodeError,
    decode_dead_letter,
    decode_dlq_record,
    decode_event,
    decode_replay_outcome,
)
from tests.fuzz.instances import fuzz_providers
from tests.fuzz.records import (
    HEADER_NAMES,
    HOSTILE_HEADERS,
    Record,
    hostile_records,
    mutate,
    valid_records,
)
from tests.test_relay_events_package import install_relay_events

RECORDS_COUNT = int(os.environ.get("RELAY_FUZZ_RECORDS", "200"))
SEED = int(os.environ.get("RELAY_FUZZ_SEED", str(random.randrange(1 << 32))))
FUZZ = settings(
    max_examples=RECORDS_COUNT,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    database=None,
)
RECORDS = valid_records(parse_config({"providers": fuzz_providers()}, env={}), time.time())


def decode_every_way(value: bytes, headers: Sequence[tuple[str, bytes]]) -> list[str]:
    """Each decoder on the record, with its headers and without; the outcome of each (the
    class of the value or of the DecodeError). Any other exception propagates."""
    outcomes = []
    for decode in (decode_event, decode_dead_letter, decode_replay_outcome):
        for given_headers in (headers, None):
            try:
                outcomes.append(type(decode(value, given_headers)).__name__)
            except DecodeError as error:
                outcomes.append(type(error).__name__)
    try:
        outcomes.append(type(decode_dlq_record(value, headers)).__name__)
    except DecodeError as error:
        outcomes.append(type(error).__name__)
    return outcomes


def test_the_valid_records_decode_as_what_they_are() -> None:
    """The mutations start from records that decode (or they would prove little)."""
    kinds = {record.kind for record in RECORDS}
    assert kinds == {"event", "dead_letter", "replay_outcome"}
    for record in RECORDS:
        outcomes = decode_every_way(record.value, record.headers)
        expected = {
            "event": "Event",
            "dead_letter": "DeadLetter",
            "replay_outcome": "ReplayOutcome",
        }
        assert any(outcome.endswith(expected[record.kind]) for outcome in outcomes), outcomes


headers_strategy = st.lists(
    st.tuples(
        st.sampled_from(HEADER_NAMES),
        st.one_of(st.binary(max_size=40), st.sampled_from(HOSTILE_HEADERS)),
    ),
    max_size=6,
)


@FUZZ
@given(value=st.binary(max_size=2000), headers=headers_strategy)
def test_arbitrary_bytes_raise_only_decode_errors(
    value: bytes, headers: list[tuple[str, bytes]]
) -> None:
    decode_every_way(value, headers)


json_documents = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.text(max_size=30),
        st.decimals(allow_nan=False, allow_infinity=False).map(str),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=5)
    ),
    max_leaves=20,
)


@FUZZ
@given(
    document=st.dictionaries(
        st.sampled_from(
            [
                "id",
                "time",
                "data",
                "specversion",
                "dataschema",
                "received_at",
                "body_base64",
                "at",
                "outcome",
                "attempts",
            ]
        ),
        json_documents,
    ),
    headers=headers_strategy,
)
def test_arbitrary_json_objects_raise_only_decode_errors(
    document: dict[str, object], headers: list[tuple[str, bytes]]
) -> None:
    decode_every_way(json.dumps(document).encode(), headers)


@FUZZ
@given(record=st.sampled_from(RECORDS), rng=st.randoms(use_true_random=False))
def test_mutated_records_raise_only_decode_errors(record: Record, rng: random.Random) -> None:
    mutated = mutate(rng, record)
    decode_every_way(mutated.value, mutated.headers)


# Runs with nothing but the install directory (argv[1]) on top of the standard library.
CONSUMER = """
import base64, collections, json, sys
sys.path.insert(0, sys.argv[1])
from schemas.decoder import (
    DecodeError, decode_dead_letter, decode_dlq_record, decode_event, decode_replay_outcome,
)
outcomes, failures = collections.Counter(), []
for value, headers in json.load(sys.stdin):
    value = base64.b64decode(value)
    headers = [(name, base64.b64decode(item)) for name, item in headers]
    calls = [(decode, given) for decode in (decode_event, decode_dead_letter, decode_replay_outcome)
             for given in (headers, None)] + [(decode_dlq_record, headers)]
    for decode, given in calls:
        try:
            outcomes[type(decode(value, given)).__name__] += 1
        except DecodeError as error:
            outcomes[type(error).__name__] += 1
        except Exception as error:
            failures.append([decode.__name__, type(error).__name__, repr(value[:200])])
print(json.dumps({"outcomes": outcomes, "failures": failures[:20], "failed": len(failures)}))
"""


def test_the_installed_relay_events_decoder_raises_only_decode_errors(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    site = install_relay_events(tmp_path_factory)
    cases = hostile_records(RECORDS, random.Random(SEED), RECORDS_COUNT * 5)
    encoded = [
        [
            base64.b64encode(case.value).decode(),
            [[name, base64.b64encode(item).decode()] for name, item in case.headers],
        ]
        for case in [*RECORDS, *cases]
    ]
    ran = subprocess.run(
        [sys.executable, "-I", "-S", "-c", CONSUMER, str(site)],
        input=json.dumps(encoded),
        capture_output=True,
        text=True,
        timeout=600,
        cwd=site,
    )
    assert ran.returncode == 0, ran.stderr
    result = json.loads(ran.stdout)
    print(
        f"\nrelay-events decoder: {len(encoded)} records (seed {SEED}), "
        f"{sum(result['outcomes'].values())} decodes: {dict(sorted(result['outcomes'].items()))}"
    )
    assert result["failed"] == 0, result["failures"]
    # The decoded and refused outcomes are both there: the cases reach past the parser.
    assert {
        "PaymentEvent",
        "DeadLetter",
        "ReplayOutcome",
        "MalformedRecord",
        "InvalidEvent",
    } <= set(result["outcomes"])

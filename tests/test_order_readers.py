"""Each profile's order reader (``Profile.order_id``) against the golden cases.

A dead letter failed to normalize, so ``relay find`` and ``relay dlq`` name its
order by reading the letter's body with the profile's order reader. On every
golden case that normalizes, the reader must name the order the event's
record key holds (the merchant order id, else the provider's, none for
generic webhooks); on every case, failing ones too, it must not raise.
"""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from relay.profiles import PROFILES
from schemas import NormalizationError
from verifiers.keys import KeyRing, Secret

GOLDEN = Path(__file__).parent / "golden"


def _golden_cases() -> list[tuple[str, Path]]:
    paths = sorted([*GOLDEN.glob("*/*.in.json"), *GOLDEN.glob("*/*.in.xml")])
    return [(path.parent.name, path) for path in paths]


@pytest.mark.parametrize(
    ("profile_name", "body_path"),
    _golden_cases(),
    ids=[f"{profile}/{path.name}" for profile, path in _golden_cases()],
)
def test_a_profiles_order_reader_names_the_order_its_events_are_keyed_by(
    profile_name: str, body_path: Path
) -> None:
    """Dead letters name their order with the profile's reader; on every golden case it
    agrees with the event the normalizer made (and never raises on the failing ones)."""
    profile = PROFILES[profile_name]
    body = body_path.read_bytes()
    if body_path.suffix != ".json":  # a notification the body wraps, as tests/test_golden.py
        keys = KeyRing(secrets=(Secret.of("golden"),))
        body = profile.scheme.sign(body, profile.params, keys, 0).body
    meta_path = body_path.with_name(body_path.name.split(".in.")[0] + ".meta.json")
    context = orjson.loads(meta_path.read_bytes()).get("context", {}) if meta_path.exists() else {}
    expected = orjson.loads(
        body_path.with_name(body_path.name.split(".in.")[0] + ".out.json").read_bytes()
    )
    try:
        if profile.items is None:
            payloads, outcomes = [profile.payload(body, profile.params)], [expected]
        else:  # a batch: each item's letter names the order of that item
            payloads = [item.payload for item in profile.items(body, profile.params)]
            outcomes = expected if isinstance(expected, list) else [expected] * len(payloads)
    except NormalizationError:
        return  # an unreadable body names no order: find shows the letter without one
    for payload, outcome in zip(payloads, outcomes, strict=True):
        order = profile.order_id(payload, context.get("order_id_metadata_key"))
        if "error" in outcome:
            continue
        data = outcome["data"]
        keyed_by = outcome.get("subject") or data.get("provider_order_id")
        assert order == keyed_by


HOSTILE_BODIES = {
    "not UTF-8": b'{"orderNo":"\xff"}',
    "not an object": b'["orderNo"]',
    "a huge exponent": b'{"orderNo":1e999999999,"invoice_reference":1e999999999,"data":{}}',
    "a huge integer": b'{"orderNo":' + b"9" * 5000 + b"}",
    "deep nesting": b'{"data":' * 200 + b"{}" + b"}" * 200,
    "escapes": '{"orderId":"\x1b]0;x\x07","invoice_reference":"\u202e"}'.encode(),
    "empty": b"",
}


@pytest.mark.parametrize("profile_name", sorted(PROFILES))
@pytest.mark.parametrize("body", HOSTILE_BODIES.values(), ids=list(HOSTILE_BODIES))
def test_an_order_reader_never_raises_on_what_a_forged_letter_holds(
    profile_name: str, body: bytes
) -> None:
    """``relay dlq`` and ``relay find`` read the order of every letter on the topic, forged
    ones too: the payload reader (and a batch profile's items reader, for a letter that
    names an item) refuses only with ``NormalizationError``, the order reader answers text
    or None."""
    profile = PROFILES[profile_name]
    readers = [lambda: [profile.payload(body, profile.params)]]
    if profile.items is not None:
        items = profile.items
        readers.append(lambda: [item.payload for item in items(body, profile.params)])
    for read in readers:
        try:
            payloads = read()
        except NormalizationError:
            continue
        for payload in payloads:
            order = profile.order_id(payload, "order_id")
            assert order is None or isinstance(order, str)

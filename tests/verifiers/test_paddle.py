"""Paddle Billing's ``Paddle-Signature: ts=...;h1=...`` header.

Vectors from PaddleHQ/paddle-python-sdk at commit
48c8cc04ecd5eb87b1861731bc56f7ec1abfe284, ``tests/Unit/Notification/test_Verifier.py``:
``test_validate_payload_body_integrity`` (the secret and two signatures inline,
the bodies ``tests/Unit/Notification/_fixtures/{standard,special_chars}_payload.json``,
copied byte for byte to ``vectors/paddle/``; the SDK test strips them, and so does
this one) and ``test_validate_paddle_signature_header_integrity`` (three secrets, a
``dummy`` h1 beside the real one, body ``hello-world``).
"""

from __future__ import annotations

import hmac
from pathlib import Path

import pytest

from verifiers import paddle
from verifiers.errors import MalformedSignature, MissingSignature, SignatureMismatch, StaleTimestamp
from verifiers.keys import KeyRing, Secret
from verifiers.paddle import Params
from verifiers.timestamped import MAX_ENTRIES

VECTORS = Path(__file__).parent / "vectors" / "paddle"
PARAMS = Params()
SECRET = "pdl_ntfset_01hs0t3tw21j988db1pam5xg8m_GrOWLNef+vmtjJYq4mSnHNzvc8uWoJ1I"
RING = KeyRing(secrets=(Secret.of(SECRET),))

STANDARD = (
    (VECTORS / "standard_payload.json").read_bytes().strip(),
    1710498758,
    "558bf93944dbeb4790c7a8af6cb2ea435c8ca9c8396aafc1a4e37424ac132744",
)
SPECIAL_CHARS = (
    (VECTORS / "special_chars_payload.json").read_bytes().strip(),
    1710498288,
    "38219b3ba1578184e625c29d201a27cd25bd69e2ec9c3ab87dcb90d87ff73a41",
)

# test_validate_paddle_signature_header_integrity
ROTATION_SECRETS = (
    "pdl_ntf_01hbpjmytsa32fhr36nqgc3kgb_TjIG2BXbm83HPXqNfziwe506sBEdqL/4",
    "pdl_ntf_01hbpjmytsa32fhr36nqgc3kgb_vB/yIOnTOCWIvpBadM5jzBZPHc7OmdSo",
    "pdl_ntf_01hbpjmytsa32fhr36nqgc3kgb_WvRO0eL4Bj9rgYYIBZY6wZhG4EHy9jzh",
)
ROTATION_HEADER = (
    "ts=1696195954;h1=dummy;h1=d96299976a6eb066f484d7fde011ac56fc32b38fc9940bc419d6e537fdc6ef02"
)


def header(value: str) -> dict[str, str]:
    return {"paddle-signature": value}


@pytest.mark.parametrize(
    ("body", "timestamp", "signature"),
    [STANDARD, SPECIAL_CHARS],
    ids=["standard", "special-chars"],
)
def test_sdk_vectors(body: bytes, timestamp: int, signature: str) -> None:
    verified = paddle.verify(
        body, header(f"ts={timestamp};h1={signature}"), PARAMS, RING, timestamp
    )
    assert (verified.key_index, verified.timestamp) == (0, timestamp)


def test_sdk_vector_fails_on_the_unstripped_fixture() -> None:
    # The fixture file ends in a newline the signed body did not have: bytes are bytes.
    body, timestamp, signature = STANDARD
    unstripped = (VECTORS / "standard_payload.json").read_bytes()
    assert unstripped != body
    with pytest.raises(SignatureMismatch):
        paddle.verify(unstripped, header(f"ts={timestamp};h1={signature}"), PARAMS, RING, timestamp)


def test_sdk_rotation_vector_third_secret_past_a_dummy_h1() -> None:
    keys = KeyRing(secrets=tuple(Secret.of(secret) for secret in ROTATION_SECRETS))
    verified = paddle.verify(b"hello-world", header(ROTATION_HEADER), PARAMS, keys, 1696195954)
    assert verified.key_index == 2


def test_sdk_rotation_vector_refused_without_the_third_secret() -> None:
    keys = KeyRing(secrets=tuple(Secret.of(secret) for secret in ROTATION_SECRETS[:2]))
    with pytest.raises(SignatureMismatch):
        paddle.verify(b"hello-world", header(ROTATION_HEADER), PARAMS, keys, 1696195954)


def test_sign_round_trip_in_paddle_format() -> None:
    body, timestamp, signature = STANDARD
    signed = paddle.sign(body, PARAMS, RING, timestamp)
    assert signed.headers == header(f"ts={timestamp};h1={signature}")
    assert paddle.verify(signed.body, signed.headers, PARAMS, RING, timestamp)


def test_payload_joins_with_a_colon() -> None:
    body, timestamp, _ = STANDARD
    dotted = hmac.new(SECRET.encode(), f"{timestamp}.".encode() + body, "sha256").hexdigest()
    with pytest.raises(SignatureMismatch):
        paddle.verify(body, header(f"ts={timestamp};h1={dotted}"), PARAMS, RING, timestamp)


def test_timestamp_is_signed() -> None:
    body, timestamp, signature = STANDARD
    with pytest.raises(SignatureMismatch):
        paddle.verify(body, header(f"ts={timestamp + 1};h1={signature}"), PARAMS, RING, timestamp)


def test_default_tolerance_is_the_sdk_five_seconds() -> None:
    body, timestamp, signature = STANDARD
    value = header(f"ts={timestamp};h1={signature}")
    assert paddle.verify(body, value, PARAMS, RING, timestamp + 5)
    with pytest.raises(StaleTimestamp):
        paddle.verify(body, value, PARAMS, RING, timestamp + 6)
    with pytest.raises(StaleTimestamp):  # the SDK lets a future one through; Relay does not
        paddle.verify(body, value, PARAMS, RING, timestamp - 6)
    assert paddle.verify(body, value, Params(timestamp_tolerance_s=60), RING, timestamp + 60)


def test_uppercase_hex_is_the_same_signature() -> None:
    body, timestamp, signature = STANDARD
    value = header(f"ts={timestamp};h1={signature.upper()}")
    assert paddle.verify(body, value, PARAMS, RING, timestamp)


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("ts=1710498758;v1=" + "ab" * 32, id="unknown-key"),
        pytest.param("ts=1710498758;h1=" + "ab" * 32 + ";h2=" + "ab" * 32, id="unknown-beside"),
        pytest.param("h1=" + "ab" * 32, id="no-ts"),
        pytest.param("ts=1710498758;ts=1710498758;h1=" + "ab" * 32, id="two-ts"),
        pytest.param("ts=soon;h1=" + "ab" * 32, id="ts-not-integer"),
        pytest.param("ts=1710498758,h1=" + "ab" * 32, id="comma-separated"),
        pytest.param("ts=1710498758;h1", id="no-equals"),
        pytest.param("ts=1710498758;h1=zz", id="only-undecodable"),
        pytest.param("ts=1710498758;h1=" + "ab" * 20, id="wrong-length"),
        pytest.param("ts=1710498758;" + ";".join(["h1=" + "ab" * 32] * 9), id="too-many-h1"),
        pytest.param("garbage", id="garbage"),
    ],
)
def test_malformed_header(value: str) -> None:
    body, timestamp, _ = STANDARD
    with pytest.raises(MalformedSignature):
        paddle.verify(body, header(value), PARAMS, RING, timestamp)


def test_h1_entries_up_to_the_cap_are_read() -> None:
    body, timestamp, signature = STANDARD
    others = ";".join(["h1=" + "00" * 32] * (MAX_ENTRIES - 1))
    value = header(f"ts={timestamp};{others};h1={signature}")
    assert paddle.verify(body, value, PARAMS, RING, timestamp)


def test_missing_header_and_missing_h1() -> None:
    body, timestamp, _ = STANDARD
    with pytest.raises(MissingSignature):
        paddle.verify(body, {}, PARAMS, RING, timestamp)
    with pytest.raises(MissingSignature):
        paddle.verify(body, header(f"ts={timestamp}"), PARAMS, RING, timestamp)


def test_required_keys_and_tolerance_option() -> None:
    assert paddle.required_keys(PARAMS) == {"secrets"}
    with pytest.raises(ValueError, match="greater than zero"):
        Params(timestamp_tolerance_s=0)

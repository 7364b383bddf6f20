"""Stripe's ``Stripe-Signature`` header, built the way stripe-python's tests build it."""

from __future__ import annotations

import hmac
from hashlib import sha256

import pytest

from verifiers import stripe
from verifiers.errors import MalformedSignature, MissingSignature, SignatureMismatch, StaleTimestamp
from verifiers.keys import KeyRing, Secret
from verifiers.stripe import Params

# Payload and secret from stripe/stripe-python, tests/test_webhook.py.
PAYLOAD = """{
  "id": "evt_test_webhook",
  "object": "event",
  "data": { "object": { "id": "rdr_123", "object": "terminal.reader" } }
}"""
BODY = PAYLOAD.encode()
SECRET = "whsec_test_secret"
NOW = 1_700_000_000
KEYS = KeyRing(secrets=(Secret.of(SECRET),))
PARAMS = Params()


def generate_header(
    timestamp: int = NOW,
    payload: str = PAYLOAD,
    secret: str = SECRET,
    scheme: str = "v1",
    signature: str | None = None,
) -> dict[str, str]:
    """stripe-python's tests/test_webhook.py ``generate_header``, with hmac inline."""
    if signature is None:
        payload_to_sign = f"{timestamp}.{payload}"
        signature = hmac.new(secret.encode(), payload_to_sign.encode(), sha256).hexdigest()
    return {"stripe-signature": f"t={timestamp},{scheme}={signature}"}


def test_valid() -> None:
    verified = stripe.verify(BODY, generate_header(), PARAMS, KEYS, NOW)
    assert (verified.key_index, verified.timestamp) == (0, NOW)


def test_sign_matches_stripe_format() -> None:
    assert stripe.sign(BODY, PARAMS, KEYS, NOW).headers == generate_header()


def test_secret_is_used_as_text_prefix_included() -> None:
    # Unlike Standard Webhooks, Stripe keys the HMAC with the whole "whsec_..." string.
    headers = generate_header(secret=SECRET.removeprefix("whsec_"))
    with pytest.raises(SignatureMismatch):
        stripe.verify(BODY, headers, PARAMS, KEYS, NOW)


def test_header_contains_valid_signature_among_bad_ones() -> None:
    header = generate_header()["stripe-signature"] + ",v1=" + "00" * 32 + ",v0=" + "11" * 32
    assert stripe.verify(BODY, {"stripe-signature": header}, PARAMS, KEYS, NOW)


VALID_V1 = generate_header()["stripe-signature"].partition(",v1=")[2]


@pytest.mark.parametrize(
    "header",
    [
        pytest.param(f"t={NOW},v1=not-hex,v1={VALID_V1}", id="not-hex-before-valid"),
        pytest.param(f"t={NOW},v1={VALID_V1},v1=zz", id="not-hex-after-valid"),
        pytest.param(f"t={NOW},v1={'ab' * 20},v1={VALID_V1}", id="wrong-length-before-valid"),
        pytest.param(f"t={NOW},v1=,v1={VALID_V1}", id="empty-before-valid"),
    ],
)
def test_undecodable_v1_entry_is_skipped(header: str) -> None:
    # stripe-python compares each v1 entry as text: one that cannot match is passed over.
    assert stripe.verify(BODY, {"stripe-signature": header}, PARAMS, KEYS, NOW)


def test_undecodable_v1_entry_beside_a_wrong_one_is_a_mismatch() -> None:
    header = f"t={NOW},v1=zz,v1={'00' * 32}"
    with pytest.raises(SignatureMismatch):
        stripe.verify(BODY, {"stripe-signature": header}, PARAMS, KEYS, NOW)


@pytest.mark.parametrize(
    "header",
    [
        pytest.param(f"t={NOW},v1=zz,v1={'ab' * 20}", id="not-hex-and-wrong-length"),
        pytest.param(f"t={NOW},v1=,v1=zz,v0={'ab' * 32}", id="empty-and-not-hex-beside-v0"),
    ],
)
def test_only_undecodable_v1_entries(header: str) -> None:
    with pytest.raises(MalformedSignature):
        stripe.verify(BODY, {"stripe-signature": header}, PARAMS, KEYS, NOW)


def test_spaces_after_commas() -> None:
    header = generate_header()["stripe-signature"].replace(",", ", ")
    assert stripe.verify(BODY, {"stripe-signature": header}, PARAMS, KEYS, NOW)


def test_tampered_body() -> None:
    with pytest.raises(SignatureMismatch):
        stripe.verify(BODY.replace(b"rdr_123", b"rdr_124"), generate_header(), PARAMS, KEYS, NOW)


def test_tampered_signature() -> None:
    signature = generate_header()["stripe-signature"]
    tampered = signature[:-1] + ("0" if signature[-1] != "0" else "1")
    with pytest.raises(SignatureMismatch):
        stripe.verify(BODY, {"stripe-signature": tampered}, PARAMS, KEYS, NOW)


def test_timestamp_is_signed() -> None:
    header = generate_header()["stripe-signature"].replace(f"t={NOW}", f"t={NOW - 1}")
    with pytest.raises(SignatureMismatch):
        stripe.verify(BODY, {"stripe-signature": header}, PARAMS, KEYS, NOW)


def test_wrong_secret() -> None:
    with pytest.raises(SignatureMismatch):
        stripe.verify(BODY, generate_header(secret="whsec_other"), PARAMS, KEYS, NOW)


def test_rotated_secret_second_matches() -> None:
    keys = KeyRing(secrets=(Secret.of("whsec_new"), Secret.of(SECRET)))
    assert stripe.verify(BODY, generate_header(), PARAMS, keys, NOW).key_index == 1


def test_stale() -> None:
    with pytest.raises(StaleTimestamp):
        stripe.verify(BODY, generate_header(timestamp=NOW - 301), PARAMS, KEYS, NOW)


def test_future() -> None:
    with pytest.raises(StaleTimestamp):
        stripe.verify(BODY, generate_header(timestamp=NOW + 301), PARAMS, KEYS, NOW)


def test_tolerance_is_configurable() -> None:
    headers = generate_header(timestamp=NOW - 15)
    with pytest.raises(StaleTimestamp):
        stripe.verify(BODY, headers, Params(timestamp_tolerance_s=10), KEYS, NOW)


def test_missing_header() -> None:
    with pytest.raises(MissingSignature):
        stripe.verify(BODY, {}, PARAMS, KEYS, NOW)


def test_no_signature_with_expected_scheme() -> None:
    with pytest.raises(MissingSignature):
        stripe.verify(BODY, generate_header(scheme="v0"), PARAMS, KEYS, NOW)


@pytest.mark.parametrize(
    "header",
    [
        pytest.param("i'm not even a real signature header", id="stripe-python-garbage"),
        pytest.param("bad_header", id="no-equals"),
        pytest.param("v1=" + "ab" * 32, id="no-timestamp"),
        pytest.param(f"t=soon,v1={'ab' * 32}", id="timestamp-not-integer"),
        pytest.param(f"t={NOW},t={NOW},v1={'ab' * 32}", id="two-timestamps"),
        pytest.param(f"t={NOW},v1={'zz' * 32}", id="bad-hex"),
        pytest.param(f"t={NOW},v1={'ab' * 20}", id="wrong-length"),
        pytest.param(f"t={NOW},v1={'ab' * 32},", id="trailing-comma"),
        pytest.param(f"t={NOW},={'ab' * 32}", id="empty-key"),
    ],
)
def test_malformed_header(header: str) -> None:
    with pytest.raises(MalformedSignature):
        stripe.verify(BODY, {"stripe-signature": header}, PARAMS, KEYS, NOW)


def test_required_keys() -> None:
    assert stripe.required_keys(PARAMS) == {"secrets"}


@pytest.mark.parametrize("tolerance", [0, -1, -300])
def test_tolerance_not_above_zero_is_refused(tolerance: int) -> None:
    # stripe-python skips the check for a tolerance of 0; here it is a config error.
    with pytest.raises(ValueError, match="timestamp_tolerance_s must be greater than zero"):
        Params(timestamp_tolerance_s=tolerance)

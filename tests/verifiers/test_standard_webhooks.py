"""The Standard Webhooks scheme, against the reference library's own vectors."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from verifiers import standard_webhooks
from verifiers.base import Verified
from verifiers.errors import (
    MalformedSignature,
    MalformedTimestamp,
    MissingSignature,
    MissingTimestamp,
    SignatureMismatch,
    StaleTimestamp,
)
from verifiers.keys import KeyRing, Secret, UnusableKey
from verifiers.standard_webhooks import Params

# Source: standard-webhooks/standard-webhooks, libraries/python/tests/test_webhooks.py,
# test_sign_function: this key, id, timestamp and payload sign to SIGNATURE.
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
MSG_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
TIMESTAMP = 1614265330
PAYLOAD = b'{"test": 2432232314}'
SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
# Same file, test_invalid_signature_raises_error: one character off.
WRONG_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OA="

KEYS = KeyRing(secrets=(Secret.of(SECRET),))
PARAMS = Params()


def headers(signature: str = SIGNATURE, stamp: int = TIMESTAMP) -> dict[str, str]:
    return {"webhook-id": MSG_ID, "webhook-timestamp": str(stamp), "webhook-signature": signature}


def sign_inline(stamp: int, body: bytes = PAYLOAD, secret: str = SECRET) -> str:
    key = base64.b64decode(secret.removeprefix("whsec_"))
    digest = hmac.new(key, f"{MSG_ID}.{stamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def test_reference_vector() -> None:
    verified = standard_webhooks.verify(PAYLOAD, headers(), PARAMS, KEYS, TIMESTAMP)
    assert verified == Verified(key_index=0, timestamp=TIMESTAMP)


def test_reference_invalid_signature() -> None:
    with pytest.raises(SignatureMismatch):
        standard_webhooks.verify(PAYLOAD, headers(WRONG_SIGNATURE), PARAMS, KEYS, TIMESTAMP)


def test_secret_without_prefix() -> None:
    keys = KeyRing(secrets=(Secret.of(SECRET.removeprefix("whsec_")),))
    assert standard_webhooks.verify(PAYLOAD, headers(), PARAMS, keys, TIMESTAMP)


def test_multiple_entries_one_valid() -> None:
    # Shape of the reference's test_multi_sig_payload_is_valid.
    entries = [
        "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc=",
        "v2,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc=",
        SIGNATURE,
        "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc=",
    ]
    assert standard_webhooks.verify(PAYLOAD, headers(" ".join(entries)), PARAMS, KEYS, TIMESTAMP)


def test_sign_round_trip() -> None:
    signed = standard_webhooks.sign(PAYLOAD, PARAMS, KEYS, TIMESTAMP)
    message_id = signed.headers["webhook-id"]
    key = base64.b64decode(SECRET.removeprefix("whsec_"))
    digest = hmac.new(key, f"{message_id}.{TIMESTAMP}.".encode() + PAYLOAD, hashlib.sha256)
    assert signed.headers["webhook-signature"] == "v1," + base64.b64encode(digest.digest()).decode()
    assert signed.headers["webhook-timestamp"] == str(TIMESTAMP)
    assert standard_webhooks.verify(signed.body, signed.headers, PARAMS, KEYS, TIMESTAMP)


def test_tampered_body() -> None:
    with pytest.raises(SignatureMismatch):
        standard_webhooks.verify(b'{"test": 2432232315}', headers(), PARAMS, KEYS, TIMESTAMP)


def test_tampered_id() -> None:
    tampered = headers() | {"webhook-id": "msg_other"}
    with pytest.raises(SignatureMismatch):
        standard_webhooks.verify(PAYLOAD, tampered, PARAMS, KEYS, TIMESTAMP)


def test_tampered_timestamp() -> None:
    with pytest.raises(SignatureMismatch):
        standard_webhooks.verify(PAYLOAD, headers(stamp=TIMESTAMP + 1), PARAMS, KEYS, TIMESTAMP)


def test_wrong_secret() -> None:
    keys = KeyRing(secrets=(Secret.of("whsec_" + base64.b64encode(b"other key").decode()),))
    with pytest.raises(SignatureMismatch):
        standard_webhooks.verify(PAYLOAD, headers(), PARAMS, keys, TIMESTAMP)


def test_rotated_secret_second_matches() -> None:
    keys = KeyRing(
        secrets=(Secret.of("whsec_" + base64.b64encode(b"new key").decode()), Secret.of(SECRET))
    )
    assert standard_webhooks.verify(PAYLOAD, headers(), PARAMS, keys, TIMESTAMP).key_index == 1


@pytest.mark.parametrize("offset", [-300, 300])
def test_edge_of_tolerance(offset: int) -> None:
    stamp = TIMESTAMP + offset
    assert standard_webhooks.verify(
        PAYLOAD, headers(sign_inline(stamp), stamp), PARAMS, KEYS, TIMESTAMP
    )


def test_stale() -> None:
    stamp = TIMESTAMP - 301
    with pytest.raises(StaleTimestamp):
        standard_webhooks.verify(
            PAYLOAD, headers(sign_inline(stamp), stamp), PARAMS, KEYS, TIMESTAMP
        )


def test_future() -> None:
    stamp = TIMESTAMP + 301
    with pytest.raises(StaleTimestamp):
        standard_webhooks.verify(
            PAYLOAD, headers(sign_inline(stamp), stamp), PARAMS, KEYS, TIMESTAMP
        )


@pytest.mark.parametrize("name", ["webhook-id", "webhook-signature"])
def test_missing_header(name: str) -> None:
    incomplete = headers()
    del incomplete[name]
    with pytest.raises(MissingSignature):
        standard_webhooks.verify(PAYLOAD, incomplete, PARAMS, KEYS, TIMESTAMP)


def test_missing_timestamp() -> None:
    incomplete = headers()
    del incomplete["webhook-timestamp"]
    with pytest.raises(MissingTimestamp):
        standard_webhooks.verify(PAYLOAD, incomplete, PARAMS, KEYS, TIMESTAMP)


@pytest.mark.parametrize("stamp", ["hello", "1614265330.5", "-1614265330"])
def test_malformed_timestamp(stamp: str) -> None:
    with pytest.raises(MalformedTimestamp):
        standard_webhooks.verify(
            PAYLOAD, headers() | {"webhook-timestamp": stamp}, PARAMS, KEYS, TIMESTAMP
        )


@pytest.mark.parametrize(
    "signature",
    [
        pytest.param("g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=", id="no-version"),
        pytest.param(",g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=", id="empty-version"),
        pytest.param("v1,not*base64", id="bad-base64"),
        pytest.param("v1," + base64.b64encode(b"\x00" * 16).decode(), id="16-bytes"),
        pytest.param(f"{SIGNATURE} v1", id="valid-then-garbage"),
    ],
)
def test_malformed_signature(signature: str) -> None:
    # The reference library raises an unhandled ValueError or binascii.Error here.
    with pytest.raises(MalformedSignature):
        standard_webhooks.verify(PAYLOAD, headers(signature), PARAMS, KEYS, TIMESTAMP)


def test_only_other_versions() -> None:
    with pytest.raises(MissingSignature):
        standard_webhooks.verify(PAYLOAD, headers("v1a,AAAA v2,BBBB"), PARAMS, KEYS, TIMESTAMP)


@pytest.mark.parametrize("secret", ["whsec_not base64!", "whsec_"])
def test_unusable_secret(secret: str) -> None:
    keys = KeyRing(secrets=(Secret.of(secret),))
    with pytest.raises(UnusableKey):
        standard_webhooks.verify(PAYLOAD, headers(), PARAMS, keys, TIMESTAMP)


def test_required_keys() -> None:
    assert standard_webhooks.required_keys(PARAMS) == {"secrets"}

"""Ed25519 over ``<body>|<timestamp ms>`` in headers: payin-order (document 004)."""

from __future__ import annotations

import hashlib
from typing import Literal

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from verifiers import ed25519_header
from verifiers.ed25519_header import Params
from verifiers.errors import (
    MalformedSignature,
    MalformedTimestamp,
    MissingSignature,
    MissingTimestamp,
    SignatureMismatch,
    StaleTimestamp,
)
from verifiers.keys import KeyRing, UnusableKey, load_public_key, public_pem

Prehash = Literal["sha256d", "sha256", "none"]

NOW = 1_744_689_600
STAMP = str(NOW * 1000 + 123)
BODY = (
    b'{"event_id":"evt_1","type":"payin_order.updated","created_timestamp":1744689600,'
    b'"data":{"order_id":"5001","status":"Completed","received_token_amount":"103.0305",'
    b'"updated_timestamp":1744689600}}'
)
# RFC 8032 section 7.1, TEST 1: the secret seed and its public key, published as
# 64 hex characters the way document 004's provider publishes its keys.
RFC_SEED = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
RFC_PUBLIC = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"


def sha256d(message: bytes) -> bytes:
    return hashlib.sha256(hashlib.sha256(message).digest()).digest()


def headers_for(
    key: ed25519.Ed25519PrivateKey,
    stamp: str = STAMP,
    body: bytes = BODY,
    signed: bytes | None = None,
) -> dict[str, str]:
    signature = key.sign(signed if signed is not None else sha256d(body + b"|" + stamp.encode()))
    return {"biz_resp_signature": signature.hex(), "biz_timestamp": stamp}


@pytest.fixture(scope="module")
def keys(ed_key: ed25519.Ed25519PrivateKey) -> KeyRing:
    return KeyRing(public_keys=(ed_key.public_key(),), private_key=ed_key)


def test_rfc8032_key_published_as_hex() -> None:
    key = ed25519.Ed25519PrivateKey.from_private_bytes(RFC_SEED)
    ring = KeyRing(public_keys=(load_public_key(RFC_PUBLIC),))
    assert ed25519_header.verify(BODY, headers_for(key), Params(), ring, NOW).key_index == 0


def test_pem_public_key(ed_key: ed25519.Ed25519PrivateKey) -> None:
    ring = KeyRing(public_keys=(load_public_key(public_pem(ed_key.public_key())),))
    assert ed25519_header.verify(BODY, headers_for(ed_key), Params(), ring, NOW)


def test_verified_timestamp_is_seconds(ed_key: ed25519.Ed25519PrivateKey, keys: KeyRing) -> None:
    verified = ed25519_header.verify(BODY, headers_for(ed_key), Params(), keys, NOW)
    assert verified.timestamp == NOW + 0.123


@pytest.mark.parametrize(
    ("signature_header", "timestamp_header"),
    [
        ("biz_resp_signature", "biz_timestamp"),
        ("biz-resp-signature", "biz-timestamp"),
        ("biz_resp_signature", "biz-timestamp"),
    ],
)
def test_header_spellings(
    signature_header: str, timestamp_header: str, ed_key: ed25519.Ed25519PrivateKey, keys: KeyRing
) -> None:
    sent = headers_for(ed_key)
    headers = {
        signature_header: sent["biz_resp_signature"],
        timestamp_header: sent["biz_timestamp"],
    }
    assert ed25519_header.verify(BODY, headers, Params(), keys, NOW)


class TestPrehash:
    MESSAGE = BODY + b"|" + STAMP.encode()

    @pytest.mark.parametrize(
        ("prehash", "signed"),
        [
            ("sha256d", sha256d(MESSAGE)),
            ("sha256", hashlib.sha256(MESSAGE).digest()),
            ("none", MESSAGE),
        ],
    )
    def test_each_variant(
        self, prehash: Prehash, signed: bytes, ed_key: ed25519.Ed25519PrivateKey, keys: KeyRing
    ) -> None:
        headers = headers_for(ed_key, signed=signed)
        assert ed25519_header.verify(BODY, headers, Params(prehash=prehash), keys, NOW)

    @pytest.mark.parametrize("prehash", ["sha256", "none"])
    def test_variants_are_not_interchangeable(
        self, prehash: Prehash, ed_key: ed25519.Ed25519PrivateKey, keys: KeyRing
    ) -> None:
        with pytest.raises(SignatureMismatch):
            ed25519_header.verify(BODY, headers_for(ed_key), Params(prehash=prehash), keys, NOW)

    @pytest.mark.parametrize("prehash", ["sha256d", "sha256", "none"])
    def test_sign_round_trip(self, prehash: Prehash, keys: KeyRing) -> None:
        params = Params(prehash=prehash)
        signed = ed25519_header.sign(BODY, params, keys, NOW)
        assert signed.headers["biz_timestamp"] == str(NOW * 1000)
        assert ed25519_header.verify(signed.body, signed.headers, params, keys, NOW)

    def test_unknown_variant_is_refused(self) -> None:
        with pytest.raises(ValueError, match="prehash"):
            Params(prehash="sha512")  # type: ignore[arg-type]


class TestFailures:
    def test_tampered_body(self, ed_key: ed25519.Ed25519PrivateKey, keys: KeyRing) -> None:
        with pytest.raises(SignatureMismatch):
            ed25519_header.verify(
                BODY.replace(b"Completed", b"Underpaid"), headers_for(ed_key), Params(), keys, NOW
            )

    def test_tampered_timestamp(self, ed_key: ed25519.Ed25519PrivateKey, keys: KeyRing) -> None:
        headers = headers_for(ed_key) | {"biz_timestamp": str(int(STAMP) + 1)}
        with pytest.raises(SignatureMismatch):
            ed25519_header.verify(BODY, headers, Params(), keys, NOW)

    def test_tampered_signature(self, ed_key: ed25519.Ed25519PrivateKey, keys: KeyRing) -> None:
        headers = headers_for(ed_key)
        signature = bytearray.fromhex(headers["biz_resp_signature"])
        signature[0] ^= 1
        headers["biz_resp_signature"] = signature.hex()
        with pytest.raises(SignatureMismatch):
            ed25519_header.verify(BODY, headers, Params(), keys, NOW)

    def test_wrong_key(self, other_ed_key: ed25519.Ed25519PrivateKey, keys: KeyRing) -> None:
        with pytest.raises(SignatureMismatch):
            ed25519_header.verify(BODY, headers_for(other_ed_key), Params(), keys, NOW)

    def test_rotated_key_second_matches(
        self, ed_key: ed25519.Ed25519PrivateKey, other_ed_key: ed25519.Ed25519PrivateKey
    ) -> None:
        ring = KeyRing(public_keys=(other_ed_key.public_key(), ed_key.public_key()))
        assert ed25519_header.verify(BODY, headers_for(ed_key), Params(), ring, NOW).key_index == 1

    def test_missing_signature(self, ed_key: ed25519.Ed25519PrivateKey, keys: KeyRing) -> None:
        headers = headers_for(ed_key)
        del headers["biz_resp_signature"]
        with pytest.raises(MissingSignature):
            ed25519_header.verify(BODY, headers, Params(), keys, NOW)

    def test_missing_timestamp(self, ed_key: ed25519.Ed25519PrivateKey, keys: KeyRing) -> None:
        headers = headers_for(ed_key)
        del headers["biz_timestamp"]
        with pytest.raises(MissingTimestamp):
            ed25519_header.verify(BODY, headers, Params(), keys, NOW)

    @pytest.mark.parametrize(
        "signature",
        [
            pytest.param("zz" * 64, id="bad-hex"),
            pytest.param("ab" * 63, id="63-bytes"),
            pytest.param("ab" * 65, id="65-bytes"),
            pytest.param("abc", id="odd-length"),
            pytest.param("v1,abcdef==", id="garbage"),
        ],
    )
    def test_malformed_signature(self, signature: str, keys: KeyRing) -> None:
        headers = {"biz_resp_signature": signature, "biz_timestamp": STAMP}
        with pytest.raises(MalformedSignature):
            ed25519_header.verify(BODY, headers, Params(), keys, NOW)

    @pytest.mark.parametrize("stamp", ["1744689600.123", "-1", "now", "1" * 40])
    def test_malformed_timestamp(
        self, stamp: str, ed_key: ed25519.Ed25519PrivateKey, keys: KeyRing
    ) -> None:
        with pytest.raises(MalformedTimestamp):
            ed25519_header.verify(BODY, headers_for(ed_key, stamp=stamp), Params(), keys, NOW)

    def test_stale(self, ed_key: ed25519.Ed25519PrivateKey, keys: KeyRing) -> None:
        stamp = str((NOW - 301) * 1000)
        with pytest.raises(StaleTimestamp):
            ed25519_header.verify(BODY, headers_for(ed_key, stamp=stamp), Params(), keys, NOW)

    def test_future(self, ed_key: ed25519.Ed25519PrivateKey, keys: KeyRing) -> None:
        stamp = str((NOW + 301) * 1000)
        with pytest.raises(StaleTimestamp):
            ed25519_header.verify(BODY, headers_for(ed_key, stamp=stamp), Params(), keys, NOW)

    def test_seconds_instead_of_milliseconds_is_stale(
        self, ed_key: ed25519.Ed25519PrivateKey, keys: KeyRing
    ) -> None:
        with pytest.raises(StaleTimestamp):
            ed25519_header.verify(BODY, headers_for(ed_key, stamp=str(NOW)), Params(), keys, NOW)

    def test_within_a_wider_tolerance(
        self, ed_key: ed25519.Ed25519PrivateKey, keys: KeyRing
    ) -> None:
        stamp = str((NOW - 301) * 1000)
        params = Params(timestamp_tolerance_s=600)
        assert ed25519_header.verify(BODY, headers_for(ed_key, stamp=stamp), params, keys, NOW)

    def test_wrong_key_type(
        self, ed_key: ed25519.Ed25519PrivateKey, rsa_key: rsa.RSAPrivateKey
    ) -> None:
        ring = KeyRing(public_keys=(rsa_key.public_key(),))
        with pytest.raises(UnusableKey):
            ed25519_header.verify(BODY, headers_for(ed_key), Params(), ring, NOW)

    def test_sign_with_wrong_private_key_type(self, rsa_key: rsa.RSAPrivateKey) -> None:
        with pytest.raises(UnusableKey):
            ed25519_header.sign(BODY, Params(), KeyRing(private_key=rsa_key), NOW)


def test_required_keys() -> None:
    assert ed25519_header.required_keys(Params()) == {"public_keys"}


@pytest.mark.parametrize("tolerance", [0, -1, -300])
def test_tolerance_not_above_zero_is_refused(tolerance: int) -> None:
    with pytest.raises(ValueError, match="timestamp_tolerance_s must be greater than zero"):
        Params(timestamp_tolerance_s=tolerance)

"""A signature over the raw body in one header: wallet-topup (document 001)."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa

from verifiers import header_signature
from verifiers.base import Encoding
from verifiers.errors import (
    MalformedSignature,
    MalformedTimestamp,
    MissingSignature,
    SignatureMismatch,
    StaleTimestamp,
)
from verifiers.header_signature import Params
from verifiers.keys import KeyRing, Secret, UnusableKey

NOW = 1_700_000_000
SECRET = "topup-secret"
# Document 001's top-up status webhook, as the document prints it.
BODY = (
    b'{ "event":"topup.status", "data":{ "orderId": "bacd97d132014cb6b23ee18fdea3b5c4", '
    b'"status": "COMPLETED", "created": "2025-12-03 17:07:48", "quoteSnapshot": { "fee": 1, '
    b'"feeCurrency": "USD", "sourceAmount": 50, "sourceCurrency": "AUD", "targetAmount": 32.87, '
    b'"targetCurrency": "USDT" } } }'
)
DEFAULT = Params()
HMAC_HEX = Params(algorithm="hmac-sha256", encoding="hex")


def rsa_raw(key: rsa.RSAPrivateKey, body: bytes = BODY) -> bytes:
    return key.sign(body, padding.PKCS1v15(), hashes.SHA256())


def base64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def hmac_hex(secret: str = SECRET, body: bytes = BODY) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


@pytest.fixture(scope="module")
def keys(rsa_key: rsa.RSAPrivateKey) -> KeyRing:
    return KeyRing(public_keys=(rsa_key.public_key(),), private_key=rsa_key)


class TestRsaDefault:
    def test_vector_computed_with_cryptography(
        self, rsa_key: rsa.RSAPrivateKey, keys: KeyRing
    ) -> None:
        headers = {"sign": base64url(rsa_raw(rsa_key))}
        assert header_signature.verify(BODY, headers, DEFAULT, keys, NOW).key_index == 0

    @pytest.mark.parametrize(
        "encode",
        [
            lambda raw: base64.urlsafe_b64encode(raw).decode(),
            lambda raw: base64.b64encode(raw).decode(),
            lambda raw: base64.b64encode(raw).decode().rstrip("="),
        ],
        ids=["base64url-padded", "standard-padded", "standard-unpadded"],
    )
    def test_other_base64_spellings_accepted(
        self, encode: Callable[[bytes], str], rsa_key: rsa.RSAPrivateKey, keys: KeyRing
    ) -> None:
        headers = {"sign": encode(rsa_raw(rsa_key))}
        assert header_signature.verify(BODY, headers, DEFAULT, keys, NOW)

    def test_sign_writes_unpadded_base64url(
        self, rsa_key: rsa.RSAPrivateKey, keys: KeyRing
    ) -> None:
        signed = header_signature.sign(BODY, DEFAULT, keys, NOW)
        assert "=" not in signed.headers["sign"]
        # PKCS#1 v1.5 is deterministic: the same key and body give the same bytes.
        assert signed.headers["sign"] == base64url(rsa_raw(rsa_key))
        assert header_signature.verify(signed.body, signed.headers, DEFAULT, keys, NOW)

    def test_tampered_body(self, rsa_key: rsa.RSAPrivateKey, keys: KeyRing) -> None:
        headers = {"sign": base64url(rsa_raw(rsa_key))}
        with pytest.raises(SignatureMismatch):
            header_signature.verify(
                BODY.replace(b"COMPLETED", b"FAILED"), headers, DEFAULT, keys, NOW
            )

    def test_tampered_signature(self, rsa_key: rsa.RSAPrivateKey, keys: KeyRing) -> None:
        raw = bytearray(rsa_raw(rsa_key))
        raw[-1] ^= 1
        with pytest.raises(SignatureMismatch):
            header_signature.verify(BODY, {"sign": base64url(bytes(raw))}, DEFAULT, keys, NOW)

    def test_wrong_key(self, other_rsa_key: rsa.RSAPrivateKey, keys: KeyRing) -> None:
        headers = {"sign": base64url(rsa_raw(other_rsa_key))}
        with pytest.raises(SignatureMismatch):
            header_signature.verify(BODY, headers, DEFAULT, keys, NOW)

    def test_rotated_key_second_matches(
        self, rsa_key: rsa.RSAPrivateKey, other_rsa_key: rsa.RSAPrivateKey
    ) -> None:
        ring = KeyRing(public_keys=(other_rsa_key.public_key(), rsa_key.public_key()))
        headers = {"sign": base64url(rsa_raw(rsa_key))}
        assert header_signature.verify(BODY, headers, DEFAULT, ring, NOW).key_index == 1

    def test_missing_header(self, keys: KeyRing) -> None:
        with pytest.raises(MissingSignature):
            header_signature.verify(BODY, {}, DEFAULT, keys, NOW)

    def test_bad_base64(self, keys: KeyRing) -> None:
        with pytest.raises(MalformedSignature):
            header_signature.verify(BODY, {"sign": "***"}, DEFAULT, keys, NOW)

    def test_wrong_length(self, keys: KeyRing) -> None:
        with pytest.raises(MalformedSignature):
            header_signature.verify(BODY, {"sign": base64url(b"\x00" * 128)}, DEFAULT, keys, NOW)

    def test_wrong_key_type(
        self, ed_key: ed25519.Ed25519PrivateKey, rsa_key: rsa.RSAPrivateKey
    ) -> None:
        ring = KeyRing(public_keys=(ed_key.public_key(),))
        headers = {"sign": base64url(rsa_raw(rsa_key))}
        with pytest.raises(UnusableKey):
            header_signature.verify(BODY, headers, DEFAULT, ring, NOW)

    def test_other_header_name(self, rsa_key: rsa.RSAPrivateKey, keys: KeyRing) -> None:
        params = Params(header="X-Signature")
        headers = {"x-signature": base64url(rsa_raw(rsa_key))}
        assert header_signature.verify(BODY, headers, params, keys, NOW)
        with pytest.raises(MissingSignature):
            header_signature.verify(BODY, {"sign": headers["x-signature"]}, params, keys, NOW)


class TestHmac:
    KEYS = KeyRing(secrets=(Secret.of(SECRET),))

    def test_hex_vector(self) -> None:
        assert header_signature.verify(BODY, {"sign": hmac_hex()}, HMAC_HEX, self.KEYS, NOW)

    def test_base64_vector(self) -> None:
        digest = hmac.new(SECRET.encode(), BODY, hashlib.sha256).digest()
        params = Params(algorithm="hmac-sha256", encoding="base64")
        headers = {"sign": base64.b64encode(digest).decode()}
        assert header_signature.verify(BODY, headers, params, self.KEYS, NOW)

    def test_wrong_secret(self) -> None:
        with pytest.raises(SignatureMismatch):
            header_signature.verify(BODY, {"sign": hmac_hex("other")}, HMAC_HEX, self.KEYS, NOW)

    def test_rotated_secret_second_matches(self) -> None:
        ring = KeyRing(secrets=(Secret.of("new"), Secret.of(SECRET)))
        assert (
            header_signature.verify(BODY, {"sign": hmac_hex()}, HMAC_HEX, ring, NOW).key_index == 1
        )

    def test_bad_hex(self) -> None:
        with pytest.raises(MalformedSignature):
            header_signature.verify(BODY, {"sign": "g" * 64}, HMAC_HEX, self.KEYS, NOW)

    def test_wrong_length(self) -> None:
        with pytest.raises(MalformedSignature):
            header_signature.verify(BODY, {"sign": hmac_hex()[:-2]}, HMAC_HEX, self.KEYS, NOW)

    @pytest.mark.parametrize("encoding", ["hex", "base64", "base64url"])
    def test_sign_round_trip(self, encoding: Encoding) -> None:
        params = Params(algorithm="hmac-sha256", encoding=encoding)
        signed = header_signature.sign(BODY, params, self.KEYS, NOW)
        assert header_signature.verify(signed.body, signed.headers, params, self.KEYS, NOW)


class TestUnsignedTimestamp:
    def headers(self, rsa_key: rsa.RSAPrivateKey, stamp: str | None) -> dict[str, str]:
        headers = {"sign": base64url(rsa_raw(rsa_key))}
        if stamp is not None:
            headers["x-timestamp"] = stamp
        return headers

    def test_absent_is_accepted(self, rsa_key: rsa.RSAPrivateKey, keys: KeyRing) -> None:
        verified = header_signature.verify(BODY, self.headers(rsa_key, None), DEFAULT, keys, NOW)
        assert verified.timestamp is None

    def test_seconds(self, rsa_key: rsa.RSAPrivateKey, keys: KeyRing) -> None:
        headers = self.headers(rsa_key, str(NOW - 299))
        # Checked, but not reported: the signature does not cover it.
        assert header_signature.verify(BODY, headers, DEFAULT, keys, NOW).timestamp is None

    def test_milliseconds(self, rsa_key: rsa.RSAPrivateKey, keys: KeyRing) -> None:
        headers = self.headers(rsa_key, str((NOW - 5) * 1000 + 250))
        assert header_signature.verify(BODY, headers, DEFAULT, keys, NOW).timestamp is None
        with pytest.raises(StaleTimestamp):
            stale = self.headers(rsa_key, str((NOW - 301) * 1000))
            header_signature.verify(BODY, stale, DEFAULT, keys, NOW)

    def test_stale(self, rsa_key: rsa.RSAPrivateKey, keys: KeyRing) -> None:
        with pytest.raises(StaleTimestamp):
            header_signature.verify(BODY, self.headers(rsa_key, str(NOW - 301)), DEFAULT, keys, NOW)

    def test_future(self, rsa_key: rsa.RSAPrivateKey, keys: KeyRing) -> None:
        headers = self.headers(rsa_key, str((NOW + 301) * 1000))
        with pytest.raises(StaleTimestamp):
            header_signature.verify(BODY, headers, DEFAULT, keys, NOW)

    def test_malformed(self, rsa_key: rsa.RSAPrivateKey, keys: KeyRing) -> None:
        with pytest.raises(MalformedTimestamp):
            header_signature.verify(BODY, self.headers(rsa_key, "yesterday"), DEFAULT, keys, NOW)

    def test_tolerance_is_configurable(self, rsa_key: rsa.RSAPrivateKey, keys: KeyRing) -> None:
        params = Params(timestamp_tolerance_s=600)
        headers = self.headers(rsa_key, str(NOW - 500))
        assert header_signature.verify(BODY, headers, params, keys, NOW)

    def test_disabled(self, rsa_key: rsa.RSAPrivateKey, keys: KeyRing) -> None:
        params = Params(timestamp_header="")
        headers = self.headers(rsa_key, str(NOW - 10_000))
        assert header_signature.verify(BODY, headers, params, keys, NOW).timestamp is None


def test_unknown_encoding_is_refused() -> None:
    with pytest.raises(ValueError, match="encoding"):
        Params(encoding="base32")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("params", "expected"),
    [(DEFAULT, {"public_keys"}), (HMAC_HEX, {"secrets"})],
    ids=["rsa", "hmac"],
)
def test_required_keys(params: Params, expected: set[str]) -> None:
    assert header_signature.required_keys(params) == expected


@pytest.mark.parametrize("tolerance", [0, -1, -300])
def test_tolerance_not_above_zero_is_refused(tolerance: int) -> None:
    with pytest.raises(ValueError, match="timestamp_tolerance_s must be greater than zero"):
        Params(timestamp_tolerance_s=tolerance)

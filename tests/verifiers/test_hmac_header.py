"""HMAC over the raw body in one header: usdt-invoice (document 003), github, generic hmac."""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Literal

import pytest

from verifiers import hmac_header
from verifiers.base import decode_base64
from verifiers.errors import (
    MalformedSignature,
    MalformedTimestamp,
    MissingSignature,
    MissingTimestamp,
    SignatureMismatch,
    StaleTimestamp,
)
from verifiers.hmac_header import Params
from verifiers.keys import KeyRing, Secret

NOW = 1_700_000_000
SECRET = "invoice-webhook-secret"
BODY = b'{"invoice_reference":"ORDER-12345","status":"confirmed","amount_usdt_exact":"150.0000"}'
INVOICE = Params(header="x-webhook-signature")
RING = KeyRing(secrets=(Secret.of(SECRET),))


def hex_hmac(secret: str, message: bytes, algorithm: str = "sha256") -> str:
    return hmac.new(secret.encode(), message, algorithm).hexdigest()


def test_github_documented_example() -> None:
    # Source: GitHub Docs, "Validating webhook deliveries", section "Testing the
    # webhook payload validation" (secret, payload and expected header as printed there).
    params = Params(header="x-hub-signature-256", prefix="sha256=")
    keys = KeyRing(secrets=(Secret.of("It's a Secret to Everybody"),))
    headers = {
        "x-hub-signature-256": "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    }
    assert hmac_header.verify(b"Hello, World!", headers, params, keys, NOW).key_index == 0


def test_usdt_invoice_vector_computed_with_hmac() -> None:
    # Document 003: HMAC-SHA256 of the body with the webhook secret, lowercase hex.
    headers = {"x-webhook-signature": hex_hmac(SECRET, BODY)}
    assert hmac_header.verify(BODY, headers, INVOICE, RING, NOW).key_index == 0


def test_sign_round_trip() -> None:
    signed = hmac_header.sign(BODY, INVOICE, RING, NOW)
    assert signed.headers == {"x-webhook-signature": hex_hmac(SECRET, BODY)}
    assert hmac_header.verify(signed.body, signed.headers, INVOICE, RING, NOW).key_index == 0


def test_tampered_body() -> None:
    headers = {"x-webhook-signature": hex_hmac(SECRET, BODY)}
    with pytest.raises(SignatureMismatch):
        hmac_header.verify(BODY.replace(b"150", b"950"), headers, INVOICE, RING, NOW)


def test_tampered_signature() -> None:
    signature = hex_hmac(SECRET, BODY)
    tampered = ("0" if signature[0] != "0" else "1") + signature[1:]
    with pytest.raises(SignatureMismatch):
        hmac_header.verify(BODY, {"x-webhook-signature": tampered}, INVOICE, RING, NOW)


def test_wrong_secret() -> None:
    headers = {"x-webhook-signature": hex_hmac("another-secret", BODY)}
    with pytest.raises(SignatureMismatch):
        hmac_header.verify(BODY, headers, INVOICE, RING, NOW)


def test_rotated_secret_second_matches() -> None:
    keys = KeyRing(secrets=(Secret.of("new-secret"), Secret.of(SECRET)))
    headers = {"x-webhook-signature": hex_hmac(SECRET, BODY)}
    assert hmac_header.verify(BODY, headers, INVOICE, keys, NOW).key_index == 1


def test_missing_header() -> None:
    with pytest.raises(MissingSignature):
        hmac_header.verify(BODY, {}, INVOICE, RING, NOW)


def test_bad_hex() -> None:
    with pytest.raises(MalformedSignature):
        hmac_header.verify(BODY, {"x-webhook-signature": "zz" * 32}, INVOICE, RING, NOW)


def test_hex_with_inner_whitespace_is_malformed() -> None:
    spaced = " ".join(hex_hmac(SECRET, BODY)[i : i + 2] for i in range(0, 64, 2))
    with pytest.raises(MalformedSignature):
        hmac_header.verify(BODY, {"x-webhook-signature": spaced}, INVOICE, RING, NOW)


def test_wrong_length() -> None:
    short = hex_hmac(SECRET, BODY)[:40]
    with pytest.raises(MalformedSignature):
        hmac_header.verify(BODY, {"x-webhook-signature": short}, INVOICE, RING, NOW)


def test_missing_prefix() -> None:
    params = Params(header="x-hub-signature-256", prefix="sha256=")
    headers = {"x-hub-signature-256": hex_hmac(SECRET, BODY)}
    with pytest.raises(MalformedSignature):
        hmac_header.verify(BODY, headers, params, RING, NOW)


@pytest.mark.parametrize("encoding", ["hex", "base64"])
def test_encodings(encoding: Literal["hex", "base64"]) -> None:
    params = Params(encoding=encoding)
    digest = hmac.new(SECRET.encode(), BODY, hashlib.sha256).digest()
    text = digest.hex() if encoding == "hex" else base64.b64encode(digest).decode()
    assert hmac_header.verify(BODY, {"x-webhook-signature": text}, params, RING, NOW)


def test_bad_base64() -> None:
    params = Params(encoding="base64")
    with pytest.raises(MalformedSignature):
        hmac_header.verify(BODY, {"x-webhook-signature": "not*base64!"}, params, RING, NOW)


def test_urlsafe_base64_with_foreign_characters_is_malformed() -> None:
    digest = hmac.new(SECRET.encode(), BODY, hashlib.sha256).digest()
    text = base64.urlsafe_b64encode(digest).decode().rstrip("=") + "-!"
    with pytest.raises(MalformedSignature):
        hmac_header.verify(
            BODY, {"x-webhook-signature": text}, Params(encoding="base64"), RING, NOW
        )


@pytest.mark.parametrize("algorithm", ["sha1", "sha256", "sha512"])
def test_algorithms(algorithm: hmac_header.Algorithm) -> None:
    params = Params(algorithm=algorithm)
    headers = {"x-webhook-signature": hex_hmac(SECRET, BODY, algorithm)}
    assert hmac_header.verify(BODY, headers, params, RING, NOW).key_index == 0


def test_algorithm_is_not_interchangeable() -> None:
    headers = {"x-webhook-signature": hex_hmac(SECRET, BODY, "sha1")}
    with pytest.raises(MalformedSignature):  # a SHA-1 digest is 20 bytes, not 32
        hmac_header.verify(BODY, headers, INVOICE, RING, NOW)


class TestTemplateWithTimestamp:
    PARAMS = Params(template="{timestamp}.{body}", timestamp_header="x-timestamp")

    def headers(self, stamp: int) -> dict[str, str]:
        message = f"{stamp}.".encode() + BODY
        return {"x-webhook-signature": hex_hmac(SECRET, message), "x-timestamp": str(stamp)}

    def test_valid(self) -> None:
        verified = hmac_header.verify(BODY, self.headers(NOW - 10), self.PARAMS, RING, NOW)
        assert verified.timestamp == NOW - 10

    def test_stale(self) -> None:
        with pytest.raises(StaleTimestamp):
            hmac_header.verify(BODY, self.headers(NOW - 301), self.PARAMS, RING, NOW)

    def test_future(self) -> None:
        with pytest.raises(StaleTimestamp):
            hmac_header.verify(BODY, self.headers(NOW + 301), self.PARAMS, RING, NOW)

    def test_timestamp_is_signed(self) -> None:
        headers = self.headers(NOW) | {"x-timestamp": str(NOW - 1)}
        with pytest.raises(SignatureMismatch):
            hmac_header.verify(BODY, headers, self.PARAMS, RING, NOW)

    def test_missing_timestamp(self) -> None:
        headers = self.headers(NOW)
        del headers["x-timestamp"]
        with pytest.raises(MissingTimestamp):
            hmac_header.verify(BODY, headers, self.PARAMS, RING, NOW)

    @pytest.mark.parametrize("stamp", ["17e8", "-5", "\u00b2", "\u0661\u0662"])
    def test_malformed_timestamp(self, stamp: str) -> None:
        headers = self.headers(NOW) | {"x-timestamp": stamp}
        with pytest.raises(MalformedTimestamp):
            hmac_header.verify(BODY, headers, self.PARAMS, RING, NOW)

    def test_sign_round_trip(self) -> None:
        signed = hmac_header.sign(BODY, self.PARAMS, RING, NOW)
        assert signed.headers["x-timestamp"] == str(NOW)
        assert hmac_header.verify(signed.body, signed.headers, self.PARAMS, RING, NOW)


class TestJsonStringifyFallback:
    # Document 003's Node example signs JSON.stringify(JSON.parse(body)): compact, key
    # order kept, escapes decoded, numbers as JavaScript prints its doubles.
    PRETTY = b'{\n  "invoice_reference": "ORDER-\\u0031\\u0032345",\n  "amount": 150,\n  "status": "confirmed"\n}'
    STRINGIFIED = b'{"invoice_reference":"ORDER-12345","amount":150,"status":"confirmed"}'
    PARAMS = Params(json_stringify_fallback=True)

    @pytest.mark.parametrize(
        "body",
        [
            # 150.0000 and 150.00000000000001 are the double 150: the signed form says 150.
            pytest.param(
                b'{"invoice_reference":"ORDER-12345","amount":150.0000,"status":"confirmed"}',
                id="number-written-otherwise",
            ),
            pytest.param(
                b'{"invoice_reference":"ORDER-12345","amount":150.00000000000001,"status":"confirmed"}',
                id="number-altered",
            ),
            pytest.param(
                b'{"invoice_reference":"ORDER-12345","amount":150,"status":"x","status":"confirmed"}',
                id="duplicate-key",
            ),
            pytest.param(STRINGIFIED.decode().encode("utf-16"), id="utf-16"),
        ],
    )
    def test_a_body_that_would_read_otherwise_than_its_signed_form_is_refused(
        self, body: bytes
    ) -> None:
        headers = {"x-webhook-signature": hex_hmac(SECRET, self.STRINGIFIED)}
        with pytest.raises(SignatureMismatch):
            hmac_header.verify(body, headers, self.PARAMS, RING, NOW)

    @pytest.mark.parametrize(
        "body",
        [
            pytest.param(b'{"a":"\\ud800"}', id="lone-surrogate"),
            pytest.param(b'{"a":' + b"[" * 5000 + b"]" * 5000 + b"}", id="deep"),
            pytest.param(b"[" + b"1," * 2000 + b"1]", id="many-values"),
            pytest.param(b"\xff", id="not-utf8"),
        ],
    )
    def test_hostile_bodies_are_refused_not_a_crash(self, body: bytes) -> None:
        headers = {"x-webhook-signature": hex_hmac(SECRET, b"anything")}
        with pytest.raises(SignatureMismatch):
            hmac_header.verify(body, headers, self.PARAMS, RING, NOW)

    def test_layout_variants_share_the_signed_content(self) -> None:
        assert hmac_header.signed_content(self.PRETTY, self.PARAMS) == self.STRINGIFIED
        assert hmac_header.signed_content(self.STRINGIFIED, self.PARAMS) == self.STRINGIFIED
        assert hmac_header.signed_content(self.PRETTY, INVOICE) == self.PRETTY

    @pytest.mark.parametrize(
        ("number", "javascript"),
        [
            (150.0, "150"),
            (1e21, "1e+21"),
            (1e-7, "1e-7"),
            (1.5e-7, "1.5e-7"),
            (0.000001, "0.000001"),
            (1e16, "10000000000000000"),
            (-2.5, "-2.5"),
            (5e-324, "5e-324"),
            (-0.0, "0"),
        ],
    )
    def test_numbers_are_written_as_javascript_writes_them(
        self, number: float, javascript: str
    ) -> None:
        assert hmac_header._javascript_text(number) == javascript

    def test_on_accepts_the_node_signature(self) -> None:
        headers = {"x-webhook-signature": hex_hmac(SECRET, self.STRINGIFIED)}
        params = Params(json_stringify_fallback=True)
        assert hmac_header.verify(self.PRETTY, headers, params, RING, NOW).key_index == 0

    def test_off_refuses_it(self) -> None:
        headers = {"x-webhook-signature": hex_hmac(SECRET, self.STRINGIFIED)}
        with pytest.raises(SignatureMismatch):
            hmac_header.verify(self.PRETTY, headers, INVOICE, RING, NOW)

    def test_on_still_accepts_the_raw_body_signature(self) -> None:
        headers = {"x-webhook-signature": hex_hmac(SECRET, self.PRETTY)}
        params = Params(json_stringify_fallback=True)
        assert hmac_header.verify(self.PRETTY, headers, params, RING, NOW).key_index == 0


def test_unknown_choice_is_refused_at_load() -> None:
    with pytest.raises(ValueError, match="encoding"):
        Params(encoding="base32")  # type: ignore[arg-type]


def test_required_keys() -> None:
    assert hmac_header.required_keys(INVOICE) == {"secrets"}


@pytest.mark.parametrize(
    ("options", "message"),
    [
        pytest.param({"template": "{timestamp}"}, "{body} exactly once", id="body-unsigned"),
        pytest.param({"template": "{body}.{body}"}, "{body} exactly once", id="body-twice"),
        pytest.param(
            {"timestamp_header": "x-timestamp"}, "needs {timestamp}", id="timestamp-unsigned"
        ),
        pytest.param(
            {"template": "{timestamp}.{body}"}, "needs a timestamp_header", id="no-header"
        ),
        pytest.param({"timestamp_tolerance_s": -5}, "greater than zero", id="negative-tolerance"),
        pytest.param({"timestamp_tolerance_s": 0}, "greater than zero", id="zero-tolerance"),
    ],
)
def test_options_that_would_sign_less_than_they_check_are_refused(
    options: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        Params(**options)  # type: ignore[arg-type]


_B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


def _unused_bits_set(canonical: str) -> str:
    """The same bytes with the last character's unused (padding) bits set: a re-spelling."""
    data = canonical.rstrip("=")
    last = _B64.index(data[-1])
    return data[:-1] + _B64[last | 1] + canonical[len(data) :]


@pytest.mark.parametrize("size", [32, 256], ids=["hmac-sha256", "rsa-2048"])
def test_base64_with_unused_bits_set_is_malformed(size: int) -> None:
    """A copied signature cannot be re-spelled into a second accepted text (the fuzz
    suite found a v2-payout request whose flipped bit landed in the unused bits)."""
    raw = bytes(range(size))[::-1]
    canonical = base64.b64encode(raw).decode()
    respelled = _unused_bits_set(canonical)
    assert respelled != canonical
    assert base64.b64decode(respelled) == raw  # what a lenient decoder would accept
    assert decode_base64(canonical, "the signature") == raw
    with pytest.raises(MalformedSignature, match="not canonical base64"):
        decode_base64(respelled, "the signature")


def test_an_hmac_signature_with_unused_bits_set_is_refused() -> None:
    digest = hmac.new(SECRET.encode(), BODY, hashlib.sha256).digest()
    respelled = _unused_bits_set(base64.b64encode(digest).decode())
    with pytest.raises(MalformedSignature):
        hmac_header.verify(
            BODY, {"x-webhook-signature": respelled}, Params(encoding="base64"), RING, NOW
        )


@pytest.mark.parametrize("algorithm", ["sha1", "sha256", "sha512"])
def test_a_secret_macs_as_hmac_digest_every_time(algorithm: str) -> None:
    secret = Secret.of(SECRET)
    for message in (BODY, b"", BODY * 3, BODY):  # the keyed state is copied, never used up
        assert secret.mac(message, algorithm) == hmac.digest(SECRET.encode(), message, algorithm)
    assert "invoice-webhook-secret" not in repr(secret)

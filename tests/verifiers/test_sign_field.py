"""A ``sign`` field in the JSON body: usdt-collect-pay (document 000) and v2-payout (document 002).

Expected signatures are computed here with hashlib, hmac and cryptography over
canonical strings written out by hand, so a wrong canonicalization in
``verifiers.sign_field`` cannot agree with itself.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Literal

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa

from verifiers import sign_field
from verifiers.errors import (
    AmbiguousBody,
    AppIdMismatch,
    MalformedBody,
    MalformedSignature,
    MissingSignature,
    SignatureMismatch,
)
from verifiers.keys import KeyRing, Secret, UnusableKey
from verifiers.sign_field import Params

NOW = 1_700_000_000
SECRET = "merchant-secret-key"
MD5 = Params(algorithm="md5")
V2_PAYOUT = Params(key_suffix="", nested="sorted_compact", encoding="base64")
SECRETS = KeyRing(secrets=(Secret.of(SECRET),))

# Document 000: a collection notification (the query response fields, status 2).
COLLECT = (
    b'{"orderId":"M20240201001","orderNo":"P1752664386848723000","amount":"150.0000",'
    b'"actualAmount":"150.0000","fee":"0.5","status":2,"payTime":"2025-12-03 17:07:48",'
    b'"errorMsg":""}'
)
COLLECT_CANONICAL = (
    "actualAmount=150.0000&amount=150.0000&fee=0.5&orderId=M20240201001"
    "&orderNo=P1752664386848723000&payTime=2025-12-03 17:07:48&status=2"
)

# Document 002: the query-order response's data object (the notification body).
PAYOUT = json.dumps(
    {
        "merchantId": 2,
        "appId": "app-caf118dc-4e23-4ced-ab23-8a3f65d5071a",
        "merchantOrderNo": "wendjfdsj",
        "orderNo": "1752664386848723000",
        "channelName": "xpay",
        "tokenSymbol": "USD",
        "tokenCount": "1",
        "tokenFeeCount": "",
        "currencyId": "P575ItNeMxM6fy6zhbnrlezYlvQnHMLZ",
        "payHash": "",
        "transactionID": "",
        "receiver": "0xB0c5852ff023291D0de6333c9155b2f884368559",
        "state": "DONE_PAYMENT",
        "extra": '{"channel_pay_type":"cards","description":"xxxx"}',
        "payTime": 0,
    },
    separators=(",", ":"),
).encode()
PAYOUT_CANONICAL = (
    "appId=app-caf118dc-4e23-4ced-ab23-8a3f65d5071a&channelName=xpay"
    "&currencyId=P575ItNeMxM6fy6zhbnrlezYlvQnHMLZ"
    '&extra={"channel_pay_type":"cards","description":"xxxx"}'
    "&merchantId=2&merchantOrderNo=wendjfdsj&orderNo=1752664386848723000&payTime=0"
    "&receiver=0xB0c5852ff023291D0de6333c9155b2f884368559&state=DONE_PAYMENT"
    "&tokenCount=1&tokenSymbol=USD"
)


def with_sign(body: bytes, signature: str, field: str = "sign") -> bytes:
    """Append the sign member by hand (the body ends with its closing brace)."""
    assert body.endswith(b"}")
    separator = b"," if body != b"{}" else b""
    return body[:-1] + separator + f'"{field}":"{signature}"'.encode() + b"}"


def md5_upper(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest().upper()


def rsa_base64(key: rsa.RSAPrivateKey, text: str) -> str:
    raw = key.sign(text.encode(), padding.PKCS1v15(), hashes.SHA256())
    return base64.b64encode(raw).decode()


@pytest.fixture(scope="module")
def rsa_ring(rsa_key: rsa.RSAPrivateKey) -> KeyRing:
    return KeyRing(
        secrets=(Secret.of(SECRET),), public_keys=(rsa_key.public_key(),), private_key=rsa_key
    )


class TestDocumentVectors:
    def test_collect_pay_md5_upper_with_key(self) -> None:
        signature = md5_upper(COLLECT_CANONICAL + "&key=" + SECRET)
        body = with_sign(COLLECT, signature)
        assert sign_field.verify(body, {}, MD5, SECRETS, NOW).key_index == 0

    def test_collect_pay_default_rsa_with_key(
        self, rsa_key: rsa.RSAPrivateKey, rsa_ring: KeyRing
    ) -> None:
        body = with_sign(COLLECT, rsa_base64(rsa_key, COLLECT_CANONICAL + "&key=" + SECRET))
        assert sign_field.verify(body, {}, Params(), rsa_ring, NOW).key_index == 0

    def test_collect_pay_rsa_needs_the_secret_too(
        self, rsa_key: rsa.RSAPrivateKey, rsa_ring: KeyRing
    ) -> None:
        body = with_sign(COLLECT, rsa_base64(rsa_key, COLLECT_CANONICAL))
        with pytest.raises(SignatureMismatch):
            sign_field.verify(body, {}, Params(), rsa_ring, NOW)

    def test_v2_payout_rsa(self, rsa_key: rsa.RSAPrivateKey) -> None:
        keys = KeyRing(public_keys=(rsa_key.public_key(),))
        body = with_sign(PAYOUT, rsa_base64(rsa_key, PAYOUT_CANONICAL))
        assert sign_field.verify(body, {}, V2_PAYOUT, keys, NOW).key_index == 0

    def test_v2_payout_hmac_base64(self) -> None:
        digest = hmac.new(SECRET.encode(), PAYOUT_CANONICAL.encode(), hashlib.sha256).digest()
        body = with_sign(PAYOUT, base64.b64encode(digest).decode())
        params = Params(
            algorithm="hmac-sha256", key_suffix="", nested="sorted_compact", encoding="base64"
        )
        assert sign_field.verify(body, {}, params, SECRETS, NOW).key_index == 0


class TestCanonicalString:
    """Each case: a body and the string its md5 ``sign`` is computed over (before ``&key=``)."""

    @pytest.mark.parametrize(
        ("body", "canonical"),
        [
            pytest.param(
                b'{"b":null,"a":"x","c":"","d":" "}', "a=x&d= ", id="null-and-empty-skipped"
            ),
            pytest.param(
                '{"name":"Дональд Трамп","city":"東京","e":"\\u00e9"}'.encode(),
                "city=東京&e=é&name=Дональд Трамп",
                id="non-ascii-and-escapes-decoded",
            ),
            pytest.param(
                b'{"a":"line\\nbreak \\"q\\" &x"}',
                'a=line\nbreak "q" &x',
                id="string-escapes-decoded",
            ),
            pytest.param(
                b'{"a":150,"b":150.0,"c":1.50,"d":1e2,"e":-0.0,"f":1.5e1,"g":0.1,"h":-2.50}',
                "a=150&b=150&c=1.50&d=100&e=0&f=15&g=0.1&h=-2.50",
                id="numbers",
            ),
            pytest.param(
                b'{"big":12345678901234567890123456789.000,"small":1.25e1}',
                "big=12345678901234567890123456789&small=1.25e1",
                id="numbers-never-through-floats",
            ),
            pytest.param(b'{"t":true,"f":false}', "f=false&t=true", id="booleans"),
            pytest.param(
                b'{"orderId":"1","addedLater":"v","status":2}',
                "addedLater=v&orderId=1&status=2",
                id="unknown-fields-signed",
            ),
            pytest.param(
                '{"b":"1","B":"2","_":"3","é":"4","a":"5","\uff01":"6","\U0001f600":"7"}'.encode(),
                "B=2&_=3&a=5&b=1&é=4&\uff01=6&\U0001f600=7",
                id="keys-in-utf8-byte-order",
            ),
            pytest.param(
                b'{\n  "id": "1",\n  "extra": {"z": 1, "a": [1.0, "x", null]},\n  "list": [],\n  "o": {}\n}',
                'extra={"z": 1, "a": [1.0, "x", null]}&id=1&list=[]&o={}',
                id="nested-raw-as-in-text",
            ),
        ],
    )
    def test_raw(self, body: bytes, canonical: str) -> None:
        signed = with_sign(body.rstrip(b"\n"), md5_upper(canonical + "&key=" + SECRET))
        assert sign_field.verify(signed, {}, MD5, SECRETS, NOW).key_index == 0

    @pytest.mark.parametrize(
        ("body", "canonical"),
        [
            pytest.param(
                b'{"id":"1","extra":{"z": 1, "a": [1.0, "x", null], "m": {"b": 2.50, "a": true}}}',
                'extra={"a":[1,"x",null],"m":{"a":true,"b":2.50},"z":1}&id=1',
                id="sorted-compact",
            ),
            pytest.param(
                '{"extra":{"k":"é\\"\\n","é":"b","Z":"a"}}'.encode(),
                'extra={"Z":"a","k":"é\\"\\n","é":"b"}',
                id="sorted-compact-strings",
            ),
        ],
    )
    def test_sorted_compact(self, body: bytes, canonical: str) -> None:
        params = Params(algorithm="md5", nested="sorted_compact")
        signed = with_sign(body, md5_upper(canonical + "&key=" + SECRET))
        assert sign_field.verify(signed, {}, params, SECRETS, NOW).key_index == 0

    def test_raw_and_sorted_compact_differ(self) -> None:
        body = b'{"extra":{"z":1,"a":2}}'
        raw_signed = with_sign(body, md5_upper('extra={"z":1,"a":2}&key=' + SECRET))
        sorted_params = Params(algorithm="md5", nested="sorted_compact")
        assert sign_field.verify(raw_signed, {}, MD5, SECRETS, NOW)
        with pytest.raises(SignatureMismatch):
            sign_field.verify(raw_signed, {}, sorted_params, SECRETS, NOW)


class TestFailures:
    def signed(self, body: bytes = COLLECT) -> bytes:
        return with_sign(body, md5_upper(COLLECT_CANONICAL + "&key=" + SECRET))

    def test_tampered_body(self) -> None:
        body = self.signed().replace(b'"fee":"0.5"', b'"fee":"0.1"')
        with pytest.raises(SignatureMismatch):
            sign_field.verify(body, {}, MD5, SECRETS, NOW)

    def test_added_field(self) -> None:
        body = self.signed().replace(b'"status":2', b'"status":2,"note":"x"')
        with pytest.raises(SignatureMismatch):
            sign_field.verify(body, {}, MD5, SECRETS, NOW)

    def test_tampered_signature(self) -> None:
        signature = md5_upper(COLLECT_CANONICAL + "&key=" + SECRET)
        tampered = ("A" if signature[0] != "A" else "B") + signature[1:]
        with pytest.raises(SignatureMismatch):
            sign_field.verify(with_sign(COLLECT, tampered), {}, MD5, SECRETS, NOW)

    def test_wrong_secret(self) -> None:
        keys = KeyRing(secrets=(Secret.of("another-key"),))
        with pytest.raises(SignatureMismatch):
            sign_field.verify(self.signed(), {}, MD5, keys, NOW)

    def test_rotated_secret_second_matches(self) -> None:
        keys = KeyRing(secrets=(Secret.of("new-key"), Secret.of(SECRET)))
        assert sign_field.verify(self.signed(), {}, MD5, keys, NOW).key_index == 1

    def test_missing_field(self) -> None:
        with pytest.raises(MissingSignature):
            sign_field.verify(COLLECT, {}, MD5, SECRETS, NOW)

    @pytest.mark.parametrize("value", [b'""', b"null"])
    def test_empty_field(self, value: bytes) -> None:
        body = COLLECT[:-1] + b',"sign":' + value + b"}"
        with pytest.raises(MissingSignature):
            sign_field.verify(body, {}, MD5, SECRETS, NOW)

    def test_field_not_a_string(self) -> None:
        body = COLLECT[:-1] + b',"sign":12345}'
        with pytest.raises(MalformedSignature):
            sign_field.verify(body, {}, MD5, SECRETS, NOW)

    def test_bad_hex(self) -> None:
        with pytest.raises(MalformedSignature):
            sign_field.verify(with_sign(COLLECT, "XY" * 16), {}, MD5, SECRETS, NOW)

    def test_wrong_length(self) -> None:
        short = md5_upper(COLLECT_CANONICAL + "&key=" + SECRET)[:30]
        with pytest.raises(MalformedSignature):
            sign_field.verify(with_sign(COLLECT, short), {}, MD5, SECRETS, NOW)

    def test_sha256_digest_given_for_md5(self) -> None:
        digest = hashlib.sha256((COLLECT_CANONICAL + "&key=" + SECRET).encode()).hexdigest()
        with pytest.raises(MalformedSignature):
            sign_field.verify(with_sign(COLLECT, digest.upper()), {}, MD5, SECRETS, NOW)

    @pytest.mark.parametrize(
        "body",
        [
            pytest.param(b"", id="empty"),
            pytest.param(b"not json", id="not-json"),
            pytest.param(b'[{"sign":"AA"}]', id="array"),
            pytest.param(b'"{}"', id="string"),
            pytest.param(b'{"a":"1","a":"2","sign":"AA"}', id="duplicate-key"),
            pytest.param(b'{"a":{"b":1,"b":2},"sign":"AA"}', id="duplicate-nested-key"),
            pytest.param(b'{"a":"1",}', id="trailing-comma"),
            pytest.param(b'{"a":"1"} {}', id="trailing-data"),
            pytest.param(b'{"a":NaN,"sign":"AA"}', id="nan"),
            pytest.param(b'{"a" "1"}', id="no-colon"),
            pytest.param(b'{a:"1"}', id="unquoted-key"),
            pytest.param(b'{"a":"1" "b":"2"}', id="no-comma"),
            pytest.param(b'{"a":"\xff","sign":"AA"}', id="invalid-utf8"),
            pytest.param(b'{"a":"\\ud800","sign":"AA"}', id="lone-surrogate"),
            pytest.param(b'{"a":1e5000,"sign":"AA"}', id="integral-too-long"),
            pytest.param(b'{"a":' + b"[" * 100_000 + b"]" * 100_000 + b',"sign":"AA"}', id="deep"),
        ],
    )
    def test_malformed_body(self, body: bytes) -> None:
        # A signature of the right shape, so that the body is what gets refused (a wrongly
        # shaped one is refused before the body is read: see TestBoundedWork).
        shaped = body.replace(b'"sign":"AA"', b'"sign":"' + b"A" * 32 + b'"')
        with pytest.raises(MalformedBody):
            sign_field.verify(shaped, {}, MD5, SECRETS, NOW)

    def test_malformed_body_is_a_400(self) -> None:
        assert MalformedBody.status == 400


class TestCase:
    SIGNED_STRING = COLLECT_CANONICAL + "&key=" + SECRET

    def test_upper_accepts_upper(self) -> None:
        body = with_sign(COLLECT, md5_upper(self.SIGNED_STRING))
        assert sign_field.verify(body, {}, MD5, SECRETS, NOW)

    def test_upper_refuses_lower(self) -> None:
        body = with_sign(COLLECT, md5_upper(self.SIGNED_STRING).lower())
        with pytest.raises(MalformedSignature):
            sign_field.verify(body, {}, MD5, SECRETS, NOW)

    def test_lower_accepts_lower(self) -> None:
        body = with_sign(COLLECT, md5_upper(self.SIGNED_STRING).lower())
        assert sign_field.verify(body, {}, Params(algorithm="md5", case="lower"), SECRETS, NOW)

    def test_lower_refuses_upper(self) -> None:
        body = with_sign(COLLECT, md5_upper(self.SIGNED_STRING))
        with pytest.raises(MalformedSignature):
            sign_field.verify(body, {}, Params(algorithm="md5", case="lower"), SECRETS, NOW)

    @pytest.mark.parametrize("case", ["upper", "lower"])
    def test_sign_writes_the_case(self, case: Literal["upper", "lower"]) -> None:
        params = Params(algorithm="md5", case=case)
        signature = json.loads(sign_field.sign(COLLECT, params, SECRETS, NOW).body)["sign"]
        expected = md5_upper(self.SIGNED_STRING)
        assert signature == (expected if case == "upper" else expected.lower())


class TestAlgorithmsAndEncodings:
    def test_sha256_hex(self) -> None:
        digest = hashlib.sha256((COLLECT_CANONICAL + "&key=" + SECRET).encode()).hexdigest()
        body = with_sign(COLLECT, digest.upper())
        assert sign_field.verify(body, {}, Params(algorithm="sha256"), SECRETS, NOW)

    def test_hmac_hex_with_key_suffix(self) -> None:
        message = (COLLECT_CANONICAL + "&key=" + SECRET).encode()
        digest = hmac.new(SECRET.encode(), message, hashlib.sha256).hexdigest()
        body = with_sign(COLLECT, digest.upper())
        assert sign_field.verify(body, {}, Params(algorithm="hmac-sha256"), SECRETS, NOW)

    def test_hmac_without_key_suffix(self) -> None:
        digest = hmac.new(SECRET.encode(), COLLECT_CANONICAL.encode(), hashlib.sha256)
        body = with_sign(COLLECT, digest.hexdigest().upper())
        with_suffix = Params(algorithm="hmac-sha256")
        without_suffix = Params(algorithm="hmac-sha256", key_suffix="")
        assert sign_field.verify(body, {}, without_suffix, SECRETS, NOW)
        with pytest.raises(SignatureMismatch):
            sign_field.verify(body, {}, with_suffix, SECRETS, NOW)

    def test_hmac_base64(self) -> None:
        digest = hmac.new(SECRET.encode(), COLLECT_CANONICAL.encode(), hashlib.sha256).digest()
        body = with_sign(COLLECT, base64.b64encode(digest).decode())
        params = Params(algorithm="hmac-sha256", key_suffix="", encoding="base64")
        assert sign_field.verify(body, {}, params, SECRETS, NOW)

    def test_hmac_bad_base64(self) -> None:
        params = Params(algorithm="hmac-sha256", key_suffix="", encoding="base64")
        with pytest.raises(MalformedSignature):
            sign_field.verify(with_sign(COLLECT, "%%%%"), {}, params, SECRETS, NOW)

    def test_custom_key_suffix(self) -> None:
        body = with_sign(COLLECT, md5_upper(COLLECT_CANONICAL + "&secret=" + SECRET))
        params = Params(algorithm="md5", key_suffix="&secret=")
        assert sign_field.verify(body, {}, params, SECRETS, NOW)
        with pytest.raises(SignatureMismatch):
            sign_field.verify(body, {}, MD5, SECRETS, NOW)

    @pytest.mark.parametrize("algorithm", ["md5", "sha256"])
    def test_unkeyed_digest_is_refused(self, algorithm: sign_field.Algorithm) -> None:
        with pytest.raises(ValueError, match="key_suffix"):
            Params(algorithm=algorithm, key_suffix="")

    def test_unknown_algorithm_is_refused(self) -> None:
        with pytest.raises(ValueError, match="algorithm"):
            Params(algorithm="sha1")  # type: ignore[arg-type]

    def test_custom_sign_field(self) -> None:
        body = with_sign(COLLECT, md5_upper(COLLECT_CANONICAL + "&key=" + SECRET), "signature")
        params = Params(algorithm="md5", sign_field="signature")
        assert sign_field.verify(body, {}, params, SECRETS, NOW)
        with pytest.raises(MissingSignature):
            sign_field.verify(body, {}, MD5, SECRETS, NOW)


class TestRsa:
    def test_tampered_body(self, rsa_key: rsa.RSAPrivateKey) -> None:
        keys = KeyRing(public_keys=(rsa_key.public_key(),))
        body = with_sign(PAYOUT, rsa_base64(rsa_key, PAYOUT_CANONICAL))
        with pytest.raises(SignatureMismatch):
            sign_field.verify(body.replace(b"DONE_PAYMENT", b"FAILED"), {}, V2_PAYOUT, keys, NOW)

    def test_tampered_signature(self, rsa_key: rsa.RSAPrivateKey) -> None:
        keys = KeyRing(public_keys=(rsa_key.public_key(),))
        raw = bytearray(
            rsa_key.sign(PAYOUT_CANONICAL.encode(), padding.PKCS1v15(), hashes.SHA256())
        )
        raw[10] ^= 1
        body = with_sign(PAYOUT, base64.b64encode(bytes(raw)).decode())
        with pytest.raises(SignatureMismatch):
            sign_field.verify(body, {}, V2_PAYOUT, keys, NOW)

    def test_wrong_key(self, rsa_key: rsa.RSAPrivateKey, other_rsa_key: rsa.RSAPrivateKey) -> None:
        keys = KeyRing(public_keys=(other_rsa_key.public_key(),))
        body = with_sign(PAYOUT, rsa_base64(rsa_key, PAYOUT_CANONICAL))
        with pytest.raises(SignatureMismatch):
            sign_field.verify(body, {}, V2_PAYOUT, keys, NOW)

    def test_rotated_key_second_matches(
        self, rsa_key: rsa.RSAPrivateKey, other_rsa_key: rsa.RSAPrivateKey
    ) -> None:
        keys = KeyRing(public_keys=(other_rsa_key.public_key(), rsa_key.public_key()))
        body = with_sign(PAYOUT, rsa_base64(rsa_key, PAYOUT_CANONICAL))
        assert sign_field.verify(body, {}, V2_PAYOUT, keys, NOW).key_index == 1

    def test_rotated_secret_with_key_suffix(self, rsa_key: rsa.RSAPrivateKey) -> None:
        # key_index is the public key's position; the secret that matched is not reported.
        keys = KeyRing(
            secrets=(Secret.of("new-key"), Secret.of(SECRET)),
            public_keys=(rsa_key.public_key(),),
        )
        body = with_sign(COLLECT, rsa_base64(rsa_key, COLLECT_CANONICAL + "&key=" + SECRET))
        assert sign_field.verify(body, {}, Params(), keys, NOW).key_index == 0

    def test_bad_base64(self, rsa_key: rsa.RSAPrivateKey) -> None:
        keys = KeyRing(public_keys=(rsa_key.public_key(),))
        with pytest.raises(MalformedSignature):
            sign_field.verify(with_sign(PAYOUT, "not base64!"), {}, V2_PAYOUT, keys, NOW)

    def test_wrong_length(self, rsa_key: rsa.RSAPrivateKey) -> None:
        keys = KeyRing(public_keys=(rsa_key.public_key(),))
        short = base64.b64encode(b"\x01" * 255).decode()
        with pytest.raises(MalformedSignature):
            sign_field.verify(with_sign(PAYOUT, short), {}, V2_PAYOUT, keys, NOW)

    def test_urlsafe_unpadded_base64_accepted(self, rsa_key: rsa.RSAPrivateKey) -> None:
        keys = KeyRing(public_keys=(rsa_key.public_key(),))
        raw = rsa_key.sign(PAYOUT_CANONICAL.encode(), padding.PKCS1v15(), hashes.SHA256())
        body = with_sign(PAYOUT, base64.urlsafe_b64encode(raw).decode().rstrip("="))
        assert sign_field.verify(body, {}, V2_PAYOUT, keys, NOW)

    def test_wrong_key_type(
        self, rsa_key: rsa.RSAPrivateKey, ed_key: ed25519.Ed25519PrivateKey
    ) -> None:
        keys = KeyRing(public_keys=(rsa_key.public_key(), ed_key.public_key()))
        body = with_sign(PAYOUT, rsa_base64(rsa_key, PAYOUT_CANONICAL))
        with pytest.raises(UnusableKey):
            sign_field.verify(body, {}, V2_PAYOUT, keys, NOW)

    def test_sign_with_wrong_private_key_type(self, ed_key: ed25519.Ed25519PrivateKey) -> None:
        with pytest.raises(UnusableKey):
            sign_field.sign(PAYOUT, V2_PAYOUT, KeyRing(private_key=ed_key), NOW)


class TestAppId:
    PARAMS = Params(algorithm="md5", app_id="app-caf118dc", app_id_header="app-id")

    def body(self) -> bytes:
        return with_sign(COLLECT, md5_upper(COLLECT_CANONICAL + "&key=" + SECRET))

    def test_matching_header(self) -> None:
        headers = {"app-id": "app-caf118dc"}
        assert sign_field.verify(self.body(), headers, self.PARAMS, SECRETS, NOW)

    def test_other_app_id(self) -> None:
        with pytest.raises(AppIdMismatch):
            sign_field.verify(self.body(), {"app-id": "app-other"}, self.PARAMS, SECRETS, NOW)

    def test_missing_header(self) -> None:
        with pytest.raises(AppIdMismatch):
            sign_field.verify(self.body(), {}, self.PARAMS, SECRETS, NOW)

    def test_not_checked_when_unset(self) -> None:
        assert sign_field.verify(self.body(), {"app-id": "anything"}, MD5, SECRETS, NOW)

    def test_sign_sends_it(self) -> None:
        signed = sign_field.sign(COLLECT, self.PARAMS, SECRETS, NOW)
        assert signed.headers == {"app-id": "app-caf118dc"}
        assert sign_field.verify(signed.body, signed.headers, self.PARAMS, SECRETS, NOW)


class TestSign:
    def test_appends_last_member_and_keeps_other_bytes(self) -> None:
        pretty = b'{\n  "orderId": "M1",\n  "amount": 150.0000,\n  "extra": {"b": 1}\n}\n'
        signed = sign_field.sign(pretty, MD5, SECRETS, NOW)
        expected = md5_upper('amount=150&extra={"b": 1}&orderId=M1&key=' + SECRET)
        assert signed.body == pretty.replace(b"}\n}", b'},"sign":"' + expected.encode() + b'"\n}')

    def test_empty_object(self) -> None:
        signed = sign_field.sign(b"{}", MD5, SECRETS, NOW)
        assert signed.body == b'{"sign":"' + md5_upper("&key=" + SECRET).encode() + b'"}'

    def test_refuses_a_body_already_signed(self) -> None:
        with pytest.raises(MalformedBody):
            sign_field.sign(b'{"a":"1","sign":"x"}', MD5, SECRETS, NOW)

    @pytest.mark.parametrize(
        "params",
        [
            Params(),
            Params(algorithm="md5", case="lower"),
            Params(algorithm="sha256"),
            Params(algorithm="hmac-sha256", encoding="base64"),
            V2_PAYOUT,
        ],
        ids=["rsa-key-suffix", "md5-lower", "sha256", "hmac-base64", "v2-payout"],
    )
    def test_round_trip(self, params: Params, rsa_ring: KeyRing) -> None:
        signed = sign_field.sign(PAYOUT, params, rsa_ring, NOW)
        assert sign_field.verify(signed.body, signed.headers, params, rsa_ring, NOW)


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        (Params(), {"public_keys", "secrets"}),
        (V2_PAYOUT, {"public_keys"}),
        (MD5, {"secrets"}),
        (Params(algorithm="hmac-sha256", key_suffix=""), {"secrets"}),
    ],
    ids=["rsa-key-suffix", "rsa", "md5", "hmac"],
)
def test_required_keys(params: Params, expected: set[str]) -> None:
    assert sign_field.required_keys(params) == expected


def md5_signed(body: bytes, canonical: str, suffix: str = "&key=") -> bytes:
    return with_sign(body, md5_upper(canonical + suffix + SECRET))


class TestOneSignatureOneMeaning:
    """Every body that verifies under one signature has the same signed view, or is refused."""

    ORIGINAL = b'{"orderNo":"P1","actualAmount":"100","status":2,"orderId":"A","errorMsg":""}'
    CANONICAL = "actualAmount=100&orderId=A&orderNo=P1&status=2"

    @pytest.mark.parametrize(
        "respelled",
        [
            pytest.param(
                b'{"orderNo":"P1","actualAmount":100.0,"status":2,"orderId":"A"}', id="100.0"
            ),
            pytest.param(
                b'{"orderNo":"P1","actualAmount":1e2,"status":"2","orderId":"A"}', id="1e2"
            ),
            pytest.param(
                b'{"orderNo":"P1","actualAmount":1.00E+2,"status":2.0,"orderId":"A"}', id="1.00E+2"
            ),
            pytest.param(
                b'{"orderId":"\\u0041","status":2,"actualAmount":"100","orderNo":"P1","fee":null,"x":""}',
                id="escapes-order-nulls",
            ),
            pytest.param(
                b' {\n "orderNo" : "P1" , "actualAmount":"100","status":2,"orderId":"A"}',
                id="spaces",
            ),
        ],
    )
    def test_respellings_verify_with_the_same_view(self, respelled: bytes) -> None:
        signature = md5_upper(self.CANONICAL + "&key=" + SECRET)
        original, other = with_sign(self.ORIGINAL, signature), with_sign(respelled, signature)
        assert sign_field.verify(other, {}, MD5, SECRETS, NOW)
        assert sign_field.read(other, MD5) == sign_field.read(original, MD5)
        assert sign_field.read(other, MD5).members == {
            "actualAmount": "100",
            "orderId": "A",
            "orderNo": "P1",
            "status": "2",
        }

    def test_null_and_empty_members_are_absent_from_the_view(self) -> None:
        view = sign_field.read(b'{"a":"1","actualAmount":null,"b":"","sign":"X"}', MD5)
        assert view.members == {"a": "1"}

    @pytest.mark.parametrize(
        ("body", "canonical"),
        [
            # Two members merged into one value, and one value split into two members.
            pytest.param(b'{"orderId":"A&orderNo=B"}', "orderId=A&orderNo=B", id="merged"),
            pytest.param(b'{"a":"1&b=","c":"2"}', "a=1&b=&c=2", id="empty-value-boundary"),
            pytest.param(b'{"a":"x & y = z"}', "a=x & y = z", id="spaced"),
            pytest.param(b'{"a&b":"1"}', "a&b=1", id="ampersand-in-name"),
            pytest.param(b'{"a=b":"1"}', "a=b=1", id="equals-in-name"),
            pytest.param(b'{"n":{"k":"v&w=1"}}', 'n={"k":"v&w=1"}', id="nested"),
        ],
    )
    def test_a_body_that_could_re_split_is_refused(self, body: bytes, canonical: str) -> None:
        # Correctly signed, so the refusal is the body's, not the signature's.
        with pytest.raises(AmbiguousBody):
            sign_field.verify(md5_signed(body, canonical), {}, MD5, SECRETS, NOW)
        with pytest.raises(AmbiguousBody):
            sign_field.read(body, MD5)

    @pytest.mark.parametrize(
        ("body", "canonical"),
        [
            pytest.param(b'{"a":"Tom & Jerry"}', "a=Tom & Jerry", id="ampersand-alone"),
            pytest.param(b'{"a":"YWJj=="}', "a=YWJj==", id="equals-alone"),
            pytest.param(b'{"a":"x=1&y"}', "a=x=1&y", id="equals-before-ampersand"),
            pytest.param(b'{"a":"1&&"}', "a=1&&", id="ampersands"),
        ],
    )
    def test_values_that_cannot_re_split_are_read_as_sent(
        self, body: bytes, canonical: str
    ) -> None:
        assert sign_field.verify(md5_signed(body, canonical), {}, MD5, SECRETS, NOW)
        assert sign_field.read(body, MD5).members == json.loads(body)

    def test_the_view_of_a_nested_member_is_its_signed_text(self) -> None:
        body = b'{"n":{"b":1.0,"a":[1e1,"x"]},"s":"t"}'
        compact = Params(algorithm="md5", nested="sorted_compact")
        assert sign_field.read(body, compact).members == {"n": '{"a":[10,"x"],"b":1}', "s": "t"}
        assert sign_field.read(body, MD5).members == {"n": '{"b":1.0,"a":[1e1,"x"]}', "s": "t"}


class TestBoundedWork:
    """The signature's shape is checked before the body's signed string is built, and the
    string's building is bounded: a hostile unsigned request stays cheap."""

    TOO_MANY = b"{" + b",".join(b'"a%d":1' % index for index in range(300)) + b"}"

    @pytest.mark.parametrize(
        ("signature", "params", "keys"),
        [
            pytest.param("AA", MD5, SECRETS, id="digest-too-short"),
            pytest.param("a" * 32, MD5, SECRETS, id="digest-wrong-case"),
            pytest.param("!!", Params(), KeyRing(public_keys=()), id="rsa-not-base64"),
        ],
    )
    def test_a_wrongly_shaped_signature_is_refused_before_the_body_is_built(
        self, signature: str, params: Params, keys: KeyRing, rsa_key: rsa.RSAPrivateKey
    ) -> None:
        if params.algorithm == "rsa-sha256":
            keys = KeyRing(secrets=SECRETS.secrets, public_keys=(rsa_key.public_key(),))
        # Writing this body's signed string out would be refused (and cost); the signature is
        # refused first.
        costly = b'{"a":1e5000,"sign":"' + signature.encode() + b'"}'
        with pytest.raises(MalformedSignature):
            sign_field.verify(costly, {}, params, keys, NOW)

    def test_an_rsa_signature_of_the_wrong_length_is_refused_before_the_body_is_built(
        self, rsa_key: rsa.RSAPrivateKey
    ) -> None:
        keys = KeyRing(secrets=SECRETS.secrets, public_keys=(rsa_key.public_key(),))
        body = b'{"a":1e5000,"sign":"' + base64.b64encode(b"x" * 64) + b'"}'
        with pytest.raises(MalformedSignature, match="wrong length"):
            sign_field.verify(body, {}, Params(), keys, NOW)

    @pytest.mark.parametrize(
        ("body", "message"),
        [
            pytest.param(TOO_MANY, "more than", id="members-and-values"),
            pytest.param(
                b"{" + b",".join(b'"a%d":1' % index for index in range(257)) + b"}",
                "more than 256 members",
                id="members",
            ),
            pytest.param(b'{"a":[' + b"0," * 1100 + b"0]}", "JSON values", id="values"),
            pytest.param(b'{"a":"' + b"," * 1100 + b'"}', "JSON values", id="commas-in-strings"),
            pytest.param(b'{"a":' + b"[" * 40 + b"]" * 40 + b"}", "deeper than 32", id="depth"),
            pytest.param(b'{"a":1e64}', "more than 64 digits", id="number-65-digits"),
            pytest.param(b'{"a":1e4299}', "more than 64 digits", id="number-4300-digits"),
            pytest.param(
                b"{" + b",".join(b'"a%d":1e60' % index for index in range(20)) + b"}",
                "twice the body",
                id="signed-string-twice-the-body",
            ),
        ],
    )
    def test_bounds(self, body: bytes, message: str) -> None:
        compact = Params(algorithm="md5", nested="sorted_compact")
        with pytest.raises(MalformedBody, match=message):
            sign_field.read(body, compact)
        shaped = body[:-1] + b',"sign":"' + b"A" * 32 + b'"}'
        with pytest.raises(MalformedBody, match=message):
            sign_field.verify(shaped, {}, compact, SECRETS, NOW)

    @pytest.mark.parametrize(
        "number",
        [b"1e999999999999999999999", b"-1.5e999999999999999999999", b"1e-999999999999999999999"],
    )
    def test_a_number_past_what_decimal_holds_is_a_malformed_body_before_any_signature_work(
        self, number: bytes, rsa_key: rsa.RSAPrivateKey
    ) -> None:
        """Unauthenticated: random signature bytes of the right length, so only the body's
        number stands between the request and the signature check (it was a 500)."""
        rsa_keys = KeyRing(secrets=SECRETS.secrets, public_keys=(rsa_key.public_key(),))
        for params, keys, signature in [
            (MD5, SECRETS, "AB" * 16),
            (V2_PAYOUT, SECRETS, base64.b64encode(b"x" * 32).decode()),
            (Params(), rsa_keys, base64.b64encode(b"x" * 256).decode()),
        ]:
            body = b'{"orderId":"M1","actualAmount":' + number + b',"sign":"'
            body += signature.encode() + b'"}'
            with pytest.raises(MalformedBody, match="out of range") as raised:
                sign_field.verify(body, {}, params, keys, NOW)
            assert raised.value.status == 400
            with pytest.raises(MalformedBody, match="out of range"):
                sign_field.read(body, params)

    def test_inside_the_bounds_numbers_are_written_out(self) -> None:
        assert sign_field.read(b'{"a":1e63}', MD5).members == {"a": "1" + "0" * 63}


class TestBareSecret:
    """``bare_secret``: the secret appended with no separator, ``<sorted string><secret>``."""

    BARE = Params(algorithm="md5", key_suffix="", bare_secret=True)

    def test_md5_of_the_string_and_the_secret(self) -> None:
        body = md5_signed(COLLECT, COLLECT_CANONICAL, suffix="")
        assert sign_field.verify(body, {}, self.BARE, SECRETS, NOW).key_index == 0

    def test_the_default_suffix_does_not_verify_a_bare_signature(self) -> None:
        body = md5_signed(COLLECT, COLLECT_CANONICAL, suffix="")
        with pytest.raises(SignatureMismatch):
            sign_field.verify(body, {}, MD5, SECRETS, NOW)
        with pytest.raises(SignatureMismatch):
            sign_field.verify(md5_signed(COLLECT, COLLECT_CANONICAL), {}, self.BARE, SECRETS, NOW)

    def test_sign_and_verify_round_trip(self, rsa_key: rsa.RSAPrivateKey) -> None:
        for params, keys in [
            (self.BARE, SECRETS),
            (
                Params(key_suffix="", bare_secret=True),
                KeyRing(
                    secrets=SECRETS.secrets,
                    public_keys=(rsa_key.public_key(),),
                    private_key=rsa_key,
                ),
            ),
        ]:
            signed = sign_field.sign(COLLECT, params, keys, NOW)
            assert sign_field.verify(signed.body, signed.headers, params, keys, NOW)
            assert sign_field.required_keys(params) >= {"secrets"}

    def test_options_that_contradict_each_other_are_refused(self) -> None:
        with pytest.raises(ValueError, match="key_suffix must be empty"):
            Params(algorithm="md5", bare_secret=True)
        with pytest.raises(ValueError, match="key_suffix or bare_secret"):
            Params(algorithm="md5", key_suffix="")

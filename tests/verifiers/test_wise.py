"""Wise's ``X-Signature-SHA256``: RSA-SHA256 over the body, with Wise's published keys.

The vector is Wise's own: transferwise/digital-signatures-examples at commit
c29c3625cbf2afe571b045cea2fd1a5d99764f6b,
``verify-webhook-signature/verify-signature.js`` (the Java and Ruby examples
carry the same values): its ``webhookBody`` string constant, copied byte for
byte to ``vectors/wise/transfer_state_change.json``, its ``signatureHeader``,
and its ``sandboxPubKey``, which is the sandbox key :mod:`verifiers.wise`
ships. Altered forms of it are refused one by one.
"""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from verifiers import wise
from verifiers.errors import MalformedSignature, MissingSignature, SignatureMismatch
from verifiers.keys import KeyRing, UnusableKey, load_public_key
from verifiers.wise import Params

VECTORS = Path(__file__).parent / "vectors" / "wise"
NOW = 1_700_000_000

BODY = (VECTORS / "transfer_state_change.json").read_bytes()
SIGNATURE = (
    "wKcKCYXAzxNgiu7xmoDm943NUni7Rz33QN8JkEA9dWSGebgndonabgSj18Y4C08OrwVmueGsED2s00M7DtJVcYKOS1i3"
    "G4TMVx+mgM3aL9djMBkQtiYNBFUd6wrPI7ZUNHv/TrlKSjTMc+6JFvUvJ7owY3z85e3I4jLRLJowMFvO8kvCJ60+1pY9w"
    "DwZvtZ//WS93LrwGjk9Dvwzpmu0w+P4J75tETT5qC3Uv0y5G2yO8SEoO3yNP/tg/BOli02niHb53vEOUWUb9bly6thnf"
    "MoXoiV/osoGxgF20R58RlvkAmezyyl1Sv542TfS2DpiwVnmjjjkCyXeSUcKookYLQ=="
)
SANDBOX = Params(environment="sandbox")
NO_KEYS = KeyRing()


def signed(signature: str = SIGNATURE) -> dict[str, str]:
    return {"x-signature-sha256": signature}


def test_the_vector_body_is_the_example_s() -> None:
    assert len(BODY) == 354
    assert BODY.startswith(b'{"data":{"resource":{"id":49983981,')
    assert BODY.endswith(b'"sent_at":"2021-08-23T10:12:50Z"}')


def test_wise_s_example_verifies_with_the_published_sandbox_key() -> None:
    assert wise.verify(BODY, signed(), SANDBOX, NO_KEYS, NOW).key_index == 0


def test_the_production_key_does_not_verify_a_sandbox_signature() -> None:
    with pytest.raises(SignatureMismatch):
        wise.verify(BODY, signed(), Params(), NO_KEYS, NOW)


def test_production_is_the_default() -> None:
    assert Params().environment == "production"


def test_the_shipped_keys_are_wise_s_2048_bit_rsa_keys() -> None:
    for pem in wise.PUBLISHED_KEYS.values():
        key = load_public_key(pem)
        assert isinstance(key, rsa.RSAPublicKey) and key.key_size == 2048
    assert wise.PUBLISHED_KEYS["production"] != wise.PUBLISHED_KEYS["sandbox"]


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(
            BODY.replace(b"incoming_payment_waiting", b"outgoing_payment_sent"), id="state"
        ),
        pytest.param(BODY.replace(b"49983981", b"49983982"), id="transfer-id"),
        pytest.param(BODY + b"\n", id="trailing-newline"),
        pytest.param(BODY.replace(b'":', b'": '), id="re-spaced"),
        pytest.param(b"", id="empty"),
    ],
)
def test_an_altered_body_is_refused(body: bytes) -> None:
    with pytest.raises(SignatureMismatch):
        wise.verify(body, signed(), SANDBOX, NO_KEYS, NOW)


def test_a_flipped_signature_bit_is_refused() -> None:
    raw = bytearray(base64.b64decode(SIGNATURE))
    raw[100] ^= 0x01
    with pytest.raises(SignatureMismatch):
        wise.verify(BODY, signed(base64.b64encode(raw).decode()), SANDBOX, NO_KEYS, NOW)


@pytest.mark.parametrize(
    ("signature", "error"),
    [
        pytest.param(SIGNATURE[:-4], MalformedSignature, id="truncated"),
        pytest.param(SIGNATURE.replace("+", "*"), MalformedSignature, id="not-base64"),
        pytest.param(base64.b64encode(b"\0" * 20).decode(), MalformedSignature, id="short"),
    ],
)
def test_a_malformed_signature_is_refused(signature: str, error: type[Exception]) -> None:
    with pytest.raises(error):
        wise.verify(BODY, signed(signature), SANDBOX, NO_KEYS, NOW)


def test_no_header_is_a_missing_signature() -> None:
    with pytest.raises(MissingSignature):
        wise.verify(BODY, {}, SANDBOX, NO_KEYS, NOW)


def test_configured_public_keys_replace_the_published_ones(rsa_key: rsa.RSAPrivateKey) -> None:
    ring = KeyRing(public_keys=(rsa_key.public_key(),), private_key=rsa_key)
    request = wise.sign(BODY, SANDBOX, ring, NOW)
    assert wise.verify(request.body, request.headers, SANDBOX, ring, NOW).key_index == 0
    # Wise's own signature no longer verifies: the configured key is the only one.
    with pytest.raises(SignatureMismatch):
        wise.verify(BODY, signed(), SANDBOX, KeyRing(public_keys=(rsa_key.public_key(),)), NOW)


def test_a_configured_key_of_another_kind_is_unusable(ed_key: ed25519.Ed25519PrivateKey) -> None:
    with pytest.raises(UnusableKey):
        wise.verify(BODY, signed(), SANDBOX, KeyRing(public_keys=(ed_key.public_key(),)), NOW)


def test_an_unknown_environment_is_refused() -> None:
    with pytest.raises(ValueError, match="environment"):
        Params(environment="live")  # type: ignore[arg-type]


def test_nothing_is_required_of_the_config() -> None:
    assert wise.required_keys(SANDBOX) == frozenset()

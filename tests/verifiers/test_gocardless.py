"""GoCardless: ``Webhook-Signature``, hex HMAC-SHA256 of the body; a refusal answers 498.

GoCardless is the ``hmac-header`` scheme with parameters. Vector from
gocardless/gocardless-pro-python at commit d5c83f375d8867d2980745ed1c510f264823d300,
``tests/webhooks_test.py`` (key and signature inline) over
``tests/fixtures/webhook_body.json``, copied byte for byte to
``vectors/gocardless/webhook_body.json``; the SDK test strips the file, and so
does this one. GoCardless documents 498 (Token Invalid) as the answer to a
webhook whose signature is invalid: ``refusal_status=498``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from verifiers import hmac_header
from verifiers.errors import (
    MalformedSignature,
    MissingSignature,
    SignatureMismatch,
    VerificationError,
)
from verifiers.hmac_header import Params
from verifiers.keys import KeyRing, Secret

VECTORS = Path(__file__).parent / "vectors" / "gocardless"
NOW = 1_700_000_000
PARAMS = Params(header="webhook-signature", refusal_status=498)
KEY = "ED7D658C-D8EB-4941-948B-3973214F2D49"
RING = KeyRing(secrets=(Secret.of(KEY),))
BODY = (VECTORS / "webhook_body.json").read_bytes().strip()
SIGNATURE = "2693754819d3e32d7e8fcb13c729631f316c6de8dc1cf634d6527f1c07276e7e"


def test_it_verifies_the_sdk_fixture() -> None:
    headers = {"webhook-signature": SIGNATURE}
    assert hmac_header.verify(BODY, headers, PARAMS, RING, NOW).key_index == 0


def test_it_raises_with_invalid_signature_and_answers_498() -> None:
    keys = KeyRing(secrets=(Secret.of("anotherkey"),))
    with pytest.raises(SignatureMismatch) as caught:
        hmac_header.verify(BODY, {"webhook-signature": SIGNATURE}, PARAMS, keys, NOW)
    assert caught.value.status == 498


@pytest.mark.parametrize(
    ("headers", "error"),
    [
        pytest.param({}, MissingSignature, id="missing"),
        pytest.param({"webhook-signature": "not hex"}, MalformedSignature, id="not-hex"),
        pytest.param({"webhook-signature": SIGNATURE[:40]}, MalformedSignature, id="short"),
    ],
)
def test_every_refusal_of_the_sender_answers_498(
    headers: dict[str, str], error: type[VerificationError]
) -> None:
    with pytest.raises(error) as caught:
        hmac_header.verify(BODY, headers, PARAMS, RING, NOW)
    assert caught.value.status == 498


def test_the_fixture_file_as_stored_does_not_verify() -> None:
    # The SDK test strips the file's trailing newline before signing: bytes are bytes.
    raw = (VECTORS / "webhook_body.json").read_bytes()
    assert raw != BODY
    with pytest.raises(SignatureMismatch):
        hmac_header.verify(raw, {"webhook-signature": SIGNATURE}, PARAMS, RING, NOW)


def test_other_profiles_keep_401() -> None:
    with pytest.raises(SignatureMismatch) as caught:
        hmac_header.verify(
            BODY, {"webhook-signature": "00" * 32}, Params("webhook-signature"), RING, NOW
        )
    assert caught.value.status == 401
    assert SignatureMismatch.status == 401  # the class keeps its answer


def test_sign_round_trip() -> None:
    signed = hmac_header.sign(BODY, PARAMS, RING, NOW)
    assert signed.headers == {"webhook-signature": SIGNATURE}


@pytest.mark.parametrize("status", [200, 301, 399, 500, 503])
def test_refusal_status_must_be_4xx(status: int) -> None:
    with pytest.raises(ValueError, match="refusal_status"):
        Params(refusal_status=status)

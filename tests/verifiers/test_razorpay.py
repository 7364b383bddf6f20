"""Razorpay: ``X-Razorpay-Signature``, hex HMAC-SHA256 of the exact body bytes.

Razorpay is the ``hmac-header`` scheme with parameters. Vector from
razorpay/razorpay-python at commit b56ac018bf023e2b244a73a4bda2ea861115edcf,
``tests/test_client_utility.py`` ``test_verify_webhook_signature`` (secret
``key_secret``, the test client's) over ``tests/mocks/fake_payment_authorized_webhook.json``,
copied byte for byte to ``vectors/razorpay/``: read whole, trailing newline included,
as the SDK test reads it (``mock_file``); stripped, it does not verify.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from verifiers import hmac_header
from verifiers.errors import MalformedSignature, SignatureMismatch
from verifiers.hmac_header import Params
from verifiers.keys import KeyRing, Secret

VECTORS = Path(__file__).parent / "vectors" / "razorpay"
NOW = 1_700_000_000
PARAMS = Params(header="x-razorpay-signature")
RING = KeyRing(secrets=(Secret.of("key_secret"),))
BODY = (VECTORS / "fake_payment_authorized_webhook.json").read_bytes()
SIGNATURE = "d60e67fd884556c045e9be7dad57903e33efc7172c17c6e3ef77db42d2b366e9"


def test_verify_webhook_signature() -> None:
    assert BODY.endswith(b"}\n")
    headers = {"x-razorpay-signature": SIGNATURE}
    assert hmac_header.verify(BODY, headers, PARAMS, RING, NOW).key_index == 0


def test_the_stripped_body_does_not_verify() -> None:
    with pytest.raises(SignatureMismatch):
        hmac_header.verify(BODY.strip(), {"x-razorpay-signature": SIGNATURE}, PARAMS, RING, NOW)


def test_verify_webhook_signature_with_exception() -> None:
    # The SDK's refused case: signature "test_signature" over an empty body.
    with pytest.raises(MalformedSignature):
        hmac_header.verify(b"", {"x-razorpay-signature": "test_signature"}, PARAMS, RING, NOW)


def test_the_api_key_id_is_not_the_secret() -> None:
    keys = KeyRing(secrets=(Secret.of("key_id"),))
    with pytest.raises(SignatureMismatch):
        hmac_header.verify(BODY, {"x-razorpay-signature": SIGNATURE}, PARAMS, keys, NOW)


def test_sign_round_trip() -> None:
    assert hmac_header.sign(BODY, PARAMS, RING, NOW).headers == {"x-razorpay-signature": SIGNATURE}

"""Coinbase Commerce: ``X-CC-Webhook-Signature``, hex HMAC-SHA256 of the body.

Coinbase Commerce is the ``hmac-header`` scheme with parameters. Vector from
coinbase/coinbase-commerce-python at commit 91af61acf8cae6390dac91220e0cb3aa93983ca8
(the repository's last, 2021), ``tests/test_webhook.py``: ``PAYLOAD_STR``, an
inline string constant there, copied byte for byte to
``vectors/coinbase/charge_created.json``; ``SIG_HEADER`` and ``SECRET`` inline.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from verifiers import hmac_header
from verifiers.errors import SignatureMismatch
from verifiers.hmac_header import Params
from verifiers.keys import KeyRing, Secret

VECTORS = Path(__file__).parent / "vectors" / "coinbase"
NOW = 1_700_000_000
PARAMS = Params(header="x-cc-webhook-signature")
RING = KeyRing(secrets=(Secret.of("30291a20-0bd1-4267-9b0f-e6e7b123c0bf"),))
BODY = (VECTORS / "charge_created.json").read_bytes()
SIGNATURE = "8be7742c7d372f08a6a3224edadf18a22b65fa9e28f3f2de97376cdaa092590d"


def test_success_signature_verification() -> None:
    headers = {"x-cc-webhook-signature": SIGNATURE}
    assert hmac_header.verify(BODY, headers, PARAMS, RING, NOW).key_index == 0


def test_fail_signature_verification() -> None:
    # The SDK's refused case: every '3' of the signature replaced by '1'.
    headers = {"x-cc-webhook-signature": SIGNATURE.replace("3", "1")}
    with pytest.raises(SignatureMismatch):
        hmac_header.verify(BODY, headers, PARAMS, RING, NOW)


def test_sign_round_trip() -> None:
    signed = hmac_header.sign(BODY, PARAMS, RING, NOW)
    assert signed.headers == {"x-cc-webhook-signature": SIGNATURE}

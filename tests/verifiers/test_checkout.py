"""Checkout.com: ``Cko-Signature``, hex HMAC-SHA256 of the body, and an optional
``Authorization`` value the merchant configures.

Checkout.com is the ``hmac-header`` scheme with parameters, its Authorization
value an entry of the key ring's ``authorizations``. Checkout.com publishes no
signature vector (none in its SDKs or docs): the known answer below was
computed outside Relay, with ``openssl dgst -sha256 -hmac
'cko-webhook-signature-key-demo' vectors/checkout/payment_approved.json``
(a body written for this test in the shape of Checkout.com's
``payment_approved`` example), and the rest are round trips.
"""

from __future__ import annotations

import hmac
from pathlib import Path

import pytest

from verifiers import hmac_header
from verifiers.errors import AuthorizationMismatch, SignatureMismatch
from verifiers.hmac_header import Params
from verifiers.keys import KeyRing, Secret

VECTORS = Path(__file__).parent / "vectors" / "checkout"
NOW = 1_700_000_000
PARAMS = Params(header="cko-signature")
KEY = "cko-webhook-signature-key-demo"
BODY = (VECTORS / "payment_approved.json").read_bytes()
KNOWN_ANSWER = "98b8bbc8a10275a397f66700f4f4a870a4b1f3c12bcbfb02509cc6e5a6468f3c"
AUTHORIZATION = "whk-auth-6b1c0e7d9f"
RING = KeyRing(secrets=(Secret.of(KEY),))
GUARDED = KeyRing(secrets=(Secret.of(KEY),), authorizations=(Secret.of(AUTHORIZATION),))


def test_known_answer() -> None:
    headers = {"cko-signature": KNOWN_ANSWER}
    assert hmac_header.verify(BODY, headers, PARAMS, RING, NOW).key_index == 0


def test_sign_round_trip() -> None:
    signed = hmac_header.sign(BODY, PARAMS, RING, NOW)
    assert signed.headers == {"cko-signature": KNOWN_ANSWER}
    assert hmac_header.verify(signed.body, signed.headers, PARAMS, RING, NOW)


def test_tampered_body() -> None:
    with pytest.raises(SignatureMismatch):
        hmac_header.verify(
            BODY.replace(b"6540", b"6541"), {"cko-signature": KNOWN_ANSWER}, PARAMS, RING, NOW
        )


def test_authorization_value_accepted() -> None:
    headers = {"cko-signature": KNOWN_ANSWER, "authorization": AUTHORIZATION}
    assert hmac_header.verify(BODY, headers, PARAMS, GUARDED, NOW)


def test_sign_sends_the_authorization_value() -> None:
    signed = hmac_header.sign(BODY, PARAMS, GUARDED, NOW)
    assert signed.headers == {"cko-signature": KNOWN_ANSWER, "authorization": AUTHORIZATION}
    assert hmac_header.verify(signed.body, signed.headers, PARAMS, GUARDED, NOW)


@pytest.mark.parametrize(
    "authorization",
    [None, "", "whk-auth-6b1c0e7d9", "whk-auth-6b1c0e7d9f ", "WHK-AUTH-6B1C0E7D9F"],
)
def test_authorization_missing_or_wrong_is_refused_before_the_signature(
    authorization: str | None,
) -> None:
    headers = {"cko-signature": "not even hex"}
    if authorization is not None:
        headers["authorization"] = authorization
    with pytest.raises(AuthorizationMismatch) as caught:
        hmac_header.verify(BODY, headers, PARAMS, GUARDED, NOW)
    assert AUTHORIZATION not in str(caught.value)


def test_authorization_rotation() -> None:
    keys = KeyRing(
        secrets=(Secret.of(KEY),),
        authorizations=(Secret.of("new-value"), Secret.of(AUTHORIZATION)),
    )
    for value in ("new-value", AUTHORIZATION):
        headers = {"cko-signature": KNOWN_ANSWER, "authorization": value}
        assert hmac_header.verify(BODY, headers, PARAMS, keys, NOW)


def test_authorization_is_compared_as_digests_in_constant_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[tuple[bytes, bytes]] = []
    compare = hmac.compare_digest

    def spy(left: bytes, right: bytes) -> bool:
        calls.append((left, right))
        return compare(left, right)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    headers = {"cko-signature": KNOWN_ANSWER, "authorization": "short"}
    with pytest.raises(AuthorizationMismatch):
        hmac_header.verify(BODY, headers, PARAMS, GUARDED, NOW)
    assert calls and all(len(left) == len(right) == 32 for left, right in calls)

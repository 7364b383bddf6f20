"""What every scheme module promises, checked over all of them.

Each module exports ``name``, a frozen slotted ``Params``, ``verify``, ``sign``,
``required_keys`` and ``checks_authorization`` (true to what ``verify`` does);
``sign`` output verifies; and a failure's message never carries a secret or the
signature the verifier expected.
"""

from __future__ import annotations

import dataclasses
import json
from types import ModuleType

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from verifiers import (
    adyen,
    braintree,
    ed25519_header,
    header_signature,
    hmac_header,
    paddle,
    paypal,
    sign_field,
    square,
    standard_webhooks,
    stripe,
    wise,
)
from verifiers.errors import AuthorizationMismatch, SignatureMismatch
from verifiers.keys import KeyRing, Secret

NOW = 1_700_000_000
BODY = b'{"orderId":"M1","status":2,"amount":"150.0000"}'
GOOD_SECRET = "whsec_Z29vZC1zZWNyZXQtdmFsdWU="  # also valid base64 for Standard Webhooks
BAD_SECRET = "whsec_b3RoZXItc2VjcmV0LXZhbHVl"

SCHEMES: list[tuple[ModuleType, object]] = [
    (hmac_header, hmac_header.Params()),
    (sign_field, sign_field.Params()),
    (sign_field, sign_field.Params(algorithm="md5")),
    (header_signature, header_signature.Params()),
    (header_signature, header_signature.Params(algorithm="hmac-sha256", encoding="hex")),
    (ed25519_header, ed25519_header.Params()),
    (standard_webhooks, standard_webhooks.Params()),
    (standard_webhooks, standard_webhooks.Params(version="v1a")),
    (sign_field, sign_field.Params(algorithm="md5", key_suffix="", bare_secret=True)),
    (stripe, stripe.Params()),
    (paddle, paddle.Params()),
    (square, square.Params(notification_url="https://relay.example/webhooks/square")),
    (adyen, adyen.Params()),
    (adyen, adyen.Params(form="payload")),
    (hmac_header, hmac_header.Params(header="webhook-signature", refusal_status=498)),
    (wise, wise.Params()),
    (braintree, braintree.Params(public_key="merchant-public-key")),
    (paypal, paypal.Params(webhook_id="WH-ID-1")),
]
# Adyen's items form signs a notification, not any body.
ADYEN_BODY = (
    b'{"live":"false","notificationItems":[{"NotificationRequestItem":{"pspReference":"P1",'
    b'"merchantAccountCode":"M","merchantReference":"R","amount":{"value":15000,'
    b'"currency":"EUR"},"eventCode":"AUTHORISATION","success":"true"}}]}'
)
IDS = [f"{module.name}:{index}" for index, (module, _) in enumerate(SCHEMES)]


def ring(
    secret: str,
    rsa_private: rsa.RSAPrivateKey,
    ed_private: ed25519.Ed25519PrivateKey,
    params: object,
) -> KeyRing:
    """Key material of the kind the scheme signs and verifies with."""
    uses_ed25519 = isinstance(params, ed25519_header.Params) or (
        isinstance(params, standard_webhooks.Params) and params.version == "v1a"
    )
    private = ed_private if uses_ed25519 else rsa_private
    if isinstance(params, adyen.Params):  # Adyen's keys are hex
        secret = secret.encode().hex()
    return KeyRing(
        secrets=(Secret.of(secret),), public_keys=(private.public_key(),), private_key=private
    )


def body_for(params: object) -> bytes:
    return ADYEN_BODY if isinstance(params, adyen.Params) and params.form == "items" else BODY


@pytest.mark.parametrize(("module", "params"), SCHEMES, ids=IDS)
def test_exports(module: ModuleType, params: object) -> None:
    assert isinstance(module.name, str) and module.name
    assert dataclasses.is_dataclass(module.Params)
    assert vars(module.Params)["__dataclass_params__"].frozen
    assert hasattr(module.Params, "__slots__")
    assert module.required_keys(params) <= {"secrets", "public_keys"}
    # Nothing required only where the scheme ships its provider's published keys, or where
    # the request names its certificate (PayPal's: fetched by relay.certificates, or pinned).
    assert module.required_keys(params) or module is paypal or module.PUBLISHED_KEYS
    assert isinstance(module.checks_authorization, bool)


@pytest.mark.parametrize(("module", "params"), SCHEMES, ids=IDS)
def test_checks_authorization_says_what_verify_does(
    module: ModuleType,
    params: object,
    rsa_key: rsa.RSAPrivateKey,
    ed_key: ed25519.Ed25519PrivateKey,
) -> None:
    """A scheme that declares it checks ``authorizations`` refuses a request without one
    of them; any other verifies it as if none were configured (the config refuses them)."""
    keys = dataclasses.replace(
        ring(GOOD_SECRET, rsa_key, ed_key, params),
        authorizations=(Secret.of("Bearer contract-authorization"),),
    )
    signed = module.sign(body_for(params), params, keys, NOW)
    assert module.verify(signed.body, signed.headers, params, keys, NOW).key_index == 0
    without = {k: v for k, v in signed.headers.items() if k.lower() != "authorization"}
    if module.checks_authorization:
        assert signed.headers["authorization"] == "Bearer contract-authorization"
        with pytest.raises(AuthorizationMismatch):
            module.verify(signed.body, without, params, keys, NOW)
    else:
        assert without == signed.headers
        assert module.verify(signed.body, without, params, keys, NOW).key_index == 0


@pytest.mark.parametrize(("module", "params"), SCHEMES, ids=IDS)
def test_sign_then_verify(
    module: ModuleType,
    params: object,
    rsa_key: rsa.RSAPrivateKey,
    ed_key: ed25519.Ed25519PrivateKey,
) -> None:
    keys = ring(GOOD_SECRET, rsa_key, ed_key, params)
    signed = module.sign(body_for(params), params, keys, NOW)
    assert module.verify(signed.body, signed.headers, params, keys, NOW).key_index == 0


@pytest.mark.parametrize(("module", "params"), SCHEMES, ids=IDS)
def test_mismatch_message_reveals_nothing(
    module: ModuleType,
    params: object,
    rsa_key: rsa.RSAPrivateKey,
    other_rsa_key: rsa.RSAPrivateKey,
    ed_key: ed25519.Ed25519PrivateKey,
    other_ed_key: ed25519.Ed25519PrivateKey,
) -> None:
    body = body_for(params)
    expected = module.sign(body, params, ring(GOOD_SECRET, rsa_key, ed_key, params), NOW)
    forged = module.sign(body, params, ring(BAD_SECRET, other_rsa_key, other_ed_key, params), NOW)
    verifier = ring(GOOD_SECRET, rsa_key, ed_key, params)
    with pytest.raises(SignatureMismatch) as caught:
        module.verify(forged.body, forged.headers, params, verifier, NOW)
    message = str(caught.value)
    assert GOOD_SECRET not in message and GOOD_SECRET.removeprefix("whsec_") not in message
    assert GOOD_SECRET.encode().hex() not in message
    expected_signatures = list(expected.headers.values())
    if isinstance(params, braintree.Params):  # the signature is a form field
        expected_signatures.append(braintree.read(expected.body).signature.split("|")[1])
    elif expected.body != body:  # the signature is in the body
        document = json.loads(expected.body)
        if isinstance(params, adyen.Params):
            expected_signatures += [
                wrapper["NotificationRequestItem"]["additionalData"]["hmacSignature"]
                for wrapper in document["notificationItems"]
            ]
        else:
            expected_signatures.append(document["sign"])
    assert expected_signatures
    for signature in expected_signatures:
        assert signature not in message

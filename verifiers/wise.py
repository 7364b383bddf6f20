"""Wise's webhook signature: ``X-Signature-SHA256``, RSA over the raw body with Wise's own key.

Wise signs every notification with its private key: RSA PKCS#1 v1.5 over the
SHA-256 of the exact body bytes, standard base64 in the ``X-Signature-SHA256``
header. The merchant holds no secret: the key that verifies is the one Wise
publishes, one for production and another for the sandbox, both shipped here
as data (:data:`PUBLISHED_KEYS`) and chosen by ``environment``. An instance
that configures ``public_keys`` verifies with those instead (a key Wise
announces before a Relay release carries it; tests).

Source of the keys: Wise's event-handling guide,
https://docs.wise.com/guides/developer/webhooks/event-handling ("Production
Public Key", "Sandbox Public Key"); the sandbox key is also the one of Wise's
reference examples (transferwise/digital-signatures-examples,
``verify-webhook-signature/verify-signature.js``), whose signed sample
``tests/verifiers/test_wise.py`` verifies.

What the signature pins: the body, nothing else. ``X-Delivery-Id`` and
``X-Test-Notification`` are not signed, and there is no signed timestamp: the
body's own ``sent_at`` is signed but says when Wise sent it, so replays are
bounded by deduplication and the pipeline's ``max_age_s``, as for every
scheme without a signed timestamp.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Literal

from cryptography.hazmat.primitives.asymmetric import rsa

from verifiers.base import (
    Headers,
    SignedRequest,
    Verified,
    check_choices,
    decode_base64,
    encode_signature,
    require_header,
    sign_rsa,
    text_key,
    verify_rsa,
)
from verifiers.errors import SignatureMismatch
from verifiers.keys import KeyRing, UnusableKey, load_public_key, private_key_of, public_keys_of

name = "wise"
checks_authorization = False

HEADER = "x-signature-sha256"

PUBLISHED_KEYS: dict[str, str] = {
    "production": """-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAvO8vXV+JksBzZAY6GhSO
XdoTCfhXaaiZ+qAbtaDBiu2AGkGVpmEygFmWP4Li9m5+Ni85BhVvZOodM9epgW3F
bA5Q1SexvAF1PPjX4JpMstak/QhAgl1qMSqEevL8cmUeTgcMuVWCJmlge9h7B1CS
D4rtlimGZozG39rUBDg6Qt2K+P4wBfLblL0k4C4YUdLnpGYEDIth+i8XsRpFlogx
CAFyH9+knYsDbR43UJ9shtc42Ybd40Afihj8KnYKXzchyQ42aC8aZ/h5hyZ28yVy
Oj3Vos0VdBIs/gAyJ/4yyQFCXYte64I7ssrlbGRaco4nKF3HmaNhxwyKyJafz19e
HwIDAQAB
-----END PUBLIC KEY-----
""",
    "sandbox": """-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAwpb91cEYuyJNQepZAVfP
ZIlPZfNUefH+n6w9SW3fykqKu938cR7WadQv87oF2VuT+fDt7kqeRziTmPSUhqPU
ys/V2Q1rlfJuXbE+Gga37t7zwd0egQ+KyOEHQOpcTwKmtZ81ieGHynAQzsn1We3j
wt760MsCPJ7GMT141ByQM+yW1Bx+4SG3IGjXWyqOWrcXsxAvIXkpUD/jK/L958Cg
nZEgz0BSEh0QxYLITnW1lLokSx/dTianWPFEhMC9BgijempgNXHNfcVirg1lPSyg
z7KqoKUN0oHqWLr2U1A+7kqrl6O2nx3CKs1bj1hToT1+p4kcMoHXA7kA+VBLUpEs
VwIDAQAB
-----END PUBLIC KEY-----
""",
}
"""Wise's webhook-signing public keys, by environment (source in the module docstring)."""


@dataclass(frozen=True, slots=True)
class Params:
    environment: Literal["production", "sandbox"] = "production"

    def __post_init__(self) -> None:
        check_choices(self)


def verify(body: bytes, headers: Headers, params: Params, keys: KeyRing, now: float) -> Verified:
    what = "the X-Signature-SHA256 header"
    provided = decode_base64(require_header(headers, HEADER), what)
    index = verify_rsa(_keys(params, keys), provided, body, what)
    if index is None:
        raise SignatureMismatch(f"{what} does not match the body")
    return Verified(key_index=index)


def sign(body: bytes, params: Params, keys: KeyRing, now: float) -> SignedRequest:
    raw = sign_rsa(private_key_of(keys, rsa.RSAPrivateKey, name), body)
    return SignedRequest(body=body, headers={HEADER: encode_signature(raw, "base64")})


def required_keys(params: Params) -> frozenset[str]:
    """None: Wise's published keys ship with Relay (``public_keys`` replaces them)."""
    return frozenset()


def _keys(params: Params, keys: KeyRing) -> tuple[rsa.RSAPublicKey, ...]:
    if keys.public_keys:
        return public_keys_of(keys, rsa.RSAPublicKey, name)
    return (_published(params.environment),)


@functools.cache
def _published(environment: str) -> rsa.RSAPublicKey:
    key = load_public_key(PUBLISHED_KEYS[environment])
    if not isinstance(key, rsa.RSAPublicKey):  # data shipped with Relay: a bug, not config
        raise UnusableKey(f"Wise's published {environment} key is not an RSA key")
    return key


secret_key = text_key

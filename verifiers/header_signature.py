"""A signature over the raw body carried in one header, RSA by default.

Serves ``wallet-topup`` (document 001). The document does not say how its
webhook is signed; the default follows the provider's request-signing
convention (DESIGN section 8): header ``sign`` holding an RSA PKCS#1 v1.5
SHA-256 signature over the exact body bytes, URL-safe base64 without padding,
checked with ``public_keys``. ``algorithm="hmac-sha256"`` uses ``secrets``
instead. This is an assumption to confirm with the provider.

``encoding`` is what ``sign`` writes: ``base64url`` (unpadded), ``base64``
(padded) or ``hex`` (lower case). Any base64 ``encoding`` accepts both
alphabets, with or without padding, since providers mix them up; ``hex``
accepts either case.

The timestamp header is NOT signed: nothing binds it to the body, so it only
filters stale honest retries and proves nothing about freshness against an
attacker who replays a captured request (use ``allow_ips`` and dedup). It is
checked against ``timestamp_tolerance_s`` when present and ignored when
absent. Its unit is not documented: values of 10^11 and more are taken as
milliseconds (as seconds they would be after the year 5000), smaller ones as
UNIX seconds.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Literal

from cryptography.hazmat.primitives.asymmetric import rsa

from verifiers.base import (
    PUBLIC_KEYS,
    SECRETS,
    Headers,
    SignedRequest,
    Verified,
    check_choices,
    check_tolerance,
    check_tolerance_option,
    decode_signature,
    encode_signature,
    matches,
    parse_digits,
    require_header,
    sign_rsa,
    text_key,
    verify_rsa,
)
from verifiers.errors import MalformedSignature, SignatureMismatch
from verifiers.keys import KeyRing, first_secret, private_key_of, public_keys_of

name = "header-signature"
checks_authorization = False

# The smallest UNIX time in milliseconds that is not also a plausible time in seconds.
_MILLISECONDS_FROM = 10**11


@dataclass(frozen=True, slots=True)
class Params:
    header: str = "sign"
    algorithm: Literal["rsa-sha256", "hmac-sha256"] = "rsa-sha256"
    encoding: Literal["base64url", "base64", "hex"] = "base64url"
    timestamp_header: str = "x-timestamp"
    timestamp_tolerance_s: int = 300

    def __post_init__(self) -> None:
        check_choices(self)
        check_tolerance_option(self)


def verify(body: bytes, headers: Headers, params: Params, keys: KeyRing, now: float) -> Verified:
    what = f"the {params.header} header"
    provided = decode_signature(
        require_header(headers, params.header.lower()), params.encoding, what
    )
    # Checked, but not reported as Verified.timestamp: the signature does not cover it.
    _check_timestamp(headers, params, now)
    if params.algorithm == "rsa-sha256":
        index = verify_rsa(public_keys_of(keys, rsa.RSAPublicKey, name), provided, body, what)
        if index is not None:
            return Verified(key_index=index)
    else:
        if len(provided) != hashlib.sha256().digest_size:
            raise MalformedSignature(f"{what} has the wrong length")
        for index, secret in enumerate(keys.secrets):
            if matches(provided, [secret.mac(body, "sha256")]):
                return Verified(key_index=index)
    raise SignatureMismatch(f"{what} does not match the body")


def sign(body: bytes, params: Params, keys: KeyRing, now: float) -> SignedRequest:
    if params.algorithm == "rsa-sha256":
        raw = sign_rsa(private_key_of(keys, rsa.RSAPrivateKey, name), body)
    else:
        raw = hmac.digest(first_secret(keys, name).value, body, "sha256")
    headers = {params.header: encode_signature(raw, params.encoding)}
    if params.timestamp_header:
        headers[params.timestamp_header] = str(int(now))
    return SignedRequest(body=body, headers=headers)


def required_keys(params: Params) -> frozenset[str]:
    return PUBLIC_KEYS if params.algorithm == "rsa-sha256" else SECRETS


secret_key = text_key


def _check_timestamp(headers: Headers, params: Params, now: float) -> None:
    text = headers.get(params.timestamp_header.lower()) if params.timestamp_header else None
    if not text:
        return
    what = f"the {params.timestamp_header} header"
    value = parse_digits(text, what)
    timestamp = value / 1000 if value >= _MILLISECONDS_FROM else float(value)
    check_tolerance(timestamp, now, params.timestamp_tolerance_s, what)

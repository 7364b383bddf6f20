"""Signature verification, pure: bytes and headers in, ``Verified`` or a typed error out.

One module per scheme (``hmac_header``, ``sign_field``, ``header_signature``,
``ed25519_header``, ``standard_webhooks``, ``stripe``, ``paddle``, ``square``,
``adyen``, ``wise``, ``braintree``, ``paypal``); each exports ``name``, ``Params``, ``verify``, ``sign`` and
``required_keys`` (see :mod:`verifiers.base`). ``timestamped`` is the header
shape Stripe and Paddle share, not a scheme. This package must not import aiohttp, aiokafka or
anything from ``relay``: it does no I/O and reads no clock.
"""

from verifiers.base import Headers, SignedRequest, Verified
from verifiers.errors import (
    AmbiguousBody,
    AppIdMismatch,
    AuthorizationMismatch,
    MalformedBody,
    MalformedSignature,
    MalformedTimestamp,
    MissingSignature,
    MissingTimestamp,
    SignatureMismatch,
    StaleTimestamp,
    UntrustedCertificate,
    VerificationError,
)
from verifiers.keys import KeyRing, Secret, UnusableKey

__all__ = [
    "AmbiguousBody",
    "AppIdMismatch",
    "AuthorizationMismatch",
    "Headers",
    "KeyRing",
    "MalformedBody",
    "MalformedSignature",
    "MalformedTimestamp",
    "MissingSignature",
    "MissingTimestamp",
    "Secret",
    "SignatureMismatch",
    "SignedRequest",
    "StaleTimestamp",
    "UntrustedCertificate",
    "UnusableKey",
    "VerificationError",
    "Verified",
]

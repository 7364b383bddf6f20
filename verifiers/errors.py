"""Typed verification failures.

Every way a request can fail verification is one class here. Each class knows
its machine-readable ``code`` and the HTTP ``status`` Relay answers with, so
the HTTP layer renders any of them without an if/elif ladder. Messages are
written for the sender's developer: they name the header or field that is
wrong and never contain a secret, a key or the expected signature.

    VerificationError                 401 unless noted
    ├── MissingSignature              no signature where the scheme puts one
    ├── MalformedSignature            undecodable or wrongly shaped signature or header
    ├── SignatureMismatch             well formed, but no active key produced it
    ├── MissingTimestamp / MalformedTimestamp
    ├── StaleTimestamp                outside the tolerance, past or future
    ├── AppIdMismatch                 a configured app id header does not match
    ├── AuthorizationMismatch         a configured Authorization value is missing or wrong
    ├── UntrustedCertificate          a certificate the request names is not the provider's
    └── MalformedBody            400  the body cannot be read where the scheme must read it
        └── AmbiguousBody        400  the signed string would read the body's members differently
"""

from __future__ import annotations

from typing import ClassVar


class VerificationError(Exception):
    """Base class: the request is not provably from the provider.

    ``status`` is the class's answer. A provider may document another status for a
    refused request (GoCardless asks for 498 Token Invalid): the scheme then sets it
    on the instance it raises, from its ``Params`` (``hmac_header``'s
    ``refusal_status``), so the one middleware still renders every error alike.
    """

    code: ClassVar[str] = "verification_failed"
    status: int = 401


class MissingSignature(VerificationError):
    code = "missing_signature"


class MalformedSignature(VerificationError):
    code = "malformed_signature"


class SignatureMismatch(VerificationError):
    code = "signature_mismatch"


class MissingTimestamp(VerificationError):
    code = "missing_timestamp"


class MalformedTimestamp(VerificationError):
    code = "malformed_timestamp"


class StaleTimestamp(VerificationError):
    code = "stale_timestamp"


class AppIdMismatch(VerificationError):
    code = "app_id_mismatch"


class AuthorizationMismatch(VerificationError):
    """The instance configures ``Authorization`` values (HTTP Basic for Adyen, a chosen
    token for Checkout.com) and the request carries none of them."""

    code = "authorization_mismatch"


class UntrustedCertificate(VerificationError):
    """The certificate a request names (PayPal's ``PAYPAL-CERT-URL``) may not be fetched, or
    is not the provider's: off the allow-list, not chaining to a trusted root, another
    name, not valid at the signed time."""

    code = "untrusted_certificate"


class MalformedBody(VerificationError):
    code = "malformed_body"
    status = 400


class AmbiguousBody(MalformedBody):
    """A ``sign``-field body whose signed string could be split into other members.

    The signed string joins ``key=value`` pairs with an unescaped ``&``, so a
    value holding ``&name=`` reads, once signed, like a boundary between two
    members: the signature could not say which of the two bodies was signed.
    """

    code = "ambiguous_body"

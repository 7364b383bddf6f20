"""The shape every signature scheme shares.

A scheme is a module with a ``name``, a frozen ``Params`` dataclass (its
options, with the defaults a profile starts from), ``verify``, its twin
``sign``, ``required_keys`` (which key material a config must give) and
``checks_authorization`` (whether ``verify`` reads ``KeyRing.authorizations``)::

    verify(body, headers, params, keys, now) -> Verified      # or a VerificationError
    sign(body, params, keys, now) -> SignedRequest            # used by `relay send`, tests, bench
    required_keys(params) -> frozenset[str]                   # of {"secrets", "public_keys"}
    secret_key(secret) -> bytes                               # the key a secret stands for

``headers`` is a mapping with lower-case names (the HTTP layer lower-cases them
once). ``now`` is UNIX seconds, passed in and never read inside, so every
timestamp rule is testable. Nothing here does I/O or imports aiohttp.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any, Literal, Protocol, get_args, get_origin, get_type_hints

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from verifiers.errors import (
    AuthorizationMismatch,
    MalformedSignature,
    MalformedTimestamp,
    MissingSignature,
    StaleTimestamp,
    VerificationError,
)
from verifiers.keys import KeyRing, Secret

Headers = Mapping[str, str]

SECRETS: frozenset[str] = frozenset({"secrets"})
PUBLIC_KEYS: frozenset[str] = frozenset({"public_keys"})
"""``required_keys`` answers: which ``KeyRing`` fields an instance config must fill."""

Encoding = Literal["hex", "base64", "base64url"]


@dataclass(frozen=True, slots=True)
class Verified:
    """Proof that a body came from the provider.

    ``key_index`` is the position of the secret or public key that matched
    (useful to see when a rotated-out key stops being used); ``timestamp`` is
    the request's timestamp in UNIX seconds where the signature covers one
    (checked against the tolerance, so it bounds replays). An unsigned
    timestamp a scheme checks is not reported: it proves nothing.
    """

    key_index: int
    timestamp: float | None = None


@dataclass(frozen=True, slots=True)
class SignedRequest:
    """A body and the headers that make it verifiable (``sign``'s output)."""

    body: bytes
    headers: dict[str, str]


class Scheme(Protocol):
    """A signature scheme module seen as a value (see module docstring).

    The profile registry types its ``scheme`` with this, so the type checker
    holds every scheme module to the shape. ``params`` is the scheme's own
    ``Params``, which the protocol cannot name: each module's functions are
    typed with it.
    """

    @property
    def name(self) -> str: ...

    @property
    def Params(self) -> type: ...

    @property
    def checks_authorization(self) -> bool:
        """Whether ``verify`` holds a request to the ring's ``authorizations``
        (:func:`check_authorization`); the config refuses them for a scheme that would
        ignore them."""
        ...

    def verify(
        self, body: bytes, headers: Headers, params: Any, keys: KeyRing, now: float, /
    ) -> Verified: ...

    def sign(self, body: bytes, params: Any, keys: KeyRing, now: float, /) -> SignedRequest: ...

    def required_keys(self, params: Any, /) -> frozenset[str]: ...

    def secret_key(self, secret: Secret, /) -> bytes:
        """The key bytes a secret gives this scheme's MAC, by which the config judges its
        length and notices it on two instances (most schemes key with the text as given:
        :func:`text_key`)."""


def text_key(secret: Secret) -> bytes:
    """``secret_key`` of a scheme keyed with the secret exactly as configured (its UTF-8 bytes)."""
    return secret.value


def check_choices(params: Any) -> None:
    """Refuse a ``Params`` whose ``Literal`` field holds a value outside its choices.

    Called from each ``Params.__post_init__`` so that a config naming an
    unknown algorithm or encoding fails when it is loaded, with the option's
    name, instead of at the first webhook.
    """
    hints = get_type_hints(type(params))
    for item in fields(params):
        hint = hints[item.name]
        if get_origin(hint) is Literal:
            value = getattr(params, item.name)
            if value not in get_args(hint):
                choices = ", ".join(repr(choice) for choice in get_args(hint))
                raise ValueError(f"{item.name} must be one of {choices}, not {value!r}")


def check_tolerance_option(params: Any) -> None:
    """Refuse a ``timestamp_tolerance_s`` of zero or less (a ``Params.__post_init__`` check):
    zero refuses every request, a negative tolerance is a typo, and neither disables the check."""
    if params.timestamp_tolerance_s <= 0:
        raise ValueError("timestamp_tolerance_s must be greater than zero")


def require_header(headers: Headers, *names: str) -> str:
    """The first present header of ``names`` (alternative spellings), else MissingSignature."""
    for name in names:
        value = headers.get(name)
        if value:
            return value
    raise MissingSignature(f"the {names[0]} header is missing")


def matches(expected: bytes, candidates: Sequence[bytes]) -> bool:
    """Constant-time membership test of ``expected`` among ``candidates``.

    Every candidate is compared with :func:`hmac.compare_digest` and the loop
    does not stop at the first match, so the time taken does not say which one
    matched or how many bytes of a wrong one were right.
    """
    found = False
    for candidate in candidates:
        found |= hmac.compare_digest(expected, candidate)
    return found


def matching_secret(
    keys: KeyRing, message: bytes, signatures: Sequence[bytes], algorithm: str = "sha256"
) -> int | None:
    """Index of the first secret whose HMAC of ``message`` is among ``signatures``, else None."""
    for index, secret in enumerate(keys.secrets):
        if matches(secret.mac(message, algorithm), signatures):
            return index
    return None


def check_authorization(headers: Headers, keys: KeyRing) -> None:
    """When the ring holds ``authorizations``, the ``Authorization`` header must be one of them.

    Cheap, so schemes call it before any signature work. The values are compared as
    SHA-256 digests in constant time: :func:`hmac.compare_digest` returns early on
    texts of different lengths, digests are all of one length.
    """
    if not keys.authorizations:
        return
    provided = headers.get("authorization")
    if not provided:
        raise AuthorizationMismatch("the Authorization header is missing")
    try:
        # surrogateescape gives back a header's original bytes where the HTTP layer
        # decoded bytes that are not UTF-8 that way.
        digest = hashlib.sha256(provided.encode("utf-8", "surrogateescape")).digest()
    except UnicodeEncodeError as exc:
        raise AuthorizationMismatch("the Authorization header is not valid text") from exc
    accepted = [hashlib.sha256(value.value).digest() for value in keys.authorizations]
    if not matches(digest, accepted):
        raise AuthorizationMismatch("the Authorization header is not an accepted value")


def authorization_header(keys: KeyRing) -> dict[str, str]:
    """``sign``'s side of :func:`check_authorization`: the first accepted value, if any."""
    if not keys.authorizations:
        return {}
    return {"authorization": keys.authorizations[0].value.decode("utf-8", "surrogateescape")}


def decode_hex(text: str, what: str) -> bytes:
    """Hex of either case; whitespace around it is tolerated, inside it is not."""
    try:
        return binascii.unhexlify(text.strip())
    except (binascii.Error, ValueError) as exc:  # ValueError: non-ASCII text
        raise MalformedSignature(f"{what} is not valid hex") from exc


def decode_base64(text: str, what: str) -> bytes:
    """Standard or URL-safe base64, padding optional (providers differ).

    Both alphabets are validated: a character outside them is an error, never
    silently dropped as :func:`base64.urlsafe_b64decode` would. The last character
    must leave its unused bits zero, as every encoder writes it: otherwise several
    texts would decode to one signature, and a copied signature could be re-spelled.
    """
    compact = text.strip()
    if not compact:
        raise MalformedSignature(f"{what} is empty")
    standard = compact.replace("-", "+").replace("_", "/")
    padded = standard + "=" * (-len(standard) % 4)
    try:
        raw = base64.b64decode(padded.encode("ascii"), validate=True)
    except (binascii.Error, ValueError, UnicodeEncodeError) as exc:
        raise MalformedSignature(f"{what} is not valid base64") from exc
    # The sender's own text against its re-encoding: public on both sides, nothing secret to
    # time, so a plain comparison (hmac.compare_digest stays the one gate on signatures).
    canonical = base64.b64encode(raw).decode("ascii")
    if canonical != padded:
        raise MalformedSignature(f"{what} is not canonical base64 (unused bits set)")
    return raw


def encode_signature(raw: bytes, encoding: Encoding) -> str:
    """``sign``'s side of the decoders: lower-case hex, padded base64, unpadded base64url."""
    if encoding == "hex":
        return raw.hex()
    if encoding == "base64url":
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")
    return base64.b64encode(raw).decode("ascii")


def decode_signature(text: str, encoding: Encoding, what: str) -> bytes:
    if encoding == "hex":
        return decode_hex(text, what)
    return decode_base64(text, what)


def unique_members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON decoder's ``object_pairs_hook`` refusing (ValueError) a key given twice.

    Readers differ on which of two equal keys wins; a signed body must read one way.
    """
    result = dict(pairs)
    if len(result) != len(pairs):
        raise ValueError("duplicate key")
    return result


def reject_constant(text: str) -> None:
    """A JSON decoder's ``parse_constant``: ``NaN`` and ``Infinity`` are not JSON (ValueError)."""
    raise ValueError(f"{text} is not JSON")


# Longer than any UNIX time in milliseconds for the next few thousand years, and
# short enough that int() never meets Python's digit limit.
_MAX_TIMESTAMP_DIGITS = 16


def parse_digits(text: str, what: str, error: type[VerificationError] = MalformedTimestamp) -> int:
    """A non-negative integer written in ASCII digits, else ``error``.

    ``str.isdigit`` alone is not enough: it accepts digits ``int`` refuses
    (superscripts) and non-ASCII ones a provider never sends.
    """
    stripped = text.strip()
    if not (stripped.isascii() and stripped.isdigit()) or len(stripped) > _MAX_TIMESTAMP_DIGITS:
        raise error(f"{what} is not an integer")
    return int(stripped)


def verify_rsa(
    public_keys: Sequence[rsa.RSAPublicKey], signature: bytes, message: bytes, what: str
) -> int | None:
    """Index of the first key whose RSA PKCS#1 v1.5 SHA-256 signature ``signature`` is, else None.

    A signature whose length fits none of the keys is malformed rather than
    wrong: it was never an RSA signature by a key of that size.
    """
    check_rsa_length(public_keys, signature, what)
    for index, key in enumerate(public_keys):
        try:
            key.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature:
            continue
        return index
    return None


def check_rsa_length(public_keys: Sequence[rsa.RSAPublicKey], signature: bytes, what: str) -> None:
    """MalformedSignature unless ``signature`` is as long as one of the keys' moduli.

    Schemes whose message costs work to build call this first, so that a
    request with a signature of the wrong shape costs nothing more.
    """
    if public_keys and all(len(signature) != _modulus_bytes(key) for key in public_keys):
        raise MalformedSignature(f"{what} has the wrong length for the configured RSA keys")


def sign_rsa(private_key: rsa.RSAPrivateKey, message: bytes) -> bytes:
    return private_key.sign(message, padding.PKCS1v15(), hashes.SHA256())


def _modulus_bytes(key: rsa.RSAPublicKey) -> int:
    return (key.key_size + 7) // 8


def check_tolerance(
    timestamp: float, now: float, tolerance_s: float, what: str = "the signed timestamp"
) -> None:
    """Reject timestamps too far in the past or the future (clock skew both ways)."""
    if abs(now - timestamp) > tolerance_s:
        direction = "past" if timestamp < now else "future"
        raise StaleTimestamp(f"{what} is more than {tolerance_s:g}s in the {direction}")

"""The shape every signature scheme shares.

A scheme is a module with a frozen ``Params`` dataclass (its options, with the
defaults a profile starts from), ``verify`` and its twin ``sign``::

    verify(body, headers, params, keys, now) -> Verified      # or a VerificationError
    sign(body, params, keys, now) -> SignedRequest            # used by `relay send`, tests, bench

``headers`` is a mapping with lower-case names (the HTTP layer lower-cases them
once). ``now`` is UNIX seconds, passed in and never read inside, so every
timestamp rule is testable. Nothing here does I/O or imports aiohttp.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from verifiers.errors import MalformedSignature, MissingSignature, StaleTimestamp
from verifiers.keys import KeyRing

Headers = Mapping[str, str]


@dataclass(frozen=True, slots=True)
class Verified:
    """Proof that a body came from the provider.

    ``key_index`` is the position of the secret or public key that matched
    (useful to see when a rotated-out key stops being used); ``timestamp`` is
    the signed timestamp in UNIX seconds where the scheme has one.
    """

    key_index: int
    timestamp: float | None = None


@dataclass(frozen=True, slots=True)
class SignedRequest:
    """A body and the headers that make it verifiable (``sign``'s output)."""

    body: bytes
    headers: dict[str, str]


class Scheme(Protocol):
    """A signature scheme module seen as a value (see module docstring)."""

    name: str
    Params: type
    verify: Callable[[bytes, Headers, Any, KeyRing, float], Verified]
    sign: Callable[[bytes, Any, KeyRing, float], SignedRequest]


def require_header(headers: Headers, *names: str) -> str:
    """The first present header of ``names`` (alternative spellings), else MissingSignature."""
    for name in names:
        value = headers.get(name)
        if value:
            return value
    raise MissingSignature(f"the {names[0]} header is missing")


def matches(expected: bytes, candidates: list[bytes] | tuple[bytes, ...]) -> bool:
    """Constant-time membership test of ``expected`` among ``candidates``.

    Every candidate is compared with :func:`hmac.compare_digest` and the loop
    does not stop at the first match, so the time taken does not say which one
    matched or how many bytes of a wrong one were right.
    """
    found = False
    for candidate in candidates:
        found |= hmac.compare_digest(expected, candidate)
    return found


def decode_hex(text: str, what: str) -> bytes:
    try:
        return bytes.fromhex(text.strip())
    except ValueError as exc:
        raise MalformedSignature(f"{what} is not valid hex") from exc


def decode_base64(text: str, what: str) -> bytes:
    """Standard or URL-safe base64, padding optional (providers differ)."""
    compact = text.strip()
    if not compact:
        raise MalformedSignature(f"{what} is empty")
    padded = compact + "=" * (-len(compact) % 4)
    alphabet_safe = "-" in compact or "_" in compact
    try:
        if alphabet_safe:
            return base64.urlsafe_b64decode(padded.encode("ascii"))
        return base64.b64decode(padded.encode("ascii"), validate=True)
    except (binascii.Error, ValueError, UnicodeEncodeError) as exc:
        raise MalformedSignature(f"{what} is not valid base64") from exc


def check_tolerance(timestamp: float, now: float, tolerance_s: float) -> None:
    """Reject timestamps too far in the past or the future (clock skew both ways)."""
    if abs(now - timestamp) > tolerance_s:
        direction = "past" if timestamp < now else "future"
        raise StaleTimestamp(
            f"the signed timestamp is more than {tolerance_s:g}s in the {direction}"
        )

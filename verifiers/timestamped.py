"""The header Stripe and Paddle share: a timestamp and hex HMAC-SHA256 signatures in one list.

``Stripe-Signature: t=<unix>,v1=<hex>[,v1=...]`` and ``Paddle-Signature:
ts=<unix>;h1=<hex>[;h1=...]`` are one shape with other spellings (a
:class:`Layout`): ``key=value`` entries joined by a separator, one timestamp
entry, one signature entry per active secret of the sender (several during a
rotation), each the HMAC-SHA256 of ``<timestamp><joiner><raw body>`` keyed with
the secret as configured. This module is not a scheme: :mod:`verifiers.stripe`
and :mod:`verifiers.paddle` are, each a layout and its defaults.

Read alike for both:

- every failure to read the header is a :class:`MalformedSignature` (an entry
  without ``=`` or with an empty key, a second timestamp, a timestamp that is not
  an integer, no timestamp);
- a signature entry that is not hex or not 32 bytes is skipped, as the SDKs,
  which compare each entry as text, pass over one that cannot match; a header
  whose signature entries are all so is a :class:`MalformedSignature`, one with
  none a :class:`MissingSignature`;
- hex is read in either case (the SDKs' text compare matches lower case only);
- the timestamp is signed as the integer it parses to, as both SDKs sign it;
- more than :data:`MAX_ENTRIES` signature entries is a :class:`MalformedSignature`
  before any HMAC is computed: a sender sends one per active secret;
- the tolerance applies in both directions (a timestamp from the future is as
  suspect as an old one) and must be greater than zero.

Entries of other keys are skipped or refused per layout: Stripe's own ``v0``
is skipped, as stripe-python skips it; the Paddle SDK refuses any key but
``ts`` and ``h1``.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Literal

from verifiers.base import (
    Headers,
    SignedRequest,
    Verified,
    check_tolerance,
    decode_hex,
    matching_secret,
    parse_digits,
    require_header,
)
from verifiers.errors import MalformedSignature, MissingSignature, SignatureMismatch
from verifiers.keys import KeyRing, first_secret

MAX_ENTRIES = 8
"""Signature entries read from one header; a sender sends one per active secret."""

_SIGNATURE_BYTES = hashlib.sha256().digest_size
_SEPARATOR_NAMES = {",": "comma", ";": "semicolon"}


@dataclass(frozen=True, slots=True)
class Layout:
    """How one provider spells the header (see the module docstring)."""

    scheme: str
    """The scheme module's ``name``, for key errors."""
    header: str
    """As providers write it; looked up lower-cased."""
    separator: str
    timestamp_key: str
    signature_key: str
    joiner: str
    """Between the timestamp and the body in the signed payload."""
    other_keys: Literal["skip", "refuse"]


def verify(
    body: bytes, headers: Headers, layout: Layout, tolerance_s: int, keys: KeyRing, now: float
) -> Verified:
    timestamp, signatures = parse(require_header(headers, layout.header.lower()), layout)
    check_tolerance(timestamp, now, tolerance_s)
    index = matching_secret(keys, _payload(layout, timestamp, body), signatures)
    if index is None:
        raise SignatureMismatch(
            f"no {layout.signature_key} signature of the {layout.header} header matches the body"
        )
    return Verified(key_index=index, timestamp=float(timestamp))


def sign(body: bytes, layout: Layout, keys: KeyRing, now: float) -> SignedRequest:
    timestamp = int(now)
    secret = first_secret(keys, layout.scheme).value
    digest = hmac.digest(secret, _payload(layout, timestamp, body), "sha256")
    value = (
        f"{layout.timestamp_key}={timestamp}{layout.separator}{layout.signature_key}={digest.hex()}"
    )
    return SignedRequest(body=body, headers={layout.header.lower(): value})


def parse(value: str, layout: Layout) -> tuple[int, list[bytes]]:
    """The header's timestamp and its decodable signatures (see the module docstring)."""
    what = f"the {layout.header} header"
    timestamp: int | None = None
    signatures: list[bytes] = []
    entries = undecodable = 0
    for item in value.split(layout.separator):
        key, equals, text = item.strip().partition("=")
        if not equals or not key:
            separated = _SEPARATOR_NAMES.get(layout.separator, repr(layout.separator))
            raise MalformedSignature(f"{what} must be a {separated}-separated list of key=value")
        if key == layout.timestamp_key:
            if timestamp is not None:
                raise MalformedSignature(f"{what} has more than one {layout.timestamp_key}")
            timestamp = parse_digits(
                text, f"the {layout.timestamp_key} of {what}", MalformedSignature
            )
        elif key == layout.signature_key:
            entries += 1
            if entries > MAX_ENTRIES:
                raise MalformedSignature(
                    f"{what} has more than {MAX_ENTRIES} {layout.signature_key} signatures"
                )
            raw = _signature(text)
            if raw is None:
                undecodable += 1
            else:
                signatures.append(raw)
        elif layout.other_keys == "refuse":
            raise MalformedSignature(
                f"{what} may only hold {layout.timestamp_key} and {layout.signature_key} entries"
            )
    if timestamp is None:
        raise MalformedSignature(f"{what} has no {layout.timestamp_key} timestamp")
    if not signatures:
        if undecodable:
            raise MalformedSignature(
                f"no {layout.signature_key} signature of {what} is 32 bytes of hex"
            )
        raise MissingSignature(f"{what} has no {layout.signature_key} signature")
    return timestamp, signatures


def _signature(text: str) -> bytes | None:
    """The 32 bytes an entry's hex holds, or None if it is not hex or not 32 bytes."""
    try:
        raw = decode_hex(text, "a signature")
    except MalformedSignature:
        return None
    return raw if len(raw) == _SIGNATURE_BYTES else None


def _payload(layout: Layout, timestamp: int, body: bytes) -> bytes:
    # Signed as the integer it parses to ("%d"), not as sent, as both SDKs sign it.
    return f"{timestamp}{layout.joiner}".encode("ascii") + body

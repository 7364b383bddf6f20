"""Stripe's webhook signature: ``Stripe-Signature: t=<unix>,v1=<hex>[,v1=...]``.

The signed payload is ``<t>.<raw body>``, HMAC-SHA256 keyed with the endpoint
secret exactly as configured (``whsec_...`` included: Stripe does not decode
it), compared in lowercase or uppercase hex. Several ``v1`` entries may be
present (Stripe sends one per active secret during a rotation); entries of
other schemes (``v0``) are skipped, and so is a ``v1`` entry that is not hex
or not 32 bytes: it cannot match, and a well-formed entry beside it still may.

Compared with stripe-python (``stripe/_webhook.py``):

- every failure to read the header, its timestamp included, is a
  :class:`MalformedSignature`, as stripe-python wraps them in one error; a
  header with two ``t`` entries is malformed rather than read by its first;
- like stripe-python, which compares each ``v1`` entry as text and passes over
  those that cannot match, one undecodable ``v1`` entry does not fail a header
  whose other entry matches; a header whose ``v1`` entries are all undecodable
  is a :class:`MalformedSignature` here, where stripe-python reports that no
  signature matches (no ``v1`` entry at all is a :class:`MissingSignature`, as
  stripe-python's "no signatures found with expected scheme");
- hex is read in either case, where stripe-python's text compare only matches
  lower case;
- the tolerance (300 s by default) applies in both directions, where
  stripe-python only refuses old timestamps, and must be greater than zero
  (a config error otherwise), where stripe-python skips the check for 0.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from verifiers.base import (
    SECRETS,
    Headers,
    SignedRequest,
    Verified,
    check_tolerance,
    check_tolerance_option,
    decode_hex,
    matches,
    parse_digits,
    require_header,
    text_key,
)
from verifiers.errors import MalformedSignature, MissingSignature, SignatureMismatch
from verifiers.keys import KeyRing, first_secret

name = "stripe"

_HEADER = "stripe-signature"
_SCHEME = "v1"


@dataclass(frozen=True, slots=True)
class Params:
    timestamp_tolerance_s: int = 300

    def __post_init__(self) -> None:
        check_tolerance_option(self)


def verify(body: bytes, headers: Headers, params: Params, keys: KeyRing, now: float) -> Verified:
    timestamp, signatures = _parse(require_header(headers, _HEADER))
    check_tolerance(timestamp, now, params.timestamp_tolerance_s)
    payload = _payload(timestamp, body)
    for index, secret in enumerate(keys.secrets):
        if matches(secret.mac(payload, "sha256"), signatures):
            return Verified(key_index=index, timestamp=float(timestamp))
    raise SignatureMismatch("no v1 signature of the Stripe-Signature header matches the body")


def sign(body: bytes, params: Params, keys: KeyRing, now: float) -> SignedRequest:
    timestamp = int(now)
    digest = hmac.digest(first_secret(keys, name).value, _payload(timestamp, body), "sha256")
    return SignedRequest(body=body, headers={_HEADER: f"t={timestamp},{_SCHEME}={digest.hex()}"})


def required_keys(params: Params) -> frozenset[str]:
    return SECRETS


secret_key = text_key


def _parse(value: str) -> tuple[int, list[bytes]]:
    timestamp: int | None = None
    signatures: list[bytes] = []
    undecodable = 0
    for item in value.split(","):
        key, equals, text = item.strip().partition("=")
        if not equals or not key:
            raise MalformedSignature(
                "the Stripe-Signature header must be a comma-separated list of key=value"
            )
        if key == "t":
            if timestamp is not None:
                raise MalformedSignature("the Stripe-Signature header has more than one t")
            timestamp = parse_digits(
                text, "the t of the Stripe-Signature header", MalformedSignature
            )
        elif key == _SCHEME:
            raw = _v1_signature(text)
            if raw is None:
                undecodable += 1
            else:
                signatures.append(raw)
    if timestamp is None:
        raise MalformedSignature("the Stripe-Signature header has no t timestamp")
    if not signatures:
        if undecodable:
            raise MalformedSignature(
                "no v1 signature of the Stripe-Signature header is 32 bytes of hex"
            )
        raise MissingSignature("the Stripe-Signature header has no v1 signature")
    return timestamp, signatures


def _v1_signature(text: str) -> bytes | None:
    """The 32 bytes a v1 entry's hex holds, or None if it is not hex or not 32 bytes."""
    try:
        raw = decode_hex(text, "a v1 signature of the Stripe-Signature header")
    except MalformedSignature:
        return None
    return raw if len(raw) == hashlib.sha256().digest_size else None


def _payload(timestamp: int, body: bytes) -> bytes:
    # Stripe signs the timestamp as the integer it parses to ("%d"), not as sent.
    return f"{timestamp}.".encode("ascii") + body

"""Ed25519 signature over ``<raw body>|<timestamp>``, in headers.

Serves ``payin-order`` (document 004; DESIGN section 8). The signature is 64
bytes in hex (either case) in ``BIZ_RESP_SIGNATURE``, the timestamp is UNIX
milliseconds in ``BIZ_TIMESTAMP``. Headers arrive lower-cased, and the
hyphen spellings (``Biz-Resp-Signature``, ``Biz-Timestamp``) are accepted
too, because some proxies drop header names with underscores and senders
work around it.

The message is the exact body bytes, ``|``, then the timestamp digits as
sent. ``prehash`` says what the Ed25519 signature covers: ``sha256d`` (the
profile's default: SHA-256 applied twice, the 32-byte digest is signed),
``sha256`` (applied once), or ``none`` (the message itself). Public keys are Ed25519, loaded from raw 32-byte hex or PEM
by :mod:`verifiers.keys`. The timestamp is signed, so the tolerance check
(both directions, for clock skew) really bounds replays.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ed25519

from verifiers.base import (
    PUBLIC_KEYS,
    Headers,
    SignedRequest,
    Verified,
    check_choices,
    check_tolerance,
    check_tolerance_option,
    decode_hex,
    parse_digits,
    require_header,
    text_key,
)
from verifiers.errors import MalformedSignature, MissingTimestamp, SignatureMismatch
from verifiers.keys import KeyRing, private_key_of, public_keys_of

name = "ed25519-header"
checks_authorization = False

_SIGNATURE_BYTES = 64


@dataclass(frozen=True, slots=True)
class Params:
    signature_header: str = "biz_resp_signature"
    timestamp_header: str = "biz_timestamp"
    prehash: Literal["sha256d", "sha256", "none"] = "sha256d"
    timestamp_tolerance_s: int = 300

    def __post_init__(self) -> None:
        check_choices(self)
        check_tolerance_option(self)


def verify(body: bytes, headers: Headers, params: Params, keys: KeyRing, now: float) -> Verified:
    public_keys = public_keys_of(keys, ed25519.Ed25519PublicKey, name)
    what = f"the {params.signature_header} header"
    signature = decode_hex(require_header(headers, *_spellings(params.signature_header)), what)
    if len(signature) != _SIGNATURE_BYTES:
        raise MalformedSignature(f"{what} is not a {_SIGNATURE_BYTES}-byte Ed25519 signature")
    stamp_text = _header(headers, params.timestamp_header)
    if stamp_text is None:
        raise MissingTimestamp(f"the {params.timestamp_header} header is missing")
    milliseconds = parse_digits(stamp_text, f"the {params.timestamp_header} header")
    timestamp = milliseconds / 1000
    check_tolerance(timestamp, now, params.timestamp_tolerance_s)
    signed = _signed(body, stamp_text.strip(), params)
    for index, key in enumerate(public_keys):
        try:
            key.verify(signature, signed)
        except InvalidSignature:
            continue
        return Verified(key_index=index, timestamp=timestamp)
    raise SignatureMismatch(f"{what} does not match the body and timestamp")


def sign(body: bytes, params: Params, keys: KeyRing, now: float) -> SignedRequest:
    stamp_text = str(round(now * 1000))
    key = private_key_of(keys, ed25519.Ed25519PrivateKey, name)
    signature = key.sign(_signed(body, stamp_text, params))
    return SignedRequest(
        body=body,
        headers={params.signature_header: signature.hex(), params.timestamp_header: stamp_text},
    )


def required_keys(params: Params) -> frozenset[str]:
    return PUBLIC_KEYS


# No secret keys this scheme; the Protocol asks every scheme (secrets given anyway are text).
secret_key = text_key


def _spellings(header: str) -> tuple[str, ...]:
    """The configured name, then its underscore and hyphen variants, lower-cased."""
    lowered = header.lower()
    return tuple(dict.fromkeys((lowered, lowered.replace("-", "_"), lowered.replace("_", "-"))))


def _header(headers: Headers, header: str) -> str | None:
    for spelling in _spellings(header):
        value = headers.get(spelling)
        if value:
            return value
    return None


def _signed(body: bytes, stamp_text: str, params: Params) -> bytes:
    message = body + b"|" + stamp_text.encode("ascii")
    if params.prehash == "none":
        return message
    digest = hashlib.sha256(message).digest()
    return hashlib.sha256(digest).digest() if params.prehash == "sha256d" else digest

"""The Standard Webhooks scheme (https://www.standardwebhooks.com), ``v1`` and ``v1a``.

Headers ``webhook-id``, ``webhook-timestamp`` (UNIX seconds) and
``webhook-signature``: a space-separated list of ``<version>,<base64>``
entries. The signed content is ``<id>.<timestamp>.<body>``. ``version`` says
which entries are checked; entries of any other version are skipped, so a
sender may send both during a move from one to the other:

- ``v1`` (the default): HMAC-SHA256, 32 bytes, keyed with the base64-decoded
  part of a ``whsec_<base64>`` secret (``secrets``); a secret without the
  prefix is taken as base64 too, as the reference library does.
- ``v1a``: Ed25519, 64 bytes, checked with ``public_keys`` (``whpk_<base64>``
  of the 32 raw key bytes, or any form :func:`verifiers.keys.load_public_key`
  reads); ``sign`` uses the ``whsk_`` private key. A signature verifies if any
  ``v1a`` entry verifies under any public key, so a rotation works with one
  entry per key. Nothing secret is compared, so no constant-time compare is
  needed; each check costs an Ed25519 verification, at most entries x keys.

Compared with the reference library (``standardwebhooks/webhooks.py``):

- a malformed signature list (an entry without a comma, bad base64, a ``v1``
  signature that is not 32 bytes) raises :class:`MalformedSignature`, where the
  reference raises an unhandled ``ValueError`` or ``binascii.Error``;
- the timestamp must be an integer (the reference also takes ``1.5`` through
  ``float``); like the reference, the timestamp is signed as the decimal
  integer it parses to;
- a secret that is not base64 is a configuration error
  (:class:`~verifiers.keys.UnusableKey`), where the reference silently drops
  the characters it cannot decode;
- the body is signed as bytes, never decoded, so a body that is not UTF-8 is
  refused by signature rather than by an exception;
- that library has no ``v1a``: here ``v1a`` follows the Go reference
  (``libraries/go/webhook_asymmetric.go``), except that a ``v1a`` entry that
  is not base64 or not 64 bytes is a :class:`MalformedSignature`, where the
  Go reference counts it as not matching.

The tolerance (300 s by default) applies in both directions and must be
greater than zero.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from dataclasses import dataclass
from typing import Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ed25519

from verifiers.base import (
    PUBLIC_KEYS,
    SECRETS,
    Headers,
    SignedRequest,
    Verified,
    check_choices,
    check_tolerance,
    check_tolerance_option,
    decode_base64,
    matches,
    parse_digits,
    require_header,
)
from verifiers.errors import (
    MalformedSignature,
    MissingSignature,
    MissingTimestamp,
    SignatureMismatch,
)
from verifiers.keys import (
    KeyRing,
    Secret,
    UnusableKey,
    first_secret,
    private_key_of,
    public_keys_of,
)

name = "standard-webhooks"
checks_authorization = False

_SECRET_PREFIX = b"whsec_"
# Decoded signature length per version: HMAC-SHA256, Ed25519.
_SIGNATURE_BYTES = {"v1": hashlib.sha256().digest_size, "v1a": 64}
# A sender sends one entry per active key: two during a rotation.
MAX_ENTRIES = 8


@dataclass(frozen=True, slots=True)
class Params:
    timestamp_tolerance_s: int = 300
    version: Literal["v1", "v1a"] = "v1"

    def __post_init__(self) -> None:
        check_choices(self)
        check_tolerance_option(self)


def verify(body: bytes, headers: Headers, params: Params, keys: KeyRing, now: float) -> Verified:
    if params.version == "v1a":
        public_keys = public_keys_of(keys, ed25519.Ed25519PublicKey, name)
    else:
        hmac_keys = [_hmac_key(secret, index) for index, secret in enumerate(keys.secrets)]
    message_id = require_header(headers, "webhook-id")
    stamp_text = headers.get("webhook-timestamp")
    if not stamp_text:
        raise MissingTimestamp("the webhook-timestamp header is missing")
    timestamp = parse_digits(stamp_text, "the webhook-timestamp header")
    signatures = _signatures(require_header(headers, "webhook-signature"), params.version)
    check_tolerance(timestamp, now, params.timestamp_tolerance_s)
    content = _content(message_id, timestamp, body)
    if params.version == "v1a":
        index = _verify_ed25519(public_keys, signatures, content)
        if index is not None:
            return Verified(key_index=index, timestamp=float(timestamp))
    else:
        for index, key in enumerate(hmac_keys):
            if matches(hmac.digest(key, content, "sha256"), signatures):
                return Verified(key_index=index, timestamp=float(timestamp))
    raise SignatureMismatch(f"no {params.version} entry of webhook-signature matches the body")


def sign(body: bytes, params: Params, keys: KeyRing, now: float) -> SignedRequest:
    """Sign as a sender would; the message id is derived from the timestamp and body.

    A derived id keeps ``sign`` pure: the same body signed in the same second
    is the same message (as a retry would be), any other is a new one.
    """
    timestamp = int(now)
    message_id = "msg_" + hashlib.sha256(f"{timestamp}.".encode() + body).hexdigest()[:24]
    content = _content(message_id, timestamp, body)
    if params.version == "v1a":
        signature = private_key_of(keys, ed25519.Ed25519PrivateKey, name).sign(content)
    else:
        signature = hmac.digest(_hmac_key(first_secret(keys, name), 0), content, "sha256")
    encoded = base64.b64encode(signature).decode("ascii")
    return SignedRequest(
        body=body,
        headers={
            "webhook-id": message_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": f"{params.version},{encoded}",
        },
    )


def required_keys(params: Params) -> frozenset[str]:
    return PUBLIC_KEYS if params.version == "v1a" else SECRETS


def secret_key(secret: Secret) -> bytes:
    """The HMAC key a ``whsec_<base64>`` secret stands for: its base64 part, decoded (a
    24-byte key is 32 characters of base64). :class:`UnusableKey` if that is not base64."""
    return _hmac_key(secret, None)


def _hmac_key(secret: Secret, index: int | None) -> bytes:
    encoded = secret.value.strip().removeprefix(_SECRET_PREFIX)
    try:
        key = base64.b64decode(encoded + b"=" * (-len(encoded) % 4), validate=True)
    except binascii.Error as exc:
        raise UnusableKey(f"{_which(index)} is not whsec_<base64> or base64") from exc
    if not key:
        raise UnusableKey(f"{_which(index)} is empty")
    return key


def _which(index: int | None) -> str:
    return "the secret" if index is None else f"secret #{index}"


def _signatures(value: str, wanted: str) -> list[bytes]:
    """The decoded entries of version ``wanted``; other versions are skipped."""
    size = _SIGNATURE_BYTES[wanted]
    signatures: list[bytes] = []
    for entry in value.split(" "):
        if not entry:  # tolerate doubled spaces
            continue
        version, comma, encoded = entry.partition(",")
        if not comma or not version:
            raise MalformedSignature(
                "the webhook-signature header must be a space-separated list of <version>,<base64>"
            )
        if version != wanted:
            continue
        what = f"a {wanted} entry of the webhook-signature header"
        if len(signatures) == MAX_ENTRIES:
            # Each entry costs a check per key (an Ed25519 verification for v1a).
            raise MalformedSignature(
                f"the webhook-signature header has more than {MAX_ENTRIES} {wanted} entries"
            )
        raw = decode_base64(encoded, what)
        if len(raw) != size:
            raise MalformedSignature(f"{what} is not {size} bytes")
        signatures.append(raw)
    if not signatures:
        raise MissingSignature(f"the webhook-signature header has no {wanted} signature")
    return signatures


def _verify_ed25519(
    public_keys: tuple[ed25519.Ed25519PublicKey, ...], signatures: list[bytes], content: bytes
) -> int | None:
    """Index of the first public key under which some entry verifies, else None."""
    for index, key in enumerate(public_keys):
        for signature in signatures:
            try:
                key.verify(signature, content)
            except InvalidSignature:
                continue
            return index
    return None


def _content(message_id: str, timestamp: int, body: bytes) -> bytes:
    try:
        # surrogateescape gives back a header's original bytes where the HTTP
        # layer decoded bytes that are not UTF-8 that way.
        prefix = f"{message_id}.{timestamp}.".encode("utf-8", "surrogateescape")
    except UnicodeEncodeError as exc:
        raise MalformedSignature("the webhook-id header is not valid text") from exc
    return prefix + body

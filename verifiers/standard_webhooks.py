"""The Standard Webhooks scheme (https://www.standardwebhooks.com), symmetric ``v1``.

Headers ``webhook-id``, ``webhook-timestamp`` (UNIX seconds) and
``webhook-signature``: a space-separated list of ``<version>,<base64>``
entries, of which ``v1`` ones (HMAC-SHA256) are checked and any other
version (``v1a`` asymmetric, future ones) is skipped. The signed content is
``<id>.<timestamp>.<body>``, keyed with the base64-decoded part of a
``whsec_<base64>`` secret; a secret without the prefix is taken as base64 too,
as the reference library does.

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
  refused by signature rather than by an exception.

The tolerance (300 s by default) applies in both directions.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from dataclasses import dataclass

from verifiers.base import (
    SECRETS,
    Headers,
    SignedRequest,
    Verified,
    check_tolerance,
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
from verifiers.keys import KeyRing, Secret, UnusableKey, first_secret

name = "standard-webhooks"

_SECRET_PREFIX = b"whsec_"
_VERSION = "v1"


@dataclass(frozen=True, slots=True)
class Params:
    timestamp_tolerance_s: int = 300


def verify(body: bytes, headers: Headers, params: Params, keys: KeyRing, now: float) -> Verified:
    hmac_keys = [_hmac_key(secret, index) for index, secret in enumerate(keys.secrets)]
    message_id = require_header(headers, "webhook-id")
    stamp_text = headers.get("webhook-timestamp")
    if not stamp_text:
        raise MissingTimestamp("the webhook-timestamp header is missing")
    timestamp = parse_digits(stamp_text, "the webhook-timestamp header")
    signatures = _v1_signatures(require_header(headers, "webhook-signature"))
    check_tolerance(timestamp, now, params.timestamp_tolerance_s)
    content = _content(message_id, timestamp, body)
    for index, key in enumerate(hmac_keys):
        if matches(hmac.digest(key, content, "sha256"), signatures):
            return Verified(key_index=index, timestamp=float(timestamp))
    raise SignatureMismatch("no webhook-signature entry matches the body")


def sign(body: bytes, params: Params, keys: KeyRing, now: float) -> SignedRequest:
    """Sign as a sender would; the message id is derived from the timestamp and body.

    A derived id keeps ``sign`` pure: the same body signed in the same second
    is the same message (as a retry would be), any other is a new one.
    """
    timestamp = int(now)
    message_id = "msg_" + hashlib.sha256(f"{timestamp}.".encode() + body).hexdigest()[:24]
    key = _hmac_key(first_secret(keys, name), 0)
    signature = hmac.digest(key, _content(message_id, timestamp, body), "sha256")
    return SignedRequest(
        body=body,
        headers={
            "webhook-id": message_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": f"{_VERSION},{base64.b64encode(signature).decode('ascii')}",
        },
    )


def required_keys(params: Params) -> frozenset[str]:
    return SECRETS


def _hmac_key(secret: Secret, index: int) -> bytes:
    encoded = secret.value.strip().removeprefix(_SECRET_PREFIX)
    try:
        key = base64.b64decode(encoded + b"=" * (-len(encoded) % 4), validate=True)
    except binascii.Error as exc:
        raise UnusableKey(f"secret #{index} is not whsec_<base64> or base64") from exc
    if not key:
        raise UnusableKey(f"secret #{index} is empty")
    return key


def _v1_signatures(value: str) -> list[bytes]:
    signatures: list[bytes] = []
    for entry in value.split(" "):
        if not entry:  # tolerate doubled spaces
            continue
        version, comma, encoded = entry.partition(",")
        if not comma or not version:
            raise MalformedSignature(
                "the webhook-signature header must be a space-separated list of <version>,<base64>"
            )
        if version != _VERSION:
            continue
        raw = decode_base64(encoded, "a v1 entry of the webhook-signature header")
        if len(raw) != hashlib.sha256().digest_size:
            raise MalformedSignature("a v1 entry of the webhook-signature header is not 32 bytes")
        signatures.append(raw)
    if not signatures:
        raise MissingSignature("the webhook-signature header has no v1 signature")
    return signatures


def _content(message_id: str, timestamp: int, body: bytes) -> bytes:
    try:
        # surrogateescape gives back a header's original bytes where the HTTP
        # layer decoded bytes that are not UTF-8 that way.
        prefix = f"{message_id}.{timestamp}.".encode("utf-8", "surrogateescape")
    except UnicodeEncodeError as exc:
        raise MalformedSignature("the webhook-id header is not valid text") from exc
    return prefix + body

"""Square's webhook signature: ``x-square-hmacsha256-signature``.

The signature is the base64 HMAC-SHA256, keyed with the subscription's
signature key as text, of the notification URL followed by the raw body. The
URL is the subscription's as registered in the Square Developer Console, byte
for byte: Square signs the URL it posts to, so a URL spelled otherwise here
(another scheme, a trailing slash, a query string) fails every webhook. It is
an instance parameter, ``notification_url``, which has no default: the field's
``required`` metadata makes the config loader refuse an instance without it,
naming the key; one built otherwise cannot verify anything, and says so as an
unusable key (500) rather than blaming every sender with a 401.

Not ``hmac-header`` with a template: the URL is required, and it is signed as
given, where a template would read ``{timestamp}`` or ``{body}`` inside it.

Compared with the Square SDK (``square/utils/webhooks_helper.py``, the legacy
SDK's ``webhooks_helper.py`` alike): a signature that is not base64 or not 32
bytes is a :class:`~verifiers.errors.MalformedSignature`, where the SDK reports
it as not matching; an empty body is checked like any other, where the SDK
refuses it unchecked. The legacy ``x-square-signature`` header (HMAC-SHA1) is
not read.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass, field

from verifiers.base import (
    SECRETS,
    Headers,
    SignedRequest,
    Verified,
    decode_base64,
    matching_secret,
    require_header,
    text_key,
)
from verifiers.errors import MalformedSignature, SignatureMismatch
from verifiers.keys import KeyRing, UnusableKey, first_secret

name = "square"
checks_authorization = False

HEADER = "x-square-hmacsha256-signature"


@dataclass(frozen=True, slots=True)
class Params:
    notification_url: str = field(
        default="",
        metadata={
            "required": "the subscription's notification URL exactly as registered with "
            "Square, which signs it (https://...)"
        },
    )

    def __post_init__(self) -> None:
        url = self.notification_url
        if url and (not url.startswith(("https://", "http://")) or url != url.strip()):
            raise ValueError(
                "notification_url must be the subscription's URL as registered with Square, "
                "starting with https:// (no whitespace around it)"
            )


def verify(body: bytes, headers: Headers, params: Params, keys: KeyRing, now: float) -> Verified:
    prefix = _url(params)
    what = f"the {HEADER} header"
    provided = decode_base64(require_header(headers, HEADER), what)
    if len(provided) != hashlib.sha256().digest_size:
        raise MalformedSignature(f"{what} is not 32 bytes")
    index = matching_secret(keys, prefix + body, [provided])
    if index is None:
        raise SignatureMismatch(f"{what} does not match the notification URL and body")
    return Verified(key_index=index)


def sign(body: bytes, params: Params, keys: KeyRing, now: float) -> SignedRequest:
    digest = hmac.digest(first_secret(keys, name).value, _url(params) + body, "sha256")
    return SignedRequest(body=body, headers={HEADER: base64.b64encode(digest).decode("ascii")})


def required_keys(params: Params) -> frozenset[str]:
    return SECRETS


def _url(params: Params) -> bytes:
    if not params.notification_url:
        raise UnusableKey(
            "the square scheme signs the notification URL: set notification_url to the "
            "subscription's URL"
        )
    return params.notification_url.encode("utf-8")


secret_key = text_key

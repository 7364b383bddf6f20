"""HMAC of the raw body (or of a template around it) carried in one header.

Serves ``usdt-invoice`` (document 003: ``X-Webhook-Signature``, lowercase hex
HMAC-SHA256 of the body), ``github`` (``X-Hub-Signature-256: sha256=<hex>``),
the generic ``hmac`` profile, whose every option is configuration, and the
providers that sign the raw body alike: GoCardless (``Webhook-Signature``),
Razorpay (``X-Razorpay-Signature``), Checkout.com (``Cko-Signature``) and
Coinbase Commerce (``X-CC-Webhook-Signature``), all lowercase hex
HMAC-SHA256 keyed with the secret's text.

Checkout.com also sends an ``Authorization`` value the merchant chooses: an
instance whose key ring holds ``authorizations`` refuses a request without one
of them (:func:`~verifiers.base.check_authorization`), before any HMAC work.
``refusal_status`` is the HTTP status of a refused request where the provider
documents one other than 401: GoCardless asks for 498 (Token Invalid). It
replaces the 401 of every sender's failure; a body the scheme cannot read stays
a 400 and a key that does not fit the scheme a 500.

The signed message is ``template`` with ``{timestamp}`` taken from
``timestamp_header`` and ``{body}`` the exact raw bytes received. The body is
spliced in as bytes, never formatted, so a body containing ``{timestamp}`` is
still signed as sent. A template must hold ``{body}`` exactly once, and
``{timestamp}`` exactly when ``timestamp_header`` is set: a checked timestamp
that the signature does not cover would bound nothing.

``json_stringify_fallback`` (document 003's Node example signs
``JSON.stringify(JSON.parse(body))``) also accepts a signature over that
re-serialized form, but only for a body that means exactly what the form
means, so that every body verifying under one signature reads alike: UTF-8
(``JSON.parse`` in the provider's example reads text, not UTF-16), keys unique
at every level, no lone surrogates, at most ``MAX_FALLBACK_VALUES`` values
(the re-serialization is work an unsigned request can ask for), and every
number already written as JavaScript writes it (``150``, not ``150.0``: the
signed form says ``150`` and the body must not say anything else).
:func:`signed_content` gives the bytes the signature pins, the re-serialized
form when the option is on, so that the layout variants of one message share
one identity.
"""

from __future__ import annotations

import base64
import hmac
import json
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

import orjson

from verifiers.base import (
    SECRETS,
    Headers,
    SignedRequest,
    Verified,
    authorization_header,
    check_authorization,
    check_choices,
    check_tolerance,
    check_tolerance_option,
    decode_base64,
    decode_hex,
    matches,
    parse_digits,
    reject_constant,
    require_header,
    text_key,
    unique_members,
)
from verifiers.errors import (
    MalformedSignature,
    MissingTimestamp,
    SignatureMismatch,
    VerificationError,
)
from verifiers.keys import KeyRing, first_secret

name = "hmac-header"
checks_authorization = True

Algorithm = Literal["sha256", "sha1", "sha512"]


@dataclass(frozen=True, slots=True)
class Params:
    header: str = "x-webhook-signature"
    algorithm: Algorithm = "sha256"
    encoding: Literal["hex", "base64"] = "hex"
    prefix: str = ""
    template: str = "{body}"
    timestamp_header: str = ""
    timestamp_tolerance_s: int = 300
    json_stringify_fallback: bool = False
    refusal_status: int = 401

    def __post_init__(self) -> None:
        check_choices(self)
        check_tolerance_option(self)
        if not 400 <= self.refusal_status < 500:
            raise ValueError("refusal_status must be a 4xx status")
        if self.template.count("{body}") != 1:
            raise ValueError("template must hold {body} exactly once")
        if bool(self.timestamp_header) != ("{timestamp}" in self.template):
            raise ValueError(
                "a timestamp_header needs {timestamp} in the template (a timestamp the "
                "signature does not cover bounds nothing), and {timestamp} needs a timestamp_header"
            )


MAX_FALLBACK_VALUES = 1024

# Looked up, not computed: ``hashlib.new(algorithm)`` per request is a hash object built
# only to read its size.
_DIGEST_SIZES: dict[str, int] = {"sha256": 32, "sha1": 20, "sha512": 64}


def verify(body: bytes, headers: Headers, params: Params, keys: KeyRing, now: float) -> Verified:
    try:
        check_authorization(headers, keys)
        provided = _decode_signature(require_header(headers, params.header.lower()), params)
        timestamp, stamp_text = _timestamp(headers, params, now)
        messages = [_message(body, params, stamp_text)]
        if params.json_stringify_fallback:
            restringified = _json_stringify(body)
            if restringified is not None and restringified != body:
                messages.append(_message(restringified, params, stamp_text))
        for index, secret in enumerate(keys.secrets):
            digests = [secret.mac(message, params.algorithm) for message in messages]
            if matches(provided, digests):
                return Verified(key_index=index, timestamp=timestamp)
        raise SignatureMismatch(f"the {params.header} signature does not match the body")
    except VerificationError as error:
        if error.status == 401:  # the sender's failures; not a 400 body or a 500 key
            error.status = params.refusal_status
        raise


def sign(body: bytes, params: Params, keys: KeyRing, now: float) -> SignedRequest:
    stamp_text = str(int(now))
    digest = hmac.digest(
        first_secret(keys, name).value, _message(body, params, stamp_text), params.algorithm
    )
    encoded = digest.hex() if params.encoding == "hex" else base64.b64encode(digest).decode()
    headers = {params.header: params.prefix + encoded, **authorization_header(keys)}
    if params.timestamp_header:
        headers[params.timestamp_header] = stamp_text
    return SignedRequest(body=body, headers=headers)


def required_keys(params: Params) -> frozenset[str]:
    return SECRETS


secret_key = text_key


def signed_content(body: bytes, params: Params) -> bytes:
    """The body as the signature pins it: its JSON.stringify form where the fallback applies."""
    if params.json_stringify_fallback:
        return _json_stringify(body) or body
    return body


def _decode_signature(value: str, params: Params) -> bytes:
    if params.prefix:
        if not value.startswith(params.prefix):
            raise MalformedSignature(
                f"the {params.header} header must start with {params.prefix!r}"
            )
        value = value[len(params.prefix) :]
    raw = (
        decode_hex(value, f"the {params.header} header")
        if params.encoding == "hex"
        else decode_base64(value, f"the {params.header} header")
    )
    if len(raw) != _DIGEST_SIZES[params.algorithm]:
        raise MalformedSignature(f"the {params.header} header has the wrong length")
    return raw


def _timestamp(headers: Headers, params: Params, now: float) -> tuple[float | None, str]:
    if not params.timestamp_header:
        return None, ""
    text = headers.get(params.timestamp_header.lower())
    if not text:
        raise MissingTimestamp(f"the {params.timestamp_header} header is missing")
    timestamp = float(parse_digits(text, f"the {params.timestamp_header} header"))
    check_tolerance(timestamp, now, params.timestamp_tolerance_s)
    return timestamp, text


def _message(body: bytes, params: Params, stamp_text: str) -> bytes:
    if params.template == "{body}":  # the common case: the body itself, not a copy of it
        return body
    before, _, after = params.template.partition("{body}")
    return (
        before.replace("{timestamp}", stamp_text).encode()
        + body
        + after.replace("{timestamp}", stamp_text).encode()
    )


def _json_stringify(body: bytes) -> bytes | None:
    """The body as JavaScript's ``JSON.stringify(JSON.parse(body))`` writes it, or None.

    Compact separators, key order kept, non-ASCII unescaped, numbers as
    JavaScript prints its doubles. None (no fallback) for a body that is not
    one strictly read JSON text or whose numbers are not already written that
    way (see the module docstring): the fallback must never let a body say
    something its signed form does not.
    """
    if body.count(b",") + body.count(b"[") + body.count(b"{") > MAX_FALLBACK_VALUES:
        return None
    try:
        parsed = json.loads(
            body.decode("utf-8"),
            parse_float=_javascript_number,
            parse_int=_javascript_number,
            parse_constant=reject_constant,
            object_pairs_hook=unique_members,
        )
        # orjson writes strings as JSON.stringify does; it refuses lone surrogates and
        # nesting past 254 levels (JSONEncodeError), which JSON.parse would not have read alike.
        return orjson.dumps(parsed)
    except (ValueError, RecursionError, orjson.JSONEncodeError):  # UnicodeError is a ValueError
        return None


def _javascript_number(text: str) -> orjson.Fragment:
    """The number's own text, refused (ValueError) unless it is how JavaScript writes its double."""
    if _javascript_text(float(text)) != text:
        raise ValueError("a number is not written as JavaScript writes it")
    return orjson.Fragment(text.encode("ascii"))


def _javascript_text(value: float) -> str:
    """ECMAScript ``Number::toString`` of a finite double (shortest round-trip digits)."""
    if value == 0:
        return "0"
    sign, digits_tuple, exponent = Decimal(repr(value)).normalize().as_tuple()
    digits = "".join(map(str, digits_tuple))
    k, n = len(digits), len(digits) + int(exponent)  # value = 0.<digits> x 10^n
    if k <= n <= 21:
        text = digits + "0" * (n - k)
    elif 0 < n <= 21:
        text = digits[:n] + "." + digits[n:]
    elif -6 < n <= 0:
        text = "0." + "0" * -n + digits
    else:
        mantissa = digits[0] + ("." + digits[1:] if k > 1 else "")
        text = f"{mantissa}e{'+' if n - 1 >= 0 else '-'}{abs(n - 1)}"
    return "-" + text if sign else text

"""HMAC of the raw body (or of a template around it) carried in one header.

Serves ``usdt-invoice`` (document 003: ``X-Webhook-Signature``, lowercase hex
HMAC-SHA256 of the body), ``github`` (``X-Hub-Signature-256: sha256=<hex>``)
and the generic ``hmac`` profile, whose every option is configuration.

The signed message is ``template`` with ``{timestamp}`` taken from
``timestamp_header`` and ``{body}`` the exact raw bytes received. The body is
spliced in as bytes, never formatted, so a body containing ``{timestamp}`` is
still signed as sent.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Literal

from verifiers.base import (
    SECRETS,
    Headers,
    SignedRequest,
    Verified,
    check_choices,
    check_tolerance,
    decode_base64,
    decode_hex,
    matches,
    parse_digits,
    require_header,
)
from verifiers.errors import (
    MalformedSignature,
    MissingTimestamp,
    SignatureMismatch,
)
from verifiers.keys import KeyRing, first_secret

name = "hmac-header"

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

    def __post_init__(self) -> None:
        check_choices(self)


def verify(body: bytes, headers: Headers, params: Params, keys: KeyRing, now: float) -> Verified:
    provided = _decode_signature(require_header(headers, params.header.lower()), params)
    timestamp, stamp_text = _timestamp(headers, params, now)
    messages = [_message(body, params, stamp_text)]
    if params.json_stringify_fallback:
        restringified = _json_stringify(body)
        if restringified is not None and restringified != body:
            messages.append(_message(restringified, params, stamp_text))
    for index, secret in enumerate(keys.secrets):
        digests = [hmac.digest(secret.value, message, params.algorithm) for message in messages]
        if matches(provided, digests):
            return Verified(key_index=index, timestamp=timestamp)
    raise SignatureMismatch(f"the {params.header} signature does not match the body")


def sign(body: bytes, params: Params, keys: KeyRing, now: float) -> SignedRequest:
    stamp_text = str(int(now))
    digest = hmac.digest(
        first_secret(keys, name).value, _message(body, params, stamp_text), params.algorithm
    )
    encoded = digest.hex() if params.encoding == "hex" else base64.b64encode(digest).decode()
    headers = {params.header: params.prefix + encoded}
    if params.timestamp_header:
        headers[params.timestamp_header] = stamp_text
    return SignedRequest(body=body, headers=headers)


def required_keys(params: Params) -> frozenset[str]:
    return SECRETS


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
    if len(raw) != hashlib.new(params.algorithm).digest_size:
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
    before, _, after = params.template.partition("{body}")
    return (
        before.replace("{timestamp}", stamp_text).encode()
        + body
        + after.replace("{timestamp}", stamp_text).encode()
    )


def _json_stringify(body: bytes) -> bytes | None:
    """The body as JavaScript's ``JSON.stringify(JSON.parse(body))`` writes it.

    Compact separators, key order kept, non-ASCII unescaped, and numbers as
    JavaScript prints its doubles (``150.0000`` becomes ``150``). This goes
    through binary floats on purpose: it reproduces what the provider's
    JavaScript signed. The result is only compared, never published. Used
    only when the ``json_stringify_fallback`` option asks for it.
    """
    try:
        parsed = json.loads(body, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        return None
    return json.dumps(_as_javascript(parsed), separators=(",", ":"), ensure_ascii=False).encode()


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def _as_javascript(value: object) -> object:
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e21:
        return int(value)
    if isinstance(value, dict):
        return {key: _as_javascript(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_as_javascript(item) for item in value]
    return value

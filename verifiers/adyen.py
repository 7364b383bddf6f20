"""Adyen's webhook signatures: per notification item (``form="items"``) or over the body.

**Standard webhooks** (``form="items"``, the default) post
``{"live": ..., "notificationItems": [{"NotificationRequestItem": {...}}, ...]}``,
one or more items. Each item carries its own signature in
``additionalData.hmacSignature``: the base64 HMAC-SHA256, keyed with the
hex-decoded HMAC key, of eight of its fields joined by ``:``::

    pspReference:originalReference:merchantAccountCode:merchantReference:
    amount.value:amount.currency:eventCode:success

A missing or null field is the empty string. Values are joined as they are,
unescaped, as Adyen's SDKs build the string today (``Adyen/util.py``
``generate_notification_sig``). Its older versions escaped ``:`` (until 2021)
and ``\\`` (until 2023) in notifications too; the SDK's own fixtures, items
signed by Adyen's test platform with both characters in the merchant
reference, verify unescaped. The SDKs escape only in the key-value signature
of hosted payment pages.

Every item must verify: a request with one bad item is refused whole, so
that Adyen retries it whole. :func:`read` and :func:`verify_item` give the
same checks item by item, for a pipeline that makes one event per item.

**Balance Platform and Management webhooks** (``form="payload"``) carry the
base64 HMAC-SHA256 of the raw body, keyed alike, in the ``HmacSignature``
header (``header``), as ``is_valid_hmac_payload`` checks it.

Both forms may also be sent with HTTP Basic credentials configured in the
Customer Area: an instance whose key ring holds ``authorizations``
(:func:`verifiers.keys.basic_authorization`) refuses a request without them,
compared in constant time, before any other work.

**One signature, one meaning.** The string joins values with an unescaped
``:``, so ``merchantReference: "A:B"`` beside ``value: 1`` and
``merchantReference: "A"`` beside ``value: "B:1"`` would sign alike. Only the
merchant's reference holds free text; every other signed field (Adyen's own
references, the account code, the amount, the event code, ``true``/``false``)
never holds ``:``. An item where one of those does is refused
(:class:`~verifiers.errors.AmbiguousBody`, 400): then the string splits one
way only. The signed fields must be strings, and ``amount.value`` an integer
(minor units), as Adyen sends them; anything else is a
:class:`~verifiers.errors.MalformedBody` (400). Only those eight fields are
signed: :attr:`Item.signed` holds them as the string has them, and a reader
must take the amount, the references, the event code and the outcome from
there; the item's other members (``eventDate``, ``reason``, the rest of
``additionalData``) are not covered and anyone holding a signed item could
change them.

**Bounded work.** The body is read and every item's signature decoded (present,
base64, 32 bytes) before any HMAC; more than :data:`MAX_ITEMS` items is a
``MalformedBody``. Adyen does not publish a batch size: the bound caps the
HMACs one unauthenticated request can ask for at ``MAX_ITEMS`` per secret.

Compared with Adyen's Python SDK: every item is checked, where
``is_valid_hmac_notification`` checks the first one only; a null field is the
empty string, as Adyen's documentation and its Java and .NET SDKs have it,
where Python's ``str(None)`` gives ``"None"``; a key that is not hex is a
configuration error (:class:`~verifiers.keys.UnusableKey`, 500).
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from verifiers.base import (
    SECRETS,
    Headers,
    SignedRequest,
    Verified,
    authorization_header,
    check_authorization,
    check_choices,
    decode_base64,
    matching_secret,
    reject_constant,
    require_header,
    unique_members,
)
from verifiers.errors import (
    AmbiguousBody,
    MalformedBody,
    MalformedSignature,
    MissingSignature,
    SignatureMismatch,
)
from verifiers.keys import KeyRing, Secret, UnusableKey, first_secret

name = "adyen"
checks_authorization = True

MAX_ITEMS = 100

SIGNED_FIELDS = (
    "pspReference",
    "originalReference",
    "merchantAccountCode",
    "merchantReference",
    "value",
    "currency",
    "eventCode",
    "success",
)
"""The signed fields in the order the string joins them (``value``, ``currency``: of ``amount``)."""

# The one signed field whose value is the merchant's own text (see the module docstring).
_FREE_TEXT = "merchantReference"
_SIGNATURE_BYTES = hashlib.sha256().digest_size


@dataclass(frozen=True, slots=True)
class Params:
    form: Literal["items", "payload"] = "items"
    header: str = "hmacsignature"
    """The ``payload`` form's signature header."""

    def __post_init__(self) -> None:
        check_choices(self)


@dataclass(frozen=True, slots=True)
class Item:
    """One ``NotificationRequestItem``, read but not verified (:func:`verify_item` does that)."""

    position: int
    """Its index in ``notificationItems``."""
    request_item: Mapping[str, Any]
    """The item as parsed, every member: only :attr:`signed` is covered by the signature."""
    signed: Mapping[str, str]
    """The eight signed fields (:data:`SIGNED_FIELDS`) as the signed string writes them."""
    content: bytes
    """The signed string."""
    signature: bytes
    """``additionalData.hmacSignature``, decoded."""


def read(body: bytes) -> tuple[Item, ...]:
    """The body's items with what each signature covers, checking no signature.

    Raises ``MalformedBody`` (or ``AmbiguousBody``), ``MissingSignature`` or
    ``MalformedSignature`` where :func:`verify` would, before any HMAC work.
    """
    items = []
    for position, request_item in enumerate(_request_items(_parse(body))):
        signed, content = _signed(request_item, position)
        signature = _signature(request_item, position)
        items.append(Item(position, request_item, signed, content, signature))
    return tuple(items)


def verify_item(item: Item, keys: KeyRing) -> int:
    """The index of the secret the item's signature was made with, else ``SignatureMismatch``.

    ``keys`` is the instance's ring, its secrets the hex keys as configured.
    """
    return _verify_item(item, _hmac_keys(keys))


def verify(body: bytes, headers: Headers, params: Params, keys: KeyRing, now: float) -> Verified:
    """Every item verified (``items``) or the body (``payload``).

    ``key_index`` is the highest index any item matched: whether a rotated-out
    key is still in use by any of them.
    """
    check_authorization(headers, keys)
    hmac_keys = _hmac_keys(keys)
    if params.form == "payload":
        what = f"the {params.header} header"
        provided = decode_base64(require_header(headers, params.header.lower()), what)
        if len(provided) != _SIGNATURE_BYTES:
            raise MalformedSignature(f"{what} is not 32 bytes")
        index = matching_secret(hmac_keys, body, [provided])
        if index is None:
            raise SignatureMismatch(f"{what} does not match the body")
        return Verified(key_index=index)
    return Verified(key_index=max(_verify_item(item, hmac_keys) for item in read(body)))


def sign(body: bytes, params: Params, keys: KeyRing, now: float) -> SignedRequest:
    """Sign as Adyen would: the header (``payload``), or each item's ``hmacSignature``
    set (``items``) and the notification written out again as JSON."""
    secret = _hmac_key(first_secret(keys, name), 0).value
    if params.form == "payload":
        signature = base64.b64encode(hmac.digest(secret, body, "sha256")).decode("ascii")
        return SignedRequest(
            body=body, headers={params.header: signature, **authorization_header(keys)}
        )
    document = _parse(body)
    for position, request_item in enumerate(_request_items(document)):
        _, content = _signed(request_item, position)
        additional = request_item.setdefault("additionalData", {})
        if not isinstance(additional, dict):
            raise MalformedBody(f"notificationItems[{position}].additionalData is not an object")
        digest = hmac.digest(secret, content, "sha256")
        additional["hmacSignature"] = base64.b64encode(digest).decode("ascii")
    # json, not orjson: it writes back integers of any size the reader took. Compact UTF-8,
    # as Adyen writes its notifications; escaped where text holds a lone surrogate.
    try:
        body = json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        body = json.dumps(document, separators=(",", ":")).encode("ascii")
    return SignedRequest(body=body, headers=authorization_header(keys))


def required_keys(params: Params) -> frozenset[str]:
    return SECRETS


def signed_content(body: bytes, params: Params) -> bytes:
    """What the signatures pin: the body (``payload``), or the items' signed strings as a
    JSON array, so that items differing only in unsigned members share one identity.

    Call it on a body :func:`verify` accepted; it raises where :func:`read` does.
    """
    if params.form == "payload":
        return body
    return orjson.dumps([item.content.decode("utf-8") for item in read(body)])


def _verify_item(item: Item, hmac_keys: KeyRing) -> int:
    index = matching_secret(hmac_keys, item.content, [item.signature])
    if index is None:
        raise SignatureMismatch(
            f"the hmacSignature of notificationItems[{item.position}] does not match the item"
        )
    return index


# Made once: json.loads with options builds a decoder per call.
_DECODER = json.JSONDecoder(parse_constant=reject_constant, object_pairs_hook=unique_members)


def _parse(body: bytes) -> Any:
    try:
        return _DECODER.decode(body.decode("utf-8"))
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeError are ValueErrors
        raise MalformedBody("the body is not valid JSON") from exc


def _request_items(document: Any) -> list[dict[str, Any]]:
    if not isinstance(document, dict):
        raise MalformedBody("the body is not a JSON object")
    items = document.get("notificationItems")
    if not isinstance(items, list) or not items:
        raise MalformedBody("the body has no notificationItems list")
    if len(items) > MAX_ITEMS:
        raise MalformedBody(f"the body has more than {MAX_ITEMS} notificationItems")
    request_items = []
    for position, wrapper in enumerate(items):
        request_item = wrapper.get("NotificationRequestItem") if isinstance(wrapper, dict) else None
        if not isinstance(request_item, dict):
            raise MalformedBody(f"notificationItems[{position}] has no NotificationRequestItem")
        request_items.append(request_item)
    return request_items


def _signed(request_item: Mapping[str, Any], position: int) -> tuple[dict[str, str], bytes]:
    """The signed fields of one item and the string they make."""
    where = f"notificationItems[{position}]"
    amount = request_item.get("amount")
    if amount is None:
        amount = {}
    elif not isinstance(amount, dict):
        raise MalformedBody(f"{where}.amount is not an object")
    value = amount.get("value")
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
        raise MalformedBody(f"{where}.amount.value is not an integer (minor units)")
    signed: dict[str, str] = {}
    for field in SIGNED_FIELDS:
        if field == "value":
            text = "" if value is None else str(value)
        else:
            raw = (amount if field == "currency" else request_item).get(field)
            if raw is not None and not isinstance(raw, str):
                raise MalformedBody(f"{where}.{field} is not a string")
            text = raw or ""
        if field != _FREE_TEXT and ":" in text:
            raise AmbiguousBody(
                f"{where}.{field} holds ':', which the signed string cannot tell from the "
                "separator between fields"
            )
        signed[field] = text
    try:
        content = ":".join(signed.values()).encode("utf-8")
    except UnicodeEncodeError as exc:  # a lone surrogate escaped in the JSON text
        raise MalformedBody(f"{where} holds text that is not Unicode") from exc
    return signed, content


def _signature(request_item: Mapping[str, Any], position: int) -> bytes:
    what = f"the hmacSignature of notificationItems[{position}]"
    additional = request_item.get("additionalData")
    if additional is not None and not isinstance(additional, dict):
        raise MalformedSignature(f"notificationItems[{position}].additionalData is not an object")
    text = (additional or {}).get("hmacSignature")
    if text is None or text == "":
        raise MissingSignature(f"{what} is missing")
    if not isinstance(text, str):
        raise MalformedSignature(f"{what} is not a string")
    raw = decode_base64(text, what)
    if len(raw) != _SIGNATURE_BYTES:
        raise MalformedSignature(f"{what} is not 32 bytes")
    return raw


def _hmac_keys(keys: KeyRing) -> KeyRing:
    """The ring's secrets as the HMAC keys they spell in hex."""
    return KeyRing(secrets=tuple(_hmac_key(secret, i) for i, secret in enumerate(keys.secrets)))


@functools.lru_cache(maxsize=64)
def _hmac_key(secret: Secret, index: int) -> Secret:
    # Cached, so that the decoded key's Secret keeps its keyed HMAC between requests.
    try:
        raw = binascii.unhexlify(secret.value.strip())
    except (binascii.Error, ValueError) as exc:
        raise UnusableKey(f"secret #{index} is not an Adyen HMAC key (hex)") from exc
    if not raw:
        raise UnusableKey(f"secret #{index} is empty")
    return Secret(raw)


def secret_key(secret: Secret) -> bytes:
    """The HMAC key an Adyen secret spells in hex (what the minimum length counts)."""
    return _hmac_key(secret, 0).value

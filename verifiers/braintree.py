"""Braintree's webhook signature: a form of ``bt_signature`` and ``bt_payload``.

Braintree POSTs ``application/x-www-form-urlencoded`` with two fields:
``bt_payload``, the notification's XML in base64 (MIME-style, a newline every
76 characters and one at the end), and ``bt_signature``,
``<public key>|<hex HMAC-SHA1>`` pairs joined by ``&``, where the HMAC is keyed
with the SHA-1 digest of the merchant's private key and covers ``bt_payload``
as sent. The pair whose public key is the instance's ``public_key`` is checked
(the first such pair, as braintree_python's ``WebhookNotificationGateway``
reads it); ``secrets`` hold the private key (several while one is rotated).
Like the SDK, a payload whose signature covers it with one newline more is
accepted (``payload + "\\n"``), and a payload holding anything but base64 and
newlines is refused before any HMAC.

Compared with the SDK: a form whose ``bt_signature`` or ``bt_payload`` is
missing, empty or given twice, or that is not a form, is a 400
(:class:`~verifiers.errors.MalformedBody`), as is a payload outside the base64
alphabet; where the SDK finds no pair for its public key, or a signature that
does not match, Relay answers 401. The hex must be lower-case, as Braintree
writes it and the SDK compares it (one spelling of a signature: an upper-case
copy is a ``malformed_signature``). Other fields are not signed and not read;
a form of more than :data:`MAX_FIELDS` fields is refused.

Braintree also checks a destination before it sends to it: a GET with a
``bt_challenge`` (20 to 32 lower-case hex digits), which
:func:`answer_challenge` answers with ``<public key>|<hex HMAC-SHA1 of the
challenge>`` under the same key, as the SDK's ``verify`` does.

What the signature pins: ``bt_payload`` (so the notification XML inside it),
nothing else: no timestamp is signed (the notification's own ``timestamp`` is
inside the payload), so replays are bounded by deduplication and ``max_age_s``.
:func:`read` gives the two fields; :func:`notification` decodes and parses the
payload as hostile XML. Nothing here does I/O.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from xml.etree.ElementTree import Element

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

from verifiers.base import SECRETS, Headers, SignedRequest, Verified, decode_hex, matches, text_key
from verifiers.errors import MalformedBody, MalformedSignature, SignatureMismatch
from verifiers.keys import KeyRing, Secret, UnusableKey, first_secret

name = "braintree"
checks_authorization = False

SIGNATURE_FIELD = "bt_signature"
PAYLOAD_FIELD = "bt_payload"
MAX_FIELDS = 8
"""More fields than this is not Braintree's form (it sends two)."""
MAX_SIGNATURE_PAIRS = 8
MAX_XML_DEPTH = 32
MAX_XML_ELEMENTS = 20_000
"""Bounds of a notification's XML, checked as it is parsed (defusedxml refuses entities
and external references; depth and size are Relay's own): the largest notification
Braintree documents, a disbursement listing its transactions, is a few thousand elements."""

_PAYLOAD_ALPHABET = re.compile(rb"[A-Za-z0-9+/=\n]+")
_CHALLENGE = re.compile(r"[a-f0-9]{20,32}")
_DIGEST_BYTES = 20


@dataclass(frozen=True, slots=True)
class Params:
    public_key: str = ""
    """The merchant's Braintree public key: which ``bt_signature`` pair is this instance's.
    Required (it is not a secret: Braintree prints it beside the merchant id)."""


@dataclass(frozen=True, slots=True)
class Form:
    """The two fields of a Braintree notification, as sent (``bt_payload`` as its bytes)."""

    signature: str
    payload: bytes


def read(body: bytes) -> Form:
    """The form's ``bt_signature`` and ``bt_payload``, each present once; else MalformedBody."""
    try:
        text = body.decode("ascii")
        fields = urllib.parse.parse_qsl(
            text, keep_blank_values=True, strict_parsing=True, max_num_fields=MAX_FIELDS
        )
    except (UnicodeDecodeError, ValueError) as exc:  # ValueError: not a form, too many fields
        raise MalformedBody(f"the body is not a form of at most {MAX_FIELDS} fields") from exc
    values: dict[str, list[str]] = {}
    for key, value in fields:
        values.setdefault(key, []).append(value)
    for field in (SIGNATURE_FIELD, PAYLOAD_FIELD):
        given = values.get(field, [])
        if len(given) != 1 or not given[0]:
            problem = "is missing or empty" if not given or not given[0] else "is given twice"
            raise MalformedBody(f"the form's {field} {problem}")
    payload = values[PAYLOAD_FIELD][0].encode("ascii")
    if not _PAYLOAD_ALPHABET.fullmatch(payload):
        raise MalformedBody(f"the form's {PAYLOAD_FIELD} holds characters outside base64")
    return Form(values[SIGNATURE_FIELD][0], payload)


def verify(body: bytes, headers: Headers, params: Params, keys: KeyRing, now: float) -> Verified:
    public_key = _public_key(params)
    form = read(body)
    provided = _pair_signature(form.signature, public_key)
    for index, secret in enumerate(keys.secrets):
        # One pass over the payload for both messages: the state after it, then one more byte.
        keyed = hmac.new(hashlib.sha1(secret.value).digest(), form.payload, "sha1")
        as_sent = keyed.copy().digest()
        keyed.update(b"\n")
        if matches(provided, [as_sent, keyed.digest()]):
            return Verified(key_index=index)
    raise SignatureMismatch(f"the {SIGNATURE_FIELD} signature does not match {PAYLOAD_FIELD}")


def sign(body: bytes, params: Params, keys: KeyRing, now: float) -> SignedRequest:
    """``body`` is the notification XML; the request is the form Braintree posts, its payload
    base64 with a newline every 76 characters, as the SDK's testing gateway writes it."""
    payload = base64.encodebytes(body)
    signature = f"{params.public_key}|{_mac(first_secret(keys, name), payload).hex()}"
    form = urllib.parse.urlencode({SIGNATURE_FIELD: signature, PAYLOAD_FIELD: payload.decode()})
    return SignedRequest(body=form.encode("ascii"), headers={})


def required_keys(params: Params) -> frozenset[str]:
    return SECRETS


def answer_challenge(query: Mapping[str, str], params: Params, keys: KeyRing) -> str | None:
    """The answer to Braintree's ``bt_challenge`` (None: the query holds none); a challenge
    that is not 20 to 32 lower-case hex digits is a MalformedBody, as the SDK refuses it."""
    challenge = query.get("bt_challenge")
    if challenge is None:
        return None
    if not _CHALLENGE.fullmatch(challenge):
        raise MalformedBody("bt_challenge must be 20 to 32 lower-case hex digits")
    public_key = _public_key(params)
    return f"{public_key}|{_mac(first_secret(keys, name), challenge.encode()).hex()}"


def signed_payload(body: bytes) -> bytes:
    """The notification's bytes as the signature pins them: ``bt_payload`` decoded (a
    payload and its copy with one more newline, which verify alike, decode alike)."""
    return _decoded(read(body).payload)


def notification(body: bytes) -> dict[str, Any]:
    """The notification as data: ``{"notification": {...}}``, each element a string (its
    text), an object of its children, a list (``type="array"``) or None (``nil="true"``);
    attributes other than ``type`` and ``nil`` are dropped. MalformedBody when the payload
    is not base64, the XML is not well formed, declares entities or references anything
    (defusedxml), or goes past :data:`MAX_XML_DEPTH` or :data:`MAX_XML_ELEMENTS`."""
    xml = _decoded(read(body).payload)
    # Counted on the text first (every start tag is a '<' not followed by '/'): a document
    # of more elements than the bound is not parsed at all.
    if xml.count(b"<") - xml.count(b"</") > MAX_XML_ELEMENTS:
        raise MalformedBody(f"the notification has more than {MAX_XML_ELEMENTS} elements")
    try:
        root = fromstring(xml, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as exc:
        raise MalformedBody(f"the notification XML is refused ({type(exc).__name__})") from exc
    except SyntaxError as exc:  # ParseError
        raise MalformedBody("the notification is not well-formed XML") from exc
    counted = [0]
    return {root.tag: _value(root, 1, counted)}


def _decoded(payload: bytes) -> bytes:
    try:
        return base64.b64decode(payload.replace(b"\n", b""), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise MalformedBody(f"{PAYLOAD_FIELD} is not valid base64") from exc


def _value(element: Element, depth: int, counted: list[int]) -> Any:
    counted[0] += 1
    if depth > MAX_XML_DEPTH or counted[0] > MAX_XML_ELEMENTS:
        raise MalformedBody(
            f"the notification XML is deeper than {MAX_XML_DEPTH} levels "
            f"or larger than {MAX_XML_ELEMENTS} elements"
        )
    if element.get("nil") == "true":
        return None
    children = list(element)
    if element.get("type") == "array":
        return [_value(child, depth + 1, counted) for child in children]
    if not children:
        return (element.text or "").strip()
    result: dict[str, Any] = {}
    for child in children:
        if child.tag in result:
            raise MalformedBody(f"the notification's <{child.tag}> is given twice")
        result[child.tag] = _value(child, depth + 1, counted)
    return result


def _public_key(params: Params) -> str:
    if not params.public_key:
        raise UnusableKey("the braintree scheme needs the instance's public_key")
    return params.public_key


def _pair_signature(signature: str, public_key: str) -> bytes:
    pairs = [pair.split("|", 1) for pair in signature.split("&") if "|" in pair]
    if len(pairs) > MAX_SIGNATURE_PAIRS:
        raise MalformedSignature(f"{SIGNATURE_FIELD} holds more than {MAX_SIGNATURE_PAIRS} pairs")
    for key, value in pairs:
        if key == public_key:  # public: no need for a constant-time comparison
            raw = decode_hex(value, f"the {SIGNATURE_FIELD} signature")
            # One spelling: the lower-case hex Braintree writes (its SDK compares the text).
            if value != value.lower():
                raise MalformedSignature(f"the {SIGNATURE_FIELD} signature is not lower-case hex")
            if len(raw) != _DIGEST_BYTES:
                raise MalformedSignature(f"the {SIGNATURE_FIELD} signature has the wrong length")
            return raw
    raise SignatureMismatch(f"{SIGNATURE_FIELD} has no signature for this instance's public key")


def _mac(secret: Secret, message: bytes) -> bytes:
    return hmac.digest(hashlib.sha1(secret.value).digest(), message, "sha1")


secret_key = text_key

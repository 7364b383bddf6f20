"""A ``sign`` field inside the JSON body, over a canonical string of the other fields.

Serves ``usdt-collect-pay`` (document 000: the defaults here) and ``v2-payout``
(document 002: ``Params(key_suffix="", nested="sorted_compact",
encoding="base64")``). Neither document says how the string is built, so this
module follows the convention such APIs publish elsewhere (DESIGN section 8)
and exposes every open choice as an option.

The signed string:

- every top-level member except the sign field whose value is neither
  ``null`` nor ``""``, sorted by key in UTF-8 byte order (which is also code
  point order), written ``key=value`` and joined by ``&``;
- strings as their decoded value; numbers whose value is integral without a
  decimal part (``150``, ``150.0`` and ``1.5e2`` are ``150``), other numbers
  and booleans exactly as in the JSON text (``1.50`` stays ``1.50``);
- nested objects and arrays as in the JSON text (``nested="raw"``), or as
  compact JSON with keys sorted by UTF-8 bytes (``nested="sorted_compact"``),
  whose numbers follow the rule above, whose nulls are kept, and whose
  non-ASCII characters are written as themselves;
- then, when ``key_suffix`` is not empty, ``<key_suffix><secret>``: each of
  the instance's secrets is tried.

Fields the documents do not list are signed too: the providers add fields
over time and sign what they send. No value passes through a binary float:
a small scanner reads the top-level members and keeps each value's text.

``algorithm`` picks what the string is signed with: ``rsa-sha256`` (RSA
PKCS#1 v1.5 over SHA-256, standard base64, checked with ``public_keys``);
``md5`` or ``sha256`` (a plain digest, hex in ``case``, which the secret
appended through ``key_suffix`` turns into a signature, so the suffix cannot
be empty for them); ``hmac-sha256`` keyed with each secret, hex in ``case``
or base64 per ``encoding``. ``encoding`` and ``case`` are ignored where the
algorithm fixes them. For ``rsa-sha256`` with a key suffix, both the public
keys and the secrets are needed, and ``Verified.key_index`` is the public
key's index.

``bare_secret`` appends the secret with no separator at all
(``<sorted string><secret>``, a common variant of Chinese payment gateways);
``key_suffix`` must then be empty.

Decisions where the documents are silent: the body must be one JSON object
whose keys are unique at every level (a duplicate could be signed as one
value and read as another); a hex signature must be in the configured case;
``-0`` is written ``0``.

**One signature, one meaning.** The signed string is lossy: it drops null and
empty members, writes ``100``, ``100.0``, ``1e2`` and ``"100"`` alike, decodes
escapes and forgets order and whitespace. So many bodies verify under one
signature, and Relay must read all of them the same way. :func:`read` gives
the *signed view*: each member that the string covers, as the string writes
it (``{"actualAmount": "100"}`` for every spelling above); members the string
leaves out are absent. The normalizers read this view, never the body's own
spelling, and the event id hashes it. The string also joins members with an
unescaped ``&``: ``{"orderId": "A&orderNo=B"}`` and ``{"orderId": "A",
"orderNo": "B"}`` sign alike. A body is therefore refused
(:class:`~verifiers.errors.AmbiguousBody`, 400) when a member name holds ``&``
or ``=``, or a value holds ``&`` followed by a name and ``=`` (``&x=``); then
every ``&name=`` in the string is a member boundary, and the string has one
reading only. A value holding ``&`` alone (``"A & B"``), or ``=`` alone (base64
padding), is read as sent.

**Bounded work before the signature check.** Building the string is work an
unauthenticated request can ask for, so the signature's shape is checked
first (present, a string, decodable, of the length the algorithm or the RSA
keys give), and the body is refused (``MalformedBody``, 400) past fixed
bounds, all far above any notification a provider sends: ``MAX_MEMBERS``
top-level members; ``MAX_VALUES`` JSON values in all (counted from the
body's commas and brackets before it is parsed, so strings holding them count
too); ``MAX_DEPTH`` levels of nesting; an integral number whose canonical
form would have more than ``MAX_NUMBER_DIGITS`` digits (``1e4299`` is 4,300
digits), or whose exponent is past what :mod:`decimal` holds at all
(``1e999999999999999999999``); and a signed string longer than twice the body (only number
expansion could make it so).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

from cryptography.hazmat.primitives.asymmetric import rsa

from verifiers.base import (
    PUBLIC_KEYS,
    SECRETS,
    Headers,
    SignedRequest,
    Verified,
    check_choices,
    check_rsa_length,
    decode_base64,
    decode_hex,
    matches,
    reject_constant,
    sign_rsa,
    text_key,
    unique_members,
    verify_rsa,
)
from verifiers.errors import (
    AmbiguousBody,
    AppIdMismatch,
    MalformedBody,
    MalformedSignature,
    MissingSignature,
    SignatureMismatch,
)
from verifiers.keys import KeyRing, first_secret, private_key_of, public_keys_of

name = "sign-field"
checks_authorization = False

Algorithm = Literal["rsa-sha256", "md5", "sha256", "hmac-sha256"]

_DIGEST_SIZES = {"md5": 16, "sha256": 32, "hmac-sha256": 32}


@dataclass(frozen=True, slots=True)
class Params:
    algorithm: Algorithm = "rsa-sha256"
    encoding: Literal["hex", "base64"] = "hex"
    case: Literal["upper", "lower"] = "upper"
    key_suffix: str = "&key="
    nested: Literal["raw", "sorted_compact"] = "raw"
    sign_field: str = "sign"
    app_id: str = ""
    app_id_header: str = "app-id"
    bare_secret: bool = False

    def __post_init__(self) -> None:
        check_choices(self)
        if self.bare_secret and self.key_suffix:
            raise ValueError(
                "bare_secret appends the secret with no separator: key_suffix must be empty"
            )
        if self.algorithm in ("md5", "sha256") and not self.appends_secret:
            # A digest of public fields alone is something anyone can compute.
            raise ValueError(
                f"algorithm {self.algorithm!r} needs the secret appended: set key_suffix or bare_secret"
            )

    @property
    def appends_secret(self) -> bool:
        return bool(self.key_suffix) or self.bare_secret


MAX_MEMBERS = 256
MAX_VALUES = 1024
MAX_DEPTH = 32
MAX_NUMBER_DIGITS = 64


@dataclass(frozen=True, slots=True)
class SignedView:
    """What a sign field's signature covers (see the module docstring).

    ``members``: each member the signed string holds, its value written as the
    string writes it; null and empty members, and the sign field, are absent.
    ``canonical``: the signed string before any secret is appended. Two bodies
    that verify under one signature have equal views.
    """

    members: Mapping[str, str]
    canonical: bytes


def read(body: bytes, params: Params) -> SignedView:
    """The signed view of ``body``, without checking any signature.

    For reading a message verified earlier (``relay replay``); raises
    ``MalformedBody`` (or ``AmbiguousBody``) where :func:`verify` would.
    """
    return _view(_Document.parse(body), params)


def verify(body: bytes, headers: Headers, params: Params, keys: KeyRing, now: float) -> Verified:
    _check_app_id(headers, params)
    document = _Document.parse(body)
    provided = _provided_signature(document, params)
    # The signature's shape first: a request that cannot carry a valid one costs no more.
    if params.algorithm == "rsa-sha256":
        public_keys = public_keys_of(keys, rsa.RSAPublicKey, name)
        signature = decode_base64(provided, _what(params))
        check_rsa_length(public_keys, signature, _what(params))
        canonical = _view(document, params).canonical
        for message in _messages(canonical, params, keys):
            index = verify_rsa(public_keys, signature, message, _what(params))
            if index is not None:
                return Verified(key_index=index)
    else:
        digest = _decode_digest(provided, params)
        canonical = _view(document, params).canonical
        for index, secret in enumerate(keys.secrets):
            expected = _digest(_message(canonical, params, secret.value), params, secret.value)
            if matches(digest, [expected]):
                return Verified(key_index=index)
    raise SignatureMismatch(f"the {params.sign_field} field does not match the body")


def sign(body: bytes, params: Params, keys: KeyRing, now: float) -> SignedRequest:
    """The body with the sign field appended as its last member, other bytes untouched."""
    document = _Document.parse(body)
    if any(member.key == params.sign_field for member in document.members):
        raise MalformedBody(f"the body already has a {params.sign_field} field")
    canonical = _view(document, params).canonical
    if params.algorithm == "rsa-sha256":
        secret = first_secret(keys, name).value if params.appends_secret else b""
        raw = sign_rsa(
            private_key_of(keys, rsa.RSAPrivateKey, name), _message(canonical, params, secret)
        )
        signature = base64.b64encode(raw).decode("ascii")
    else:
        secret = first_secret(keys, name).value
        raw = _digest(_message(canonical, params, secret), params, secret)
        signature = _encode_digest(raw, params)
    member = f"{json.dumps(params.sign_field)}:{json.dumps(signature)}"
    at = document.insert_at
    text = document.text[:at] + ("," if document.members else "") + member + document.text[at:]
    headers = {params.app_id_header: params.app_id} if params.app_id else {}
    return SignedRequest(body=text.encode("utf-8"), headers=headers)


def required_keys(params: Params) -> frozenset[str]:
    if params.algorithm != "rsa-sha256":
        return SECRETS
    return PUBLIC_KEYS | SECRETS if params.appends_secret else PUBLIC_KEYS


secret_key = text_key


def _check_app_id(headers: Headers, params: Params) -> None:
    if params.app_id and headers.get(params.app_id_header.lower()) != params.app_id:
        raise AppIdMismatch(f"the {params.app_id_header} header is not the configured app id")


def _what(params: Params) -> str:
    return f"the {params.sign_field} field"


def _provided_signature(document: _Document, params: Params) -> str:
    for member in document.members:
        if member.key == params.sign_field:
            if member.value is None or member.value == "":
                break
            if not isinstance(member.value, str):
                raise MalformedSignature(f"{_what(params)} is not a string")
            return member.value
    raise MissingSignature(f"{_what(params)} is missing")


def _messages(canonical: bytes, params: Params, keys: KeyRing) -> list[bytes]:
    if not params.appends_secret:
        return [canonical]
    return [_message(canonical, params, secret.value) for secret in keys.secrets]


def _message(canonical: bytes, params: Params, secret: bytes) -> bytes:
    if not params.appends_secret:
        return canonical
    return canonical + params.key_suffix.encode("utf-8") + secret


def _digest(message: bytes, params: Params, secret: bytes) -> bytes:
    if params.algorithm == "hmac-sha256":
        return hmac.digest(secret, message, "sha256")
    return hashlib.new(params.algorithm, message).digest()


def _hex_digest(params: Params) -> bool:
    return params.algorithm != "hmac-sha256" or params.encoding == "hex"


def _encode_digest(raw: bytes, params: Params) -> str:
    if not _hex_digest(params):
        return base64.b64encode(raw).decode("ascii")
    return raw.hex().upper() if params.case == "upper" else raw.hex()


def _decode_digest(text: str, params: Params) -> bytes:
    what = _what(params)
    if _hex_digest(params):
        raw = decode_hex(text, what)
        if text != (text.upper() if params.case == "upper" else text.lower()):
            raise MalformedSignature(f"{what} must be {params.case}-case hex")
    else:
        raw = decode_base64(text, what)
    if len(raw) != _DIGEST_SIZES[params.algorithm]:
        raise MalformedSignature(f"{what} has the wrong length")
    return raw


# ``&`` then a member name (no ``&`` or ``=``) then ``=``: what the signed string reads as a
# boundary between two members.
_BOUNDARY = re.compile(r"&[^&=]*=")


def _view(document: _Document, params: Params) -> SignedView:
    members: dict[str, str] = {}
    pairs: list[tuple[bytes, bytes]] = []
    # Only number expansion makes the string longer than the body; bounded here.
    budget = 2 * len(document.text) + 64
    for member in document.members:
        if member.key == params.sign_field or member.value is None or member.value == "":
            continue
        if "&" in member.key or "=" in member.key:
            raise AmbiguousBody(f"the member name {member.key[:40]!r} holds '&' or '='")
        value = _write(member, params)
        if _BOUNDARY.search(value):
            raise AmbiguousBody(
                f"the value of {member.key[:40]!r} holds '&name=', which the signed string "
                "would read as another member"
            )
        key_bytes, value_bytes = _utf8(member.key), _utf8(value)
        budget -= len(key_bytes) + len(value_bytes) + 2
        if budget < 0:
            raise MalformedBody("the signed string would be more than twice the body's length")
        members[member.key] = value
        pairs.append((key_bytes, value_bytes))
    pairs.sort(key=lambda pair: pair[0])
    return SignedView(
        members=members, canonical=b"&".join(key + b"=" + value for key, value in pairs)
    )


def _utf8(text: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as exc:  # a lone surrogate escape such as "\ud800"
        raise MalformedBody("the body has a string that is not valid Unicode") from exc


def _write(member: _Member, params: Params) -> str:
    value = member.value
    if isinstance(value, str):
        return value
    if isinstance(value, _Number):
        return value.canonical()
    if isinstance(value, bool) or params.nested == "raw":
        return member.text
    return _compact(value, 1)


def _compact(value: object, depth: int) -> str:
    if isinstance(value, dict | list) and depth > MAX_DEPTH:
        raise MalformedBody(f"the body nests deeper than {MAX_DEPTH} levels")
    if isinstance(value, dict):
        items = sorted(value.items(), key=lambda item: _utf8(item[0]))
        return "{" + ",".join(f"{_json_string(k)}:{_compact(v, depth + 1)}" for k, v in items) + "}"
    if isinstance(value, list):
        return "[" + ",".join(_compact(item, depth + 1) for item in value) + "]"
    if isinstance(value, _Number):
        return value.canonical()
    if isinstance(value, str):
        return _json_string(value)
    return json.dumps(value)  # true, false, null


def _json_string(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


class _Number:
    """A JSON number kept as its text, so that it never becomes a binary float."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def canonical(self) -> str:
        try:
            value = Decimal(self.text)
        except ArithmeticError:  # InvalidOperation: an exponent past what decimal holds at all
            raise MalformedBody(f"the body has a number out of range: {self.text[:40]}") from None
        if value != value.to_integral_value():
            return self.text
        # Checked before writing it out: ``1e999999999`` would be a gigabyte of digits.
        if value.adjusted() >= MAX_NUMBER_DIGITS:
            raise MalformedBody(f"the body has a number of more than {MAX_NUMBER_DIGITS} digits")
        integral = value.to_integral_value()
        return format(abs(integral) if integral.is_zero() else integral, "f")


_DECODER = json.JSONDecoder(
    parse_float=_Number,
    parse_int=_Number,
    parse_constant=reject_constant,
    object_pairs_hook=unique_members,
)
_WHITESPACE = re.compile(r"[ \t\n\r]*")
# The json module's own string scanner (its C one where built): public, but not in typeshed.
_scanstring: Callable[[str, int, bool], tuple[str, int]] = json.decoder.scanstring  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class _Member:
    key: str
    value: object
    """Decoded: str, bool, None, _Number, or nested dict/list."""
    text: str
    """The value exactly as it appears in the body."""


@dataclass(frozen=True, slots=True)
class _Document:
    """A JSON object body read member by member."""

    text: str
    members: list[_Member]
    insert_at: int
    """Where ``sign`` adds a member: after the last value, before any whitespace."""

    @classmethod
    def parse(cls, body: bytes) -> _Document:
        # Every JSON value but the first of each container follows a comma, so commas and
        # brackets bound the values (strings holding them count too): no parse beyond it.
        values = body.count(b",") + body.count(b"[") + body.count(b"{")
        if values > MAX_VALUES:
            raise MalformedBody(f"the body has more than {MAX_VALUES} JSON values")
        try:
            text = body.decode("utf-8")
            return cls._scan(text)
        except (ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeError are ValueErrors
            raise MalformedBody("the body is not a valid JSON object") from exc

    @classmethod
    def _scan(cls, text: str) -> _Document:
        index = _skip(text, 0)
        if not text.startswith("{", index):
            raise MalformedBody("the body is not a JSON object")
        index = _skip(text, index + 1)
        insert_at = index
        members: list[_Member] = []
        keys: set[str] = set()
        if not text.startswith("}", index):
            while True:
                if not text.startswith('"', index):
                    raise MalformedBody(f"the body has no member name at character {index}")
                key, index = _scanstring(text, index + 1, True)
                if key in keys:
                    raise MalformedBody("the body has a duplicate top-level key")
                if len(keys) == MAX_MEMBERS:
                    raise MalformedBody(f"the body has more than {MAX_MEMBERS} members")
                keys.add(key)
                index = _skip(text, index)
                if not text.startswith(":", index):
                    raise MalformedBody(f"the body has no ':' at character {index}")
                start = _skip(text, index + 1)
                value, insert_at = _DECODER.raw_decode(text, start)
                members.append(_Member(key=key, value=value, text=text[start:insert_at]))
                index = _skip(text, insert_at)
                if text.startswith("}", index):
                    break
                if not text.startswith(",", index):
                    raise MalformedBody(f"the body has no ',' or '}}' at character {index}")
                index = _skip(text, index + 1)
        if _skip(text, index + 1) != len(text):
            raise MalformedBody("the body has data after its JSON object")
        return cls(text=text, members=members, insert_at=insert_at)


def _skip(text: str, index: int) -> int:
    match = _WHITESPACE.match(text, index)
    return match.end() if match else index

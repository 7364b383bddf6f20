"""Hostile requests built from real signed ones: the mutation fuzzer's case generator.

Every case starts from a request signed the way its provider signs (``relay.samples``),
carrying a fresh random token as its order reference, then one mutation is applied. Each
case says whether Relay *must* refuse it (``must_reject``: what the key holder signed was
changed, or the request breaks a rule such as the content type), or whether it is a valid
request that must be accepted (``control``). Cases that are neither (authentic bodies of
hostile shape, harmless extra headers) may get any answer but a 5xx.

The token ties published records back to cases: a record whose token belongs to a refused
case, or to no case, is a record published for a rejected request.
"""

from __future__ import annotations

import json
import random
import re
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from relay.config import Config, ProviderInstance
from relay.samples import signed_sample
from tests.fuzz.instances import Slot, decode, encode, signature_of, timestamp_of, tolerance_s
from verifiers import VerificationError

TOKEN = re.compile(rb"fz[0-9a-f]{16}")


@dataclass
class Request:
    method: str
    path: str
    headers: list[tuple[str, str]]
    body: bytes


@dataclass
class Case:
    kind: str
    instance: str
    token: str
    request: Request
    must_reject: bool
    control: bool = False
    raw: bytes | None = None
    """Sent as is over a socket when set (what an HTTP client library refuses to write)."""
    slow: bool = False
    """Waits for the server's read timeout."""


@dataclass
class Fuzzer:
    config: Config
    seed: int
    rng: random.Random = field(init=False)
    accepted: list[Case] = field(default_factory=list)
    """Controls answered 2xx, for exact replays."""
    last_now: float = 0.0

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.instances = list(self.config.providers.values())
        self.timed = [i for i in self.instances if timestamp_of(i) is not None]
        # Those whose samples are JSON: the body mutators rewrite a sample's members.
        self.json = [i for i in self.instances if "application/json" in i.profile.content_types]

    # --- building blocks ------------------------------------------------------------------

    def token(self) -> str:
        return f"fz{self.rng.getrandbits(64):016x}"

    def signed(
        self,
        instance: ProviderInstance,
        *,
        now: float | None = None,
        body: bytes | None = None,
        token: str | None = None,
    ) -> tuple[Request, str]:
        token = token or self.token()
        event = self.rng.choice(list(instance.profile.samples))
        if now is None:
            # A millisecond apart at least: some samples derive their event id from the time
            # (usdt-collect-pay's orderNo), and two cases must never share one.
            now = self.last_now = max(time.time(), self.last_now + 0.001)
        sample = signed_sample(
            instance, event=event if body is None else None, body=body, order=token, now=now
        )
        headers = list(sample.headers.items())
        return Request("POST", f"/webhooks/{instance.name}", headers, sample.body), token

    def case(self) -> Case:
        kind = self.rng.choices(_KINDS, _WEIGHTS)[0]
        return _MUTATORS[kind](self, kind)

    def pick(self, instances: list[ProviderInstance] | None = None) -> ProviderInstance:
        return self.rng.choice(instances or self.instances)


# --- helpers over requests -------------------------------------------------------------------


def header_index(request: Request, name: str) -> int | None:
    for index, (key, _) in enumerate(request.headers):
        if key.lower() == name.lower():
            return index
    return None


def with_header(request: Request, name: str, value: str | None) -> Request:
    """``request`` with header ``name`` set to ``value`` in place (removed for None)."""
    headers = list(request.headers)
    index = header_index(request, name)
    if index is None:
        if value is not None:
            headers.append((name, value))
    elif value is None:
        del headers[index]
    else:
        headers[index] = (headers[index][0], value)
    return replace(request, headers=headers)


def slot_value(request: Request, slot: Slot) -> tuple[str, int, int] | None:
    """The slot's text and its span inside the header value or the body text."""
    if slot.in_body:
        text = request.body.decode("utf-8", "surrogateescape")
        if slot.form:
            field = rf"(?:^|&){re.escape(slot.name)}=[^&]*?{re.escape(slot.marker)}([^&]*)"
            match = re.search(field, text)
        else:
            # Whitespace around the colon too: Adyen's SDKs write items with json.dumps's ": ".
            match = re.search(rf'"{re.escape(slot.name)}"\s*:\s*"([^"]*)"', text)
        return (text, match.start(1), match.end(1)) if match else None
    index = header_index(request, slot.name)
    if index is None:
        return None
    value = request.headers[index][1]
    start = value.find(slot.marker) + len(slot.marker) if slot.marker else 0
    if slot.marker and start < len(slot.marker):
        return None
    end = value.find(slot.end, start) if slot.end else -1
    return value, start, len(value) if end < 0 else end


def replace_slot(request: Request, slot: Slot, new: str) -> Request:
    found = slot_value(request, slot)
    assert found is not None, f"no {slot.name} in the request"
    text, start, end = found
    changed = text[:start] + new + text[end:]
    if slot.in_body:
        return replace(request, body=changed.encode("utf-8", "surrogateescape"))
    return with_header(request, slot.name, changed)


def sign_field_equivalent(original: bytes, mutated: bytes, sign_field: str) -> bool:
    """Whether a ``sign``-field body still says what was signed, judged independently of
    the verifier: same top-level members with a value (null and "" are unsigned by the
    scheme), same text for every number, whitespace free. Only ever excuses an accept."""

    def members(body: bytes) -> dict[str, object] | None:
        try:
            document = json.loads(body, parse_float=str, parse_int=str)
        except ValueError:
            return None
        if not isinstance(document, dict):
            return None
        return {
            key: value
            for key, value in document.items()
            if key != sign_field and value is not None and value != ""
        }

    before = members(original)
    return before is not None and before == members(mutated)


# Adyen's signed fields of an item, as its documentation lists them (amount's two inside it).
_ADYEN_SIGNED = (
    "pspReference",
    "originalReference",
    "merchantAccountCode",
    "merchantReference",
    "value",
    "currency",
    "eventCode",
    "success",
)


def adyen_items_equivalent(original: bytes, mutated: bytes) -> bool:
    """Whether an Adyen body still says, item by item, what each item's signature covers,
    judged independently of the verifier: the same items with the same eight signed fields
    (null and absent alike, numbers by their text) and the same signatures. The rest of an
    item (``eventDate``, ``reason``, ``additionalData``) is unsigned by Adyen's design. Only
    ever excuses an accept."""

    def signed(body: bytes) -> list[tuple[object, ...]] | None:
        try:
            document = json.loads(body, parse_float=str, parse_int=str)
            items = [
                wrapper["NotificationRequestItem"] for wrapper in document["notificationItems"]
            ]
            return [
                (
                    *(
                        (item.get("amount") or {}).get(name)
                        if name in ("value", "currency")
                        else item.get(name)
                        for name in _ADYEN_SIGNED
                    ),
                    item["additionalData"]["hmacSignature"],
                )
                for item in items
            ]
        except (ValueError, TypeError, KeyError, AttributeError):
            return None

    before = signed(original)
    return before is not None and before == signed(mutated)


def slot_text(request: Request, slot: Slot) -> str | None:
    found = slot_value(request, slot)
    return found[0][found[1] : found[2]] if found else None


def body_changed(instance: ProviderInstance, original: Request, mutated: Request) -> bool:
    """Whether a mutation of the body changed what the signature covers."""
    if mutated.body == original.body:
        return False
    if signature_of(instance).slot.form:
        # A form's signed content is its fields' decoded values: "%7C" and "%7c" spell one.
        return _form_fields(original.body) != _form_fields(mutated.body)
    if instance.profile.scheme.name == "sign-field":
        slot = signature_of(instance).slot
        # The sign member itself is part of what a forger must get right.
        return not sign_field_equivalent(
            original.body, mutated.body, instance.params.sign_field
        ) or slot_text(original, slot) != slot_text(mutated, slot)
    if instance.profile.scheme.name == "adyen" and instance.params.form == "items":
        return not adyen_items_equivalent(original.body, mutated.body)
    return True


def _form_fields(body: bytes) -> list[tuple[str, str]] | None:
    try:
        return urllib.parse.parse_qsl(body.decode("ascii"), strict_parsing=True)
    except (UnicodeDecodeError, ValueError):
        return None


# --- mutators ---------------------------------------------------------------------------------

Mutator = Callable[[Fuzzer, str], Case]


def control(fuzzer: Fuzzer, kind: str) -> Case:
    instance = fuzzer.pick()
    request, token = fuzzer.signed(instance)
    return Case(kind, instance.name, token, request, must_reject=False, control=True)


def replay(fuzzer: Fuzzer, kind: str) -> Case:
    """The exact bytes of an accepted request again: a duplicate, acknowledged, not published."""
    if not fuzzer.accepted:
        return control(fuzzer, "control")
    original = fuzzer.rng.choice(fuzzer.accepted[-200:])
    return replace(original, kind=kind, control=False)


def stale_replay(fuzzer: Fuzzer, kind: str) -> Case:
    """A valid request signed long ago. Schemes with a timestamp refuse it; the others
    cannot tell it from a new one (deduplication is their replay guard, as documented)."""
    instance = fuzzer.pick()
    tolerance = tolerance_s(instance) or 300
    then = time.time() - tolerance - fuzzer.rng.choice([60, 3600, 86400 * 30])
    request, token = fuzzer.signed(instance, now=then)
    has_timestamp = timestamp_of(instance) is not None
    return Case(kind, instance.name, token, request, must_reject=has_timestamp)


def _body_mutation(change: Callable[[Fuzzer, bytes], bytes]) -> Mutator:
    def mutate(fuzzer: Fuzzer, kind: str) -> Case:
        instance = fuzzer.pick()
        original, token = fuzzer.signed(instance)
        mutated = replace(original, body=change(fuzzer, original.body))
        changed = body_changed(instance, original, mutated)
        return Case(kind, instance.name, token, mutated, must_reject=changed)

    return mutate


def _flip_bit(fuzzer: Fuzzer, body: bytes) -> bytes:
    position = fuzzer.rng.randrange(len(body))
    return (
        body[:position]
        + bytes([body[position] ^ (1 << fuzzer.rng.randrange(8))])
        + body[position + 1 :]
    )


def _truncate(fuzzer: Fuzzer, body: bytes) -> bytes:
    return body[: fuzzer.rng.randrange(len(body))]


def _append(fuzzer: Fuzzer, body: bytes) -> bytes:
    return body + fuzzer.rng.choice([b" ", b"\n", b"x", b"}", b",{}", b"\x00", b"\xff"])


def _insert(fuzzer: Fuzzer, body: bytes) -> bytes:
    position = fuzzer.rng.randrange(len(body) + 1)
    junk = fuzzer.rng.randbytes(fuzzer.rng.randint(1, 8))
    return body[:position] + junk + body[position:]


def _invalid_utf8(fuzzer: Fuzzer, body: bytes) -> bytes:
    # Inside the token's string, so a JSON parser meets it within a string value.
    position = body.find(b"fz") + 2
    bad = fuzzer.rng.choice([b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\x80"])
    return body[:position] + bad + body[position:]


def _duplicate_key(fuzzer: Fuzzer, body: bytes) -> bytes:
    # The first member again, with another value: which one would a consumer read?
    match = re.match(rb'\s*\{\s*("[^"]*")\s*:', body)
    key = match.group(1) if match else b'"status"'
    return body.replace(b"{", b"{" + key + b':"forged",', 1)


def flipped_signature(fuzzer: Fuzzer, instance: ProviderInstance, request: Request) -> Request:
    """``request`` with one bit of its signature bytes flipped, in the same encoding."""
    signature = signature_of(instance)
    found = slot_value(request, signature.slot)
    assert found is not None
    text, start, end = found
    raw = bytearray(decode(text[start:end], signature.encoding))
    raw[fuzzer.rng.randrange(len(raw))] ^= 1 << fuzzer.rng.randrange(8)
    forged = encode(bytes(raw), signature.encoding, text[start:end])
    return replace_slot(request, signature.slot, forged)


def sig_flip(fuzzer: Fuzzer, kind: str) -> Case:
    instance = fuzzer.pick()
    request, token = fuzzer.signed(instance)
    return Case(kind, instance.name, token, flipped_signature(fuzzer, instance, request), True)


def sig_malformed(fuzzer: Fuzzer, kind: str) -> Case:
    """A signature of the wrong length, alphabet or encoding, empty, or absent."""
    instance = fuzzer.pick()
    request, token = fuzzer.signed(instance)
    signature = signature_of(instance)
    found = slot_value(request, signature.slot)
    assert found is not None
    text, start, end = found
    current = text[start:end]
    raw = decode(current, signature.encoding)
    choices: list[str | None] = [
        # Cut into the data, not only the padding (which is optional, so cutting it is no change).
        current.rstrip("=")[: fuzzer.rng.randrange(len(current.rstrip("=")))],
        # Suffixes that change the decoded bytes ("=" would only pad base64).
        current + fuzzer.rng.choice(["0", "00", "A", "AAAA", " x"]),
        raw.hex() if signature.encoding.startswith("base64") else encode(raw, "base64", "="),
        current.replace(current[0], "!", 1),
        "".join(fuzzer.rng.choice("0123456789abcdef") for _ in range(len(current))),
        "\u00e9" * len(current),
        "",
        None,
    ]
    choice = fuzzer.rng.choice(choices)
    if choice is None:
        mutated = (
            replace_slot(request, signature.slot, "")
            if signature.slot.in_body
            else with_header(request, signature.slot.name, None)
        )
    else:
        mutated = replace_slot(request, signature.slot, choice)
    return Case(kind, instance.name, token, mutated, must_reject=True)


def timestamp_attack(fuzzer: Fuzzer, kind: str) -> Case:
    """The timestamp moved far into the past or future, or not a number at all."""
    instance = fuzzer.pick(fuzzer.timed)
    stamp = timestamp_of(instance)
    assert stamp is not None
    request, token = fuzzer.signed(instance)
    found = slot_value(request, stamp.slot)
    assert found is not None
    text, start, end = found
    value = int(text[start:end])
    shift = round(fuzzer.rng.choice([-1, 1]) * 86400 * 10 / stamp.unit_s)
    new = fuzzer.rng.choice(
        [str(value + shift), "", "abc", "-1", "1e10", "\uff11\uff12", "9" * 40, f"{value}.5"]
    )
    # An unsigned timestamp proves nothing and may be left out: empty is the same as absent.
    must_reject = stamp.signed or new != ""
    return Case(kind, instance.name, token, replace_slot(request, stamp.slot, new), must_reject)


def content_type(fuzzer: Fuzzer, kind: str) -> Case:
    instance = fuzzer.pick()
    request, token = fuzzer.signed(instance)
    choices = [None, "text/plain", "application/x-www-form-urlencoded", "multipart/form-data", "x"]
    # Any media type but the profile's own (Braintree's is the form).
    wrong = fuzzer.rng.choice(
        [choice for choice in choices if choice not in instance.profile.content_types]
    )
    return Case(kind, instance.name, token, with_header(request, "Content-Type", wrong), True)


def content_type_variant(fuzzer: Fuzzer, kind: str) -> Case:
    """Spellings of the right media type: any answer but a 5xx."""
    instance = fuzzer.pick()
    request, token = fuzzer.signed(instance)
    variant = fuzzer.rng.choice(
        ["application/json; charset=utf-8", "APPLICATION/JSON", "application/json;;", "a/b; c"]
    )
    return Case(kind, instance.name, token, with_header(request, "Content-Type", variant), False)


def hostile_unsigned(fuzzer: Fuzzer, kind: str) -> Case:
    """A hostile body under a real request's headers: never authentic."""
    instance = fuzzer.pick()
    request, token = fuzzer.signed(instance)
    body = _hostile_body(fuzzer, token)
    if fuzzer.rng.random() < 0.3:
        request = with_header(request, "Content-Type", "application/x-www-form-urlencoded")
        body = f"token={token}&amount=1000000&status=paid".encode()
    mutated = replace(request, body=body)
    return Case(kind, instance.name, token, mutated, must_reject=True)


def hostile_signed(fuzzer: Fuzzer, kind: str) -> Case:
    """A hostile body signed with the instance's real key, as a compromised or buggy provider
    would send it: authentic, so any answer but a 5xx (dead letter, 400, 413)."""
    for _ in range(20):
        instance = fuzzer.pick()
        token = fuzzer.token()
        body = _hostile_body(fuzzer, token, signable=True)
        try:
            request, _ = fuzzer.signed(instance, body=body, token=token)
        except VerificationError:
            continue  # sign-field schemes can only sign a JSON object
        return Case(kind, instance.name, token, request, must_reject=False)
    return control(fuzzer, "control")


def many_headers(fuzzer: Fuzzer, kind: str) -> Case:
    instance = fuzzer.pick()
    request, token = fuzzer.signed(instance)
    count = fuzzer.rng.choice([10, 40, 70, 200])
    extra = [(f"X-Fuzz-{index}", "v" * fuzzer.rng.randint(0, 64)) for index in range(count)]
    return Case(
        kind, instance.name, token, replace(request, headers=request.headers + extra), False
    )


def huge_header(fuzzer: Fuzzer, kind: str) -> Case:
    instance = fuzzer.pick()
    request, token = fuzzer.signed(instance)
    size = fuzzer.rng.choice([4000, 8200, 20000, 65536])
    mutated = replace(request, headers=[*request.headers, ("X-Fuzz-Huge", "h" * size)])
    return Case(kind, instance.name, token, mutated, must_reject=False)


def duplicate_signature(fuzzer: Fuzzer, kind: str) -> Case:
    """A second signature header with a wrong value, before or after the real one: the first
    of repeated headers is the one read, so only the forged-first order must be refused."""
    instance = fuzzer.pick()
    request, token = fuzzer.signed(instance)
    slot = signature_of(instance).slot
    index = header_index(request, slot.name)
    if slot.in_body or index is None:
        return replace(many_headers(fuzzer, kind), kind=kind)
    fake = flipped_signature(fuzzer, instance, request).headers[index]
    first = fuzzer.rng.random() < 0.5
    headers = list(request.headers)
    headers.insert(index if first else index + 1, fake)
    return Case(kind, instance.name, token, replace(request, headers=headers), must_reject=first)


def wrong_route(fuzzer: Fuzzer, kind: str) -> Case:
    instance = fuzzer.pick()
    request, token = fuzzer.signed(instance)
    method, path = fuzzer.rng.choice(
        [
            ("GET", request.path),
            ("PUT", request.path),
            ("DELETE", request.path),
            ("POST", "/webhooks/unknown-provider"),
            ("POST", "/webhooks/" + "a" * 3000),
            ("POST", "/webhooks/%2e%2e%2fhealthz"),
            ("POST", "/webhooks/" + instance.name + "/extra"),
            ("POST", "/healthz"),
            ("POST", "/metrics"),
        ]
    )
    return Case(kind, instance.name, token, replace(request, method=method, path=path), True)


def oversized(fuzzer: Fuzzer, kind: str) -> Case:
    """A body past max_body_bytes, signed: refused with 413 before it is read whole."""
    limit = fuzzer.config.server.max_body_bytes
    for _ in range(20):
        instance = fuzzer.pick()
        token = fuzzer.token()
        padding = "p" * (limit + fuzzer.rng.randint(1, 4096))
        body = json.dumps({"reference": token, "padding": padding}).encode()
        try:
            request, _ = fuzzer.signed(instance, body=body, token=token)
        except VerificationError:
            continue  # Adyen signs notification items, not any body
        return Case(kind, instance.name, token, request, must_reject=True)
    return control(fuzzer, "control")


def raw_http(fuzzer: Fuzzer, kind: str) -> Case:
    """Byte-level HTTP abuse no client library writes: header injection, smuggling shapes,
    broken framing. Each says whether it alters what was signed."""
    instance = fuzzer.pick()
    request, token = fuzzer.signed(instance)
    signature = signature_of(instance).slot
    has_header = not signature.in_body
    # A harmless header first, so that a header smuggled out of it precedes the real one.
    request = replace(request, headers=[("X-Fuzz-Target", "value"), *request.headers])
    forged_line = f"{signature.name}: {'0' * 64}".encode()
    choice = fuzzer.rng.randrange(13)
    target, inject = "X-Fuzz-Target", b""
    altered = slow = False
    if choice in (0, 1, 2):
        # A bare CR, a bare LF or a CRLF inside a header, smuggling in a forged signature
        # header ahead of the real one: refused whether or not the parser splits there.
        inject = (b"\r", b"\n", b"\r\n")[choice] + forged_line
        altered = has_header
    elif choice in (3, 4, 5):
        # A NUL, an obsolete line fold, bytes that are not UTF-8 in the signature header.
        inject = (b"\x00", b"\r\n folded", b"\xff\xfe")[choice - 3]
        target = signature.name if has_header else target
        altered = has_header
    headers = b""
    for name, value in request.headers:
        header_line = f"{name}: {value}".encode("utf-8", "surrogateescape")
        if name.lower() == target.lower():
            header_line += inject
        headers += header_line + b"\r\n"
    body = request.body
    line = f"POST {request.path} HTTP/1.1\r\n"
    framing = f"Content-Length: {len(body)}\r\n"
    if choice == 6:  # Content-Length and Transfer-Encoding together: a smuggling shape
        framing += "Transfer-Encoding: chunked\r\n"
    elif choice == 7:  # two different lengths
        framing += f"Content-Length: {len(body) + 1}\r\n"
    elif choice == 8:  # a valid chunked body: the same bytes, another framing
        framing = "Transfer-Encoding: chunked\r\n"
        body = f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n"
    elif choice == 9:  # a bad chunk size
        framing = "Transfer-Encoding: chunked\r\n"
        body = b"zz\r\n" + body + b"\r\n0\r\n\r\n"
    elif choice == 10:  # a length shorter than the body: the body is cut, the rest is junk
        framing = f"Content-Length: {max(len(body) - 5, 0)}\r\n"
        altered = True
    elif choice == 11:  # a garbage request line
        line = fuzzer.rng.choice(
            ["GARBAGE\r\n", "POST\r\n", "POST / HTTP/9.9\r\n", "\x16\x03\x01\r\n"]
        )
        altered = True
    elif choice == 12:  # a length longer than the body: the body never completes
        framing = f"Content-Length: {len(body) + 100}\r\n"
        altered = slow = True
    raw = (
        line.encode()
        + b"Host: relay\r\nConnection: close\r\n"
        + headers
        + framing.encode()
        + b"\r\n"
        + body
    )
    return Case(f"{kind}:{choice}", instance.name, token, request, altered, raw=raw, slow=slow)


# --- hostile bodies ---------------------------------------------------------------------------

_RAW = "\u0000RAW:"  # placeholder for number text json.dumps cannot write


def _hostile_value(fuzzer: Fuzzer) -> object:
    rng = fuzzer.rng
    depth = rng.choice([10, 63, 65, 200, 500])
    nested: object = "leaf"
    for _ in range(depth):
        nested = {"a": nested} if rng.random() < 0.5 else [nested]
    return rng.choice(
        [
            None,
            True,
            [],
            {},
            "",
            -1,
            0,
            "x" * rng.choice([1000, 100000]),
            "\u0000\u202e\ud7ff\U0001f600",
            _RAW + "1e999999999",
            _RAW + "-1e-999999999",
            _RAW + "9" * 5000,
            _RAW + "1" + "0" * 4299,
            _RAW + "-0.0",
            _RAW + "123456789012345678901234567890.123456789",
            "NaN",
            "Infinity",
            "1e5",
            " 1",
            "١٢٣",
            "2024-02-30 25:61:61",
            "9999-12-31T23:59:59Z",
            "0000-01-01T00:00:00Z",
            nested,
        ]
    )


def _dumps(document: object) -> bytes:
    text = json.dumps(document, ensure_ascii=False)
    text = re.sub(r'"\\u0000RAW:([^"]*)"', lambda m: m.group(1), text)
    return text.encode("utf-8", "surrogatepass")


def _hostile_body(fuzzer: Fuzzer, token: str, *, signable: bool = False) -> bytes:
    """A body with ``token`` in it, of a shape no provider sends on purpose."""
    rng = fuzzer.rng
    instance = fuzzer.pick(fuzzer.json)
    event = rng.choice(list(instance.profile.samples))
    sample = json.loads(instance.profile.samples[event].build(time.time(), token).body)
    shape = rng.randrange(8 if signable else 10)
    if shape <= 3:  # a sample with one field, at any depth, replaced by a hostile value
        # The token may be in the field replaced: a member of its own keeps it in the body.
        sample["x_fuzz_token"] = token
        target = sample
        while True:
            key = rng.choice([name for name in target if name != "x_fuzz_token"])
            if isinstance(target[key], dict) and rng.random() < 0.5:
                target = target[key]
                continue
            target[key] = _hostile_value(fuzzer)
            break
        return _dumps(sample)
    if shape == 4:  # the sample with a member repeated
        text = _dumps(sample)
        return text[:-1] + b',"status":"succeeded"}'
    if shape == 5:  # deep nesting around the token
        depth = rng.choice([65, 1000, 100000])
        return b'{"t":"' + token.encode() + b'","n":' + b"[" * depth + b"]" * depth + b"}"
    if shape == 6:  # not an object
        return rng.choice([b"[", b"[]", b"null", b"0", b'"x"']) + b" " + token.encode()
    if shape == 7:  # an object of many members
        return _dumps({token: 1, **{f"k{i}": i for i in range(rng.choice([100, 20000]))}})
    if shape == 8:  # random bytes
        return token.encode() + rng.randbytes(rng.randint(0, 2000))
    return b"\xef\xbb\xbf" + _dumps(sample)  # a byte order mark


_MUTATORS: dict[str, Mutator] = {
    "control": control,
    "replay": replay,
    "stale_replay": stale_replay,
    "body_flip_bit": _body_mutation(_flip_bit),
    "body_truncate": _body_mutation(_truncate),
    "body_append": _body_mutation(_append),
    "body_insert": _body_mutation(_insert),
    "body_invalid_utf8": _body_mutation(_invalid_utf8),
    "body_duplicate_key": _body_mutation(_duplicate_key),
    "sig_flip": sig_flip,
    "sig_malformed": sig_malformed,
    "timestamp": timestamp_attack,
    "content_type": content_type,
    "content_type_variant": content_type_variant,
    "hostile_unsigned": hostile_unsigned,
    "hostile_signed": hostile_signed,
    "many_headers": many_headers,
    "huge_header": huge_header,
    "duplicate_signature": duplicate_signature,
    "wrong_route": wrong_route,
    "oversized": oversized,
    "raw_http": raw_http,
}
_KINDS = list(_MUTATORS)
# Controls and replays keep the acceptance path exercised; oversized bodies are costly.
_WEIGHTS = [
    {"control": 10, "replay": 3, "oversized": 0.2, "raw_http": 8}.get(kind, 5) for kind in _KINDS
]

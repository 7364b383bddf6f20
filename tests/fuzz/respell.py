"""Re-spellings of a signed request: what an attacker holding one captured notification, and
no keys, can send in its place without signing anything.

A JSON body is read into a tree that keeps what its text says (member order, each number's
spelling), then written back with the changes a transformation asks for. Written unchanged,
the tree gives back the original bytes (:func:`dumps` of :func:`parse` is the identity on
the compact JSON the samples are), so a re-spelling differs from its original by exactly
the transformations it lists.

The transformations (:data:`KINDS`), each drawn and combined by hypothesis:

- ``number``: a number or numeric string in another form of the same value (``"100"``,
  ``100``, ``100.0``, ``1e2``, ``1.00E+2``; integers as floats, ``0`` as ``-0``);
- ``empty_member``: a member with ``null`` or ``""`` added (``"actualAmount"`` often);
- ``empty_change``: a null or empty member dropped, or ``null`` and ``""`` swapped;
- ``shuffle``: the members of an object in another order;
- ``whitespace``: whitespace around the body and between its tokens;
- ``escape``: characters of strings (member names too) written as ``\\u`` and four hex digits, ``/`` as
  ``\\/``, non-ASCII as escapes;
- ``unicode_form``: a non-ASCII string in another normalization form (NFC, NFD, NFKC, NFKD);
- ``header_id``: the instance's unsigned id header fresh or dropped (``X-Webhook-Id``,
  ``X-GitHub-Delivery``, a generic instance's ``id_header``; ``webhook-id`` too, which
  Standard Webhooks signs), or GitHub's ``X-GitHub-Event`` changed;
- ``merge``: two members adjacent in a ``sign``-field string folded into the first one's
  value (``"orderId":"A&orderNo=B"``, ``orderNo`` removed);
- ``split``: the other way, a value holding ``&name=`` cut into two members.

Nothing here knows what a verifier accepts: the test posts every re-spelling and reads what
Relay did with it.
"""

from __future__ import annotations

import itertools
import json
import re
import unicodedata
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any, Literal

from hypothesis import strategies as st

from tests.fuzz.mutations import Request, header_index, with_header

UnicodeForm = Literal["NFC", "NFD", "NFKC", "NFKD"]


class Obj(list[tuple[str, Any]]):
    """A JSON object as its members, in order: ``[(name, value), ...]``."""


@dataclass(frozen=True)
class Num:
    """A JSON number as written."""

    text: str


def parse(body: bytes) -> Any:
    return json.loads(body, object_pairs_hook=Obj, parse_int=Num, parse_float=Num)


@dataclass(frozen=True)
class Style:
    """How :func:`dumps` writes the tree; the default is compact JSON, as orjson writes it."""

    gaps: tuple[str, ...] = ("",)
    """Whitespace written at each place JSON allows it, in turn."""
    escape: frozenset[str] = frozenset()
    """Characters written as ``\\u`` and four hex digits wherever they appear in a string."""
    upper_hex: bool = False
    slash: bool = False
    """``/`` written ``\\/``."""
    ascii_only: bool = False
    """Every non-ASCII character written as an escape."""


_SHORT = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def dumps(node: Any, style: Style = Style()) -> bytes:
    out: list[str] = []
    gaps = itertools.cycle(style.gaps)

    def gap() -> None:
        out.append(next(gaps))

    def escaped(char: str) -> str:
        code = ord(char)
        units = [code] if code < 0x10000 else [0xD800 + ((code - 0x10000) >> 10)]
        if code >= 0x10000:
            units.append(0xDC00 + ((code - 0x10000) & 0x3FF))
        form = "\\u{:04X}" if style.upper_hex else "\\u{:04x}"
        return "".join(form.format(unit) for unit in units)

    def string(text: str) -> None:
        parts = ['"']
        for char in text:
            if char in style.escape or (style.ascii_only and ord(char) > 127):
                parts.append(escaped(char))
            elif char in _SHORT:
                parts.append(_SHORT[char])
            elif char < " ":
                parts.append(escaped(char))
            elif char == "/" and style.slash:
                parts.append("\\/")
            else:
                parts.append(char)
        parts.append('"')
        out.append("".join(parts))

    def value(item: Any) -> None:
        if item is None:
            out.append("null")
        elif item is True:
            out.append("true")
        elif item is False:
            out.append("false")
        elif isinstance(item, Num):
            out.append(item.text)
        elif isinstance(item, str):
            string(item)
        elif isinstance(item, Obj):
            out.append("{")
            for index, (name, member) in enumerate(item):
                if index:
                    gap()
                    out.append(",")
                gap()
                string(name)
                gap()
                out.append(":")
                gap()
                value(member)
            gap()
            out.append("}")
        else:
            out.append("[")
            for index, member in enumerate(item):
                if index:
                    gap()
                    out.append(",")
                gap()
                value(member)
            gap()
            out.append("]")

    gap()
    value(node)
    gap()
    return "".join(out).encode("utf-8", "surrogatepass")


# --- where values sit in the tree ---------------------------------------------------------


@dataclass(frozen=True)
class Slot:
    """A value in the tree: member ``index`` of an object, or item ``index`` of an array."""

    container: Any
    index: int
    path: str

    def get(self) -> Any:
        if isinstance(self.container, Obj):
            return self.container[self.index][1]
        return self.container[self.index]

    def set(self, value: Any) -> None:
        if isinstance(self.container, Obj):
            self.container[self.index] = (self.container[self.index][0], value)
        else:
            self.container[self.index] = value


def slots(node: Any, path: str = "") -> Iterator[Slot]:
    if isinstance(node, Obj):
        for index, (name, value) in enumerate(node):
            where = f"{path}.{name}" if path else name
            yield Slot(node, index, where)
            yield from slots(value, where)
    elif isinstance(node, list):
        for index, value in enumerate(node):
            where = f"{path}[{index}]"
            yield Slot(node, index, where)
            yield from slots(value, where)


def objects(node: Any, path: str = "") -> Iterator[tuple[str, Obj]]:
    if isinstance(node, Obj):
        yield path, node
    for slot in slots(node, path):
        value = slot.get()
        if isinstance(value, Obj):
            yield slot.path, value


def strings(node: Any) -> Iterator[str]:
    """Every string of the tree, member names included."""
    if isinstance(node, str):
        yield node
    elif isinstance(node, Obj):
        for name, value in node:
            yield name
            yield from strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from strings(value)


def show(value: Any) -> str:
    if isinstance(value, Num):
        return value.text
    if isinstance(value, str):
        return '"' + value[:60] + '"'
    return {None: "null", True: "true", False: "false"}.get(value, type(value).__name__)


# --- number spellings ---------------------------------------------------------------------

_PLAIN_NUMBER = re.compile(r"-?[0-9]+(\.[0-9]+)?")


def numeric(value: Any) -> bool:
    return isinstance(value, Num) or (
        isinstance(value, str) and _PLAIN_NUMBER.fullmatch(value) is not None
    )


def spellings(text: str) -> list[str]:
    """JSON number texts of the same value as ``text``: plain, with zeros after the point,
    with an exponent (``1e2``, ``1E+2``, ``1.00E+2``, ``10e1``)."""
    value = Decimal(text)
    if value.is_zero():
        return ["0", "-0", "0.0", "-0.0", "0e0", "0E+3", "0.00e-2"]
    sign, digits, exponent = value.normalize().as_tuple()
    assert isinstance(exponent, int)
    minus = "-" if sign else ""
    coefficient = "".join(map(str, digits))
    adjusted = len(coefficient) - 1 + exponent
    mantissa = coefficient[0] + ("." + coefficient[1:] if len(coefficient) > 1 else "")
    padded = coefficient[0] + "." + (coefficient[1:] + "00")
    plain = format(value.normalize(), "f")
    forms = {
        minus + plain if not plain.startswith("-") else plain,
        f"{minus}{mantissa}e{adjusted}",
        f"{minus}{mantissa}E{adjusted:+d}",
        f"{minus}{padded}E{adjusted:+d}",
        f"{minus}{coefficient}e{exponent}",
        f"{minus}{coefficient}0e{exponent - 1}",
    }
    if exponent >= 0:  # integral
        forms |= {plain + ".0", plain + ".00"}
    else:
        forms.add(plain + "0")  # 25.5 -> 25.50: the same value, one more digit
    return sorted(form for form in forms if Decimal(form) == value)


# --- the transformations ------------------------------------------------------------------


@dataclass
class Draft:
    """A re-spelling being made: the tree, the headers, and how the body is written."""

    doc: Any
    headers: list[tuple[str, str]]
    style: Style = field(default_factory=Style)
    applied: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Target:
    """What the transformations need to know about the instance."""

    sign_field: str | None
    """The member holding the signature, for ``sign``-field schemes."""
    id_header: str | None
    """The header that names the event, when the instance has one."""
    event_header: str | None = None
    """A header that names the event's type (GitHub's ``X-GitHub-Event``)."""


NAMES = (
    "actualAmount",
    "amount",
    "orderNo",
    "orderId",
    "merchantOrderNo",
    "payHash",
    "payTime",
    "errorMsg",
    "status",
    "state",
    "tx_hash",
    "paid_at",
    "event_id",
    "id",
    "type",
    "currency",
    "bankNo",
)

Transform = Callable[[Draft, st.DataObject, Target], str | None]


def number(draft: Draft, data: st.DataObject, target: Target) -> str | None:
    found = [slot for slot in slots(draft.doc) if numeric(slot.get())]
    if not found:
        return None
    slot = data.draw(st.sampled_from(found))
    current = slot.get()
    text = current.text if isinstance(current, Num) else current
    form = data.draw(st.sampled_from(spellings(text)))
    as_string = data.draw(st.booleans())
    new: Any = form if as_string else Num(form)
    if new == current:
        new = Num(form) if as_string else form
    slot.set(new)
    return f"number {slot.path}: {show(current)} -> {show(new)}"


def empty_member(draft: Draft, data: st.DataObject, target: Target) -> str | None:
    where, obj = data.draw(st.sampled_from(list(objects(draft.doc))))
    name = data.draw(
        st.one_of(
            st.just("actualAmount"),
            st.sampled_from(NAMES),
            st.from_regex(r"[a-z][A-Za-z_]{0,9}", fullmatch=True),
        )
    )
    if any(existing == name for existing, _ in obj):
        return None
    value = data.draw(st.sampled_from([None, ""]))
    obj.insert(data.draw(st.integers(0, len(obj))), (name, value))
    return f"added {where + '.' if where else ''}{name}: {show(value)}"


def empty_change(draft: Draft, data: st.DataObject, target: Target) -> str | None:
    found = [
        slot
        for slot in slots(draft.doc)
        if isinstance(slot.container, Obj) and slot.get() in (None, "")
    ]
    if not found:
        return None
    slot = data.draw(st.sampled_from(found))
    current = slot.get()
    if data.draw(st.booleans()):
        del slot.container[slot.index]
        return f"dropped {slot.path}: {show(current)}"
    new = "" if current is None else None
    slot.set(new)
    return f"{slot.path}: {show(current)} -> {show(new)}"


def shuffle(draft: Draft, data: st.DataObject, target: Target) -> str | None:
    found = [(where, obj) for where, obj in objects(draft.doc) if len(obj) >= 2]
    if not found:
        return None
    where, obj = data.draw(st.sampled_from(found))
    order = data.draw(st.permutations(range(len(obj))))
    if order == sorted(order):
        return None
    obj[:] = [obj[index] for index in order]
    return f"members of {where or 'the body'} reordered"


def whitespace(draft: Draft, data: st.DataObject, target: Target) -> str | None:
    gaps = data.draw(
        st.lists(st.sampled_from(["", " ", "\n", "\t", "\r\n", "   "]), min_size=1, max_size=6)
    )
    if not any(gaps):
        gaps.append(" ")
    draft.style = replace(draft.style, gaps=tuple(gaps))
    return f"whitespace {''.join(gaps)!r} between tokens"


def escape(draft: Draft, data: st.DataObject, target: Target) -> str | None:
    present = sorted({char for text in strings(draft.doc) for char in text})
    if not present:
        return None
    chosen = data.draw(st.sets(st.sampled_from(present), min_size=1, max_size=4))
    slash = "/" in present and data.draw(st.booleans())
    ascii_only = any(ord(char) > 127 for char in present) and data.draw(st.booleans())
    draft.style = replace(
        draft.style,
        escape=draft.style.escape | chosen,
        upper_hex=data.draw(st.booleans()),
        slash=draft.style.slash or slash,
        ascii_only=draft.style.ascii_only or ascii_only,
    )
    what = ", ".join(repr(char) for char in sorted(chosen))
    extra = (" and '/' as '\\/'" if slash else "") + (" and non-ASCII" if ascii_only else "")
    return f"escaped {what}{extra}"


def unicode_form(draft: Draft, data: st.DataObject, target: Target) -> str | None:
    found = [
        slot
        for slot in slots(draft.doc)
        if isinstance(slot.get(), str) and any(ord(char) > 127 for char in slot.get())
    ]
    if not found:
        return None
    slot = data.draw(st.sampled_from(found))
    current = slot.get()
    all_forms: tuple[UnicodeForm, ...] = ("NFC", "NFD", "NFKC", "NFKD")
    forms = [form for form in all_forms if unicodedata.normalize(form, current) != current]
    if not forms:
        return None
    form = data.draw(st.sampled_from(forms))
    slot.set(unicodedata.normalize(form, current))
    return f"{slot.path} in {form}"


def header_id(draft: Draft, data: st.DataObject, target: Target) -> str | None:
    request = Request("POST", "", draft.headers, b"")
    choices = []
    if target.id_header is not None and header_index(request, target.id_header) is not None:
        choices += ["fresh", "drop"]
    if target.event_header is not None and header_index(request, target.event_header) is not None:
        choices.append("event")
    if not choices:
        return None
    choice = data.draw(st.sampled_from(choices))
    if choice == "event":
        assert target.event_header is not None
        value = data.draw(st.sampled_from(["push", "ping", "issue_comment", "Issues"]))
        draft.headers = with_header(request, target.event_header, value).headers
        return f"{target.event_header}: {value}"
    assert target.id_header is not None
    index = header_index(request, target.id_header)
    assert index is not None
    old = draft.headers[index][1]
    if choice == "drop":
        draft.headers = with_header(request, target.id_header, None).headers
        return f"{target.id_header} dropped"
    fresh = uuid.uuid4()  # never sent before (hypothesis would draw a few ids many times)
    new = f"msg_{fresh.hex}" if old.startswith("msg_") else str(fresh)
    draft.headers = with_header(request, target.id_header, new).headers
    return f"{target.id_header}: fresh {new}"


def _signed_text(value: Any) -> str | None:
    """A scalar as a ``sign``-field string writes it (integral numbers without a decimal
    part); None for nested values."""
    if isinstance(value, str):
        return value
    if isinstance(value, Num):
        number = Decimal(value.text)
        if number != number.to_integral_value() or number.adjusted() >= 64:
            return value.text
        integral = number.to_integral_value()
        return format(abs(integral) if integral.is_zero() else integral, "f")
    if isinstance(value, bool):
        return "true" if value else "false"
    return None


def _signed_order(obj: Obj, sign_field: str | None) -> list[int]:
    """Indexes of the members a ``sign``-field string covers, in its (byte) order."""
    covered = [
        index
        for index, (name, value) in enumerate(obj)
        if name != sign_field and value is not None and value != ""
    ]
    return sorted(covered, key=lambda index: obj[index][0].encode("utf-8", "surrogatepass"))


def merge_members(obj: Obj, first: str, sign_field: str | None) -> str | None:
    """Fold ``first`` and the member after it in the signed string into ``first``'s value;
    the description, or None when they cannot be folded (a nested value)."""
    order = _signed_order(obj, sign_field)
    positions = [index for index in order if obj[index][0] == first]
    if not positions or order.index(positions[0]) + 1 >= len(order):
        return None
    at, after = positions[0], order[order.index(positions[0]) + 1]
    head, tail = _signed_text(obj[at][1]), _signed_text(obj[after][1])
    if head is None or tail is None:
        return None
    merged = f"{head}&{obj[after][0]}={tail}"
    obj[at] = (first, merged)
    del obj[after]
    return f'merged into "{first}": "{merged[:80]}"'


def merge(draft: Draft, data: st.DataObject, target: Target) -> str | None:
    if not isinstance(draft.doc, Obj):
        return None
    order = _signed_order(draft.doc, target.sign_field)
    if len(order) < 2:
        return None
    first = data.draw(st.sampled_from([draft.doc[index][0] for index in order[:-1]]))
    return merge_members(draft.doc, first, target.sign_field)


_BOUNDARY = re.compile(r"&([^&=]+)=")


def split(draft: Draft, data: st.DataObject, target: Target) -> str | None:
    if not isinstance(draft.doc, Obj):
        return None
    names = {name for name, _ in draft.doc}
    found = [
        (index, match)
        for index, (name, value) in enumerate(draft.doc)
        if isinstance(value, str) and name != target.sign_field
        for match in _BOUNDARY.finditer(value)
        if match.group(1) not in names
    ]
    if not found:
        return None
    index, match = data.draw(st.sampled_from(found))
    name, value = draft.doc[index]
    rest = value[match.end() :]
    new: Any = rest
    if re.fullmatch(r"-?[1-9][0-9]*", rest) and data.draw(st.booleans()):
        new = Num(rest)
    draft.doc[index] = (name, value[: match.start()])
    draft.doc.insert(index + 1, (match.group(1), new))
    return f'split "{name}" into "{value[: match.start()][:40]}" and {match.group(1)}={show(new)}'


KINDS: dict[str, Transform] = {
    "number": number,
    "empty_member": empty_member,
    "empty_change": empty_change,
    "shuffle": shuffle,
    "whitespace": whitespace,
    "escape": escape,
    "unicode_form": unicode_form,
    "header_id": header_id,
    "merge": merge,
    "split": split,
}


def applicable(original: Request, target: Target) -> list[str]:
    """The kinds that can change ``original``: hypothesis draws among these only."""
    doc, headers = parse(original.body), Request("POST", "", original.headers, b"")
    found = [slot.get() for slot in slots(doc)]
    signed = _signed_order(doc, target.sign_field) if isinstance(doc, Obj) else []
    can = {
        "number": any(numeric(value) for value in found),
        "empty_member": True,
        "empty_change": any(value in (None, "") for value in found),
        "shuffle": any(len(obj) >= 2 for _, obj in objects(doc)),
        "whitespace": True,
        "escape": True,
        "unicode_form": any(
            isinstance(value, str) and any(ord(char) > 127 for char in value) for value in found
        ),
        "header_id": any(
            name is not None and header_index(headers, name) is not None
            for name in (target.id_header, target.event_header)
        ),
        "merge": len(signed) >= 2,
        "split": any(isinstance(value, str) and _BOUNDARY.search(value) for value in found),
    }
    return [kind for kind in sorted(KINDS) if can[kind]]


@dataclass(frozen=True)
class Respelling:
    kinds: tuple[str, ...]
    """The transformations that changed something, in the order applied."""
    description: str
    request: Request


def respell(
    original: Request, target: Target, data: st.DataObject, kinds: list[str] | None = None
) -> Respelling:
    """One re-spelling of ``original``: one to three transformations drawn among ``kinds``
    (default: those :func:`applicable` to it) and applied in turn."""
    kinds = kinds or applicable(original, target)
    draft = Draft(parse(original.body), list(original.headers))
    done_kinds = []
    for kind in data.draw(st.lists(st.sampled_from(kinds), min_size=1, max_size=3)):
        done = KINDS[kind](draft, data, target)
        if done is not None:
            done_kinds.append(kind)
            draft.applied.append(done)
    request = replace(original, headers=draft.headers, body=dumps(draft.doc, draft.style))
    if request == original:
        return Respelling((), "the original again", request)
    return Respelling(tuple(done_kinds), "; ".join(draft.applied), request)

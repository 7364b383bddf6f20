"""Reading a JSON body without binary floats.

Numbers with a fraction or exponent become :class:`decimal.Decimal` built from
their exact text, so ``150.0000`` stays ``150.0000``; integers stay ``int``.
Duplicate keys are refused (which value did the provider mean?), as are
``NaN``/``Infinity`` and nesting deeper than ``max_depth`` (``malformed_json``),
and numbers outside :mod:`schemas.ranges` (``out_of_range``): the body becomes
the event's ``raw``, which a consumer's decoder must read.

:func:`array_member` reads a batch (a body whose top-level member is an array of
notifications) the same way, and gives each element's exact bytes besides its value,
so that each notification's event can embed it as sent.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from schemas.errors import NormalizationError
from schemas.ranges import (
    MAX_DEPTH,
    OutOfRange,
    check_body,
    json_integer,
    json_number,
    nesting_exceeds,
)

DEFAULT_MAX_DEPTH = MAX_DEPTH


def parse_payload(body: bytes, max_depth: int = DEFAULT_MAX_DEPTH) -> Any:
    """The parsed body, or ``NormalizationError('malformed_json')``."""
    text = _text(body, max_depth)
    try:
        # decode is raw_decode between two regex scans for whitespace: a body that starts
        # with its value, and has only JSON whitespace after it, is done here. Anything
        # else (leading whitespace, extra data, any error) goes through decode, whose
        # answer and error message are the ones Relay gives.
        value, end = _DECODER.raw_decode(text)
        if not text[end:].strip(_JSON_WHITESPACE):
            return value
    except (ValueError, RecursionError):
        pass
    try:
        return _CHECKED_DECODER.decode(text)
    except OutOfRange as exc:
        raise NormalizationError("out_of_range", str(exc)) from None
    except (ValueError, RecursionError) as exc:
        raise NormalizationError("malformed_json", f"the body is not valid JSON: {exc}") from exc


def _text(body: bytes, max_depth: int) -> str:
    """The body as text, or ``NormalizationError('malformed_json')`` where it is not UTF-8 or
    nests deeper than ``max_depth``."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise NormalizationError("malformed_json", "the body is not valid UTF-8") from exc
    if nesting_exceeds(text, max_depth):
        raise NormalizationError("malformed_json", f"the JSON nests deeper than {max_depth} levels")
    return text


def check_raw(body: bytes) -> None:
    """Refuse, as :func:`parse_payload` would, a body whose numbers or nesting are outside
    :mod:`schemas.ranges`: for a payload reader that does not parse the whole body (the
    ``sign``-field profiles read the signed view) while the event embeds it as ``raw``."""
    try:
        check_body(body)
    except OutOfRange as exc:
        raise NormalizationError("out_of_range", str(exc)) from None
    except (ValueError, RecursionError) as exc:
        raise NormalizationError("malformed_json", f"the body is not valid JSON: {exc}") from exc


def array_member(
    body: bytes, name: str, max_depth: int = DEFAULT_MAX_DEPTH
) -> tuple[tuple[bytes, Any], ...]:
    """The elements of the body's top-level array member ``name``: each one's exact bytes
    in the body and its value, read as :func:`parse_payload` reads (one pass over the body).

    Raises ``NormalizationError``: ``malformed_json`` or ``out_of_range`` for a body
    :func:`parse_payload` refuses (with its reason), ``missing_field`` when the body is not
    an object with such an array.
    """
    text = _text(body, max_depth)
    try:
        elements = _array_member(text, name)
    except (ValueError, RecursionError, IndexError) as exc:
        # What parse_payload says of the body: out_of_range for a number outside
        # schemas.ranges (the scan's decoder reads integers unchecked), else malformed_json.
        parse_payload(body, max_depth)
        detail = "it ends early" if isinstance(exc, IndexError) else str(exc)
        raise NormalizationError("malformed_json", f"the body is not valid JSON: {detail}") from exc
    if elements is None:
        parse_payload(body, max_depth)  # valid JSON of another shape, or malformed_json
        raise NormalizationError("missing_field", f"the body has no {name!r} array")
    return elements


def _array_member(text: str, name: str) -> tuple[tuple[bytes, Any], ...] | None:
    """The scan behind :func:`array_member`: the top-level object member by member, each
    value read by the decoder (which checks it), the named array element by element.
    Raises ``ValueError`` (or ``IndexError`` at a truncated end) where the text is not
    one JSON object."""
    decode = _DECODER.raw_decode
    position = _skip(text, 0)
    if text[position] != "{":
        return None
    seen: set[str] = set()
    found: tuple[tuple[bytes, Any], ...] | None = None
    position = _skip(text, position + 1)
    while text[position] != "}":
        key, position = decode(text, position)
        if not isinstance(key, str) or key in seen:
            raise ValueError(f"duplicate key {key!r}" if key in seen else "a key is not a string")
        seen.add(key)
        position = _skip(text, position)
        if text[position] != ":":
            raise ValueError(f"':' expected at character {position}")
        position = _skip(text, position + 1)
        if key == name and text[position] == "[":
            found, position = _elements(text, position)
        else:
            _, position = decode(text, position)
        position = _skip(text, position)
        if text[position] == ",":
            position = _skip(text, position + 1)
            if text[position] == "}":
                raise ValueError(f"a member expected at character {position}")
        elif text[position] != "}":
            raise ValueError(f"',' or '}}' expected at character {position}")
    if text[position + 1 :].strip(_JSON_WHITESPACE):
        raise ValueError(f"extra data at character {position + 1}")
    return found


def _elements(text: str, position: int) -> tuple[tuple[tuple[bytes, Any], ...], int]:
    """The array starting at ``position`` (its ``[``): each element's text and value, and
    where the array ends."""
    elements = []
    position = _skip(text, position + 1)
    if text[position] == "]":
        return (), position + 1
    while True:
        value, end = _DECODER.raw_decode(text, position)
        elements.append((text[position:end].encode("utf-8"), value))
        position = _skip(text, end)
        if text[position] == "]":
            return tuple(elements), position + 1
        if text[position] != ",":
            raise ValueError(f"',' or ']' expected at character {position}")
        position = _skip(text, position + 1)


def _skip(text: str, position: int) -> int:
    """The first position at or after ``position`` that is not JSON whitespace."""
    while text[position] in _JSON_WHITESPACE:
        position += 1
    return position


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed in JSON")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        counts = Counter(key for key, _ in pairs)
        duplicate = next(key for key, _ in pairs if counts[key] > 1)
        raise ValueError(f"duplicate key {duplicate!r}")
    return result


# What json.decoder's WHITESPACE pattern skips after the value.
_JSON_WHITESPACE = " \t\n\r"

# Made once: json.loads with options builds a decoder (and its C scanner) per call.
# The first reads integers in C: Python's own limit (4,300 digits, unless a process
# changes it; Relay does not) is the range's, and an integer past it fails the first
# try. The second holds integers to the range itself, and tells out_of_range apart.
_DECODER = json.JSONDecoder(
    parse_float=json_number, parse_constant=_reject_constant, object_pairs_hook=_unique_keys
)
_CHECKED_DECODER = json.JSONDecoder(
    parse_float=json_number,
    parse_int=json_integer,
    parse_constant=_reject_constant,
    object_pairs_hook=_unique_keys,
)

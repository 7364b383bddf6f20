"""Reading a JSON body without binary floats.

Numbers with a fraction or exponent become :class:`decimal.Decimal` built from
their exact text, so ``150.0000`` stays ``150.0000``; integers stay ``int``.
Duplicate keys are refused (which value did the provider mean?), as are
``NaN``/``Infinity`` and nesting deeper than ``max_depth``.
"""

from __future__ import annotations

import json
from collections import Counter
from decimal import Decimal
from typing import Any

from schemas.errors import NormalizationError

DEFAULT_MAX_DEPTH = 64


def parse_payload(body: bytes, max_depth: int = DEFAULT_MAX_DEPTH) -> Any:
    """The parsed body, or ``NormalizationError('malformed_json')``."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise NormalizationError("malformed_json", "the body is not valid UTF-8") from exc
    if _nesting_exceeds(text, max_depth):
        raise NormalizationError("malformed_json", f"the JSON nests deeper than {max_depth} levels")
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
        return _DECODER.decode(text)
    except (ValueError, RecursionError) as exc:
        raise NormalizationError("malformed_json", f"the body is not valid JSON: {exc}") from exc


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
_DECODER = json.JSONDecoder(
    parse_float=Decimal, parse_constant=_reject_constant, object_pairs_hook=_unique_keys
)


def _nesting_exceeds(text: str, max_depth: int) -> bool:
    """Cheap upper bound first: only bodies with many brackets get the exact scan."""
    if text.count("{") + text.count("[") <= max_depth:
        return False
    depth = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "{[":
            depth += 1
            if depth > max_depth:
                return True
        elif char in "}]":
            depth -= 1
    return False

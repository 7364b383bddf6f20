"""What an event may carry: the one definition of its times, numbers and nesting.

Relay publishes an event only when every value in it is inside these ranges,
and :mod:`schemas.decoder` accepts every value inside them, so what Relay
publishes and what the decoder reads are one set:

- **Times**: years 1 to 9999 once converted to UTC (what :class:`datetime.datetime`
  holds). :func:`utc` converts, or raises :class:`OutOfRange` (``9999-12-31T23:59:59-01:00``
  is in the year 10000 in UTC). The normalizers write every time through it
  (:func:`schemas.values.rfc3339`); the decoder reads every time through it.
- **Numbers**, anywhere in ``data`` and ``raw``: finite; an integer (no fraction, no
  exponent) has at most ``MAX_NUMBER_DIGITS`` digits (4,300: Python's own limit for
  reading an integer from text); any other number at most ``MAX_NUMBER_DIGITS``
  significant digits and an adjusted exponent (the power of ten of its first digit)
  within ``±MAX_EXPONENT`` (999,999: the range of :mod:`decimal`'s default context, so
  arithmetic on it does not overflow there). :func:`json_number` and
  :func:`json_integer` are the ``parse_float`` and ``parse_int`` hooks that hold a
  JSON text to this: the payload readers (:func:`schemas.payload.parse_payload`,
  :func:`check_body` for the ``sign``-field profiles, whose normalizers read the
  signed view) refuse a body with a number outside it, and the decoder reads with them.
- **Nesting**: ``raw`` at most ``MAX_DEPTH`` (64) levels deep; the event adds two.
- **Size**: an event is at most ``[kafka] max_message_bytes`` (the pipeline checks it
  before any acknowledgement); the decoder reads a record of any size.

A body outside these ranges is authentic all the same: the pipeline dead-letters it
(reason ``out_of_range`` for a number, ``invalid_time`` for a time), never refuses it.
This module is pure and imports nothing of Relay.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, NoReturn

MIN_YEAR = 1
MAX_YEAR = 9999
MAX_NUMBER_DIGITS = 4300
MAX_EXPONENT = 999_999
MAX_DEPTH = 64

# Below this many digits int() reads a text whatever a process set with
# sys.set_int_max_str_digits; longer integers are read through Decimal, which has no limit.
_UNCHECKED_DIGITS = sys.int_info.str_digits_check_threshold


class OutOfRange(ValueError):
    """A value outside the ranges above."""


def utc(moment: datetime) -> datetime:
    """An aware ``moment`` in UTC, or :class:`OutOfRange` when that is past year 9999 or before year 1."""
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        raise OutOfRange(f"{moment.isoformat()} is outside the years 1 to 9999 in UTC") from None


def json_number(text: str) -> Decimal:
    """``parse_float``: a JSON number with a fraction or exponent, as the Decimal of its text."""
    # Without an exponent, a text no longer than the digit bound is inside every bound.
    if len(text) <= MAX_NUMBER_DIGITS and "e" not in text and "E" not in text:
        return Decimal(text)
    try:
        value = Decimal(text)
    except ArithmeticError:  # InvalidOperation: an exponent past what decimal holds at all
        _refuse(text)
    if len(value.as_tuple().digits) > MAX_NUMBER_DIGITS or abs(value.adjusted()) > MAX_EXPONENT:
        _refuse(text)
    return value


def json_integer(text: str) -> int:
    """``parse_int``: a JSON integer, at most ``MAX_NUMBER_DIGITS`` digits."""
    digits = len(text) - text.startswith("-")
    if digits > MAX_NUMBER_DIGITS:
        _refuse(text)
    return int(text) if digits < _UNCHECKED_DIGITS else int(Decimal(text))


def _refuse(text: str) -> NoReturn:
    shown = text if len(text) <= 40 else f"{text[:20]}...{text[-12:]}"
    raise OutOfRange(
        f"the number {shown} is out of range (at most {MAX_NUMBER_DIGITS} digits, "
        f"exponent within ±{MAX_EXPONENT})"
    )


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not JSON")


def loads(text: str | bytes | bytearray) -> Any:
    """JSON ``text`` with every number held to the ranges: integers ``int``, others ``Decimal``.

    Raises :class:`OutOfRange` for a number outside them, another ``ValueError`` for
    text that is not JSON (``NaN`` and ``Infinity`` are not), ``RecursionError`` for
    nesting deeper than the interpreter's stack.
    """
    if not isinstance(text, str):
        # As json.loads reads bytes: UTF-8, -16 or -32, told apart by the first bytes.
        text = text.decode(json.detect_encoding(text), "surrogatepass")
    return _DECODER.decode(text)


# Made once: json.loads with options builds a decoder (and its C scanner) per call.
_DECODER = json.JSONDecoder(
    parse_float=json_number, parse_int=json_integer, parse_constant=_reject_constant
)


def check_body(body: bytes) -> None:
    """Raise :class:`OutOfRange` when the JSON ``body`` holds a number outside the ranges,
    and ``ValueError`` when it nests deeper than ``MAX_DEPTH`` or is not JSON.

    For a body whose normalizer does not read it through
    :func:`schemas.payload.parse_payload` (the ``sign``-field profiles read the signed
    view) but which the event embeds as ``raw`` all the same.
    """
    text = body.decode("utf-8")
    if nesting_exceeds(text, MAX_DEPTH):
        raise ValueError(f"the JSON nests deeper than {MAX_DEPTH} levels")
    loads(text)


def nesting_exceeds(text: str, max_depth: int) -> bool:
    """Whether JSON ``text`` nests deeper than ``max_depth``; cheap upper bound first: only
    bodies with many brackets get the exact scan."""
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

"""Operator output made inert: nothing read from a topic drives the operator's terminal.

Strings decoded from the topics are not Relay's own: a provider writes an order id or
an ``invoice_reference``, and anyone who can write to a topic writes a whole forged
record. Printed raw, ESC starts sequences that clear the screen, retitle the window or
write the clipboard (OSC 52); the C1 controls (U+0080 to U+009F) do the same on
terminals that take them; CR and BS overwrite what a line showed; the bidirectional
controls (U+202A to U+202E, U+2066 to U+2069) reorder it, and the line and paragraph
separators break it; the other format characters (zero-width spaces and joiners, the
byte-order mark, the bidirectional marks) hide a difference between two ids that look
the same.

These are :func:`escapes`: Unicode's controls (Cc) and format characters (Cf), and the
line and paragraph separators, each with its visible escape (``\\x1b``, ``\\u202e``,
``\\U000e0001``). Every table and text line that ``relay tail``, ``find``, ``dlq`` and
``replay`` print goes through :func:`inert`, which writes each as its escape; the
console's pages show them with the same escapes (:func:`relay.console.app.visible`).
JSON output goes through :func:`inert_json`, which writes the ones JSON leaves raw (all
but C0) as ``\\u`` escapes inside their strings, so the text is the same JSON value.
Times go through :func:`moment_text`, which never raises, so an extreme time does not
stop a listing either. This module imports nothing of Relay but the time format.
"""

from __future__ import annotations

import functools
import sys
import unicodedata
from datetime import datetime

from schemas.values import rfc3339


@functools.cache
def escapes() -> dict[int, str]:
    """Every character operator output escapes (Cc, Cf, U+2028, U+2029), by code point,
    with its escape: ``\\xNN`` below U+0100, else ``\\uNNNN`` or ``\\UNNNNNNNN``.

    Read from this Python's Unicode tables, so a format character a later Unicode adds
    is escaped too; built once, on first use (0.1 to 0.3 s), not at import.
    """
    table: dict[int, str] = {}
    for code in range(sys.maxunicode + 1):
        if unicodedata.category(chr(code)) in ("Cc", "Cf") or code in (0x2028, 0x2029):
            if code < 0x100:
                table[code] = f"\\x{code:02x}"
            else:
                table[code] = f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"
    return table


@functools.cache
def _json_escapes() -> dict[int, str]:
    # JSON already escapes C0 inside strings, and outside them it is the layout of the
    # text; a code point past U+FFFF is written as its UTF-16 surrogate pair, as JSON must.
    table: dict[int, str] = {}
    for code in escapes():
        if code >= 0x20:
            if code < 0x10000:
                table[code] = f"\\u{code:04x}"
            else:
                high, low = divmod(code - 0x10000, 0x400)
                table[code] = f"\\u{0xD800 + high:04x}\\u{0xDC00 + low:04x}"
    return table


def inert(text: str) -> str:
    """``text`` with every character of :func:`escapes` escaped."""
    return text.translate(escapes())


def inert_json(text: str) -> str:
    """JSON text with the characters JSON leaves raw escaped as ``\\u`` escapes: the same
    JSON value, for a terminal. Only for text that is JSON: the escapes are JSON's."""
    return text.translate(_json_escapes())


def moment_text(moment: datetime) -> str:
    """A time as Relay writes it (RFC 3339 in UTC), or as it is when it cannot be moved to
    UTC (a year-9999 time with a negative offset): output never stops on a time."""
    try:
        return rfc3339(moment)
    except (OverflowError, ValueError):
        return inert(moment.isoformat())

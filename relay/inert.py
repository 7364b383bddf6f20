"""Operator output made inert: nothing read from a topic drives the operator's terminal.

Strings decoded from the topics are not Relay's own: a provider writes an order id or
an ``invoice_reference``, and anyone who can write to a topic writes a whole forged
record. Printed raw, ESC starts sequences that clear the screen, retitle the window or
write the clipboard (OSC 52); the C1 controls (U+0080 to U+009F) do the same on
terminals that take them; CR and BS overwrite what a line showed; the bidirectional
controls (U+202A to U+202E, U+2066 to U+2069) reorder it, and the line and paragraph
separators break it.

Every table and text line that ``relay tail``, ``find``, ``dlq`` and ``replay`` print
goes through :func:`inert`, which writes each such character as a visible escape
(``\\x1b``, ``\\u202e``). JSON output goes through :func:`inert_json`, which writes
the ones JSON leaves raw (DEL, C1, the bidirectional controls and separators) as
``\\u`` escapes inside their strings, so the text is the same JSON value. Times go
through :func:`moment_text`, which never raises, so an extreme time does not stop a
listing either. This module imports nothing of Relay but the time format.
"""

from __future__ import annotations

from datetime import datetime

from schemas.values import rfc3339

_C0 = range(0x00, 0x20)
_DEL_AND_C1 = range(0x7F, 0xA0)
_LAYOUT = (*range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x2028, 0x2029)

_TEXT = str.maketrans(
    {code: f"\\x{code:02x}" for code in (*_C0, *_DEL_AND_C1)}
    | {code: f"\\u{code:04x}" for code in _LAYOUT}
)
# JSON already escapes C0 inside strings, and outside them it is the layout of the text.
_JSON = str.maketrans({code: f"\\u{code:04x}" for code in (*_DEL_AND_C1, *_LAYOUT)})


def inert(text: str) -> str:
    """``text`` with every control, bidirectional control and separator escaped."""
    return text.translate(_TEXT)


def inert_json(text: str) -> str:
    """JSON text with the characters JSON leaves raw escaped as ``\\u`` escapes: the same
    JSON value, for a terminal. Only for text that is JSON: the escapes are JSON's."""
    return text.translate(_JSON)


def moment_text(moment: datetime) -> str:
    """A time as Relay writes it (RFC 3339 in UTC), or as it is when it cannot be moved to
    UTC (a year-9999 time with a negative offset): output never stops on a time."""
    try:
        return rfc3339(moment)
    except (OverflowError, ValueError):
        return inert(moment.isoformat())

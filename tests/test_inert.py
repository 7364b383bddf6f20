"""Operator output made inert (relay.inert), and the console's pages that share its
escapes: every control and format character shows as its escape, nothing else changes."""

from __future__ import annotations

import json
import re
import sys
import unicodedata

from relay.console.app import visible
from relay.inert import escapes, inert, inert_json

HIDDEN = "".join(
    chr(code)
    for code in range(sys.maxunicode + 1)
    if unicodedata.category(chr(code)) in ("Cc", "Cf") or code in (0x2028, 0x2029)
)
PLAIN = "ORD-1 Zoë Łukasz 東京 €12.50 🙂 <b>&"


def test_every_control_and_format_character_is_escaped_and_nothing_else() -> None:
    shown = inert(HIDDEN)
    assert not any(char in HIDDEN for char in shown)
    assert shown == "".join(escapes()[ord(char)] for char in HIDDEN)
    # The ones a terminal obeys or that hide a difference, by name.
    for char, escape in [
        ("\x1b", "\\x1b"),
        ("\x9b", "\\x9b"),
        ("\u202e", "\\u202e"),
        ("\u200b", "\\u200b"),
        ("\u200f", "\\u200f"),
        ("\ufeff", "\\ufeff"),
        ("\U000e0041", "\\U000e0041"),
    ]:
        assert inert(f"a{char}b") == f"a{escape}b"
    assert inert(PLAIN) == PLAIN


def test_json_output_keeps_its_value() -> None:
    text = json.dumps({"hidden": HIDDEN, "plain": PLAIN}, ensure_ascii=False)
    shown = inert_json(text)
    assert json.loads(shown) == json.loads(text)
    assert not any(char in HIDDEN for char in shown)


def test_the_console_shows_the_same_escapes_marked_and_keeps_lines() -> None:
    shown = str(visible(HIDDEN + PLAIN))
    assert not re.search("[" + re.escape(HIDDEN.replace("\n", "").replace("\t", "")) + "]", shown)
    assert '<span class="ctl">\\x1b</span>' in shown
    assert '<span class="ctl">\\U000e0041</span>' in shown
    assert "\n" in shown and "\t" in shown  # a body's lines and indentation stay
    assert shown.endswith("ORD-1 Zoë Łukasz 東京 €12.50 🙂 &lt;b&gt;&amp;")

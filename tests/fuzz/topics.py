"""Reading what a fuzz run left on the topics: each record back to the request that made it.

Every fuzz request carries a token (``tests.fuzz.mutations.TOKEN``) in its body, so a record
names the request it came from: an event embeds the body byte for byte in ``data.raw``, a
dead letter carries it base64-encoded.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import urllib.parse
from typing import Any

import orjson

from relay.kafka import ReadRecord
from tests.fuzz.mutations import TOKEN


def record_text(record: ReadRecord) -> bytes:
    """A record's value, with a dead letter's body decoded so its token can be read."""
    if record.topic.endswith(".dlq"):
        letter = orjson.loads(record.value)
        body = base64.b64decode(letter["body_base64"])
        # A form's base64 fields decoded too (Braintree's bt_payload holds the token).
        return b"\n".join([body, *_form_payloads(body)])
    return record.value


def record_tokens(record: ReadRecord) -> set[str]:
    """The tokens in a record, read in its text and in its decoded JSON strings: a body that
    spells its token with escapes (``"\\u0066z..."``) still names it; and in the base64
    fields of a form (Braintree's ``bt_payload``, which a dead letter keeps as sent)."""
    text = record_text(record)
    tokens = _tokens(text)
    for line in text.split(b"\n") if record.topic.endswith(".dlq") else ():
        tokens |= _tokens(line)
    return tokens


def _tokens(text: bytes) -> set[str]:
    tokens = {token.decode() for token in TOKEN.findall(text)}
    try:
        decoded = json.loads(text)
    except ValueError:
        return tokens
    for string in _strings(decoded):
        tokens.update(token.decode() for token in TOKEN.findall(string.encode("utf-8", "replace")))
    return tokens


def _form_payloads(text: bytes) -> list[bytes]:
    try:
        fields = urllib.parse.parse_qsl(text.decode("ascii"), strict_parsing=True)
    except (UnicodeDecodeError, ValueError):
        return []
    payloads = []
    for _, value in fields:
        with contextlib.suppress(binascii.Error, ValueError):
            payloads.append(base64.b64decode(value.replace("\n", ""), validate=True))
    return payloads


def _strings(value: Any) -> list[str]:
    found: list[str] = []
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            found.append(item)
        elif isinstance(item, dict):
            found.extend(item)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return found

"""Reading what a fuzz run left on the topics: each record back to the request that made it.

Every fuzz request carries a token (``tests.fuzz.mutations.TOKEN``) in its body, so a record
names the request it came from: an event embeds the body byte for byte in ``data.raw``, a
dead letter carries it base64-encoded.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import orjson

from relay.kafka import ReadRecord
from tests.fuzz.mutations import TOKEN


def record_text(record: ReadRecord) -> bytes:
    """A record's value, with a dead letter's body decoded so its token can be read."""
    if record.topic.endswith(".dlq"):
        letter = orjson.loads(record.value)
        return base64.b64decode(letter["body_base64"])
    return record.value


def record_tokens(record: ReadRecord) -> set[str]:
    """The tokens in a record, read in its text and in its decoded JSON strings: a body that
    spells its token with escapes (``"\\u0066z..."``) still names it."""
    text = record_text(record)
    tokens = {token.decode() for token in TOKEN.findall(text)}
    try:
        decoded = json.loads(text)
    except ValueError:
        return tokens
    for string in _strings(decoded):
        tokens.update(token.decode() for token in TOKEN.findall(string.encode("utf-8", "replace")))
    return tokens


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

"""Normalizers for the profiles that are not payment providers: generic webhook events.

Each profile's function reads the event id, the sender's event type and,
where the sender states one, the event time; ``data`` is ``{provider,
profile, raw}`` (see :func:`schemas.event.webhook_event`). Header names are
lower case: the HTTP layer lower-cases them once.

- ``github``: id ``X-GitHub-Delivery`` (the instance's id header), type ``X-GitHub-Event`` (``push``,
  ``pull_request``; the payload's ``action`` stays in ``raw``), no time (the
  payloads have no common timestamp field). Only JSON deliveries are
  accepted upstream, so ``raw`` is JSON. Neither header is signed, and Relay
  deduplicates GitHub deliveries by their signed body, not by this id: so a
  delivery without them is not an error (it would dead-letter a captured body
  re-sent with its headers stripped) but reads with a hash of the body as its
  id and ``github`` as its type, and is a duplicate of that body's first
  delivery.
- ``stripe``: id, type and time (``created``, UNIX seconds) from the body.
- ``standard_webhooks``: id ``webhook-id``, type the body's ``type`` when it is
  a string (the spec recommends one but does not require it), time
  ``webhook-timestamp`` (UNIX seconds, the signed timestamp).
- ``hmac``: id from the header the instance names (``ctx.id_header``) when it
  is set and present, else a hash of the body's SHA-256, so a retry of the
  same bytes is the same event; type the body's ``type``, else ``event``, when
  it is a string; no time (a generic sender has no known time field).

A missing id where the profile requires one is ``missing_field``: without it
deduplication cannot work.
"""

from __future__ import annotations

import hashlib
from typing import Any

from schemas.errors import NormalizationError
from schemas.event import CanonicalEvent, Message, NormalizeContext, header_id, webhook_event
from schemas.values import field, from_unix, require_object, required_text, stable_id


def github(message: Message, ctx: NormalizeContext) -> CanonicalEvent:
    return webhook_event(
        message,
        ctx,
        event_id=header_id(message, ctx) or _body_id(message),
        sender_type=message.headers.get("x-github-event") or None,
    )


def stripe(message: Message, ctx: NormalizeContext) -> CanonicalEvent:
    payload = require_object(message.payload)
    return webhook_event(
        message,
        ctx,
        event_id=required_text(payload, "id"),
        sender_type=required_text(payload, "type"),
        time=from_unix(field(payload, "created"), "created"),
    )


def standard_webhooks(message: Message, ctx: NormalizeContext) -> CanonicalEvent:
    return webhook_event(
        message,
        ctx,
        event_id=_required_header(message, "webhook-id"),
        sender_type=_string_field(message.payload, "type"),
        time=from_unix(message.headers.get("webhook-timestamp"), "webhook-timestamp"),
    )


def hmac(message: Message, ctx: NormalizeContext) -> CanonicalEvent:
    return webhook_event(
        message,
        ctx,
        event_id=header_id(message, ctx) or _body_id(message),
        sender_type=_string_field(message.payload, "type")
        or _string_field(message.payload, "event"),
    )


def _required_header(message: Message, name: str) -> str:
    value = message.headers.get(name)
    if not value:
        raise NormalizationError("missing_field", f"the header {name!r} is missing")
    return value


def _string_field(payload: Any, name: str) -> str | None:
    """``payload[name]`` when the payload is an object and the value a non-empty string."""
    if not isinstance(payload, dict):
        return None
    value = payload.get(name)
    return value if isinstance(value, str) and value else None


def _body_id(message: Message) -> str:
    """An id for a message whose sender gave none: the same bytes are the same event."""
    return stable_id(hashlib.sha256(message.body).hexdigest())

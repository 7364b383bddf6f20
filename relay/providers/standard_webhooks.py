"""Standard Webhooks (the public spec): a generic webhook event per message.

Signature ``webhook-signature`` over ``<webhook-id>.<webhook-timestamp>.<body>``
(:mod:`verifiers.standard_webhooks`). The event id is ``webhook-id`` (signed; a
missing one is ``missing_field``: without it deduplication cannot work), the
type the body's ``type`` when it is a string (the spec recommends one but does
not require it), the time ``webhook-timestamp`` (UNIX seconds, the signed
timestamp). Header names are lower case: the HTTP layer lower-cases them once.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping

import orjson

import verifiers.standard_webhooks
from relay.providers.base import Ack, Profile, string_field
from relay.samples import Sample, SampleEvent, iso_utc
from schemas.errors import NormalizationError
from schemas.event import CanonicalEvent, Message, NormalizeContext, webhook_event
from schemas.values import from_unix


def normalize(message: Message, ctx: NormalizeContext) -> CanonicalEvent:
    return webhook_event(
        message,
        ctx,
        event_id=_required_header(message, "webhook-id"),
        sender_type=string_field(message.payload, "type"),
        time=from_unix(message.headers.get("webhook-timestamp"), "webhook-timestamp"),
    )


def _required_header(message: Message, name: str) -> str:
    value = message.headers.get(name)
    if not value:
        raise NormalizationError("missing_field", f"the header {name!r} is missing")
    return value


def _sample(now: float, order: str) -> Sample:
    body = {"type": "invoice.paid", "timestamp": iso_utc(now), "data": {"invoice": order}}
    return Sample(orjson.dumps(body), {"webhook-id": f"msg_{uuid.uuid4().hex}"})


SAMPLES: Mapping[str, SampleEvent] = {
    "invoice.paid": SampleEvent(_sample, "standard-webhooks.invoice.paid")
}

PROFILE = Profile(
    name="standard-webhooks",
    document=None,
    scheme=verifiers.standard_webhooks,
    params=verifiers.standard_webhooks.Params(),
    normalize=normalize,
    samples=SAMPLES,
    ack=Ack(),
    timeout_s=15,
    kept_headers=("webhook-id", "webhook-timestamp"),
)

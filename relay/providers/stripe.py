"""Stripe webhooks: a generic webhook event per Stripe event.

Signature ``Stripe-Signature: t=<unix>,v1=<hex>`` over ``<t>.<body>``. Id,
type and time (``created``, UNIX seconds) come from the body; a missing id is
``missing_field``: without it deduplication cannot work.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping

import orjson

import verifiers.stripe
from relay.providers.base import Ack, Profile
from relay.samples import Sample, SampleEvent
from schemas.event import CanonicalEvent, Message, NormalizeContext, webhook_event
from schemas.values import field, from_unix, require_object, required_text


def normalize(message: Message, ctx: NormalizeContext) -> CanonicalEvent:
    payload = require_object(message.payload)
    return webhook_event(
        message,
        ctx,
        event_id=required_text(payload, "id"),
        sender_type=required_text(payload, "type"),
        time=from_unix(field(payload, "created"), "created"),
    )


def _sample(now: float, order: str) -> Sample:
    body = {
        "id": f"evt_{uuid.uuid4().hex[:24]}",
        "object": "event",
        "type": "payment_intent.succeeded",
        "created": int(now),
        "data": {"object": {"id": f"pi_{order}", "amount": 2000, "currency": "usd"}},
    }
    return Sample(orjson.dumps(body))


SAMPLES: Mapping[str, SampleEvent] = {
    "payment_intent.succeeded": SampleEvent(_sample, "stripe.payment_intent.succeeded")
}

PROFILE = Profile(
    name="stripe",
    document=None,
    scheme=verifiers.stripe,
    params=verifiers.stripe.Params(),
    normalize=normalize,
    samples=SAMPLES,
    ack=Ack(),
    timeout_s=10,
)

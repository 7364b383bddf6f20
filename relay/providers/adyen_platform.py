"""Adyen's platform webhooks (Balance Platform, Management API): one webhook event each.

These post one JSON document per request, ``{"data": {...}, "environment":
..., "type": "balancePlatform.accountHolder.created"}``, signed whole: the
base64 HMAC-SHA256 of the raw body, keyed with the hex-decoded HMAC key, in the
``HmacSignature`` header (:mod:`verifiers.adyen`, ``form = "payload"``). A
profile of its own rather than an option of ``adyen``: the body, the signature
and the events differ in everything but the key format and the optional HTTP
Basic credentials, which both take.

Each is published as a webhook event ``adyen-platform.<type>``, its id a hash
of the body (the platform's documents carry no id common to every type) and
no time.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping

import orjson

import verifiers.adyen
from relay.providers.base import Ack, Profile, body_id, string_field
from relay.samples import Sample, SampleEvent
from schemas.event import CanonicalEvent, Message, NormalizeContext, webhook_event


def normalize(message: Message, ctx: NormalizeContext) -> CanonicalEvent:
    return webhook_event(
        message,
        ctx,
        event_id=body_id(message),
        sender_type=string_field(message.payload, "type"),
    )


def _account_holder(now: float, order: str) -> Sample:
    body = {
        "data": {
            "balancePlatform": "RelayTestPlatform",
            "accountHolder": {
                "id": f"AH{uuid.uuid4().hex[:20].upper()}",
                "description": order,
                "status": "active",
            },
        },
        "environment": "test",
        "type": "balancePlatform.accountHolder.created",
    }
    return Sample(orjson.dumps(body))


SAMPLES: Mapping[str, SampleEvent] = {
    "balancePlatform.accountHolder.created": SampleEvent(
        _account_holder, "adyen-platform.balancePlatform.accountHolder.created"
    )
}

PROFILE = Profile(
    name="adyen-platform",
    document=None,
    scheme=verifiers.adyen,
    params=verifiers.adyen.Params(form="payload"),
    fixed_params=("form",),
    basic_auth=True,
    normalize=normalize,
    samples=SAMPLES,
    ack=Ack(),
    timeout_s=10,
)

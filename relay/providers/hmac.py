"""The generic ``hmac`` profile: any sender that signs with an HMAC in a header.

Every option of the signature is the instance's (:mod:`verifiers.hmac_header`).
The event id is the header the instance names (``ctx.id_header``) when it is set
and present, else a hash of the body's SHA-256, so a retry of the same bytes is
the same event; the type the body's ``type``, else ``event``, when it is a
string; no time (a generic sender has no known time field).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping

import orjson

import verifiers.hmac_header
from relay.providers.base import Ack, Profile, body_id, hmac_content_identity, string_field
from relay.samples import Sample, SampleEvent
from schemas.event import CanonicalEvent, Message, NormalizeContext, header_id, webhook_event


def normalize(message: Message, ctx: NormalizeContext) -> CanonicalEvent:
    return webhook_event(
        message,
        ctx,
        event_id=header_id(message, ctx) or body_id(message),
        sender_type=string_field(message.payload, "type") or string_field(message.payload, "event"),
    )


def _sample(now: float, order: str) -> Sample:
    return Sample(
        orjson.dumps({"type": "ping", "reference": order}), {"X-Event-Id": str(uuid.uuid4())}
    )


SAMPLES: Mapping[str, SampleEvent] = {"ping": SampleEvent(_sample, "hmac.ping")}

# The id header is per instance (``id_header``), none by default.
PROFILE = Profile(
    name="hmac",
    document=None,
    scheme=verifiers.hmac_header,
    params=verifiers.hmac_header.Params(),
    normalize=normalize,
    samples=SAMPLES,
    id_header="",
    identity=hmac_content_identity,
    ack=Ack(),
    timeout_s=10,
)

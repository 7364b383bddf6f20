"""GitHub webhooks: a generic webhook event per delivery.

Signature ``X-Hub-Signature-256: sha256=<hex>``, HMAC-SHA256 of the raw body.
The event id is ``X-GitHub-Delivery`` (the instance's id header), the type
``X-GitHub-Event`` (``push``, ``pull_request``; the payload's ``action`` stays
in ``raw``); no time (the payloads have no common timestamp field). Only JSON
deliveries are accepted upstream, so ``raw`` is JSON. Neither header is signed,
and Relay deduplicates GitHub deliveries by their signed body, not by this id:
so a delivery without them is not an error (it would dead-letter a captured body
re-sent with its headers stripped) but reads with a hash of the body as its id
and ``github`` as its type, and is a duplicate of that body's first delivery.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping

import orjson

import verifiers.hmac_header
from relay.providers.base import Ack, Profile, body_id, hmac_content_identity
from relay.samples import Sample, SampleEvent
from schemas.event import CanonicalEvent, Message, NormalizeContext, header_id, webhook_event


def normalize(message: Message, ctx: NormalizeContext) -> CanonicalEvent:
    return webhook_event(
        message,
        ctx,
        event_id=header_id(message, ctx) or body_id(message),
        sender_type=message.headers.get("x-github-event") or None,
    )


def _sample(now: float, order: str) -> Sample:
    body = {
        "action": "opened",
        "issue": {"number": 1, "title": order},
        "sender": {"login": "octocat"},
    }
    return Sample(
        orjson.dumps(body), {"X-GitHub-Event": "issues", "X-GitHub-Delivery": str(uuid.uuid4())}
    )


SAMPLES: Mapping[str, SampleEvent] = {"issues": SampleEvent(_sample, "github.issues")}

PROFILE = Profile(
    name="github",
    document=None,
    scheme=verifiers.hmac_header,
    params=verifiers.hmac_header.Params(header="x-hub-signature-256", prefix="sha256="),
    normalize=normalize,
    samples=SAMPLES,
    identity=hmac_content_identity,
    ack=Ack(),
    timeout_s=10,
    kept_headers=("x-github-event",),
    id_header="x-github-delivery",
)

"""Dead letters: authentic messages Relay could not turn into a published event.

A dead letter keeps everything needed to try again later (``relay replay``
re-enters the pipeline at normalize): the instance, the exact body (base64),
the allow-listed headers, when it was received, why it failed. It never holds
a secret: only headers a profile lists as worth keeping are copied, and
signature headers are never on those lists.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from relay import __version__
from relay.records import KafkaRecord
from schemas.values import rfc3339

DEAD_LETTER_CONTENT_TYPE = b"application/vnd.relay.dead-letter+json"


@dataclass(frozen=True, slots=True)
class DeadLetter:
    id: str
    provider: str
    profile: str
    reason: str
    message: str
    received_at: str
    headers: Mapping[str, str]
    body: bytes
    attempts: int
    dead_lettered_at: str
    relay_version: str = __version__

    def to_json(self) -> bytes:
        return orjson.dumps(
            {
                "id": self.id,
                "provider": self.provider,
                "profile": self.profile,
                "reason": self.reason,
                "message": self.message,
                "received_at": self.received_at,
                "dead_lettered_at": self.dead_lettered_at,
                "headers": dict(self.headers),
                "body_base64": base64.b64encode(self.body).decode(),
                "attempts": self.attempts,
                "relay_version": self.relay_version,
            }
        )

    @classmethod
    def from_json(cls, value: bytes) -> DeadLetter:
        document: dict[str, Any] = orjson.loads(value)
        return cls(
            id=document["id"],
            provider=document["provider"],
            profile=document["profile"],
            reason=document["reason"],
            message=document["message"],
            received_at=document["received_at"],
            headers=document.get("headers", {}),
            body=base64.b64decode(document["body_base64"]),
            attempts=int(document.get("attempts", 1)),
            dead_lettered_at=document.get("dead_lettered_at", document["received_at"]),
            relay_version=document.get("relay_version", ""),
        )

    def to_record(self, topic: str) -> KafkaRecord:
        return KafkaRecord(
            topic=topic,
            key=f"{self.provider}:{self.id}".encode(),
            value=self.to_json(),
            headers=(
                ("content-type", DEAD_LETTER_CONTENT_TYPE),
                ("relay_reason", self.reason.encode()),
                ("relay_provider", self.provider.encode()),
            ),
        )


def dead_letter_id(provider: str, identity: str) -> str:
    """One signed message from one instance is one dead letter, however often it comes and
    however it is re-spelled: ``identity`` is the signed content's (``Profile.identity``)."""
    return hashlib.sha256(f"{provider}\x1f{identity}".encode()).hexdigest()[:32]


def make_dead_letter(
    *,
    provider: str,
    profile: str,
    reason: str,
    message: str,
    received_at: datetime,
    headers: Mapping[str, str],
    body: bytes,
    identity: str | None = None,
    attempts: int = 1,
) -> DeadLetter:
    """``identity`` defaults to the body's SHA-256 (a scheme that signs the exact bytes)."""
    return DeadLetter(
        id=dead_letter_id(provider, identity or hashlib.sha256(body).hexdigest()),
        provider=provider,
        profile=profile,
        reason=reason,
        message=message,
        received_at=rfc3339(received_at),
        headers=dict(headers),
        body=body,
        attempts=attempts,
        dead_lettered_at=rfc3339(datetime.now(UTC)),
    )

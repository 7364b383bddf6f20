"""Sample webhooks for ``relay send`` (like a provider's "send test event"): the machinery.

Each provider module (:mod:`relay.providers`) names its sample events
(``Profile.samples``): a builder takes the current time and a fresh order
reference and returns the unsigned body plus any non-signature headers the
provider sends (webhook ids); :func:`signed_sample` has the profile's scheme
sign it. Payload shapes follow the provider documents in
``shared/provider-docs``. This module imports no provider, so provider modules
import it freely.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from relay.config import ProviderInstance


@dataclass(frozen=True, slots=True)
class Sample:
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


SampleBuilder = Callable[[float, str], Sample]


@dataclass(frozen=True, slots=True)
class SampleEvent:
    """A named sample of a profile's sender, and the CloudEvent type it must become: for a
    batch (several notifications in one request), the type of each, in the body's order."""

    build: SampleBuilder
    becomes: str | tuple[str, ...]


def iso_utc(now: float) -> str:
    """``now`` as the ISO 8601 the senders write: UTC, whole seconds, ``Z``."""
    return datetime.fromtimestamp(int(now), UTC).isoformat().replace("+00:00", "Z")


class UnknownSample(LookupError):
    def __init__(self, event: str, samples: Mapping[str, SampleEvent]) -> None:
        super().__init__(f"no sample event {event!r} (have: {', '.join(samples)})")


def signed_sample(
    instance: ProviderInstance,
    *,
    event: str | None = None,
    body: bytes | None = None,
    order: str | None = None,
    now: float,
) -> Sample:
    """A request as the provider would send it: a sample (or ``body``), signed with the
    instance's secret or demo private key, with its content type."""
    headers: dict[str, str] = {}
    if body is None:
        samples = instance.profile.samples
        name = event or next(iter(samples))
        if name not in samples:
            raise UnknownSample(name, samples)
        sample = samples[name].build(now, order or f"ORDER-{uuid.uuid4().hex[:10].upper()}")
        body, headers = sample.body, dict(sample.headers)
    signed = instance.profile.scheme.sign(body, instance.params, instance.keys, now)
    headers.update(signed.headers)
    headers["Content-Type"] = instance.profile.content_types[0]
    return Sample(signed.body, headers)

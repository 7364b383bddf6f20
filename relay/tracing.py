"""Tracing as the pipeline sees it: a small typed port, and the pipeline that uses it.

:class:`Tracer` and :class:`Span` are all that the HTTP layer, the traced
pipeline below and ``relay replay`` know of tracing; :class:`relay.otel.OtelTracer` implements them
with OpenTelemetry and is the only module that imports it. With ``[tracing]``
off (the default) there is no tracer at all: :func:`open_tracer` returns None,
nothing of OpenTelemetry is imported, the app has no tracing middleware and
uses the plain :class:`relay.pipeline.Pipeline`. What is left per webhook is
the HTTP layer's one look for a receive span.

Spans, one trace per webhook (children indented)::

    receive (SERVER)         one webhook request: provider, outcome, reason, status, event id
      verify                 the signature check; failed with its code when refused
      publish (PRODUCER)     Kafka's acknowledgement or the spool (relay.durability); the
                             event, or the dead letter
    replay (CONSUMER)        relay replay, one letter: outcome, reason, attempt
      publish

Normalize and dedup get no span of their own: with the SDK, a recorded span
costs more CPU than normalizing a webhook does (README, Tracing), and the
receive span already says what they decided (outcome, dead-letter reason).

A webhook's trace starts at Relay. The provider is outside and unauthenticated
until verified, so a ``traceparent`` it sends is not continued (it would choose
Relay's trace ids and, through its sampled flag, what Relay records): the
receive span *links* to it instead. A replayed letter's trace links to the trace
that filed it (its record's ``traceparent``): that one ended long ago. Each
record Relay writes carries the W3C ``traceparent`` of the span it was written
under, receive or replay, so a consumer continues Relay's trace.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Literal, Protocol

from relay.config import Config, ProviderInstance
from relay.dedup import DedupStore
from relay.delivery import Deliverer, Durability
from relay.pipeline import Pipeline
from relay.records import KafkaRecord
from verifiers import Verified

if TYPE_CHECKING:
    from opentelemetry.sdk.trace.export import SpanExporter

    from relay.settings import TracingConfig

AttributeValue = str | int | float | bool
Step = Literal["verify", "publish"]


class Span(Protocol):
    @property
    def trace_id(self) -> str:
        """The trace id, 32 lower-case hex digits (the log line's ``trace_id``)."""

    @property
    def traceparent(self) -> str:
        """This span's W3C ``traceparent``: what a record written under it carries."""

    def set(self, name: str, value: AttributeValue) -> None:
        """Set an attribute: names, codes, ids and statuses only, never a secret or a body."""

    def fail(self, reason: str) -> None:
        """Mark the span failed with a stable code (``signature_mismatch``)."""


class Tracer(Protocol):
    def receive(
        self, provider: str, incoming_traceparent: str | None
    ) -> contextlib.AbstractContextManager[Span]:
        """The span of one webhook request, current while it runs: a new trace, linked to
        the sender's ``traceparent`` when that is valid."""

    def replay(
        self, provider: str, letter_id: str, original_traceparent: str | None
    ) -> contextlib.AbstractContextManager[Span]:
        """The span of one replayed letter: a new trace, linked to the one that filed it."""

    def step(
        self, name: Step, attributes: Mapping[str, AttributeValue]
    ) -> contextlib.AbstractContextManager[Span]:
        """A child of the current span; an exception leaving it marks it failed."""

    def shutdown(self) -> None:
        """Export what is buffered; called once, when the process is done with spans."""


def open_tracer(settings: TracingConfig, exporter: SpanExporter | None = None) -> Tracer | None:
    """The configured tracer, or None when tracing is off (OpenTelemetry is then not
    imported). ``exporter`` replaces OTLP (tests pass the SDK's in-memory one)."""
    if not settings.enabled:
        return None
    from relay.otel import OtelTracer

    return OtelTracer(settings, exporter)


class TracedPipeline(Pipeline):
    """The pipeline with a span around each step, children of the current receive or
    replay span. Used only when tracing is on, so the plain pipeline pays nothing."""

    def __init__(
        self, config: Config, dedup: DedupStore, delivery: Deliverer, tracer: Tracer
    ) -> None:
        super().__init__(config, dedup, delivery)
        self._tracer = tracer

    def _verify(
        self,
        instance: ProviderInstance,
        body: bytes,
        headers: Mapping[str, str],
        received_at: datetime,
    ) -> Verified:
        with self._tracer.step("verify", {"relay.profile": instance.profile.name}):
            return super()._verify(instance, body, headers, received_at)

    async def _deliver(self, record: KafkaRecord, kafka_wait_s: float, key: str) -> Durability:
        attributes = {"messaging.system": "kafka", "messaging.destination.name": record.topic}
        with self._tracer.step("publish", attributes) as span:
            durability = await super()._deliver(record, kafka_wait_s, key)
            span.set("relay.durability", durability.value)
            return durability

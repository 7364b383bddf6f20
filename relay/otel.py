"""The OpenTelemetry boundary: the only module that imports opentelemetry.

It implements :class:`relay.tracing.Tracer` with the OpenTelemetry SDK and is
imported only when ``[tracing] enabled = true`` (:func:`relay.tracing.open_tracer`),
so a Relay without the ``tracing`` extra, or with tracing off, never loads it.

Spans are exported with OTLP over HTTP; the exporter reads the standard
``OTEL_EXPORTER_OTLP_*`` variables itself (endpoint, headers, timeout,
compression, certificate). The provider is Relay's own, not the process-wide
global one: nothing else in the process is instrumented, and several apps in
one process (the tests) do not share or replace each other's.

What a span may hold: names, codes, ids and statuses. Never a header value,
a body or an exception's message: exceptions are not recorded, an error becomes
its code (or class name) in ``error.type`` and the status description.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from contextvars import Token
from types import TracebackType
from typing import TYPE_CHECKING

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import Link, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from relay import __version__

if TYPE_CHECKING:
    from relay.settings import TracingConfig
    from relay.tracing import AttributeValue, Step

_PROPAGATOR = TraceContextTextMapPropagator()
_EMPTY = otel_context.Context()
_KINDS: Mapping[str, SpanKind] = {"publish": SpanKind.PRODUCER}


class OtelSpan:
    """One span as :class:`relay.tracing.Span`, and the context manager that makes it the
    current span while it runs and ends it (a class rather than generator-based context
    managers: a span is per-webhook cost)."""

    __slots__ = ("_span", "_token")

    def __init__(self, span: trace.Span) -> None:
        self._span = span
        self._token: Token[otel_context.Context] | None = None

    def __enter__(self) -> OtelSpan:
        self._token = otel_context.attach(trace.set_span_in_context(self._span))
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if error is not None:
            self.fail(_reason(error))
        if self._token is not None:
            otel_context.detach(self._token)
        self._span.end()

    @property
    def trace_id(self) -> str:
        return trace.format_trace_id(self._span.get_span_context().trace_id)

    @property
    def traceparent(self) -> str:
        context = self._span.get_span_context()
        return (
            f"00-{trace.format_trace_id(context.trace_id)}-"
            f"{trace.format_span_id(context.span_id)}-{context.trace_flags:02x}"
        )

    def set(self, name: str, value: AttributeValue) -> None:
        self._span.set_attribute(name, value)

    def fail(self, reason: str) -> None:
        self._span.set_attribute("error.type", reason)
        self._span.set_status(Status(StatusCode.ERROR, reason))


class OtelTracer:
    """:class:`relay.tracing.Tracer` on an OpenTelemetry SDK ``TracerProvider`` of its own."""

    def __init__(self, settings: TracingConfig, exporter: SpanExporter | None = None) -> None:
        """Spans go to ``exporter`` as each ends (tests pass the SDK's in-memory one), else
        to OTLP over HTTP in batches, from a background thread."""
        # OTEL_SERVICE_NAME wins over the config, as it does over OTEL_RESOURCE_ATTRIBUTES.
        service = os.environ.get("OTEL_SERVICE_NAME") or settings.service_name
        self._provider = TracerProvider(
            resource=Resource.create({"service.name": service, "service.version": __version__}),
            sampler=ParentBased(TraceIdRatioBased(settings.sample_ratio)),
        )
        if exporter is None:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            self._provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        else:
            self._provider.add_span_processor(SimpleSpanProcessor(exporter))
        self._tracer = self._provider.get_tracer("relay", __version__)

    def receive(self, provider: str, incoming_traceparent: str | None) -> OtelSpan:
        return self._root(
            "receive",
            SpanKind.SERVER,
            incoming_traceparent,
            {"relay.provider": provider, "http.request.method": "POST"},
        )

    def replay(self, provider: str, letter_id: str, original_traceparent: str | None) -> OtelSpan:
        return self._root(
            "replay",
            SpanKind.CONSUMER,
            original_traceparent,
            {"relay.provider": provider, "relay.dead_letter_id": letter_id},
        )

    def step(self, name: Step, attributes: Mapping[str, AttributeValue]) -> OtelSpan:
        return self._span(name, _KINDS.get(name, SpanKind.INTERNAL), None, (), attributes)

    def shutdown(self) -> None:
        """Export what is still buffered, then stop the exporter."""
        self._provider.shutdown()

    def _root(
        self,
        name: str,
        kind: SpanKind,
        linked_traceparent: str | None,
        attributes: Mapping[str, AttributeValue],
    ) -> OtelSpan:
        """A span that starts a trace of its own, linked to ``linked_traceparent`` when that
        is a valid W3C trace context (anything else is ignored)."""
        links: tuple[Link, ...] = ()
        if linked_traceparent:
            linked = trace.get_current_span(
                _PROPAGATOR.extract({"traceparent": linked_traceparent}, context=_EMPTY)
            ).get_span_context()
            if linked.is_valid:
                links = (Link(linked),)
        return self._span(name, kind, _EMPTY, links, attributes)

    def _span(
        self,
        name: str,
        kind: SpanKind,
        parent: otel_context.Context | None,
        links: tuple[Link, ...],
        attributes: Mapping[str, AttributeValue],
    ) -> OtelSpan:
        """A span, child of ``parent`` (None: the current span), started now; exceptions
        are not recorded (their messages may name what a span must not hold)."""
        return OtelSpan(
            self._tracer.start_span(
                name, context=parent, kind=kind, attributes=attributes, links=links
            )
        )


def _reason(error: BaseException) -> str:
    """The stable code Relay's errors carry (``code``, or ``reason`` for a normalization
    failure or a refused record), else the class name: never the message."""
    for name in ("code", "reason"):
        value = getattr(error, name, None)
        if isinstance(value, str):
            return value
    return type(error).__name__

"""The HTTP surface: routes, limits, and turning every outcome into a status and body.

No business logic lives here. The webhook handler finds the instance by
route, enforces the IP allow-list and the content type, reads the body under
the instance's size limit and the read timeout, undoing an accepted
``Content-Encoding`` (:mod:`relay.body`), hands bytes and headers to the
pipeline, and answers with the provider's acknowledgement. One middleware
renders every error as ``{"error": code, "message": ...}``; with tracing on, a
second one around it holds each webhook's receive span (:mod:`relay.tracing`),
which the webhook's one log line completes with its outcome and status.

An answer given before the body arrived whole (any refusal: 404, 403, 405, 415,
413, 408, 400, and any route that reads no body) closes the connection. aiohttp
would keep reading the rest for its lingering time, through its parser: a body
in 1-byte chunks then cost 0.8 s of CPU per MiB after its 404. Instead the
answer goes out with ``Connection: close``, Relay shuts its side (the client
reads the answer, then the end), and what still arrives is thrown away unparsed,
a socket read at a time, until the client closes, four times ``[server]
max_body_bytes`` more bytes have come (then the connection is reset) or
``read_timeout_s`` has passed (:class:`_Discard`).

The allow-list checks the TCP peer, or, when the peer is one of
``[server] trusted_proxies``, the rightmost ``X-Forwarded-For`` address that
is not a trusted proxy itself: everything left of it was written by the
client and proves nothing.

    POST /webhooks/{provider}    the webhook endpoint
    GET  /webhooks/{provider}    a provider's check of the destination, for profiles that
                                 answer one (``Profile.challenge``: Braintree's bt_challenge)
    GET  /healthz                the process is alive
    GET  /readyz                 Kafka reachable or spool writable, dedup reachable
    GET  /metrics                Prometheus (see :mod:`relay.metrics`)
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import orjson
from aiohttp import StreamReader, web

from relay.body import read_body
from relay.config import Config, ProviderInstance
from relay.dedup import DedupStore
from relay.errors import ForbiddenAddress, RelayError, UnknownProvider, UnsupportedMediaType
from relay.logs import LineLog
from relay.metrics import (
    DEAD_LETTERS,
    DEDUP_HITS,
    METRICS_ROUTE,
    REJECTED,
    ack_latency,
    batch_items,
    metrics_handler,
    webhooks,
)
from relay.pacing import Pacer
from relay.pipeline import BatchResult, Outcome, Pipeline, Result
from relay.settings import IpNetwork
from relay.sink import Sink
from relay.spool import Spool, SpoolUnavailable
from relay.tracing import Span, Tracer
from verifiers import VerificationError

log = logging.getLogger("relay.http")
webhook_line = LineLog(log, "webhook")

WEBHOOK_ROUTE = "/webhooks/{provider}"
HEALTH_ROUTE = "/healthz"
READY_ROUTE = "/readyz"


@dataclass(slots=True)
class Services:
    """What the handlers use, opened by :func:`relay.app.build_app` in dependency order."""

    config: Config
    dedup: DedupStore
    spool: Spool
    sink: Sink
    pipeline: Pipeline
    tracer: Tracer | None = None
    """None when tracing is off."""


SERVICES = web.AppKey("services", Services)
RECEIVE_SPAN = web.RequestKey("receive_span", Span)
"""The webhook's receive span; set only when tracing is on."""

# aiohttp's own HTTP errors (404 no route, 405, 413 from client_max_size) get our codes too.
_HTTP_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    408: "request_timeout",
    413: "body_too_large",
    415: "unsupported_media_type",
}


def error_response(
    status: int, code: str, message: str, retry_after_s: int | None = None
) -> web.Response:
    headers = {"Retry-After": str(retry_after_s)} if retry_after_s is not None else None
    return web.Response(
        status=status,
        body=orjson.dumps({"error": code, "message": message}),
        content_type="application/json",
        headers=headers,
    )


@web.middleware
async def error_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    started = time.perf_counter()
    response: web.StreamResponse
    try:
        response = await handler(request)
    except (RelayError, VerificationError) as error:
        _record_error(request, error.status, error.code, str(error), started)
        response = error_response(
            error.status, error.code, str(error), getattr(error, "retry_after_s", None)
        )
    except web.HTTPException as error:
        if error.status < 400:
            raise
        code = _HTTP_CODES.get(error.status, "http_error")
        message = "the request body is too large" if error.status == 413 else error.reason
        _record_error(request, error.status, code, message, started)
        response = error_response(error.status, code, message)
    except Exception:
        # A bug, not the sender's fault: answer 500 (the provider retries) and log the
        # traceback in the request's one line rather than in aiohttp's separate one.
        _record_error(request, 500, "internal_error", "unexpected error", started, traceback=True)
        response = error_response(500, "internal_error", "unexpected error; the provider may retry")
    if not request.content.is_eof():
        await _answer_and_close(request, response)
    return response


async def _answer_and_close(request: web.Request, response: web.StreamResponse) -> None:
    """Send ``response`` to a request whose body has not arrived whole, then close.

    Relay writes the answer itself (aiohttp's own write of it is then a no-op), shuts
    its side of the connection, and hands the connection to a :class:`_Discard`: from
    then on nothing parses what arrives. aiohttp's lingering wait for the rest of the
    body (``lingering_time``, set to ``read_timeout_s``) ends when the connection does,
    and closes it at the latest.
    """
    response.force_close()
    try:
        await response.prepare(request)
        await response.write_eof()
    except ConnectionError:
        return  # the client has gone; aiohttp sees it too
    transport = request.transport
    if transport is None or transport.is_closing():
        return
    # aiohttp's handler parses nothing more, even what it holds unparsed: reading what it
    # has parsed (as its lingering does) would otherwise make it parse the rest it holds.
    request.protocol.close()
    # More than any proxy in front lets through (the bundled nginx: 2 MiB): a proxy still
    # sending a body it buffered must not be reset before it reads the answer (it would
    # answer 502 instead: measured behind nginx with an allowance of max_body_bytes).
    allowance = _DISCARD_FACTOR * request.app[SERVICES].config.server.max_body_bytes
    transport.set_protocol(_Discard(transport, request.content, allowance))
    if transport.can_write_eof():
        transport.write_eof()  # after the answer, which the transport flushes first
    # aiohttp may have paused reading while the unread body filled its buffer.
    transport.resume_reading()


_DISCARD_FACTOR = 4
"""What :class:`_Discard` throws away before resetting, in ``[server] max_body_bytes``."""


class _Discard(asyncio.Protocol):
    """A refused request's connection once answered: what arrives is thrown away unparsed.

    A socket read costs the same whatever its bytes hold, so the rest of a body costs
    per byte, never per chunk, and the reads of a rest that trickles in are paced
    (:mod:`relay.pacing`). Past ``allowance`` bytes the connection is closed (the
    kernel then resets it); the client closing its side closes it too. Closing is
    passed on to aiohttp's connection handler, which this protocol stands in for, and
    the body's stream is ended so that aiohttp's lingering wait for it ends as well.
    """

    def __init__(self, transport: asyncio.Transport, body: StreamReader, allowance: int) -> None:
        self._transport = transport
        self._handler = transport.get_protocol()
        self._body = body
        self._left = allowance
        self._pacer = Pacer(transport, transport.resume_reading)

    def data_received(self, data: bytes) -> None:
        self._left -= len(data)
        if self._left < 0:
            self._transport.close()
            return
        self._pacer.read(len(data))

    def eof_received(self) -> bool:
        return False  # the transport closes

    def connection_lost(self, exc: Exception | None) -> None:
        self._body.feed_eof()
        self._handler.connection_lost(exc)

    def pause_writing(self) -> None:
        self._handler.pause_writing()

    def resume_writing(self) -> None:
        self._handler.resume_writing()


@web.middleware
async def tracing_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Each webhook request inside its receive span (installed only when tracing is on).

    Outside :func:`error_middleware`, so that the span is still current when the error
    path writes the webhook's log line (:func:`_write_line` completes the span there).
    """
    tracer = request.app[SERVICES].tracer
    provider = _webhook_provider(request)
    if tracer is None or provider is None:
        return await handler(request)
    # A valid W3C traceparent from the sender is linked, never continued (relay.tracing).
    with tracer.receive(provider, request.headers.get("traceparent")) as span:
        request[RECEIVE_SPAN] = span
        return await handler(request)


def _webhook_provider(request: web.Request) -> str | None:
    """The instance a webhook request is for (``unknown`` for an unconfigured route, so
    scanners cannot create names); None for any other route."""
    resource = request.match_info.route.resource
    if resource is None or resource.canonical != WEBHOOK_ROUTE:
        return None
    name = request.match_info.get("provider", "")
    return name if name in request.app[SERVICES].config.providers else "unknown"


def _record_error(
    request: web.Request,
    status: int,
    code: str,
    message: str,
    started: float,
    *,
    traceback: bool = False,
) -> None:
    """Count a webhook answered with an error and write its one log line."""
    provider = _webhook_provider(request)
    if provider is None:
        return
    if status == 503:
        outcome, level = "unavailable", logging.ERROR
    elif status >= 500:
        outcome, level = "error", logging.ERROR
    else:
        outcome, level = "rejected", logging.WARNING
        REJECTED.labels(provider, code).inc()
    webhooks(provider, outcome).inc()
    fields: dict[str, object] = {
        "provider": provider,
        # Unverified requests have no event id worth logging: anything in them may be forged.
        "event_id": None,
        "outcome": outcome,
        "reason": code,
        "status": status,
        "latency_ms": round((time.perf_counter() - started) * 1000, 2),
        "detail": message,
    }
    if provider == "unknown":
        fields["route"] = request.match_info.get("provider", "")[:64]
    _write_line(request.get(RECEIVE_SPAN), level, fields, traceback)


def _record_result(
    instance: ProviderInstance, result: Result | BatchResult, seconds: float, span: Span | None
) -> None:
    """Count a webhook that got the provider's acknowledgement and write its one log line."""
    if isinstance(result, BatchResult):
        _record_batch(instance, result, seconds, span)
        return
    provider = instance.name
    outcome = _count_outcome(provider, result)
    webhooks(provider, outcome).inc()
    ack_latency(provider).observe(seconds)
    fields: dict[str, object] = {
        "provider": provider,
        # For a dead letter, the letter's id (`relay dlq show ID`).
        "event_id": result.event_id,
        "outcome": outcome,
        "reason": result.reason,
        "status": instance.ack.status,
        "latency_ms": round(seconds * 1000, 2),
    }
    # Acknowledged, but a dead letter needs someone to look at it and `relay replay` it.
    _write_line(span, logging.WARNING if outcome == "dead_lettered" else logging.INFO, fields)


# A batch request's outcome in the webhook counter and its log line: that of its items
# which most needs attention, first in this order.
_BATCH_OUTCOMES = ("dead_lettered", "spooled", "accepted", "duplicate")


def _record_batch(
    instance: ProviderInstance, result: BatchResult, seconds: float, span: Span | None
) -> None:
    """A batch request: each notification counted by outcome, the request counted once,
    and one log line saying how many of its items became what."""
    provider = instance.name
    outcomes = [_count_outcome(provider, item) for item in result.items]
    counts = {outcome: outcomes.count(outcome) for outcome in _BATCH_OUTCOMES}
    for outcome, count in counts.items():
        if count:
            batch_items(provider, outcome).inc(count)
    outcome = next(outcome for outcome in _BATCH_OUTCOMES if counts[outcome])
    webhooks(provider, outcome).inc()
    ack_latency(provider).observe(seconds)
    letters = [item for item in result.items if item.outcome is Outcome.DEAD_LETTERED]
    only = result.items[0] if len(result.items) == 1 else None
    fields: dict[str, object] = {
        "provider": provider,
        # A batch of one reads as a webhook of one message; a longer one names its letters.
        "event_id": None if only is None else only.event_id,
        "outcome": outcome,
        "reason": letters[0].reason if letters else None,
        "status": instance.ack.status,
        "latency_ms": round(seconds * 1000, 2),
        "items": len(result.items),
    }
    if only is None:
        fields["item_outcomes"] = {outcome: count for outcome, count in counts.items() if count}
        if letters:
            fields["dead_letter_ids"] = [letter.event_id for letter in letters]
    _write_line(span, logging.WARNING if letters else logging.INFO, fields)


def _count_outcome(provider: str, result: Result) -> str:
    """The outcome of one acknowledged message as the log and the counters name it; counts
    its duplicate or dead letter."""
    if result.outcome is Outcome.ACCEPTED:
        spooled = result.durability is not None and result.durability.value == "spool"
        return "spooled" if spooled else "accepted"
    if result.outcome is Outcome.DUPLICATE:
        DEDUP_HITS.labels(provider).inc()
        return "duplicate"
    DEAD_LETTERS.labels(provider, result.reason or "unknown").inc()
    return "dead_lettered"


def _write_line(
    span: Span | None, level: int, fields: dict[str, object], traceback: bool = False
) -> None:
    """A webhook's one log line; with tracing on, its receive span gets the same outcome,
    and the line the trace id."""
    if span is not None:
        _complete_receive_span(span, fields)
        fields["trace_id"] = span.trace_id
    webhook_line.write(level, fields, exc_info=traceback)


_SPAN_ATTRIBUTES = (
    ("outcome", "relay.outcome"),
    ("reason", "relay.reason"),
    ("event_id", "cloudevents.event_id"),
)


def _complete_receive_span(span: Span, fields: dict[str, object]) -> None:
    """What the log line says, on the receive span: outcome, codes, ids, status."""
    for field, attribute in _SPAN_ATTRIBUTES:
        value = fields[field]
        if value is not None:
            span.set(attribute, str(value))
    status = fields["status"]
    if isinstance(status, int):
        span.set("http.response.status_code", status)
        if status >= 400:
            # Not acknowledged: refused (4xx, with its code) or failed (5xx).
            span.fail(str(fields["reason"]))


async def receive_webhook(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    started = time.perf_counter()
    # Only looked up with tracing on: a request's get() of a missing key raises and
    # catches a KeyError inside, on every webhook.
    span = request.get(RECEIVE_SPAN) if services.tracer is not None else None
    instance = services.config.providers.get(request.match_info["provider"])
    if instance is None:
        raise UnknownProvider(f"no provider is configured at {request.path}")
    _check_address(instance, request, services.config.server.trusted_proxies)
    if request.content_type not in instance.profile.content_types:
        raise UnsupportedMediaType(
            f"Content-Type must be {' or '.join(instance.profile.content_types)}"
        )
    body = await read_body(
        request,
        limit=instance.max_body_bytes,
        encodings=instance.content_encodings,
        timeout_s=services.config.server.read_timeout_s,
    )
    received_at = datetime.now(UTC)
    # aiohttp's headers as they are: their lookups ignore case, and of repeated headers
    # the first wins, as most servers do (a lower-cased copy cost 1 us of every webhook).
    result = await services.pipeline.receive(
        instance, body, request.headers, received_at, None if span is None else span.traceparent
    )
    _record_result(instance, result, time.perf_counter() - started, span)
    return web.Response(
        status=instance.ack.status, body=instance.ack.body, content_type=instance.ack.content_type
    )


async def answer_challenge(request: web.Request) -> web.Response:
    """A provider's check of its destination: the profile's answer, in text/plain.

    The same route, allow-list and error rendering as a webhook; a profile without a
    challenge takes no GET (405), and a GET that is not a challenge is a 400.
    """
    services = request.app[SERVICES]
    instance = services.config.providers.get(request.match_info["provider"])
    if instance is None:
        raise UnknownProvider(f"no provider is configured at {request.path}")
    if instance.profile.challenge is None:
        raise web.HTTPMethodNotAllowed(request.method, ["POST"])
    _check_address(instance, request, services.config.server.trusted_proxies)
    answer = instance.profile.challenge(request.query, instance.params, instance.keys)
    if answer is None:
        raise web.HTTPBadRequest(reason="this GET carries no challenge the profile answers")
    return web.Response(status=200, text=answer, content_type="text/plain")


def _check_address(
    instance: ProviderInstance, request: web.Request, trusted_proxies: tuple[IpNetwork, ...]
) -> None:
    if not instance.allow_ips:
        return
    address = client_address(
        request.remote, request.headers.getall("X-Forwarded-For", []), trusted_proxies
    )
    if address is None or not any(address in network for network in instance.allow_ips):
        raise ForbiddenAddress("the client address is not allowed for this provider")


IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def client_address(
    peer: str | None, forwarded_for: list[str], trusted_proxies: tuple[IpNetwork, ...]
) -> IpAddress | None:
    """The address the allow-list judges; None when it cannot be read (never allowed).

    ``X-Forwarded-For`` counts only when the TCP peer is a trusted proxy. Each proxy
    appends the address it saw, so the list is walked from the right, past trusted
    proxies, to the first address a trusted proxy saw connecting: the client. An entry
    that is not an address stops the walk (None): a proxy never writes one, so the
    header was tampered with below our proxies. Several headers read as one list.
    """
    address = _parse_address(peer)
    if address is None or not _trusted(address, trusted_proxies):
        return address
    hops = [hop.strip() for value in forwarded_for for hop in value.split(",")]
    for hop in reversed(hops):
        address = _parse_address(hop)
        if address is None or not _trusted(address, trusted_proxies):
            return address
    # Every hop is a trusted proxy (or there is no header): the request started inside.
    return address


def _parse_address(text: str | None) -> IpAddress | None:
    try:
        address = ipaddress.ip_address(text or "")
    except ValueError:
        return None
    # A dual-stack socket reports IPv4 peers as ::ffff:a.b.c.d; allow-lists name them as IPv4.
    mapped = getattr(address, "ipv4_mapped", None)
    return mapped or address


def _trusted(address: IpAddress, trusted_proxies: tuple[IpNetwork, ...]) -> bool:
    return any(address in network for network in trusted_proxies)


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"}, dumps=lambda value: orjson.dumps(value).decode())


async def readyz(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    spool_ok = True
    try:
        services.spool.check_writable()
    except SpoolUnavailable:
        spool_ok = False
    dedup_ok = True
    try:
        await services.dedup.ping()
    except Exception:  # any failure of the store means "not ready", whatever its type
        dedup_ok = False
    kafka_ok = services.sink.healthy
    # A missing topic needs an operator: the spool takes events meanwhile, but
    # the instance must not look healthy while nothing can reach the topic.
    missing_topics = sorted(services.sink.missing_topics)
    ready = (kafka_ok or spool_ok) and dedup_ok and not missing_topics
    document = {
        "ready": ready,
        "kafka": {
            "connected": kafka_ok,
            # The error's class or a fixed phrase: aiokafka's messages name broker
            # addresses, and this document may be reachable from outside (the log has them).
            "error": None if kafka_ok else (services.sink.last_error or "not connected"),
            "missing_topics": missing_topics,
        },
        "spool": {"writable": spool_ok, "depth": services.spool.depth},
        "dedup": {"reachable": dedup_ok, "backend": services.config.dedup.backend},
    }
    return web.Response(
        status=200 if ready else 503, body=orjson.dumps(document), content_type="application/json"
    )


def add_routes(app: web.Application) -> None:
    app.router.add_post(WEBHOOK_ROUTE, receive_webhook)
    app.router.add_get(WEBHOOK_ROUTE, answer_challenge, allow_head=False)
    app.router.add_get(HEALTH_ROUTE, healthz)
    app.router.add_get(READY_ROUTE, readyz)
    app.router.add_get(METRICS_ROUTE, metrics_handler)

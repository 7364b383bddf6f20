"""Building the aiohttp application and the lifecycle of what it owns.

Resources open in dependency order and close in reverse (aiohttp
``cleanup_ctx``): the tracer (when tracing is on), dedup store, spool, Kafka
sink, delivery and its drainer. On shutdown aiohttp first stops accepting and
lets in-flight requests finish (they reach durability or answer 503); then the
drainer gets a last bounded pass, the producer flushes, the spool closes, the
dedup store closes, and the tracer exports its last spans.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING

from aiohttp import web

from relay.body import MAX_CHUNKS
from relay.config import Config
from relay.dedup import open_configured
from relay.delivery import Delivery
from relay.http import SERVICES, Services, add_routes, error_middleware, tracing_middleware
from relay.kafka import KafkaSink
from relay.metrics import SPOOL_DEPTH, SPOOL_OLDEST_AGE
from relay.pipeline import Pipeline
from relay.spool import Spool
from relay.tracing import TracedPipeline, open_tracer

if TYPE_CHECKING:
    from opentelemetry.sdk.trace.export import SpanExporter


def build_app(config: Config, *, span_exporter: SpanExporter | None = None) -> web.Application:
    """``span_exporter`` replaces OTLP when tracing is on (tests pass an in-memory one)."""
    server = config.server
    # Tracing off: no middleware, so requests pay nothing for it.
    tracing = [tracing_middleware] if config.tracing.enabled else []
    app = web.Application(
        # The outer cap for any body aiohttp reads itself. The webhook handler reads its own
        # (relay.body) under the instance's max_body_bytes, which the config loader keeps at
        # or below this.
        client_max_size=server.max_body_bytes,
        middlewares=[*tracing, error_middleware],
        # Limits aiohttp's connection handler applies before any of our code runs; being
        # handler_args, they hold for every runner, the test client's included.
        handler_args={
            "max_headers": server.max_headers,
            "max_field_size": server.max_header_bytes,
            "max_line_size": server.max_header_bytes,
            # aiohttp starts this timer when a connection opens and again after each answer,
            # and closes the connection if no complete request head arrived by then: the
            # header half of the read timeout (the body half is in relay.http).
            "keepalive_timeout": server.read_timeout_s,
            # After answering a request whose body it has not read whole (any refusal), aiohttp
            # waits this long for the rest. relay.http has by then answered, closed Relay's side
            # and stopped the parsing (the rest is thrown away unparsed, up to 4 max_body_bytes),
            # so this is only the longest the connection stays open: the read timeout rather
            # than aiohttp's fixed 10 s.
            "lingering_time": server.read_timeout_s,
            # aiohttp's parser stops parsing a body once read_bufsize // 16 chunks of it wait
            # unread (and once twice read_bufsize bytes do): 16 KiB instead of aiohttp's
            # 256 KiB makes that MAX_CHUNKS, the most a body may come in, so no more chunks are
            # parsed before relay.body counts them (at 256 KiB, 16,384 were: 13 ms of CPU for
            # a body in 1-byte chunks, even on a 404). A bigger body waits in the socket
            # rather than in that buffer, read as it is consumed.
            "read_bufsize": MAX_CHUNKS * 16,
            # Bodies arrive as sent: relay.body undoes only the Content-Encoding an instance
            # accepts, counting unpacked bytes against its limit before buffering them, and
            # answers a broken stream with a 400 (aiohttp would inflate gzip, deflate, br and
            # zstd for anyone, and answer a broken stream with a 500 and two tracebacks).
            "auto_decompress": False,
        },
    )
    add_routes(app)
    app.cleanup_ctx.append(_services(config, span_exporter))
    return app


def _services(
    config: Config, span_exporter: SpanExporter | None
) -> Callable[[web.Application], AsyncIterator[None]]:
    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        tracer = open_tracer(config.tracing, span_exporter)
        dedup = open_configured(config.dedup)
        spool = Spool.open(Path(config.spool.path), max_bytes=config.spool.max_bytes)
        sink = KafkaSink(config.kafka)
        await sink.start()
        delivery = Delivery(sink, spool)
        delivery.start_drainer()
        app[SERVICES] = Services(
            config=config,
            dedup=dedup,
            spool=spool,
            sink=sink,
            pipeline=(
                Pipeline(config, dedup, delivery)
                if tracer is None
                else TracedPipeline(config, dedup, delivery, tracer)
            ),
            tracer=tracer,
        )
        gauges = asyncio.create_task(_publish_spool_gauges(spool), name="spool-gauges")
        try:
            yield
        finally:
            gauges.cancel()
            await delivery.stop(config.server.shutdown_grace_s)
            await sink.stop()
            await spool.close()
            await dedup.close()
            if tracer is not None:
                tracer.shutdown()

    return lifecycle


async def _publish_spool_gauges(spool: Spool) -> None:
    """Refresh the spool gauges every second (each worker writes its own in multiprocess mode)."""
    while True:
        SPOOL_DEPTH.set(spool.depth)
        SPOOL_OLDEST_AGE.set(spool.oldest_age_s(time.time()) or 0.0)
        await asyncio.sleep(1.0)

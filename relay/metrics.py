"""Prometheus metrics, and the ``/metrics`` endpoint.

With ``relay serve --workers N`` every worker writes its samples to
``PROMETHEUS_MULTIPROC_DIR`` (set by the server before the workers start) and
a scrape of any worker aggregates all of them (prometheus-client's
multiprocess mode). Gauges say how they combine across workers.

Label values are bounded: ``provider`` is a configured instance name or
``unknown`` (a scanner posting to random routes cannot create series), and
``reason``/``outcome`` are fixed codes.
"""

from __future__ import annotations

import functools
import os

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

METRICS_ROUTE = "/metrics"

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)

WEBHOOKS = Counter(
    "relay_webhooks_total",
    "Webhooks answered, by provider instance and outcome "
    "(accepted, spooled, duplicate, dead_lettered, rejected, unavailable, error).",
    ["provider", "outcome"],
)
REJECTED = Counter(
    "relay_webhooks_rejected_total",
    "Webhooks refused with a 4xx, by provider instance and reason code.",
    ["provider", "reason"],
)
DEAD_LETTERS = Counter(
    "relay_dead_letters_total",
    "Authentic messages sent to the dead-letter topic, by provider instance and reason.",
    ["provider", "reason"],
)
BATCH_ITEMS = Counter(
    "relay_batch_items_total",
    "Notifications of acknowledged batch requests (Adyen, GoCardless), by provider instance "
    "and outcome (accepted, spooled, duplicate, dead_lettered); relay_webhooks_total counts "
    "each request once, with the outcome of its items that most needs attention.",
    ["provider", "outcome"],
)
DEDUP_HITS = Counter(
    "relay_dedup_hits_total",
    "Retries recognised as duplicates of an event already durable.",
    ["provider"],
)
ACK_LATENCY = Histogram(
    "relay_ack_latency_seconds",
    "Time from request start to the provider's acknowledgement (2xx answers only).",
    ["provider"],
    buckets=_LATENCY_BUCKETS,
)
KAFKA_PUBLISH = Histogram(
    "relay_kafka_publish_seconds",
    "Time Kafka took to acknowledge a record (acks=all).",
    buckets=_LATENCY_BUCKETS,
)
SPOOL_DEPTH = Gauge(
    "relay_spool_depth",
    "Records in the local spool waiting for Kafka (summed over workers).",
    multiprocess_mode="livesum",
)
SPOOL_OLDEST_AGE = Gauge(
    "relay_spool_oldest_age_seconds",
    "Age of the oldest spooled record (0 when empty; the largest over workers).",
    multiprocess_mode="livemax",
)
READ_PAUSES = Counter(
    "relay_read_pauses_total",
    "Pauses in reading a connection whose request trickles in: past 16 reads of under "
    "1 KiB in one request, each further one (relay.pacing).",
)


# The children every acknowledged webhook updates, looked up once per label set (a few,
# from the config) instead of once per webhook.
@functools.cache
def webhooks(provider: str, outcome: str) -> Counter:
    """``relay_webhooks_total`` for one instance and outcome."""
    return WEBHOOKS.labels(provider, outcome)


@functools.cache
def batch_items(provider: str, outcome: str) -> Counter:
    """``relay_batch_items_total`` for one instance and outcome."""
    return BATCH_ITEMS.labels(provider, outcome)


@functools.cache
def ack_latency(provider: str) -> Histogram:
    """``relay_ack_latency_seconds`` for one instance."""
    return ACK_LATENCY.labels(provider)


REPLAYED = Counter(
    "relay_replay_total",
    "Dead letters handled by relay replay, by outcome (replayed, duplicate, failed).",
    ["outcome"],
)


async def metrics_handler(request: web.Request) -> web.Response:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        payload = generate_latest(registry)
    else:
        payload = generate_latest()
    response = web.Response(body=payload)
    response.content_type = CONTENT_TYPE_LATEST.split(";")[0]
    return response

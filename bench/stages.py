"""What one webhook costs Relay's own code, stage by stage, in CPU microseconds.

Measured in this process, without HTTP or a broker: each stage runs on the
same signed ``usdt-invoice`` webhooks the load runs send, many times, and
the best of several rounds is kept (CPU time, so other processes on the
machine barely move it). Together with the ceiling and the Kafka floor rows
of the load table, it tells where a request's CPU goes.

- ``verify``: the profile's signature check (HMAC-SHA256 over the body);
- ``normalize``: JSON parse and the canonical event (``relay.pipeline.normalize``);
- ``record``: ``to_kafka_record`` (the event's JSON, key, headers);
- ``dedup``: memory store ``claim`` then ``mark_done``;
- ``delivery``: ``Delivery.deliver`` with a ``MemorySink`` that acknowledges
  at once (the task, the timed wait, the bookkeeping; not aiokafka);
- ``log line``: the one JSON log line per webhook (to ``/dev/null``);
- ``metrics``: the counters and histograms one accepted webhook updates.
"""

from __future__ import annotations

import asyncio
import logging
import os
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

from bench.cases import signing_instance
from relay.dedup import MemoryDedup
from relay.delivery import Delivery
from relay.memory_sink import MemorySink
from relay.metrics import KAFKA_PUBLISH, ack_latency, webhooks
from relay.pipeline import Inbound, normalize
from relay.records import KafkaRecord, to_kafka_record
from relay.samples import signed_sample
from relay.spool import Spool

ROUNDS = 5
COUNT = 2000


def _best_us(fn: Callable[[], None], count: int) -> float:
    best = float("inf")
    for _ in range(ROUNDS):
        started = time.process_time()
        fn()
        best = min(best, time.process_time() - started)
    return best / count * 1e6


def run() -> dict[str, float]:
    instance = signing_instance()
    now = time.time()
    samples = [signed_sample(instance, event="confirmed", now=now) for _ in range(COUNT)]
    requests = [
        (sample.body, {name.lower(): value for name, value in sample.headers.items()})
        for sample in samples
    ]
    received = datetime.now(UTC)
    scheme, params, keys = instance.profile.scheme, instance.params, instance.keys
    inbounds = [Inbound(instance, body, headers, received) for body, headers in requests]
    events = [normalize(inbound) for inbound in inbounds]
    records = [to_kafka_record(event, "bench") for event in events]
    costs: dict[str, float] = {}

    def verify() -> None:
        for body, headers in requests:
            scheme.verify(body, headers, params, keys, now)

    def normalize_all() -> None:
        for inbound in inbounds:
            normalize(inbound)

    def record_all() -> None:
        for event in events:
            to_kafka_record(event, "bench")

    costs["verify"] = _best_us(verify, COUNT)
    costs["normalize"] = _best_us(normalize_all, COUNT)
    costs["record"] = _best_us(record_all, COUNT)
    costs.update(asyncio.run(_async_stages(records)))
    costs["log line"] = _log_line_us()

    def metrics() -> None:
        for _ in range(COUNT):
            webhooks(instance.name, "accepted").inc()
            ack_latency(instance.name).observe(0.003)
            KAFKA_PUBLISH.observe(0.002)

    costs["metrics"] = _best_us(metrics, COUNT)
    return {stage: round(us, 2) for stage, us in costs.items()}


async def _async_stages(records: list[KafkaRecord]) -> dict[str, float]:
    async def timed(fn: Callable[[int], Awaitable[None]]) -> float:
        best = float("inf")
        for round_ in range(ROUNDS):
            started = time.process_time()
            await fn(round_)
            best = min(best, time.process_time() - started)
        return best / len(records) * 1e6

    dedup = MemoryDedup(ttl_s=3600)

    async def dedup_all(round_: int) -> None:
        for index in range(len(records)):
            key = f"{round_}:{index}"
            await dedup.claim(key)
            await dedup.mark_done(key)

    with tempfile.TemporaryDirectory(prefix="bench-stages-") as folder:
        spool = Spool.open(Path(folder) / "spool")
        # Acknowledges every record at once: what is left is Relay's own delivery code.
        delivery = Delivery(MemorySink(), spool)

        async def deliver_all(round_: int) -> None:
            for record in records:
                await delivery.deliver(record, 5.0, None)

        try:
            costs = {"dedup": await timed(dedup_all), "delivery": await timed(deliver_all)}
        finally:
            await spool.close()
    return costs


def _log_line_us() -> float:
    """One ``webhook`` line through Relay's logging setup, written to /dev/null."""
    from relay.http import webhook_line
    from relay.logs import setup_logging

    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    with open(os.devnull, "w") as devnull:
        setup_logging("INFO", devnull)

        def lines() -> None:
            for _ in range(COUNT):
                webhook_line.write(
                    logging.INFO,
                    {
                        "provider": "invoices",
                        "event_id": "0b4c2a8e-1d7e-4bb3-9d2f-6a1c9b1e2f3a",
                        "outcome": "accepted",
                        "reason": None,
                        "status": 200,
                        "latency_ms": 3.21,
                    },
                )

        try:
            return _best_us(lines, COUNT)
        finally:
            root.handlers[:] = saved_handlers
            root.setLevel(saved_level)

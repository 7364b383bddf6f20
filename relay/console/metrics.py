"""What the topics do not hold, from the running servers' ``/metrics``.

The topics say what was accepted and what was dead-lettered; duplicates, refusals
(4xx), acknowledgement latency and the spool exist only in the servers' metrics.
The console scrapes each of ``[console] metrics_urls`` every ``scrape_interval_s``,
sums the replicas, and keeps the last :data:`KEEP` scrapes in memory: the overview's
recent pictures, not a time series database (Prometheus and the Grafana dashboard in
``deploy/`` keep the history). A scrape that fails is said on the overview and
leaves a gap, never a zero.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

log = logging.getLogger("relay.console")

KEEP = 240
"""Scrapes kept: an hour at the default interval of 15 s."""

_WANTED = {
    "relay_webhooks_total",
    "relay_ack_latency_seconds_bucket",
    "relay_spool_depth",
    "relay_spool_oldest_age_seconds",
}


@dataclass(frozen=True, slots=True)
class Scrape:
    """One scrape of every server, summed: counters and gauges by name and labels."""

    at: float
    """Wall-clock seconds."""
    values: dict[tuple[str, tuple[tuple[str, str], ...]], float]
    failed: tuple[str, ...] = ()
    """The URLs that did not answer (their values are missing, not zero)."""

    def total(self, name: str, **labels: str) -> float:
        return sum(
            value
            for (metric, pairs), value in self.values.items()
            if metric == name and all((key, want) in pairs for key, want in labels.items())
        )

    def label_values(self, name: str, label: str) -> set[str]:
        return {
            value
            for metric, pairs in self.values
            if metric == name
            for key, value in pairs
            if key == label
        }


@dataclass
class Scraper:
    urls: Sequence[str]
    interval_s: float
    scrapes: deque[Scrape] = field(default_factory=lambda: deque(maxlen=KEEP))
    last_error: str | None = None

    async def run(self) -> None:
        timeout = aiohttp.ClientTimeout(total=min(self.interval_s, 5.0))
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while True:
                await self.scrape(session)
                await asyncio.sleep(self.interval_s)

    async def scrape(self, session: aiohttp.ClientSession) -> Scrape:
        values: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
        failed: list[str] = []
        for url in self.urls:
            try:
                async with session.get(url) as response:
                    response.raise_for_status()
                    text = await response.text()
            except (aiohttp.ClientError, TimeoutError) as error:
                failed.append(url)
                self.last_error = f"{url}: {type(error).__name__}: {error}"
                continue
            for family in text_string_to_metric_families(text):
                for sample in family.samples:
                    if sample.name in _WANTED:
                        key = (sample.name, tuple(sorted(sample.labels.items())))
                        values[key] = values.get(key, 0.0) + sample.value
        if not failed:
            self.last_error = None
        scrape = Scrape(time.time(), values, tuple(failed))
        self.scrapes.append(scrape)
        return scrape


def increase(before: Scrape, after: Scrape, name: str, **labels: str) -> float:
    """How much a counter grew between two scrapes; a server restarted in between (the sum
    went down) counts from zero, as Prometheus's ``increase`` does."""
    old, new = before.total(name, **labels), after.total(name, **labels)
    return new if new < old else new - old


def quantile(before: Scrape, after: Scrape, q: float) -> float | None:
    """The ``q`` quantile of acknowledgement latency between two scrapes, in seconds,
    interpolated inside its histogram bucket; None when nothing was acknowledged."""
    bounds: dict[float, float] = {}
    for (metric, pairs), _ in after.values.items():
        if metric != "relay_ack_latency_seconds_bucket":
            continue
        le = dict(pairs)["le"]
        bound = math.inf if le == "+Inf" else float(le)
        bounds[bound] = increase(before, after, metric, le=le)
    total = bounds.get(math.inf, 0.0)
    if total <= 0:
        return None
    rank = q * total
    previous_bound, previous_count = 0.0, 0.0
    for bound in sorted(bounds):
        count = bounds[bound]
        if count >= rank:
            if math.isinf(bound):
                return previous_bound
            share = (
                (rank - previous_count) / (count - previous_count)
                if count > previous_count
                else 1.0
            )
            return previous_bound + (bound - previous_bound) * share
        previous_bound, previous_count = bound, count
    return previous_bound

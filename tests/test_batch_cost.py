"""What a batch costs: Adyen requests of 1 and of 100 notification items, end to end.

A real ``relay serve`` process (the fuzz instances, ``tests.fuzz.instances``) on this leg's
broker gets ``RELAY_BATCH_REQUESTS`` (default 20) authentic Adyen requests of each size,
signed as Adyen signs them, one after another; measured from outside: the server's CPU
time per request (``psutil`` user + system, delta over the run / N, after the process has
settled) and the latency to the acknowledgement (p50, p99). The figures are printed,
never asserted (speed depends on the machine). Asserted: every request answered
``[accepted]``, and every notification published exactly once.
"""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import psutil
import pytest

from relay.config import Config
from relay.samples import signed_sample
from tests.conftest import TestBroker
from tests.fuzz.test_hostile_cost import cpu_seconds, quantile, settle
from tests.fuzz.test_http_fuzz import read_records, running

REQUESTS = int(os.environ.get("RELAY_BATCH_REQUESTS", "20"))
SIZES = (1, 100)


def _batch(config: Config, size: int, token: str) -> tuple[bytes, dict[str, str]]:
    """``size`` distinct AUTHORISATION items of one request, signed (with Basic credentials)."""
    instance = config.providers["adyen"]
    sample = instance.profile.samples["AUTHORISATION"].build(time.time(), token)
    [wrapper] = orjson.loads(sample.body)["notificationItems"]
    item = wrapper["NotificationRequestItem"]
    items = [
        {"NotificationRequestItem": {**item, "pspReference": f"{token[-8:]}{n:08d}".upper()}}
        for n in range(size)
    ]
    body = orjson.dumps({"live": "false", "notificationItems": items})
    signed = signed_sample(instance, body=body, now=time.time())
    return signed.body, signed.headers


async def test_batch_cost(
    broker: TestBroker, topic: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    figures: list[str] = []
    tokens: dict[str, int] = {}
    async with running(broker, topic, tmp_path) as (config, relay):
        assert relay.process is not None
        process = psutil.Process(relay.process.pid)
        async with aiohttp.ClientSession() as session:
            for size in SIZES:
                requests = []
                for _ in range(REQUESTS):
                    token = f"fz{uuid.uuid4().hex[:16]}"
                    requests.append(_batch(config, size, token))
                    tokens[token] = size
                await settle(process)
                latencies: list[float] = []
                before = cpu_seconds(process)
                for body, headers in requests:
                    started = time.perf_counter()
                    async with session.post(
                        f"{relay.url}/webhooks/adyen", data=body, headers=headers
                    ) as response:
                        answer: Any = (response.status, await response.read())
                    latencies.append(time.perf_counter() - started)
                    assert answer == (200, b"[accepted]")
                await settle(process)
                cpu_ms = (cpu_seconds(process) - before) * 1000 / REQUESTS
                figures.append(
                    f"adyen {size:3d} item(s), {len(requests[0][0]):6d} bytes: "
                    f"server CPU {cpu_ms:6.2f} ms/request ({cpu_ms / size:5.3f} ms/item), "
                    f"ack p50 {quantile(latencies, 0.5) * 1000:6.1f} ms, "
                    f"p99 {quantile(latencies, 0.99) * 1000:6.1f} ms (n={REQUESTS})"
                )
        await relay.wait_drained(60)
        records = await read_records(broker.bootstrap_servers, [topic], set(tokens))

    with capsys.disabled():
        print(f"\nbatch cost [{broker.name}]:\n  " + "\n  ".join(figures))
    published: dict[str, int] = {}
    ids = set()
    for record in records:
        event = orjson.loads(record.value)
        published[event["subject"]] = published.get(event["subject"], 0) + 1
        ids.add(event["id"])
    assert published == tokens
    assert len(ids) == sum(tokens.values())

"""Shared fixtures: real brokers, a configured Relay app, signed requests, a topic reader.

Brokers are real processes on 127.0.0.1 and free ports, started once per
session and stopped at the end: tansu (the dev broker) unless
``KAFKA_BOOTSTRAP_SERVERS`` names another. Each test publishes to its own
topic names, so tests never see each other's records.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest

from relay.app import build_app
from relay.config import Config, parse_config
from relay.devbroker import DevBroker
from relay.http import SERVICES, Services
from relay.kafka import assign_topic, open_consumer
from relay.samples import signed_sample

INVOICE_SECRET = "test-invoice-secret-0123456789"


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """Bootstrap servers of the session's broker: ``KAFKA_BOOTSTRAP_SERVERS`` or a tansu we start."""
    external = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if external:
        yield external
        return
    with DevBroker() as broker:
        yield broker.bootstrap_servers


@pytest.fixture
def topic() -> str:
    return f"t-{uuid.uuid4().hex[:12]}"


def make_config(
    *,
    bootstrap: str,
    topic: str,
    var: Path,
    providers: Mapping[str, Mapping[str, Any]] | None = None,
    dedup: Mapping[str, Any] | None = None,
    server: Mapping[str, Any] | None = None,
    kafka: Mapping[str, Any] | None = None,
    spool: Mapping[str, Any] | None = None,
) -> Config:
    document: dict[str, Any] = {
        "server": {"host": "127.0.0.1", "port": 0, **(server or {})},
        "kafka": {
            "bootstrap_servers": bootstrap,
            "topic": topic,
            "idempotence": False,
            **(kafka or {}),
        },
        "dedup": {"backend": "memory", **(dedup or {})},
        "spool": {"path": str(var / "spool"), **(spool or {})},
        "providers": providers
        or {"invoices": {"profile": "usdt-invoice", "secrets": [INVOICE_SECRET]}},
    }
    return parse_config(document, env={})


@dataclass(frozen=True)
class SignedWebhook:
    path: str
    body: bytes
    headers: dict[str, str]


def signed_webhook(
    config: Config,
    provider: str = "invoices",
    *,
    event: str | None = None,
    body: bytes | None = None,
    order: str | None = None,
    now: float | None = None,
    headers: Mapping[str, str] | None = None,
) -> SignedWebhook:
    """A webhook signed the way the provider signs it (the scheme's ``sign`` twin)."""
    request = signed_sample(
        config.providers[provider],
        event=event,
        body=body,
        order=order,
        now=time.time() if now is None else now,
    )
    return SignedWebhook(
        f"/webhooks/{provider}", request.body, {**request.headers, **(headers or {})}
    )


async def read_topic(
    bootstrap: str, topic: str, *, expect: int, settle_s: float = 0.5, timeout_s: float = 20.0
) -> list[Any]:
    """Every record of ``topic`` from the beginning: waits for ``expect`` records, then
    ``settle_s`` more so that a duplicate arriving late is seen too."""
    consumer = open_consumer(bootstrap)
    await consumer.start()
    records: list[Any] = []
    try:
        deadline = time.monotonic() + timeout_s
        while not await assign_topic(consumer, topic, resume=False):
            if time.monotonic() >= deadline or expect == 0:
                return records
            await asyncio.sleep(0.1)
        settle_deadline: float | None = None
        while time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=100)
            for messages in batch.values():
                records.extend(messages)
            if len(records) >= expect:
                settle_deadline = settle_deadline or time.monotonic() + settle_s
                if time.monotonic() >= settle_deadline:
                    break
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(consumer.stop(), 5)
    return records


def event_of(record: Any) -> dict[str, Any]:
    return orjson.loads(record.value)


@dataclass
class RelayUnderTest:
    client: Any
    config: Config
    services: Services

    async def post(self, webhook: SignedWebhook) -> Any:
        return await self.client.post(webhook.path, data=webhook.body, headers=webhook.headers)


async def start_relay(aiohttp_client: Any, config: Config) -> RelayUnderTest:
    client = await aiohttp_client(build_app(config))
    services = client.app[SERVICES]
    assert await services.sink.wait_connected(10), "Relay did not connect to the broker"
    return RelayUnderTest(client, config, services)


@pytest.fixture
async def relay_app(
    aiohttp_client: Any, kafka_bootstrap: str, topic: str, tmp_path: Path
) -> RelayUnderTest:
    """A running Relay (invoices instance, memory dedup) on the session broker."""
    return await start_relay(
        aiohttp_client, make_config(bootstrap=kafka_bootstrap, topic=topic, var=tmp_path)
    )

"""Pipeline edge cases that need no broker: what reaches the provider when a step fails."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import NoReturn

import pytest

from relay.dedup import DedupUnavailable, MemoryDedup, dedup_key
from relay.errors import Unavailable
from relay.pipeline import Pipeline
from relay.records import KafkaRecord
from tests.conftest import make_config, signed_webhook


class _StoreFailingWhileWaiting(MemoryDedup):
    """A store that answers the claim, then becomes unreachable while a duplicate waits."""

    async def wait_settled(self, key: str, timeout_s: float) -> None:
        raise DedupUnavailable("connection lost")


class _NoDelivery:
    async def deliver(
        self, record: KafkaRecord, kafka_wait_s: float, dedup_key: str | None
    ) -> NoReturn:
        raise AssertionError("a duplicate that cannot be settled must not be delivered")


async def test_dedup_store_failing_while_a_duplicate_waits_is_503(tmp_path: Path) -> None:
    config = make_config(bootstrap="127.0.0.1:9", topic="t", var=tmp_path)
    instance = config.providers["invoices"]
    webhook = signed_webhook(config, headers={"X-Webhook-Id": "wh-1"})
    store = _StoreFailingWhileWaiting(ttl_s=60)
    await store.claim(dedup_key("invoices", "wh-1"))  # the first attempt is in flight
    pipeline = Pipeline(config, store, _NoDelivery())
    headers = {name.lower(): value for name, value in webhook.headers.items()}

    with pytest.raises(Unavailable) as raised:
        await pipeline.receive(instance, webhook.body, headers, datetime.now(UTC))

    assert raised.value.status == 503
    assert raised.value.retry_after_s is not None

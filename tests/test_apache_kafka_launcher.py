"""The real Apache Kafka broker of tests/apache_kafka, and what it enforces that tansu does not.

The session's broker (``apache_kafka`` in conftest: KRaft, broker and
controller in one JVM) serves them. These tests pin down the behaviour Relay's delivery code relies on: idempotent
producers work, a missing topic is an error (auto-create is off), oversized
records are refused, and acknowledged records survive a crash of the broker.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import MessageSizeTooLargeError, UnknownTopicOrPartitionError

from tests.apache_kafka.launcher import ApacheKafka

pytestmark = pytest.mark.apache_kafka

MIB = 1024 * 1024


def unique_topic(purpose: str) -> str:
    return f"relay.test.{purpose}.{uuid.uuid4().hex[:10]}"


@pytest.fixture
async def idempotent_producer(apache_kafka: ApacheKafka) -> AsyncIterator[AIOKafkaProducer]:
    """Relay's production producer settings (DESIGN 6): acks=all with idempotence."""
    producer = AIOKafkaProducer(
        bootstrap_servers=apache_kafka.bootstrap_servers, enable_idempotence=True, acks="all"
    )
    await producer.start()
    try:
        yield producer
    finally:
        await asyncio.wait_for(producer.stop(), 10)


async def read_all(
    bootstrap: str, topic: str, partition_count: int, *, expect: int, timeout_s: float = 15.0
) -> list[Any]:
    """Every record of ``topic`` from the beginning, once ``expect`` of them have arrived.

    No consumer group: explicit assignment reads the log as it is, without a
    rebalance and without committed offsets hiding records.
    """
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in range(partition_count)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        records: list[Any] = []
        deadline = time.monotonic() + timeout_s
        while len(records) < expect and time.monotonic() < deadline:
            batches = await consumer.getmany(*partitions, timeout_ms=500)
            records.extend(record for batch in batches.values() for record in batch)
        # The log itself, not only what the loop happened to see: exactly `expect` records.
        ends = await consumer.end_offsets(partitions)
        assert sum(ends.values()) == len(records), (ends, len(records))
        return records
    finally:
        # After a broker crash aiokafka's stop() can hang: never let it block teardown.
        await asyncio.wait_for(consumer.stop(), 10)


async def test_idempotent_producer_round_trip_exactly_once(
    apache_kafka: ApacheKafka, idempotent_producer: AIOKafkaProducer
) -> None:
    topic = unique_topic("roundtrip")
    apache_kafka.create_topic(topic, partitions=4)
    sent = {
        f"evt-{i}".encode(): (
            f'{{"n": {i}}}'.encode(),
            [("relay-provider", b"invoices"), ("relay-event-id", f"id-{i}".encode())],
        )
        for i in range(20)
    }
    for key, (value, headers) in sent.items():
        await idempotent_producer.send_and_wait(topic, value, key=key, headers=headers)

    records = await read_all(apache_kafka.bootstrap_servers, topic, 4, expect=len(sent))

    assert sorted(record.key for record in records) == sorted(sent)
    for record in records:
        value, headers = sent[record.key]
        assert record.value == value
        assert list(record.headers) == headers


async def test_create_topic_applies_topic_config_and_refuses_duplicates(
    apache_kafka: ApacheKafka,
) -> None:
    topic = unique_topic("config")
    apache_kafka.create_topic(topic, partitions=1, config={"max.message.bytes": str(2 * MIB)})
    with pytest.raises(RuntimeError, match="error code 36"):  # TOPIC_ALREADY_EXISTS
        apache_kafka.create_topic(topic, partitions=1)

    producer = AIOKafkaProducer(
        bootstrap_servers=apache_kafka.bootstrap_servers,
        enable_idempotence=True,
        acks="all",
        max_request_size=4 * MIB,
    )
    await producer.start()
    try:
        # Above the broker-wide message.max.bytes, within this topic's own limit.
        accepted = await producer.send_and_wait(topic, b"x" * (MIB + MIB // 2))
    finally:
        await asyncio.wait_for(producer.stop(), 10)
    assert accepted.offset == 0


async def test_producing_to_a_missing_topic_fails(apache_kafka: ApacheKafka) -> None:
    topic = unique_topic("missing")
    producer = AIOKafkaProducer(
        bootstrap_servers=apache_kafka.bootstrap_servers,
        enable_idempotence=True,
        acks="all",
        request_timeout_ms=2000,
    )
    await producer.start()
    try:
        # send() itself raises: aiokafka polls metadata for the topic until
        # request_timeout_ms has passed, then gives up (40 s by default), which
        # is why relay.kafka looks for its topics itself and fails fast.
        with pytest.raises(UnknownTopicOrPartitionError):
            await producer.send_and_wait(topic, b"lost")
    finally:
        await asyncio.wait_for(producer.stop(), 10)

    admin = AIOKafkaAdminClient(bootstrap_servers=apache_kafka.bootstrap_servers)
    await admin.start()
    try:
        assert topic not in await admin.list_topics(), "the broker auto-created the topic"
    finally:
        await admin.close()


async def test_oversized_record_is_refused_by_the_client(
    apache_kafka: ApacheKafka, idempotent_producer: AIOKafkaProducer
) -> None:
    topic = unique_topic("oversize-client")
    apache_kafka.create_topic(topic, partitions=1)

    # aiokafka's max_request_size (1 MiB by default) matches the broker's limit:
    # the record never leaves the process.
    with pytest.raises(MessageSizeTooLargeError, match="max_request_size"):
        await idempotent_producer.send(topic, b"x" * (MIB + 1), key=b"k")

    accepted = await idempotent_producer.send_and_wait(topic, b"x" * 1_000_000, key=b"k")
    assert accepted.offset == 0


async def test_oversized_record_is_refused_by_the_broker(apache_kafka: ApacheKafka) -> None:
    topic = unique_topic("oversize-broker")
    apache_kafka.create_topic(topic, partitions=1)
    # A client allowed bigger requests leaves the decision to message.max.bytes.
    producer = AIOKafkaProducer(
        bootstrap_servers=apache_kafka.bootstrap_servers,
        enable_idempotence=True,
        acks="all",
        max_request_size=4 * MIB,
    )
    await producer.start()
    try:
        with pytest.raises(MessageSizeTooLargeError):
            await producer.send_and_wait(topic, b"x" * (MIB + 1), key=b"k")
        # The refusal does not poison the idempotent producer's sequence for the partition.
        after = await producer.send_and_wait(topic, b"small", key=b"k")
    finally:
        await asyncio.wait_for(producer.stop(), 10)
    assert after.offset == 0
    records = await read_all(apache_kafka.bootstrap_servers, topic, 1, expect=1)
    assert [record.value for record in records] == [b"small"]


async def test_acked_records_survive_a_crash_and_the_producer_recovers(
    apache_kafka: ApacheKafka, idempotent_producer: AIOKafkaProducer
) -> None:
    topic = unique_topic("crash")
    apache_kafka.create_topic(topic, partitions=2)
    before = [f"before-{i}".encode() for i in range(10)]
    for value in before:
        await idempotent_producer.send_and_wait(topic, value, key=value)

    apache_kafka.kill()
    # Sent while the broker is down: the producer buffers and retries.
    during = asyncio.ensure_future(
        idempotent_producer.send_and_wait(topic, b"during", key=b"during")
    )
    await asyncio.sleep(0.5)
    assert not during.done()
    # In a thread, so that the producer keeps retrying while the JVM starts.
    await asyncio.to_thread(apache_kafka.restart)
    await asyncio.wait_for(during, 30)
    await idempotent_producer.send_and_wait(topic, b"after", key=b"after")

    records = await read_all(apache_kafka.bootstrap_servers, topic, 2, expect=len(before) + 2)
    assert sorted(record.value for record in records) == sorted([*before, b"during", b"after"])

"""Relay's partitioner puts a key where the Java client and aiokafka put it."""

from __future__ import annotations

import random

import pytest
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.partitioner import murmur2 as aiokafka_murmur2

from relay.partitioner import murmur2, partition_for

# Kafka's own test vectors (clients/src/test/java/org/apache/kafka/common/utils/UtilsTest.java,
# testMurmur2), as the signed ints Java returns.
JAVA_VECTORS = {
    b"21": -973932308,
    b"foobar": -790332482,
    b"a-little-bit-long-string": -985981536,
    b"a-little-bit-longer-string": -1486304829,
    b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
    b"abc": 479470107,
}


@pytest.mark.parametrize(("key", "java"), JAVA_VECTORS.items())
def test_java_vectors(key: bytes, java: int) -> None:
    assert murmur2(key) == java % 2**32


def test_same_hash_as_aiokafka_for_every_length() -> None:
    generator = random.Random(15)
    for length in range(201):  # every tail length, many word counts
        for _ in range(20):
            key = generator.randbytes(length)
            assert murmur2(key) == aiokafka_murmur2(key), key


@pytest.mark.parametrize("partitions", [1, 3, 12, 50])
def test_same_partition_as_aiokafka(partitions: int) -> None:
    generator = random.Random(partitions)
    every = list(range(partitions))
    for _ in range(500):
        key = f"invoices:INV-{generator.randrange(10**9)}".encode()
        assert partition_for(key, every, every) == DefaultPartitioner()(key, every, every)


def test_no_key_goes_to_an_available_partition() -> None:
    assert {partition_for(None, [0, 1, 2, 3], [2]) for _ in range(20)} == {2}
    assert partition_for(None, [0, 1, 2, 3], []) in {0, 1, 2, 3}

"""The port delivery publishes through: what a sink does, and the two ways a send fails.

:class:`Sink` is all that :mod:`relay.delivery` and ``/readyz`` know of Kafka.
:class:`relay.kafka.KafkaSink` is the one that publishes;
:class:`relay.memory_sink.MemorySink` is one whose acknowledgements a test or
the benchmark decides. This module must not import aiokafka, or anything that
does: delivery depends on it and is tested without a broker.

A send ends in one of three ways: acknowledged (durable in Kafka), or
:class:`KafkaUnavailable` (not now; it may be later: spool it), or
:class:`RecordRejected` (never: dead-letter it).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Protocol

from relay.records import KafkaRecord


class KafkaUnavailable(Exception):
    """Kafka did not take the record now; it may later.

    The message is for the log and the operator: aiokafka's texts name broker addresses.
    ``kind`` is what may be shown to anyone (``/readyz`` is public wherever a proxy routes
    it): the aiokafka error's class name or a short fixed phrase.
    """

    def __init__(self, message: str, kind: str = "broker unreachable") -> None:
        super().__init__(message)
        self.kind = kind


class RecordRejected(Exception):
    """Kafka will never take this record (e.g. larger than ``message.max.bytes``)."""

    reason = "record_too_large"


SendError = KafkaUnavailable | RecordRejected


class Sink(Protocol):
    """Where records become durable in Kafka, as delivery and ``/readyz`` use it."""

    @property
    def connected(self) -> bool:
        """Sends can be attempted now; when False, a send fails at once."""

    @property
    def healthy(self) -> bool:
        """Connected, and taking records: the last send (if any failed since) was acknowledged."""

    @property
    def last_error(self) -> str | None:
        """Why records are not being taken, fit to show publicly (no addresses); None when they are."""

    @property
    def missing_topics(self) -> frozenset[str]:
        """Relay's topics that the broker neither has nor creates, as of the last look."""

    async def start(self) -> None:
        """Begin connecting; returns at once (a sink may connect long after)."""

    async def stop(self) -> None:
        """Flush what was sent and close; safe to call when never connected."""

    async def wait_connected(self, timeout_s: float) -> bool:
        """Whether the sink is connected, waiting up to ``timeout_s`` for it."""

    async def submit(self, record: KafkaRecord) -> asyncio.Future[None]:
        """Hand one record to Kafka; returns once it is on its way, with a future that
        settles when Kafka acknowledges it (None) or will not take it (a :data:`SendError`).

        Raises a :data:`SendError` when the record cannot even be handed over. The future
        is the caller's to wait on with its own deadline (no task per record); cancelling
        it does not take the send back: nothing does.
        """

    async def send(self, record: KafkaRecord) -> None:
        """Publish one record; returns once acknowledged, or raises a :data:`SendError`.

        The caller may stop waiting, but a send is never taken back: one whose waiter
        gave up can still be acknowledged later.
        """

    async def send_batch(self, records: Iterable[KafkaRecord]) -> list[SendError | None]:
        """Publish records in order, pipelined; one result per record, None when acknowledged.

        Raises :class:`KafkaUnavailable` without sending anything when not connected.
        """

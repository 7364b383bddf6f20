"""A :class:`relay.sink.Sink` in memory whose acknowledgements the caller decides.

The tests of delivery's rules and ``bench/stages.py`` use it instead of a
broker. Each record handed to it becomes a :class:`Send`, settled as
:attr:`MemorySink.reply` says: acknowledged at once, failed at once
(unavailable, or rejected for good), or held until the caller settles it by
hand, which is a stalled broker, or an acknowledgement that comes after
delivery stopped waiting for it.

As with Kafka, a send is never taken back: a waiter that gives up (a timeout,
a cancelled task) leaves its send as it was, and it can still be acknowledged.
:attr:`MemorySink.published` is what a consumer of the topic would read.

This module must not import aiokafka: delivery is tested with it and no broker.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
from collections.abc import Iterable
from dataclasses import dataclass

from relay.records import KafkaRecord
from relay.sink import KafkaUnavailable, RecordRejected, SendError


class Reply(enum.Enum):
    """What a :class:`MemorySink` does with each record it is handed."""

    ACK = "ack"
    """Acknowledge at once."""
    UNAVAILABLE = "unavailable"
    """Fail at once with :class:`KafkaUnavailable` (try again later)."""
    REJECT = "reject"
    """Fail at once with :class:`RecordRejected` (never)."""
    HOLD = "hold"
    """Neither, until the caller settles the :class:`Send`."""


@dataclass(eq=False, slots=True)
class Send:
    """One record handed to the sink, and what became of it."""

    record: KafkaRecord
    outcome: asyncio.Future[None]

    @property
    def settled(self) -> bool:
        return self.outcome.done()

    @property
    def acknowledged(self) -> bool:
        return self.settled and self.outcome.exception() is None

    def ack(self) -> None:
        """Kafka acknowledges it, however late. Settling a send twice is an error."""
        self.outcome.set_result(None)

    def fail(self, error: SendError | None = None) -> None:
        """Kafka does not take it (by default: unavailable, it may take it later)."""
        self.outcome.set_exception(error or KafkaUnavailable("the memory sink failed this send"))


class MemorySink:
    """A sink in memory: records every send, settles each as :attr:`reply` says."""

    def __init__(self, reply: Reply = Reply.ACK, *, connected: bool = True) -> None:
        self.reply = reply
        """How the next sends are settled; change it at any time."""
        self.sends: list[Send] = []
        """Every record handed over, in the order sent (drain batches included)."""
        self.batches: list[list[Send]] = []
        """The sends of each :meth:`send_batch` call."""
        self.last_error: str | None = None
        self.missing_topics: frozenset[str] = frozenset()
        self._connected = asyncio.Event()
        if connected:
            self._connected.set()

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    @property
    def healthy(self) -> bool:
        return self.connected and self.last_error is None

    @property
    def published(self) -> list[KafkaRecord]:
        """The acknowledged records, in the order sent: the topic as a consumer reads it."""
        return [send.record for send in self.sends if send.acknowledged]

    def held(self) -> list[Send]:
        """The sends not settled yet, in the order sent."""
        return [send for send in self.sends if not send.settled]

    def connect(self) -> None:
        self._connected.set()

    def disconnect(self) -> None:
        self._connected.clear()

    async def start(self) -> None:
        """Nothing to start: connected or not as constructed (see :meth:`connect`)."""

    async def stop(self) -> None:
        """Nothing to flush: held sends stay held."""

    async def wait_connected(self, timeout_s: float) -> bool:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._connected.wait(), timeout_s)
        return self.connected

    async def submit(self, record: KafkaRecord) -> asyncio.Future[None]:
        self._check_connected()
        return self._handle(record).outcome

    async def send(self, record: KafkaRecord) -> None:
        # Shielded: a waiter that gives up does not take the send back.
        await asyncio.shield(await self.submit(record))

    async def send_batch(self, records: Iterable[KafkaRecord]) -> list[SendError | None]:
        self._check_connected()
        batch = [self._handle(record) for record in records]
        self.batches.append(batch)
        results: list[SendError | None] = []
        for send in batch:
            try:
                await asyncio.shield(send.outcome)
                results.append(None)
            except (KafkaUnavailable, RecordRejected) as error:
                results.append(error)
        return results

    def _check_connected(self) -> None:
        if not self.connected:
            raise KafkaUnavailable("the memory sink is not connected", kind="not connected")

    def _handle(self, record: KafkaRecord) -> Send:
        send = Send(record, asyncio.get_running_loop().create_future())
        self.sends.append(send)
        if self.reply is Reply.ACK:
            send.ack()
        elif self.reply is Reply.UNAVAILABLE:
            send.fail()
        elif self.reply is Reply.REJECT:
            send.fail(RecordRejected("the memory sink rejects this record"))
        return send

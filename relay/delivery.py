"""Making an event durable: Kafka first, the local spool when Kafka is slow or down.

:meth:`Delivery.deliver` returns where the record became durable, or raises
:class:`relay.errors.Unavailable` (nothing durable took it: 503) or
:class:`relay.sink.RecordRejected` (Kafka never will: dead-letter it).

Kafka is reached through the :class:`relay.sink.Sink` port only; this module
must not import :mod:`relay.kafka` or aiokafka, so that its rules are tested
with :class:`relay.memory_sink.MemorySink` and no broker (``tests/test_delivery.py``).

Rules that keep "acknowledged" meaning "durable", and order per key:

- While the spool holds anything, new records join the spool behind it, so a
  key's later event can never overtake an earlier spooled one.
- A send that misses its budget is spooled, but the send itself is not
  cancelled: if Kafka acknowledges it later, the spool entry is marked done so
  the drainer does not publish it a second time. The drainer waits for such
  late sends to settle before each pass for the same reason.
- The drainer publishes spooled records in append order, in batches, and
  marks each done in the spool only after Kafka acknowledged it; one that
  failed stays for the next pass. A crash between the acknowledgement and the
  mark republishes that record once; consumers see the same CloudEvent ``id``
  twice in that window only. (Dedup needs no step here: the pipeline marks
  the event done once the spool holds it.)
- :meth:`Delivery.stop` gives late sends and a last drain pass a bounded time;
  what is still spooled stays on disk for the next start.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
from typing import Protocol

from relay.errors import Unavailable
from relay.records import KafkaRecord
from relay.sink import KafkaUnavailable, RecordRejected, Sink
from relay.spool import Spool, SpoolEntry, SpoolFull, SpoolUnavailable

log = logging.getLogger("relay.delivery")

DRAIN_BATCH = 500


class Durability(enum.Enum):
    KAFKA = "kafka"
    SPOOL = "spool"


class Deliverer(Protocol):
    async def deliver(
        self, record: KafkaRecord, kafka_wait_s: float, dedup_key: str | None
    ) -> Durability: ...


class _Deadline:
    """One delivery's time budget: while the record is being handed over, running out
    interrupts the hand-over (the task is cancelled, as ``asyncio.timeout`` does);
    afterwards it only ends the wait for the acknowledgement (:attr:`waiter`)."""

    __slots__ = ("_cancelling", "_expired", "_handing_over", "_task", "waiter")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        task = asyncio.current_task(loop)
        assert task is not None, "a delivery runs in a task"
        self.waiter: asyncio.Future[None] = loop.create_future()
        self._task = task
        self._cancelling = task.cancelling()
        self._handing_over = True
        self._expired = False

    def expire(self) -> None:
        self._expired = True
        if self._handing_over:
            self._task.cancel()
        elif not self.waiter.done():
            self.waiter.set_result(None)

    def handed_over(self) -> None:
        self._handing_over = False

    def settled(self, acknowledged: asyncio.Future[None]) -> None:
        if not self.waiter.done():
            self.waiter.set_result(None)

    def interrupted_hand_over(self) -> bool:
        """After a CancelledError out of the hand-over: True when the deadline caused it
        (and nothing else asked to cancel the task too), so the cancellation is spent."""
        return self._expired and self._task.uncancel() <= self._cancelling


class DirectDelivery:
    """Kafka only, for ``relay replay``: it commits its progress only for what Kafka took."""

    def __init__(self, sink: Sink) -> None:
        self._sink = sink

    async def deliver(
        self, record: KafkaRecord, kafka_wait_s: float, dedup_key: str | None
    ) -> Durability:
        """``kafka_wait_s`` must exceed the producer's request timeout, so that a send that
        fails here has really failed (no late acknowledgement can follow)."""
        try:
            await asyncio.wait_for(self._sink.send(record), kafka_wait_s)
        except (KafkaUnavailable, TimeoutError) as exc:
            raise Unavailable(f"Kafka did not acknowledge: {exc}") from exc
        return Durability.KAFKA


class Delivery:
    """Kafka with the spool behind it: what the HTTP path uses."""

    def __init__(self, sink: Sink, spool: Spool) -> None:
        self._sink = sink
        self._spool = spool
        self._late_sends: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        self._drainer: asyncio.Task[None] | None = None
        self._stopping = False

    async def deliver(
        self, record: KafkaRecord, kafka_wait_s: float, dedup_key: str | None
    ) -> Durability:
        if self._spool.contains_pending() or not self._sink.connected:
            await self._append(record, dedup_key)
            return Durability.SPOOL
        try:
            acknowledged = await self._hand_over(record, kafka_wait_s)
        except KafkaUnavailable:
            acknowledged = None
        if acknowledged is not None and acknowledged.done():
            error = acknowledged.exception()
            if error is None:
                return Durability.KAFKA
            if not isinstance(error, KafkaUnavailable):
                raise error  # RecordRejected: Kafka never will take it
        if acknowledged is None or acknowledged.done():
            # Not handed over, or failed: no acknowledgement can come late.
            await self._append(record, dedup_key)
            return Durability.SPOOL
        # Tracked before the append starts: once the entry is in the spool the drainer may
        # look at it, and it must already know that a late acknowledgement can still come.
        appended: asyncio.Future[SpoolEntry] = asyncio.get_running_loop().create_future()
        self._track_late_send(acknowledged, appended)
        try:
            appended.set_result(await self._append(record, dedup_key))
        except BaseException:
            appended.cancel()
            raise
        return Durability.SPOOL

    async def _hand_over(
        self, record: KafkaRecord, kafka_wait_s: float
    ) -> asyncio.Future[None] | None:
        """Hand the record over and wait for its acknowledgement, within ``kafka_wait_s``.

        Returns the acknowledgement (done, or still pending when the time ran out: a
        late send), or None when the producer did not take the record in time. One
        timer bounds both steps: ``asyncio.timeout`` and ``asyncio.shield`` around them
        measured 16 us per webhook in the running server (thread CPU time), and the
        delivery 7 us more than with this.
        """
        loop = asyncio.get_running_loop()
        deadline = _Deadline(loop)
        timer = loop.call_later(max(kafka_wait_s, 0.0), deadline.expire)
        try:
            try:
                acknowledged = await self._sink.submit(record)
            except asyncio.CancelledError:
                if deadline.interrupted_hand_over():
                    return None
                raise
            deadline.handed_over()
            if not acknowledged.done():
                acknowledged.add_done_callback(deadline.settled)
                # Our own future, not the acknowledgement: giving up waiting (the deadline,
                # or a cancelled request) does not take the send back.
                await deadline.waiter
            return acknowledged
        finally:
            timer.cancel()

    def start_drainer(self) -> None:
        self._drainer = asyncio.create_task(self._drain_forever(), name="spool-drainer")
        self._wake.set()

    async def stop(self, drain_timeout_s: float = 5.0) -> None:
        """Give late sends and one last drain pass a bounded time, then stop the drainer.

        Whatever is still spooled stays on disk and is published after the next start.
        """
        self._stopping = True
        if self._late_sends:
            await asyncio.wait(self._late_sends, timeout=drain_timeout_s)
        if self._drainer is not None:
            self._wake.set()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._drainer), drain_timeout_s)
            self._drainer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._drainer

    async def _append(self, record: KafkaRecord, dedup_key: str | None) -> SpoolEntry:
        try:
            entry = await self._spool.append(record, dedup_key)
        except SpoolFull as exc:
            raise Unavailable("Kafka is not acknowledging and the spool is full") from exc
        except SpoolUnavailable as exc:
            raise Unavailable("Kafka is not acknowledging and the spool cannot be written") from exc
        self._wake.set()
        return entry

    def _track_late_send(
        self, send: asyncio.Future[None], appended: asyncio.Future[SpoolEntry]
    ) -> None:
        spool = self._spool

        async def settle() -> None:
            # CancelledError: the append failed, so there is no entry to mark.
            with contextlib.suppress(KafkaUnavailable, RecordRejected, asyncio.CancelledError):
                await send
                entry = await appended
                await spool.mark_done([entry.seq])

        task = asyncio.create_task(settle())
        self._late_sends.add(task)
        task.add_done_callback(self._late_sends.discard)

    async def _drain_forever(self) -> None:
        spool = self._spool
        backoff = 0.2
        while True:
            if not self._stopping:
                await self._wake.wait()
            self._wake.clear()
            if not spool.contains_pending():
                if self._stopping:
                    return
                continue
            if not await self._sink.wait_connected(5.0):
                self._wake.set()
                continue
            # Until none is left, not just those seen first: an entry whose late send is still
            # pending must not be published from the spool as well (a second record).
            while self._late_sends:
                await asyncio.wait(set(self._late_sends))
            progressed = await self._drain_once(spool)
            if spool.contains_pending():
                if not progressed:
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 5.0)
                else:
                    backoff = 0.2
                self._wake.set()

    async def _drain_once(self, spool: Spool) -> bool:
        """Publish one batch in order; True when at least one record was acknowledged."""
        entries = spool.pending(limit=DRAIN_BATCH)
        try:
            results = await self._sink.send_batch(entry.record for entry in entries)
        except KafkaUnavailable:
            return False
        delivered = [entry for entry, error in zip(entries, results, strict=True) if error is None]
        for entry, error in zip(entries, results, strict=True):
            if isinstance(error, RecordRejected):
                # Kept, not dropped: the broker's limit is below ours (a config mismatch to fix).
                log.error(
                    "spooled record refused by the broker; it stays in the spool",
                    extra={"seq": entry.seq, "topic": entry.record.topic, "error": str(error)},
                )
        if delivered:
            await spool.mark_done([entry.seq for entry in delivered])
        return bool(delivered)

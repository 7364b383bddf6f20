"""Delivery's rules without a broker: a memory sink whose acknowledgements each test decides.

Each test holds one promise of :mod:`relay.delivery` and fails when it is broken:
Kafka in time or the spool, per-key order through the spool, a late
acknowledgement marking its spooled entry done, the drainer holding back while
such an acknowledgement may still come, draining in order and in batches,
removing only what Kafka acknowledged, and a bounded stop. The same races on a
real (stalled, stopped) broker are in ``tests/test_faults.py``.

The spool is the real one, with its fsync left out: its own durability is
``tests/test_spool.py``'s subject.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from relay.delivery import DRAIN_BATCH, Delivery, DirectDelivery, Durability, _Deadline
from relay.errors import Unavailable
from relay.memory_sink import MemorySink, Reply
from relay.records import KafkaRecord
from relay.sink import RecordRejected
from relay.spool import Spool, SpoolEntry

# What delivery waits for Kafka before spooling. Short: a held send never answers by itself.
BUDGET_S = 0.05
# How long the drainer is given to do what it must not (publish a second time, drop an entry).
QUIET_S = 0.2

OpenSpool = Callable[..., Spool]
MakeDelivery = Callable[..., Delivery]


def record(n: int, key: str = "order-1") -> KafkaRecord:
    return KafkaRecord(
        "payments.events", f"invoices:{key}".encode(), b"event-%d" % n, (("relay_id", b"%d" % n),)
    )


def sent(sink: MemorySink) -> list[KafkaRecord]:
    """Every record handed to the sink, in order, whatever became of it."""
    return [send.record for send in sink.sends]


def no_fsync(fd: int) -> None:
    """Entries stay in the spool as they do with fsync; only the wait for the disk goes."""


async def eventually(condition: Callable[[], bool], timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"not so within {timeout_s} s"
        await asyncio.sleep(0.005)


class GatedSpool(Spool):
    """A spool whose next append, once its entry is in ``pending()``, returns only when
    ``gate`` is set: the moment between an entry becoming drainable and its appender
    hearing so, which the event loop may give to the drainer."""

    gate: asyncio.Event | None = None

    async def append(self, record: KafkaRecord, dedup_key: str | None) -> SpoolEntry:
        gate, self.gate = self.gate, None
        entry = await super().append(record, dedup_key)
        if gate is not None:
            await gate.wait()
        return entry


@pytest.fixture
async def open_spool(tmp_path: Path) -> AsyncIterator[OpenSpool]:
    """``open_spool(kind=Spool, **kwargs)`` opens ``tmp_path / "spool"``; closed after the test."""
    opened: list[Spool] = []

    def factory(kind: type[Spool] = Spool, **kwargs: int) -> Spool:
        spool = kind.open(tmp_path / "spool", fsync=no_fsync, **kwargs)
        opened.append(spool)
        return spool

    yield factory
    for spool in opened:
        await spool.close()


@pytest.fixture
async def spool(open_spool: OpenSpool) -> Spool:
    return open_spool()


@pytest.fixture
async def deliveries(open_spool: OpenSpool) -> AsyncIterator[MakeDelivery]:
    """``deliveries(sink, spool)``: a Delivery, stopped after the test (before its spool
    closes), with the sends it left held failed so that nothing waits on them."""
    made: list[tuple[Delivery, MemorySink]] = []

    def make(sink: MemorySink, spool: Spool) -> Delivery:
        delivery = Delivery(sink, spool)
        made.append((delivery, sink))
        return delivery

    yield make
    for delivery, sink in made:
        async with asyncio.timeout(5.0):  # a stop that never returns fails, not hangs, the run
            await delivery.stop(0.1)
        for send in sink.held():
            send.fail()
    await asyncio.sleep(0.01)


# -- deliver: Kafka within the budget, else the spool ---------------------------------------


async def test_a_record_kafka_acknowledges_in_time_is_durable_there_and_not_spooled(
    spool: Spool, deliveries: MakeDelivery
) -> None:
    sink = MemorySink(Reply.ACK)

    assert await deliveries(sink, spool).deliver(record(1), BUDGET_S, "k1") is Durability.KAFKA
    assert sink.published == [record(1)]
    assert spool.depth == 0


async def test_a_record_kafka_fails_within_the_budget_is_spooled(
    spool: Spool, deliveries: MakeDelivery
) -> None:
    sink = MemorySink(Reply.UNAVAILABLE)

    assert await deliveries(sink, spool).deliver(record(1), BUDGET_S, "k1") is Durability.SPOOL
    assert [(entry.record, entry.dedup_key) for entry in spool.pending()] == [(record(1), "k1")]
    assert sink.published == []


async def test_a_record_kafka_will_never_take_is_raised_not_spooled(
    spool: Spool, deliveries: MakeDelivery
) -> None:
    sink = MemorySink(Reply.REJECT)

    with pytest.raises(RecordRejected):
        await deliveries(sink, spool).deliver(record(1), BUDGET_S, "k1")
    assert spool.depth == 0


class CrowdedSink(MemorySink):
    """A sink whose producer takes no record until ``room`` is set (its buffer is full)."""

    def __init__(self) -> None:
        super().__init__(Reply.ACK)
        self.room = asyncio.Event()

    async def submit(self, record: KafkaRecord) -> asyncio.Future[None]:
        await self.room.wait()
        return await super().submit(record)


async def test_a_record_the_producer_cannot_take_within_the_budget_is_spooled_and_drained_once(
    spool: Spool, deliveries: MakeDelivery
) -> None:
    sink = CrowdedSink()
    delivery = deliveries(sink, spool)
    delivery.start_drainer()

    async with asyncio.timeout(2.0):  # the budget bounds the hand-over too
        assert await delivery.deliver(record(1), BUDGET_S, "k1") is Durability.SPOOL
    assert sink.sends == []  # never handed over: no acknowledgement can come late
    sink.room.set()
    await eventually(lambda: spool.depth == 0)
    await asyncio.sleep(QUIET_S)
    assert sent(sink) == [record(1)]


async def test_a_cancelled_request_stops_waiting_but_leaves_its_send_to_settle(
    spool: Spool, deliveries: MakeDelivery
) -> None:
    """Cancelling a delivery (its request went away, the server stops) while Kafka has
    the record ends the wait; it neither takes the send back nor spools the record."""
    sink = MemorySink(Reply.HOLD)
    delivery = deliveries(sink, spool)
    waiting = asyncio.create_task(delivery.deliver(record(1), BUDGET_S, "k1"))
    await eventually(lambda: len(sink.held()) == 1)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    [send] = sink.held()
    assert not send.outcome.cancelled()
    send.ack()
    assert sink.published == [record(1)]
    assert spool.depth == 0


async def test_a_cancelled_hand_over_is_a_cancellation_not_a_spooled_record(
    spool: Spool, deliveries: MakeDelivery
) -> None:
    sink = CrowdedSink()
    delivery = deliveries(sink, spool)
    handing_over = asyncio.create_task(delivery.deliver(record(1), BUDGET_S, "k1"))
    await asyncio.sleep(BUDGET_S / 4)
    handing_over.cancel()
    with pytest.raises(asyncio.CancelledError):
        await handing_over
    assert spool.depth == 0


async def test_a_cancellation_that_meets_the_deadline_is_still_a_cancellation(
    spool: Spool, deliveries: MakeDelivery, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The deadline interrupts the hand-over with a cancellation of its own; one asked for
    by someone else in the same moment must not be swallowed as "spool it"."""
    sink = CrowdedSink()
    delivery = deliveries(sink, spool)
    expire = _Deadline.expire

    def expire_and_cancel(deadline: _Deadline) -> None:
        expire(deadline)
        handing_over.cancel()

    monkeypatch.setattr(_Deadline, "expire", expire_and_cancel)
    handing_over = asyncio.create_task(delivery.deliver(record(1), BUDGET_S, "k1"))
    with pytest.raises(asyncio.CancelledError):
        await handing_over
    assert spool.depth == 0


async def test_a_record_neither_kafka_nor_the_spool_takes_is_unavailable(
    open_spool: OpenSpool, deliveries: MakeDelivery
) -> None:
    small = open_spool(max_bytes=16 << 10)
    too_big = KafkaRecord("payments.events", b"invoices:order-1", b"x" * (32 << 10), ())

    with pytest.raises(Unavailable):
        await deliveries(MemorySink(Reply.UNAVAILABLE), small).deliver(too_big, BUDGET_S, None)
    assert small.depth == 0


async def test_a_later_event_of_a_key_queues_behind_its_spooled_ones(
    spool: Spool, deliveries: MakeDelivery
) -> None:
    """While the spool holds anything, new records join it, even once Kafka takes records again."""
    sink = MemorySink(Reply.ACK, connected=False)
    delivery = deliveries(sink, spool)
    assert await delivery.deliver(record(1), BUDGET_S, None) is Durability.SPOOL

    sink.connect()
    assert await delivery.deliver(record(2), BUDGET_S, None) is Durability.SPOOL
    assert sink.sends == []

    delivery.start_drainer()
    await eventually(lambda: spool.depth == 0)
    assert sink.published == [record(1), record(2)]


# -- a send that misses its budget -----------------------------------------------------------


async def spooled_with_its_send_held(sink: MemorySink, delivery: Delivery) -> None:
    """Deliver ``record(1)`` into a stalled sink: spooled, and its send still pending."""
    assert sink.reply is Reply.HOLD
    assert await delivery.deliver(record(1), BUDGET_S, None) is Durability.SPOOL
    assert [send.record for send in sink.held()] == [record(1)]


async def test_the_drainer_holds_back_an_entry_whose_send_may_still_be_acknowledged(
    spool: Spool, deliveries: MakeDelivery
) -> None:
    sink = MemorySink(Reply.HOLD)
    delivery = deliveries(sink, spool)
    delivery.start_drainer()
    await spooled_with_its_send_held(sink, delivery)

    await asyncio.sleep(QUIET_S)

    assert sent(sink) == [record(1)], "the drainer published a record whose send was pending"
    assert spool.depth == 1


async def test_a_late_acknowledgement_marks_the_entry_done_so_it_is_not_published_again(
    spool: Spool, deliveries: MakeDelivery
) -> None:
    sink = MemorySink(Reply.HOLD)
    delivery = deliveries(sink, spool)
    delivery.start_drainer()
    await spooled_with_its_send_held(sink, delivery)
    [late] = sink.held()

    sink.reply = Reply.ACK  # anything the drainer sent now would be published
    late.ack()
    await eventually(lambda: spool.depth == 0)
    await delivery.stop()

    assert sink.published == [record(1)]
    assert sink.sends == [late]


async def test_a_late_failure_leaves_the_entry_to_the_drainer(
    spool: Spool, deliveries: MakeDelivery
) -> None:
    sink = MemorySink(Reply.HOLD)
    delivery = deliveries(sink, spool)
    delivery.start_drainer()
    await spooled_with_its_send_held(sink, delivery)

    sink.reply = Reply.ACK
    sink.held()[0].fail()
    await eventually(lambda: spool.depth == 0)

    assert sink.published == [record(1)]
    assert sent(sink) == [record(1), record(1)]


async def test_stop_waits_for_a_late_acknowledgement(
    spool: Spool, deliveries: MakeDelivery
) -> None:
    """Otherwise the entry stays pending and the next start publishes it a second time."""
    sink = MemorySink(Reply.HOLD)
    delivery = deliveries(sink, spool)
    await spooled_with_its_send_held(sink, delivery)
    asyncio.get_running_loop().call_later(0.1, sink.held()[0].ack)

    await delivery.stop(5.0)

    assert spool.depth == 0


async def test_a_late_send_is_known_to_the_drainer_before_its_entry_can_be_drained(
    open_spool: OpenSpool, deliveries: MakeDelivery
) -> None:
    spool = open_spool(GatedSpool)
    assert isinstance(spool, GatedSpool)
    gate = spool.gate = asyncio.Event()
    sink = MemorySink(Reply.HOLD)
    delivery = deliveries(sink, spool)
    delivery.start_drainer()

    first = asyncio.create_task(delivery.deliver(record(1), BUDGET_S, None))
    await eventually(lambda: spool.depth == 1)  # drainable, and first has not heard so yet
    # Behind it in the spool, waking the drainer while first still waits at the gate.
    assert await delivery.deliver(record(2), BUDGET_S, None) is Durability.SPOOL
    await asyncio.sleep(QUIET_S)

    assert sent(sink) == [record(1)], "the drainer published a record whose send was pending"
    gate.set()
    assert await first is Durability.SPOOL
    sink.reply = Reply.ACK
    sink.held()[0].ack()
    await eventually(lambda: spool.depth == 0)
    assert sink.published == [record(1), record(2)]
    assert sent(sink) == [record(1), record(2)]


async def test_a_late_send_whose_record_the_spool_refused_does_not_hold_up_the_drainer(
    open_spool: OpenSpool, deliveries: MakeDelivery
) -> None:
    spool = open_spool(max_bytes=16 << 10)
    too_big = KafkaRecord("payments.events", b"invoices:order-9", b"x" * (32 << 10), ())
    sink = MemorySink(Reply.HOLD)
    delivery = deliveries(sink, spool)
    delivery.start_drainer()
    with pytest.raises(Unavailable):
        await delivery.deliver(too_big, BUDGET_S, None)
    [late] = sink.held()
    sink.reply = Reply.UNAVAILABLE
    assert await delivery.deliver(record(1), BUDGET_S, None) is Durability.SPOOL

    sink.reply = Reply.ACK
    late.ack()  # Kafka took it after all: the provider, answered 503, sends it again
    await eventually(lambda: spool.depth == 0)

    assert sink.published == [too_big, record(1)]


# -- the drainer -------------------------------------------------------------------------------


async def test_the_drainer_publishes_in_append_order_in_batches(
    spool: Spool, deliveries: MakeDelivery
) -> None:
    records = [record(n, key=f"order-{n % 7}") for n in range(DRAIN_BATCH + 1)]
    for each in records:
        await spool.append(each, None)
    sink = MemorySink(Reply.ACK)

    deliveries(sink, spool).start_drainer()
    await eventually(lambda: spool.depth == 0)

    assert [len(batch) for batch in sink.batches] == [DRAIN_BATCH, 1]
    assert sink.published == records


async def test_the_drainer_marks_an_entry_done_only_once_kafka_acknowledged_it(
    spool: Spool, deliveries: MakeDelivery
) -> None:
    entries = [await spool.append(record(n), None) for n in range(3)]
    sink = MemorySink(Reply.HOLD)

    deliveries(sink, spool).start_drainer()
    await eventually(lambda: len(sink.held()) == 3)
    await asyncio.sleep(QUIET_S)
    assert spool.pending() == entries

    for send in sink.held():
        send.ack()
    await eventually(lambda: spool.depth == 0)
    assert sink.published == [entry.record for entry in entries]


async def test_a_spooled_record_kafka_fails_stays_in_the_spool_for_the_next_pass(
    spool: Spool, deliveries: MakeDelivery
) -> None:
    first, second, third = [await spool.append(record(n, key=f"order-{n}"), None) for n in range(3)]
    sink = MemorySink(Reply.HOLD)
    deliveries(sink, spool).start_drainer()
    await eventually(lambda: len(sink.held()) == 3)

    ok, failed, also_ok = sink.held()
    ok.ack()
    failed.fail()
    also_ok.ack()
    await eventually(lambda: len(sink.held()) == 1)  # the next pass: the failed one alone

    assert spool.pending() == [second]
    sink.held()[0].ack()
    await eventually(lambda: spool.depth == 0)
    assert sink.published == [first.record, third.record, second.record]


async def test_a_spooled_record_the_broker_refuses_stays_in_the_spool_and_is_logged(
    spool: Spool, deliveries: MakeDelivery, caplog: pytest.LogCaptureFixture
) -> None:
    """Kept, not dropped: the broker's size limit is below Relay's, which an operator must fix."""
    caplog.set_level(logging.ERROR, logger="relay.delivery")
    entry = await spool.append(record(1), None)
    sink = MemorySink(Reply.REJECT)

    deliveries(sink, spool).start_drainer()
    await eventually(lambda: bool(caplog.records))

    assert caplog.records[0].getMessage() == (
        "spooled record refused by the broker; it stays in the spool"
    )
    assert spool.pending() == [entry]


async def test_stop_gives_the_drainer_a_last_pass(spool: Spool, deliveries: MakeDelivery) -> None:
    sink = MemorySink(Reply.ACK, connected=False)
    delivery = deliveries(sink, spool)
    delivery.start_drainer()
    assert await delivery.deliver(record(1), BUDGET_S, None) is Durability.SPOOL

    sink.connect()
    await delivery.stop(5.0)

    assert spool.depth == 0
    assert sink.published == [record(1)]


async def test_stop_is_bounded_when_kafka_stalls_and_the_next_start_publishes_the_rest(
    spool: Spool, open_spool: OpenSpool, deliveries: MakeDelivery
) -> None:
    entry = await spool.append(record(1), None)
    stalled = MemorySink(Reply.HOLD)
    delivery = Delivery(stalled, spool)  # not deliveries(): stopped here, once
    delivery.start_drainer()
    await eventually(lambda: len(stalled.held()) == 1)

    async with asyncio.timeout(2.0):
        await delivery.stop(0.2)
    await spool.close()

    reopened = open_spool()
    assert reopened.pending() == [entry]
    after = MemorySink(Reply.ACK)
    deliveries(after, reopened).start_drainer()
    await eventually(lambda: reopened.depth == 0)
    assert after.published == [record(1)]


# -- replay's delivery: Kafka only ---------------------------------------------------------------


async def test_direct_delivery_returns_once_kafka_acknowledged() -> None:
    sink = MemorySink(Reply.ACK)

    assert await DirectDelivery(sink).deliver(record(1), BUDGET_S, None) is Durability.KAFKA
    assert sink.published == [record(1)]


@pytest.mark.parametrize(
    ("reply", "raised"),
    [
        (Reply.UNAVAILABLE, Unavailable),
        (Reply.HOLD, Unavailable),  # not acknowledged within the budget
        (Reply.REJECT, RecordRejected),
    ],
)
async def test_direct_delivery_has_no_spool_to_fall_back_on(
    reply: Reply, raised: type[Exception]
) -> None:
    sink = MemorySink(reply)

    async with asyncio.timeout(2.0):
        with pytest.raises(raised):
            await DirectDelivery(sink).deliver(record(1), BUDGET_S, None)
    assert sink.published == []

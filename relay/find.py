"""``relay find``: did order X arrive? Events and dead letters by order, id or provider.

Both topics are read back (explicit assignment, no consumer group, until no
record arrives for ``idle_s``) and decoded with the consumers' decoder; what
matches every criterion given (:class:`FindQuery`) and was received inside
the window is a :class:`Match`. Like ``relay replay``'s filters, the window
is about when Relay received the webhook (``relayreceivedat``, a letter's
``received_at``): ``since`` inclusive, ``until`` exclusive.

What a search costs, and what keeps it down:

- Where each topic is read from: every record is written after its webhook
  was received (the spool drains later, a replay publishes a letter received
  long before), so each partition is read from its first record written at
  or after ``since`` less :data:`CLOCK_MARGIN` (the brokers' time index, see
  :meth:`relay.kafka.TopicReader.assign_since`), and for the same reason to
  its end: ``until`` narrows what is shown, not what is read. Where a broker
  cannot position by time (tansu reads such partitions from the beginning),
  a record written before that moment is passed over without being decoded.
- What is decoded: record keys are ``<provider>:<order>`` on the events
  topic and ``<provider>:<letter id>`` on the dead-letter topic, so
  ``--provider`` and ``--order`` rule events out by key, and ``--provider``
  and ``--id`` rule letters out, before their value is parsed; ``--id`` also
  rules out an event whose value does not hold the id as a JSON string.
  Only the records left (candidates) are decoded, so a foreign record is
  reported (one line on ``err``, as ``relay tail`` does) when it is a
  candidate, and passed over silently otherwise. A record the decoder refuses
  (anything at all: a topic takes whatever its writers send) never stops the
  search, and what the lines and :class:`Match` fields print is made inert
  (:mod:`relay.inert`) where it is printed.
- A dead letter's order is read from its body with its profile's order
  reader (:func:`relay.replay.letter_order_id`): letters failed to normalize,
  so they carry no order field of their own.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TextIO

import orjson

from relay.config import Config
from relay.inert import inert
from relay.kafka import ReadRecord, TopicReader
from relay.replay import letter_order_id
from schemas.decoder import DecodeError, PaymentEvent, decode_dlq_record, decode_event
from schemas.records import DeadLetter
from schemas.values import rfc3339

DEFAULT_WINDOW = timedelta(hours=24)
CLOCK_MARGIN = timedelta(minutes=5)
"""How much earlier than ``since`` reading starts: a record's timestamp is its producer's
clock (or the broker's, on a topic that stamps its own), which may lag the clock of the
Relay that received the webhook."""

_PROGRESS_INTERVAL_S = 0.1


class Kind(StrEnum):
    EVENT = "event"
    DEAD_LETTER = "dead-letter"


@dataclass(frozen=True, slots=True)
class FindQuery:
    """What to find: every criterion given must hold."""

    since: datetime
    until: datetime | None = None
    order: str | None = None
    """The order a record is keyed by: the merchant order id, else the provider's."""
    id: str | None = None
    """An event id or a dead letter id."""
    provider: str | None = None

    def received_in_window(self, received_at: datetime) -> bool:
        return self.since <= received_at and (self.until is None or received_at < self.until)


@dataclass(frozen=True, slots=True)
class Match:
    """One event or dead letter found; amounts are their exact decimal text."""

    received_at: datetime
    kind: Kind
    provider: str
    id: str
    order_id: str | None
    topic: str
    partition: int
    offset: int
    type: str | None = None
    amount: str | None = None
    asset: str | None = None
    reason: str | None = None
    attempts: int | None = None

    def describe(self) -> str:
        """The type of an event, or the reason of a letter (and which filing, after the first)."""
        if self.kind is Kind.EVENT:
            return self.type or ""
        filing = f", attempt {self.attempts}" if self.attempts and self.attempts > 1 else ""
        return f"{self.reason}{filing}"

    def to_json(self) -> bytes:
        return orjson.dumps(
            {
                "received_at": rfc3339(self.received_at),
                "kind": self.kind.value,
                "provider": self.provider,
                "type": self.type,
                "reason": self.reason,
                "id": self.id,
                "order_id": self.order_id,
                "amount": self.amount,
                "asset": self.asset,
                "attempts": self.attempts,
                "topic": self.topic,
                "partition": self.partition,
                "offset": self.offset,
            }
        )


@dataclass
class FindResult:
    matches: list[Match] = field(default_factory=list)
    """Sorted by received time; a letter before the event its replay published."""
    read: dict[str, int] = field(default_factory=dict)
    """Records read per topic."""
    missing_topics: list[str] = field(default_factory=list)
    foreign: int = 0

    def summary(self, query: FindQuery) -> str:
        events = sum(1 for match in self.matches if match.kind is Kind.EVENT)
        letters = len(self.matches) - events
        found = (
            f"{len(self.matches)} found ({_count(events, 'event')}, "
            f"{_count(letters, 'dead letter')})"
            if self.matches
            else "nothing found"
        )
        until = rfc3339(query.until) if query.until is not None else "now"
        read = (
            ", ".join(f"{_count(count, 'record')} of {topic}" for topic, count in self.read.items())
            or "nothing"
        )
        foreign = f"; {_count(self.foreign, 'foreign record')} skipped" if self.foreign else ""
        return f"{found} received {rfc3339(query.since)} .. {until}; read {read}{foreign}"


async def find(
    config: Config,
    query: FindQuery,
    *,
    err: TextIO,
    show_progress: bool = False,
    idle_s: float = 1.5,
) -> FindResult:
    """Search the events topic, then the dead-letter topic. ``err`` gets one line per foreign
    candidate and, with ``show_progress``, a progress line redrawn in place."""
    result = FindResult()
    progress = _Progress(err if show_progress else None)
    kafka = config.kafka
    for kind, topic in ((Kind.EVENT, kafka.topic), (Kind.DEAD_LETTER, kafka.dead_letter_topic)):
        async with TopicReader(kafka, topic) as reader:
            if not await reader.assign_since(query.since - CLOCK_MARGIN):
                result.missing_topics.append(topic)
                continue
            result.read[topic] = 0
            async for record in reader.until_idle(idle_s):
                result.read[topic] += 1
                try:
                    match = (
                        _event_match(record, query)
                        if kind is Kind.EVENT
                        else _letter_match(config, record, query)
                    )
                except DecodeError as error:
                    result.foreign += 1
                    what = "event" if kind is Kind.EVENT else "dead letter"
                    progress.note(inert(f"{record.where}: not a Relay {what}: {error}"), err)
                    continue
                if match is not None:
                    result.matches.append(match)
                progress.show(topic, result.read[topic], len(result.matches))
    progress.clear()
    result.matches.sort(
        key=lambda m: (m.received_at, m.kind is Kind.EVENT, m.topic, m.partition, m.offset)
    )
    return result


def _event_match(record: ReadRecord, query: FindQuery) -> Match | None:
    provider, _, order = record.key.partition(b":")
    if query.provider is not None and provider != query.provider.encode():
        return None
    if query.order is not None and order != query.order.encode():
        return None
    if query.id is not None and orjson.dumps(query.id) not in record.value:
        return None
    if _written_before(record, query):
        return None
    event = decode_event(record.value, record.headers)
    if isinstance(event, PaymentEvent):
        data = event.data
        event_provider, order_id = data.provider, data.merchant_order_id or data.provider_order_id
        amount = None if data.amount is None else format(data.amount, "f")
        asset = data.asset or data.currency  # the amount's unit: a token, or a fiat currency
    else:
        event_provider, order_id, amount, asset = event.provider, None, None, None
    if (
        not query.received_in_window(event.received_at)
        or (query.provider is not None and event_provider != query.provider)
        or (query.order is not None and order_id != query.order)
        or (query.id is not None and event.id != query.id)
    ):
        return None
    return Match(
        received_at=event.received_at,
        kind=Kind.EVENT,
        provider=event_provider,
        id=event.id,
        order_id=order_id,
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        type=event.type,
        amount=amount,
        asset=asset,
    )


def _letter_match(config: Config, record: ReadRecord, query: FindQuery) -> Match | None:
    provider, _, letter_id = record.key.partition(b":")
    if query.provider is not None and provider != query.provider.encode():
        return None
    if query.id is not None and letter_id != query.id.encode():
        return None
    if _written_before(record, query):
        return None
    letter = decode_dlq_record(record.value, record.headers)
    if not isinstance(letter, DeadLetter):
        return None  # what a replay did with a letter: ``relay dlq`` shows those
    if (
        not query.received_in_window(letter.received_at)
        or (query.provider is not None and letter.provider != query.provider)
        or (query.id is not None and letter.id != query.id)
    ):
        return None
    order_id = letter_order_id(config, letter)
    if query.order is not None and order_id != query.order:
        return None
    return Match(
        received_at=letter.received_at,
        kind=Kind.DEAD_LETTER,
        provider=letter.provider,
        id=letter.id,
        order_id=order_id,
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        reason=letter.reason,
        attempts=letter.attempts,
    )


def _written_before(record: ReadRecord, query: FindQuery) -> bool:
    """Written before the window (with the clock margin), so received before it too."""
    start_ms = (query.since - CLOCK_MARGIN).timestamp() * 1000
    return 0 <= record.timestamp_ms < start_ms


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


class _Progress:
    """One line on a terminal, redrawn in place at most ten times a second."""

    def __init__(self, out: TextIO | None) -> None:
        self._out = out
        self._drawn_at = 0.0
        self._line = ""

    def show(self, topic: str, read: int, found: int) -> None:
        now = time.monotonic()
        if self._out is None or now - self._drawn_at < _PROGRESS_INTERVAL_S:
            return
        self._drawn_at = now
        self._line = f"reading {topic}: {_count(read, 'record')}, {found} found"
        self._out.write(f"\r\x1b[K{self._line}")
        self._out.flush()

    def note(self, line: str, out: TextIO) -> None:
        """A line of its own (a complaint); the next update draws the progress under it."""
        self.clear()
        self._drawn_at = 0.0
        print(line, file=out, flush=True)

    def clear(self) -> None:
        if self._out is not None and self._line:
            self._out.write("\r\x1b[K")
            self._out.flush()
            self._line = ""

"""The console's index: both topics in SQLite, kept current by consuming them.

Pages must answer in milliseconds over a million events, and reading a topic
answers in seconds (``relay find`` reads both topics whole). So the console
consumes the events topic and the dead-letter topic as they grow and keeps
what its pages ask about in one SQLite file (WAL mode, so pages read while
the indexer writes):

- ``events``: one row per event record (where it is, received time, provider,
  id, type, order, amount, asset, status); not its value: the topic has it.
- ``letters``: one row per dead letter, with the record's value and headers as
  read, so a letter's page decodes it with the consumers' decoder, as
  ``relay dlq show`` does, and the body is the exact bytes received; its order
  is read from its body as ``relay find`` reads it
  (:func:`relay.replay.letter_order_id`); ``replay_state`` is the outcome of its
  last replay, kept current as outcomes arrive.
- ``replays``: one row per replay outcome record, and whether it is believed: as
  ``relay dlq`` believes them, with ``[replay] outcome_key`` set only those signed
  with it (:func:`relay.deadletter.outcome_authentic`), the others kept to be counted
  and named, never as a letter's replays or state; without a key all of them, which
  the pages then call unauthenticated.
- ``counts``: records per received minute, provider and kind, for the overview.
- ``positions``: the next offset of each partition, committed in the same
  transaction as the rows read before it, so a restart resumes exactly.

The topics are the truth and the index only a copy: deleting the file (or
``relay console --rebuild``) reads both topics again from the beginning, and a
file written for other topics, another schema or another outcome key is rebuilt by
itself (the file holds a keyed fingerprint of the key, never the key). Records
the decoder refuses are counted and passed over, as ``relay find`` passes them.

What the pages ask (:meth:`Index.letters`, :meth:`Index.find`, ...) returns the
CLI's own types (:class:`relay.find.Match`, :class:`relay.replay.FiledLetter`),
so a page shows what the command would print.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import sqlite3
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from relay.config import Config
from relay.deadletter import outcome_authentic
from relay.find import FindQuery, Kind, Match
from relay.kafka import ReadRecord, TopicReader
from relay.replay import FiledLetter, letter_order_id
from relay.sink import KafkaUnavailable
from schemas.decoder import DecodeError, PaymentEvent, decode_dlq_record, decode_event
from schemas.records import DeadLetter, ReplayOutcome, ReplayResult

log = logging.getLogger("relay.console")

SCHEMA_VERSION = "2"
NEVER_REPLAYED = "none"
"""``replay_state`` of a letter no replay has handled yet."""
REPLAY_STATES = (NEVER_REPLAYED, *(result.value for result in ReplayResult))

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS positions (
    topic TEXT NOT NULL, partition INTEGER NOT NULL, next_offset INTEGER NOT NULL,
    PRIMARY KEY (topic, partition));
CREATE TABLE IF NOT EXISTS events (
    partition INTEGER NOT NULL, "offset" INTEGER NOT NULL, received_ms INTEGER NOT NULL,
    provider TEXT NOT NULL, id TEXT NOT NULL, type TEXT NOT NULL, order_id TEXT,
    amount TEXT, asset TEXT, status TEXT);
CREATE INDEX IF NOT EXISTS events_received ON events (received_ms);
CREATE INDEX IF NOT EXISTS events_order ON events (order_id, received_ms);
CREATE INDEX IF NOT EXISTS events_id ON events (id);
CREATE INDEX IF NOT EXISTS events_provider ON events (provider, received_ms);
CREATE TABLE IF NOT EXISTS letters (
    partition INTEGER NOT NULL, "offset" INTEGER NOT NULL, received_ms INTEGER NOT NULL,
    provider TEXT NOT NULL, id TEXT NOT NULL, attempts INTEGER NOT NULL,
    reason TEXT NOT NULL, order_id TEXT, replay_state TEXT NOT NULL DEFAULT 'none',
    value BLOB NOT NULL, headers BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS letters_record ON letters (partition, "offset");
CREATE INDEX IF NOT EXISTS letters_received ON letters (received_ms);
CREATE INDEX IF NOT EXISTS letters_provider ON letters (provider, received_ms);
CREATE INDEX IF NOT EXISTS letters_reason ON letters (reason, received_ms);
CREATE INDEX IF NOT EXISTS letters_state ON letters (replay_state, received_ms);
CREATE INDEX IF NOT EXISTS letters_id ON letters (id);
CREATE INDEX IF NOT EXISTS letters_order ON letters (order_id);
CREATE TABLE IF NOT EXISTS replays (
    partition INTEGER NOT NULL, "offset" INTEGER NOT NULL, provider TEXT NOT NULL,
    letter_id TEXT NOT NULL, attempts INTEGER NOT NULL, value BLOB NOT NULL,
    headers BLOB NOT NULL, believed INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS replays_letter ON replays (provider, letter_id, attempts);
CREATE INDEX IF NOT EXISTS replays_ignored ON replays (provider, letter_id) WHERE NOT believed;
CREATE TABLE IF NOT EXISTS counts (
    minute INTEGER NOT NULL, provider TEXT NOT NULL, kind TEXT NOT NULL, n INTEGER NOT NULL,
    PRIMARY KEY (minute, provider, kind));
CREATE TABLE IF NOT EXISTS facets (kind TEXT NOT NULL, value TEXT NOT NULL,
    PRIMARY KEY (kind, value));
"""
_TABLES = ("positions", "events", "letters", "replays", "counts", "facets")

ACCEPTED = "accepted"
DEAD_LETTERED = "dead_lettered"


@dataclass(frozen=True, slots=True)
class LetterQuery:
    """The dead-letter list's filters: every one given must hold. Times are received times,
    ``since`` inclusive and ``until`` exclusive, as ``relay dlq list`` reads them."""

    provider: str | None = None
    reason: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    state: str | None = None
    """One of :data:`REPLAY_STATES`: the outcome of the letter's last replay."""
    id: str | None = None


@dataclass(frozen=True, slots=True)
class LetterRow:
    """A dead letter as the list shows it; ``key`` names its record (``partition:offset``)."""

    key: str
    received_at: datetime
    provider: str
    id: str
    attempts: int
    reason: str
    order_id: str | None
    replay_state: str


@dataclass(frozen=True, slots=True)
class LiveRow:
    """A record indexed since the live page last asked (``seq`` orders them per kind)."""

    seq: int
    kind: Kind
    received_at: datetime
    provider: str
    id: str
    describe: str
    order_id: str | None


@dataclass
class TopicState:
    """How the indexer is doing on one topic: for the overview's Kafka panel."""

    topic: str
    connected: bool = False
    exists: bool | None = None
    error: str | None = None
    records: int = 0
    """Records indexed by this process since it started."""
    foreign: int = 0
    last_record_at: datetime | None = None


@dataclass
class IndexStats:
    events: int = 0
    letters: int = 0
    replays: int = 0
    topics: list[TopicState] = field(default_factory=list)


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _moment(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


class Index:
    """The SQLite file: written by :meth:`apply` (the indexer), read by the pages.

    One connection, used from the event loop's thread only; every query is a lookup on
    an index, so none holds the loop for long.
    """

    def __init__(self, path: str | Path, config: Config) -> None:
        self.path = Path(path)
        self._config = config
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self.topics = (config.kafka.topic, config.kafka.dead_letter_topic)
        self.states = {topic: TopicState(topic) for topic in self.topics}
        wanted = {
            "schema": SCHEMA_VERSION,
            "topics": "\n".join(self.topics),
            "outcome_key": _fingerprint(config.replay.outcome_key),
        }
        if self._meta() != wanted:
            # Another schema, or other topics: what the file holds is about something else.
            self.clear()
            self._db.executemany(
                "INSERT OR REPLACE INTO meta VALUES (?, ?)", sorted(wanted.items())
            )

    def close(self) -> None:
        self._db.close()

    def clear(self) -> None:
        """Forget everything: the next read of the topics starts from their beginning."""
        with self._transaction():
            for table in _TABLES:
                # The names are this module's constants; dropped, as another schema's may differ.
                self._db.execute(f"DROP TABLE IF EXISTS {table}")
        self._db.executescript(_SCHEMA)

    def _meta(self) -> dict[str, str]:
        return dict(self._db.execute("SELECT key, value FROM meta").fetchall())

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db)

    # -- writing -------------------------------------------------------------------------

    def positions(self, topic: str) -> dict[int, int]:
        rows = self._db.execute(
            "SELECT partition, next_offset FROM positions WHERE topic = ?", (topic,)
        )
        return dict(rows.fetchall())

    def apply(self, records: Sequence[ReadRecord]) -> None:
        """Index ``records`` of either topic and move the positions past them, atomically."""
        counts: dict[tuple[int, str, str], int] = {}
        positions: dict[tuple[str, int], int] = {}
        with self._transaction():
            for record in records:
                positions[(record.topic, record.partition)] = record.offset + 1
                state = self.states.get(record.topic)
                if state is None:
                    continue
                if record.topic == self.topics[0]:
                    indexed = self._event(record, counts)
                else:
                    indexed = self._dlq_record(record, counts)
                state.records += 1
                if not indexed:
                    state.foreign += 1
                state.last_record_at = datetime.now(UTC)
            self._db.executemany(
                "INSERT INTO counts VALUES (?, ?, ?, ?) ON CONFLICT (minute, provider, kind) "
                "DO UPDATE SET n = n + excluded.n",
                [(minute, provider, kind, n) for (minute, provider, kind), n in counts.items()],
            )
            self._db.executemany(
                "INSERT OR REPLACE INTO positions VALUES (?, ?, ?)",
                [(topic, partition, offset) for (topic, partition), offset in positions.items()],
            )

    def _event(self, record: ReadRecord, counts: dict[tuple[int, str, str], int]) -> bool:
        try:
            event = decode_event(record.value, record.headers)
        except DecodeError:
            return False
        if isinstance(event, PaymentEvent):
            data = event.data
            provider, order_id = data.provider, data.merchant_order_id or data.provider_order_id
            amount = None if data.amount is None else format(data.amount, "f")
            asset, status = data.asset, data.status.value
        else:
            provider, order_id, amount, asset, status = event.provider, None, None, None, None
        received_ms = _ms(event.received_at)
        self._db.execute(
            "INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                record.partition,
                record.offset,
                received_ms,
                provider,
                event.id,
                event.type,
                order_id,
                amount,
                asset,
                status,
            ),
        )
        _count(counts, received_ms, provider, ACCEPTED)
        return True

    def _dlq_record(self, record: ReadRecord, counts: dict[tuple[int, str, str], int]) -> bool:
        try:
            item = decode_dlq_record(record.value, record.headers)
        except DecodeError:
            return False
        headers = orjson.dumps([[name, value.decode("latin-1")] for name, value in record.headers])
        if isinstance(item, ReplayOutcome):
            key = self._config.replay.outcome_key
            believed = not key or outcome_authentic(key, record.value, record.headers)
            self._db.execute(
                "INSERT INTO replays VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    record.partition,
                    record.offset,
                    item.provider,
                    item.letter_id,
                    item.attempts,
                    record.value,
                    headers,
                    believed,
                ),
            )
            if believed:
                # Outcomes follow their letter on its partition, in the order replays wrote them.
                self._db.execute(
                    "UPDATE letters SET replay_state = ? WHERE provider = ? AND id = ? "
                    "AND attempts = ?",
                    (item.outcome.value, item.provider, item.letter_id, item.attempts),
                )
            return True
        received_ms = _ms(item.received_at)
        self._db.execute(
            "INSERT INTO letters VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                record.partition,
                record.offset,
                received_ms,
                item.provider,
                item.id,
                item.attempts,
                item.reason,
                letter_order_id(self._config, item),
                NEVER_REPLAYED,
                record.value,
                headers,
            ),
        )
        self._db.executemany(
            "INSERT OR IGNORE INTO facets VALUES (?, ?)",
            (("reason", item.reason), ("provider", item.provider)),
        )
        _count(counts, received_ms, item.provider, DEAD_LETTERED)
        return True

    # -- reading -------------------------------------------------------------------------

    def stats(self) -> IndexStats:
        def total(table: str) -> int:
            # max(rowid): rows are never deleted one by one, so it is the count, without a scan.
            row = self._db.execute(f"SELECT max(rowid) FROM {table}").fetchone()
            return int(row[0] or 0)

        return IndexStats(
            events=total("events"),
            letters=total("letters"),
            replays=total("replays"),
            topics=list(self.states.values()),
        )

    def facets(self, kind: str) -> list[str]:
        rows = self._db.execute("SELECT value FROM facets WHERE kind = ? ORDER BY value", (kind,))
        return [value for (value,) in rows]

    def counts(self, since: datetime, bucket_minutes: int) -> list[tuple[int, str, str, int]]:
        """(bucket start in epoch minutes, provider, kind, records) from ``since`` on."""
        start = _ms(since) // 60000
        rows = self._db.execute(
            "SELECT (minute - ?) / ? * ? + ?, provider, kind, sum(n) FROM counts "
            "WHERE minute >= ? GROUP BY 1, 2, 3 ORDER BY 1",
            (start, bucket_minutes, bucket_minutes, start, start),
        )
        return [(int(m), str(p), str(k), int(n)) for m, p, k, n in rows]

    def letters(
        self, query: LetterQuery, *, limit: int = 100, offset: int = 0
    ) -> tuple[list[LetterRow], int]:
        """A page of matching letters, newest received first, and how many match in all."""
        where, params = _letter_where(query)
        total = self._db.execute(f"SELECT count(*) FROM letters {where}", params).fetchone()[0]
        rows = self._db.execute(
            'SELECT partition, "offset", received_ms, provider, id, attempts, reason, order_id, '
            f'replay_state FROM letters {where} ORDER BY received_ms DESC, "offset" DESC '
            "LIMIT ? OFFSET ?",
            (*params, limit, offset),
        )
        return [
            LetterRow(f"{p}:{o}", _moment(ms), prov, id_, att, reason, order, state)
            for p, o, ms, prov, id_, att, reason, order, state in rows
        ], int(total)

    def letter_keys(self, query: LetterQuery, limit: int) -> list[str]:
        """The records of (at most ``limit``) letters matching ``query``: a replay by filter."""
        where, params = _letter_where(query)
        rows = self._db.execute(
            f'SELECT partition, "offset" FROM letters {where} ORDER BY received_ms LIMIT ?',
            (*params, limit),
        )
        return [f"{p}:{o}" for p, o in rows]

    def filed(self, keys: Iterable[str]) -> list[FiledLetter]:
        """The letters of these records (``partition:offset``), decoded as ``relay dlq``
        decodes them, each with its replays; unknown keys are left out."""
        found: list[FiledLetter] = []
        for key in keys:
            partition, _, offset = key.partition(":")
            if not (partition.isdigit() and offset.isdigit()):
                continue
            row = self._db.execute(
                'SELECT value, headers FROM letters WHERE partition = ? AND "offset" = ?',
                (int(partition), int(offset)),
            ).fetchone()
            if row is not None:
                found.append(self._filed(int(partition), int(offset), row[0], row[1]))
        return found

    def filings(self, provider: str, letter_id: str) -> list[FiledLetter]:
        """Every filing of one letter, oldest first, with its replays (``relay dlq show``)."""
        rows = self._db.execute(
            'SELECT partition, "offset", value, headers FROM letters '
            'WHERE id = ? AND provider = ? ORDER BY attempts, "offset"',
            (letter_id, provider),
        )
        return [self._filed(p, o, value, headers) for p, o, value, headers in rows]

    def _filed(self, partition: int, offset: int, value: bytes, headers: bytes) -> FiledLetter:
        letter = decode_dlq_record(value, _headers(headers))
        assert isinstance(letter, DeadLetter)  # only letters are written to this table
        replays = self._db.execute(
            "SELECT value, headers FROM replays WHERE provider = ? AND letter_id = ? "
            'AND attempts = ? AND believed ORDER BY partition, "offset"',
            (letter.provider, letter.id, letter.attempts),
        )
        outcomes = tuple(
            outcome
            for value_, headers_ in replays
            if isinstance(outcome := decode_dlq_record(value_, _headers(headers_)), ReplayOutcome)
        )
        return FiledLetter(letter, self.topics[1], partition, offset, outcomes)

    def ignored_outcomes(self, provider: str | None = None, letter_id: str | None = None) -> int:
        """Replay outcomes not believed (not signed with ``[replay] outcome_key``): all of
        them, or those naming one letter."""
        if provider is None or letter_id is None:
            row = self._db.execute("SELECT count(*) FROM replays WHERE NOT believed").fetchone()
        else:
            row = self._db.execute(
                "SELECT count(*) FROM replays WHERE NOT believed AND provider = ? "
                "AND letter_id = ?",
                (provider, letter_id),
            ).fetchone()
        return int(row[0])

    def event_exists(self, provider: str, event_id: str) -> bool:
        row = self._db.execute(
            "SELECT 1 FROM events WHERE id = ? AND provider = ? LIMIT 1", (event_id, provider)
        ).fetchone()
        return row is not None

    def find(self, query: FindQuery, limit: int = 1000) -> tuple[list[Match], int]:
        """What ``relay find`` finds for ``query`` (at most ``limit`` of each kind, the
        earliest), in its order, and how many matched in all."""
        matches: list[Match] = []
        total = 0
        for kind in (Kind.EVENT, Kind.DEAD_LETTER):
            where, params = _find_where(query, kind)
            table = "events" if kind is Kind.EVENT else "letters"
            total += self._db.execute(
                f"SELECT count(*) FROM {table} {where}",
                params,
            ).fetchone()[0]
            if kind is Kind.EVENT:
                rows = self._db.execute(
                    'SELECT received_ms, provider, id, order_id, partition, "offset", type, '
                    f"amount, asset FROM events {where} ORDER BY received_ms LIMIT ?",
                    (*params, limit),
                )
                matches += [
                    Match(_moment(ms), kind, prov, id_, order, self.topics[0], p, o, type_, am, a)
                    for ms, prov, id_, order, p, o, type_, am, a in rows
                ]
            else:
                rows = self._db.execute(
                    'SELECT received_ms, provider, id, order_id, partition, "offset", reason, '
                    f"attempts FROM letters {where} ORDER BY received_ms LIMIT ?",
                    (*params, limit),
                )
                matches += [
                    Match(
                        _moment(ms),
                        kind,
                        prov,
                        id_,
                        order,
                        self.topics[1],
                        p,
                        o,
                        reason=reason,
                        attempts=attempts,
                    )
                    for ms, prov, id_, order, p, o, reason, attempts in rows
                ]
        matches.sort(
            key=lambda m: (m.received_at, m.kind is Kind.EVENT, m.topic, m.partition, m.offset)
        )
        return matches, int(total)

    def live(self, after_event: int, after_letter: int, limit: int = 50) -> list[LiveRow]:
        """Events and letters indexed after the given sequence numbers (rowids), oldest first."""
        rows: list[LiveRow] = []
        for rowid, ms, prov, id_, type_, order in self._db.execute(
            "SELECT rowid, received_ms, provider, id, type, order_id FROM events "
            "WHERE rowid > ? ORDER BY rowid DESC LIMIT ?",
            (after_event, limit),
        ):
            rows.append(LiveRow(rowid, Kind.EVENT, _moment(ms), prov, id_, type_, order))
        for rowid, ms, prov, id_, reason, order in self._db.execute(
            "SELECT rowid, received_ms, provider, id, reason, order_id FROM letters "
            "WHERE rowid > ? ORDER BY rowid DESC LIMIT ?",
            (after_letter, limit),
        ):
            rows.append(LiveRow(rowid, Kind.DEAD_LETTER, _moment(ms), prov, id_, reason, order))
        return sorted(rows, key=lambda row: (row.kind is Kind.EVENT, row.seq))

    def last_seq(self) -> tuple[int, int]:
        events = self._db.execute("SELECT max(rowid) FROM events").fetchone()[0]
        letters = self._db.execute("SELECT max(rowid) FROM letters").fetchone()[0]
        return int(events or 0), int(letters or 0)


class _Transaction:
    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN")

    def __exit__(self, exc_type: object, *rest: object) -> None:
        self._db.execute("ROLLBACK" if exc_type is not None else "COMMIT")


def _fingerprint(key: str) -> str:
    """What tells one outcome key from another without saying anything about it."""
    if not key:
        return ""
    return hmac.new(key.encode(), b"relay console index", "sha256").hexdigest()[:16]


def _count(counts: dict[tuple[int, str, str], int], ms: int, provider: str, kind: str) -> None:
    key = (ms // 60000, provider, kind)
    counts[key] = counts.get(key, 0) + 1


def _headers(stored: bytes) -> tuple[tuple[str, bytes], ...]:
    return tuple((name, value.encode("latin-1")) for name, value in orjson.loads(stored))


def _window(since: datetime | None, until: datetime | None) -> tuple[list[str], list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    if since is not None:
        clauses.append("received_ms >= ?")
        params.append(_ms(since))
    if until is not None:
        clauses.append("received_ms < ?")
        params.append(_ms(until))
    return clauses, params


def _letter_where(query: LetterQuery) -> tuple[str, list[Any]]:
    clauses, params = _window(query.since, query.until)
    for column, value in (
        ("provider", query.provider),
        ("reason", query.reason),
        ("replay_state", query.state),
        ("id", query.id),
    ):
        if value is not None:
            clauses.append(f"{column} = ?")
            params.append(value)
    return ("WHERE " + " AND ".join(clauses)) if clauses else "", params


def _find_where(query: FindQuery, kind: Kind) -> tuple[str, list[Any]]:
    clauses, params = _window(query.since, query.until)
    for column, value in (
        ("order_id", query.order),
        ("id", query.id),
        ("provider", query.provider),
    ):
        if value is not None:
            clauses.append(f"{column} = ?")
            params.append(value)
    return "WHERE " + " AND ".join(clauses), params


class Indexer:
    """Keeps an :class:`Index` current: one reader per topic, from the index's positions.

    Runs until cancelled. A broker that cannot be reached, or a topic that does not
    exist yet, is said in the topic's :class:`TopicState` and tried again every
    ``retry_s``; pages keep answering from what is indexed.
    """

    def __init__(
        self, index: Index, config: Config, *, poll_s: float = 0.5, retry_s: float = 5.0
    ) -> None:
        self._index = index
        self._config = config
        self._poll_s = poll_s
        self._retry_s = retry_s
        self.caught_up = {topic: asyncio.Event() for topic in index.topics}
        """Set once a topic's first read finds nothing more (tests and the benchmark wait)."""

    async def run(self) -> None:
        async with asyncio.TaskGroup() as group:
            for topic in self._index.topics:
                group.create_task(self._follow(topic))

    async def _follow(self, topic: str) -> None:
        state = self._index.states[topic]
        while True:
            try:
                async with TopicReader(self._config.kafka, topic) as reader:
                    state.connected, state.error = True, None
                    state.exists = await reader.assign_at(self._index.positions(topic))
                    if not state.exists:
                        self.caught_up[topic].set()  # nothing to read there yet
                        await asyncio.sleep(self._retry_s)
                        continue
                    while True:
                        records = await reader.poll(self._poll_s)
                        if records:
                            self._index.apply(records)
                        else:
                            self.caught_up[topic].set()
            except KafkaUnavailable as error:
                state.connected, state.error = False, str(error)
                log.warning("console: cannot read %s: %s", topic, error)
                await asyncio.sleep(self._retry_s)


async def build(index: Index, config: Config, idle_s: float = 1.5) -> float:
    """Bring ``index`` up to date with both topics and return; the seconds it took."""
    started = time.monotonic()
    for topic in index.topics:
        async with TopicReader(config.kafka, topic) as reader:
            if not await reader.assign_at(index.positions(topic)):
                continue
            while records := await reader.poll(idle_s):
                index.apply(records)
    return time.monotonic() - started

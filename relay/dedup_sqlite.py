"""The SQLite dedup store: one host, shared by its worker processes, kept across restarts.

Every worker process (``relay serve --workers N`` shares the port with
SO_REUSEPORT) opens the same database file. One table holds a row per key::

    key | done | expires_at | token
    in flight:  done = 0, expires_at = end of the claimant's lease, token = the claimant's
    done:       done = 1, expires_at = end of the dedup window (ttl_s), token = NULL

A row whose ``expires_at`` has passed counts as absent: an expired lease
frees the key of a claimant that crashed, and an expired done key lets the
same event id through again. Times are wall-clock UNIX seconds, because
the rows are shared between processes and outlive them; a clock step
shortens or stretches leases and windows by that step.

Claiming is one ``INSERT ... ON CONFLICT DO UPDATE ... WHERE expired``
statement: SQLite's single write lock makes it atomic across processes,
and the statement changes a row only when the key was free. The loser reads
the row back to tell DONE from IN_FLIGHT.

Each store owns one connection, used only by one dedicated thread: every
call is serialized there and never blocks the event loop. Calls of concurrent
webhooks share trips to that thread: while one batch runs there, the calls
that arrive wait and go together in the next, so under load one thread hop
serves many webhooks and a lone call goes at once. Each call is still its own
statement in its own transaction, with its own result or error.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from relay.dedup import Claim, DedupUnavailable

log = logging.getLogger(__name__)

T = TypeVar("T")

# How long a write waits for another process's write lock before the store
# gives up and fails closed. Each write holds the lock for microseconds, so
# waiting longer than this means something is wrong, and the provider's own
# retry is a better answer than an ack budget spent waiting.
BUSY_TIMEOUT_S = 1.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS dedup (
    key TEXT PRIMARY KEY,
    done INTEGER NOT NULL,
    expires_at REAL NOT NULL,
    token TEXT
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS dedup_expires_at ON dedup (expires_at);
"""

_CLAIM = """
INSERT INTO dedup (key, done, expires_at, token) VALUES (?, 0, ?, ?)
ON CONFLICT (key) DO UPDATE
    SET done = 0, expires_at = excluded.expires_at, token = excluded.token
    WHERE dedup.expires_at <= ?
"""

_MARK_DONE = """
INSERT INTO dedup (key, done, expires_at, token) VALUES (?, 1, ?, NULL)
ON CONFLICT (key) DO UPDATE SET done = 1, expires_at = excluded.expires_at, token = NULL
"""

_PURGE = "DELETE FROM dedup WHERE key IN (SELECT key FROM dedup WHERE expires_at <= ? LIMIT ?)"

_POLL_FIRST_S = 0.005
_POLL_MAX_S = 0.05


def _enable_wal(conn: sqlite3.Connection) -> str:
    """Switch to WAL and return the journal mode now in force.

    Switching needs an exclusive lock, and when several processes open a new
    file at once SQLite can answer the switch with SQLITE_BUSY at once rather
    than waiting for ``busy_timeout``: retry for as long as that timeout. Once
    the file is in WAL mode (a property of the file) the switch is a no-op.
    """
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    while True:
        try:
            return str(conn.execute("PRAGMA journal_mode = WAL").fetchone()[0])
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode != sqlite3.SQLITE_BUSY or time.monotonic() >= deadline:
                raise
            time.sleep(0.01)


class SqliteDedup:
    """A :class:`relay.dedup.DedupStore` in a SQLite file (WAL mode).

    ``lease_s`` must exceed the longest time between a claim and its
    ``mark_done`` or ``release`` (the ack budget plus a spool write): a
    lease that runs out while its owner still works lets a retry publish a
    second copy.

    ``release`` only frees a claim this store made (it remembers the token of
    each of its open claims), so a claimant whose lease ran out cannot free
    the key that another process has claimed since. ``mark_done`` is
    unconditional, as in :class:`relay.dedup.MemoryDedup`: it records that
    the event is durable, which is true whoever holds the claim.
    """

    def __init__(
        self,
        path: Path,
        ttl_s: float,
        lease_s: float,
        *,
        purge_interval_s: float = 60.0,
        purge_batch: int = 1000,
    ) -> None:
        self._path = Path(path)
        self._ttl_s = ttl_s
        self._lease_s = lease_s
        self._purge_interval_s = purge_interval_s
        self._purge_batch = purge_batch
        self._next_purge = time.monotonic()
        # Touched only on the store's thread, like the connection.
        self._conn: sqlite3.Connection | None = None
        self._tokens: dict[str, str] = {}
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="relay-dedup-sqlite")
        self._closed = False
        self._waiting: list[tuple[Callable[[], Any], asyncio.Future[Any]]] = []
        self._sender: asyncio.Task[None] | None = None

    async def claim(self, key: str) -> Claim:
        result = await self._run(self._claim, key)
        if not self._closed and time.monotonic() >= self._next_purge:
            # Pushed back before the purge runs, so a burst of claims queues one purge, not many.
            self._next_purge = time.monotonic() + self._purge_interval_s
            self._executor.submit(self._purge)
        return result

    async def mark_done(self, key: str) -> None:
        await self._run(self._mark_done, key)

    async def release(self, key: str) -> None:
        await self._run(self._release, key)

    async def wait_settled(self, key: str, timeout_s: float) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        delay = _POLL_FIRST_S
        while not await self._run(self._settled, key):
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            await asyncio.sleep(min(delay, remaining))
            delay = min(delay * 2, _POLL_MAX_S)

    async def ping(self) -> None:
        await self._run(self._ping)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._sender is not None:
            await asyncio.gather(self._sender, return_exceptions=True)
        try:
            await asyncio.get_running_loop().run_in_executor(self._executor, self._close_conn)
        finally:
            self._executor.shutdown(wait=False)

    async def _run(self, fn: Callable[..., T], *args: object) -> T:
        if self._closed:
            raise DedupUnavailable("the sqlite dedup store is closed")
        result: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._waiting.append((lambda: fn(*args), result))
        if self._sender is None:
            self._sender = asyncio.create_task(self._send_while_waiting())
        try:
            return await result
        except (sqlite3.Error, OSError) as exc:
            raise DedupUnavailable(f"sqlite dedup store {self._path}: {exc}") from exc

    async def _send_while_waiting(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._waiting:
                batch, self._waiting = self._waiting, []
                calls = [call for call, _ in batch]
                try:
                    outcomes = await loop.run_in_executor(self._executor, _run_each, calls)
                except BaseException as exc:
                    # Cancelled, or the thread is gone: no caller may wait forever.
                    for _, result in batch:
                        if not result.done():
                            result.set_exception(OSError(f"the store's thread failed: {exc!r}"))
                    raise
                for (_, result), (value, error) in zip(batch, outcomes, strict=True):
                    if result.done():  # its caller gave up waiting
                        continue
                    if error is not None:
                        result.set_exception(error)
                    else:
                        result.set_result(value)
        finally:
            self._sender = None

    # Everything below runs on the store's thread.

    def _db(self) -> sqlite3.Connection:
        """The connection, opened on first use so that a store created while its
        disk is unusable fails closed per call and recovers once the disk is back."""
        if self._conn is not None:
            return self._conn
        self._path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(
            self._path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
        )
        try:
            mode = _enable_wal(conn)
            if mode != "wal":
                # WAL is what lets readers and the single writer of several processes
                # proceed together; it needs shared memory, so no network filesystems.
                raise sqlite3.OperationalError(f"WAL mode unavailable (journal_mode={mode})")
            # NORMAL, not FULL: in WAL mode a commit is then atomic and survives a crash
            # of the process (what a claim needs), and only a power cut can lose the last
            # commits. A lost done mark costs at most one duplicate on a later retry, and
            # a lost claim only frees a key whose owner died with the machine anyway.
            # FULL would add an fsync to every claim and every mark_done.
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.executescript(_SCHEMA)
        except BaseException:
            conn.close()
            raise
        self._conn = conn
        return conn

    def _claim(self, key: str) -> Claim:
        db = self._db()
        now = time.time()
        token = secrets.token_hex(8)
        if db.execute(_CLAIM, (key, now + self._lease_s, token, now)).rowcount == 1:
            self._tokens[key] = token
            return Claim.CLAIMED
        row = db.execute("SELECT done FROM dedup WHERE key = ?", (key,)).fetchone()
        if row is not None and row[0]:
            return Claim.DONE
        # In flight, or released between the two statements: either way the
        # caller's wait_settled returns once the key is free and its next claim decides.
        return Claim.IN_FLIGHT

    def _mark_done(self, key: str) -> None:
        self._db().execute(_MARK_DONE, (key, time.time() + self._ttl_s))
        self._tokens.pop(key, None)

    def _release(self, key: str) -> None:
        token = self._tokens.get(key)
        if token is None:
            return
        self._db().execute(
            "DELETE FROM dedup WHERE key = ? AND done = 0 AND token = ?", (key, token)
        )
        del self._tokens[key]

    def _settled(self, key: str) -> bool:
        row = (
            self._db()
            .execute("SELECT done, expires_at FROM dedup WHERE key = ?", (key,))
            .fetchone()
        )
        return row is None or bool(row[0]) or row[1] <= time.time()

    def _ping(self) -> None:
        self._db().execute("SELECT 1").fetchone()

    def _purge(self) -> None:
        """Delete at most ``purge_batch`` expired rows; a full batch brings the next purge forward."""
        try:
            deleted = self._db().execute(_PURGE, (time.time(), self._purge_batch)).rowcount
        except (sqlite3.Error, OSError) as exc:
            # Claims report their own errors; a failed purge only keeps expired rows longer.
            log.warning("dedup purge failed on %s: %s", self._path, exc)
            return
        if deleted >= self._purge_batch:
            self._next_purge = time.monotonic()

    def _close_conn(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def _run_each(calls: list[Callable[[], Any]]) -> list[tuple[Any, BaseException | None]]:
    """On the store's thread: each call's result, or the error that call raised."""
    outcomes: list[tuple[Any, BaseException | None]] = []
    for call in calls:
        try:
            outcomes.append((call(), None))
        except Exception as exc:
            outcomes.append((None, exc))
    return outcomes

"""One behaviour suite for every dedup store: memory, SQLite (a real file) and Redis (a real server).

The Redis cases run against ``REDIS_URL`` when it is set, else against a
private ``valkey-server`` started for this module; each test uses its own key
prefix and deletes its keys afterwards, so a shared server is left as found.

Several handles onto one SQLite file or one Redis stand for several worker
processes or hosts; the cross-process tests use real OS processes.
"""

from __future__ import annotations

import asyncio
import collections
import json
import sqlite3
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from redis.asyncio import Redis

from relay.dedup import (
    Claim,
    DedupStore,
    DedupUnavailable,
    MemoryDedup,
    dedup_key,
    open_dedup,
)
from relay.dedup_redis import RedisDedup
from relay.dedup_sqlite import SqliteDedup
from tests.redis_server import HOST, free_port, redis_server, start_valkey

REPO_ROOT = Path(__file__).resolve().parent.parent

KEY = dedup_key("invoices", "evt-1")
# Bounds for "answers at all" checks; never assertions about speed.
SETTLE_S = 5.0
FAIL_CLOSED_S = 3.0


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    with redis_server() as url:
        yield url


class Stores:
    """Opens handles onto the one store under test and closes them at the end.

    Each sqlite or redis handle is a separate client of the same data, as
    another worker process or host would be; memory has one handle only.
    """

    def __init__(self, backend: str, db_path: Path, redis_url: str | None) -> None:
        self.backend = backend
        self.db_path = db_path
        self.redis_url = redis_url
        self.prefix = f"relay-test:{uuid.uuid4().hex}:"
        self._handles: list[DedupStore] = []
        self._memory: MemoryDedup | None = None

    def open(self, *, ttl_s: float = 30.0, lease_s: float = 30.0) -> DedupStore:
        store: DedupStore
        if self.backend == "memory":
            if self._memory is None:
                self._memory = MemoryDedup(ttl_s)
                self._handles.append(self._memory)
            return self._memory
        if self.backend == "sqlite":
            store = SqliteDedup(self.db_path, ttl_s, lease_s)
        else:
            assert self.redis_url is not None
            store = RedisDedup(self.redis_url, ttl_s, lease_s, key_prefix=self.prefix)
        self._handles.append(store)
        return store

    async def close(self) -> None:
        for store in self._handles:
            await store.close()
        if self.redis_url is not None:
            client = Redis.from_url(self.redis_url)
            try:
                names = [name async for name in client.scan_iter(match=self.prefix + "*")]
                if names:
                    await client.delete(*names)
            finally:
                await client.aclose()


@asynccontextmanager
async def _stores(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Stores]:
    backend: str = request.param
    url = request.getfixturevalue("redis_url") if backend == "redis" else None
    stores = Stores(backend, tmp_path / "dedup.sqlite3", url)
    try:
        yield stores
    finally:
        await stores.close()


@pytest.fixture(params=["memory", "sqlite", "redis"])
async def stores(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Stores]:
    async with _stores(request, tmp_path) as s:
        yield s


@pytest.fixture(params=["sqlite", "redis"])
async def shared(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Stores]:
    """The stores that several processes share, where in-flight claims carry a lease."""
    async with _stores(request, tmp_path) as s:
        yield s


# The claim protocol, on every store.


async def test_claim_then_done_then_duplicate(stores: Stores) -> None:
    store = stores.open()
    assert await store.claim(KEY) is Claim.CLAIMED
    assert await store.claim(KEY) is Claim.IN_FLIGHT
    await store.mark_done(KEY)
    assert await store.claim(KEY) is Claim.DONE
    assert await store.claim(dedup_key("invoices", "evt-2")) is Claim.CLAIMED
    assert await store.claim(dedup_key("payouts", "evt-1")) is Claim.CLAIMED


async def test_release_lets_a_retry_claim_again(stores: Stores) -> None:
    store = stores.open()
    assert await store.claim(KEY) is Claim.CLAIMED
    await store.release(KEY)
    assert await store.claim(KEY) is Claim.CLAIMED


async def test_release_after_done_keeps_the_key_done(stores: Stores) -> None:
    store = stores.open()
    assert await store.claim(KEY) is Claim.CLAIMED
    await store.mark_done(KEY)
    await store.release(KEY)
    assert await store.claim(KEY) is Claim.DONE


async def test_done_key_expires_after_ttl(stores: Stores) -> None:
    store = stores.open(ttl_s=0.3)
    assert await store.claim(KEY) is Claim.CLAIMED
    await store.mark_done(KEY)
    assert await store.claim(KEY) is Claim.DONE
    await asyncio.sleep(0.3)
    assert await _claim_within(store, KEY, SETTLE_S) is Claim.CLAIMED


async def test_wait_settled_returns_when_the_owner_marks_done(stores: Stores) -> None:
    owner, waiter = stores.open(), stores.open()
    assert await owner.claim(KEY) is Claim.CLAIMED
    waiting = asyncio.create_task(waiter.wait_settled(KEY, SETTLE_S * 2))
    await asyncio.sleep(0.1)
    assert not waiting.done()
    await owner.mark_done(KEY)
    await asyncio.wait_for(waiting, SETTLE_S)
    assert await waiter.claim(KEY) is Claim.DONE


async def test_wait_settled_returns_when_the_owner_releases(stores: Stores) -> None:
    owner, waiter = stores.open(), stores.open()
    assert await owner.claim(KEY) is Claim.CLAIMED
    waiting = asyncio.create_task(waiter.wait_settled(KEY, SETTLE_S * 2))
    await asyncio.sleep(0.1)
    assert not waiting.done()
    await owner.release(KEY)
    await asyncio.wait_for(waiting, SETTLE_S)
    assert await waiter.claim(KEY) is Claim.CLAIMED


async def test_wait_settled_gives_up_quietly_at_its_timeout(stores: Stores) -> None:
    owner, waiter = stores.open(), stores.open()
    assert await owner.claim(KEY) is Claim.CLAIMED
    await asyncio.wait_for(waiter.wait_settled(KEY, 0.1), SETTLE_S)
    assert await waiter.claim(KEY) is Claim.IN_FLIGHT


async def test_fifty_concurrent_claims_have_one_winner(stores: Stores) -> None:
    handles = [stores.open() for _ in range(5)]
    results = await asyncio.gather(*(handles[i % 5].claim(KEY) for i in range(50)))
    assert collections.Counter(results) == {Claim.CLAIMED: 1, Claim.IN_FLIGHT: 49}


# Leases: only the stores that outlive a claimant need them.


async def test_lease_expiry_frees_a_crashed_claimant_and_its_late_release_is_ignored(
    shared: Stores,
) -> None:
    crashed = shared.open(lease_s=0.3)
    retry, third = shared.open(), shared.open()
    assert await crashed.claim(KEY) is Claim.CLAIMED
    assert await retry.claim(KEY) is Claim.IN_FLIGHT
    # wait_settled also counts an expired lease as settled.
    await asyncio.wait_for(retry.wait_settled(KEY, SETTLE_S * 2), SETTLE_S)
    assert await retry.claim(KEY) is Claim.CLAIMED
    # The first claimant comes back late: its release must not free the retry's claim.
    await crashed.release(KEY)
    assert await third.claim(KEY) is Claim.IN_FLIGHT
    await retry.mark_done(KEY)
    assert await third.claim(KEY) is Claim.DONE


async def test_late_mark_done_of_an_expired_claim_still_marks_done(shared: Stores) -> None:
    slow = shared.open(lease_s=0.3)
    retry = shared.open()
    assert await slow.claim(KEY) is Claim.CLAIMED
    await asyncio.wait_for(retry.wait_settled(KEY, SETTLE_S * 2), SETTLE_S)
    assert await retry.claim(KEY) is Claim.CLAIMED
    # The slow claimant's event did become durable: later duplicates are DONE.
    await slow.mark_done(KEY)
    assert await retry.claim(KEY) is Claim.DONE


_RACE_CHILD = """
import asyncio, json, sys, time
from pathlib import Path
from relay.dedup import Claim
from relay.dedup_redis import RedisDedup
from relay.dedup_sqlite import SqliteDedup

async def main() -> None:
    backend, target, prefix, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    if backend == "sqlite":
        store = SqliteDedup(Path(target), 60.0, 60.0)
    else:
        store = RedisDedup(target, 60.0, 60.0, key_prefix=prefix)
    await store.ping()
    print("ready", flush=True)
    start_at = float(await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline))
    await asyncio.sleep(start_at - time.time())
    claimed = []
    for i in range(count):
        key = f"race-{i}"
        if await store.claim(key) is Claim.CLAIMED:
            claimed.append(key)
            await store.mark_done(key)
    await store.close()
    print(json.dumps(claimed), flush=True)

asyncio.run(main())
"""


async def test_processes_racing_claim_each_key_exactly_once(shared: Stores) -> None:
    processes, keys = 6, 200
    target = str(shared.db_path) if shared.backend == "sqlite" else shared.redis_url
    assert target is not None
    children = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            _RACE_CHILD,
            shared.backend,
            target,
            shared.prefix,
            str(keys),
            cwd=REPO_ROOT,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        for _ in range(processes)
    ]
    try:
        for child in children:
            assert child.stdout is not None
            line = await asyncio.wait_for(child.stdout.readline(), 30)
            assert line == b"ready\n"
        # All opened and connected: start them at one instant so they contend on the same keys.
        start_at = f"{time.time() + 0.2}\n".encode()
        for child in children:
            assert child.stdin is not None
            child.stdin.write(start_at)
            await child.stdin.drain()
        outputs = await asyncio.wait_for(
            asyncio.gather(*(child.communicate() for child in children)), 30
        )
    finally:
        for child in children:
            if child.returncode is None:
                child.kill()
                await child.wait()
    assert [child.returncode for child in children] == [0] * processes
    claimed = [key for stdout, _ in outputs for key in json.loads(stdout)]
    assert sorted(claimed) == sorted(f"race-{i}" for i in range(keys))
    # A race that one process won outright would prove nothing about atomicity.
    assert sum(1 for stdout, _ in outputs if json.loads(stdout)) > 1


# SQLite specifics.


@pytest.mark.parametrize("stores", ["sqlite"], indirect=True)
async def test_sqlite_done_key_survives_reopening(stores: Stores) -> None:
    first = stores.open()
    assert await first.claim(KEY) is Claim.CLAIMED
    await first.mark_done(KEY)
    await first.close()
    reopened = stores.open()
    assert await reopened.claim(KEY) is Claim.DONE


async def test_sqlite_purges_expired_rows_in_bounded_batches(tmp_path: Path) -> None:
    path = tmp_path / "dedup.sqlite3"
    store = SqliteDedup(path, ttl_s=0.05, lease_s=30.0, purge_interval_s=3600.0, purge_batch=10)
    try:
        for i in range(25):
            await store.mark_done(f"old-{i}")
        await asyncio.sleep(0.1)
        remaining = []
        for i in range(4):
            # The first claim queues a purge; a full batch queues the next one at once.
            await store.claim(f"new-{i}")
            await store.ping()  # runs after the queued purge on the store's thread
            remaining.append(_count_rows(path, "old-%"))
        assert remaining == [15, 5, 0, 0]
        assert _count_rows(path, "new-%") == 4
    finally:
        await store.close()


def _count_rows(path: Path, pattern: str) -> int:
    with sqlite3.connect(path) as db:
        return db.execute("SELECT count(*) FROM dedup WHERE key LIKE ?", (pattern,)).fetchone()[0]


def _under_a_file(tmp_path: Path) -> Path:
    (tmp_path / "plain-file").write_text("not a directory")
    return tmp_path / "plain-file" / "dedup.sqlite3"


def _a_directory(tmp_path: Path) -> Path:
    (tmp_path / "a-directory").mkdir()
    return tmp_path / "a-directory"


def _not_a_database(tmp_path: Path) -> Path:
    path = tmp_path / "garbage.sqlite3"
    path.write_bytes(b"this is not an SQLite database, " * 256)
    return path


@pytest.mark.parametrize("unusable", [_under_a_file, _a_directory, _not_a_database])
async def test_sqlite_unusable_path_fails_closed(
    tmp_path: Path, unusable: Callable[[Path], Path]
) -> None:
    store = SqliteDedup(unusable(tmp_path), ttl_s=60.0, lease_s=30.0)
    try:
        with pytest.raises(DedupUnavailable):
            await asyncio.wait_for(store.claim(KEY), FAIL_CLOSED_S)
        with pytest.raises(DedupUnavailable):
            await asyncio.wait_for(store.mark_done(KEY), FAIL_CLOSED_S)
        with pytest.raises(DedupUnavailable):
            await asyncio.wait_for(store.ping(), FAIL_CLOSED_S)
    finally:
        await store.close()


async def test_sqlite_write_lock_held_too_long_fails_closed_then_recovers(tmp_path: Path) -> None:
    path = tmp_path / "dedup.sqlite3"
    store = SqliteDedup(path, ttl_s=60.0, lease_s=30.0)
    blocker = sqlite3.connect(path, isolation_level=None)
    try:
        await store.ping()
        blocker.execute("BEGIN IMMEDIATE")
        with pytest.raises(DedupUnavailable):
            await asyncio.wait_for(store.claim(KEY), FAIL_CLOSED_S)
        blocker.execute("ROLLBACK")
        assert await store.claim(KEY) is Claim.CLAIMED
    finally:
        blocker.close()
        await store.close()


# Redis specifics.


async def _fails_closed(store: DedupStore) -> None:
    """Every call that needs the server raises DedupUnavailable, each within FAIL_CLOSED_S."""
    calls = [
        store.claim(KEY),
        store.mark_done(KEY),
        store.wait_settled(KEY, 0.1),
        store.ping(),
    ]
    for call in calls:
        with pytest.raises(DedupUnavailable):
            await asyncio.wait_for(call, FAIL_CLOSED_S)


async def test_redis_closed_port_fails_closed() -> None:
    store = RedisDedup(f"redis://{HOST}:{free_port()}/0", ttl_s=60.0, lease_s=30.0)
    try:
        await _fails_closed(store)
    finally:
        await store.close()


async def test_redis_server_that_never_answers_fails_closed() -> None:
    async def accept_and_stay_silent(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        await reader.read()
        writer.close()

    server = await asyncio.start_server(accept_and_stay_silent, HOST, 0)
    port = server.sockets[0].getsockname()[1]
    store = RedisDedup(f"redis://{HOST}:{port}/0", ttl_s=60.0, lease_s=30.0)
    try:
        with pytest.raises(DedupUnavailable):
            await asyncio.wait_for(store.claim(KEY), FAIL_CLOSED_S)
    finally:
        await store.close()
        server.close()
        await server.wait_closed()


async def test_redis_stopped_fails_closed_and_recovers_when_back() -> None:
    with start_valkey() as server:
        store = RedisDedup(server.url, ttl_s=60.0, lease_s=30.0)
        try:
            assert await store.claim(KEY) is Claim.CLAIMED
            server.stop()
            await _fails_closed(store)
            # A restarted Redis has lost its keys (no persistence here): only reconnection is checked.
            with start_valkey(server.port):
                await asyncio.wait_for(store.ping(), FAIL_CLOSED_S)
                assert await store.claim(KEY) is Claim.CLAIMED
        finally:
            await store.close()


# The factory.


async def test_open_dedup_builds_each_backend(tmp_path: Path) -> None:
    memory = open_dedup("memory", ttl_s=60.0, lease_s=30.0)
    sqlite_store = open_dedup("sqlite", path=tmp_path / "d.sqlite3", ttl_s=60.0, lease_s=30.0)
    redis_store = open_dedup("redis", url=f"redis://{HOST}:1/0", ttl_s=60.0, lease_s=30.0)
    try:
        assert isinstance(memory, MemoryDedup)
        assert isinstance(sqlite_store, SqliteDedup)
        assert isinstance(redis_store, RedisDedup)
        assert await sqlite_store.claim(KEY) is Claim.CLAIMED
    finally:
        for store in (memory, sqlite_store, redis_store):
            await store.close()


@pytest.mark.parametrize(
    ("backend", "message"),
    [("sqlite", "needs a path"), ("redis", "needs a url"), ("postgres", "unknown dedup backend")],
)
def test_open_dedup_rejects_a_bad_config(backend: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        open_dedup(backend, ttl_s=60.0, lease_s=30.0)


def test_open_dedup_redis_without_the_redis_package_says_which_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in [n for n in sys.modules if n == "redis" or n.startswith("redis.")]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.delitem(sys.modules, "relay.dedup_redis")
    with pytest.raises(ImportError, match=r"webhook-relay\[redis\]"):
        open_dedup("redis", url=f"redis://{HOST}:1/0", ttl_s=60.0, lease_s=30.0)


async def _claim_within(store: DedupStore, key: str, timeout_s: float) -> Claim:
    """Claim until the answer is CLAIMED or timeout_s has passed; return the last answer."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while (answer := await store.claim(key)) is not Claim.CLAIMED and loop.time() < deadline:
        await asyncio.sleep(0.02)
    return answer

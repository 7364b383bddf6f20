"""The Redis dedup store: shared by every Relay host that talks to one Redis (or Valkey).

One string key per dedup key, ``<key_prefix><key>``:

- in flight: ``inflight:<token>`` with a PX expiry of ``lease_s``, so a
  claimant that crashed frees its key when the lease runs out;
- done: ``done`` with a PX expiry of ``ttl_s``, the dedup window.

Redis expires keys itself, so nothing needs purging. ``claim`` is
``SET NX PX`` (atomic on the server); when the key exists, ``GET`` tells
DONE from IN_FLIGHT. ``release`` is a Lua script that deletes the key only
while it still holds this claimant's token: it cannot delete a done key, nor
a claim that another host made after this claimant's lease ran out.

Short socket timeouts and a single retry make a dead or hung Redis answer
:class:`relay.dedup.DedupUnavailable` within about a second, well inside the
ack budget, instead of holding the request.

Claims and marks of concurrent webhooks share round trips (:class:`_Pipeline`):
while one pipeline is out, the commands that arrive wait and go together in the
next, so under load one round trip serves many webhooks, and a lone command
goes at once. Each command keeps its own reply: pipelining changes the cost,
not the protocol.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from relay.dedup import Claim, DedupUnavailable

# Per attempt; with the one retry below, a hung server costs about 1 s in all.
SOCKET_TIMEOUT_S = 0.5

_DONE = b"done"
_INFLIGHT = b"inflight:"

# Deletes the key only if it still holds the caller's in-flight value.
_RELEASE_LUA = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
"""

# SET NX and GET are two commands: the key can expire or be released between
# them. A few rounds settle that; a key that keeps changing is reported in flight.
_CLAIM_ROUNDS = 3

_POLL_FIRST_S = 0.005
_POLL_MAX_S = 0.05


class RedisDedup:
    """A :class:`relay.dedup.DedupStore` in Redis, for several hosts.

    ``lease_s`` must exceed the longest time between a claim and its
    ``mark_done`` or ``release`` (the ack budget plus a spool write).
    ``release`` only frees a claim this store made (it remembers the token
    of each of its open claims). ``mark_done`` is unconditional, as in
    :class:`relay.dedup.MemoryDedup`: it records that the event is durable,
    which is true whoever holds the claim.
    """

    def __init__(
        self, url: str, ttl_s: float, lease_s: float, key_prefix: str = "relay:dedup:"
    ) -> None:
        self._prefix = key_prefix
        self._ttl_ms = max(1, round(ttl_s * 1000))
        self._lease_ms = max(1, round(lease_s * 1000))
        self._tokens: dict[str, bytes] = {}
        # One retry without backoff: it replaces a pooled connection that a
        # Redis restart broke, and a second failure is the answer.
        self._redis = Redis.from_url(
            url,
            socket_timeout=SOCKET_TIMEOUT_S,
            socket_connect_timeout=SOCKET_TIMEOUT_S,
            retry=Retry(NoBackoff(), 1),
        )
        self._release_script = self._redis.register_script(_RELEASE_LUA)
        self._pipeline = _Pipeline(self._redis)

    async def claim(self, key: str) -> Claim:
        name = self._prefix + key
        value = _INFLIGHT + secrets.token_hex(8).encode()
        lease_ms = self._lease_ms
        with _unavailable():
            for _ in range(_CLAIM_ROUNDS):
                if await self._pipeline.run(
                    lambda pipe: pipe.set(name, value, nx=True, px=lease_ms)
                ):
                    self._tokens[key] = value
                    return Claim.CLAIMED
                current = await self._pipeline.run(lambda pipe: pipe.get(name))
                if current == value:
                    # The SET went through but its reply was lost, and the client's
                    # retry of it found our own claim.
                    self._tokens[key] = value
                    return Claim.CLAIMED
                if current == _DONE:
                    return Claim.DONE
                if current is not None:
                    return Claim.IN_FLIGHT
        return Claim.IN_FLIGHT

    async def mark_done(self, key: str) -> None:
        name, ttl_ms = self._prefix + key, self._ttl_ms
        with _unavailable():
            await self._pipeline.run(lambda pipe: pipe.set(name, _DONE, px=ttl_ms))
        self._tokens.pop(key, None)

    async def release(self, key: str) -> None:
        value = self._tokens.get(key)
        if value is None:
            return
        with _unavailable():
            await self._release_script(keys=[self._prefix + key], args=[value])
        self._tokens.pop(key, None)

    async def wait_settled(self, key: str, timeout_s: float) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        delay = _POLL_FIRST_S
        name = self._prefix + key
        while True:
            with _unavailable():
                current = await self._redis.get(name)
            if current is None or current == _DONE:
                return
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            await asyncio.sleep(min(delay, remaining))
            delay = min(delay * 2, _POLL_MAX_S)

    async def ping(self) -> None:
        with _unavailable():
            await self._redis.ping()

    async def close(self) -> None:
        await self._pipeline.finish()
        await self._redis.aclose()


Command = Callable[[Pipeline], Any]


class _Pipeline:
    """Commands of concurrent callers sent together, one pipeline out at a time."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._waiting: list[tuple[Command, asyncio.Future[Any]]] = []
        self._sender: asyncio.Task[None] | None = None

    async def run(self, command: Command) -> Any:
        """The command's reply; the connection's error (a ``RedisError`` or ``OSError``)
        when the pipeline it went in failed."""
        reply: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting.append((command, reply))
        if self._sender is None:
            self._sender = asyncio.create_task(self._send_while_waiting())
        return await reply

    async def finish(self) -> None:
        """Let what was handed over be sent (or fail) before the connection closes."""
        if self._sender is not None:
            await asyncio.gather(self._sender, return_exceptions=True)

    async def _send_while_waiting(self) -> None:
        try:
            while self._waiting:
                batch, self._waiting = self._waiting, []
                pipe = self._redis.pipeline(transaction=False)
                for command, _ in batch:
                    command(pipe)
                try:
                    replies = await pipe.execute(raise_on_error=False)
                except (RedisError, OSError) as exc:
                    replies = [exc] * len(batch)
                except BaseException:
                    # Cancelled (the loop is closing): no caller may wait forever.
                    for _, reply in batch:
                        if not reply.done():
                            reply.set_exception(OSError("the redis dedup store was shut down"))
                    raise
                for (_, reply), answer in zip(batch, replies, strict=True):
                    if reply.done():  # its caller gave up waiting
                        continue
                    if isinstance(answer, Exception):
                        reply.set_exception(answer)
                    else:
                        reply.set_result(answer)
        finally:
            self._sender = None


@contextmanager
def _unavailable() -> Iterator[None]:
    """Turn every failure to get an answer from Redis into DedupUnavailable (fail closed)."""
    try:
        yield
    except (RedisError, OSError) as exc:
        raise DedupUnavailable(f"redis dedup store: {exc}") from exc

"""A process for the spool's crash tests to kill: it reports on stdout what the spool acknowledged.

``python -m tests.spool_writer PATH stream --start N`` runs concurrent appenders
forever; each prints ``appended <seq> <n>`` only after ``append`` returned, and
for even ``n`` marks the entry done and prints ``done <seq>`` only after
``mark_done`` returned. The test kills it with SIGKILL at some point.

``python -m tests.spool_writer PATH die-in-fsync`` appends ``record(0)`` and
kills itself with SIGKILL inside the fsync of that append: the bytes were
written, the append never returned.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import signal
from pathlib import Path

from relay.records import KafkaRecord
from relay.spool import Spool

CONCURRENCY = 8


def record(n: int) -> KafkaRecord:
    return KafkaRecord(
        topic="payments.events",
        key=f"order-{n % 7}".encode(),
        value=b"event-%d|" % n + bytes(range(256)) * (1 + n % 3),
        headers=(("relay_id", str(n).encode()), ("raw", b"\xff\xfe" + bytes([n % 256]))),
    )


def dedup_key(n: int) -> str:
    return f"invoices\x1fevt-{n}"


async def stream(path: Path, start: int) -> None:
    # Small segments, so that the kill also lands around rolls and compaction.
    spool = Spool.open(path, segment_bytes=16 << 10)
    numbers = itertools.count(start)

    async def appender() -> None:
        while True:
            n = next(numbers)
            entry = await spool.append(record(n), dedup_key(n))
            print(f"appended {entry.seq} {n}", flush=True)
            if n % 2 == 0:
                await spool.mark_done([entry.seq])
                print(f"done {entry.seq}", flush=True)

    await asyncio.gather(*(appender() for _ in range(CONCURRENCY)))


async def die_in_fsync(path: Path) -> None:
    armed = False

    def fsync(fd: int) -> None:
        if armed:
            os.kill(os.getpid(), signal.SIGKILL)
        os.fsync(fd)

    spool = Spool.open(path, fsync=fsync)
    armed = True
    await spool.append(record(0), dedup_key(0))
    raise AssertionError("append returned although its fsync killed the process")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("path", type=Path)
    parser.add_argument("mode", choices=["stream", "die-in-fsync"])
    parser.add_argument("--start", type=int, default=0)
    args = parser.parse_args()
    if args.mode == "stream":
        asyncio.run(stream(args.path, args.start))
    else:
        asyncio.run(die_in_fsync(args.path))


if __name__ == "__main__":
    main()

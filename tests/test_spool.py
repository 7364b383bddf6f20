"""The durable spool on a real filesystem: round trips, group commit, crashes, compaction, failures."""

from __future__ import annotations

import asyncio
import errno
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from relay.records import KafkaRecord
from relay.spool import Spool, SpoolEntry, SpoolFull, SpoolUnavailable
from tests.spool_writer import dedup_key, record

ROOT = Path(__file__).resolve().parents[1]

OpenSpool = Callable[..., Spool]


class FsyncSpy:
    """Counts fsync calls; raises the queued errnos on the next calls instead of syncing."""

    def __init__(self) -> None:
        self.calls = 0
        self.failures: list[int] = []

    def __call__(self, fd: int) -> None:
        self.calls += 1
        if self.failures:
            code = self.failures.pop(0)
            raise OSError(code, os.strerror(code))
        os.fsync(fd)


@pytest.fixture
async def open_spool(tmp_path: Path) -> AsyncIterator[OpenSpool]:
    """``open_spool(**kwargs)`` opens ``tmp_path / "spool"``; whatever is left open is closed after."""
    opened: list[Spool] = []

    def factory(**kwargs: object) -> Spool:
        spool = Spool.open(tmp_path / "spool", **kwargs)  # type: ignore[arg-type]
        opened.append(spool)
        return spool

    yield factory
    for spool in opened:
        await spool.close()


def segment_ids(path: Path) -> list[int]:
    return sorted(int(p.stem.removeprefix("segment-")) for p in path.glob("segment-*.log"))


def segment_bytes_on_disk(path: Path) -> int:
    return sum(p.stat().st_size for p in path.glob("segment-*.log"))


def padded(n: int, size: int = 600) -> KafkaRecord:
    return KafkaRecord("payments.events", b"k%d" % n, bytes([n % 256]) * size, ())


# -- round trip --------------------------------------------------------------------------------


ODD_RECORDS = [
    KafkaRecord(
        topic="payments.events",
        key=b"invoices:ord-1",
        value=b'{"id":"evt-1","amount":"10.00"}',
        headers=(
            ("content-type", b"application/cloudevents+json"),
            ("raw-signature", b"\xff\x00\xfe\x80\xc3\x28"),  # not UTF-8
            ("empty", b""),
            ("content-type", b"duplicate names keep their order"),
        ),
    ),
    KafkaRecord(topic="t", key=b"", value=b"", headers=()),
    KafkaRecord(
        topic="événements.\u2603",
        key=b"\x00\x01\x02\xff",
        value=bytes(range(256)) * 40,
        headers=(("n\u00e4me-\ud800", b"\x00"),),  # a lone surrogate survives too
    ),
]


async def test_append_pending_mark_done_round_trip_is_byte_exact(open_spool: OpenSpool) -> None:
    spool = open_spool()
    keys = ["invoices\x1fevt-1", None, "gateway\x1f\u00e9v\u00e9nement"]
    entries = [await spool.append(r, k) for r, k in zip(ODD_RECORDS, keys, strict=True)]

    assert [e.seq for e in entries] == [1, 2, 3]
    assert [(e.record, e.dedup_key) for e in entries] == list(zip(ODD_RECORDS, keys, strict=True))
    assert spool.pending() == entries
    await spool.close()

    reopened = open_spool()
    assert reopened.pending() == entries  # appended_at included, float exact
    await reopened.mark_done([entries[0].seq, entries[2].seq])
    assert reopened.pending() == [entries[1]]
    await reopened.close()

    assert open_spool().pending() == [entries[1]]


async def test_pending_limit_depth_and_oldest_age(open_spool: OpenSpool) -> None:
    spool = open_spool()
    assert spool.pending() == []
    assert not spool.contains_pending()
    assert spool.depth == 0
    assert spool.oldest_age_s(now=1e10) is None

    entries = [await spool.append(record(n), dedup_key(n)) for n in range(5)]

    assert spool.pending(limit=2) == entries[:2]
    assert spool.contains_pending()
    assert spool.depth == 5
    assert spool.oldest_age_s(now=entries[0].appended_at + 7.5) == 7.5
    await spool.mark_done([entries[0].seq])
    assert spool.oldest_age_s(now=entries[1].appended_at + 2.0) == 2.0
    assert spool.depth == 4


async def test_marking_unknown_or_done_seqs_is_a_no_op_without_fsync(
    open_spool: OpenSpool,
) -> None:
    spy = FsyncSpy()
    spool = open_spool(fsync=spy)
    entry = await spool.append(record(1), dedup_key(1))
    await spool.mark_done([entry.seq])
    calls = spy.calls

    await spool.mark_done([entry.seq, 999, -1])
    await spool.mark_done([])

    assert spy.calls == calls
    assert spool.pending() == []


# -- group commit ------------------------------------------------------------------------------


async def test_concurrent_appends_and_marks_share_fsyncs(open_spool: OpenSpool) -> None:
    spy = FsyncSpy()
    spool = open_spool(fsync=spy)
    calls_after_open = spy.calls

    entries = await asyncio.gather(*(spool.append(record(n), dedup_key(n)) for n in range(200)))

    append_fsyncs = spy.calls - calls_after_open
    assert 1 <= append_fsyncs <= 10
    assert sorted(e.seq for e in entries) == list(range(1, 201))
    assert [e.seq for e in spool.pending()] == list(range(1, 201))

    await asyncio.gather(*(spool.mark_done([e.seq]) for e in entries))

    assert 1 <= spy.calls - calls_after_open - append_fsyncs <= 10
    assert spool.depth == 0


async def test_close_flushes_appends_already_accepted(open_spool: OpenSpool) -> None:
    spool = open_spool()
    tasks = [asyncio.create_task(spool.append(record(n), dedup_key(n))) for n in range(20)]
    await asyncio.sleep(0)  # every task is now waiting on the disk

    await spool.close()

    entries = [task.result() for task in tasks]
    assert open_spool().pending() == entries


# -- restarts ----------------------------------------------------------------------------------


async def test_reopen_keeps_pending_done_and_seq_continuity(open_spool: OpenSpool) -> None:
    spool = open_spool()
    entries = [await spool.append(record(n), dedup_key(n)) for n in range(5)]
    await spool.mark_done([entries[1].seq, entries[3].seq])
    await spool.close()

    reopened = open_spool()
    assert reopened.pending() == [entries[0], entries[2], entries[4]]
    assert (await reopened.append(record(5), dedup_key(5))).seq == 6


async def test_seqs_continue_after_every_entry_was_compacted_away(
    open_spool: OpenSpool, tmp_path: Path
) -> None:
    spool = open_spool(segment_bytes=1)  # every batch rolls a new segment
    entries = [await spool.append(record(n), dedup_key(n)) for n in range(4)]
    await spool.mark_done(e.seq for e in entries)
    await spool.close()
    # Only the active segment is left, and it holds nothing but a done marker.
    assert len(segment_ids(tmp_path / "spool")) == 1

    reopened = open_spool()
    assert reopened.pending() == []
    assert (await reopened.append(record(9), dedup_key(9))).seq == 5


# -- kill -9 ------------------------------------------------------------------------------------


def run_writer_until_killed(path: Path, start: int, appended_before_kill: int) -> list[str]:
    """Run the stream writer, SIGKILL it mid-stream; return every complete line it printed."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.spool_writer", str(path), "stream", "--start", str(start)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    lines: list[str] = []
    appended = 0
    while appended < appended_before_kill:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        appended += line.startswith("appended ")
    proc.send_signal(signal.SIGKILL)
    # Read through proc.stdout, not communicate(): that reads the pipe itself, past the
    # text readline() already buffered, and so began mid-line (a torn "\n" line).
    assert proc.stderr is not None
    rest, stderr = proc.stdout.read(), proc.stderr.read()
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, stderr
    assert appended == appended_before_kill, stderr
    return [line for line in lines + rest.splitlines(keepends=True) if line.endswith("\n")]


async def test_kill_9_loses_no_acknowledged_append_or_mark(tmp_path: Path) -> None:
    path = tmp_path / "spool"
    acknowledged: dict[int, int] = {}  # seq -> n, printed after append returned
    done: set[int] = set()  # printed after mark_done returned
    for round_ in range(3):
        lines = run_writer_until_killed(path, start=round_ * 1_000_000, appended_before_kill=300)
        for line in lines:
            words = line.split()
            if words[0] == "appended":
                seq, n = int(words[1]), int(words[2])
                assert seq not in acknowledged, "a seq was reused"
                acknowledged[seq] = n
            else:
                done.add(int(words[1]))

        spool = Spool.open(path)  # a corrupt frame anywhere but the torn tail would raise here
        try:
            pending = spool.pending()
            by_seq = {e.seq: e for e in pending}
            assert [e.seq for e in pending] == sorted(by_seq)
            for seq, n in acknowledged.items():
                if seq in done:
                    assert seq not in by_seq
                elif seq in by_seq:
                    assert (by_seq[seq].record, by_seq[seq].dedup_key) == (record(n), dedup_key(n))
                else:
                    assert n % 2 == 0, f"acknowledged seq {seq} lost"  # its mark was in flight
            # Entries whose append never returned may be there too, but only whole ones.
            for entry in pending:
                n = int(entry.record.value.split(b"|")[0].removeprefix(b"event-"))
                assert (entry.record, entry.dedup_key) == (record(n), dedup_key(n))
        finally:
            await spool.close()


async def test_append_killed_inside_its_fsync_is_still_published(tmp_path: Path) -> None:
    # The documented rule: an append that never returned (or returned an error) was
    # never acknowledged, but if its bytes survived it is pending and gets published.
    path = tmp_path / "spool"
    proc = subprocess.run(
        [sys.executable, "-m", "tests.spool_writer", str(path), "die-in-fsync"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr

    spool = Spool.open(path)
    try:
        [entry] = spool.pending()
        assert (entry.seq, entry.record, entry.dedup_key) == (1, record(0), dedup_key(0))
    finally:
        await spool.close()


# -- torn tails and corruption -----------------------------------------------------------------


def cut_inside_frame_header(data: bytes, last_start: int) -> bytes:
    return data[: last_start + 5]


def cut_inside_payload(data: bytes, last_start: int) -> bytes:
    return data[:-1]


def flip_a_payload_byte(data: bytes, last_start: int) -> bytes:
    return data[:-10] + bytes([data[-10] ^ 0x01]) + data[-9:]


def zero_fill_after(data: bytes, last_start: int) -> bytes:
    return data + bytes(4096)  # what some filesystems leave after a crash that grew the file


def garbage_after(data: bytes, last_start: int) -> bytes:
    return data + b"\x00\x00\x00\x07garbage that is not a frame"


@pytest.mark.parametrize(
    ("damage", "survivors"),
    [
        (cut_inside_frame_header, 2),
        (cut_inside_payload, 2),
        (flip_a_payload_byte, 2),
        (zero_fill_after, 3),
        (garbage_after, 3),
    ],
)
async def test_torn_tail_is_cut_off_at_the_last_whole_frame(
    open_spool: OpenSpool,
    tmp_path: Path,
    damage: Callable[[bytes, int], bytes],
    survivors: int,
) -> None:
    spool = open_spool()
    entries = [await spool.append(record(n), dedup_key(n)) for n in range(2)]
    last_start = spool.bytes_used
    entries.append(await spool.append(record(2), dedup_key(2)))
    whole = spool.bytes_used
    await spool.close()
    [segment] = (tmp_path / "spool").glob("segment-*.log")
    segment.write_bytes(damage(segment.read_bytes(), last_start))

    reopened = open_spool()

    assert reopened.pending() == entries[:survivors]
    assert segment.stat().st_size == (last_start if survivors == 2 else whole)
    later = await reopened.append(record(3), dedup_key(3))
    await reopened.close()
    assert open_spool().pending() == [*entries[:survivors], later]


async def test_unfinished_new_segment_is_removed(open_spool: OpenSpool, tmp_path: Path) -> None:
    path = tmp_path / "spool"
    spool = open_spool()
    entry = await spool.append(record(1), dedup_key(1))
    await spool.close()
    first = (path / "segment-0000000001.log").read_bytes()
    (path / "segment-0000000002.log").write_bytes(first[:7])  # a torn header

    reopened = open_spool()

    assert reopened.pending() == [entry]
    assert segment_ids(path) == [1]
    assert (await reopened.append(record(2), dedup_key(2))).seq == 2


async def test_corruption_before_the_tail_refuses_to_open(
    open_spool: OpenSpool, tmp_path: Path
) -> None:
    path = tmp_path / "spool"
    spool = open_spool(segment_bytes=1)
    for n in range(3):
        await spool.append(record(n), dedup_key(n))
    await spool.close()
    first = path / "segment-0000000001.log"
    data = bytearray(first.read_bytes())
    data[-10] ^= 0x01
    first.write_bytes(bytes(data))

    with pytest.raises(SpoolUnavailable, match="corrupt"):
        Spool.open(path)


# -- compaction ----------------------------------------------------------------------------------


async def test_done_segments_are_deleted_and_bytes_used_drops(
    open_spool: OpenSpool, tmp_path: Path
) -> None:
    path = tmp_path / "spool"
    spool = open_spool(segment_bytes=4096)
    entries = [await spool.append(padded(n), None) for n in range(40)]
    before = spool.bytes_used
    assert len(segment_ids(path)) > 4
    assert before == segment_bytes_on_disk(path)

    await spool.mark_done(e.seq for e in entries)

    assert len(segment_ids(path)) == 1
    assert spool.bytes_used == segment_bytes_on_disk(path) < 4096 < before
    await spool.close()
    assert open_spool().pending() == []


async def test_a_done_marker_outlives_the_segment_of_its_entry(
    open_spool: OpenSpool, tmp_path: Path
) -> None:
    # Deleting segment 3 (no entries, only the marker for e1) while segment 1
    # still exists would bring e1 back after a restart.
    path = tmp_path / "spool"
    spool = open_spool(segment_bytes=1)  # every batch after the first rolls a segment
    e1, e1b = await asyncio.gather(spool.append(record(1), None), spool.append(record(2), None))
    e2 = await spool.append(record(3), None)  # segment 2
    await spool.mark_done([e1.seq])  # segment 3
    e3 = await spool.append(record(4), None)  # segment 4
    await spool.mark_done([e2.seq])  # segment 5; segment 2 goes
    assert segment_ids(path) == [1, 3, 4, 5]
    await spool.close()

    reopened = open_spool(segment_bytes=1)
    assert reopened.pending() == [e1b, e3]
    await reopened.mark_done([e1b.seq])  # segment 6; segments 1, 3 and 5 go

    assert segment_ids(path) == [4, 6]
    await reopened.close()
    assert open_spool().pending() == [e3]


# -- full, unavailable, failures ---------------------------------------------------------------


async def test_spool_full_writes_nothing_and_clears_once_drained(
    open_spool: OpenSpool, tmp_path: Path
) -> None:
    path = tmp_path / "spool"
    spool = open_spool(max_bytes=8192)
    accepted: list[SpoolEntry] = []
    with pytest.raises(SpoolFull):
        for n in range(100):
            accepted.append(await spool.append(padded(n), None))
    on_disk = segment_bytes_on_disk(path)
    assert 4 < len(accepted) < 100
    assert spool.bytes_used == on_disk <= 8192

    with pytest.raises(SpoolFull):
        await spool.append(padded(100), None)
    assert segment_bytes_on_disk(path) == on_disk
    assert spool.pending() == accepted

    await spool.mark_done(e.seq for e in accepted)
    await spool.append(padded(101), None)


async def test_a_path_that_is_a_file_is_unavailable(tmp_path: Path) -> None:
    (tmp_path / "file").write_bytes(b"")
    with pytest.raises(SpoolUnavailable):
        Spool.open(tmp_path / "file")
    with pytest.raises(SpoolUnavailable):
        Spool.open(tmp_path / "file" / "spool")


async def test_second_open_of_a_locked_spool_is_unavailable(open_spool: OpenSpool) -> None:
    first = open_spool()
    with pytest.raises(SpoolUnavailable, match=f"locked by another process \\(pid {os.getpid()}"):
        open_spool()
    await first.close()
    open_spool()


async def test_closed_spool_refuses_appends_and_marks(open_spool: OpenSpool) -> None:
    spool = open_spool()
    entry = await spool.append(record(1), None)
    await spool.close()
    await spool.close()

    with pytest.raises(SpoolUnavailable, match="closed"):
        await spool.append(record(2), None)
    with pytest.raises(SpoolUnavailable, match="closed"):
        await spool.mark_done([entry.seq])
    with pytest.raises(SpoolUnavailable, match="closed"):
        spool.check_writable()


async def test_wiped_directory_is_not_writable(open_spool: OpenSpool, tmp_path: Path) -> None:
    spool = open_spool()
    spool.check_writable()
    await spool.append(record(1), None)

    shutil.rmtree(tmp_path / "spool")

    with pytest.raises(SpoolUnavailable, match="not writable"):
        spool.check_writable()
    # The active segment is gone: an fsync'd write into it would vanish at close.
    with pytest.raises(SpoolUnavailable, match="deleted"):
        await spool.append(record(2), None)


async def test_failed_fsync_fails_the_whole_batch_and_rolls_it_back(
    open_spool: OpenSpool, tmp_path: Path
) -> None:
    spy = FsyncSpy()
    spool = open_spool(fsync=spy)
    kept = await spool.append(record(0), dedup_key(0))
    size = spool.bytes_used

    spy.failures = [errno.EIO]
    results = await asyncio.gather(
        *(spool.append(record(n), dedup_key(n)) for n in range(1, 6)), return_exceptions=True
    )

    assert all(isinstance(r, SpoolUnavailable) for r in results), results
    assert spool.pending() == [kept]
    assert spool.bytes_used == segment_bytes_on_disk(tmp_path / "spool") == size
    later = await spool.append(record(6), dedup_key(6))  # the rollback worked: still usable
    await spool.close()
    assert open_spool().pending() == [kept, later]


async def test_failed_segment_roll_removes_the_new_segment(
    open_spool: OpenSpool, tmp_path: Path
) -> None:
    path = tmp_path / "spool"
    spy = FsyncSpy()
    spool = open_spool(segment_bytes=1, fsync=spy)
    kept = await spool.append(record(0), None)

    spy.failures = [errno.ENOSPC]
    with pytest.raises(SpoolUnavailable, match="No space left"):
        await spool.append(record(1), None)

    assert segment_ids(path) == [1]
    assert spool.pending() == [kept]
    later = await spool.append(record(2), None)
    assert segment_ids(path) == [1, 2]
    await spool.close()
    assert open_spool().pending() == [kept, later]


async def test_spool_refuses_writes_when_a_failed_batch_cannot_be_rolled_back(
    open_spool: OpenSpool,
) -> None:
    spy = FsyncSpy()
    spool = open_spool(fsync=spy)
    kept = await spool.append(record(0), None)

    spy.failures = [errno.EIO, errno.EIO]  # the batch's fsync, then the rollback's
    with pytest.raises(SpoolUnavailable, match="Input/output error"):
        await spool.append(record(1), None)

    with pytest.raises(SpoolUnavailable, match="reopen it"):
        await spool.append(record(2), None)
    with pytest.raises(SpoolUnavailable, match="reopen it"):
        spool.check_writable()
    await spool.close()
    # The truncate itself went through, only its fsync failed: the errored append is gone.
    assert open_spool().pending() == [kept]

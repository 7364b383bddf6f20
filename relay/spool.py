"""The local durable spool: where an event becomes durable when Kafka cannot take it in time.

The delivery stage appends a :class:`~relay.records.KafkaRecord` here when the
broker does not acknowledge within the provider's ack budget, and answers the
provider once :meth:`Spool.append` returns. A background drainer publishes
:meth:`Spool.pending` entries in append order and then calls
:meth:`Spool.mark_done`. This module owns the files under the spool directory
and nothing else: it must not import aiokafka, aiohttp or the dedup stores.

On disk: a small write-ahead log
--------------------------------
::

    <path>/lock                       flock(LOCK_EX) by the owning process; holds its pid
    <path>/.writable-probe            created and removed again by check_writable()
    <path>/segment-0000000001.log     oldest live segment
    <path>/segment-0000000002.log     ...
    <path>/segment-000000000N.log     the active segment: the only one written to

Every segment is a sequence of frames (integers big-endian)::

    +-----------+------------+---------+------------------+
    | crc32 u32 | length u32 | type u8 | payload (length) |   crc32 covers length, type, payload
    +-----------+------------+---------+------------------+

    type H  segment header, always the first frame:
            magic "RELAYSPL" | version u16 | next_seq u64   (every seq in use is below next_seq)
    type E  entry:
            seq u64 | appended_at f64 | has_dedup u8 | [dedup_key] | topic | key | value
            | (header name | header value) * n, up to the end of the payload
            where each of these fields is  length u32 | bytes   (str as UTF-8, surrogatepass)
    type D  done marker:  seq u64 * (length / 8)

Durability rules
----------------
* ``append`` and ``mark_done`` return only after their frames are written and
  fsync'd. Calls issued while a write+fsync is running are written together by
  the next one (group commit). All file I/O runs on one dedicated thread, in
  order; the event loop only encodes frames and keeps the in-memory index.
* A new segment is fsync'd, and then its directory, before any of its frames
  is reported durable, so a crash never loses a segment's name.
* Recovery (``Spool.open``) replays every segment. The last segment may end in
  a torn frame (a crash during a write that was never acknowledged): it is cut
  off at the first frame that is short or fails its CRC. A bad frame anywhere
  else is corruption of acknowledged data and refuses to open
  (:class:`SpoolUnavailable`), because skipping it would silently lose events.
* A failed write or fsync (ENOSPC, EIO) fails every call in that batch with
  :class:`SpoolUnavailable` and truncates the file back to the last durable
  offset. If that rollback fails too the spool refuses all further writes
  until it is reopened. An errored append was never acknowledged, but it may
  still be on disk (a crash before the rollback, or a rollback that could not
  be made durable): recovery then treats it as pending and it is published.
  Delivery is at least once; consumers deduplicate on the event id (``relay_id`` header).
* A segment is deleted once it is not active, all its entries are done, and
  every segment holding entries that its done markers refer to is already
  gone; otherwise deleting it would bring those entries back on the next
  recovery. Deletions are made durable (directory fsync) one at a time, in
  segment order, for the same reason.
* Sequence numbers grow across restarts: the header of every segment records
  the next seq, and the active segment is never deleted.

Space: ``max_bytes`` bounds the segment files; an entry that would cross it is
refused (:class:`SpoolFull`) before anything is written. Done markers and
segment headers are never refused, so draining always frees space. Pending
entries are also held in memory (webhook events are small), which is what
makes ``pending()`` free of I/O.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import itertools
import logging
import os
import re
import struct
import time
import zlib
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from relay.records import KafkaRecord

log = logging.getLogger(__name__)

_T = TypeVar("_T")

_FRAME = struct.Struct(">IIB")  # crc32, payload length, type
_LENGTH_AND_TYPE = struct.Struct(">IB")
_HEADER, _ENTRY, _DONE = b"H"[0], b"E"[0], b"D"[0]
_MAGIC = b"RELAYSPL"
_VERSION = 1
_HEADER_PAYLOAD = struct.Struct(">8sHQ")
_HEADER_FRAME_LEN = _FRAME.size + _HEADER_PAYLOAD.size
_ENTRY_PREFIX = struct.Struct(">QdB")
_U32 = struct.Struct(">I")
_SEGMENT_NAME = re.compile(r"segment-\d{10}\.log")

# One batch is written with one pwrite; bounding it keeps a burst of large
# entries from building one huge buffer and lets later callers in sooner.
_MAX_BATCH_BYTES = 8 << 20


class SpoolFull(Exception):
    """Appending would take the spool over ``max_bytes``; nothing was written."""


class SpoolUnavailable(Exception):
    """The spool cannot make anything durable now (disk error, locked, corrupt or closed)."""


@dataclass(frozen=True, slots=True)
class SpoolEntry:
    seq: int
    record: KafkaRecord
    dedup_key: str | None
    appended_at: float


@dataclass(slots=True, eq=False)
class _Segment:
    id: int
    path: Path
    size: int
    live: int = 0  # entries not yet done
    # Ids of other segments whose entries this segment's done markers refer to.
    marks_into: set[int] = field(default_factory=set)


@dataclass(slots=True, eq=False)
class _Op:
    """One waiting ``append`` (``entry`` and ``frame`` set) or ``mark_done`` (``seqs`` set)."""

    future: asyncio.Future[Any]
    entry: SpoolEntry | None = None
    frame: bytes = b""
    seqs: tuple[int, ...] = ()


class Spool:
    """An append-only spool of Kafka records with durable done markers; one process per path."""

    def __init__(
        self,
        path: Path,
        lock_fd: int,
        dir_fd: int,
        max_bytes: int,
        segment_bytes: int,
        fsync: Callable[[int], None],
    ) -> None:
        self._path = path
        self._lock_fd = lock_fd
        self._dir_fd = dir_fd
        self._max_bytes = max_bytes
        self._segment_bytes = segment_bytes
        self._fsync = fsync
        self._segments: dict[int, _Segment] = {}  # ascending ids; the last one is active
        self._fd = -1  # the active segment, opened for writing
        self._pending: dict[int, tuple[SpoolEntry, _Segment]] = {}  # ascending seqs
        self._next_seq = 1
        self._queue: list[_Op] = []
        self._queued_bytes = 0  # entry frames accepted but not yet durable
        self._flusher: asyncio.Task[None] | None = None
        self._broken: str | None = None
        self._closed = False
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="relay-spool")

    @classmethod
    def open(
        cls,
        path: Path,
        *,
        max_bytes: int = 1 << 30,
        segment_bytes: int = 64 << 20,
        fsync: Callable[[int], None] = os.fsync,
    ) -> Spool:
        """Lock ``path`` and recover its segments. Blocking: call it at startup.

        ``segment_bytes`` is capped at a quarter of ``max_bytes``: done entries
        wait in the active segment until it rolls, and they must never be what
        holds the spool full. ``fsync`` is a seam for tests.
        """
        path = Path(path)
        try:
            path.mkdir(parents=True, exist_ok=True)
            lock_fd = os.open(path / "lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise SpoolUnavailable(f"cannot open spool directory {path}: {exc}") from exc
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.ftruncate(lock_fd, 0)
            os.pwrite(lock_fd, f"{os.getpid()}\n".encode(), 0)
            dir_fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except BlockingIOError as exc:
            owner = os.pread(lock_fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(lock_fd)
            raise SpoolUnavailable(
                f"spool directory {path} is locked by another process (pid {owner}); "
                "every Relay process needs its own spool path"
            ) from exc
        except OSError as exc:
            os.close(lock_fd)
            raise SpoolUnavailable(f"cannot open spool directory {path}: {exc}") from exc
        spool = cls(path, lock_fd, dir_fd, max_bytes, min(segment_bytes, max_bytes // 4), fsync)
        try:
            spool._recover()
        except OSError as exc:
            spool._release()
            raise SpoolUnavailable(f"cannot recover spool {path}: {exc}") from exc
        except SpoolUnavailable:
            spool._release()
            raise
        return spool

    # -- the API used by delivery and the drainer ------------------------------------------

    async def append(self, record: KafkaRecord, dedup_key: str | None) -> SpoolEntry:
        """Append ``record``; returns once it is fsync'd.

        If the caller is cancelled while waiting, the entry is still written and
        will be published: only the acknowledgement is lost.
        """
        self._check_open()
        entry = SpoolEntry(self._next_seq, record, dedup_key, time.time())
        frame = _frame(_ENTRY, _encode_entry(entry))
        if self.bytes_used + self._queued_bytes + len(frame) > self._max_bytes:
            raise SpoolFull(
                f"spool {self._path} holds {self.bytes_used} of {self._max_bytes} bytes"
            )
        self._next_seq += 1
        self._queued_bytes += len(frame)
        future: asyncio.Future[SpoolEntry] = asyncio.get_running_loop().create_future()
        self._submit(_Op(future, entry=entry, frame=frame))
        return await future

    async def mark_done(self, seqs: Iterable[int]) -> None:
        """Durably mark ``seqs`` done; unknown and already done seqs are ignored.

        Returns after the markers are fsync'd and the segments they emptied are deleted.
        """
        self._check_open()
        live = tuple(seq for seq in dict.fromkeys(seqs) if seq in self._pending)
        if not live:
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._submit(_Op(future, seqs=live))
        await future

    def pending(self, limit: int | None = None) -> list[SpoolEntry]:
        """Entries not yet done, in append order."""
        return [entry for entry, _ in itertools.islice(self._pending.values(), limit)]

    def contains_pending(self) -> bool:
        return bool(self._pending)

    @property
    def depth(self) -> int:
        return len(self._pending)

    @property
    def bytes_used(self) -> int:
        """Bytes of the segment files on disk, done entries included until compaction."""
        return sum(segment.size for segment in self._segments.values())

    def oldest_age_s(self, now: float) -> float | None:
        oldest = next(iter(self._pending.values()), None)
        return None if oldest is None else now - oldest[0].appended_at

    def check_writable(self) -> None:
        """Raise :class:`SpoolUnavailable` unless a file can be created in the directory now."""
        self._check_open()
        probe = self._path / ".writable-probe"
        try:
            fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
            try:
                os.write(fd, b"\n")
            finally:
                os.close(fd)
            os.unlink(probe)
        except OSError as exc:
            raise SpoolUnavailable(f"spool directory {self._path} is not writable: {exc}") from exc

    async def close(self) -> None:
        """Let accepted appends and marks reach the disk, then release the lock."""
        if self._closed:
            return
        self._closed = True
        if self._flusher is not None:
            await self._flusher
        self._release()

    # -- group commit -----------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise SpoolUnavailable(f"spool {self._path} is closed")
        if self._broken is not None:
            raise SpoolUnavailable(self._broken)

    def _submit(self, op: _Op) -> None:
        self._queue.append(op)
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(self._flush())

    async def _flush(self) -> None:
        """Write what is queued, one batch per fsync, until the queue is empty.

        Everything queued while a batch is on the disk thread goes into the next
        batch: that is the group commit.
        """
        while self._queue:
            batch = self._take_batch()
            entries = [op.entry for op in batch if op.entry is not None]
            marked = [seq for op in batch for seq in op.seqs]
            data = b"".join(op.frame for op in batch)
            if marked:
                data += _frame(_DONE, struct.pack(f">{len(marked)}Q", *marked))
            self._queued_bytes -= sum(len(op.frame) for op in batch)
            try:
                segment = await self._commit(data)
            except SpoolUnavailable as exc:
                for op in batch:
                    if not op.future.done():
                        error = SpoolUnavailable(str(exc))
                        error.__cause__ = exc.__cause__
                        op.future.set_exception(error)
                continue
            for entry in entries:
                self._pending[entry.seq] = (entry, segment)
                segment.live += 1
            for seq in marked:
                self._apply_done(seq, segment)
            # Before answering, so that bytes_used has dropped when mark_done returns.
            await self._compact()
            # A cancelled caller's future is already done; its entry is on disk all the same.
            for op in batch:
                if not op.future.done():
                    op.future.set_result(op.entry)

    def _take_batch(self) -> list[_Op]:
        size = count = 0
        for op in self._queue:
            if count and size + len(op.frame) > _MAX_BATCH_BYTES:
                break
            size += len(op.frame)
            count += 1
        batch = self._queue[:count]
        del self._queue[:count]
        return batch

    async def _commit(self, data: bytes) -> _Segment:
        """Write and fsync ``data``; return the segment it landed in, or raise SpoolUnavailable."""
        if self._broken is not None:
            raise SpoolUnavailable(self._broken)
        active = self._active
        if active.size > _HEADER_FRAME_LEN and active.size + len(data) > self._segment_bytes:
            segment_id = active.id + 1
            segment = _Segment(segment_id, self._path / _segment_name(segment_id), 0)
            header = _header_frame(self._next_seq)
            try:
                fd = await self._on_disk_thread(self._create_segment, segment.path, header + data)
            except Exception as exc:
                restored = await self._on_disk_thread(self._remove_new_segment, segment.path)
                raise self._write_failed(exc, restored) from exc
            # The old active segment is complete and fsync'd; it now only waits for compaction.
            # Linux frees the descriptor even when close() reports an error.
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = fd
            segment.size = len(header) + len(data)
            self._segments[segment_id] = segment
            return segment
        try:
            await self._on_disk_thread(self._write_and_sync, self._fd, data, active.size)
        except Exception as exc:
            restored = await self._on_disk_thread(self._truncate_back, self._fd, active.size)
            raise self._write_failed(exc, restored) from exc
        active.size += len(data)
        return active

    def _write_failed(self, exc: Exception, restored: bool) -> SpoolUnavailable:
        if not restored:
            # The file may now end in a torn frame. Recovery stops at the first bad
            # frame, so anything acknowledged after it would be cut off with it.
            self._broken = (
                f"spool {self._path} refuses writes after a failed write could not be rolled "
                f"back ({exc}); reopen it to recover"
            )
            log.error("%s", self._broken)
        return SpoolUnavailable(f"spool {self._path} write failed: {exc}")

    def _apply_done(self, seq: int, marker_segment: _Segment) -> None:
        found = self._pending.pop(seq, None)
        if found is None:
            return
        owner = found[1]
        owner.live -= 1
        if owner is not marker_segment:
            marker_segment.marks_into.add(owner.id)

    async def _compact(self) -> None:
        doomed = self._deletable()
        if doomed:
            removed = await self._on_disk_thread(self._unlink_segments, doomed)
            for segment in doomed[:removed]:
                del self._segments[segment.id]

    def _deletable(self) -> list[_Segment]:
        """Inactive segments with no pending entries whose markers point only at deleted ones.

        Markers always sit in the same or a later segment than their entries,
        so one pass in ascending order sees every dependency decided.
        """
        doomed: list[_Segment] = []
        gone: set[int] = set()
        for segment in list(self._segments.values())[:-1]:
            if segment.live == 0 and all(
                other not in self._segments or other in gone for other in segment.marks_into
            ):
                doomed.append(segment)
                gone.add(segment.id)
        return doomed

    @property
    def _active(self) -> _Segment:
        return next(reversed(self._segments.values()))

    async def _on_disk_thread(self, fn: Callable[..., _T], *args: Any) -> _T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    # -- blocking file operations (disk thread, or open()) ----------------------------------

    def _write_and_sync(self, fd: int, data: bytes, offset: int) -> None:
        # A segment unlinked under us (the directory was wiped) would take fsync'd
        # frames with it on close: those must not be reported durable.
        if os.fstat(fd).st_nlink == 0:
            raise FileNotFoundError(f"the active segment of {self._path} was deleted")
        _pwrite_all(fd, data, offset)
        self._fsync(fd)

    def _truncate_back(self, fd: int, size: int) -> bool:
        try:
            os.ftruncate(fd, size)
            self._fsync(fd)
        except OSError:
            log.exception("spool %s: cannot truncate the active segment back", self._path)
            return False
        return True

    def _create_segment(self, path: Path, data: bytes) -> int:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        try:
            _pwrite_all(fd, data, 0)
            self._fsync(fd)
            self._fsync(self._dir_fd)
        except BaseException:
            os.close(fd)
            raise
        return fd

    def _remove_new_segment(self, path: Path) -> bool:
        try:
            path.unlink(missing_ok=True)
            self._fsync(self._dir_fd)
        except OSError:
            log.exception("spool %s: cannot remove the failed segment %s", self._path, path)
            return False
        return True

    def _unlink_segments(self, segments: list[_Segment]) -> int:
        """Delete ``segments`` in order, each durably before the next; return how many went."""
        for count, segment in enumerate(segments):
            try:
                segment.path.unlink()
                self._fsync(self._dir_fd)
            except OSError:
                log.exception("spool %s: cannot delete %s", self._path, segment.path)
                return count
        return len(segments)

    def _recover(self) -> None:
        names = sorted(n for n in os.listdir(self._path) if _SEGMENT_NAME.fullmatch(n))
        for index, name in enumerate(names):
            segment_id = int(name.removeprefix("segment-").removesuffix(".log"))
            self._recover_segment(segment_id, last=index == len(names) - 1)
        if not self._segments:
            path = self._path / _segment_name(1)
            header = _header_frame(self._next_seq)
            self._fd = self._create_segment(path, header)
            self._segments[1] = _Segment(1, path, len(header))
        else:
            self._fd = os.open(self._active.path, os.O_WRONLY | os.O_CLOEXEC)
        doomed = self._deletable()
        for segment in doomed[: self._unlink_segments(doomed)]:
            del self._segments[segment.id]

    def _recover_segment(self, segment_id: int, *, last: bool) -> None:
        path = self._path / _segment_name(segment_id)
        data = path.read_bytes()
        frames, good = _scan(data)
        if good < len(data) and not last:
            raise SpoolUnavailable(f"spool segment {path} is corrupt at offset {good}")
        if not frames or frames[0][0] != _HEADER:
            if not last:
                raise SpoolUnavailable(f"spool segment {path} has no valid header")
            # A roll interrupted before its first fsync: nothing in it was acknowledged.
            log.warning("spool: removing %s, a segment whose creation did not finish", path)
            path.unlink()
            self._fsync(self._dir_fd)
            return
        segment = _Segment(segment_id, path, good)
        self._segments[segment_id] = segment
        try:
            self._next_seq = max(self._next_seq, _decode_header(frames[0][1]))
            for kind, payload in frames[1:]:
                if kind == _ENTRY:
                    entry = _decode_entry(payload)
                    self._pending[entry.seq] = (entry, segment)
                    segment.live += 1
                    self._next_seq = max(self._next_seq, entry.seq + 1)
                elif kind == _DONE:
                    for (seq,) in struct.iter_unpack(">Q", payload):
                        self._apply_done(seq, segment)
                else:
                    raise ValueError(f"unexpected frame type {kind}")
        except (ValueError, struct.error) as exc:
            raise SpoolUnavailable(f"spool segment {path} cannot be read: {exc}") from exc
        if good < len(data):
            log.warning(
                "spool: cutting a torn tail of %d bytes off %s at offset %d",
                len(data) - good,
                path,
                good,
            )
            fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
            try:
                os.ftruncate(fd, good)
                self._fsync(fd)
            finally:
                os.close(fd)

    def _release(self) -> None:
        for fd in (self._fd, self._dir_fd):
            if fd >= 0:
                os.close(fd)
        self._fd = self._dir_fd = -1
        fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
        os.close(self._lock_fd)
        self._executor.shutdown(wait=False)


# -- encoding ----------------------------------------------------------------------------------


def _segment_name(segment_id: int) -> str:
    return f"segment-{segment_id:010d}.log"


def _frame(kind: int, payload: bytes) -> bytes:
    length_and_type = _LENGTH_AND_TYPE.pack(len(payload), kind)
    crc = zlib.crc32(payload, zlib.crc32(length_and_type))
    return _U32.pack(crc) + length_and_type + payload


def _scan(data: bytes) -> tuple[list[tuple[int, memoryview]], int]:
    """Split ``data`` into frames; stop at the first short or CRC-failing one.

    Returns the frames and the offset where the valid prefix ends.
    """
    frames: list[tuple[int, memoryview]] = []
    view = memoryview(data)
    offset = 0
    while offset + _FRAME.size <= len(data):
        crc, length, kind = _FRAME.unpack_from(data, offset)
        end = offset + _FRAME.size + length
        if end > len(data) or zlib.crc32(view[offset + 4 : end]) != crc:
            break
        frames.append((kind, view[offset + _FRAME.size : end]))
        offset = end
    return frames, offset


def _header_frame(next_seq: int) -> bytes:
    return _frame(_HEADER, _HEADER_PAYLOAD.pack(_MAGIC, _VERSION, next_seq))


def _decode_header(payload: memoryview) -> int:
    magic, version, next_seq = _HEADER_PAYLOAD.unpack(payload)
    if magic != _MAGIC or version != _VERSION:
        raise ValueError(f"not a version {_VERSION} spool segment")
    return int(next_seq)


def _encode_entry(entry: SpoolEntry) -> bytes:
    record = entry.record
    parts = [_ENTRY_PREFIX.pack(entry.seq, entry.appended_at, entry.dedup_key is not None)]
    fields: list[bytes] = []
    if entry.dedup_key is not None:
        fields.append(_text(entry.dedup_key))
    fields += [_text(record.topic), record.key, record.value]
    for name, value in record.headers:
        fields += [_text(name), value]
    for data in fields:
        parts += [_U32.pack(len(data)), data]
    return b"".join(parts)


def _text(value: str) -> bytes:
    # surrogatepass: any Python str round-trips exactly, even one that is not valid Unicode.
    return value.encode("utf-8", "surrogatepass")


def _decode_entry(payload: memoryview) -> SpoolEntry:
    seq, appended_at, has_dedup = _ENTRY_PREFIX.unpack_from(payload)
    offset = _ENTRY_PREFIX.size

    def take() -> bytes:
        nonlocal offset
        (length,) = _U32.unpack_from(payload, offset)
        start, offset = offset + _U32.size, offset + _U32.size + length
        if offset > len(payload):
            raise ValueError("field runs past the end of the entry")
        return bytes(payload[start:offset])

    dedup_key = take().decode("utf-8", "surrogatepass") if has_dedup else None
    topic = take().decode("utf-8", "surrogatepass")
    key = take()
    value = take()
    headers: list[tuple[str, bytes]] = []
    while offset < len(payload):
        name = take().decode("utf-8", "surrogatepass")
        headers.append((name, take()))
    return SpoolEntry(seq, KafkaRecord(topic, key, value, tuple(headers)), dedup_key, appended_at)


def _pwrite_all(fd: int, data: bytes, offset: int) -> None:
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        view = view[written:]
        offset += written

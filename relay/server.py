"""Running the server: one process, or N worker processes sharing the port (SO_REUSEPORT).

Shutdown on SIGTERM or SIGINT: stop accepting, let in-flight requests reach
durability (up to ``server.shutdown_grace_s``), then close what the app owns
in reverse order (see :mod:`relay.app`). A second signal exits at once.

With ``--workers N`` every worker is a full Relay with its own Kafka producer
and its own spool directory (``<spool.path>/worker-<i>``: a spool has one
writer), sharing the dedup store, which therefore must be ``sqlite`` or
``redis``. The parent forwards signals to the workers. A worker that exits on
its own makes the parent stop the others and exit non-zero, so that a
supervisor restarts Relay rather than leaving a spool without its worker.
On start, spools that the new worker count does not open (``<spool.path>``
itself, or ``worker-<i>`` with i >= N) hand their pending entries to one it
does, so changing ``--workers`` strands nothing.

Each process holds at most ``server.max_connections`` client connections,
what aiohttp refuses before Relay's code runs (a request it cannot parse)
gets Relay's JSON error, and a connection whose request trickles in is read
a few times a second at most (:mod:`relay.pacing`), all through
:func:`hook_connections`;
the request limits themselves (headers, body, read timeout) are set on the
application by :func:`relay.app.build_app`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import logging
import multiprocessing
import multiprocessing.connection
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

from aiohttp import web
from aiohttp.http_exceptions import BadStatusLine, LineTooLong, PayloadEncodingError

from relay.app import build_app
from relay.config import Config, describe_shared, shared_keys
from relay.errors import StartupError
from relay.http import error_response
from relay.logs import effective_config
from relay.metrics import REJECTED
from relay.pacing import Pacer
from relay.spool import Spool, SpoolUnavailable

log = logging.getLogger("relay.server")


# Each connection's pacing (relay.pacing), from its start to its end. Held here: the handlers
# are aiohttp's objects, whose class can change but not grow a slot.
_PACERS: dict[web.RequestHandler, Pacer] = {}


class _RequestHandler(web.RequestHandler):
    """aiohttp's connection handler, answering what it refuses itself as Relay does, and
    pacing the reads of a request that trickles in.

    A request aiohttp cannot parse (broken framing, too many or too long headers, bytes
    where text belongs) never reaches the application or its middlewares: aiohttp answers
    it from ``handle_error``, in plain text quoting the offending bytes, and logs it at
    ERROR with a traceback, one per request (on a public port, anyone could flood the
    logs). Here it gets the documented ``400 {"error": "malformed_http", ...}`` with a
    fixed message (never the request's bytes), is counted in
    ``relay_webhooks_rejected_total{provider="unknown", reason="malformed_http"}`` and
    not logged. Real errors (5xx) still log, through aiohttp, and answer in JSON too.

    Reads are counted per request, from one request's head to the next: past a few
    small ones, its :class:`relay.pacing.Pacer` pauses reading the connection for a
    while each time (an ordinary webhook comes in one to three reads, and never is).

    aiohttp builds its handlers itself, one per connection, and offers no factory for
    them; :func:`hook_connections` gives each new one this class, which adds no slot
    (``__slots__ = ()``: each connection's pacer is kept in ``_PACERS``), only methods.
    """

    __slots__ = ()

    def data_received(self, data: bytes) -> None:
        requests = self._request_count
        super().data_received(data)
        pacer = _PACERS.get(self)  # None once the connection is lost
        if pacer is None or self.transport is None:
            return
        if self._request_count != requests:
            # A request's head is complete (keep-alive: the next request's too): its body
            # and the requests after it count their own small reads.
            pacer.new_request()
        else:
            pacer.read(len(data))

    def resume_reading(self, resume_parser: bool = True) -> None:
        super().resume_reading(resume_parser)
        # aiohttp resumes whenever the body's buffer runs low, as a trickle's always is
        # once the handler has read it: a pace's pause lasts until its time is up.
        pacer = _PACERS.get(self)
        transport = self._read_transport()
        if pacer is not None and pacer.holding and transport is not None:
            transport.pause_reading()

    def _resume_paced(self) -> None:
        transport = self._read_transport()
        # Not while aiohttp holds reading for buffers of its own (it resumes then).
        if transport is not None and not (self._reading_paused or self._buffer_paused):
            transport.resume_reading()

    def _read_transport(self) -> asyncio.Transport | None:
        """The connection, while this handler is the one reading it: once an early answer
        has gone, http._Discard is (and paces what it throws away itself)."""
        transport = self.transport
        return transport if transport is not None and transport.get_protocol() is self else None

    def connection_lost(self, exc: BaseException | None) -> None:
        _PACERS.pop(self, None)
        super().connection_lost(exc)

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if status >= 500:
            super().handle_error(request, status, exc, message)  # logs; raises if answered
            response = error_response(status, "internal_error", "unexpected error")
        else:
            if request.writer.output_size > 0:
                # As aiohttp: an answer has begun, so another cannot be sent.
                raise ConnectionError("an answer was sent already")
            REJECTED.labels("unknown", "malformed_http").inc()
            response = error_response(status, "malformed_http", _malformed_message(exc))
        response.force_close()
        return response


def _malformed_message(error: BaseException | None) -> str:
    """What is wrong, in words of ours: aiohttp's messages quote the request's bytes."""
    if isinstance(error, LineTooLong):
        return "a header or the request line is too long"
    if isinstance(error, BadStatusLine):
        return "the request line is not HTTP/1.1"
    if isinstance(error, PayloadEncodingError):
        return "the body's framing is broken (Content-Length or chunks)"
    return "the request is not valid HTTP/1.1 (its head or framing)"


# Sent to a connection over the cap before anything is read from it: providers retry a 503.
_OVERLOADED_BODY = (
    b'{"error":"too_many_connections","message":"the server is at its connection limit"}'
)
_OVERLOADED = (
    b"HTTP/1.1 503 Service Unavailable\r\n"
    b"Content-Type: application/json\r\n"
    b"Retry-After: 1\r\n"
    b"Connection: close\r\n"
    b"Content-Length: " + str(len(_OVERLOADED_BODY)).encode() + b"\r\n\r\n" + _OVERLOADED_BODY
)


def hook_connections(server: web.Server, limit: int) -> None:
    """Turn away connections past ``limit`` open ones with a 503, before parsing a byte,
    and give the others Relay's answers to malformed requests and its pacing of requests
    that trickle in (:class:`_RequestHandler`).

    aiohttp has no connection limit of its own. Its server registers every new
    connection in ``connection_made`` (and forgets it once the connection's handler
    has finished), which makes that call the one place to count and refuse: the
    check and the registration happen in the same callback, so a burst of accepts
    cannot overshoot the limit. It is also the first place Relay sees each handler,
    before the handler has read a byte.
    """
    register = server.connection_made
    refusing = False

    def connection_made(handler: web.RequestHandler, transport: asyncio.Transport) -> None:
        nonlocal refusing
        if len(server.connections) >= limit:
            if not refusing:  # one line per episode: a flood of refusals must not flood the log
                log.warning("refusing connections: at the limit", extra={"limit": limit})
            refusing = True
            transport.write(_OVERLOADED)
            transport.close()
            return
        refusing = False
        handler.__class__ = _RequestHandler  # same layout: methods, no state
        assert isinstance(handler, _RequestHandler)  # (for mypy: the same object)
        _PACERS[handler] = Pacer(transport, handler._resume_paced)
        register(handler, transport)

    server.connection_made = connection_made  # type: ignore[method-assign]


async def start_server(config: Config, *, reuse_port: bool = False) -> web.AppRunner:
    """The application listening on ``server.host:server.port``; ``runner.cleanup()`` stops it.

    Raises :class:`StartupError` when the spool is locked or unusable, or the address taken.
    """
    runner = web.AppRunner(
        build_app(config),
        handle_signals=False,
        shutdown_timeout=config.server.shutdown_grace_s,
        access_log=None,
    )
    try:
        await runner.setup()
    except SpoolUnavailable as exc:
        raise StartupError(str(exc)) from exc
    assert runner.server is not None  # setup() made it
    hook_connections(runner.server, config.server.max_connections)
    site = web.TCPSite(runner, config.server.host, config.server.port, reuse_port=reuse_port)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        address = f"{config.server.host}:{config.server.port}"
        reason = os.strerror(exc.errno).lower() if exc.errno else str(exc)
        raise StartupError(f"cannot listen on {address}: {reason}") from exc
    return runner


async def serve_forever(config: Config, *, reuse_port: bool = False) -> None:
    runner = await start_server(config, reuse_port=reuse_port)
    # What exists now (modules, the app, clients) lives as long as the process: left out
    # of the collector's full passes, which otherwise walk it all every few seconds under
    # load (measured with `make bench`: 0.4 s of 17 s CPU, down to 0.02 s).
    gc.freeze()
    # Young collections every 20,000 net allocations instead of 700: a webhook allocates
    # hundreds of objects that reference counting frees anyway, so most passes found little
    # to collect. Measured side by side (make bench's relay case): 237-270 -> 231-234 us per
    # webhook; the young generation stays small because what a request allocates dies with it.
    gc.set_threshold(20_000, *gc.get_threshold()[1:])
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_signal() -> None:
        if stop.is_set():
            log.warning("second signal: exiting now")
            logging.shutdown()  # os._exit skips it: the lines still buffered (relay.logs)
            os._exit(1)
        stop.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal)
    # The bound addresses, not the configured port: port 0 (tests) gets one from the OS.
    listening = [f"{address[0]}:{address[1]}" for address in runner.addresses]
    log.info("serving", extra={"listening": listening, "config": effective_config(config)})
    started = time.monotonic()
    await stop.wait()
    log.info("shutting down: no new connections, finishing in-flight requests")
    await runner.cleanup()
    log.info("stopped", extra={"uptime_s": round(time.monotonic() - started, 3)})


def run(config: Config, config_path: Path, workers: int = 1) -> None:
    """Serve ``config``; with several workers each one loads ``config_path`` itself
    (key objects and profiles do not cross process boundaries)."""
    if workers > 1 and config.dedup.backend == "memory":
        raise SystemExit(
            "--workers needs a shared dedup store: set [dedup] backend to sqlite or redis"
        )
    for shared in shared_keys(config):
        log.warning(describe_shared(shared), extra={"instances": list(shared.instances)})
    try:
        asyncio.run(adopt_stranded_spools(Path(config.spool.path), workers, config.spool.max_bytes))
    except SpoolUnavailable as exc:
        raise StartupError(str(exc)) from exc
    if workers <= 1:
        asyncio.run(serve_forever(config))
        return
    # Workers aggregate their metrics through files in a fresh directory (prometheus-client
    # multiprocess mode); the variable must be set before the workers import prometheus_client.
    metrics_dir = tempfile.mkdtemp(prefix="relay-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    context = multiprocessing.get_context("spawn")
    processes = [
        context.Process(target=_worker, args=(config_path, index), name=f"relay-worker-{index}")
        for index in range(workers)
    ]
    for process in processes:
        process.start()
    signalled = False

    def forward(signum: int, _frame: object) -> None:
        nonlocal signalled
        signalled = True
        for process in processes:
            # exitcode reaps a dead worker, so its pid is never signalled after reuse.
            if process.exitcode is None and process.pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    ended = multiprocessing.connection.wait([process.sentinel for process in processes])
    if not signalled:
        # A worker ended on its own (a crash, a failed start). Stop the others and exit with
        # an error, so that the supervisor restarts Relay, and with it the dead worker's spool.
        log.error(
            "a worker exited on its own; stopping the others",
            extra={"workers": [p.name for p in processes if p.sentinel in ended]},
        )
        forward(signal.SIGTERM, None)
    for process in processes:
        process.join()
    # The samples die with the workers: a restart starts its counters from zero, as
    # Prometheus expects of a restarted target.
    shutil.rmtree(metrics_dir, ignore_errors=True)
    exit_codes = {process.name: process.exitcode for process in processes}
    if any(exit_codes.values()) or not signalled:
        raise SystemExit(f"relay workers failed: {exit_codes}")


def _worker(config_path: Path, index: int) -> None:
    from relay.config import load_config
    from relay.logs import setup_logging

    setup_logging()
    config = load_config(config_path)
    spool = dataclasses.replace(
        config.spool, path=str(worker_spool(Path(config.spool.path), index))
    )
    try:
        asyncio.run(serve_forever(dataclasses.replace(config, spool=spool), reuse_port=True))
    except StartupError as error:
        print(f"relay: worker {index}: {error}", file=sys.stderr)
        sys.exit(1)


def worker_spool(root: Path, index: int) -> Path:
    return root / f"worker-{index}"


def spools_to_adopt(root: Path, workers: int) -> tuple[Path, list[Path]]:
    """The spool that adopts, and the spools with segments that no process of this layout opens.

    One process spools in ``root``; N workers in ``root/worker-<i>``, i < N.
    """
    owned = {root} if workers <= 1 else {worker_spool(root, i) for i in range(workers)}
    candidates = [root, *sorted(path for path in root.glob("worker-*") if path.is_dir())]
    stranded = [
        path for path in candidates if path not in owned and any(path.glob("segment-*.log"))
    ]
    return (root if workers <= 1 else worker_spool(root, 0)), stranded


async def adopt_stranded_spools(root: Path, workers: int, max_bytes: int) -> None:
    """Move what spools of another worker count still hold into a spool this layout opens.

    Changing ``--workers`` changes which spool directories are opened; acknowledged
    entries left in the others would never be published. Entries are appended (and
    fsync'd) where they go before they are marked done where they were, so a crash in
    between publishes some twice, never none. They join the adopting spool after its
    own pending entries: spools of different processes never had an order between them.
    """
    target, stranded = spools_to_adopt(root, workers)
    if not stranded:
        return
    into = Spool.open(target, max_bytes=max_bytes)
    try:
        for path in stranded:
            try:
                spool = Spool.open(path, max_bytes=max_bytes)
            except SpoolUnavailable as exc:
                # Locked: a Relay still runs on it and publishes it itself.
                log.warning("spool left as it is", extra={"spool": str(path), "error": str(exc)})
                continue
            try:
                entries = spool.pending()
                # Appends are queued in call order, and group commit writes them together.
                await asyncio.gather(*(into.append(e.record, e.dedup_key) for e in entries))
                await spool.mark_done(entry.seq for entry in entries)
            finally:
                await spool.close()
            if entries:
                log.warning(
                    "adopted the pending entries of a spool that this worker count does not open",
                    extra={"spool": str(path), "entries": len(entries), "into": str(target)},
                )
    finally:
        await into.close()

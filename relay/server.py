"""Running the server: one process, or N worker processes sharing the port (SO_REUSEPORT).

Shutdown on SIGTERM or SIGINT: stop accepting, let in-flight requests reach
durability (up to ``server.shutdown_grace_s``), then close what the app owns
in reverse order (see :mod:`relay.app`). A second signal exits at once.

With ``--workers N`` every worker is a full Relay with its own Kafka producer
and its own spool directory (``<spool.path>/worker-<i>``: a spool has one
writer), sharing the dedup store, which therefore must be ``sqlite`` or
``redis``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import multiprocessing
import os
import signal
import tempfile
from pathlib import Path

from aiohttp import web

from relay.app import build_app
from relay.config import Config

log = logging.getLogger("relay.server")


async def serve_forever(config: Config, *, reuse_port: bool = False) -> None:
    app = build_app(config)
    runner = web.AppRunner(
        app, handle_signals=False, shutdown_timeout=config.server.shutdown_grace_s, access_log=None
    )
    await runner.setup()
    site = web.TCPSite(runner, config.server.host, config.server.port, reuse_port=reuse_port)
    await site.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_signal() -> None:
        if stop.is_set():
            log.warning("second signal: exiting now")
            os._exit(1)
        stop.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal)
    log.info(
        "serving",
        extra={
            "host": config.server.host,
            "port": config.server.port,
            "providers": sorted(config.providers),
            "dedup": config.dedup.backend,
            "kafka": config.kafka.bootstrap_servers,
            "topic": config.kafka.topic,
            "pid": os.getpid(),
        },
    )
    await stop.wait()
    log.info("shutting down: no new connections, finishing in-flight requests")
    await runner.cleanup()
    log.info("stopped")


def run(config: Config, config_path: Path, workers: int = 1) -> None:
    """Serve ``config``; with several workers each one loads ``config_path`` itself
    (key objects and profiles do not cross process boundaries)."""
    if workers <= 1:
        asyncio.run(serve_forever(config))
        return
    if config.dedup.backend == "memory":
        raise SystemExit(
            "--workers needs a shared dedup store: set [dedup] backend to sqlite or redis"
        )
    # Workers aggregate their metrics through files in a fresh directory (prometheus-client
    # multiprocess mode); the variable must be set before the workers import prometheus_client.
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="relay-metrics-")
    context = multiprocessing.get_context("spawn")
    processes = [
        context.Process(target=_worker, args=(config_path, index), name=f"relay-worker-{index}")
        for index in range(workers)
    ]
    for process in processes:
        process.start()

    def forward(signum: int, _frame: object) -> None:
        for process in processes:
            if process.pid is not None:
                os.kill(process.pid, signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    for process in processes:
        process.join()


def _worker(config_path: Path, index: int) -> None:
    from relay.config import load_config
    from relay.logs import setup_logging

    setup_logging()
    config = load_config(config_path)
    spool = dataclasses.replace(config.spool, path=str(Path(config.spool.path) / f"worker-{index}"))
    asyncio.run(serve_forever(dataclasses.replace(config, spool=spool), reuse_port=True))

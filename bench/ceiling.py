"""The ceiling: a bare aiohttp app that reads the body and answers 200.

Same Python, same aiohttp, same event loop policy (the default, via
``asyncio.run``) and the same runner settings as ``relay serve``
(:func:`relay.server.serve_forever`: ``AppRunner`` without an access log,
one ``TCPSite``), so the only difference from Relay is Relay's own work.

    python -m bench.ceiling PORT
"""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Awaitable, Callable

from aiohttp import web


async def receive(request: web.Request) -> web.Response:
    await request.read()
    return web.Response(status=200)


async def healthz(request: web.Request) -> web.Response:
    return web.Response(status=200)


async def serve_until_signalled(
    port: int, receive: Callable[[web.Request], Awaitable[web.Response]]
) -> None:
    """``receive`` on the webhook route, as ``relay serve`` runs it, until SIGTERM or SIGINT."""
    app = web.Application()
    app.router.add_post("/webhooks/{provider}", receive)
    app.router.add_get("/healthz", healthz)
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    await runner.cleanup()


if __name__ == "__main__":
    asyncio.run(serve_until_signalled(int(sys.argv[1]), receive))

"""What the console's tests share: a config with two operators, dead letters filed as
Relay files them (signed by the provider, with the headers the verifier read; hostile
ones too), and the console served on a real port."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import threading
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web

from relay.config import Config, ProviderInstance
from relay.console.app import INDEXER, build_console
from relay.deadletter import dead_letter_record, make_dead_letter
from relay.kafka import KafkaSink
from relay.pipeline import Inbound, signature_headers
from relay.samples import signed_sample
from relay.settings import ConsoleConfig, ConsoleOperator
from schemas.records import DeadLetter
from tests.conftest import INVOICE_SECRET, make_config

REPLAYER_TOKEN = "console-test-replayer-token-5b1e"
READER_TOKEN = "console-test-reader-token-93ac"

# What a hostile provider (or a forged record) could put in a letter: markup, a script,
# an event handler, javascript: URLs, a terminal escape. Each would set the flag or the
# title if a page ever ran it.
PWN = "window.__pwned=1;document.title='pwned'"
HOSTILE_BODY = (
    b'{"invoice_reference":"<script>' + PWN.encode() + b'</script>",'
    b'"status":"refunded","amount_usdt_exact":"12.5000",'
    b'"note":"<img src=x onerror=\\"' + PWN.encode() + b'\\">",'
    b'"link":"javascript:' + PWN.encode() + b'"}\x1b[2J\x1b]0;pwned\x07'
)
HOSTILE_HEADERS = {
    "x-webhook-id": '"><script>' + PWN + "</script>",
    "x-link": "javascript:" + PWN,
    "x-attr": "' autofocus onfocus='" + PWN,
}
HOSTILE_REASON = '<img src=x onerror="' + PWN + '">'


def console_config(
    bootstrap: str,
    topic: str,
    var: Path,
    *,
    providers: Mapping[str, Mapping[str, Any]] | None = None,
    **console: Any,
) -> Config:
    """A Relay config (``make_config``) with the console on: a replayer and a reader."""
    config = make_config(bootstrap=bootstrap, topic=topic, var=var, providers=providers)
    settings = ConsoleConfig(
        enabled=True,
        host="127.0.0.1",
        port=0,
        index_path=str(var / "console.sqlite3"),
        operators=(
            ConsoleOperator("ana", REPLAYER_TOKEN, "replay"),
            ConsoleOperator("rui", READER_TOKEN, "read"),
        ),
        **console,
    )
    return dataclasses.replace(config, console=settings)


def invoice_providers(**extra: Any) -> dict[str, Any]:
    return {"invoices": {"profile": "usdt-invoice", "secrets": [INVOICE_SECRET], **extra}}


def invoice_body(order: str, status: str) -> bytes:
    return orjson.dumps(
        {"invoice_reference": order, "status": status, "amount_usdt_exact": "12.5000"}
    )


def letter(
    body: bytes,
    *,
    reason: str = "unknown_status",
    headers: Mapping[str, str] | None = None,
    provider: str = "invoices",
) -> DeadLetter:
    """A letter of a body the provider signed (``INVOICE_SECRET``), keeping the signature
    headers as the pipeline keeps them, so ``relay replay`` verifies it again."""
    received_at = datetime.now(UTC)
    instance = _signer()
    sample = signed_sample(instance, body=body, now=received_at.timestamp())
    received = {name.lower(): value for name, value in sample.headers.items()}
    inbound = Inbound(instance, body, {}, received_at, received_headers=received)
    return make_dead_letter(
        provider=provider,
        profile="usdt-invoice",
        reason=reason,
        message="the status 'refunded' in 'status' is not a known status",
        received_at=received_at,
        headers=dict(headers or {}),
        body=body,
        signature_headers=signature_headers(inbound),
    )


@functools.cache
def _signer() -> ProviderInstance:
    config = make_config(
        bootstrap="127.0.0.1:9",
        topic="unused",
        var=Path("unused"),
        providers=invoice_providers(),
        create_topics=False,
    )
    return config.providers["invoices"]


async def file_letters(config: Config, letters: list[DeadLetter]) -> None:
    """Publish ``letters`` on the dead-letter topic as Relay files them."""
    sink = KafkaSink(config.kafka)
    await sink.start()
    try:
        assert await sink.wait_connected(10)
        for item in letters:
            await sink.send(dead_letter_record(item, config.kafka.dead_letter_topic))
    finally:
        await sink.stop()


class ConsoleThread:
    """The console on a real port, in a thread with its own event loop (the browser tests
    drive it from blocking calls)."""

    def __init__(self, config: Config) -> None:
        self._config = config
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self.url = ""
        self.app: web.Application | None = None
        self._runner: web.AppRunner | None = None

    def __enter__(self) -> ConsoleThread:
        self._thread.start()
        assert self._ready.wait(30), "the console did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(30)

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._start())
        self._loop.run_forever()
        self._loop.close()

    async def _start(self) -> None:
        self.app = build_console(self._config)
        self._runner = web.AppRunner(self.app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"
        self._ready.set()

    def wait_indexed(self, timeout_s: float = 30) -> None:
        """Until the indexer has read both topics to their end once."""
        assert self.app is not None
        indexer = self.app[INDEXER]

        async def caught_up() -> None:
            for event in indexer.caught_up.values():
                await event.wait()

        asyncio.run_coroutine_threadsafe(caught_up(), self._loop).result(timeout_s)

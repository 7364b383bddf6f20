"""The Kafka floor: the ceiling app plus one aiokafka ``send_and_wait`` per request.

No verification, normalization, dedup, spool, metrics or logging: only what
any aiohttp + aiokafka relay must do to answer after the broker's ack, with
Relay's producer settings (``acks="all"``, ``linger_ms`` 2, no idempotence on
the dev broker). Relay cannot be faster than this on one core with these
libraries; the gap between this row and the ceiling is the libraries' share.

    python -m bench.floor PORT BOOTSTRAP TOPIC
"""

from __future__ import annotations

import asyncio
import sys

from aiohttp import web
from aiokafka import AIOKafkaProducer

from bench.ceiling import serve_until_signalled
from relay.settings import KafkaConfig


async def serve(port: int, bootstrap: str, topic: str) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", linger_ms=KafkaConfig().linger_ms
    )
    await producer.start()

    async def receive(request: web.Request) -> web.Response:
        body = await request.read()
        key = request.headers.get("X-Webhook-Id", "").encode()
        await producer.send_and_wait(topic, body, key=key)
        return web.Response(status=200)

    try:
        await serve_until_signalled(port, receive)
    finally:
        await producer.stop()


if __name__ == "__main__":
    asyncio.run(serve(int(sys.argv[1]), sys.argv[2], sys.argv[3]))

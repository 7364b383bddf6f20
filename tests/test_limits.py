"""Limits on what a client can make Relay hold: headers, body, time, connections; and
``X-Forwarded-For`` believed only from trusted proxies for the ``allow_ips`` check.

Slow-client tests talk raw HTTP over a socket, since an HTTP client library cannot send
half a request. They wait for the server to act with a deadline many times the configured
timeout: they check that it acts, never how fast.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from relay.body import MAX_CHUNKS
from relay.config import ConfigError, parse_config
from relay.http import client_address
from relay.metrics import READ_PAUSES, REJECTED
from relay.pacing import UNPACED_SMALL_READS, Pacer
from relay.server import start_server
from relay.settings import ServerConfig
from tests.conftest import (
    INVOICE_SECRET,
    SignedWebhook,
    make_config,
    signed_webhook,
    start_relay,
)

# Far longer than any timeout configured below: reaching it means the server never acted.
PATIENCE_S = 15.0
SHORT_TIMEOUT_S = 0.5


def networks(*texts: str) -> tuple[Any, ...]:
    return tuple(ipaddress.ip_network(text) for text in texts)


# --- configuration ---------------------------------------------------------------------------


def parse_server(server: dict[str, Any]) -> ServerConfig:
    document = {
        "server": server,
        "providers": {"invoices": {"profile": "usdt-invoice", "secrets": [INVOICE_SECRET]}},
    }
    return parse_config(document, env={"PROXY": "10.1.2.3"}).server


def test_limits_have_safe_defaults() -> None:
    server = parse_server({})
    assert server.max_body_bytes == 1048576
    assert server.max_headers == 64
    assert server.max_header_bytes == 8190
    assert server.read_timeout_s == 10.0
    assert server.max_connections == 512
    assert server.trusted_proxies == ()


def test_trusted_proxies_are_networks_with_env_expansion() -> None:
    server = parse_server({"trusted_proxies": ["10.0.0.0/8", "${PROXY}", "2001:db8::/32"]})
    assert server.trusted_proxies == networks("10.0.0.0/8", "10.1.2.3/32", "2001:db8::/32")


@pytest.mark.parametrize(
    ("server", "key"),
    [
        ({"trusted_proxies": ["not-an-address"]}, "server.trusted_proxies[0]"),
        ({"trusted_proxies": "10.0.0.0/8"}, "server.trusted_proxies"),
        ({"max_headers": 0}, "server.max_headers"),
        ({"max_header_bytes": -1}, "server.max_header_bytes"),
        ({"read_timeout_s": 0}, "server.read_timeout_s"),
        ({"max_connections": 0}, "server.max_connections"),
        ({"max_connections": "many"}, "server.max_connections"),
    ],
)
def test_bad_limits_name_the_key(server: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_server(server)
    assert caught.value.key == key


# --- X-Forwarded-For -----------------------------------------------------------------------

PROXIES = networks("10.0.0.0/8", "192.168.1.1/32")


@pytest.mark.parametrize(
    ("peer", "forwarded_for", "expected"),
    [
        # An untrusted peer's header is the client's own claim: ignored.
        ("203.0.113.9", ["198.51.100.1"], "203.0.113.9"),
        # From a trusted proxy: the rightmost hop that is not a trusted proxy.
        ("10.0.0.5", ["198.51.100.1"], "198.51.100.1"),
        ("10.0.0.5", ["6.6.6.6, 198.51.100.1, 192.168.1.1"], "198.51.100.1"),
        # Several headers read as one list, in order.
        ("10.0.0.5", ["6.6.6.6", "198.51.100.1, 10.2.3.4"], "198.51.100.1"),
        # Every hop trusted: the request started inside, at the leftmost.
        ("10.0.0.5", ["10.9.9.9, 192.168.1.1"], "10.9.9.9"),
        ("10.0.0.5", [], "10.0.0.5"),
        # Dual-stack sockets report IPv4 peers as IPv4-mapped IPv6.
        ("::ffff:10.0.0.5", ["198.51.100.1"], "198.51.100.1"),
    ],
)
def test_client_address(peer: str, forwarded_for: list[str], expected: str) -> None:
    assert client_address(peer, forwarded_for, PROXIES) == ipaddress.ip_address(expected)


@pytest.mark.parametrize(
    "forwarded_for",
    [["198.51.100.1, junk"], ["198.51.100.1, 10.0.0.1:8080"], [", "], ["198.51.100.1,,"]],
)
def test_an_unreadable_hop_is_no_address(forwarded_for: list[str]) -> None:
    assert client_address("10.0.0.5", forwarded_for, PROXIES) is None


def test_an_unreadable_peer_is_no_address() -> None:
    assert client_address(None, ["198.51.100.1"], PROXIES) is None


async def allow_listed_relay(
    aiohttp_client: Any, kafka_bootstrap: str, topic: str, tmp_path: Path, proxies: list[str]
) -> Any:
    config = make_config(
        bootstrap=kafka_bootstrap,
        topic=topic,
        var=tmp_path,
        server={"trusted_proxies": proxies},
        providers={
            "invoices": {
                "profile": "usdt-invoice",
                "secrets": [INVOICE_SECRET],
                "allow_ips": ["203.0.113.0/24"],
            }
        },
    )
    return await start_relay(aiohttp_client, config)


@pytest.mark.parametrize(
    ("proxies", "forwarded_for", "status"),
    [
        (["127.0.0.1"], "203.0.113.7", 200),
        (["127.0.0.1"], "203.0.113.7, 198.51.100.1", 403),  # a hop below our proxy: not allowed
        (["127.0.0.1"], "198.51.100.1, 203.0.113.7", 200),  # the client's own claim is ignored
        ([], "203.0.113.7", 403),  # 127.0.0.1 is no trusted proxy: its header is not believed
    ],
)
async def test_allow_ips_behind_trusted_proxy(
    aiohttp_client: Any,
    kafka_bootstrap: str,
    topic: str,
    tmp_path: Path,
    proxies: list[str],
    forwarded_for: str,
    status: int,
) -> None:
    relay = await allow_listed_relay(aiohttp_client, kafka_bootstrap, topic, tmp_path, proxies)
    webhook = signed_webhook(relay.config, headers={"X-Forwarded-For": forwarded_for})
    response = await relay.post(webhook)
    assert response.status == status, await response.text()


# --- header limits -------------------------------------------------------------------------


async def small_relay(
    aiohttp_client: Any, kafka_bootstrap: str, topic: str, tmp_path: Path, **server: Any
) -> Any:
    config = make_config(bootstrap=kafka_bootstrap, topic=topic, var=tmp_path, server=server)
    return await start_relay(aiohttp_client, config)


async def test_too_many_headers_is_a_400(
    aiohttp_client: Any, kafka_bootstrap: str, topic: str, tmp_path: Path
) -> None:
    relay = await small_relay(aiohttp_client, kafka_bootstrap, topic, tmp_path, max_headers=20)
    webhook = signed_webhook(relay.config)
    within = {**webhook.headers, **{f"X-Extra-{i}": "x" for i in range(5)}}
    response = await relay.client.post(webhook.path, data=webhook.body, headers=within)
    assert response.status == 200
    beyond = {**webhook.headers, **{f"X-Extra-{i}": "x" for i in range(25)}}
    response = await relay.client.post(webhook.path, data=webhook.body, headers=beyond)
    assert response.status == 400


async def test_a_header_longer_than_the_limit_is_a_400(
    aiohttp_client: Any, kafka_bootstrap: str, topic: str, tmp_path: Path
) -> None:
    relay = await small_relay(
        aiohttp_client, kafka_bootstrap, topic, tmp_path, max_header_bytes=1024
    )
    webhook = signed_webhook(relay.config)
    response = await relay.client.post(
        webhook.path, data=webhook.body, headers={**webhook.headers, "X-Long": "a" * 2000}
    )
    assert response.status == 400
    response = await relay.client.post(f"/webhooks/{'a' * 2000}", data=b"{}")
    assert response.status == 400


# --- slow clients --------------------------------------------------------------------------


async def open_raw(relay: Any) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection(relay.client.host, relay.client.port)


async def read_until_closed(reader: asyncio.StreamReader) -> bytes:
    """Everything the server sends until it closes the connection (a reset counts as closed)."""
    received = b""
    with contextlib.suppress(ConnectionResetError):
        while chunk := await reader.read(65536):
            received += chunk
    return received


async def dribble(writer: asyncio.StreamWriter, byte: bytes, stop: asyncio.Event) -> None:
    """A byte every tenth of a second, as a slowloris client keeps a connection busy."""
    with contextlib.suppress(ConnectionError):
        while not stop.is_set():
            writer.write(byte)
            await writer.drain()
            await asyncio.sleep(0.1)


async def test_slow_headers_are_cut_off(
    aiohttp_client: Any, kafka_bootstrap: str, topic: str, tmp_path: Path
) -> None:
    relay = await small_relay(
        aiohttp_client, kafka_bootstrap, topic, tmp_path, read_timeout_s=SHORT_TIMEOUT_S
    )
    reader, writer = await open_raw(relay)
    writer.write(b"POST /webhooks/invoices HTTP/1.1\r\nHost: relay\r\nX-Slow: ")
    stop = asyncio.Event()
    slow = asyncio.create_task(dribble(writer, b"a", stop))
    try:
        # The server closes without answering: there is no request to answer yet.
        assert await asyncio.wait_for(read_until_closed(reader), PATIENCE_S) == b""
    finally:
        stop.set()
        await slow
        writer.close()


async def test_slow_body_gets_a_408(
    aiohttp_client: Any, kafka_bootstrap: str, topic: str, tmp_path: Path
) -> None:
    relay = await small_relay(
        aiohttp_client, kafka_bootstrap, topic, tmp_path, read_timeout_s=SHORT_TIMEOUT_S
    )
    webhook = signed_webhook(relay.config)
    reader, writer = await open_raw(relay)
    head = (
        f"POST {webhook.path} HTTP/1.1\r\nHost: relay\r\n"
        + "".join(f"{name}: {value}\r\n" for name, value in webhook.headers.items())
        + f"Content-Length: {len(webhook.body)}\r\n\r\n"
    )
    writer.write(head.encode() + webhook.body[:10])
    stop = asyncio.Event()
    slow = asyncio.create_task(dribble(writer, b" ", stop))
    try:
        answer = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), PATIENCE_S)
    finally:
        stop.set()
        await slow
        writer.close()
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert await relay.client.get("/healthz")


async def test_an_idle_connection_is_closed(
    aiohttp_client: Any, kafka_bootstrap: str, topic: str, tmp_path: Path
) -> None:
    relay = await small_relay(
        aiohttp_client, kafka_bootstrap, topic, tmp_path, read_timeout_s=SHORT_TIMEOUT_S
    )
    reader, writer = await open_raw(relay)
    try:
        assert await asyncio.wait_for(read_until_closed(reader), PATIENCE_S) == b""
    finally:
        writer.close()


# --- requests that trickle in --------------------------------------------------------------


@contextlib.asynccontextmanager
async def serving(
    kafka_bootstrap: str, topic: str, tmp_path: Path, **server: Any
) -> AsyncIterator[tuple[str, int, Any]]:
    """``relay serve``'s server in this process (its connection handling, which the test
    client does not go through): host, port, config."""
    config = make_config(bootstrap=kafka_bootstrap, topic=topic, var=tmp_path, server=server)
    runner = await start_server(config)
    try:
        host, port = runner.addresses[0][:2]
        yield host, port, config
    finally:
        await runner.cleanup()


def webhook_head(webhook: SignedWebhook, *, close: bool = False) -> bytes:
    headers = {**webhook.headers, "Content-Length": str(len(webhook.body))}
    if close:
        headers["Connection"] = "close"
    lines = [f"POST {webhook.path} HTTP/1.1", "Host: relay"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def trickle(writer: asyncio.StreamWriter, data: bytes) -> None:
    """``data`` a byte a segment, each given time to be read on its own."""
    for offset in range(len(data)):
        writer.write(data[offset : offset + 1])
        await writer.drain()
        await asyncio.sleep(0.002)


async def read_answer(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), PATIENCE_S)
    length = re.search(rb"\r\nContent-Length: (\d+)\r\n", head, re.IGNORECASE)
    assert length is not None, head
    body = await asyncio.wait_for(reader.readexactly(int(length[1])), PATIENCE_S)
    return int(head.split()[1]), body


async def test_ordinary_requests_are_never_paused(
    kafka_bootstrap: str, topic: str, tmp_path: Path
) -> None:
    """Small reads are counted per request: webhooks one after another on a keep-alive
    connection, each head and body in reads of their own, are read as they come."""
    pauses = READ_PAUSES._value.get()
    async with serving(kafka_bootstrap, topic, tmp_path) as (host, port, config):
        reader, writer = await asyncio.open_connection(host, port)
        try:
            for _ in range(4 * UNPACED_SMALL_READS):
                webhook = signed_webhook(config)
                writer.write(webhook_head(webhook))
                await writer.drain()
                await asyncio.sleep(0.002)
                writer.write(webhook.body)
                status, body = await read_answer(reader)
                assert status == 200, body
        finally:
            writer.close()
    assert READ_PAUSES._value.get() == pauses


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The size of each socket read that a connection's pacing counts, from now on."""
    sizes: list[int] = []
    read = Pacer.read

    def counted(self: Pacer, size: int) -> None:
        if size:  # not aiohttp's own call with nothing, when it resumes parsing
            sizes.append(size)
        read(self, size)

    monkeypatch.setattr(Pacer, "read", counted)
    return sizes


def assert_paced(pauses_before: float, reads: list[int], trickled: int) -> None:
    """Reading paused, and past the first few small reads each read took what had come
    in while paused (at a byte every 2 ms, tens of bytes), not a byte."""
    assert READ_PAUSES._value.get() > pauses_before
    assert len(reads) < UNPACED_SMALL_READS + trickled / 4, (len(reads), trickled)


async def test_a_request_that_trickles_in_is_paced_and_answered(
    kafka_bootstrap: str, topic: str, tmp_path: Path, reads: list[int]
) -> None:
    """A head in one-byte segments: past a few, reading pauses and resumes, and the
    request, once whole, is answered as any other."""
    pauses = READ_PAUSES._value.get()
    async with serving(kafka_bootstrap, topic, tmp_path) as (host, port, config):
        webhook = signed_webhook(config)
        head = webhook_head(webhook, close=True)
        reader, writer = await asyncio.open_connection(host, port)
        try:
            await trickle(writer, head)
            writer.write(webhook.body)
            status, body = await read_answer(reader)
        finally:
            writer.close()
    assert status == 200, body
    assert_paced(pauses, reads, len(head))


async def test_a_paced_slow_body_still_gets_its_408(
    kafka_bootstrap: str, topic: str, tmp_path: Path, reads: list[int]
) -> None:
    pauses = READ_PAUSES._value.get()
    server = {"read_timeout_s": SHORT_TIMEOUT_S}
    async with serving(kafka_bootstrap, topic, tmp_path, **server) as (host, port, config):
        sample = signed_webhook(config)
        webhook = signed_webhook(config, body=sample.body + b" " * 4096)
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(webhook_head(webhook) + sample.body)
        try:
            with contextlib.suppress(ConnectionError):
                await trickle(writer, b" " * 150)
            answer = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), PATIENCE_S)
        finally:
            writer.close()
    assert answer.startswith(b"HTTP/1.1 408 "), answer
    assert_paced(pauses, reads, 150)


async def test_paced_slow_headers_are_still_cut_off(
    kafka_bootstrap: str, topic: str, tmp_path: Path, reads: list[int]
) -> None:
    pauses = READ_PAUSES._value.get()
    server = {"read_timeout_s": SHORT_TIMEOUT_S}
    async with serving(kafka_bootstrap, topic, tmp_path, **server) as (host, port, _):
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(b"POST /webhooks/invoices HTTP/1.1\r\nHost: relay\r\nX-Slow: ")
        try:
            with contextlib.suppress(ConnectionError):
                await trickle(writer, b"a" * 150)
            # Closed unanswered: there is no request to answer yet.
            assert await asyncio.wait_for(read_until_closed(reader), PATIENCE_S) == b""
        finally:
            writer.close()
    assert_paced(pauses, reads, 150)


# --- connection cap ------------------------------------------------------------------------


async def test_connections_past_the_cap_get_a_503(
    kafka_bootstrap: str, topic: str, tmp_path: Path
) -> None:
    config = make_config(
        bootstrap=kafka_bootstrap, topic=topic, var=tmp_path, server={"max_connections": 3}
    )
    runner = await start_server(config)
    host, port = runner.addresses[0][:2]
    held: list[asyncio.StreamWriter] = []
    try:
        for _ in range(3):
            _, writer = await asyncio.open_connection(host, port)
            held.append(writer)
        reader, writer = await asyncio.open_connection(host, port)
        refused = await asyncio.wait_for(read_until_closed(reader), PATIENCE_S)
        writer.close()
        assert refused.startswith(b"HTTP/1.1 503 ")
        assert b"Retry-After: 1\r\n" in refused
        assert b'"too_many_connections"' in refused

        # A freed slot is usable again once the server has seen the close.
        held.pop().close()
        for _ in range(int(PATIENCE_S / 0.05)):
            reader, writer = await asyncio.open_connection(host, port)
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: relay\r\nConnection: close\r\n\r\n")
            answer = await asyncio.wait_for(read_until_closed(reader), PATIENCE_S)
            writer.close()
            if not answer.startswith(b"HTTP/1.1 503 "):
                break
            await asyncio.sleep(0.05)
        assert answer.startswith(b"HTTP/1.1 200 ")
    finally:
        for writer in held:
            writer.close()
        await runner.cleanup()


async def test_malformed_requests_are_counted_not_logged(
    kafka_bootstrap: str, topic: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """aiohttp would log each with a traceback at ERROR (anyone could flood the logs) and
    answer in plain text quoting the offending bytes: each gets the documented JSON error,
    which quotes nothing of the request."""
    config = make_config(bootstrap=kafka_bootstrap, topic=topic, var=tmp_path)
    counted = REJECTED.labels("unknown", "malformed_http")
    before = counted._value.get()
    runner = await start_server(config)
    host, port = runner.addresses[0][:2]
    requests = (
        b"POST /webhooks/invoices HTTP/1.1\r\nHost: x\r\nX-A: leaked\x00b\r\n\r\n",
        b"POST /webhooks/invoices HTTP/1.1\r\nHost: x\r\nX-Leaked value\r\n\r\n",
        b"POST /webhooks/invoices HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        b"POST / HTTP/1.1\r\n" + b"X-Many: 1\r\n" * 100 + b"\r\n",
        b"LEAKED / HTTP/1.1\r\nHost: x\r\n\r\n",
        b"POST /webhooks/invoices HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nleaked\r\n",
    )
    try:
        for request in requests:
            reader, writer = await asyncio.open_connection(host, port)
            writer.write(request)
            answer = await asyncio.wait_for(read_until_closed(reader), PATIENCE_S)
            writer.close()
            assert re.match(rb"HTTP/1\.[01] 400 ", answer), answer
            assert b"\r\nContent-Type: application/json" in answer, answer
            document = orjson.loads(status_and_body(answer)[1])
            assert document["error"] == "malformed_http", document
            assert "leaked" not in document["message"].lower(), document
    finally:
        await runner.cleanup()
    assert counted._value.get() == before + len(requests)
    assert [r for r in caplog.records if r.name == "aiohttp.server"] == []


# --- what a request costs after its answer, and in pieces -----------------------------------

# Longer than PATIENCE_S: a server that kept reading a refused body for its read timeout (as
# aiohttp's lingering did) would still hold the connection when the test gives up.
LINGERING_S = 4 * PATIENCE_S


def chunked(body: bytes, size: int, *, last: bool = True) -> bytes:
    """``body`` in the chunked framing, ``size`` bytes a chunk (without the last, empty
    chunk when ``last`` is False: the body then goes on)."""
    pieces = (body[start : start + size] for start in range(0, len(body), size))
    framed = b"".join(f"{len(piece):x}\r\n".encode() + piece + b"\r\n" for piece in pieces)
    return framed + (b"0\r\n\r\n" if last else b"")


def head(method: str, path: str, headers: dict[str, str], framing: str) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: relay", framing]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def status_and_body(answer: bytes) -> tuple[int, bytes]:
    status_line, _, rest = answer.partition(b"\r\n")
    return int(status_line.split()[1]), rest.partition(b"\r\n\r\n")[2]


async def refusing_relay(
    aiohttp_client: Any, kafka_bootstrap: str, topic: str, tmp_path: Path, **server: Any
) -> Any:
    config = make_config(
        bootstrap=kafka_bootstrap,
        topic=topic,
        var=tmp_path,
        server={"read_timeout_s": LINGERING_S, **server},
        providers={
            "invoices": {"profile": "usdt-invoice", "secrets": [INVOICE_SECRET]},
            "listed": {
                "profile": "usdt-invoice",
                "secrets": [INVOICE_SECRET],
                "allow_ips": ["192.0.2.0/24"],
            },
        },
    )
    return await start_relay(aiohttp_client, config)


@pytest.mark.parametrize(
    ("method", "path", "content_type", "framing", "status"),
    [
        ("POST", "/webhooks/nope", "application/json", "Transfer-Encoding: chunked", 404),
        ("POST", "/webhooks/listed", "application/json", "Transfer-Encoding: chunked", 403),
        ("GET", "/webhooks/invoices", "application/json", "Transfer-Encoding: chunked", 405),
        ("POST", "/webhooks/invoices", "text/plain", "Transfer-Encoding: chunked", 415),
        ("POST", "/webhooks/invoices", "application/json", "Content-Length: 2097152", 413),
        ("GET", "/healthz", "application/json", "Transfer-Encoding: chunked", 200),
    ],
)
async def test_an_answer_before_the_body_closes_the_connection_unread(
    aiohttp_client: Any,
    kafka_bootstrap: str,
    topic: str,
    tmp_path: Path,
    method: str,
    path: str,
    content_type: str,
    framing: str,
    status: int,
) -> None:
    """Answered, then closed: the rest of the body is not waited for (nor parsed)."""
    relay = await refusing_relay(aiohttp_client, kafka_bootstrap, topic, tmp_path)
    reader, writer = await open_raw(relay)
    started = b"x" * 1024
    first = chunked(started, 1, last=False) if "chunked" in framing else started
    writer.write(head(method, path, {"Content-Type": content_type}, framing) + first)
    try:
        # The body never ends: only the server closing ends this read.
        answer = await asyncio.wait_for(read_until_closed(reader), PATIENCE_S)
    finally:
        writer.close()
    assert status_and_body(answer)[0] == status, answer[:200]
    assert b"\r\nConnection: close\r\n" in answer


async def test_what_follows_a_refusal_is_thrown_away_up_to_the_body_limit(
    aiohttp_client: Any, kafka_bootstrap: str, topic: str, tmp_path: Path
) -> None:
    """Past four times ``[server] max_body_bytes`` more, the connection is reset, however
    long the read timeout: a refused sender cannot keep Relay reading."""
    limit = 16 * 1024
    relay = await refusing_relay(
        aiohttp_client, kafka_bootstrap, topic, tmp_path, max_body_bytes=limit
    )
    reader, writer = await open_raw(relay)
    headers = {"Content-Type": "application/json"}
    writer.write(head("POST", "/webhooks/nope", headers, "Transfer-Encoding: chunked"))
    answer = await asyncio.wait_for(reader.readuntil(b"}"), PATIENCE_S)
    assert status_and_body(answer)[0] == 404
    piece = chunked(b"x" * 65536, 65536, last=False)
    sent = 0
    with contextlib.suppress(ConnectionError):
        while sent < 2048 * limit:  # 32 MiB: far past the limit and any socket buffers
            writer.write(piece)
            await asyncio.wait_for(writer.drain(), PATIENCE_S)
            sent += len(piece)
    writer.close()
    assert sent < 2048 * limit, "the server went on reading a refused body"


async def test_what_trickles_in_after_a_refusal_is_paced(
    aiohttp_client: Any, kafka_bootstrap: str, topic: str, tmp_path: Path, reads: list[int]
) -> None:
    """Thrown away unparsed, and read at the pace of any request that trickles in."""
    relay = await refusing_relay(aiohttp_client, kafka_bootstrap, topic, tmp_path)
    reader, writer = await open_raw(relay)
    headers = {"Content-Type": "application/json"}
    writer.write(head("POST", "/webhooks/nope", headers, "Transfer-Encoding: chunked"))
    try:
        answer = await asyncio.wait_for(reader.readuntil(b"}"), PATIENCE_S)
        assert status_and_body(answer)[0] == 404
        pauses = READ_PAUSES._value.get()
        rest = chunked(b"x" * 64, 1, last=False)
        with contextlib.suppress(ConnectionError):
            await trickle(writer, rest)
    finally:
        writer.close()
    assert_paced(pauses, reads, len(rest))


async def test_a_body_in_too_many_chunks_is_a_400(
    aiohttp_client: Any, kafka_bootstrap: str, topic: str, tmp_path: Path
) -> None:
    """Each chunk costs aiohttp's parser calls of its own: a body comes in at most
    MAX_CHUNKS of them, whatever their size."""
    relay = await small_relay(aiohttp_client, kafka_bootstrap, topic, tmp_path)
    sample = signed_webhook(relay.config)
    webhook = signed_webhook(relay.config, body=sample.body + b" " * MAX_CHUNKS)
    headers = {**webhook.headers, "Connection": "close"}
    framing = "Transfer-Encoding: chunked"
    for size, status in ((1, 400), (len(webhook.body) // 100 + 1, 200)):
        reader, writer = await open_raw(relay)
        writer.write(head("POST", webhook.path, headers, framing) + chunked(webhook.body, size))
        try:
            answer = await asyncio.wait_for(read_until_closed(reader), PATIENCE_S)
        finally:
            writer.close()
        code, body = status_and_body(answer)
        assert code == status, answer[:300]
        if status == 400:
            assert orjson.loads(body)["error"] == "fragmented_body"

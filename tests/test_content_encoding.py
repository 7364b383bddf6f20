"""Request bodies: ``Content-Encoding`` refused unless an instance accepts it, compressed
bodies inflated under the instance's limit, and each instance's own body limit.

Most tests need no broker: every request here is refused before the pipeline, or is
acknowledged from the spool (Kafka is an unused port). The one that reads the topic
runs on the broker matrix.
"""

from __future__ import annotations

import gzip
import logging
import socket
import tracemalloc
import zlib
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import orjson
import pytest

from relay.app import build_app
from relay.body import MAX_GZIP_MEMBERS, Inflater, content_encoding
from relay.config import ConfigError, parse_config
from relay.errors import BodyTooLarge, FragmentedBody, UndecodableBody, UnsupportedContentEncoding
from relay.http import SERVICES
from relay.profiles import PROFILES
from relay.providers.base import DOCUMENT_BODY_LIMIT
from tests.conftest import (
    INVOICE_SECRET,
    RelayUnderTest,
    SignedWebhook,
    event_of,
    make_config,
    read_topic,
    signed_webhook,
    start_relay,
)

KIB = 1024
MIB = 1024 * KIB
GITHUB_SECRET = "test-github-secret-0123456789"
INVOICES = {"profile": "usdt-invoice", "secrets": [INVOICE_SECRET]}
GITHUB = {"profile": "github", "secrets": [GITHUB_SECRET]}
GITHUB_HEADERS = {"X-GitHub-Event": "issues", "X-GitHub-Delivery": "delivery-1"}


def unused_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def relay_without_kafka(
    aiohttp_client: Any,
    tmp_path: Path,
    providers: Mapping[str, Mapping[str, Any]],
    server: Mapping[str, Any] | None = None,
) -> RelayUnderTest:
    """A Relay whose broker is down: what it accepts, it acknowledges from the spool."""
    config = make_config(
        bootstrap=f"127.0.0.1:{unused_port()}",
        topic="unused",
        var=tmp_path,
        providers=providers,
        # Stopping waits this long for the spool to drain into the broker that is down.
        server={"shutdown_grace_s": 0.1, **(server or {})},
    )
    client = await aiohttp_client(build_app(config))
    return RelayUnderTest(client, config, client.app[SERVICES])


async def post_encoded(
    relay: RelayUnderTest, webhook: SignedWebhook, data: Any, encoding: str
) -> Any:
    headers = {**webhook.headers, "Content-Encoding": encoding}
    return await relay.client.post(webhook.path, data=data, headers=headers)


def raw_deflate(data: bytes) -> bytes:
    compressor = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return compressor.compress(data) + compressor.flush()


def zeros_gzip(size: int) -> bytes:
    """``size`` zero bytes, gzipped a mebibyte at a time (never all in memory)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = bytes(MIB)
    parts = [compressor.compress(block) for _ in range(size // MIB)]
    return b"".join(parts) + compressor.flush()


def padded(config: Any, provider: str, size: int, **headers: str) -> SignedWebhook:
    """A signed webhook whose JSON body is about ``size`` bytes."""
    sample = orjson.loads(signed_webhook(config, provider).body)
    body = orjson.dumps({**sample, "pad": "x" * size})
    return signed_webhook(config, provider, body=body, headers=headers)


def assert_no_traceback(caplog: pytest.LogCaptureFixture) -> None:
    """Neither Relay's one line per webhook nor aiohttp's server log carries a traceback."""
    assert [r for r in caplog.records if r.exc_info] == []
    assert [r for r in caplog.records if r.name in ("aiohttp.server", "aiohttp.web")] == []
    [line] = [r for r in caplog.records if r.name == "relay.http"]
    assert line.levelno == logging.WARNING  # a rejected webhook, not an error


# --- Content-Encoding refused --------------------------------------------------------------


@pytest.mark.parametrize(
    ("encoding", "compress"),
    [
        ("gzip", gzip.compress),
        ("deflate", zlib.compress),
        ("br", lambda body: b"\x1b" + body),  # not brotli: refused before it is read
        ("zstd", lambda body: body),
        ("gzip, gzip", lambda body: gzip.compress(gzip.compress(body))),
    ],
)
async def test_an_encoded_body_is_a_415_unless_the_instance_accepts_it(
    aiohttp_client: Any, tmp_path: Path, encoding: str, compress: Any
) -> None:
    relay = await relay_without_kafka(
        aiohttp_client,
        tmp_path,
        # "gzip, gzip" is refused even where gzip is accepted: no provider stacks encodings.
        {"invoices": {**INVOICES, **({"content_encodings": ["gzip"]} if "," in encoding else {})}},
    )
    webhook = signed_webhook(relay.config)
    response = await post_encoded(relay, webhook, compress(webhook.body), encoding)
    assert response.status == 415, await response.text()
    assert (await response.json())["error"] == "unsupported_content_encoding"


async def test_an_accepted_encoding_does_not_admit_the_others(
    aiohttp_client: Any, tmp_path: Path
) -> None:
    relay = await relay_without_kafka(
        aiohttp_client, tmp_path, {"invoices": {**INVOICES, "content_encodings": ["gzip"]}}
    )
    webhook = signed_webhook(relay.config)
    for encoding, data in (("deflate", zlib.compress(webhook.body)), ("br", b"\x1b")):
        response = await post_encoded(relay, webhook, data, encoding)
        assert response.status == 415, encoding
    # No encoding, or identity, is always fine.
    assert (await relay.post(webhook)).status == 200
    for encoding in ("identity", "Identity", ""):
        other = signed_webhook(relay.config)
        response = await post_encoded(relay, other, other.body, encoding)
        assert response.status == 200, encoding


# --- compressed bodies accepted ------------------------------------------------------------


async def test_a_gzip_body_signed_uncompressed_is_published(
    aiohttp_client: Any, kafka_bootstrap: str, topic: str, tmp_path: Path
) -> None:
    config = make_config(
        bootstrap=kafka_bootstrap,
        topic=topic,
        var=tmp_path,
        providers={"invoices": {**INVOICES, "content_encodings": ["gzip"]}},
    )
    relay = await start_relay(aiohttp_client, config)
    webhook = signed_webhook(config)
    response = await post_encoded(relay, webhook, gzip.compress(webhook.body), "gzip")
    assert response.status == 200, await response.text()
    [record] = await read_topic(kafka_bootstrap, topic, expect=1)
    assert event_of(record)["id"] == webhook.headers["X-Webhook-Id"]


@pytest.mark.parametrize(
    ("accepted", "encoding", "compress"),
    [
        ("gzip", "GZip", gzip.compress),
        ("gzip", "x-gzip", gzip.compress),
        # Several gzip members one after another are one gzip body (RFC 1952).
        ("gzip", "gzip", lambda body: gzip.compress(body[:10]) + gzip.compress(body[10:])),
        ("deflate", "deflate", zlib.compress),
        ("deflate", "deflate", raw_deflate),  # what some senders write for "deflate"
    ],
)
async def test_an_accepted_encoding_is_undone_before_verification(
    aiohttp_client: Any, tmp_path: Path, accepted: str, encoding: str, compress: Any
) -> None:
    relay = await relay_without_kafka(
        aiohttp_client, tmp_path, {"invoices": {**INVOICES, "content_encodings": [accepted]}}
    )
    webhook = signed_webhook(relay.config)
    response = await post_encoded(relay, webhook, compress(webhook.body), encoding)
    assert response.status == 200, await response.text()


# --- compressed bodies refused -------------------------------------------------------------


async def test_a_gzip_bomb_is_a_413_without_being_inflated(
    aiohttp_client: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """50 MiB of zeros gzip to about 50 KiB: under the limit on the wire, far over unpacked."""
    bomb = zeros_gzip(50 * MIB)
    assert len(bomb) < 64 * KIB
    produced: list[int] = []
    feed = Inflater.feed

    def counting_feed(self: Inflater, data: bytes) -> bytes:
        try:
            return feed(self, data)
        finally:
            produced.append(self.produced)

    monkeypatch.setattr(Inflater, "feed", counting_feed)
    relay = await relay_without_kafka(
        aiohttp_client,
        tmp_path,
        {
            "invoices": {**INVOICES, "content_encodings": ["gzip"]},
            "gh": {**GITHUB, "content_encodings": ["gzip"]},
        },
    )
    for provider, limit in (("invoices", DOCUMENT_BODY_LIMIT), ("gh", MIB)):
        webhook = signed_webhook(relay.config, provider, headers=GITHUB_HEADERS)
        produced.clear()
        tracemalloc.start()
        try:
            response = await post_encoded(relay, webhook, bomb, "gzip")
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert response.status == 413, await response.text()
        assert (await response.json())["error"] == "body_too_large"
        # The inflater stopped one byte past the limit, and Relay (with the test client
        # in the same process) held a few MiB at most, not the 50 it unpacks to.
        assert max(produced) == limit + 1, provider
        assert peak < limit + 4 * MIB, (provider, peak)


@pytest.mark.parametrize(
    ("encoding", "damage"),
    [
        ("gzip", lambda body: gzip.compress(body)[:-12]),  # truncated
        ("gzip", lambda body: gzip.compress(body)[:15]),  # truncated in the header
        ("gzip", lambda body: b"this is not gzip at all " + body),
        ("gzip", lambda body: gzip.compress(body) + b"trailing junk"),
        ("deflate", lambda body: zlib.compress(body)[:-3]),
        ("deflate", lambda body: zlib.compress(body) + b"x"),
        ("deflate", lambda body: b"\x78\x9c" + bytes(range(256))),
    ],
    ids=[
        "gzip-truncated",
        "gzip-header-only",
        "gzip-garbage",
        "gzip-trailing",
        "deflate-truncated",
        "deflate-trailing",
        "deflate-garbage",
    ],
)
async def test_a_broken_compressed_body_is_a_400_without_a_traceback(
    aiohttp_client: Any,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    encoding: str,
    damage: Any,
) -> None:
    relay = await relay_without_kafka(
        aiohttp_client, tmp_path, {"invoices": {**INVOICES, "content_encodings": [encoding]}}
    )
    webhook = signed_webhook(relay.config)
    caplog.set_level(logging.DEBUG)
    response = await post_encoded(relay, webhook, damage(webhook.body), encoding)
    assert response.status == 400, await response.text()
    assert (await response.json())["error"] == "undecodable_body"
    assert_no_traceback(caplog)


# --- per-instance body limits --------------------------------------------------------------


async def test_a_gzip_body_of_too_many_members_is_a_400(
    aiohttp_client: Any, tmp_path: Path
) -> None:
    """Each member costs a decompressor, and an empty one is 20 bytes: a 1 MiB body of
    them cost 218 ms. A body may hold MAX_GZIP_MEMBERS."""
    relay = await relay_without_kafka(
        aiohttp_client, tmp_path, {"invoices": {**INVOICES, "content_encodings": ["gzip"]}}
    )
    webhook = signed_webhook(relay.config)
    empty = gzip.compress(b"")
    beyond = empty * MAX_GZIP_MEMBERS + gzip.compress(webhook.body)
    response = await post_encoded(relay, webhook, beyond, "gzip")
    assert response.status == 400, await response.text()
    assert (await response.json())["error"] == "fragmented_body"
    within = empty * (MAX_GZIP_MEMBERS - 1) + gzip.compress(webhook.body)
    response = await post_encoded(relay, webhook, within, "gzip")
    assert response.status == 200, await response.text()


async def test_each_profile_has_its_own_default_body_limit(
    aiohttp_client: Any, tmp_path: Path
) -> None:
    relay = await relay_without_kafka(
        aiohttp_client, tmp_path, {"invoices": INVOICES, "gh": GITHUB}
    )
    response = await relay.post(padded(relay.config, "invoices", 100 * KIB))
    assert response.status == 413
    assert (await response.json())["error"] == "body_too_large"
    github = padded(relay.config, "gh", 100 * KIB, **GITHUB_HEADERS)
    response = await relay.post(github)
    assert response.status == 200, await response.text()


async def test_an_instance_limit_applies_to_chunked_bodies_too(
    aiohttp_client: Any, tmp_path: Path
) -> None:
    """No Content-Length to refuse up front: the bytes are counted as they arrive."""
    relay = await relay_without_kafka(
        aiohttp_client, tmp_path, {"gh": {**GITHUB, "max_body_bytes": 8 * KIB}}
    )
    webhook = padded(relay.config, "gh", 20 * KIB, **GITHUB_HEADERS)

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(webhook.body), 1000):
            yield webhook.body[start : start + 1000]

    response = await relay.client.post(webhook.path, data=chunks(), headers=webhook.headers)
    assert response.status == 413
    small = signed_webhook(relay.config, "gh", headers=GITHUB_HEADERS)
    assert (await relay.post(small)).status == 200


# --- configuration -------------------------------------------------------------------------


def parse_instance(instance: Mapping[str, Any], server: Mapping[str, Any] | None = None) -> Any:
    document = {"server": dict(server or {}), "providers": {"inst": dict(instance)}}
    return parse_config(document, env={}).providers["inst"]


def test_body_limits_come_from_the_profile_the_instance_and_the_server() -> None:
    documents = ("usdt-collect-pay", "wallet-topup", "v2-payout", "usdt-invoice", "payin-order")
    # Adyen's signatures are inside the body, so every request is parsed before any is checked;
    # Wise's and PayPal's notifications are one small JSON object, as the documents' are.
    own = {"adyen": 128 * KIB, "wise": 64 * KIB, "paypal": 64 * KIB}
    for name, profile in PROFILES.items():
        expected = DOCUMENT_BODY_LIMIT if name in documents else own.get(name)
        assert profile.max_body_bytes == expected, name
    assert parse_instance(INVOICES).max_body_bytes == 64 * KIB
    assert parse_instance(GITHUB).max_body_bytes == MIB
    assert parse_instance({**INVOICES, "max_body_bytes": 200 * KIB}).max_body_bytes == 200 * KIB
    # A lowered server limit cuts the profile's default down to it.
    assert parse_instance(INVOICES, {"max_body_bytes": 4 * KIB}).max_body_bytes == 4 * KIB
    assert parse_instance(GITHUB, {"max_body_bytes": 4 * MIB}).max_body_bytes == 4 * MIB


def test_content_encodings_are_validated_and_normalized() -> None:
    assert parse_instance(INVOICES).content_encodings == ()
    instance = parse_instance({**INVOICES, "content_encodings": ["GZIP", "deflate", "gzip"]})
    assert instance.content_encodings == ("gzip", "deflate")


@pytest.mark.parametrize(
    ("options", "key", "problem"),
    [
        ({"content_encodings": ["br"]}, "content_encodings[0]", "'br' is not an encoding"),
        ({"content_encodings": ["gzip", "zstd"]}, "content_encodings[1]", "use gzip or deflate"),
        ({"content_encodings": ["identity"]}, "content_encodings[0]", "always accepted"),
        ({"content_encodings": "gzip"}, "content_encodings", "list of strings"),
        ({"max_body_bytes": 0}, "max_body_bytes", "greater than zero"),
        ({"max_body_bytes": -5}, "max_body_bytes", "greater than zero"),
        ({"max_body_bytes": "64k"}, "max_body_bytes", "must be an integer"),
        ({"max_body_bytes": True}, "max_body_bytes", "must be an integer"),
        ({"max_body_bytes": 2 * MIB}, "max_body_bytes", "above [server] max_body_bytes"),
    ],
)
def test_bad_body_options_name_the_key(options: dict[str, Any], key: str, problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_instance({**INVOICES, **options})
    assert caught.value.key == f"providers.inst.{key}"
    assert problem in caught.value.problem


# --- the pieces ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([], None),
        (["identity"], None),
        (["Identity, gzip"], "gzip"),
        (["gzip", "identity"], "gzip"),
        (["X-GZIP"], "gzip"),
    ],
)
def test_content_encoding_reads_the_headers(values: list[str], expected: str | None) -> None:
    assert content_encoding(values, ("gzip",)) == expected


@pytest.mark.parametrize("values", [["gzip"], ["gzip", "gzip"], ["deflate, gzip"], ["br"]])
def test_content_encoding_refuses_what_is_not_accepted(values: list[str]) -> None:
    with pytest.raises(UnsupportedContentEncoding):
        content_encoding(values, ("deflate",) if values == ["gzip"] else ("gzip",))


def test_the_inflater_stops_one_byte_past_the_limit_in_any_chunking() -> None:
    body = bytes(range(256)) * 64  # 16 KiB
    packed = gzip.compress(body)
    for step in (1, 7, 100, len(packed)):
        inflater = Inflater("gzip", limit=len(body))
        out = b"".join(inflater.feed(packed[i : i + step]) for i in range(0, len(packed), step))
        inflater.finish()
        assert out == body, step
        inflater = Inflater("gzip", limit=len(body) - 1)
        with pytest.raises(BodyTooLarge):
            for i in range(0, len(packed), step):
                inflater.feed(packed[i : i + step])
        assert inflater.produced == len(body), step


def test_the_inflater_refuses_a_body_that_stops_early() -> None:
    inflater = Inflater("gzip", limit=MIB)
    inflater.feed(gzip.compress(b"hello")[:-4])
    with pytest.raises(UndecodableBody):
        inflater.finish()
    Inflater("gzip", limit=MIB).finish()  # an empty body is an empty body


def test_the_inflater_counts_gzip_members_in_any_chunking() -> None:
    body = gzip.compress(b"") * MAX_GZIP_MEMBERS + gzip.compress(b"{}")
    for step in (1, 20, len(body)):
        inflater = Inflater("gzip", limit=MIB)
        with pytest.raises(FragmentedBody):
            for i in range(0, len(body), step):
                inflater.feed(body[i : i + step])
        inflater = Inflater("gzip", limit=MIB)
        out = b"".join(inflater.feed(body[i : i + step]) for i in range(20, len(body), step))
        inflater.finish()
        assert out == b"{}", step

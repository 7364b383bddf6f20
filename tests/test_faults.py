"""Never lose an acknowledged webhook: Relay as a real process under faults.

Every test counts what Relay acknowledged (a 200) and what reached Kafka (or
is still in the spool), and holds them equal, one record per event id:

- the broker down from the start, and a broker that stalls (SIGSTOP) so that
  sends acknowledge late: every webhook spooled, then published once, in
  order per key;
- Relay killed with SIGKILL after acknowledging, a second SIGTERM during the
  graceful shutdown, a worker of ``--workers 2`` killed: a restart delivers
  everything, once;
- SIGTERM under load, with Kafka up and down;
- dedup: two processes on one Redis, Redis down (503, fail closed), SQLite
  across a restart, ``--workers 2`` on one SQLite file;
- a full spool: 503 with Retry-After, nothing acknowledged dropped.

Tests that stop, start or stall a broker run their own tansu (``DevBroker``),
so they work whatever the session broker is; the others run on each broker
of the session's matrix.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from relay.config import Config, load_config
from relay.devbroker import DevBroker
from relay.kafka import create_topics
from relay.profiles import PROFILES
from relay.settings import KafkaConfig
from relay.spool import Spool
from tests.conftest import SignedWebhook, TestBroker, read_topic, signed_webhook
from tests.redis_server import redis_server, start_valkey
from tests.relay_process import Answer, RelayProcess, post, unused_port, write_config

# Several status changes per order, posted one after another, so that per-key order means something.
STATUS_CHANGES = ("pending", "pending", "pending", "pending", "confirmed")
# Waits for records that a drainer publishes after a broker comes back: generous, never a measurement.
DRAIN_WAIT_S = 90.0

MakeRelay = Callable[..., RelayProcess]


@pytest.fixture
def make_relay(tmp_path: Path) -> Iterator[MakeRelay]:
    """``make_relay(name, bootstrap=, topic=, ...)``: a configured, not yet started Relay process.

    Every process made here is killed (with its workers) when the test ends.
    """
    made: list[RelayProcess] = []

    def make(
        name: str, *, bootstrap: str, topic: str, workers: int = 1, **sections: Any
    ) -> RelayProcess:
        var = tmp_path / name
        var.mkdir(exist_ok=True)
        port = unused_port()
        config_path = write_config(
            var / "relay.toml", port=port, bootstrap=bootstrap, topic=topic, var=var, **sections
        )
        relay = RelayProcess(config_path, port, var / "relay.log", workers=workers)
        made.append(relay)
        return relay

    yield make
    for relay in made:
        relay.kill()


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[DevBroker]:
    """A tansu of this test's own, not started: the test decides when the broker is up."""
    broker = DevBroker(log_path=tmp_path / "tansu.log")
    yield broker
    broker.stop()


@pytest.fixture
async def session_topic(broker: TestBroker, topic: str) -> str:
    # Created up front: a production-like broker may not create topics on first use.
    await create_topics(KafkaConfig(bootstrap_servers=broker.bootstrap_servers), [topic])
    return topic


def on(broker: TestBroker) -> dict[str, Any]:
    """The ``[kafka]`` settings Relay runs with on this broker of the matrix."""
    return {"idempotence": broker.idempotence}


def config_of(relay: RelayProcess) -> Config:
    return load_config(relay.config_path, env={})


def event_id(webhook: SignedWebhook) -> str:
    return webhook.headers["X-Webhook-Id"]


def order_chains(config: Config, orders: int) -> list[list[SignedWebhook]]:
    """For each of ``orders`` orders, its notifications in the order the provider sends them.

    A repeated status is a distinct notification only if its signed body differs (Relay
    deduplicates identical signed bodies, whatever their webhook ids), so each one carries
    its step in ``metadata``.
    """
    chains = []
    for n in range(orders):
        chain = []
        for step, status in enumerate(STATUS_CHANGES):
            sample = PROFILES["usdt-invoice"].samples[status].build(time.time(), f"ORDER-{n:04d}")
            payload = orjson.loads(sample.body)
            payload["metadata"]["step"] = step
            body = orjson.dumps(payload)
            chain.append(signed_webhook(config, body=body, headers=dict(sample.headers)))
        chains.append(chain)
    return chains


async def post_chains(
    base_url: str, chains: Sequence[Sequence[SignedWebhook]]
) -> list[list[Answer]]:
    """Orders concurrently; each order's changes one after another, each after the last's answer."""
    async with aiohttp.ClientSession() as session:

        async def one_order(chain: Sequence[SignedWebhook]) -> list[Answer]:
            return [await post(session, base_url, webhook) for webhook in chain]

        return await asyncio.gather(*(one_order(chain) for chain in chains))


def ids_of(records: Sequence[Any]) -> list[str]:
    return [dict(record.headers)["relay_id"].decode() for record in records]


def duplicates(ids: Sequence[str]) -> dict[str, int]:
    return {key: count for key, count in Counter(ids).items() if count > 1}


def ids_by_key(records: Sequence[Any]) -> dict[bytes, list[str]]:
    """Each record key's event ids in log order (one key lives on one partition)."""
    by_key: dict[bytes, list[str]] = {}
    for record in records:
        by_key.setdefault(record.key, []).append(dict(record.headers)["relay_id"].decode())
    return by_key


def assert_each_once(records: Sequence[Any], webhooks: Sequence[SignedWebhook]) -> None:
    """Every webhook's event is on the topic exactly once, and nothing else is."""
    assert duplicates(ids_of(records)) == {}
    assert sorted(ids_of(records)) == sorted(event_id(webhook) for webhook in webhooks)


async def post_one_connection_each(
    base_url: str, webhooks: Sequence[SignedWebhook]
) -> list[Answer]:
    """One after another, a connection each, so that SO_REUSEPORT spreads them over workers."""
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as session:
        return [await post(session, base_url, webhook) for webhook in webhooks]


async def spooled_ids(spool_path: Path) -> list[str]:
    """Event ids still pending in a spool that no process holds any more."""
    spool = Spool.open(spool_path)
    try:
        return [dict(entry.record.headers)["relay_id"].decode() for entry in spool.pending()]
    finally:
        await spool.close()


async def test_broker_down_every_webhook_is_spooled_and_published_in_order(
    make_relay: MakeRelay, own_broker: DevBroker, topic: str
) -> None:
    relay = make_relay("relay", bootstrap=own_broker.bootstrap_servers, topic=topic)
    await relay.start()
    chains = order_chains(config_of(relay), orders=100)

    answers = await post_chains(relay.url, chains)

    statuses = Counter(answer.status for chain in answers for answer in chain)
    assert statuses == {200: 500}, relay.log_tail()
    ready = await relay.ready()
    assert ready["kafka"]["connected"] is False
    assert ready["spool"]["depth"] == 500

    own_broker.start()
    # A consumer that starts while the drainer creates the topic can miss it on tansu: read after.
    await relay.wait_drained(DRAIN_WAIT_S)
    records = await read_topic(own_broker.bootstrap_servers, topic, expect=500)

    assert duplicates(ids_of(records)) == {}
    assert len(records) == 500
    assert ids_by_key(records) == {
        f"invoices:ORDER-{n:04d}".encode(): [event_id(webhook) for webhook in chain]
        for n, chain in enumerate(chains)
    }


async def test_stalled_broker_late_acknowledgements_are_not_published_twice(
    make_relay: MakeRelay, own_broker: DevBroker, topic: str
) -> None:
    own_broker.start()
    relay = make_relay(
        "relay",
        bootstrap=own_broker.bootstrap_servers,
        topic=topic,
        server={"ack_budget_max_s": 1.0},
    )
    await relay.start()
    await relay.wait_drained(DRAIN_WAIT_S)
    config = config_of(relay)
    # The topic exists and the producer knows its leader before the broker stalls.
    warm_up = signed_webhook(config, order="WARM-UP")
    async with aiohttp.ClientSession() as session:
        assert (await post(session, relay.url, warm_up)).status == 200
    chains = order_chains(config, orders=100)

    # SIGSTOP: connections stay open and sends hang, so the first event of each order
    # misses its budget and is spooled while its send is still pending.
    assert own_broker.pid is not None
    os.kill(own_broker.pid, signal.SIGSTOP)
    try:
        answers = await post_chains(relay.url, chains)
        ready = await relay.ready()
    finally:
        os.kill(own_broker.pid, signal.SIGCONT)
    await relay.wait_drained(DRAIN_WAIT_S)
    records = await read_topic(own_broker.bootstrap_servers, topic, expect=501)

    assert Counter(answer.status for chain in answers for answer in chain) == {200: 500}
    assert ready["spool"]["depth"] == 500
    assert duplicates(ids_of(records)) == {}
    assert len(records) == 501
    by_key = ids_by_key(records)
    assert by_key.pop(b"invoices:WARM-UP") == [event_id(warm_up)]
    assert by_key == {
        f"invoices:ORDER-{n:04d}".encode(): [event_id(webhook) for webhook in chain]
        for n, chain in enumerate(chains)
    }


async def test_readyz_shows_a_broker_lost_after_connecting_and_its_return(
    make_relay: MakeRelay, own_broker: DevBroker, topic: str
) -> None:
    """The producer stays "started" when its broker dies (aiokafka reconnects by itself):
    readiness follows what Kafka does with the records, not that flag."""
    own_broker.start()
    relay = make_relay(
        "relay",
        bootstrap=own_broker.bootstrap_servers,
        topic=topic,
        server={"ack_budget_max_s": 0.5},
        kafka={"request_timeout_ms": 1500},
    )
    await relay.start()
    await relay.wait_drained(DRAIN_WAIT_S)
    config = config_of(relay)
    webhooks = [signed_webhook(config, order=f"ORDER-{n}") for n in range(3)]
    async with aiohttp.ClientSession() as session:
        assert (await post(session, relay.url, webhooks[0])).status == 200
        assert (await relay.ready())["kafka"]["connected"] is True

        assert own_broker.pid is not None
        os.kill(own_broker.pid, signal.SIGSTOP)
        try:
            for webhook in webhooks[1:]:
                assert (await post(session, relay.url, webhook)).status == 200  # spooled
            lost = await _ready_when(relay, lambda ready: not ready["kafka"]["connected"])
        finally:
            os.kill(own_broker.pid, signal.SIGCONT)
    assert lost["kafka"]["error"]
    assert lost["ready"] is True  # the spool takes the events meanwhile
    assert lost["spool"]["depth"] >= 1

    await relay.wait_drained(DRAIN_WAIT_S)
    back = await relay.ready()
    assert (back["kafka"]["connected"], back["kafka"]["error"]) == (True, None)
    records = await read_topic(own_broker.bootstrap_servers, topic, expect=3)
    # Nothing lost. A batch the drainer sent into the stalled broker timed out
    # (request_timeout_ms) but the broker may still write it once it resumes: that
    # record can then arrive twice, Kafka's at-least-once edge (see README, Durability).
    assert set(ids_of(records)) == {event_id(webhook) for webhook in webhooks}


async def test_readyz_notices_a_broker_killed_while_nothing_is_sent_and_its_return(
    make_relay: MakeRelay, own_broker: DevBroker, topic: str
) -> None:
    """No webhook arrives, so no send fails: the producer alone would say "connected" for
    as long as Relay runs (the issue saw it for over 60 s). The broker watch notices."""
    own_broker.start()
    relay = make_relay("relay", bootstrap=own_broker.bootstrap_servers, topic=topic)
    await relay.start()
    await relay.wait_drained(DRAIN_WAIT_S)
    assert (await relay.ready())["kafka"]["connected"] is True

    assert own_broker.pid is not None
    os.kill(own_broker.pid, signal.SIGKILL)
    own_broker.stop()  # reaps it
    lost = await _ready_when(relay, lambda ready: not ready["kafka"]["connected"])
    assert (lost["kafka"]["connected"], lost["kafka"]["error"]) == (False, "broker not answering")
    assert lost["ready"] is True  # the spool would take webhooks meanwhile

    own_broker.start()  # the same port, as a broker restarted in place
    back = await _ready_when(relay, lambda ready: ready["kafka"]["connected"])
    assert (back["kafka"]["connected"], back["kafka"]["error"]) == (True, None)


async def _ready_when(
    relay: RelayProcess, condition: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    """The first ``/readyz`` document that meets ``condition`` (a generous wait-until)."""
    deadline = asyncio.get_running_loop().time() + DRAIN_WAIT_S
    while True:
        ready = await relay.ready()
        if condition(ready) or asyncio.get_running_loop().time() > deadline:
            return ready
        await asyncio.sleep(0.1)


async def test_sigkill_after_acknowledging_loses_nothing(
    make_relay: MakeRelay, broker: TestBroker, session_topic: str, tmp_path: Path
) -> None:
    # First life: no broker at all, so every acknowledgement comes from the spool.
    first = make_relay(
        "relay",
        bootstrap=f"127.0.0.1:{unused_port()}",
        kafka=on(broker),
        topic=session_topic,
        dedup={"backend": "sqlite", "path": str(tmp_path / "relay" / "dedup.sqlite3")},
    )
    await first.start()
    chains = order_chains(config_of(first), orders=100)
    answers = await post_chains(first.url, chains)
    first.kill()

    assert Counter(answer.status for chain in answers for answer in chain) == {200: 500}
    # Second life: same spool and dedup files, and a broker to drain into.
    second = make_relay(
        "relay",
        bootstrap=broker.bootstrap_servers,
        kafka=on(broker),
        topic=session_topic,
        dedup={"backend": "sqlite", "path": str(tmp_path / "relay" / "dedup.sqlite3")},
    )
    await second.start()
    await second.wait_drained(DRAIN_WAIT_S)
    records = await read_topic(broker.bootstrap_servers, session_topic, expect=500)

    assert duplicates(ids_of(records)) == {}
    assert sorted(ids_of(records)) == sorted(event_id(w) for chain in chains for w in chain)
    assert ids_by_key(records) == {
        f"invoices:ORDER-{n:04d}".encode(): [event_id(webhook) for webhook in chain]
        for n, chain in enumerate(chains)
    }


async def test_two_processes_on_one_redis_store_publish_each_event_once(
    make_relay: MakeRelay, broker: TestBroker, session_topic: str
) -> None:
    with redis_server() as url:
        relays = [
            make_relay(
                name,
                bootstrap=broker.bootstrap_servers,
                kafka=on(broker),
                topic=session_topic,
                dedup={"backend": "redis", "url": url},
            )
            for name in ("a", "b")
        ]
        await asyncio.gather(*(relay.start() for relay in relays))
        webhooks = [signed_webhook(config_of(relays[0])) for _ in range(200)]

        async with aiohttp.ClientSession() as session:
            answers = await asyncio.gather(
                *(post(session, relay.url, webhook) for webhook in webhooks for relay in relays)
            )
        records = await read_topic(broker.bootstrap_servers, session_topic, expect=200)
        accepted = [
            await relay.metric("relay_webhooks_total", outcome="accepted") for relay in relays
        ]
        duplicate = [
            await relay.metric("relay_webhooks_total", outcome="duplicate") for relay in relays
        ]

    assert Counter(answer.status for answer in answers) == {200: 400}
    assert_each_once(records, webhooks)
    # Each event: one process published it, the other answered it as a duplicate.
    assert (sum(accepted), sum(duplicate)) == (200, 200)


async def test_redis_down_fails_closed_with_503(
    make_relay: MakeRelay, broker: TestBroker, session_topic: str
) -> None:
    with start_valkey() as valkey:
        relay = make_relay(
            "relay",
            bootstrap=broker.bootstrap_servers,
            kafka=on(broker),
            topic=session_topic,
            dedup={"backend": "redis", "url": valkey.url},
        )
        await relay.start()
        webhooks = [signed_webhook(config_of(relay)) for _ in range(20)]
        valkey.stop()
        async with aiohttp.ClientSession() as session:
            while_down = [await post(session, relay.url, webhook) for webhook in webhooks]
        with start_valkey(port=valkey.port):
            async with aiohttp.ClientSession() as session:
                retries = [await post(session, relay.url, webhook) for webhook in webhooks]
    records = await read_topic(broker.bootstrap_servers, session_topic, expect=20)

    # Fail closed: no acknowledgement without the store, and a Retry-After for the provider.
    assert {(answer.status, answer.retry_after) for answer in while_down} == {(503, "5")}
    assert {answer.status for answer in retries} == {200}
    assert_each_once(records, webhooks)


async def test_sqlite_dedup_survives_a_restart(
    make_relay: MakeRelay, broker: TestBroker, session_topic: str, tmp_path: Path
) -> None:
    dedup = {"backend": "sqlite", "path": str(tmp_path / "relay" / "dedup.sqlite3")}
    first = make_relay(
        "relay",
        bootstrap=broker.bootstrap_servers,
        kafka=on(broker),
        topic=session_topic,
        dedup=dedup,
    )
    await first.start()
    webhooks = [signed_webhook(config_of(first)) for _ in range(50)]
    async with aiohttp.ClientSession() as session:
        before = [await post(session, first.url, webhook) for webhook in webhooks]
    first.send_signal(signal.SIGTERM)
    assert await first.wait_exit() == 0

    second = make_relay(
        "relay",
        bootstrap=broker.bootstrap_servers,
        kafka=on(broker),
        topic=session_topic,
        dedup=dedup,
    )
    await second.start()
    async with aiohttp.ClientSession() as session:
        retries = [await post(session, second.url, webhook) for webhook in webhooks]
    records = await read_topic(broker.bootstrap_servers, session_topic, expect=50)

    assert [answer.status for answer in before + retries] == [200] * 100
    assert await second.metric("relay_webhooks_total", outcome="duplicate") == 50
    assert_each_once(records, webhooks)


async def sigterm_under_load(relay: RelayProcess, spool_path: Path) -> tuple[list[str], list[str]]:
    """Post 1000 webhooks from 20 senders; SIGTERM once 200 are acknowledged.

    Returns the acknowledged event ids and those left in the spool after the exit.
    """
    webhooks = [signed_webhook(config_of(relay)) for _ in range(1000)]
    pending = iter(webhooks)
    acknowledged: list[str] = []
    signalled = asyncio.Event()

    async def sender(session: aiohttp.ClientSession) -> None:
        # Each sender stops at its first request that got no answer: the server is going away.
        for webhook in pending:
            answer = await post(session, relay.url, webhook)
            if answer.status == 200:
                acknowledged.append(event_id(webhook))
            if len(acknowledged) >= 200 and not signalled.is_set():
                signalled.set()
                relay.send_signal(signal.SIGTERM)
            if answer.status is None:
                return

    async with aiohttp.ClientSession() as session:
        await asyncio.gather(*(sender(session) for _ in range(20)))
    assert signalled.is_set()
    assert await relay.wait_exit() == 0, relay.log_tail()
    # The load was still running when the signal came: not everything got an answer.
    assert len(acknowledged) < len(webhooks)
    return acknowledged, await spooled_ids(spool_path)


async def test_sigterm_under_load_keeps_every_acknowledged_webhook(
    make_relay: MakeRelay, broker: TestBroker, session_topic: str, tmp_path: Path
) -> None:
    relay = make_relay(
        "relay", bootstrap=broker.bootstrap_servers, kafka=on(broker), topic=session_topic
    )
    await relay.start()
    acknowledged, in_spool = await sigterm_under_load(relay, tmp_path / "relay" / "spool")
    records = await read_topic(
        broker.bootstrap_servers,
        session_topic,
        expect=len(set(acknowledged) - set(in_spool)),
    )

    assert duplicates(ids_of(records)) == {}
    assert set(acknowledged) - set(ids_of(records)) - set(in_spool) == set()


async def test_sigterm_under_load_with_kafka_down_keeps_every_acknowledged_webhook_spooled(
    make_relay: MakeRelay, topic: str, tmp_path: Path
) -> None:
    # A short grace: the last drain pass cannot reach Kafka anyway.
    relay = make_relay(
        "relay",
        bootstrap=f"127.0.0.1:{unused_port()}",
        topic=topic,
        server={"shutdown_grace_s": 1.0},
    )
    await relay.start()
    acknowledged, in_spool = await sigterm_under_load(relay, tmp_path / "relay" / "spool")

    assert duplicates(in_spool) == {}
    assert set(acknowledged) - set(in_spool) == set()


async def test_second_signal_exits_at_once_and_the_spool_keeps_what_was_acknowledged(
    make_relay: MakeRelay, broker: TestBroker, session_topic: str
) -> None:
    # The broker is down, so the graceful shutdown waits (up to its long grace) for a drain.
    first = make_relay(
        "relay",
        bootstrap=f"127.0.0.1:{unused_port()}",
        kafka=on(broker),
        topic=session_topic,
        server={"shutdown_grace_s": 300.0},
    )
    await first.start()
    webhooks = [signed_webhook(config_of(first)) for _ in range(100)]
    async with aiohttp.ClientSession() as session:
        answers = [await post(session, first.url, webhook) for webhook in webhooks]
    first.send_signal(signal.SIGTERM)
    await first.wait_logged("shutting down")
    first.send_signal(signal.SIGTERM)
    # 1 is the second signal's exit; a graceful one would be 0, and only after the grace.
    assert await first.wait_exit() == 1, first.log_tail()

    second = make_relay(
        "relay", bootstrap=broker.bootstrap_servers, kafka=on(broker), topic=session_topic
    )
    await second.start()
    await second.wait_drained(DRAIN_WAIT_S)
    records = await read_topic(broker.bootstrap_servers, session_topic, expect=100)

    assert {answer.status for answer in answers} == {200}
    assert_each_once(records, webhooks)


async def test_full_spool_answers_503_and_drops_nothing_acknowledged(
    make_relay: MakeRelay, own_broker: DevBroker, topic: str
) -> None:
    relay = make_relay(
        "relay", bootstrap=own_broker.bootstrap_servers, topic=topic, spool={"max_bytes": 64 << 10}
    )
    await relay.start()
    webhooks = [signed_webhook(config_of(relay)) for _ in range(100)]
    async with aiohttp.ClientSession() as session:
        answers = [await post(session, relay.url, webhook) for webhook in webhooks]
    acknowledged = [event_id(w) for w, a in zip(webhooks, answers, strict=True) if a.status == 200]
    refused = [w for w, a in zip(webhooks, answers, strict=True) if a.status == 503]

    assert len(acknowledged) + len(refused) == len(webhooks)
    assert acknowledged and refused, "the spool never filled up: max_bytes is too large"
    # Once full, it stays full while the broker is down: no acknowledgement after a refusal.
    assert [a.status for a in answers] == [200] * len(acknowledged) + [503] * len(refused)
    assert {a.retry_after for a in answers if a.status == 503} == {"5"}

    own_broker.start()
    await relay.wait_drained(DRAIN_WAIT_S)
    records = await read_topic(own_broker.bootstrap_servers, topic, expect=len(acknowledged))
    assert duplicates(ids_of(records)) == {}
    assert sorted(ids_of(records)) == sorted(acknowledged)

    # The provider's retries of the refused ones are taken now that the broker is back.
    async with aiohttp.ClientSession() as session:
        retries = [await post(session, relay.url, webhook) for webhook in refused]
    assert {a.status for a in retries} == {200}
    records = await read_topic(own_broker.bootstrap_servers, topic, expect=len(webhooks))
    assert_each_once(records, webhooks)


async def test_two_workers_share_the_sqlite_dedup_store(
    make_relay: MakeRelay, broker: TestBroker, session_topic: str, tmp_path: Path
) -> None:
    relay = make_relay(
        "relay",
        bootstrap=broker.bootstrap_servers,
        kafka=on(broker),
        topic=session_topic,
        workers=2,
        dedup={"backend": "sqlite", "path": str(tmp_path / "relay" / "dedup.sqlite3")},
    )
    await relay.start()
    webhooks = [signed_webhook(config_of(relay)) for _ in range(100)]

    # Two sessions, so each webhook's two copies arrive on different connections
    # (SO_REUSEPORT spreads connections, not requests, over the workers).
    async with aiohttp.ClientSession() as first, aiohttp.ClientSession() as second:
        answers = await asyncio.gather(
            *(
                post(session, relay.url, webhook)
                for webhook, session in itertools.product(webhooks, (first, second))
            )
        )
    records = await read_topic(broker.bootstrap_servers, session_topic, expect=100)
    relay.send_signal(signal.SIGTERM)

    assert Counter(answer.status for answer in answers) == {200: 200}
    assert_each_once(records, webhooks)
    assert await relay.wait_exit() == 0, relay.log_tail()


async def test_a_worker_that_dies_stops_relay_for_its_supervisor(
    make_relay: MakeRelay, broker: TestBroker, session_topic: str, tmp_path: Path
) -> None:
    dedup = {"backend": "sqlite", "path": str(tmp_path / "relay" / "dedup.sqlite3")}
    # No broker in the first life: what the workers acknowledge waits in their spools.
    # A short grace: the surviving worker's last drain pass cannot succeed anyway.
    first = make_relay(
        "relay",
        bootstrap=f"127.0.0.1:{unused_port()}",
        kafka=on(broker),
        topic=session_topic,
        workers=2,
        dedup=dedup,
        server={"shutdown_grace_s": 1.0},
    )
    await first.start()
    await first.wait_logged('"serving"', count=2)
    webhooks = [signed_webhook(config_of(first)) for _ in range(100)]
    answers = await post_one_connection_each(first.url, webhooks)
    os.kill(first.serving_pids()[0], signal.SIGKILL)
    # Relay exits with an error, so that a supervisor restarts it (and the dead worker's spool).
    assert await first.wait_exit() != 0, first.log_tail()

    second = make_relay(
        "relay",
        bootstrap=broker.bootstrap_servers,
        kafka=on(broker),
        topic=session_topic,
        workers=2,
        dedup=dedup,
    )
    await second.start()
    records = await read_topic(
        broker.bootstrap_servers, session_topic, expect=100, timeout_s=DRAIN_WAIT_S
    )

    assert {answer.status for answer in answers} == {200}
    assert_each_once(records, webhooks)


@pytest.mark.parametrize(("workers_before", "workers_after"), [(2, 1), (1, 2), (3, 2)])
async def test_changing_the_worker_count_strands_no_spool(
    make_relay: MakeRelay,
    own_broker: DevBroker,
    topic: str,
    tmp_path: Path,
    workers_before: int,
    workers_after: int,
) -> None:
    sections: dict[str, Any] = {
        "dedup": {"backend": "sqlite", "path": str(tmp_path / "relay" / "dedup.sqlite3")},
        # A short grace: the last drain pass cannot reach the broker, which is down.
        "server": {"shutdown_grace_s": 1.0},
    }
    first = make_relay(
        "relay",
        bootstrap=own_broker.bootstrap_servers,
        topic=topic,
        workers=workers_before,
        **sections,
    )
    await first.start()
    await first.wait_logged('"serving"', count=workers_before)
    webhooks = [signed_webhook(config_of(first)) for _ in range(100)]
    answers = await post_one_connection_each(first.url, webhooks)
    first.send_signal(signal.SIGTERM)
    assert await first.wait_exit() == 0, first.log_tail()

    own_broker.start()
    second = make_relay(
        "relay",
        bootstrap=own_broker.bootstrap_servers,
        topic=topic,
        workers=workers_after,
        **sections,
    )
    await second.start()
    records = await read_topic(
        own_broker.bootstrap_servers, topic, expect=100, timeout_s=DRAIN_WAIT_S
    )

    assert {answer.status for answer in answers} == {200}
    assert_each_once(records, webhooks)

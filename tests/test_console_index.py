"""The console's SQLite index against a real broker: it answers as ``relay find`` and
``relay dlq`` answer from the topics, resumes where it stopped, and is rebuilt from the
topics alone."""

from __future__ import annotations

import asyncio
import io
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer

from relay.config import Config
from relay.console.index import NEVER_REPLAYED, Index, Indexer, LetterQuery, build
from relay.deadletter import make_replay_outcome, replay_outcome_record
from relay.find import FindQuery, find
from relay.replay import LetterFilter, list_letters, replay
from schemas.records import ReplayResult
from tests.conftest import INVOICE_SECRET, make_config, signed_webhook, start_relay
from tests.poison import publish

DAY = timedelta(hours=24)
OUTCOME_KEY = "console-index-outcome-key-0123456789abcdef"


def _providers(**extra: Any) -> dict[str, Any]:
    invoices = {"profile": "usdt-invoice", "secrets": [INVOICE_SECRET]}
    return {"invoices": {**invoices, **extra}, "invoices-b": dict(invoices)}


def _invoice(order: str, status: str) -> bytes:
    return orjson.dumps(
        {"invoice_reference": order, "status": status, "amount_usdt_exact": "12.5000"}
    )


async def _post(aiohttp_client: Any, config: Config, webhooks: list[tuple[str, bytes]]) -> None:
    relay = await start_relay(aiohttp_client, config)
    for provider, body in webhooks:
        assert (await relay.post(signed_webhook(config, provider, body=body))).status == 200


def _order_of(body: bytes) -> str:
    return str(orjson.loads(body)["invoice_reference"])


def _configs(bootstrap: str, topic: str, tmp_path: Path) -> tuple[Config, Config]:
    common: dict[str, Any] = {"bootstrap": bootstrap, "topic": topic, "var": tmp_path}
    dedup = {"backend": "sqlite", "path": str(tmp_path / "dedup.sqlite3")}
    before = make_config(**common, providers=_providers(), dedup=dedup)
    after = make_config(
        **common, providers=_providers(statuses={"refunded": "failed"}), dedup=dedup
    )
    return before, after


async def test_the_index_answers_as_find_and_dlq_do(
    aiohttp_client: Any, kafka_bootstrap: str, topic: str, tmp_path: Path
) -> None:
    before, after = _configs(kafka_bootstrap, topic, tmp_path)
    await _post(
        aiohttp_client,
        before,
        [
            ("invoices", _invoice("ORD-1", "confirmed")),
            ("invoices", _invoice("ORD-1", "refunded")),  # a letter of ORD-1
            ("invoices-b", _invoice("ORD-2", "confirmed")),
            ("invoices-b", _invoice("ORD-3", "refunded")),  # a letter of ORD-3
        ],
    )
    # ORD-1's letter is replayed once the config knows "refunded": a new event, an outcome.
    summary = await replay(after, LetterFilter(provider="invoices"), idle_s=0.5)
    assert summary.replayed == 1

    index = Index(tmp_path / "index.sqlite3", after)
    await build(index, after, idle_s=0.5)

    since = datetime.now(UTC) - DAY
    criteria_list: list[dict[str, Any]] = [
        {"order": "ORD-1"},
        {"order": "ORD-3"},
        {"provider": "invoices-b"},
    ]
    for criteria in criteria_list:
        query = FindQuery(since=since, **criteria)
        from_topics = await find(after, query, err=io.StringIO(), idle_s=0.5)
        from_index, total = index.find(query)
        assert from_index == from_topics.matches, criteria
        assert total == len(from_topics.matches)
    # ORD-1: its first event, its letter, and the event the replay published after the letter.
    order_1, _ = index.find(FindQuery(since=since, order="ORD-1"))
    assert [m.kind.value for m in order_1] == ["event", "dead-letter", "event"]
    replayed_event = order_1[-1]
    assert replayed_event.type == "payment.payin.failed"
    by_id, _ = index.find(FindQuery(since=since, id=replayed_event.id))
    assert by_id == [replayed_event]

    # The letters and their replays, as relay dlq lists them.
    listed = (await list_letters(after, LetterFilter(), idle_s=0.5)).letters
    rows, total = index.letters(LetterQuery())
    assert total == len(listed) == 2
    assert index.filed(row.key for row in reversed(rows)) == listed
    states = {row.order_id: row.replay_state for row in rows}
    assert states == {"ORD-1": "replayed", "ORD-3": NEVER_REPLAYED}
    assert index.letters(LetterQuery(state="replayed"))[1] == 1
    assert index.letters(LetterQuery(provider="invoices-b", reason="unknown_status"))[1] == 1
    assert index.letters(LetterQuery(reason="missing_field"))[1] == 0
    assert index.letters(LetterQuery(until=since))[1] == 0
    [filing] = index.filings("invoices", listed[0].letter.id)
    assert filing == listed[0]
    assert filing.letter.body == _invoice("ORD-1", "refunded")  # the exact bytes received
    assert index.facets("reason") == ["unknown_status"]

    counts = {(provider, kind): n for _, provider, kind, n in index.counts(since, 60)}
    assert counts == {
        ("invoices", "accepted"): 2,  # the first event, and the one the replay published
        ("invoices", "dead_lettered"): 1,
        ("invoices-b", "accepted"): 1,
        ("invoices-b", "dead_lettered"): 1,
    }
    stats = index.stats()
    assert (stats.events, stats.letters, stats.replays) == (3, 2, 1)
    index.close()


async def test_the_index_resumes_skips_foreign_records_and_rebuilds(
    aiohttp_client: Any, kafka_bootstrap: str, topic: str, tmp_path: Path
) -> None:
    config = make_config(
        bootstrap=kafka_bootstrap, topic=topic, var=tmp_path, providers=_providers()
    )
    relay = await start_relay(aiohttp_client, config)
    webhook = signed_webhook(config, body=_invoice("ORD-A", "confirmed"))
    assert (await relay.post(webhook)).status == 200
    path = tmp_path / "index.sqlite3"
    index = Index(path, config)
    indexer = Indexer(index, config, poll_s=0.2)
    running = asyncio.create_task(indexer.run())
    try:
        await asyncio.wait_for(indexer.caught_up[topic].wait(), 30)
        assert index.stats().events == 1
        # A record that is not Relay's, then a new webhook: counted and passed over, then indexed.
        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
        await producer.start()
        try:
            await producer.send_and_wait(topic, b"not an event", key=b"x")
        finally:
            await producer.stop()
        webhook = signed_webhook(config, body=_invoice("ORD-B", "confirmed"))
        assert (await relay.post(webhook)).status == 200
        deadline = asyncio.get_running_loop().time() + 20
        while index.stats().events < 2 and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.1)
        assert index.stats().events == 2
        assert index.states[topic].foreign == 1
        assert index.live(0, 0)[-1].order_id == "ORD-B"
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
    index.close()

    # Reopened: it resumes from its positions, nothing read twice.
    again = Index(path, config)
    await build(again, config, idle_s=0.5)
    assert again.stats().events == 2
    again.close()

    # Another topic in the config: the file is about something else, so it starts over.
    other = make_config(
        bootstrap=kafka_bootstrap, topic=f"{topic}-other", var=tmp_path, providers=_providers()
    )
    rebuilt = Index(path, other)
    assert rebuilt.stats().events == 0
    assert rebuilt.positions(topic) == {}
    rebuilt.close()


async def test_the_index_believes_only_outcomes_signed_with_the_key(
    aiohttp_client: Any, kafka_bootstrap: str, topic: str, tmp_path: Path
) -> None:
    """As relay dlq: with [replay] outcome_key set, a forged outcome (unsigned, or signed
    with another key) is not a letter's replay nor its state, only counted; without a key
    every outcome counts. Another key in the config rebuilds the index."""
    common: dict[str, Any] = {"bootstrap": kafka_bootstrap, "topic": topic, "var": tmp_path}
    keyed = {"outcome_key": OUTCOME_KEY}
    before = make_config(**common, providers=_providers(), replay=keyed)
    after = make_config(
        **common, providers=_providers(statuses={"refunded": "failed"}), replay=keyed
    )
    await _post(
        aiohttp_client,
        before,
        [("invoices", _invoice("ORD-1", "refunded")), ("invoices", _invoice("ORD-2", "refunded"))],
    )
    listing = await list_letters(before, LetterFilter(), idle_s=0.5)
    letters = {_order_of(filed.letter.body): filed.letter for filed in listing.letters}
    assert (await replay(after, LetterFilter(id=letters["ORD-1"].id), idle_s=0.5)).replayed == 1
    claim = make_replay_outcome(letters["ORD-2"], ReplayResult.REPLAYED, event_id="evt-forged")
    dlq = before.kafka.dead_letter_topic
    await publish(
        before.kafka,
        [
            replay_outcome_record(claim, dlq),
            replay_outcome_record(claim, dlq, "a-key-that-is-not-relays-0123456789abcdef"),
        ],
    )

    path = tmp_path / "index.sqlite3"
    index = Index(path, after)
    await build(index, after, idle_s=0.5)
    rows, _ = index.letters(LetterQuery())
    assert {row.order_id: row.replay_state for row in rows} == {
        "ORD-1": "replayed",
        "ORD-2": NEVER_REPLAYED,
    }
    believed = await list_letters(after, LetterFilter(), idle_s=0.5, err=io.StringIO())
    by_id = {filed.letter.id: filed for filed in index.filed(row.key for row in rows)}
    assert by_id == {filed.letter.id: filed for filed in believed.letters}
    assert index.ignored_outcomes() == believed.ignored_outcomes == 2
    assert index.ignored_outcomes("invoices", letters["ORD-2"].id) == 2
    assert index.ignored_outcomes("invoices", letters["ORD-1"].id) == 0
    index.close()

    # No key: nothing can be told apart, so every outcome counts (the pages say so).
    no_key = make_config(**common, providers=_providers())
    rebuilt = Index(path, no_key)
    assert rebuilt.stats().replays == 0 and rebuilt.positions(dlq) == {}
    await build(rebuilt, no_key, idle_s=0.5)
    states = {row.order_id: row.replay_state for row in rebuilt.letters(LetterQuery())[0]}
    assert states == {"ORD-1": "replayed", "ORD-2": "replayed"}
    assert rebuilt.ignored_outcomes() == 0
    rebuilt.close()

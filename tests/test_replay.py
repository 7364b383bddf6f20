"""Dead letters and ``relay replay`` against a real broker."""

from __future__ import annotations

import base64
import io
import time
from pathlib import Path
from typing import Any

import orjson

from relay.config import Config
from relay.replay import FiledLetter, LetterFilter, list_letters, replay
from schemas.decoder import decode_dlq_record
from tests.conftest import (
    INVOICE_SECRET,
    event_of,
    make_config,
    read_topic,
    signed_webhook,
    start_relay,
)
from tests.poison import publish, skipped_lines, unreadable_letters


def _invoice_providers(**extra: Any) -> dict[str, Any]:
    base = {"profile": "usdt-invoice", "secrets": [INVOICE_SECRET]}
    return {
        "invoices": {**base, **extra},
        "invoices-b": {**base},
    }


def _configs(bootstrap: str, topic: str, tmp_path: Path) -> tuple[Config, Config]:
    """The config at the time of the dead letters, and a later one that knows 'refunded'."""
    common: dict[str, Any] = {"bootstrap": bootstrap, "topic": topic, "var": tmp_path}
    dedup = {"backend": "sqlite", "path": str(tmp_path / "dedup.sqlite3")}
    before = make_config(**common, providers=_invoice_providers(), dedup=dedup)
    after = make_config(
        **common, providers=_invoice_providers(statuses={"refunded": "failed"}), dedup=dedup
    )
    return before, after


def _refund(order: str) -> bytes:
    return orjson.dumps(
        {"invoice_reference": order, "status": "refunded", "amount_usdt_exact": "12.5000"}
    )


async def _letters(config: Config, letter_filter: LetterFilter) -> list[FiledLetter]:
    """The letters ``relay dlq list`` would show (nothing unreadable on these topics)."""
    listing = await list_letters(config, letter_filter, idle_s=0.5)
    assert listing.unreadable == 0
    return listing.letters


async def _post_letters(
    aiohttp_client: Any, config: Config, bodies: list[tuple[str, bytes]]
) -> None:
    relay = await start_relay(aiohttp_client, config)
    for provider, body in bodies:
        response = await relay.post(signed_webhook(config, provider, body=body))
        assert response.status == 200


async def test_dead_letter_then_replay_after_the_profile_learns_the_status(
    aiohttp_client: Any, kafka_bootstrap: str, topic: str, tmp_path: Path
) -> None:
    before, after = _configs(kafka_bootstrap, topic, tmp_path)
    body = _refund("ORD-R1")
    webhook = signed_webhook(before, body=body, headers={"X-Webhook-Id": "wh-r1"})
    relay = await start_relay(aiohttp_client, before)
    assert (await relay.post(webhook)).status == 200

    [record] = await read_topic(kafka_bootstrap, before.kafka.dead_letter_topic, expect=1)
    letter = orjson.loads(record.value)
    assert letter["provider"] == "invoices"
    assert letter["profile"] == "usdt-invoice"
    assert letter["reason"] == "unknown_status"
    assert "refunded" in letter["message"]
    assert base64.b64decode(letter["body_base64"]) == body
    assert letter["headers"] == {"x-webhook-id": "wh-r1"}  # allow-listed only: no signature
    assert letter["attempts"] == 1
    assert letter["received_at"].endswith("Z")
    assert letter["relay_version"]
    assert INVOICE_SECRET not in record.value.decode()
    assert webhook.headers["x-webhook-signature"] not in record.value.decode()
    assert dict(record.headers)["relay_reason"] == b"unknown_status"

    first = await replay(after, LetterFilter(), idle_s=0.5)
    assert (first.replayed, first.duplicates, first.failed_total) == (1, 0, 0)
    [published] = await read_topic(kafka_bootstrap, topic, expect=1)
    event = event_of(published)
    assert event["id"] == "wh-r1"
    assert (event["data"]["status"], event["data"]["provider_status"]) == ("failed", "refunded")

    second = await replay(after, LetterFilter(), idle_s=0.5)
    assert second.matched == 0  # progress was committed: nothing left to replay
    again = await replay(after, LetterFilter(), idle_s=0.5, group_id="another-group")
    assert (again.replayed, again.duplicates) == (0, 1)  # dedup: already on the topic
    assert len(await read_topic(kafka_bootstrap, topic, expect=1, settle_s=0.5)) == 1


async def test_a_letter_that_fails_again_stays_for_a_later_replay(
    aiohttp_client: Any, kafka_bootstrap: str, topic: str, tmp_path: Path
) -> None:
    before, after = _configs(kafka_bootstrap, topic, tmp_path)
    await _post_letters(aiohttp_client, before, [("invoices", _refund("ORD-F1"))])
    failed = await replay(before, LetterFilter(), idle_s=0.5)
    assert dict(failed.failed) == {"unknown_status": 1}
    records = await read_topic(kafka_bootstrap, before.kafka.dead_letter_topic, expect=3)
    # One partition (one key): the letter, the letter filed again, what the replay did.
    filed = [decode_dlq_record(record.value, record.headers) for record in records]
    assert [(type(item).__name__, item.attempts) for item in filed] == [
        ("DeadLetter", 1),
        ("DeadLetter", 2),
        ("ReplayOutcome", 1),
    ]

    later = await replay(after, LetterFilter(), idle_s=0.5)
    assert later.replayed == 1
    assert len(await read_topic(kafka_bootstrap, topic, expect=1, settle_s=0.5)) == 1


async def test_filters_select_exactly_and_dry_run_changes_nothing(
    aiohttp_client: Any, kafka_bootstrap: str, topic: str, tmp_path: Path
) -> None:
    before, after = _configs(kafka_bootstrap, topic, tmp_path)
    malformed = b'{"invoice_reference": "ORD-M", "status": '
    await _post_letters(
        aiohttp_client,
        before,
        [
            ("invoices", _refund("ORD-A")),
            ("invoices", _refund("ORD-B")),
            ("invoices-b", _refund("ORD-C")),
            ("invoices", malformed),
        ],
    )
    dlq = before.kafka.dead_letter_topic
    everything = [filed.letter for filed in await _letters(before, LetterFilter())]
    assert len(everything) == 4
    by_provider = await _letters(before, LetterFilter(provider="invoices-b"))
    assert [filed.letter.provider for filed in by_provider] == ["invoices-b"]
    by_reason = await _letters(before, LetterFilter(reason="malformed_json"))
    assert [filed.letter.body for filed in by_reason] == [malformed]
    one = everything[1]
    assert [filed.letter.id for filed in await _letters(before, LetterFilter(id=one.id))] == [
        one.id
    ]
    received = sorted(letter.received_at for letter in everything)
    since = received[2]
    assert len(await _letters(before, LetterFilter(since=since))) == 2
    assert len(await _letters(before, LetterFilter(until=since))) == 2

    dry = await replay(after, LetterFilter(provider="invoices"), dry_run=True, idle_s=0.5)
    assert (dry.matched, dry.would_replay, dict(dry.failed)) == (3, 2, {"malformed_json": 1})
    assert await read_topic(kafka_bootstrap, topic, expect=0, settle_s=0.3, timeout_s=1) == []
    assert len(await read_topic(kafka_bootstrap, dlq, expect=4, settle_s=0.3)) == 4

    real = await replay(
        after, LetterFilter(provider="invoices", reason="unknown_status"), idle_s=0.5
    )
    assert (real.matched, real.replayed) == (2, 2)
    subjects = {event_of(r)["subject"] for r in await read_topic(kafka_bootstrap, topic, expect=2)}
    assert subjects == {"ORD-A", "ORD-B"}


async def test_an_interrupted_replay_resumes_without_duplicates(
    aiohttp_client: Any, kafka_bootstrap: str, topic: str, tmp_path: Path
) -> None:
    before, after = _configs(kafka_bootstrap, topic, tmp_path)
    await _post_letters(
        aiohttp_client, before, [("invoices", _refund(f"ORD-{i}")) for i in range(6)]
    )
    interrupted = await replay(after, LetterFilter(), idle_s=0.5, limit=2)
    assert interrupted.replayed == 2
    resumed = await replay(after, LetterFilter(), idle_s=0.5)
    assert (resumed.replayed, resumed.duplicates) == (4, 0)
    records = await read_topic(kafka_bootstrap, topic, expect=6, settle_s=0.5)
    assert sorted(event_of(r)["subject"] for r in records) == [f"ORD-{i}" for i in range(6)]


async def test_rate_is_honoured(
    aiohttp_client: Any, kafka_bootstrap: str, topic: str, tmp_path: Path
) -> None:
    before, after = _configs(kafka_bootstrap, topic, tmp_path)
    await _post_letters(
        aiohttp_client, before, [("invoices", _refund(f"ORD-{i}")) for i in range(9)]
    )
    started = time.monotonic()
    summary = await replay(after, LetterFilter(), rate=8, idle_s=0.2)
    elapsed = time.monotonic() - started - 0.2  # the idle wait that ends the run
    assert summary.replayed == 9
    # 9 letters evenly spaced at 8/s span 8 intervals: 1.0 s. Pacing never goes faster.
    assert 1.0 * 0.8 <= elapsed <= 1.0 * 1.2 + 0.5


async def test_replay_passes_over_records_it_cannot_read(
    aiohttp_client: Any, kafka_bootstrap: str, topic: str, tmp_path: Path
) -> None:
    """Poison around a genuine letter: each unreadable record is named once and committed
    past, the letter is replayed, and the run ends as if the poison were not there."""
    before, after = _configs(kafka_bootstrap, topic, tmp_path)
    dlq = before.kafka.dead_letter_topic
    poison = unreadable_letters(dlq)
    await publish(before.kafka, list(poison.values())[:3])
    await _post_letters(aiohttp_client, before, [("invoices", _refund("ORD-P1"))])
    await publish(before.kafka, list(poison.values())[3:])
    await read_topic(kafka_bootstrap, dlq, expect=len(poison) + 1)

    dry_err = io.StringIO()
    dry = await replay(after, LetterFilter(), dry_run=True, idle_s=0.5, err=dry_err)
    assert (dry.matched, dry.would_replay, dry.unreadable) == (1, 1, len(poison))
    err = io.StringIO()
    summary = await replay(after, LetterFilter(), idle_s=0.5, err=err)
    assert (summary.matched, summary.replayed, summary.unreadable) == (1, 1, len(poison))
    assert summary.failed_total == 0
    assert len(skipped_lines(err.getvalue(), dlq, "dead letter")) == len(poison)
    assert "unreadable records skipped" in summary.table(dry_run=False)
    [event] = await read_topic(kafka_bootstrap, topic, expect=1)
    assert event_of(event)["subject"] == "ORD-P1"
    # Committed past: the next run of the same filters has nothing left, poison included.
    again = await replay(after, LetterFilter(), idle_s=0.5, err=io.StringIO())
    assert (again.matched, again.unreadable) == (0, 0)

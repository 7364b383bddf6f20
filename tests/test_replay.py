"""Dead letters and ``relay replay`` against a real broker."""

from __future__ import annotations

import base64
import dataclasses
import io
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NoReturn

import orjson

from relay.config import Config
from relay.deadletter import dead_letter_record, make_dead_letter
from relay.records import KafkaRecord
from relay.replay import (
    FiledLetter,
    LetterFilter,
    PlannedOutcome,
    list_letters,
    plan_letter,
    progress_text,
    replay,
)
from schemas.decoder import decode_dlq_record
from schemas.event import Message, NormalizeContext
from schemas.records import DeadLetter
from schemas.values import rfc3339
from tests.conftest import (
    INVOICE_SECRET,
    event_of,
    make_config,
    read_topic,
    signed_webhook,
    start_relay,
)
from tests.poison import (
    DEAD_LETTER,
    letter_document,
    publish,
    skipped_lines,
    unreadable_letters,
)


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
    # What the verifier read, as received, to verify it again on replay; no other header.
    signature = webhook.headers["x-webhook-signature"]
    assert letter["signature_headers"] == {"x-webhook-signature": signature}
    assert letter["attempts"] == 1
    assert letter["received_at"].endswith("Z")
    assert letter["relay_version"]
    assert INVOICE_SECRET not in record.value.decode()
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
    seen: list[str] = []
    resumed = await replay(
        after,
        LetterFilter(),
        idle_s=0.5,
        on_progress=lambda summary, elapsed: seen.append(progress_text(summary, elapsed)),
    )
    assert (resumed.replayed, resumed.duplicates) == (4, 0)
    # Called after each record read (letters, and the outcomes of the first run), each time
    # with the run so far.
    handled = [int(line.split()[0]) for line in seen]
    assert handled == sorted(handled) and set(range(1, 5)) <= set(handled)
    assert seen[-1].startswith("4 handled, 0 failed, ")
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


def _filed(config: Config, letter: DeadLetter) -> KafkaRecord:
    return dead_letter_record(letter, config.kafka.dead_letter_topic)


def _forged(config: Config, **fields: Any) -> KafkaRecord:
    """A letter as anyone who can write to the dead-letter topic can file one: a refund the
    provider never signed, with an event id of the forger's choosing."""
    document = letter_document(
        received_at=rfc3339(datetime.now(UTC) - timedelta(hours=1)),
        headers={"x-webhook-id": "evt-chosen-by-the-forger"},
        body_base64=base64.b64encode(_refund("ORD-FORGED")).decode(),
        signature_headers={"x-webhook-signature": "0" * 64},
    )
    document |= fields
    return KafkaRecord(
        config.kafka.dead_letter_topic,
        f"invoices:{document['id']}".encode(),
        orjson.dumps({k: v for k, v in document.items() if v is not _ABSENT}),
        DEAD_LETTER,
    )


_ABSENT = object()


async def test_replay_refuses_a_letter_that_does_not_verify(
    aiohttp_client: Any, kafka_bootstrap: str, topic: str, tmp_path: Path
) -> None:
    """Forged letters, and a genuine one whose secret was rotated away, are refused as
    ``unverified`` and never published; the genuine one replays while its key is there."""
    before, after = _configs(kafka_bootstrap, topic, tmp_path)
    await _post_letters(aiohttp_client, before, [("invoices", _refund("ORD-GENUINE"))])
    [genuine] = await _letters(before, LetterFilter())
    # The genuine letter's signature, moved onto another body: no better than none.
    copied = _forged(before, signature_headers=genuine.letter.signature_headers, id="1" * 32)
    await publish(before.kafka, [_forged(before), copied])

    dry = await replay(after, LetterFilter(), dry_run=True, idle_s=0.5, err=io.StringIO())
    assert (dry.would_replay, dict(dry.failed)) == (1, {"unverified": 2})
    rotated = make_config(
        bootstrap=kafka_bootstrap,
        topic=topic,
        var=tmp_path,
        providers=_invoice_providers(secrets=["a-new-secret-0123456789abcdef"]),
    )
    refused = await replay(rotated, LetterFilter(), idle_s=0.5, group_id="rotated")
    assert (refused.matched, refused.replayed, dict(refused.failed)) == (3, 0, {"unverified": 3})
    summary = await replay(after, LetterFilter(), idle_s=0.5)
    assert (summary.matched, summary.replayed, dict(summary.failed)) == (
        3,
        1,
        {"unverified": 2},
    )
    [event] = await read_topic(kafka_bootstrap, topic, expect=1, settle_s=1.0)
    assert event_of(event)["subject"] == "ORD-GENUINE"
    # Refused, not filed again: what the replays did with the forged letters says why.
    listing = await list_letters(before, LetterFilter(), idle_s=0.5, err=io.StringIO())
    outcomes = {
        filed.letter.id: [(o.outcome.value, o.reason, o.new_attempts) for o in filed.replays]
        for filed in listing.letters
    }
    assert len(listing.letters) == 3
    assert outcomes["0" * 32] == outcomes["1" * 32] == [("failed_again", "unverified", None)] * 2


async def test_a_letter_from_before_signature_headers_is_replayed_only_on_the_operators_word(
    aiohttp_client: Any, kafka_bootstrap: str, topic: str, tmp_path: Path
) -> None:
    before, after = _configs(kafka_bootstrap, topic, tmp_path)
    # Written as letters were before Relay kept signature headers: no such field.
    await publish(before.kafka, [_forged(before, signature_headers=_ABSENT)])
    refused = await replay(after, LetterFilter(), idle_s=0.5)
    assert (refused.replayed, dict(refused.failed)) == (0, {"unverifiable": 1})
    assert await read_topic(kafka_bootstrap, topic, expect=0, settle_s=0.3, timeout_s=1) == []
    # --trust-unverified: what the flag's name says, and why the README calls it dangerous.
    trusted = await replay(
        after, LetterFilter(), idle_s=0.5, group_id="trusting", trust_unverified=True
    )
    assert trusted.replayed == 1
    [event] = await read_topic(kafka_bootstrap, topic, expect=1)
    assert event_of(event)["id"] == "evt-chosen-by-the-forger"


async def test_the_signed_timestamp_counts_from_when_the_letter_was_received(
    kafka_bootstrap: str, topic: str, tmp_path: Path
) -> None:
    """A Stripe letter received ten days ago verifies today: its signed ``t`` is checked
    against the letter's received time, not the replay's. Moving the received time away
    from ``t`` (as a forger re-using the signature elsewhere in time would) is refused."""
    hooks = {"profile": "stripe", "secrets": ["whsec_test_0123456789abcdef"]}
    config = make_config(
        bootstrap=kafka_bootstrap,
        topic=topic,
        var=tmp_path,
        providers={"hooks": hooks},
        dedup={"backend": "sqlite", "path": str(tmp_path / "dedup.sqlite3")},
    )
    received_at = datetime.now(UTC) - timedelta(days=10)
    body = b'{"id":"evt_10_days","type":"customer.updated","data":{"object":{}}}'
    webhook = signed_webhook(config, "hooks", body=body, now=received_at.timestamp())
    signature = {"stripe-signature": webhook.headers["stripe-signature"]}
    letter = make_dead_letter(
        provider="hooks",
        profile="stripe",
        reason="record_too_large",
        message="the broker refused the event",
        received_at=received_at,
        headers={},
        body=body,
        signature_headers=signature,
    )
    moved = dataclasses.replace(letter, id="2" * 32, received_at=datetime.now(UTC))
    await publish(config.kafka, [_filed(config, letter), _filed(config, moved)])
    summary = await replay(config, LetterFilter(), idle_s=0.5)
    assert (summary.replayed, dict(summary.failed)) == (1, {"unverified": 1})
    [event] = await read_topic(kafka_bootstrap, topic, expect=1)
    assert event_of(event)["id"] == "evt_10_days"


async def test_plan_letter_says_what_a_replay_would_do_with_each_letter(tmp_path: Path) -> None:
    """The dry run letter by letter (and the console's plan): verified again, then
    normalized; a normalizer's bug is what the pipeline would file, not a crash."""
    before, after = _configs("127.0.0.1:9", "plans", tmp_path)
    received_at = datetime.now(UTC) - timedelta(hours=1)

    def filed(body: bytes, provider: str = "invoices", **fields: Any) -> DeadLetter:
        webhook = signed_webhook(before, body=body, now=received_at.timestamp())
        signature = {"x-webhook-signature": webhook.headers["x-webhook-signature"]}
        letter = make_dead_letter(
            provider=provider,
            profile="usdt-invoice",
            reason="unknown_status",
            message="the status 'refunded' in 'status' is not a known status",
            received_at=received_at,
            headers={},
            body=body,
            signature_headers=signature,
        )
        return dataclasses.replace(letter, **fields)

    genuine = filed(_refund("ORD-PLAN"))
    planned = await plan_letter(after, genuine)
    assert (planned.reason, planned.event and planned.event.subject) == (None, "ORD-PLAN")
    assert await plan_letter(before, genuine) == PlannedOutcome(reason="unknown_status")
    assert await plan_letter(after, filed(_refund("ORD-PLAN"), "gone")) == PlannedOutcome(
        reason="unknown_provider"
    )
    forged = dataclasses.replace(genuine, body=_refund("ORD-FORGED"))
    assert await plan_letter(after, forged) == PlannedOutcome(reason="unverified")
    unsigned = dataclasses.replace(genuine, signature_headers=None)
    assert await plan_letter(after, unsigned) == PlannedOutcome(reason="unverifiable")
    trusted = await plan_letter(after, unsigned, trust_unverified=True)
    assert trusted.event is not None and trusted.reason is None

    def broken(message: Message, ctx: NormalizeContext) -> NoReturn:
        raise ZeroDivisionError("a normalizer's bug")

    instance = after.providers["invoices"]
    with_bug = dataclasses.replace(
        after,
        providers={
            "invoices": dataclasses.replace(
                instance, profile=dataclasses.replace(instance.profile, normalize=broken)
            )
        },
    )
    assert await plan_letter(with_bug, genuine) == PlannedOutcome(reason="normalizer_error")

"""What became of each dead letter: the replay outcome records ``relay replay`` files next
to the letters, ``relay dlq list`` and ``show`` folding them in, and ``--json``.

The record format is checked on its own (written, decoded, refused when broken);
the rest runs on real brokers: replays that fail again, replay, and find their
event already published, then the letters as ``relay dlq`` shows them, in
process and as the command a user runs.
"""

from __future__ import annotations

import base64
import io
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from relay import __version__
from relay.config import Config
from relay.deadletter import (
    make_dead_letter,
    make_replay_outcome,
    outcome_authentic,
    replay_outcome_record,
)
from relay.find import FindQuery, find
from relay.records import KafkaRecord
from relay.replay import FiledLetter, LetterFilter, list_letters, replay
from schemas.decoder import (
    HeaderMismatch,
    InvalidReplayOutcome,
    decode_dead_letter,
    decode_dlq_record,
    decode_replay_outcome,
)
from schemas.records import DeadLetter, ReplayResult
from tests.conftest import (
    INVOICE_SECRET,
    TestBroker,
    make_config,
    read_topic,
    signed_webhook,
    start_relay,
)
from tests.poison import (
    DEAD_LETTER,
    ESCAPES,
    assert_inert,
    letter_document,
    publish,
    skipped_lines,
    unreadable_letters,
)
from tests.relay_process import run_relay

RECEIVED_AT = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
OUTCOME_KEY = "replay-outcome-key-of-these-tests-0123456789"
# A JSON number with a trailing zero: shown as sent, never as 12.5.
REFUND = b'{"invoice_reference":"ORD-S1","status":"refunded","amount_usdt_exact":12.50}'


def _letter() -> DeadLetter:
    return make_dead_letter(
        provider="invoices",
        profile="usdt-invoice",
        reason="unknown_status",
        message="the status 'refunded' in 'status' is not a known status",
        received_at=RECEIVED_AT,
        headers={},
        body=REFUND,
    )


def test_an_outcome_record_is_keyed_like_its_letter_and_reads_back_the_same() -> None:
    letter = _letter()
    outcome = make_replay_outcome(
        letter, ReplayResult.FAILED_AGAIN, reason="unknown_status", new_attempts=2
    )
    record = replay_outcome_record(outcome, "payments.events.dlq")
    assert record.key == f"invoices:{letter.id}".encode()
    assert dict(record.headers) == {
        "content-type": b"application/vnd.relay.replay-outcome+json",
        "relay_outcome": b"failed_again",
        "relay_provider": b"invoices",
    }
    assert decode_replay_outcome(record.value, record.headers) == outcome
    assert decode_dlq_record(record.value, record.headers) == outcome
    assert (outcome.letter_id, outcome.attempts, outcome.relay_version) == (
        letter.id,
        1,
        __version__,
    )
    assert orjson.loads(record.value)["at"].endswith("Z")


def test_the_dead_letter_topic_reader_tells_letters_and_outcomes_apart() -> None:
    letter = _letter()
    letter_headers = (("content-type", b"application/vnd.relay.dead-letter+json"),)
    assert decode_dlq_record(letter.to_json(), letter_headers) == letter
    outcome = make_replay_outcome(letter, ReplayResult.REPLAYED, event_id="wh-1")
    # A reader of letters alone (an older Relay, a consumer) refuses an outcome by its type.
    with pytest.raises(HeaderMismatch, match="content-type"):
        decode_dead_letter(outcome.to_json(), replay_outcome_record(outcome, "t").headers)
    with pytest.raises(HeaderMismatch, match="content-type is missing"):
        decode_dlq_record(outcome.to_json(), ())


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"outcome": "retried"}, "outcome"),
        ({"attempts": 0}, "attempts"),
        ({"new_attempts": "2"}, "new_attempts"),
        ({"at": "2026-01-02 03:04:05"}, "at"),
        ({"event_id": ""}, "event_id"),
        ({"letter_id": None}, "letter_id"),
    ],
)
def test_a_broken_outcome_names_its_field(change: dict[str, Any], field: str) -> None:
    outcome = make_replay_outcome(_letter(), ReplayResult.DUPLICATE, event_id="wh-1")
    document = {**orjson.loads(outcome.to_json()), **change}
    with pytest.raises(InvalidReplayOutcome) as raised:
        decode_replay_outcome(orjson.dumps(document))
    assert raised.value.field == field


def _configs(bootstrap: str, topic: str, tmp_path: Path) -> tuple[Config, Config]:
    """The config when the letter was filed, and a later one that knows 'refunded'."""
    invoices = {"profile": "usdt-invoice", "secrets": [INVOICE_SECRET]}
    common: dict[str, Any] = {
        "bootstrap": bootstrap,
        "topic": topic,
        "var": tmp_path,
        "dedup": {"backend": "sqlite", "path": str(tmp_path / "dedup.sqlite3")},
    }
    before = make_config(**common, providers={"invoices": invoices})
    after = make_config(
        **common, providers={"invoices": {**invoices, "statuses": {"refunded": "failed"}}}
    )
    return before, after


async def _letters(config: Config, letter_filter: LetterFilter) -> list[FiledLetter]:
    """The letters ``relay dlq list`` would show (nothing unreadable on these topics)."""
    listing = await list_letters(config, letter_filter, idle_s=0.5)
    assert listing.unreadable == 0
    return listing.letters


def _replays(filed: FiledLetter) -> list[tuple[str, str | None, str | None, int | None]]:
    return [
        (outcome.outcome.value, outcome.reason, outcome.event_id, outcome.new_attempts)
        for outcome in filed.replays
    ]


async def test_each_letter_shows_what_every_replay_did_with_it(
    aiohttp_client: Any, kafka_bootstrap: str, topic: str, tmp_path: Path
) -> None:
    before, after = _configs(kafka_bootstrap, topic, tmp_path)
    relay = await start_relay(aiohttp_client, before)
    assert (await relay.post(signed_webhook(before, body=REFUND))).status == 200

    started = datetime.now(UTC)
    failed = await replay(before, LetterFilter(), idle_s=0.5)
    assert dict(failed.failed) == {"unknown_status": 1}
    first, second = await _letters(before, LetterFilter())
    assert (first.letter.attempts, second.letter.attempts) == (1, 2)
    assert _replays(first) == [("failed_again", "unknown_status", None, 2)]
    assert _replays(second) == []
    assert first.last_replay is not None
    assert started <= first.last_replay.at <= datetime.now(UTC)

    # A new filter is a new consumer group: it sees both letters of the message.
    later = await replay(after, LetterFilter(reason="unknown_status"), idle_s=0.5)
    assert (later.matched, later.replayed, later.duplicates) == (2, 1, 1)
    [event] = await read_topic(kafka_bootstrap, topic, expect=1)
    event_id = orjson.loads(event.value)["id"]
    first, second = await _letters(before, LetterFilter())
    assert _replays(first) == [
        ("failed_again", "unknown_status", None, 2),
        ("replayed", None, event_id, None),
    ]
    assert _replays(second) == [("duplicate", None, event_id, None)]

    # Outcome records are not letters: a replay from the start counts only the two letters.
    records = await read_topic(kafka_bootstrap, before.kafka.dead_letter_topic, expect=5)
    kinds = [type(decode_dlq_record(r.value, r.headers)).__name__ for r in records]
    assert sorted(kinds) == ["DeadLetter"] * 2 + ["ReplayOutcome"] * 3
    dry = await replay(after, LetterFilter(), dry_run=True, idle_s=0.5)
    assert (dry.matched, dry.would_replay, dry.failed_total) == (2, 2, 0)
    again = await replay(after, LetterFilter(), idle_s=0.5, group_id="from-the-start")
    assert (again.matched, again.duplicates, again.failed_total) == (2, 2, 0)
    records = await read_topic(kafka_bootstrap, before.kafka.dead_letter_topic, expect=7)
    assert len(records) == 7  # the dry run filed nothing; the real one two duplicates

    # relay find: the order's whole story, from the letters' bodies and the event.
    err = io.StringIO()
    found = await find(
        after, FindQuery(since=started - timedelta(hours=1), order="ORD-S1"), err=err, idle_s=0.5
    )
    assert [(m.kind.value, m.attempts) for m in found.matches] == [
        ("dead-letter", 1),
        ("dead-letter", 2),
        ("event", None),
    ]
    assert err.getvalue() == ""


def _config_file(config: Config, path: Path, statuses: str = "") -> Path:
    path.write_text(
        f"""
[kafka]
bootstrap_servers = "{config.kafka.bootstrap_servers}"
topic = "{config.kafka.topic}"
idempotence = false

[dedup]
backend = "sqlite"
path = "{path.parent / "dedup.sqlite3"}"

[replay]
outcome_key = "{OUTCOME_KEY}"

[providers.invoices]
profile = "usdt-invoice"
secrets = ["{INVOICE_SECRET}"]
{statuses}
"""
    )
    return path


async def test_the_commands_show_replays_and_speak_json(
    aiohttp_client: Any, tansu: TestBroker, topic: str, tmp_path: Path
) -> None:
    before, _ = _configs(tansu.bootstrap_servers, topic, tmp_path)
    relay = await start_relay(aiohttp_client, before)
    assert (await relay.post(signed_webhook(before, body=REFUND))).status == 200
    await read_topic(tansu.bootstrap_servers, before.kafka.dead_letter_topic, expect=1)
    old = str(_config_file(before, tmp_path / "before.toml"))
    new = str(_config_file(before, tmp_path / "after.toml", 'statuses = { refunded = "failed" }'))

    failed = run_relay("replay", "--config", old, "--json", env={})
    assert failed.returncode == 1, failed.stderr
    assert json.loads(failed.stdout) == {
        "dry_run": False,
        "matched": 1,
        "replayed": 0,
        "duplicates": 0,
        "would_replay": 0,
        "failed": {"unknown_status": 1},
        "failed_total": 1,
        "unreadable": 0,
    }
    replayed = run_relay("replay", "--config", new, "--reason", "unknown_status", "--json", env={})
    assert replayed.returncode == 0, replayed.stderr
    summary = json.loads(replayed.stdout)
    assert (summary["matched"], summary["replayed"], summary["duplicates"]) == (2, 1, 1)

    listed = run_relay("dlq", "list", "--config", old, env={})
    assert listed.returncode == 0, listed.stderr
    header, first, second = listed.stdout.splitlines()
    assert header.split() == [
        "id", "provider", "reason", "received_at", "attempts", "last", "replay"
    ]  # fmt: skip
    when = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{3})?Z"
    assert re.fullmatch(rf"\S+ +invoices +unknown_status +{when} +1 +replayed {when}", first)
    assert re.fullmatch(
        rf"\S+ +invoices +unknown_status +{when} +2 +duplicate {when} \(already published\)",
        second,
    )
    assert listed.stderr == "2 dead letter(s)\n"

    as_json = run_relay("dlq", "list", "--config", old, "--json", env={})
    documents = [json.loads(line) for line in as_json.stdout.splitlines()]
    assert [document["attempts"] for document in documents] == [1, 2]
    letter_id = documents[0]["id"]
    first_document = documents[0]
    assert first_document["order_id"] == "ORD-S1"
    assert first_document["topic"] == f"{topic}.dlq"
    assert "body_base64" not in first_document
    assert [
        (replay_["outcome"], replay_["reason"], replay_["new_attempts"])
        for replay_ in first_document["replays"]
    ] == [("failed_again", "unknown_status", 2), ("replayed", None, None)]
    for replay_ in first_document["replays"]:
        assert set(replay_) == {
            "outcome",
            "at",
            "reason",
            "event_id",
            "new_attempts",
            "relay_version",
        }
        assert re.fullmatch(when, replay_["at"])

    shown = run_relay("dlq", "show", letter_id, "--config", old, env={})
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.count('"body": ' + REFUND.decode()) == 2  # byte for byte, both filings
    shown_json = run_relay("dlq", "show", letter_id, "--config", old, "--json", env={})
    [line] = shown_json.stdout.splitlines()
    document = json.loads(line)
    assert document["id"] == letter_id
    assert [letter["attempts"] for letter in document["letters"]] == [1, 2]
    assert [len(letter["replays"]) for letter in document["letters"]] == [2, 1]
    assert all(letter["body_base64"] for letter in document["letters"])
    missing = run_relay("dlq", "show", "no-such-letter", "--config", old, "--json", env={})
    assert (missing.returncode, missing.stdout) == (1, "")


async def test_dlq_list_and_show_pass_over_what_they_cannot_read_and_print_nothing_raw(
    tansu: TestBroker, topic: str, tmp_path: Path
) -> None:
    """Poison on the dead-letter topic: each unreadable record is named on stderr and passed
    over; a readable forged letter full of terminal escapes is listed with them escaped."""
    config, _ = _configs(tansu.bootstrap_servers, topic, tmp_path)
    dlq = config.kafka.dead_letter_topic
    poison = unreadable_letters(dlq)
    forged = letter_document(
        reason=ESCAPES,
        message=ESCAPES,
        headers={"x-invoice-reference": ESCAPES},
        body_base64=base64.b64encode(
            orjson.dumps({"invoice_reference": f"ORD-{ESCAPES}", "status": "refunded"})
        ).decode(),
    )
    letter_id = forged["id"]
    forged_record = KafkaRecord(
        dlq, f"invoices:{letter_id}".encode(), orjson.dumps(forged), DEAD_LETTER
    )
    await publish(config.kafka, [*poison.values(), forged_record])
    await read_topic(tansu.bootstrap_servers, dlq, expect=len(poison) + 1)
    config_file = str(_config_file(config, tmp_path / "dlq.toml"))

    listed = run_relay("dlq", "list", "--config", config_file, env={})
    assert listed.returncode == 0, listed.stderr
    assert_inert(listed.stdout, listed.stderr)
    _, row = listed.stdout.splitlines()
    escaped = "\\x1b]0;pwned\\x07\\x1b[2J\\x1b]52;c;cm0gLXJmIH4=\\x07\\x9b31m\\u202e"
    assert row.split()[:3] == [letter_id, "invoices", escaped]
    assert len(skipped_lines(listed.stderr, dlq, "dead letter")) == len(poison)
    assert (
        listed.stderr.splitlines()[-1]
        == f"1 dead letter(s); {len(poison)} unreadable record(s) skipped"
    )

    as_json = run_relay("dlq", "list", "--config", config_file, "--json", env={})
    assert as_json.returncode == 0, as_json.stderr
    assert_inert(as_json.stdout)
    [document] = [json.loads(line) for line in as_json.stdout.splitlines()]
    # Escaped for the terminal, the same value for a program.
    assert (document["reason"], document["order_id"]) == (ESCAPES, f"ORD-{ESCAPES}")

    for options in ((), ("--json",)):
        shown = run_relay("dlq", "show", letter_id, "--config", config_file, *options, env={})
        assert shown.returncode == 0, shown.stderr
        assert_inert(shown.stdout, shown.stderr)
        assert len(skipped_lines(shown.stderr, dlq, "dead letter")) == len(poison)
    assert json.loads(shown.stdout)["letters"][0]["message"] == ESCAPES


def test_outcome_records_are_signed_with_the_outcome_key() -> None:
    letter = _letter()
    outcome = make_replay_outcome(letter, ReplayResult.REPLAYED, event_id="wh-1")
    signed = replay_outcome_record(outcome, "payments.events.dlq", OUTCOME_KEY)
    assert outcome_authentic(OUTCOME_KEY, signed.value, signed.headers)
    assert decode_dlq_record(signed.value, signed.headers) == outcome  # readers unchanged
    unsigned = replay_outcome_record(outcome, "payments.events.dlq")
    assert "relay_outcome_mac" not in dict(unsigned.headers)
    assert not outcome_authentic(OUTCOME_KEY, unsigned.value, unsigned.headers)
    assert not outcome_authentic("another-key-" * 4, signed.value, signed.headers)
    # The MAC covers the whole value: another outcome keeps no signature it did not earn.
    failed = make_replay_outcome(letter, ReplayResult.FAILED_AGAIN, reason="unknown_status")
    assert not outcome_authentic(OUTCOME_KEY, failed.to_json(), signed.headers)


async def test_a_forged_outcome_does_not_make_a_letter_replayed(
    aiohttp_client: Any, tansu: TestBroker, topic: str, tmp_path: Path
) -> None:
    before, _ = _configs(tansu.bootstrap_servers, topic, tmp_path)
    relay = await start_relay(aiohttp_client, before)
    assert (await relay.post(signed_webhook(before, body=REFUND))).status == 200
    dlq = before.kafka.dead_letter_topic
    [record] = await read_topic(tansu.bootstrap_servers, dlq, expect=1)
    letter = decode_dead_letter(record.value)
    claim = make_replay_outcome(letter, ReplayResult.REPLAYED, event_id="evt-never-published")
    forged = [
        replay_outcome_record(claim, dlq),  # unsigned
        replay_outcome_record(claim, dlq, "a-key-that-is-not-relays-0123456789abcdef"),
    ]
    await publish(before.kafka, forged)
    await read_topic(tansu.bootstrap_servers, dlq, expect=3)
    with_key = str(_config_file(before, tmp_path / "with-key.toml"))

    listed = run_relay("dlq", "list", "--config", with_key, env={})
    assert listed.returncode == 0, listed.stderr
    _, row = listed.stdout.splitlines()
    assert row.split()[-1] == "-"  # no replay it can believe
    *ignored, summary = listed.stderr.splitlines()
    assert summary == "1 dead letter(s); 2 unsigned replay outcome(s) ignored"
    assert all(
        re.fullmatch(
            rf"{dlq}/\d+@\d+: replay outcome ignored: not signed with \[replay\] outcome_key", line
        )
        for line in ignored
    )
    assert len(ignored) == 2

    # A replay signs what it did; that one is believed.
    failed = run_relay("replay", "--config", with_key, env={})
    assert failed.returncode == 1, failed.stderr
    listed = run_relay("dlq", "list", "--config", with_key, env={})
    rows = listed.stdout.splitlines()[1:]
    assert "failed again" in rows[0] and rows[0].endswith("filed again as attempt 2")
    shown = run_relay("dlq", "show", letter.id, "--config", with_key, "--json", env={})
    replays = json.loads(shown.stdout)["letters"][0]["replays"]
    assert [(r["outcome"], r["reason"]) for r in replays] == [("failed_again", "unknown_status")]

    # Without a key nothing can be told apart: shown, and said to be unauthenticated.
    no_key = tmp_path / "no-key.toml"
    no_key.write_text(re.sub(r"\[replay\]\noutcome_key = .*\n", "", Path(with_key).read_text()))
    listed = run_relay("dlq", "list", "--config", str(no_key), env={})
    assert listed.returncode == 0, listed.stderr
    assert listed.stderr.splitlines()[-1] == (
        f"relay dlq: 3 replay outcome(s) shown unauthenticated: no [replay] outcome_key is set, "
        f"so anyone who can write to {dlq} can forge what they say"
    )

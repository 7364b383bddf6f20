"""Batches (Adyen's ``notificationItems``, GoCardless's ``events``): one request, many
events. Each item is verified, normalized, deduplicated and delivered (or dead-lettered)
on its own; one bad signature refuses the whole request; the provider's acknowledgement
waits until every item is durable. No broker: the deliverers here stand in for one."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import hmac
import io
import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

import relay.pipeline
from relay.config import Config, ConfigError
from relay.dedup import MemoryDedup
from relay.delivery import Durability
from relay.errors import Unavailable
from relay.http import _record_result
from relay.pipeline import BatchResult, Inbound, Outcome, Pipeline, Result, verify
from relay.records import KafkaRecord
from relay.replay import ReplaySummary, _inbound, _replay_one, letter_order_id
from schemas import Message, NormalizeContext
from schemas.decoder import decode_dead_letter
from tests.conftest import make_config, signed_webhook, start_relay
from tests.relay_process import REPO, toml_text
from verifiers import VerificationError

ADYEN_KEY = "44782DEF547AAA06C910C43932B1EB0C71FC68D9D0C057550C48EC2ACF6BA056"
GOCARDLESS_SECRET = "test-gocardless-secret"
PROVIDERS: dict[str, Any] = {
    "adyen": {"profile": "adyen", "secrets": [ADYEN_KEY]},
    "gocardless": {
        "profile": "gocardless",
        "secrets": [GOCARDLESS_SECRET],
        "order_id_metadata_key": "order_id",
    },
}


class _Recorder:
    """Takes every record at once, as an acknowledging broker would; ``stall`` holds back
    the records whose value contains it until ``release`` is set, ``fail`` refuses them
    (once) as an unreachable broker and a full spool would."""

    def __init__(self, stall: bytes | None = None, fail: bytes | None = None) -> None:
        self.records: list[KafkaRecord] = []
        self.stall, self.fail = stall, fail
        self.release = asyncio.Event()
        self.stalled = asyncio.Event()

    async def deliver(
        self, record: KafkaRecord, kafka_wait_s: float, dedup_key: str | None
    ) -> Durability:
        if self.fail is not None and self.fail in record.value:
            self.fail = None
            raise Unavailable("Kafka is not acknowledging and the spool is full")
        if self.stall is not None and self.stall in record.value:
            self.stalled.set()
            await self.release.wait()
        self.records.append(record)
        return Durability.KAFKA

    def events(self) -> list[dict[str, Any]]:
        return [orjson.loads(record.value) for record in self.records if record.topic == "t"]

    def letters(self) -> list[KafkaRecord]:
        return [record for record in self.records if record.topic == "t.dlq"]


def _setup(tmp_path: Path, recorder: _Recorder | None = None) -> tuple[Pipeline, _Recorder, Config]:
    config = make_config(bootstrap="127.0.0.1:9", topic="t", var=tmp_path, providers=PROVIDERS)
    recorder = recorder or _Recorder()
    return Pipeline(config, MemoryDedup(ttl_s=600), recorder), recorder, config


async def _post(
    pipeline: Pipeline, config: Config, provider: str, body: bytes, headers: dict[str, str]
) -> Result | BatchResult:
    lowered = {name.lower(): value for name, value in headers.items()}
    return await pipeline.receive(config.providers[provider], body, lowered, datetime.now(UTC))


def _outcomes(result: Result | BatchResult) -> list[Outcome]:
    assert isinstance(result, BatchResult)
    return [item.outcome for item in result.items]


def _gocardless(events: list[dict[str, Any]]) -> tuple[bytes, dict[str, str]]:
    """A GoCardless webhook of these events, signed as GoCardless signs it."""
    body = orjson.dumps({"events": events, "meta": {"webhook_id": "WB0000TEST"}})
    signature = hmac.new(GOCARDLESS_SECRET.encode(), body, hashlib.sha256).hexdigest()
    return body, {"Webhook-Signature": signature, "Content-Type": "application/json"}


def _payment_event(number: int, action: str) -> dict[str, Any]:
    return {
        "id": f"EV{number:012d}",
        "created_at": datetime.now(UTC).isoformat(),
        "resource_type": "payments",
        "action": action,
        "links": {"payment": "PM0000000001"},
        "details": {"origin": "gocardless", "cause": f"payment_{action}"},
        "resource_metadata": {"order_id": "ORDER-9"},
    }


async def test_each_item_is_its_own_event(tmp_path: Path) -> None:
    pipeline, recorder, config = _setup(tmp_path)
    for provider in ("adyen", "gocardless"):
        webhook = signed_webhook(config, provider, event="batch", order="ORDER-1")
        result = await _post(pipeline, config, provider, webhook.body, webhook.headers)
        assert _outcomes(result) == [Outcome.ACCEPTED] * 3

    events = recorder.events()
    assert [
        (e["source"], e["type"], e["data"]["amount"], e["data"]["currency"]) for e in events
    ] == [
        ("relay/adyen", "payment.payin.authorized", "5000", "JPY"),
        ("relay/adyen", "payment.payin.succeeded", "5000", "JPY"),
        ("relay/adyen", "payment.refund.succeeded", "1.250", "KWD"),
        ("relay/gocardless", "payment.payin.pending", None, None),
        ("relay/gocardless", "payment.payin.processing", None, None),
        ("relay/gocardless", "payment.payin.succeeded", None, None),
    ]
    assert {event["subject"] for event in events} == {"ORDER-1"}
    # Each event embeds its own notification, not the whole request.
    for event in events[:3]:
        assert set(event["data"]["raw"]) == {"NotificationRequestItem"}


async def test_an_unmappable_item_is_one_dead_letter_and_the_rest_are_events(
    tmp_path: Path,
) -> None:
    pipeline, recorder, config = _setup(tmp_path)
    events = [
        _payment_event(1, "confirmed"),
        _payment_event(2, "refunded_somehow"),
        _payment_event(3, "submitted"),
    ]
    body, headers = _gocardless(events)

    result = await _post(pipeline, config, "gocardless", body, headers)

    assert _outcomes(result) == [Outcome.ACCEPTED, Outcome.DEAD_LETTERED, Outcome.ACCEPTED]
    assert [event["id"] for event in recorder.events()] == ["EV000000000001", "EV000000000003"]
    [record] = recorder.letters()
    letter = decode_dead_letter(record.value, record.headers)
    # The letter keeps the whole signed request and says which item it is about.
    assert (letter.reason, letter.item, letter.body) == ("unknown_status", 1, body)
    assert orjson.loads(record.value)["item"] == 1


async def test_the_letter_of_an_item_replays_that_item_only(tmp_path: Path) -> None:
    pipeline, recorder, config = _setup(tmp_path)
    body, headers = _gocardless([_payment_event(1, "confirmed"), _payment_event(2, "refunded")])
    await _post(pipeline, config, "gocardless", body, headers)
    letter = decode_dead_letter(recorder.letters()[0].value)
    # The operator teaches the instance the action, then replays the letter.
    providers: dict[str, Any] = {
        **PROVIDERS,
        "gocardless": {**PROVIDERS["gocardless"], "statuses": {"refunded": "refunded"}},
    }
    replay_config = make_config(
        bootstrap="127.0.0.1:9", topic="t", var=tmp_path, providers=providers
    )
    replaying = Pipeline(replay_config, MemoryDedup(ttl_s=600), recorder)
    inbound = Inbound(
        replay_config.providers["gocardless"],
        letter.body,
        letter.headers,
        letter.received_at,
        letter.attempts + 1,
        item=letter.item,
    )

    result = await replaying.process(inbound)

    assert result.outcome is Outcome.ACCEPTED
    assert [event["id"] for event in recorder.events()] == ["EV000000000001", "EV000000000002"]
    assert recorder.events()[1]["type"] == "payment.payin.refunded"


async def test_an_items_letter_is_verified_again_as_its_request_then_replays_that_item(
    tmp_path: Path,
) -> None:
    """The letter of a GoCardless item keeps the request's signature header, so ``relay
    replay`` verifies the whole signed body again before it processes the item; a letter
    whose body was altered, or that has no signature headers, is refused."""
    pipeline, recorder, config = _setup(tmp_path)
    body, headers = _gocardless([_payment_event(1, "confirmed"), _payment_event(2, "refunded")])
    await _post(pipeline, config, "gocardless", body, headers)
    letter = decode_dead_letter(recorder.letters()[0].value)
    assert (letter.item, letter.body) == (1, body)
    assert letter.signature_headers == {"webhook-signature": headers["Webhook-Signature"]}
    providers: dict[str, Any] = {
        **PROVIDERS,
        "gocardless": {**PROVIDERS["gocardless"], "statuses": {"refunded": "refunded"}},
    }
    replay_config = make_config(
        bootstrap="127.0.0.1:9", topic="t", var=tmp_path, providers=providers
    )
    replaying = Pipeline(replay_config, MemoryDedup(ttl_s=600), recorder)
    forged_body = body.replace(b'"refunded"', b'"confirmed"').replace(b"EV000000000002", b"EV9")
    summary = ReplaySummary()

    forged = await _replay_one(
        replay_config, replaying, dataclasses.replace(letter, body=forged_body), summary, False
    )
    unsigned = await _replay_one(
        replay_config,
        replaying,
        dataclasses.replace(letter, signature_headers=None),
        summary,
        False,
    )
    genuine = await _replay_one(replay_config, replaying, letter, summary, False)

    assert [(o.outcome.value, o.reason) for o in (forged, unsigned, genuine)] == [
        ("failed_again", "unverified"),
        ("failed_again", "unverifiable"),
        ("replayed", None),
    ]
    assert [event["id"] for event in recorder.events()] == ["EV000000000001", "EV000000000002"]
    assert recorder.events()[1]["type"] == "payment.payin.refunded"


async def test_a_requests_signature_headers_are_found_once_for_all_its_letters(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Finding the headers a letter keeps runs the verifier over the whole body again: once
    per request, not once per dead-lettered item (an Adyen request has up to 100)."""
    pipeline, recorder, config = _setup(tmp_path)
    calls: list[bytes] = []

    def counting(*args: Any) -> Any:
        calls.append(args[1])
        return verify(*args)

    monkeypatch.setattr(relay.pipeline, "verify", counting)
    body, headers = _gocardless([_payment_event(n, "unheard_of") for n in range(1, 4)])

    result = await _post(pipeline, config, "gocardless", body, headers)

    assert _outcomes(result) == [Outcome.DEAD_LETTERED] * 3
    letters = [decode_dead_letter(record.value) for record in recorder.letters()]
    assert [letter.item for letter in letters] == [0, 1, 2]
    kept = {"webhook-signature": headers["Webhook-Signature"]}
    assert [letter.signature_headers for letter in letters] == [kept] * 3
    assert calls == [body]


async def test_freshness_is_checked_per_item(tmp_path: Path) -> None:
    """A GoCardless event older than max_age_s, or further ahead than max_future_s, is its
    own letter; its neighbours are published."""
    providers = {"gocardless": {**PROVIDERS["gocardless"], "max_age_s": 3600}}
    config = make_config(bootstrap="127.0.0.1:9", topic="t", var=tmp_path, providers=providers)
    recorder = _Recorder()
    pipeline = Pipeline(config, MemoryDedup(ttl_s=600), recorder)
    now = datetime.now(UTC)
    stale = {**_payment_event(1, "confirmed"), "created_at": (now - timedelta(hours=2)).isoformat()}
    ahead = {**_payment_event(3, "confirmed"), "created_at": (now + timedelta(hours=1)).isoformat()}
    body, headers = _gocardless([stale, _payment_event(2, "confirmed"), ahead])

    result = await _post(pipeline, config, "gocardless", body, headers)

    assert _outcomes(result) == [Outcome.DEAD_LETTERED, Outcome.ACCEPTED, Outcome.DEAD_LETTERED]
    assert [event["id"] for event in recorder.events()] == ["EV000000000002"]
    letters = [decode_dead_letter(record.value) for record in recorder.letters()]
    assert [(letter.item, letter.reason) for letter in letters] == [
        (0, "stale_event"),
        (2, "future_event"),
    ]


async def test_a_normalizer_bug_on_one_item_is_that_items_letter(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The safety net holds per item: a normalizer that raises on one notification files
    that notification as ``normalizer_error``; the others are published."""
    pipeline, recorder, config = _setup(tmp_path)
    instance = config.providers["gocardless"]
    normalize = instance.profile.normalize

    def broken_on_two(message: Message, ctx: NormalizeContext) -> Any:
        if b"EV000000000002" in message.body:
            raise ZeroDivisionError("a bug")
        return normalize(message, ctx)

    profile = dataclasses.replace(instance.profile, normalize=broken_on_two)
    broken = dataclasses.replace(instance, profile=profile)
    body, headers = _gocardless([_payment_event(n, "confirmed") for n in (1, 2, 3)])
    lowered = {name.lower(): value for name, value in headers.items()}

    result = await pipeline.receive(broken, body, lowered, datetime.now(UTC))

    assert _outcomes(result) == [Outcome.ACCEPTED, Outcome.DEAD_LETTERED, Outcome.ACCEPTED]
    [letter] = [decode_dead_letter(record.value) for record in recorder.letters()]
    assert (letter.item, letter.reason) == (1, "normalizer_error")
    assert "ZeroDivisionError" in letter.message
    assert any(record.exc_info for record in caplog.records)


async def test_a_batch_with_a_number_out_of_range_is_an_out_of_range_letter(
    tmp_path: Path,
) -> None:
    """A batch body is read with the ranges of an event (schemas.ranges), and refused with
    the reason a single message gets: out_of_range, not malformed_json."""
    pipeline, recorder, config = _setup(tmp_path)
    huge = orjson.dumps(_payment_event(1, "confirmed"))[:-1] + b',"amount":' + b"9" * 4301 + b"}"
    body = b'{"events":[' + huge + b'],"meta":{"webhook_id":"WB0000TEST"}}'
    signature = hmac.new(GOCARDLESS_SECRET.encode(), body, hashlib.sha256).hexdigest()

    result = await _post(pipeline, config, "gocardless", body, {"Webhook-Signature": signature})

    assert isinstance(result, Result) and result.reason == "out_of_range"
    [record] = recorder.letters()
    assert decode_dead_letter(record.value).item is None  # the whole body: no item was read


async def test_one_bad_signature_refuses_the_whole_request(tmp_path: Path) -> None:
    pipeline, recorder, config = _setup(tmp_path)
    webhook = signed_webhook(config, "adyen", event="batch", order="ORDER-2")
    document = orjson.loads(webhook.body)
    # The third item's amount changed after signing: its own signature no longer matches.
    document["notificationItems"][2]["NotificationRequestItem"]["amount"]["value"] = 1
    forged = orjson.dumps(document)

    with pytest.raises(VerificationError) as refused:
        await _post(pipeline, config, "adyen", forged, webhook.headers)

    assert refused.value.status == 401
    assert recorder.records == []

    body, headers = _gocardless([_payment_event(1, "confirmed")])
    with pytest.raises(VerificationError) as refused:
        await _post(pipeline, config, "gocardless", body + b" ", headers)
    assert refused.value.status == 498  # GoCardless's documented answer
    assert recorder.records == []


async def test_a_retried_batch_publishes_nothing_new(tmp_path: Path) -> None:
    pipeline, recorder, config = _setup(tmp_path)
    body, headers = _gocardless(
        [_payment_event(1, "confirmed"), _payment_event(2, "nope"), _payment_event(3, "paid_out")]
    )
    first = await _post(pipeline, config, "gocardless", body, headers)
    records = len(recorder.records)

    retry = await _post(pipeline, config, "gocardless", body, headers)

    assert _outcomes(first) == [Outcome.ACCEPTED, Outcome.DEAD_LETTERED, Outcome.ACCEPTED]
    assert _outcomes(retry) == [Outcome.DUPLICATE, Outcome.DEAD_LETTERED, Outcome.DUPLICATE]
    assert isinstance(retry, BatchResult) and retry.items[1].durability is None  # the same letter
    assert len(recorder.records) == records == 3


async def test_the_ack_waits_until_every_item_is_durable(tmp_path: Path) -> None:
    recorder = _Recorder(stall=b"EV000000000002")
    pipeline, recorder, config = _setup(tmp_path, recorder)
    body, headers = _gocardless([_payment_event(n, "confirmed") for n in (1, 2, 3)])

    receiving = asyncio.create_task(_post(pipeline, config, "gocardless", body, headers))
    await recorder.stalled.wait()
    await asyncio.sleep(0.05)

    # Items 1 and 3 are durable; item 2 is not, so there is no answer yet.
    assert [event["id"] for event in recorder.events()] == ["EV000000000001", "EV000000000003"]
    assert not receiving.done()
    recorder.release.set()
    assert _outcomes(await receiving) == [Outcome.ACCEPTED] * 3


async def test_an_item_that_cannot_be_made_durable_fails_the_request_and_the_retry_completes_it(
    tmp_path: Path,
) -> None:
    recorder = _Recorder(fail=b"EV000000000002")
    pipeline, recorder, config = _setup(tmp_path, recorder)
    body, headers = _gocardless([_payment_event(n, "confirmed") for n in (1, 2, 3)])

    with pytest.raises(Unavailable) as failed:
        await _post(pipeline, config, "gocardless", body, headers)
    assert failed.value.status == 503
    assert [event["id"] for event in recorder.events()] == ["EV000000000001", "EV000000000003"]

    # The provider's retry: the durable items are duplicates, the missing one is published.
    retry = await _post(pipeline, config, "gocardless", body, headers)
    assert _outcomes(retry) == [Outcome.DUPLICATE, Outcome.ACCEPTED, Outcome.DUPLICATE]
    assert sorted(event["id"] for event in recorder.events()) == [
        "EV000000000001",
        "EV000000000002",
        "EV000000000003",
    ]


async def test_a_signed_body_that_is_no_batch_is_one_dead_letter(tmp_path: Path) -> None:
    pipeline, recorder, config = _setup(tmp_path)
    body = b'{"events":{"id":"EV1","resource_type":"payments","action":"failed"}}'
    signature = hmac.new(GOCARDLESS_SECRET.encode(), body, hashlib.sha256).hexdigest()

    result = await _post(pipeline, config, "gocardless", body, {"webhook-signature": signature})

    assert isinstance(result, Result)
    assert (result.outcome, result.reason) == (Outcome.DEAD_LETTERED, "missing_field")
    letter = decode_dead_letter(recorder.letters()[0].value)
    assert (letter.item, letter.body) == (None, body)


async def test_a_batch_of_one_hundred_adyen_items(tmp_path: Path) -> None:
    """The most Adyen's verifier takes in one request: each its own event, one ack."""
    pipeline, recorder, config = _setup(tmp_path)
    sample = orjson.loads(signed_webhook(config, "adyen", event="AUTHORISATION").body)
    item = sample["notificationItems"][0]["NotificationRequestItem"]
    items = []
    for number in range(100):
        copy = {**item, "pspReference": f"PSP{number:013d}", "additionalData": {}}
        items.append({"NotificationRequestItem": copy})
    webhook = signed_webhook(
        config, "adyen", body=orjson.dumps({"live": "false", "notificationItems": items})
    )

    result = await _post(pipeline, config, "adyen", webhook.body, webhook.headers)

    assert _outcomes(result) == [Outcome.ACCEPTED] * 100
    assert len({event["id"] for event in recorder.events()}) == 100


def test_a_batch_is_one_log_line_counting_its_items(json_log: io.StringIO, tmp_path: Path) -> None:
    config = make_config(bootstrap="127.0.0.1:9", topic="t", var=tmp_path, providers=PROVIDERS)
    result = BatchResult(
        (
            Result(Outcome.ACCEPTED, "EV1", Durability.KAFKA),
            Result(Outcome.DUPLICATE, "EV2"),
            Result(Outcome.DEAD_LETTERED, "letter-3", Durability.KAFKA, "unknown_status"),
        )
    )

    _record_result(config.providers["gocardless"], result, 0.012, None)

    [line] = [json.loads(text) for text in json_log.getvalue().splitlines() if '"webhook"' in text]
    assert (line["level"], line["outcome"], line["reason"], line["items"]) == (
        "warning",
        "dead_lettered",
        "unknown_status",
        3,
    )
    assert line["item_outcomes"] == {"accepted": 1, "duplicate": 1, "dead_lettered": 1}
    assert line["dead_letter_ids"] == ["letter-3"]
    assert line["event_id"] is None


ADYEN_BASIC = {
    "profile": "adyen",
    "secrets": [ADYEN_KEY],
    "basic_auth_username": "adyen-notifications",
    "basic_auth_password": "the password",
}


async def test_adyen_basic_credentials_are_required_when_configured(tmp_path: Path) -> None:
    # Read like any secret: here from a mounted file.
    (tmp_path / "password").write_text("s3cret:with:colons\n")
    table = {**ADYEN_BASIC, "basic_auth_password": f"${{file:{tmp_path / 'password'}}}"}
    config = make_config(
        bootstrap="127.0.0.1:9", topic="t", var=tmp_path, providers={"adyen": table}
    )
    assert repr(config.providers["adyen"].keys).endswith("authorizations=1)")
    pipeline = Pipeline(config, MemoryDedup(ttl_s=600), _Recorder())
    webhook = signed_webhook(config, "adyen", event="AUTHORISATION")
    assert webhook.headers["authorization"].startswith("Basic ")

    assert _outcomes(await _post(pipeline, config, "adyen", webhook.body, webhook.headers)) == [
        Outcome.ACCEPTED
    ]
    without = {k: v for k, v in webhook.headers.items() if k != "authorization"}
    with pytest.raises(VerificationError) as refused:
        await _post(pipeline, config, "adyen", webhook.body, without)
    assert refused.value.status == 401


@pytest.mark.parametrize(
    ("table", "key"),
    [
        ({"profile": "adyen", "secrets": [ADYEN_KEY], "form": "payload"}, "form"),
        ({**ADYEN_BASIC, "basic_auth_password": None}, "basic_auth_password"),
        (
            {"profile": "adyen", "secrets": [ADYEN_KEY], "basic_auth_password": "p"},
            "basic_auth_username",
        ),
        (
            {"profile": "stripe", "secrets": ["whsec_x"], "basic_auth_username": "u"},
            "basic_auth_username",
        ),
        ({"profile": "adyen", "secrets": ["not hex"]}, "secrets"),
    ],
)
def test_config_refuses(tmp_path: Path, table: dict[str, Any], key: str) -> None:
    table = {name: value for name, value in table.items() if value is not None}
    with pytest.raises(ConfigError) as refused:
        make_config(bootstrap="127.0.0.1:9", topic="t", var=tmp_path, providers={"x": table})
    assert refused.value.key == f"providers.x.{key}"


def test_adyen_instances_load(tmp_path: Path) -> None:
    """Loading signs one of the profile's samples to check the key: a probe body of
    another shape crashed the loader for Adyen's items form."""
    config = make_config(
        bootstrap="127.0.0.1:9",
        topic="t",
        var=tmp_path,
        providers={
            "adyen": {"profile": "adyen", "secrets": [ADYEN_KEY]},
            "platform": {"profile": "adyen-platform", "secrets": [ADYEN_KEY]},
        },
    )
    assert config.providers["adyen"].ack.body == b"[accepted]"


async def test_relay_replay_and_dlq_read_a_letters_item(tmp_path: Path) -> None:
    """``relay replay`` re-enters with the letter's item, and ``relay dlq`` names the order
    of that item (not of the request's first one)."""
    pipeline, recorder, config = _setup(tmp_path)
    second = {**_payment_event(2, "unheard_of"), "resource_metadata": {"order_id": "ORDER-77"}}
    body, headers = _gocardless([_payment_event(1, "confirmed"), second])
    await _post(pipeline, config, "gocardless", body, headers)
    letter = decode_dead_letter(recorder.letters()[0].value)

    inbound = _inbound(config, letter)

    assert inbound is not None and (inbound.item, inbound.attempts) == (1, 2)
    assert letter_order_id(config, letter) == "ORDER-77"


async def test_relay_send_signs_a_sample_of_each_batch_profile(
    aiohttp_client: Any, kafka_bootstrap: str, topic: str, tmp_path: Path
) -> None:
    """``relay send <instance>`` as an operator runs it: each profile's first sample (Adyen's
    with its Basic credentials), signed as the provider signs it, acknowledged by Relay."""
    providers: dict[str, Any] = {
        **PROVIDERS,
        "adyen": ADYEN_BASIC,
        "platform": {"profile": "adyen-platform", "secrets": [ADYEN_KEY]},
    }
    config = make_config(bootstrap=kafka_bootstrap, topic=topic, var=tmp_path, providers=providers)
    relay = await start_relay(aiohttp_client, config)
    url = str(relay.client.make_url("/")).rstrip("/")
    path = tmp_path / "relay.toml"
    path.write_text(toml_text({"providers": providers}))
    (tmp_path / "not-a-notification.json").write_text('{"reference":"x"}')

    async def send(*args: str) -> tuple[int, str, str]:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "relay",
            "send",
            *args,
            "--config",
            str(path),
            "--url",
            url,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=REPO,
        )
        out, err = await process.communicate()
        return process.returncode or 0, out.decode(), err.decode()

    for name in ("adyen", "platform", "gocardless"):
        code, out, err = await send(name)
        ack = config.providers[name].ack
        assert (code, err) == (0, ""), err
        assert out.strip().endswith(f"-> {ack.status} {ack.body.decode()}".strip())
    code, out, err = await send("adyen", "--body", str(tmp_path / "not-a-notification.json"))
    assert code == 2
    assert err.startswith("relay send: the adyen profile cannot sign this body: ")

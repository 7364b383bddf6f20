"""Every profile end to end on a real broker: the dev instances of the five documents
(``deploy/dev.toml``, demo keys) and the public schemes, each sample event signed as
its sender signs it, acknowledged with the provider's own ack, published once."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

import jsonschema
import orjson
import pytest

from relay.devbroker import free_port
from relay.profiles import PROFILES
from relay.samples import SampleEvent
from schemas.values import FINAL_STATUSES
from tests.conftest import (
    SignedWebhook,
    TestBroker,
    event_of,
    make_config,
    read_topic,
    signed_webhook,
    start_relay,
)
from tests.paypal_ca import pinned_certificate
from tests.relay_process import RelayProcess, run_relay, toml_text

ROOT = Path(__file__).parent.parent
SCHEMA = json.loads((ROOT / "schemas" / "payment-event.schema.json").read_text())
DEV_PROVIDERS: dict[str, Any] = tomllib.loads((ROOT / "deploy" / "dev.toml").read_text())[
    "providers"
]
PUBLIC_PROVIDERS: dict[str, Any] = {
    "hooks-github": {"profile": "github", "secrets": ["test-github-secret"]},
    "hooks-stripe": {
        "profile": "stripe",
        "secrets": ["whsec_test_stripe_secret"],
        "order_id_metadata_key": "order_id",
    },
    "hooks-standard": {
        "profile": "standard-webhooks",
        "secrets": ["whsec_" + base64.b64encode(b"test-standard-webhooks-key").decode()],
    },
    "hooks-adyen": {
        "profile": "adyen",
        "secrets": ["44782DEF547AAA06C910C43932B1EB0C71FC68D9D0C057550C48EC2ACF6BA056"],
        "basic_auth_username": "adyen-test",
        "basic_auth_password": "test-basic-password",
    },
    "hooks-adyen-platform": {
        "profile": "adyen-platform",
        "secrets": ["74F490DD33F7327BAECC88B2947C011FC02D014A473AAA33A8EC93E4DC069174"],
    },
    "hooks-gocardless": {
        "profile": "gocardless",
        "secrets": ["test-gocardless-endpoint-secret"],
        "order_id_metadata_key": "order_id",
    },
    "hooks-hmac": {
        "profile": "hmac",
        "secrets": ["test-generic-secret"],
        "id_header": "X-Event-Id",
    },
    "hooks-square": {
        "profile": "square",
        "secrets": ["test-square-signature-key"],
        "notification_url": "https://relay.example/webhooks/hooks-square",
    },
    "hooks-paddle": {
        "profile": "paddle",
        "secrets": ["pdl_ntfset_01hs0t3tw21j988db1pam5xg8m_testPaddleSecret"],
        "order_id_metadata_key": "order_id",
    },
    "hooks-razorpay": {
        "profile": "razorpay",
        "secrets": ["test-razorpay-webhook-secret"],
        "order_id_metadata_key": "order_id",
    },
    "hooks-checkout": {
        "profile": "checkout",
        "secrets": ["test-checkout-signature-key"],
        "authorizations": ["test-checkout-authorization-value"],
    },
    "hooks-coinbase": {
        "profile": "coinbase-commerce",
        "secrets": ["test-coinbase-commerce-shared-secret"],
        "order_id_metadata_key": "order_id",
    },
    # Wise signs with its own key: the dev wallet-topup demo pair stands in for it.
    "hooks-wise": {
        "profile": "wise",
        "public_keys": DEV_PROVIDERS["topup"]["public_keys"],
        "signing_key": DEV_PROVIDERS["topup"]["signing_key"],
    },
    "hooks-braintree": {
        "profile": "braintree",
        "public_key": "test_braintree_public_key",
        "secrets": ["test_braintree_private_key"],
    },
    # PayPal's certificate pinned (no fetch): one made for the dev pair stands in for it.
    "hooks-paypal": {
        "profile": "paypal",
        "webhook_id": "1JE4291016473214C",
        "public_keys": [pinned_certificate(DEV_PROVIDERS["topup"]["signing_key"])],
        "signing_key": DEV_PROVIDERS["topup"]["signing_key"],
    },
}
PROVIDERS = {**DEV_PROVIDERS, **PUBLIC_PROVIDERS}


def test_every_profile_is_exercised_here() -> None:
    assert {table["profile"] for table in PROVIDERS.values()} == set(PROFILES)


def _sample_index(event: dict[str, Any]) -> int:
    """Which sample an event came from: each was sent with order ``ORD-<index>``."""
    (match,) = {int(part) for part in re.findall(r"ORD-(\d+)", orjson.dumps(event).decode())}
    return match


def _tampered(webhook: SignedWebhook) -> SignedWebhook:
    """The same request with one byte of the body changed (a digit, so it stays valid JSON)."""
    body = bytearray(webhook.body)
    index = next(i for i, byte in enumerate(body) if chr(byte).isdigit())
    body[index] = ord("7") if body[index] != ord("7") else ord("8")
    return SignedWebhook(webhook.path, bytes(body), webhook.headers)


def _becomes(sample: SampleEvent) -> list[str]:
    """The types a sample's events must have: one, or one per notification of a batch."""
    return [sample.becomes] if isinstance(sample.becomes, str) else list(sample.becomes)


@pytest.mark.parametrize("provider", sorted(PROVIDERS))
async def test_each_sample_is_acknowledged_and_published_once(
    aiohttp_client: Any, kafka_bootstrap: str, topic: str, tmp_path: Path, provider: str
) -> None:
    config = make_config(bootstrap=kafka_bootstrap, topic=topic, var=tmp_path, providers=PROVIDERS)
    instance = config.providers[provider]
    relay = await start_relay(aiohttp_client, config)
    samples = instance.profile.samples
    events = list(samples)
    ids: list[str] = []
    for index, name in enumerate(events):
        webhook = signed_webhook(config, provider, event=name, order=f"ORD-{index}")
        for _attempt in range(2):  # the provider's retry is acknowledged the same way
            response = await relay.post(webhook)
            assert response.status == instance.ack.status, await response.text()
            assert await response.read() == instance.ack.body
            assert response.content_type == instance.ack.content_type

    expected = sum(len(_becomes(samples[name])) for name in events)
    records = await read_topic(kafka_bootstrap, topic, expect=expected)
    # One per sample, or per notification of a batch sample: the retries published nothing.
    assert len(records) == expected
    types: dict[int, list[str]] = {}
    for record in records:
        event = event_of(record)
        types.setdefault(_sample_index(event), []).append(event["type"])
        if event["type"].startswith("payment."):
            status = event["type"].rsplit(".", 1)[1]
            assert (event["data"]["status"], event["data"]["final"]) == (
                status,
                status in FINAL_STATUSES,
            )
        jsonschema.validate(event, SCHEMA)
        assert event["source"] == f"relay/{provider}"
        assert event["data"]["provider"] == provider
        assert event["data"]["profile"] == instance.profile.name
        assert record.key.decode().startswith(f"{provider}:")
        ids.append(event["id"])
    # What the registry says each sample becomes: its types (for a payment, its status).
    assert {index: sorted(found) for index, found in types.items()} == {
        index: sorted(_becomes(samples[name])) for index, name in enumerate(events)
    }
    assert len(set(ids)) == expected


@pytest.mark.parametrize("provider", ["hooks-adyen", "hooks-gocardless"])
async def test_a_batch_is_one_record_per_notification(
    aiohttp_client: Any, kafka_bootstrap: str, topic: str, tmp_path: Path, provider: str
) -> None:
    """A batch signed as its provider signs it: one acknowledgement, one record per item,
    each with its own flow, status, amount and currency, and keyed by the order."""
    config = make_config(bootstrap=kafka_bootstrap, topic=topic, var=tmp_path, providers=PROVIDERS)
    relay = await start_relay(aiohttp_client, config)
    webhook = signed_webhook(config, provider, event="batch", order="ORD-BATCH")

    response = await relay.post(webhook)

    assert response.status == config.providers[provider].ack.status, await response.text()
    records = await read_topic(kafka_bootstrap, topic, expect=3)
    found = sorted(
        (
            (
                event["data"]["flow"],
                event["data"]["status"],
                event["data"]["amount"],
                event["data"]["currency"],
            )
            for event in map(event_of, records)
        ),
        key=repr,
    )
    assert found == sorted(BATCHES[provider], key=repr)
    assert {record.key for record in records} == {f"{provider}:ORD-BATCH".encode()}


# What each provider's batch sample (three notifications of one order) must publish.
BATCHES: dict[str, list[tuple[str, str, str | None, str | None]]] = {
    "hooks-adyen": [
        ("payin", "authorized", "5000", "JPY"),
        ("payin", "succeeded", "5000", "JPY"),
        ("refund", "succeeded", "1.250", "KWD"),
    ],
    "hooks-gocardless": [
        ("payin", "pending", None, None),
        ("payin", "processing", None, None),
        ("payin", "succeeded", None, None),
    ],
}


@pytest.mark.parametrize("provider", sorted(PROVIDERS))
async def test_forged_requests_are_401_and_publish_nothing(
    aiohttp_client: Any, kafka_bootstrap: str, topic: str, tmp_path: Path, provider: str
) -> None:
    config = make_config(bootstrap=kafka_bootstrap, topic=topic, var=tmp_path, providers=PROVIDERS)
    relay = await start_relay(aiohttp_client, config)
    webhook = signed_webhook(config, provider)
    instance = config.providers[provider]
    sample = next(iter(instance.profile.samples.values())).build(0, "ORD-0").body
    signature_headers = set(
        instance.profile.scheme.sign(sample, instance.params, instance.keys, 0).headers
    ) - {"authorization"}
    if instance.profile.content_types[0] == "application/x-www-form-urlencoded":
        # The signature is a form field (Braintree's bt_signature, whose absence is a 400
        # like any form missing a field): the instance's key with a digest of zeros.
        public_key = instance.params.public_key
        fields = [
            (k, f"{public_key}|{'0' * 40}" if k == "bt_signature" else v)
            for k, v in parse_qsl(webhook.body.decode())
        ]
        unsigned = SignedWebhook(webhook.path, urlencode(fields).encode(), webhook.headers)
    elif signature_headers:
        unsigned = SignedWebhook(
            webhook.path,
            webhook.body,
            {k: v for k, v in webhook.headers.items() if k not in signature_headers},
        )
    else:  # the signature is in the body: its `sign` field, or each Adyen item's
        document = orjson.loads(webhook.body)
        if "sign" in document:
            del document["sign"]
        for item in document.get("notificationItems", []):
            del item["NotificationRequestItem"]["additionalData"]["hmacSignature"]
        unsigned = SignedWebhook(webhook.path, orjson.dumps(document), webhook.headers)
    # The provider's documented refusal where it has one (GoCardless: 498), else 401.
    refusal = getattr(instance.params, "refusal_status", 401)
    for forged in (_tampered(webhook), unsigned):
        response = await relay.post(forged)
        assert response.status == refusal, await response.text()
        assert (await response.json())["error"]
    assert await read_topic(kafka_bootstrap, topic, expect=0, settle_s=0.3, timeout_s=1) == []


async def test_relay_send_posts_each_public_profiles_first_sample_to_relay_serve(
    broker: TestBroker, topic: str, tmp_path: Path
) -> None:
    """``relay send <instance>`` with the config ``relay serve`` runs: the CLI signs the
    profile's first sample with the instance's keys (and options: Square's URL, Checkout.com's
    Authorization value), the server acknowledges it, and it is published."""
    for name in (topic, f"{topic}.dlq"):
        broker.create_topic(name)
    port = free_port()
    config_path = tmp_path / "relay.toml"
    document = {
        "server": {"host": "127.0.0.1", "port": port},
        "kafka": {
            "bootstrap_servers": broker.bootstrap_servers,
            "topic": topic,
            "idempotence": broker.idempotence,
        },
        "dedup": {"backend": "memory"},
        "spool": {"path": str(tmp_path / "spool")},
        "providers": PUBLIC_PROVIDERS,
    }
    config_path.write_text(toml_text(document), encoding="utf-8")
    relay = RelayProcess(config_path, port, tmp_path / "relay.log")
    try:
        await relay.start()
        for provider, table in PUBLIC_PROVIDERS.items():
            sent = run_relay("send", provider, "--config", str(config_path), env={})
            ack = PROFILES[table["profile"]].ack
            assert sent.returncode == 0, sent.stderr + relay.log_tail()
            assert sent.stdout == (
                f"POST {relay.url}/webhooks/{provider} -> {ack.status} {ack.body.decode()}\n"
            )
        records = await read_topic(broker.bootstrap_servers, topic, expect=len(PUBLIC_PROVIDERS))
    finally:
        relay.kill()
    published = {event_of(record)["source"]: event_of(record)["type"] for record in records}
    assert published == {
        f"relay/{provider}": next(iter(PROFILES[table["profile"]].samples.values())).becomes
        for provider, table in PUBLIC_PROVIDERS.items()
    }


@pytest.mark.parametrize("configured", [True, False], ids=["with", "without"])
async def test_checkout_authorization_is_required_only_where_configured(
    aiohttp_client: Any, kafka_bootstrap: str, topic: str, tmp_path: Path, configured: bool
) -> None:
    """Checkout.com's Authorization value is optional: an instance that sets
    ``authorizations`` refuses a correctly signed request without one of them (401
    authorization_mismatch, nothing published); one that does not accepts it."""
    table = dict(PUBLIC_PROVIDERS["hooks-checkout"])
    if not configured:
        del table["authorizations"]
    config = make_config(
        bootstrap=kafka_bootstrap, topic=topic, var=tmp_path, providers={"cko": table}
    )
    relay = await start_relay(aiohttp_client, config)
    webhook = signed_webhook(config, "cko", order="ORD-1")
    assert ("authorization" in webhook.headers) is configured
    unauthorized = {k: v for k, v in webhook.headers.items() if k != "authorization"}
    for headers in (unauthorized, {**unauthorized, "authorization": "test-checkout-other"}):
        response = await relay.post(SignedWebhook(webhook.path, webhook.body, headers))
        if configured:
            assert response.status == 401
            assert (await response.json())["error"] == "authorization_mismatch"
        else:
            assert response.status == 200, await response.text()
    if configured:
        assert (await relay.post(webhook)).status == 200
    assert len(await read_topic(kafka_bootstrap, topic, expect=1)) == 1


async def test_braintree_s_challenge_is_answered_on_its_route_and_nowhere_else(
    aiohttp_client: Any, kafka_bootstrap: str, topic: str, tmp_path: Path
) -> None:
    """Braintree checks a destination with a GET carrying ``bt_challenge``: the answer is
    ``public_key|hex(HMAC-SHA1(SHA1(private key), challenge))`` in text/plain. A profile
    without a challenge takes no GET; a GET without a challenge, or with a bad one, is a 400."""
    config = make_config(bootstrap=kafka_bootstrap, topic=topic, var=tmp_path, providers=PROVIDERS)
    relay = await start_relay(aiohttp_client, config)
    challenge = "20f9f8ed05f77439fe955c977e4c8a53"
    response = await relay.client.get(f"/webhooks/hooks-braintree?bt_challenge={challenge}")
    assert response.status == 200 and response.content_type == "text/plain"
    key = hashlib.sha1(b"test_braintree_private_key").digest()
    digest = hmac.new(key, challenge.encode(), "sha1").hexdigest()
    assert await response.text() == f"test_braintree_public_key|{digest}"
    for query, status in (("bt_challenge=NOT-HEX", 400), ("other=1", 400), ("", 400)):
        response = await relay.client.get(f"/webhooks/hooks-braintree?{query}")
        assert response.status == status, await response.text()
        assert (await response.json())["error"] in ("malformed_body", "bad_request")
    response = await relay.client.get(f"/webhooks/hooks-stripe?bt_challenge={challenge}")
    assert response.status == 405
    response = await relay.client.get(f"/webhooks/nowhere?bt_challenge={challenge}")
    assert response.status == 404
    assert await read_topic(kafka_bootstrap, topic, expect=0, settle_s=0.3, timeout_s=1) == []


async def test_a_braintree_form_with_a_field_twice_or_missing_is_a_400(
    aiohttp_client: Any, kafka_bootstrap: str, topic: str, tmp_path: Path
) -> None:
    config = make_config(bootstrap=kafka_bootstrap, topic=topic, var=tmp_path, providers=PROVIDERS)
    relay = await start_relay(aiohttp_client, config)
    webhook = signed_webhook(config, "hooks-braintree")
    fields = parse_qsl(webhook.body.decode())
    for body in (
        urlencode([*fields, fields[0]]),  # bt_signature twice
        urlencode([*fields, fields[1]]),  # bt_payload twice
        urlencode(fields[:1]),
        urlencode(fields[1:]),
    ):
        response = await relay.post(SignedWebhook(webhook.path, body.encode(), webhook.headers))
        assert response.status == 400, await response.text()
        assert (await response.json())["error"] == "malformed_body"
    assert await read_topic(kafka_bootstrap, topic, expect=0, settle_s=0.3, timeout_s=1) == []

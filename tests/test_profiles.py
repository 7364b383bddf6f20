"""Every profile end to end on a real broker: the dev instances of the five documents
(``deploy/dev.toml``, demo keys) and the public schemes, each sample event signed as
its sender signs it, acknowledged with the provider's own ack, published once."""

from __future__ import annotations

import base64
import json
import re
import tomllib
from pathlib import Path
from typing import Any

import jsonschema
import orjson
import pytest

from relay.profiles import PROFILES
from schemas.values import FINAL_STATUSES
from tests.conftest import (
    SignedWebhook,
    event_of,
    make_config,
    read_topic,
    signed_webhook,
    start_relay,
)

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
    "hooks-hmac": {
        "profile": "hmac",
        "secrets": ["test-generic-secret"],
        "id_header": "X-Event-Id",
    },
    # Wise signs with its own key: the dev wallet-topup demo pair stands in for it.
    "hooks-wise": {
        "profile": "wise",
        "public_keys": DEV_PROVIDERS["topup"]["public_keys"],
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

    records = await read_topic(kafka_bootstrap, topic, expect=len(events))
    assert len(records) == len(events)  # one per sample: the retries published nothing
    for record in records:
        event = event_of(record)
        # What the registry says this sample becomes: its type, and for a payment its status.
        expected = samples[events[_sample_index(event)]].becomes
        assert event["type"] == expected
        if expected.startswith("payment."):
            status = expected.rsplit(".", 1)[1]
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
    assert len(set(ids)) == len(events)


@pytest.mark.parametrize("provider", sorted(PROVIDERS))
async def test_forged_requests_are_401_and_publish_nothing(
    aiohttp_client: Any, kafka_bootstrap: str, topic: str, tmp_path: Path, provider: str
) -> None:
    config = make_config(bootstrap=kafka_bootstrap, topic=topic, var=tmp_path, providers=PROVIDERS)
    relay = await start_relay(aiohttp_client, config)
    webhook = signed_webhook(config, provider)
    instance = config.providers[provider]
    signature_headers = set(
        instance.profile.scheme.sign(b"{}", instance.params, instance.keys, 0).headers
    )
    if signature_headers:
        unsigned = SignedWebhook(
            webhook.path,
            webhook.body,
            {k: v for k, v in webhook.headers.items() if k not in signature_headers},
        )
    else:  # the signature is the body's `sign` field
        document = orjson.loads(webhook.body)
        del document["sign"]
        unsigned = SignedWebhook(webhook.path, orjson.dumps(document), webhook.headers)
    for forged in (_tampered(webhook), unsigned):
        response = await relay.post(forged)
        assert response.status == 401, await response.text()
        assert (await response.json())["error"]
    assert await read_topic(kafka_bootstrap, topic, expect=0, settle_s=0.3, timeout_s=1) == []

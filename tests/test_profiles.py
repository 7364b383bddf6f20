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
from tests.paypal_ca import pinned_certificate

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
    else:  # the signature is the body's `sign` field
        document = orjson.loads(webhook.body)
        del document["sign"]
        unsigned = SignedWebhook(webhook.path, orjson.dumps(document), webhook.headers)
    for forged in (_tampered(webhook), unsigned):
        response = await relay.post(forged)
        assert response.status == 401, await response.text()
        assert (await response.json())["error"]
    assert await read_topic(kafka_bootstrap, topic, expect=0, settle_s=0.3, timeout_s=1) == []


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

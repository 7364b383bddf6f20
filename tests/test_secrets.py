"""Secrets never leave Relay: not in logs (every level, every logger), error bodies, dead
letters, metrics, the ``repr`` of config objects, or configuration errors. For every profile
(the fuzz suite's instances: the five document profiles with deploy/dev.toml's demo keys,
the public schemes, and option variants).

A secret counts as leaked if it appears whole or 24 of its characters in a row do (the
needles are its 16-character slices every 8 characters): secrets
(as configured, and a Standard Webhooks secret's key part), private keys (as configured and
as PEM), HTTP Basic passwords (and the ``Authorization`` value they make), and the signature Relay expected for a forged request (which would let a forger
finish the forgery).
"""

from __future__ import annotations

import base64
import dataclasses
import logging
import re
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

import orjson
import pytest
from cryptography.hazmat.primitives import serialization

from relay.config import Config, ConfigError, parse_config
from relay.logs import JsonFormatter, effective_config
from relay.samples import signed_sample
from tests.apache_kafka.secure import make_pki
from tests.conftest import make_config, read_topic, start_relay
from tests.fuzz.instances import fuzz_providers, signature_of
from tests.fuzz.mutations import Fuzzer, Request, flipped_signature, slot_text
from verifiers.keys import load_private_key, private_pem

SLICE = 16


def slices(text: str) -> set[str]:
    compact = "".join(text.split())
    return {compact[i : i + SLICE] for i in range(0, max(len(compact) - SLICE, 0) + 1, SLICE // 2)}


def secret_needles(providers: dict[str, dict[str, Any]]) -> dict[str, str]:
    """Every slice of every secret, mapped to where it came from (for the failure message)."""
    needles: dict[str, str] = {}
    for name, table in providers.items():
        texts = [*table.get("secrets", []), *table.get("authorizations", [])]
        texts += [text.removeprefix("whsec_") for text in texts if text.startswith("whsec_")]
        if "signing_key" in table:
            texts += [table["signing_key"], private_pem(load_private_key(table["signing_key"]))]
        if "basic_auth_password" in table:  # and the Authorization value that carries it
            credentials = f"{table['basic_auth_username']}:{table['basic_auth_password']}"
            texts += [table["basic_auth_password"], base64.b64encode(credentials.encode()).decode()]
        for text in texts:
            for piece in slices(text.replace("-----BEGIN PRIVATE KEY-----", "")):
                if "-----" not in piece:
                    needles[piece] = f"a secret of {name}"
    return needles


PROVIDERS = fuzz_providers()
NEEDLES = secret_needles(PROVIDERS)


def assert_no_secret(
    surface: str, texts: Iterable[str], extra: dict[str, str] | None = None
) -> None:
    needles = {**NEEDLES, **(extra or {})}
    for text in texts:
        for needle, origin in needles.items():
            assert needle not in text, f"{origin} appears in {surface}: {text[:300]!r}"


class Everything(logging.Handler):
    """Every record of every logger, formatted as Relay writes it and with its raw fields."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.lines: list[str] = []
        self.json = JsonFormatter()

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.json.format(record))
        self.lines.append(repr(vars(record)))


@pytest.fixture
def every_log_line() -> Any:
    handler = Everything()
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield handler.lines
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def as_request(sample: Any) -> Request:
    return Request("POST", "/", list(sample.headers.items()), sample.body)


# Document profiles turn a body that is not a payment notification into a dead letter.
DOCUMENT_INSTANCES = [
    name
    for name, table in PROVIDERS.items()
    if table["profile"]
    in {"usdt-collect-pay", "wallet-topup", "v2-payout", "usdt-invoice", "payin-order"}
]


async def test_no_secret_leaves_relay(
    aiohttp_client: Any,
    kafka_bootstrap: str,
    topic: str,
    tmp_path: Path,
    every_log_line: list[str],
) -> None:
    config = make_config(bootstrap=kafka_bootstrap, topic=topic, var=tmp_path, providers=PROVIDERS)
    relay = await start_relay(aiohttp_client, config)
    fuzzer = Fuzzer(config, seed=8)
    bodies: list[str] = []
    expected: dict[str, str] = {}
    for name, instance in config.providers.items():
        now = time.time()
        valid = signed_sample(instance, order="fz00000000000000aa", now=now)
        slot = signature_of(instance).slot
        if slot.form:
            # Braintree's form wraps the notification in base64: the forgery is another
            # order's form under this one's bt_signature.
            other = signed_sample(instance, order="fz00000000000000ab", now=now)
            signature = dict(parse_qsl(valid.body.decode()))[slot.name]
            fields = parse_qsl(other.body.decode())
            forged = [(k, signature if k == slot.name else v) for k, v in fields]
            forged_body = urlencode(forged).encode()
            # The signature Relay computes for the forged form: what a forger would need.
            needed = slot_text(as_request(other), slot)
        else:
            forged_body = valid.body.replace(b"fz00000000000000aa", b"fz00000000000000ab")
            # The signature Relay computes for the forged body: what a forger would need.
            # A sign field is not part of what it signs: take it out to sign the forged body.
            unsigned = re.sub(rf',"{slot.name}":"[^"]*"'.encode(), b"", forged_body)
            needed = slot_text(as_request(signed_sample(instance, body=unsigned, now=now)), slot)
        assert forged_body != valid.body
        assert needed
        expected.update(dict.fromkeys(slices(needed), f"the signature {name} expected"))
        if instance.profile.items is None or instance.profile.scheme.name != "adyen":
            unusable_body = b'{"reference":"fz00000000000000ac"}'
        else:  # Adyen signs only notifications: one whose outcome no table has
            unusable_body = valid.body.replace(b'"success":"true"', b'"success":"maybe"')
        unusable = signed_sample(instance, body=unusable_body, now=now)
        flipped = flipped_signature(fuzzer, instance, as_request(valid))
        attempts = [
            (valid.body, valid.headers),  # accepted
            (valid.body, valid.headers),  # a duplicate
            (forged_body, valid.headers),  # forged
            (flipped.body, dict(flipped.headers)),  # a wrong signature
            (valid.body, {"Content-Type": "application/json"}),  # no signature
            (valid.body, {**valid.headers, "Content-Type": "text/plain"}),
            (unusable.body, unusable.headers),  # authentic but not a payment: a dead letter
        ]
        for body, headers in attempts:
            response = await relay.client.post(f"/webhooks/{name}", data=body, headers=headers)
            text = await response.text()
            bodies.append(text)
            if response.status >= 300:
                assert set(orjson.loads(text)) == {"error", "message"}
    metrics = await (await relay.client.get("/metrics")).text()
    letters = await read_topic(
        kafka_bootstrap, config.kafka.dead_letter_topic, expect=len(DOCUMENT_INSTANCES)
    )

    assert len(letters) >= len(DOCUMENT_INSTANCES)
    assert any("rejected" in line for line in every_log_line), "no log line was captured"
    assert_no_secret("an error body", bodies, expected)
    assert_no_secret("the logs", every_log_line, expected)
    assert_no_secret("a dead letter", [letter.value.decode() for letter in letters], expected)
    assert_no_secret("the metrics", [metrics], expected)


def test_no_secret_in_the_repr_of_config_objects(tmp_path: Path) -> None:
    config: Config = make_config(
        bootstrap="localhost:9092", topic="t", var=tmp_path, providers=PROVIDERS
    )
    objects: list[Any] = [config, config.server, *config.providers.values()]
    for instance in config.providers.values():
        objects += [instance.keys, instance.params, *instance.keys.secrets]
    texts = [repr(item) for item in objects] + [str(item) for item in objects]
    texts += [repr(dataclasses.asdict(config.server))]
    texts.append(orjson.dumps(effective_config(config), default=str).decode())
    assert_no_secret("a repr", texts)


def test_no_kafka_password_in_the_config_relay_logs(tmp_path: Path) -> None:
    """``serving`` logs the effective config: the SASL password and the client key's
    password say only that they are set."""
    pki = make_pki(tmp_path / "pki")
    key = serialization.load_pem_private_key(pki.client_key.read_bytes(), password=None)
    encrypted_key = tmp_path / "relay-key.enc.pem"
    encrypted_key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"key-password-material"),
        )
    )
    kafka = {
        "security_protocol": "SASL_SSL",
        "ssl_cafile": str(pki.ca_file),
        "ssl_certfile": str(pki.client_certificate),
        "ssl_keyfile": str(encrypted_key),
        "ssl_key_password": "key-password-material",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_username": "relay",
        "sasl_password": "sasl-password-material",
    }
    config = make_config(bootstrap="localhost:9093", topic="t", var=tmp_path, kafka=kafka)
    logged = effective_config(config)["kafka"]
    assert (logged["sasl_password"], logged["ssl_key_password"]) == ("(set)", "(set)")
    texts = [orjson.dumps(effective_config(config)).decode(), repr(config), repr(config.kafka)]
    for text in texts:
        assert "password-material" not in text


@pytest.mark.parametrize(
    ("table", "secret"),
    [
        ({"profile": "standard-webhooks", "secrets": ["whsec_not*base64*secret"]}, "not*base64"),
        ({"profile": "standard-webhooks", "secrets": ["${FROM_ENV}"]}, "env*secret*value"),
        ({"profile": "payin-order", "public_keys": ["zz-key-material-zz"]}, "key-material"),
        (
            {"profile": "usdt-invoice", "secrets": ["s"], "signing_key": "private-key-material"},
            "private-key-material",
        ),
    ],
)
def test_configuration_errors_do_not_echo_key_material(table: dict[str, Any], secret: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config({"providers": {"p": table}}, env={"FROM_ENV": "whsec_env*secret*value"})
    assert secret not in str(caught.value)

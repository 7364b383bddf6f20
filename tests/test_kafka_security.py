"""Relay on Apache Kafka through TLS and SASL, as managed clusters require.

The session's broker (conftest) has, next to its plaintext listener, the secure
listeners of :mod:`tests.apache_kafka.secure`: ``SASL_SSL`` (PLAIN,
SCRAM-SHA-256, SCRAM-SHA-512, OAUTHBEARER), ``SASL_PLAINTEXT`` (PLAIN only) and
``MTLS`` (TLS with a client certificate), all with certificates made for this
run. SCRAM users are created through the admin API, as an operator does.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import secrets
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from relay.app import SERVICES, build_app
from relay.cli import main as relay_cli
from relay.config import Config
from relay.kafka import TopicReader
from tests.apache_kafka.launcher import ApacheKafka
from tests.apache_kafka.secure import PLAIN_USERS
from tests.conftest import INVOICE_SECRET, make_config, signed_webhook, start_relay
from tests.relay_process import toml_text
from tests.test_tail import tail_lines

pytestmark = pytest.mark.apache_kafka

PLAIN_USER, PLAIN_PASSWORD = next(iter(PLAIN_USERS.items()))


def unsecured_token() -> str:
    """An OAUTHBEARER token the broker's unsecured-JWS validator accepts (``alg: none``):
    the token-provider hook's test double for a real identity provider."""

    def part(document: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(orjson.dumps(document)).rstrip(b"=").decode()

    now = int(time.time())
    return f"{part({'alg': 'none'})}.{part({'sub': 'relay', 'iat': now, 'exp': now + 600})}."


@pytest.fixture(scope="module")
def scram_users(apache_kafka: ApacheKafka) -> dict[str, tuple[str, str]]:
    """One SCRAM user per mechanism: mechanism -> (user, password)."""
    users = {}
    for mechanism in ("SCRAM-SHA-256", "SCRAM-SHA-512"):
        user, password = f"relay-{mechanism[-3:]}", secrets.token_urlsafe(16)
        apache_kafka.upsert_scram_user(mechanism, user, password)
        users[mechanism] = (user, password)
    return users


def sasl_ssl(apache_kafka: ApacheKafka, mechanism: str, **settings: Any) -> dict[str, Any]:
    """``[kafka]`` settings for the SASL_SSL listener."""
    assert apache_kafka.pki is not None
    return {
        "bootstrap_servers": apache_kafka.secure_bootstrap_servers("SASL_SSL"),
        "security_protocol": "SASL_SSL",
        "ssl_cafile": str(apache_kafka.pki.ca_file),
        "sasl_mechanism": mechanism,
        "idempotence": True,
        **settings,
    }


def login(mechanism: str, scram_users: dict[str, tuple[str, str]]) -> dict[str, str]:
    if mechanism == "OAUTHBEARER":
        return {"sasl_oauth_token_provider": f"{__name__}:unsecured_token"}
    user, password = scram_users.get(mechanism, (PLAIN_USER, PLAIN_PASSWORD))
    return {"sasl_username": user, "sasl_password": password}


def secure_config(
    apache_kafka: ApacheKafka, topic: str, tmp_path: Path, kafka: dict[str, Any]
) -> Config:
    apache_kafka.create_topic(topic, exist_ok=True)
    apache_kafka.create_topic(f"{topic}.dlq", exist_ok=True)
    return make_config(
        bootstrap=kafka.pop("bootstrap_servers"),
        topic=topic,
        var=tmp_path,
        kafka=kafka,
        create_topics=False,
    )


async def read_events(config: Config, expect: int, timeout_s: float = 20.0) -> list[Any]:
    """What the events topic holds, read through the config's own (secure) settings."""
    records: list[Any] = []
    async with TopicReader(config.kafka, config.kafka.topic) as reader:
        assert await reader.assign(resume=False)
        deadline = time.monotonic() + timeout_s
        while len(records) < expect and time.monotonic() < deadline:
            records.extend(await reader.poll(0.2))
        records.extend(await reader.poll(0.5))  # a late duplicate would show here
    return records


def configured(
    apache_kafka: ApacheKafka, topic: str, tmp_path: Path, kafka: dict[str, Any]
) -> tuple[Config, Path]:
    """The config of ``kafka`` settings (topics created), and the same written to a file."""
    config = secure_config(apache_kafka, topic, tmp_path, dict(kafka))
    return config, write_toml(tmp_path / "relay.toml", config, kafka)


def write_toml(path: Path, config: Config, kafka: dict[str, Any]) -> Path:
    document = {
        "kafka": {"topic": config.kafka.topic, **kafka},
        "spool": {"path": config.spool.path},
        "dedup": {"backend": "memory"},
        # Replay signs the outcomes it files, and relay dlq believes only signed ones.
        "replay": {"outcome_key": "kafka-security-replay-outcome-key-0123"},
        "providers": {"invoices": {"profile": "usdt-invoice", "secrets": [INVOICE_SECRET]}},
    }
    path.write_text(toml_text(document), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("mechanism", "compression"),
    [
        ("PLAIN", "gzip"),
        ("SCRAM-SHA-256", "lz4"),
        ("SCRAM-SHA-512", "zstd"),
        ("OAUTHBEARER", "snappy"),
    ],
)
async def test_webhook_to_event_through_sasl_ssl(
    aiohttp_client: Any,
    apache_kafka: ApacheKafka,
    scram_users: dict[str, tuple[str, str]],
    topic: str,
    tmp_path: Path,
    mechanism: str,
    compression: str,
) -> None:
    kafka = sasl_ssl(
        apache_kafka, mechanism, compression=compression, **login(mechanism, scram_users)
    )
    config = secure_config(apache_kafka, topic, tmp_path, kafka)
    relay = await start_relay(aiohttp_client, config)
    webhook = signed_webhook(config, order="ORD-SECURE-1")
    response = await relay.post(webhook)
    assert response.status == 200
    assert (await relay.client.get("/readyz")).status == 200

    [record] = await read_events(config, expect=1)
    event = orjson.loads(record.value)
    assert event["data"]["merchant_order_id"] == "ORD-SECURE-1"
    assert record.key == b"invoices:ORD-SECURE-1"


async def test_mutual_tls_with_a_client_certificate(
    aiohttp_client: Any, apache_kafka: ApacheKafka, topic: str, tmp_path: Path
) -> None:
    pki = apache_kafka.pki
    assert pki is not None
    kafka = {
        "bootstrap_servers": apache_kafka.secure_bootstrap_servers("MTLS"),
        "security_protocol": "SSL",
        "ssl_cafile": str(pki.ca_file),
        "ssl_certfile": str(pki.client_certificate),
        "ssl_keyfile": str(pki.client_key),
        "idempotence": True,
    }
    config = secure_config(apache_kafka, topic, tmp_path, kafka)
    relay = await start_relay(aiohttp_client, config)
    assert (await relay.post(signed_webhook(config, order="ORD-MTLS-1"))).status == 200
    [record] = await read_events(config, expect=1)
    assert orjson.loads(record.value)["data"]["merchant_order_id"] == "ORD-MTLS-1"


async def test_check_config_logs_in_and_finds_the_topics(
    apache_kafka: ApacheKafka,
    scram_users: dict[str, tuple[str, str]],
    topic: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    kafka = sasl_ssl(apache_kafka, "SCRAM-SHA-512", **login("SCRAM-SHA-512", scram_users))
    _, config_file = configured(apache_kafka, topic, tmp_path, kafka)
    assert await asyncio.to_thread(relay_cli, ["check-config", str(config_file)]) == 0
    said = capsys.readouterr().out
    assert "(SASL_SSL, logged in with SCRAM-SHA-512): topics" in said
    assert f"{topic}, {topic}.dlq exist" in said


async def test_tail_dlq_and_replay_through_sasl_ssl(
    aiohttp_client: Any,
    apache_kafka: ApacheKafka,
    scram_users: dict[str, tuple[str, str]],
    topic: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    kafka = sasl_ssl(apache_kafka, "SCRAM-SHA-256", **login("SCRAM-SHA-256", scram_users))
    config, config_file = configured(apache_kafka, topic, tmp_path, kafka)
    relay = await start_relay(aiohttp_client, config)
    assert (await relay.post(signed_webhook(config, order="ORD-OPS-1"))).status == 200
    refund = orjson.dumps(
        {"invoice_reference": "ORD-OPS-2", "status": "refunded", "amount_usdt_exact": "1.00"}
    )
    assert (await relay.post(signed_webhook(config, body=refund))).status == 200

    [line], _ = await tail_lines(config_file, lines=1)
    assert "ORD-OPS-1" in line

    assert await asyncio.to_thread(relay_cli, ["dlq", "list", "--config", str(config_file)]) == 0
    listed = capsys.readouterr().out
    assert "unknown_status" in listed

    # Still unknown to this config: the replay reads the letter, fails it again and files it
    # again (attempts 2) through the same secure producer.
    assert await asyncio.to_thread(relay_cli, ["replay", "--config", str(config_file)]) == 1
    assert "failed" in capsys.readouterr().out
    assert await asyncio.to_thread(relay_cli, ["dlq", "list", "--config", str(config_file)]) == 0
    listed_again = capsys.readouterr()
    assert listed_again.err == "2 dead letter(s)\n"
    assert "failed again" in listed_again.out  # the outcome the replay filed


def _refusals(apache_kafka: ApacheKafka, users: dict[str, tuple[str, str]]) -> list[Any]:
    pki = apache_kafka.pki
    assert pki is not None
    scram = login("SCRAM-SHA-512", users)
    port = apache_kafka.secure_bootstrap_servers("SASL_SSL").rpartition(":")[2]
    return [
        (
            "untrusted certificate",
            sasl_ssl(apache_kafka, "SCRAM-SHA-512", ssl_cafile=str(pki.untrusted_ca_file), **scram),
            "TLS: the broker's certificate is not trusted (unable to get local issuer certificate)",
        ),
        (
            "hostname mismatch",
            sasl_ssl(apache_kafka, "SCRAM-SHA-512", bootstrap_servers=f"localhost:{port}", **scram),
            "TLS: the broker's certificate is not valid for localhost",
        ),
        (
            "wrong password",
            sasl_ssl(
                apache_kafka,
                "SCRAM-SHA-512",
                sasl_username=scram["sasl_username"],
                sasl_password="not-the-password",
            ),
            f"SASL SCRAM-SHA-512 login as {scram['sasl_username']!r} refused: "
            "Authentication failed during authentication due to invalid credentials",
        ),
        (
            "mechanism not enabled",
            {
                "bootstrap_servers": apache_kafka.secure_bootstrap_servers("SASL_PLAINTEXT"),
                "security_protocol": "SASL_PLAINTEXT",
                "sasl_mechanism": "SCRAM-SHA-512",
                **scram,
            },
            "SASL SCRAM-SHA-512 is not enabled on this listener",
        ),
        (
            "no client certificate",
            {
                "bootstrap_servers": apache_kafka.secure_bootstrap_servers("MTLS"),
                "security_protocol": "SSL",
                "ssl_cafile": str(pki.ca_file),
            },
            "the broker closed the connection during the handshake",
        ),
        (
            "TLS to a plaintext listener",
            {
                "bootstrap_servers": apache_kafka.bootstrap_servers,
                "security_protocol": "SSL",
                "ssl_cafile": str(pki.ca_file),
            },
            "TLS handshake failed",
        ),
        (
            "SASL to a plaintext listener",
            {
                "bootstrap_servers": apache_kafka.bootstrap_servers,
                "security_protocol": "SASL_PLAINTEXT",
                "sasl_mechanism": "PLAIN",
                "sasl_username": PLAIN_USER,
                "sasl_password": PLAIN_PASSWORD,
            },
            "this listener does not speak SASL",
        ),
    ]


REFUSALS = [
    "untrusted certificate",
    "hostname mismatch",
    "wrong password",
    "mechanism not enabled",
    "no client certificate",
    "TLS to a plaintext listener",
    "SASL to a plaintext listener",
]


@pytest.mark.parametrize("case", REFUSALS)
async def test_check_config_says_in_one_line_what_the_broker_refused(
    apache_kafka: ApacheKafka,
    scram_users: dict[str, tuple[str, str]],
    topic: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    case: str,
) -> None:
    [(_, kafka, expected)] = [r for r in _refusals(apache_kafka, scram_users) if r[0] == case]
    _, config_file = configured(apache_kafka, topic, tmp_path, kafka)
    assert await asyncio.to_thread(relay_cli, ["check-config", str(config_file)]) == 1
    said = capsys.readouterr()
    [line] = said.err.splitlines()
    assert line.startswith(f"kafka {kafka['bootstrap_servers']}: {expected}"), line
    for _, password in scram_users.values():
        assert password not in said.out + said.err


async def test_operator_commands_name_a_refused_login(
    apache_kafka: ApacheKafka,
    scram_users: dict[str, tuple[str, str]],
    topic: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    user, _ = scram_users["SCRAM-SHA-512"]
    kafka = sasl_ssl(
        apache_kafka, "SCRAM-SHA-512", sasl_username=user, sasl_password="not-the-password"
    )
    _, config_file = configured(apache_kafka, topic, tmp_path, kafka)
    for command in (["dlq", "list"], ["replay"]):
        assert await asyncio.to_thread(relay_cli, [*command, "--config", str(config_file)]) == 1
        assert capsys.readouterr().err == (
            f"relay: kafka: SASL SCRAM-SHA-512 login as {user!r} refused: Authentication "
            "failed during authentication due to invalid credentials with SASL mechanism "
            "SCRAM-SHA-512\n"
        )


async def test_wrong_password_at_run_time_spools_then_drains_once_the_login_works(
    aiohttp_client: Any,
    apache_kafka: ApacheKafka,
    topic: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Relay starts with a password the broker does not know: ``/readyz`` names the refused
    login, webhooks are acknowledged from the spool, and once the operator sets that
    password on the cluster every one of them is published, once."""
    caplog.set_level(logging.INFO)
    user, configured = "relay-rotating", "the-new-password"
    apache_kafka.upsert_scram_user("SCRAM-SHA-512", user, "the-old-password")
    kafka = sasl_ssl(apache_kafka, "SCRAM-SHA-512", sasl_username=user, sasl_password=configured)
    config = secure_config(apache_kafka, topic, tmp_path, kafka)
    client = await aiohttp_client(build_app(config))
    sink = client.app[SERVICES].sink

    deadline = time.monotonic() + 20
    while sink.last_error != "authentication failed" and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    readiness = await client.get("/readyz")
    document = await readiness.json()
    assert document["kafka"]["error"] == "authentication failed"
    assert document["kafka"]["connected"] is False

    orders = [f"ORD-ROTATE-{n}" for n in range(3)]
    for order in orders:
        webhook = signed_webhook(config, order=order)
        response = await client.post(webhook.path, data=webhook.body, headers=webhook.headers)
        assert response.status == 200  # durable in the spool
    assert (await (await client.get("/readyz")).json())["spool"]["depth"] == len(orders)

    apache_kafka.upsert_scram_user("SCRAM-SHA-512", user, configured)
    records = await read_events(config, expect=len(orders), timeout_s=30)
    assert sorted(orjson.loads(r.value)["data"]["merchant_order_id"] for r in records) == orders
    assert configured not in caplog.text
    assert "the-old-password" not in caplog.text

"""Shared fixtures: real brokers, a configured Relay app, signed requests, a topic reader.

The broker matrix
-----------------
Every test that publishes to Kafka asks for ``broker`` (or ``kafka_bootstrap``,
its address) and runs once per broker named in ``RELAY_TEST_BROKERS``
(default ``tansu,apache-kafka``):

- ``tansu``, the dev broker (or the broker ``KAFKA_BOOTSTRAP_SERVERS`` names):
  topics appear on first use, no idempotent producers;
- ``apache-kafka``, Apache Kafka 4.4 from Maven Central (``tests/apache_kafka``):
  production settings, so topics must be created first (``make_config`` does
  that, as an operator would before deploying) and Relay runs with its
  production default ``idempotence = true``.

Each broker is started once per session and stopped at the end. Apache Kafka
needs ``java`` (17 or newer) and ``mvn`` on PATH; without them its half of the
matrix and the ``apache_kafka`` tests are skipped and the run's summary says
so, unless ``RELAY_TEST_BROKERS`` leaves it out or ``RELAY_REQUIRE_APACHE_KAFKA=1``
(CI) makes that an error. Each test publishes to its own topic names, so tests
never see each other's records.
"""

from __future__ import annotations

import asyncio
import io
import logging
import os
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest

from relay.app import build_app
from relay.config import Config, parse_config
from relay.devbroker import DevBroker
from relay.http import SERVICES, Services
from relay.kafka import ReadRecord, TopicReader
from relay.logs import setup_logging
from relay.samples import signed_sample
from relay.settings import KafkaConfig
from tests.apache_kafka.launcher import ApacheKafka, ensure_jars, java_and_maven
from tests.apache_kafka.secure import make_pki

INVOICE_SECRET = "test-invoice-secret-0123456789"
REPO_ROOT = Path(__file__).resolve().parents[1]

TANSU = "tansu"
APACHE_KAFKA = "apache-kafka"
ALL_BROKERS = (TANSU, APACHE_KAFKA)


def selected_brokers() -> tuple[str, ...]:
    """The brokers of the matrix, from ``RELAY_TEST_BROKERS`` (comma separated)."""
    text = os.environ.get("RELAY_TEST_BROKERS", ",".join(ALL_BROKERS))
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    unknown = set(names) - set(ALL_BROKERS)
    if unknown or not names:
        raise pytest.UsageError(
            f"RELAY_TEST_BROKERS={text!r}: name one or more of {', '.join(ALL_BROKERS)}"
        )
    return names


def apache_kafka_required() -> bool:
    return os.environ.get("RELAY_REQUIRE_APACHE_KAFKA") == "1"


def browser_required() -> bool:
    """CI sets ``RELAY_REQUIRE_BROWSER=1``: without chromium the browser tests fail there."""
    return os.environ.get("RELAY_REQUIRE_BROWSER") == "1"


BROWSER_LEFT_OUT: list[str] = []
"""Why the browser tests did not run (tests/test_console_browser.py), for the summary."""


@dataclass(frozen=True)
class TestBroker:
    """One broker of the matrix, and what it does differently."""

    __test__ = False  # a helper, not a test class

    name: str
    bootstrap_servers: str
    idempotence: bool
    """It grants producer ids, so Relay runs with its production default."""
    apache_kafka: ApacheKafka | None = None
    """The process, for a broker that creates no topics on first use (and for fault tests)."""

    def create_topic(self, name: str, partitions: int = 4) -> None:
        """Create ``name`` where topics are not created on first use; an existing one is kept."""
        if self.apache_kafka is not None:
            self.apache_kafka.create_topic(name, partitions, exist_ok=True)


# By bootstrap address, so that make_config(bootstrap=...) knows which broker it targets.
_BROKERS: dict[str, TestBroker] = {}


@dataclass
class _ApacheKafkaReport:
    """What the terminal summary says about Apache Kafka."""

    tests: int = 0
    left_out: str | None = None
    ready_s: float | None = None
    notes: list[str] = field(default_factory=list)


_APACHE_KAFKA_REPORT = _ApacheKafkaReport()


def report_apache_kafka_note(note: str) -> None:
    """A measurement to show in the run's summary (e.g. the counts of the kill -9 test)."""
    _APACHE_KAFKA_REPORT.notes.append(note)


@pytest.fixture(scope="session")
def tansu() -> Iterator[TestBroker]:
    """The dev broker, or the broker ``KAFKA_BOOTSTRAP_SERVERS`` names in its place."""
    external = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if external:
        yield _register(TestBroker(TANSU, external, idempotence=False))
        return
    with DevBroker() as dev_broker:
        yield _register(TestBroker(TANSU, dev_broker.bootstrap_servers, idempotence=False))


@pytest.fixture(scope="session")
def apache_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApacheKafka]:
    """One Apache Kafka node for the session: KRaft, auto-creation off, default size limits.

    A failing test can print ``apache_kafka.log_tail()``; the whole log is at
    ``apache_kafka.log_path``.
    """
    missing = java_and_maven()
    if missing is not None:
        _APACHE_KAFKA_REPORT.left_out = missing
        if apache_kafka_required():
            pytest.fail(f"RELAY_REQUIRE_APACHE_KAFKA=1 but Apache Kafka cannot run: {missing}")
        pytest.skip(f"Apache Kafka left out: {missing} (it needs Java 17+ and Maven on PATH)")
    lib = ensure_jars(REPO_ROOT)
    started = time.monotonic()
    work = tmp_path_factory.mktemp("apache-kafka")
    # The secure listeners (tests/test_kafka_security.py) ride on the same JVM.
    with ApacheKafka(lib, work, pki=make_pki(work / "pki")) as kafka:
        _APACHE_KAFKA_REPORT.ready_s = time.monotonic() - started
        yield kafka


@pytest.fixture(scope="session")
def apache_kafka_broker(apache_kafka: ApacheKafka) -> TestBroker:
    """The session's Apache Kafka as a broker of the matrix (tests marked ``apache_kafka`` use it)."""
    return _register(
        TestBroker(
            APACHE_KAFKA,
            apache_kafka.bootstrap_servers,
            idempotence=True,
            apache_kafka=apache_kafka,
        )
    )


@pytest.fixture(scope="session", params=selected_brokers())
def broker(request: pytest.FixtureRequest) -> TestBroker:
    """The broker of this leg of the matrix."""
    return request.getfixturevalue(TANSU if request.param == TANSU else "apache_kafka_broker")


def _register(broker: TestBroker) -> TestBroker:
    _BROKERS[broker.bootstrap_servers] = broker
    return broker


@pytest.fixture(scope="session")
def kafka_bootstrap(broker: TestBroker) -> str:
    """Bootstrap servers of this leg's broker."""
    return broker.bootstrap_servers


@pytest.fixture
def topic() -> str:
    return f"t-{uuid.uuid4().hex[:12]}"


def pytest_collection_finish(session: pytest.Session) -> None:
    # After deselection (-k, -m): the tests that will really run.
    _APACHE_KAFKA_REPORT.tests = sum(1 for item in session.items if _runs_on_apache_kafka(item))


def _runs_on_apache_kafka(item: pytest.Item) -> bool:
    callspec = getattr(item, "callspec", None)
    on_leg = callspec is not None and callspec.params.get("broker") == APACHE_KAFKA
    return on_leg or item.get_closest_marker("apache_kafka") is not None


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Say plainly whether Apache Kafka ran, so a green run without it is not mistaken for one with it."""
    if BROWSER_LEFT_OUT:
        terminalreporter.write_line(
            f"Browser tests: LEFT OUT ({BROWSER_LEFT_OUT[0]}); CI sets RELAY_REQUIRE_BROWSER=1",
            red=True,
        )
    report = _APACHE_KAFKA_REPORT
    if APACHE_KAFKA not in selected_brokers():
        terminalreporter.write_line(
            "Apache Kafka: its leg of the broker matrix is left out by RELAY_TEST_BROKERS",
            yellow=True,
        )
    if report.tests == 0:
        return
    if report.left_out is not None:
        consequence = (
            "RELAY_REQUIRE_APACHE_KAFKA=1, so they fail"
            if apache_kafka_required()
            else "install Java 17+ and Maven to run them (CI sets RELAY_REQUIRE_APACHE_KAFKA=1)"
        )
        terminalreporter.write_line(
            f"Apache Kafka: LEFT OUT ({report.left_out}): {report.tests} tests did not run on it; "
            f"{consequence}",
            red=True,
            bold=True,
        )
    elif report.ready_s is not None:
        terminalreporter.write_line(
            f"Apache Kafka: {report.tests} tests ran on Apache Kafka 4.4 "
            f"(broker ready in {report.ready_s:.1f} s)",
            green=True,
        )
    for note in report.notes:
        terminalreporter.write_line(f"Apache Kafka: {note}")


def make_config(
    *,
    bootstrap: str,
    topic: str,
    var: Path,
    providers: Mapping[str, Mapping[str, Any]] | None = None,
    dedup: Mapping[str, Any] | None = None,
    server: Mapping[str, Any] | None = None,
    kafka: Mapping[str, Any] | None = None,
    spool: Mapping[str, Any] | None = None,
    replay: Mapping[str, Any] | None = None,
    create_topics: bool = True,
) -> Config:
    """A Relay config for the broker at ``bootstrap``.

    Idempotence is on where the broker grants producer ids (Apache Kafka: the
    production default), off on tansu; ``kafka`` overrides either way. On a
    broker that creates no topics on first use, the topic and its dead-letter
    topic are created here unless ``create_topics`` is False.
    """
    test_broker = _BROKERS.get(bootstrap)
    document: dict[str, Any] = {
        "server": {"host": "127.0.0.1", "port": 0, **(server or {})},
        "kafka": {
            "bootstrap_servers": bootstrap,
            "topic": topic,
            "idempotence": test_broker is not None and test_broker.idempotence,
            **(kafka or {}),
        },
        "dedup": {"backend": "memory", **(dedup or {})},
        "spool": {"path": str(var / "spool"), **(spool or {})},
        "providers": providers
        or {"invoices": {"profile": "usdt-invoice", "secrets": [INVOICE_SECRET]}},
    }
    if replay is not None:
        document["replay"] = replay
    config = parse_config(document, env={})
    if create_topics and test_broker is not None:
        test_broker.create_topic(config.kafka.topic)
        test_broker.create_topic(config.kafka.dead_letter_topic)
    return config


@dataclass(frozen=True)
class SignedWebhook:
    path: str
    body: bytes
    headers: dict[str, str]


def signed_webhook(
    config: Config,
    provider: str = "invoices",
    *,
    event: str | None = None,
    body: bytes | None = None,
    order: str | None = None,
    now: float | None = None,
    headers: Mapping[str, str] | None = None,
) -> SignedWebhook:
    """A webhook signed the way the provider signs it (the scheme's ``sign`` twin)."""
    request = signed_sample(
        config.providers[provider],
        event=event,
        body=body,
        order=order,
        now=time.time() if now is None else now,
    )
    return SignedWebhook(
        f"/webhooks/{provider}", request.body, {**request.headers, **(headers or {})}
    )


async def read_topic(
    bootstrap: str, topic: str, *, expect: int, settle_s: float = 0.5, timeout_s: float = 20.0
) -> list[ReadRecord]:
    """Every record of ``topic`` from the beginning: waits for ``expect`` records, then
    ``settle_s`` more so that a duplicate arriving late is seen too."""
    records: list[ReadRecord] = []
    async with TopicReader(KafkaConfig(bootstrap_servers=bootstrap), topic) as reader:
        deadline = time.monotonic() + timeout_s
        while not await reader.assign(resume=False):
            if time.monotonic() >= deadline or expect == 0:
                return records
            await asyncio.sleep(0.1)
        settle_deadline: float | None = None
        while time.monotonic() < deadline:
            records.extend(await reader.poll(0.1))
            if len(records) >= expect:
                settle_deadline = settle_deadline or time.monotonic() + settle_s
                if time.monotonic() >= settle_deadline:
                    break
    return records


def event_of(record: Any) -> dict[str, Any]:
    return orjson.loads(record.value)


@dataclass
class RelayUnderTest:
    client: Any
    config: Config
    services: Services

    async def post(self, webhook: SignedWebhook) -> Any:
        return await self.client.post(webhook.path, data=webhook.body, headers=webhook.headers)


async def start_relay(aiohttp_client: Any, config: Config) -> RelayUnderTest:
    client = await aiohttp_client(build_app(config))
    services = client.app[SERVICES]
    assert await services.sink.wait_connected(10), "Relay did not connect to the broker"
    return RelayUnderTest(client, config, services)


@pytest.fixture
async def relay_app(
    aiohttp_client: Any, kafka_bootstrap: str, topic: str, tmp_path: Path
) -> RelayUnderTest:
    """A running Relay (invoices instance, memory dedup) on the session broker."""
    return await start_relay(
        aiohttp_client, make_config(bootstrap=kafka_bootstrap, topic=topic, var=tmp_path)
    )


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    """Relay's real logging setup at DEBUG, writing its JSON lines into a buffer."""
    root = logging.getLogger()
    quieted = ("aiohttp.access", "aiokafka")
    saved = (root.handlers[:], root.level, [logging.getLogger(n).level for n in quieted])
    stream = io.StringIO()
    setup_logging("DEBUG", stream=stream)
    yield stream
    root.handlers[:], root.level = saved[0], saved[1]
    for name, level in zip(quieted, saved[2], strict=True):
        logging.getLogger(name).setLevel(level)

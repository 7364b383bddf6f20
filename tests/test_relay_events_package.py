"""``relay-events``: the typed decoder installed and used without Relay's server.

The distribution in ``relay-events/`` is built and installed by pip, not
editable and with its dependencies, into a directory of its own; a fresh
interpreter sees only that directory and the standard library (``-I -S``),
imports ``schemas.decoder`` there and decodes records Relay's own code built.
The server's wheel, built beside it, must not take ``relay-events/`` in.
"""

from __future__ import annotations

import base64
import json
import pkgutil
import shutil
import subprocess
import sys
import tomllib
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import pytest

import relay.providers
from relay.deadletter import dead_letter_record, make_dead_letter
from relay.providers import usdt_invoice
from relay.records import to_kafka_record
from schemas.event import Message, NormalizeContext
from schemas.payload import parse_payload
from tests.relay_process import REPO

SERVER_ONLY = ("aiohttp", "aiokafka", "cryptography", "prometheus_client", "relay", "verifiers")

# Runs with nothing but the install directory (argv[1]) on top of the standard library.
CONSUMER = """
import base64, importlib.util, json, sys
site = sys.argv[1]
assert not any("site-packages" in entry for entry in sys.path), sys.path
sys.path.insert(0, site)
from schemas.decoder import PaymentEvent, decode_dead_letter, decode_event
import schemas.decoder
records = json.load(sys.stdin)
def fields(record):
    return base64.b64decode(record["value"]), [
        (name, base64.b64decode(value)) for name, value in record["headers"]
    ]
event = decode_event(*fields(records["event"]))
letter = decode_dead_letter(*fields(records["dead_letter"]))
assert isinstance(event, PaymentEvent)
print(json.dumps({
    "decoder": schemas.decoder.__file__,
    "missing": [name for name in sys.argv[2:] if importlib.util.find_spec(name) is None],
    "event": [event.id, event.type, str(event.data.amount), event.time.isoformat()],
    "dead_letter": [letter.reason, letter.provider, letter.body.decode()],
}))
"""


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return install_relay_events(tmp_path_factory)


def install_relay_events(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """relay-events installed by pip from a copy of the repository's layout."""
    source = tmp_path_factory.mktemp("source")
    shutil.copytree(
        REPO / "schemas", source / "schemas", ignore=shutil.ignore_patterns("__pycache__")
    )
    # symlinks=True: the package is a link to ../schemas, as in the repository.
    shutil.copytree(REPO / "relay-events", source / "relay-events", symlinks=True)
    site = tmp_path_factory.mktemp("site")
    installed = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--target",
            site,
            source / "relay-events",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert installed.returncode == 0, installed.stderr
    return site


def _encoded(value: bytes, headers: tuple[tuple[str, bytes], ...]) -> dict[str, object]:
    return {
        "value": base64.b64encode(value).decode(),
        "headers": [[name, base64.b64encode(item).decode()] for name, item in headers],
    }


def test_installs_the_decoder_and_what_it_imports_only(site: Path) -> None:
    distributions = sorted(path.name.split("-")[0] for path in site.glob("*.dist-info"))
    assert distributions == ["orjson", "relay_events", "tzdata"]
    for name in (
        "decoder.py",
        "records.py",
        "payment-event.schema.json",
        "asyncapi.yaml",
        "py.typed",
    ):
        assert (site / "schemas" / name).is_file(), name
    for name in SERVER_ONLY:
        assert not (site / name).exists(), name
    # The normalizers are the server's (relay/providers/): consumers get the event, not them.
    shipped = {path.stem for path in (site / "schemas").glob("*.py")}
    providers = {module.name for module in pkgutil.iter_modules(relay.providers.__path__)}
    assert shipped.isdisjoint(providers), shipped & providers


def test_decodes_relay_records_without_the_server_dependencies(site: Path) -> None:
    invoice = {
        "invoice_reference": "INV-7",
        "status": "confirmed",
        "amount_usdt_exact": "150.0000",
        "paid_at": "2024-01-15T14:32:00Z",
    }
    body = json.dumps(invoice).encode()
    received_at = datetime(2024, 1, 15, 14, 32, 1, tzinfo=UTC)
    context = NormalizeContext("invoices", "usdt-invoice", received_at)
    event = to_kafka_record(
        usdt_invoice.normalize(Message(body, parse_payload(body)), context), "payments.events"
    )
    letter = dead_letter_record(
        make_dead_letter(
            provider="collect",
            profile="usdt-collect-pay",
            reason="unknown_status",
            message="status 9 is not a known status",
            received_at=received_at,
            headers={},
            body=b'{"status": 9}',
        ),
        "payments.events.dlq",
    )
    records = {
        "event": _encoded(event.value, event.headers),
        "dead_letter": _encoded(letter.value, letter.headers),
    }
    ran = subprocess.run(
        [sys.executable, "-I", "-S", "-c", CONSUMER, str(site), *SERVER_ONLY],
        input=json.dumps(records),
        capture_output=True,
        text=True,
        timeout=60,
        cwd=site,
    )
    assert ran.returncode == 0, ran.stderr
    result = json.loads(ran.stdout)
    assert Path(result["decoder"]).is_relative_to(site)
    assert result["missing"] == list(SERVER_ONLY)
    event_id = dict(event.headers)["relay_id"].decode()
    assert result["event"] == [
        event_id,
        "payment.payin.succeeded",
        "150.0000",
        "2024-01-15T14:32:00+00:00",
    ]
    assert result["dead_letter"] == ["unknown_status", "collect", '{"status": 9}']


def test_webhook_relay_does_not_take_relay_events_for_a_package(tmp_path: Path) -> None:
    source = tmp_path / "source"
    for part in ("relay", "verifiers", "schemas"):
        shutil.copytree(REPO / part, source / part, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPO / "relay-events", source / "relay-events", symlinks=True)
    for part in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / part, source / part)
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", tmp_path, source],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stderr
    [wheel] = tmp_path.glob("webhook_relay-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        tops = {name.split("/")[0] for name in archive.namelist()}
    assert {top for top in tops if not top.endswith(".dist-info")} == {
        "relay",
        "verifiers",
        "schemas",
    }


def test_versions_with_webhook_relay() -> None:
    def version(pyproject: Path) -> str:
        return str(tomllib.loads(pyproject.read_text())["project"]["version"])

    assert version(REPO / "relay-events" / "pyproject.toml") == version(REPO / "pyproject.toml")

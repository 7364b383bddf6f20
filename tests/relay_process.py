"""Relay as a real process, for the fault tests: ``python -m relay serve --config <toml>``.

What a fault test needs that the in-process app cannot give: a process that
can be sent SIGTERM, killed with SIGKILL, restarted on the same spool and
dedup files, or run twice against one shared dedup store.

- :func:`write_config` writes a config TOML (the same shape as ``make_config``
  in ``tests/conftest.py``, plus a port) and returns its path.
- :class:`RelayProcess` starts ``relay serve`` in its own process group (so
  that ``--workers`` children go with it), waits for ``/healthz``, sends
  signals, and keeps the process's log in a file for failure messages.
- :func:`post` sends one signed webhook and reports what came back, treating
  a connection that a stopping Relay cut as "no answer" rather than an error.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from relay.devbroker import free_port
from tests.conftest import INVOICE_SECRET, SignedWebhook

REPO = Path(__file__).resolve().parent.parent
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 30.0


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a valid TOML basic string
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    raise TypeError(f"no TOML form for {value!r}")


def toml_text(document: Mapping[str, Any], prefix: str = "") -> str:
    """The TOML text of nested mappings of plain values (all a Relay config uses)."""
    lines = [
        f"{key} = {_toml_value(value)}"
        for key, value in document.items()
        if not isinstance(value, Mapping)
    ]
    text = ""
    if lines and prefix:
        text += f"[{prefix}]\n"
    text += "".join(line + "\n" for line in lines)
    for key, value in document.items():
        if isinstance(value, Mapping):
            text += "\n" + toml_text(value, f"{prefix}.{key}" if prefix else key)
    return text


def write_config(
    path: Path,
    *,
    port: int,
    bootstrap: str,
    topic: str,
    var: Path,
    dedup: Mapping[str, Any] | None = None,
    spool: Mapping[str, Any] | None = None,
    server: Mapping[str, Any] | None = None,
    kafka: Mapping[str, Any] | None = None,
) -> Path:
    """Write a config for one ``usdt-invoice`` instance at ``/webhooks/invoices``."""
    document = {
        "server": {"host": "127.0.0.1", "port": port, **(server or {})},
        "kafka": {
            "bootstrap_servers": bootstrap,
            "topic": topic,
            "idempotence": False,
            **(kafka or {}),
        },
        "dedup": {"backend": "memory", **(dedup or {})},
        "spool": {"path": str(var / "spool"), **(spool or {})},
        "providers": {"invoices": {"profile": "usdt-invoice", "secrets": [INVOICE_SECRET]}},
    }
    path.write_text(toml_text(document), encoding="utf-8")
    return path


class RelayExited(RuntimeError):
    """The Relay process ended (or never answered) when it should be serving."""


@dataclass
class RelayProcess:
    """One ``relay serve`` process (with its workers, if any)."""

    config_path: Path
    port: int
    log_path: Path
    workers: int = 1
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        """Start the process and return once ``/healthz`` answers."""
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "relay",
                    "serve",
                    "--config",
                    str(self.config_path),
                    "--workers",
                    str(self.workers),
                ],
                cwd=REPO,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                # Its own group, so that the worker processes can be killed with it.
                start_new_session=True,
                env={
                    key: value
                    for key, value in os.environ.items()
                    if key not in ("RELAY_KAFKA_BOOTSTRAP_SERVERS", "RELAY_CONFIG")
                },
            )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + START_TIMEOUT_S
        async with aiohttp.ClientSession() as session:
            while loop.time() < deadline:
                if self.process.poll() is not None:
                    raise RelayExited(
                        f"relay exited with {self.process.returncode}:\n{self.log_tail()}"
                    )
                with contextlib.suppress(aiohttp.ClientError):
                    async with session.get(f"{self.url}/healthz") as response:
                        if response.status == 200:
                            return
                await asyncio.sleep(0.05)
        raise RelayExited(
            f"relay did not answer /healthz within {START_TIMEOUT_S} s:\n{self.log_tail()}"
        )

    def send_signal(self, signum: int) -> None:
        assert self.process is not None
        self.process.send_signal(signum)

    def kill(self) -> None:
        """SIGKILL the whole process group (the server and any workers) and reap it."""
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    async def wait_exit(self, timeout_s: float = STOP_TIMEOUT_S) -> int:
        """The exit code, once the process ends; RelayExited if it has not within ``timeout_s``."""
        assert self.process is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while (code := self.process.poll()) is None:
            if loop.time() >= deadline:
                raise RelayExited(f"relay still running after {timeout_s} s:\n{self.log_tail()}")
            await asyncio.sleep(0.05)
        return code

    async def ready(self) -> dict[str, Any]:
        """The ``/readyz`` document."""
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{self.url}/readyz") as response,
        ):
            return await response.json()

    async def wait_drained(self, timeout_s: float) -> None:
        """Return once Relay is connected to Kafka and its spool is empty (a generous wait-until)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while loop.time() < deadline:
            ready = await self.ready()
            if ready["kafka"]["connected"] and ready["spool"]["depth"] == 0:
                return
            await asyncio.sleep(0.1)
        raise RelayExited(f"the spool did not drain within {timeout_s} s:\n{self.log_tail()}")

    async def wait_logged(
        self, text: str, *, count: int = 1, timeout_s: float = START_TIMEOUT_S
    ) -> None:
        """Return once ``text`` appears ``count`` times in the log (a generous wait-until)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while self.log_path.read_text(errors="replace").count(text) < count:
            if loop.time() >= deadline:
                raise RelayExited(
                    f"relay did not log {text!r} within {timeout_s} s:\n{self.log_tail()}"
                )
            await asyncio.sleep(0.05)

    def serving_pids(self) -> list[int]:
        """The process ids that logged "serving": the server, or each of its workers."""
        pids = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            with contextlib.suppress(ValueError):
                entry = json.loads(line)
                if isinstance(entry, dict) and entry.get("msg") == "serving":
                    pids.append(int(entry["pid"]))
        return pids

    async def metric(self, name: str, **labels: str) -> float:
        """The sum of the samples of ``name`` whose labels include ``labels`` (0 when none)."""
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{self.url}/metrics") as response,
        ):
            text = await response.text()
        wanted = [f'{key}="{value}"' for key, value in labels.items()]
        total = 0.0
        for line in text.splitlines():
            sample, _, value = line.rpartition(" ")
            if sample.partition("{")[0] == name and all(label in sample for label in wanted):
                total += float(value)
        return total

    def log_tail(self, chars: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]


@dataclass(frozen=True)
class Answer:
    """What a POST got back; ``status`` is None when the connection failed or was cut."""

    status: int | None
    retry_after: str | None = None
    body: bytes = b""


async def post(session: aiohttp.ClientSession, base_url: str, webhook: SignedWebhook) -> Answer:
    try:
        async with session.post(
            base_url + webhook.path, data=webhook.body, headers=webhook.headers
        ) as response:
            return Answer(
                response.status, response.headers.get("Retry-After"), await response.read()
            )
    except (TimeoutError, aiohttp.ClientConnectionError):
        return Answer(None)


def run_relay(
    *args: str, env: Mapping[str, str], timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """``relay ARGS`` to its end, in the repository, with no ``RELAY_*`` variable but ``env``'s."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("RELAY_")}
    return subprocess.run(
        [sys.executable, "-m", "relay", *args],
        cwd=REPO,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def unused_port() -> int:
    """A port that nothing listens on now: a broker address that is simply down."""
    return free_port()

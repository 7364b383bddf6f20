"""The load generator: wrk from Debian's packages, driven by ``requests.lua``.

Requests are signed here, in Python, before a run (each with its own webhook
id), written to a file that the Lua script loads and hands out in order. wrk
runs pinned to its own core, one thread, and reports through a JSON file
that ``done()`` writes: completed requests, requests handed out, errors and
the whole latency histogram.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

LUA_SCRIPT = Path(__file__).resolve().parent / "requests.lua"
# Relay's ack budget is at most 5 s; a request is a timeout only well past it.
TIMEOUT = "10s"


def ensure_wrk() -> str:
    """The path of ``wrk``, installed from Debian's packages when missing (needs root)."""
    found = shutil.which("wrk")
    if found:
        return found
    print("wrk is not installed: apt-get install wrk", flush=True)
    install = ["apt-get", "install", "-y", "-q", "wrk"]
    if subprocess.run(install, check=False).returncode != 0:
        # A fresh machine may have no package lists yet.
        subprocess.run(["apt-get", "update", "-q"], check=True)
        subprocess.run(install, check=True)
    found = shutil.which("wrk")
    if found is None:
        raise SystemExit("wrk is still not on PATH after apt-get install wrk")
    return found


@dataclass(frozen=True, slots=True)
class Request:
    """One raw HTTP/1.1 request and the webhook id it carries ("" when it has none)."""

    raw: bytes
    webhook_id: str


def raw_request(host: str, path: str, headers: dict[str, str], body: bytes) -> bytes:
    lines = [f"POST {path} HTTP/1.1", f"Host: {host}", f"Content-Length: {len(body)}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def write_request_file(path: Path, requests: Iterable[Request]) -> None:
    items = [request.raw for request in requests]
    with path.open("wb") as out:
        out.write(f"{len(items)}\n".encode())
        for raw in items:
            out.write(f"{len(raw)}\n".encode())
            out.write(raw)


@dataclass(frozen=True)
class WrkResult:
    duration_s: float
    requests: int
    """Responses received."""
    sent: int
    """Requests handed to connections (the last ones may still have been in flight at the end)."""
    wraps: int
    late: int
    errors: dict[str, int]
    histogram: list[tuple[int, int]]
    """(latency in microseconds, count), ascending; wrk's own coordinated-omission correction applied."""
    rate: float

    @property
    def rps(self) -> float:
        return self.requests / self.duration_s

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    def percentile_ms(self, percent: float) -> float:
        total = sum(count for _, count in self.histogram)
        if total == 0:
            return float("nan")
        threshold = total * percent / 100
        seen = 0
        for value, count in self.histogram:
            seen += count
            if seen >= threshold:
                return value / 1000
        return self.histogram[-1][0] / 1000


def run_wrk(
    wrk: str,
    url: str,
    request_file: Path,
    *,
    duration_s: float,
    connections: int,
    cpu: int | None,
    out_dir: Path,
    name: str,
    rate: float = 0.0,
) -> WrkResult:
    """Run wrk once (one thread, pinned to ``cpu`` when there is one to spare); ``rate`` > 0
    limits the request rate."""
    out = out_dir / f"{name}.wrk.json"
    out.unlink(missing_ok=True)
    pin = ["taskset", "-c", str(cpu)] if cpu is not None else []
    command = [
        *pin,
        wrk,
        "-t1",
        f"-c{connections}",
        f"-d{max(1, round(duration_s))}s",
        f"--timeout={TIMEOUT}",
        "-s",
        str(LUA_SCRIPT),
        url,
        "--",
        str(request_file),
        f"{rate:.3f}",
    ]
    done = subprocess.run(
        command,
        capture_output=True,
        text=True,
        env={**os.environ, "BENCH_WRK_OUT": str(out)},
        check=False,
    )
    (out_dir / f"{name}.wrk.txt").write_text(done.stdout + done.stderr)
    if done.returncode != 0 or not out.exists():
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stdout}{done.stderr}")
    data = json.loads(out.read_text())
    return WrkResult(
        duration_s=data["duration_us"] / 1e6,
        requests=data["requests"],
        sent=data["sent"],
        wraps=data["wraps"],
        late=data["late"],
        errors=data["errors"],
        histogram=[(value, count) for value, count in data["latency_us"]],
        rate=rate,
    )

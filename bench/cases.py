"""The cases: servers to measure, the services behind them, and the accounting after a run.

Every case is one fresh server process pinned to the server core, measured
the same way (:func:`measure`): a warm-up, ``reps`` saturated runs, then one
run at half of the median saturated rate for latency. After a Relay case the
topic is read back and every webhook id that was sent is looked up: each
must have exactly one record.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from bench.load import Request, WrkResult, raw_request, run_wrk, write_request_file
from relay.config import ProviderInstance, parse_config
from relay.devbroker import free_port
from relay.kafka import TopicReader
from relay.samples import signed_sample
from relay.settings import KafkaConfig

REPO = Path(__file__).resolve().parent.parent
SECRET = "bench-invoice-secret-0123456789abcdef"
PROVIDER = "invoices"
PATH = f"/webhooks/{PROVIDER}"
# A request file never holds fewer than this many requests, so a short run at a
# low rate still never runs out of unique webhook ids.
MIN_REQUESTS = 2000


@dataclass(frozen=True)
class Settings:
    duration_s: float
    warmup_s: float
    reps: int
    latency_s: float
    connections: int
    server_cpu: int | None
    load_cpu: int | None
    work_dir: Path
    wrk: str
    profile: bool = False
    """Sample the server with py-spy during the first measured run (``--profile``)."""


@dataclass
class Measurement:
    reps: list[WrkResult]
    warmup: WrkResult
    half_load: WrkResult
    cpu_us_per_request: list[float]
    """Server CPU time (all threads, user + system) per answered request, per saturated run.

    Steadier than requests/s on a shared machine: other processes on the
    server's core slow it down but barely change the CPU each request costs.
    """
    budget: BudgetRun | None = None
    """The sampled run the CPU budget comes from (``bench/budget.py``), when asked for."""

    @property
    def rps(self) -> float:
        return statistics.median(result.rps for result in self.reps)

    @property
    def median_rep(self) -> WrkResult:
        return sorted(self.reps, key=lambda result: result.rps)[len(self.reps) // 2]

    @property
    def errors(self) -> int:
        return sum(result.error_count for result in [*self.reps, self.half_load])


@dataclass(frozen=True)
class BudgetRun:
    """One more saturated run, sampled by py-spy, with the CPU ``/proc`` measured over it."""

    profile: Path
    rate_hz: int
    cpu_s: float
    requests: int

    @property
    def cpu_us_per_request(self) -> float:
        return self.cpu_s / max(1, self.requests) * 1e6


@dataclass
class Accounting:
    sent: int
    records: int
    distinct: int
    missing: int
    extra: int
    refused: int
    server: dict[str, float]

    @property
    def duplicates(self) -> int:
        return self.records - self.distinct

    @property
    def lost(self) -> int:
        """Sent ids without a record, less the requests Relay refused (those were never acked).

        Exact when nothing was refused; otherwise a lower bound that the report flags.
        """
        return max(0, self.missing - self.refused)


@dataclass
class CaseResult:
    name: str
    title: str
    measurement: Measurement
    accounting: Accounting | None = None
    notes: list[str] = field(default_factory=list)


# -- processes -----------------------------------------------------------------


def pinned(command: list[str], cpu: int | None) -> list[str]:
    return ["taskset", "-c", str(cpu), *command] if cpu is not None else command


@contextlib.contextmanager
def server_process(
    command: list[str], settings: Settings, log_path: Path, ready_url: str
) -> Iterator[subprocess.Popen[bytes]]:
    """Start a server pinned to the server core; stop it with SIGTERM when the block ends."""
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            pinned(command, settings.server_cpu),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=REPO,
        )
    try:
        wait_until(lambda: _get(ready_url) is not None, 30, process, log_path)
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def wait_until(
    check: Callable[[], bool],
    timeout_s: float,
    process: subprocess.Popen[bytes] | None = None,
    log_path: Path | None = None,
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            tail = log_path.read_text(errors="replace")[-3000:] if log_path else ""
            raise RuntimeError(f"server exited with {process.returncode}:\n{tail}")
        if check():
            return
        time.sleep(0.1)
    raise TimeoutError(f"not ready within {timeout_s} s")


def _get(url: str) -> bytes | None:
    """The body of a 200 answer, or None (not up yet, or not ready)."""
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.read()
    except (urllib.error.URLError, OSError):
        return None


# -- measuring -----------------------------------------------------------------


def measure(
    settings: Settings,
    name: str,
    url: str,
    make_requests: Callable[[int], list[Request]],
    expected_rps: float,
    sent_ids: set[str],
    server_pid: int,
    budget: bool = False,
) -> Measurement:
    """Warm-up, ``reps`` saturated runs, then one run at half the median saturated rate,
    and with ``budget`` one more saturated run sampled for the CPU budget.

    Each run gets a request file of its own, sized from the rate seen so far,
    so unique webhook ids do not run out; the ids handed out go into ``sent_ids``.
    """

    def run(tag: str, seconds: float, rate_estimate: float, limit: float = 0.0) -> WrkResult:
        # Twice the rate seen so far: a warm-up is often slower than the runs after it.
        count = MIN_REQUESTS + int(rate_estimate * seconds * (1.2 if limit else 2.0))
        requests = make_requests(count)
        path = settings.work_dir / f"{name}-{tag}.requests"
        write_request_file(path, requests)
        cpu_before = _cpu_seconds(server_pid)
        result = run_wrk(
            settings.wrk,
            url,
            path,
            duration_s=seconds,
            connections=settings.connections,
            cpu=settings.load_cpu,
            out_dir=settings.work_dir,
            name=f"{name}-{tag}",
            rate=limit,
        )
        path.unlink()
        cpu_per_request.append((_cpu_seconds(server_pid) - cpu_before) / max(1, result.requests))
        handed_out = requests if result.wraps else requests[: result.sent]
        sent_ids.update(request.webhook_id for request in handed_out)
        print(
            f"  {name:<20} {tag:<8} {result.rps:9.0f} req/s  p99 {result.percentile_ms(99):7.2f} ms"
            f"  {cpu_per_request[-1] * 1e6:6.0f} us CPU/req  errors {result.error_count}"
            + (f"  wraps {result.wraps}" if result.wraps else ""),
            flush=True,
        )
        return result

    cpu_per_request: list[float] = []
    warmup = run("warmup", settings.warmup_s, expected_rps)
    profiler = _start_profiler(settings, name, server_pid) if settings.profile else None
    reps: list[WrkResult] = []
    for index in range(settings.reps):
        fastest = max(result.rps for result in [warmup, *reps])
        reps.append(run(f"rep{index + 1}", settings.duration_s, fastest))
    if profiler is not None:
        profiler.wait()
    saturated_cpu = [cpu * 1e6 for cpu in cpu_per_request[1:]]
    rate = statistics.median(result.rps for result in reps) / 2
    half = run("half", settings.latency_s, rate, limit=rate)
    budget_run = None
    if budget:
        profile = settings.work_dir / f"{name}.budget.txt"
        sampler = _start_sampler(profile, server_pid, settings.duration_s)
        cpu_before = _cpu_seconds(server_pid)
        sampled = run("budget", settings.duration_s, max(result.rps for result in reps))
        cpu_s = _cpu_seconds(server_pid) - cpu_before
        sampler.wait()
        budget_run = BudgetRun(profile, BUDGET_RATE_HZ, cpu_s, sampled.requests)
    return Measurement(
        reps=reps,
        warmup=warmup,
        half_load=half,
        cpu_us_per_request=saturated_cpu,
        budget=budget_run,
    )


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its live children (``--workers``), all
    their threads."""
    process = psutil.Process(pid)
    return sum(
        times.user + times.system
        for times in (member.cpu_times() for member in [process, *process.children(True)])
    )


# Samples per second for the budget: about 2,500 in a 10 s run, so a line's share is
# known to a percent or so.
BUDGET_RATE_HZ = 250


def _start_sampler(out: Path, pid: int, duration_s: float) -> subprocess.Popen[bytes]:
    """py-spy for the budget: the server stopped for each sample (the default) so that no
    stack is read half-changed; idle samples left out (the default)."""
    command = ["py-spy", "record", "--pid", str(pid), "--format", "raw"]
    command += ["--rate", str(BUDGET_RATE_HZ), "--duration", str(max(1, round(duration_s)))]
    return subprocess.Popen(
        [str(Path(sys.executable).parent / command[0]), *command[1:], "--output", str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _start_profiler(settings: Settings, name: str, pid: int) -> subprocess.Popen[bytes]:
    """py-spy on the server for one measured run; collapsed stacks in ``<name>.profile.txt``."""
    out = settings.work_dir / f"{name}.profile.txt"
    command = ["py-spy", "record", "--pid", str(pid), "--format", "raw", "--rate", "250"]
    command.append("--nonblocking")  # sample without pausing the server
    command += ["--duration", str(max(1, round(settings.duration_s))), "--output", str(out)]
    return subprocess.Popen(
        [str(Path(sys.executable).parent / command[0]), *command[1:]],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


# -- the ceiling ---------------------------------------------------------------


def ceiling_case(settings: Settings, instance: ProviderInstance) -> CaseResult:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "bench.ceiling", str(port)]
    # The same signed invoices Relay gets, so request sizes match; ids do not matter here.
    requests = signed_requests(instance, MIN_REQUESTS, f"127.0.0.1:{port}")
    with server_process(
        command, settings, settings.work_dir / "ceiling.log", f"{url}/healthz"
    ) as process:
        measurement = measure(
            settings, "ceiling", f"{url}{PATH}", lambda count: requests, 20000, set(), process.pid
        )
    return CaseResult("ceiling", "ceiling: bare aiohttp, read body, 200", measurement)


def floor_case(settings: Settings, instance: ProviderInstance, bootstrap: str) -> CaseResult:
    """The ceiling plus one aiokafka publish per request (``bench/floor.py``): Relay's bound."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    topic = f"bench-floor-{uuid.uuid4().hex[:8]}"
    command = [sys.executable, "-m", "bench.floor", str(port), bootstrap, topic]
    requests = signed_requests(instance, MIN_REQUESTS, f"127.0.0.1:{port}")
    with server_process(
        command, settings, settings.work_dir / "kafka-floor.log", f"{url}/healthz"
    ) as process:
        measurement = measure(
            settings,
            "kafka-floor",
            f"{url}{PATH}",
            lambda count: requests,
            20000,
            set(),
            process.pid,
        )
    return CaseResult(
        "kafka-floor", "floor: aiohttp + one aiokafka send_and_wait per request", measurement
    )


# -- Relay ---------------------------------------------------------------------


@dataclass(frozen=True)
class RelayCase:
    name: str
    title: str
    dedup: Mapping[str, Any]
    idempotence: bool = False
    broker_down: bool = False
    budget: bool = False
    """Measure the CPU budget per webhook (one more, sampled, saturated run)."""
    workers: int = 1
    pinned: bool = True
    """Server on one core and wrk on the other; unpinned, both may use either core (the
    scale-out cases, where a second worker needs the second core)."""


def relay_document(
    case: RelayCase, bootstrap: str, topic: str, port: int, var: Path
) -> dict[str, Any]:
    return {
        "server": {"host": "127.0.0.1", "port": port},
        "kafka": {"bootstrap_servers": bootstrap, "topic": topic, "idempotence": case.idempotence},
        "dedup": dict(case.dedup),
        "spool": {"path": str(var / "spool")},
        "providers": {PROVIDER: {"profile": "usdt-invoice", "secrets": [SECRET]}},
    }


def to_toml(document: Mapping[str, Mapping[str, Any]], prefix: str = "") -> str:
    """Enough TOML for these configs: nested tables of strings, numbers, booleans, string lists."""
    lines: list[str] = []
    for table, values in document.items():
        scalars = {key: value for key, value in values.items() if not isinstance(value, Mapping)}
        nested = {key: value for key, value in values.items() if isinstance(value, Mapping)}
        if scalars:
            lines.append(f"[{prefix}{table}]")
            lines += [f"{key} = {json.dumps(value)}" for key, value in scalars.items()]
            lines.append("")
        if nested:
            lines.append(to_toml(nested, f"{prefix}{table}."))
    return "\n".join(lines)


def signing_instance() -> ProviderInstance:
    document = relay_document(
        RelayCase("sign", "", {"backend": "memory"}), "127.0.0.1:9", "t", 0, Path("var")
    )
    return parse_config(document, env={}).providers[PROVIDER]


def signed_requests(instance: ProviderInstance, count: int, host: str) -> list[Request]:
    """``count`` confirmed-invoice webhooks, each with its own order and X-Webhook-Id."""
    now = time.time()
    requests = []
    for _ in range(count):
        sample = signed_sample(instance, event="confirmed", now=now)
        requests.append(
            Request(
                raw_request(host, PATH, sample.headers, sample.body), sample.headers["X-Webhook-Id"]
            )
        )
    return requests


def relay_case(
    settings: Settings,
    case: RelayCase,
    bootstrap: str,
    expected_rps: float,
    start_broker: Callable[[], contextlib.AbstractContextManager[object]] | None = None,
    before_start: Callable[[str], None] | None = None,
) -> CaseResult:
    """Measure Relay with ``case``'s settings, then account for every webhook id sent.

    With ``broker_down``, nothing listens at ``bootstrap`` during the load (every
    event goes to the spool); ``start_broker`` then brings a broker up there and
    the spool drains before the topic is read. ``before_start`` gets the topic
    name before Relay starts (to create it where auto-creation is off).
    """
    port = free_port()
    topic = f"bench-{case.name}-{uuid.uuid4().hex[:8]}"
    var = settings.work_dir / case.name
    var.mkdir(parents=True, exist_ok=True)
    config_path = var / "relay.toml"
    config_path.write_text(to_toml(relay_document(case, bootstrap, topic, port, var)))
    instance = parse_config(relay_document(case, bootstrap, topic, port, var), env={}).providers[
        PROVIDER
    ]
    if before_start is not None:
        before_start(topic)
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "relay", "serve", "--config", str(config_path)]
    command += ["--workers", str(case.workers)]
    if not case.pinned:
        settings = dataclasses.replace(settings, server_cpu=None, load_cpu=None)
    ready = f"{url}/healthz" if case.broker_down else f"{url}/readyz"
    sent_ids: set[str] = set()
    notes: list[str] = []
    log_path = var / "relay.log"
    with server_process(command, settings, log_path, ready) as process:
        if not case.broker_down:
            wait_until(lambda: _kafka_connected(url), 30, process, log_path)
        measurement = measure(
            settings,
            case.name,
            f"{url}{PATH}",
            lambda count: signed_requests(instance, count, f"127.0.0.1:{port}"),
            expected_rps,
            sent_ids,
            process.pid,
            budget=case.budget,
        )
        broker = start_broker() if start_broker is not None else contextlib.nullcontext()
        with broker:
            if case.broker_down:
                started = time.monotonic()
                wait_until(lambda: _spool_depth(url) == 0, 300, process, log_path)
                notes.append(
                    f"spool drained in {time.monotonic() - started:.1f} s once the broker was up"
                )
            server = _outcomes(url)
            process.send_signal(signal.SIGTERM)
            process.wait(60)
            records = asyncio.run(read_ids(bootstrap, topic, expect=len(sent_ids)))
    accounting = _account(sent_ids, records, server)
    wraps = sum(result.wraps for result in [measurement.warmup, *measurement.reps])
    wraps += measurement.half_load.wraps
    if wraps:
        notes.append(
            f"a request file ran out {wraps} times: its repeats were answered as duplicates"
        )
    if accounting.refused:
        notes.append(f"Relay refused {accounting.refused:.0f} requests: lost is a lower bound")
    if accounting.extra:
        notes.append(f"{accounting.extra} records carry ids that were never sent")
    return CaseResult(case.name, case.title, measurement, accounting, notes)


def _kafka_connected(url: str) -> bool:
    body = _get(f"{url}/readyz")
    return body is not None and bool(json.loads(body)["kafka"]["connected"])


def _spool_depth(url: str) -> int | None:
    try:
        with urllib.request.urlopen(f"{url}/readyz", timeout=2) as response:
            body = response.read()
    except urllib.error.HTTPError as error:
        body = error.read()
    except (urllib.error.URLError, OSError):
        return None
    return int(json.loads(body)["spool"]["depth"])


_SAMPLE = re.compile(r"^relay_webhooks_total\{(?P<labels>[^}]*)\} (?P<value>\S+)$", re.MULTILINE)


def _outcomes(url: str) -> dict[str, float]:
    """``relay_webhooks_total`` by outcome, as the server counted its answers."""
    body = _get(f"{url}/metrics") or b""
    outcomes: dict[str, float] = defaultdict(float)
    for match in _SAMPLE.finditer(body.decode()):
        labels = dict(re.findall(r'(\w+)="([^"]*)"', match.group("labels")))
        outcomes[labels.get("outcome", "?")] += float(match.group("value"))
    return dict(outcomes)


async def read_ids(
    bootstrap: str, topic: str, *, expect: int, quiet_s: float = 3.0
) -> Counter[str]:
    """Count the records of ``topic`` by ``relay_id`` header: until ``expect`` records and then
    ``quiet_s`` without a new one (so late duplicates are seen), or 120 s at most."""
    ids: Counter[str] = Counter()
    async with TopicReader(KafkaConfig(bootstrap_servers=bootstrap), topic) as reader:
        deadline = time.monotonic() + 120
        while not await reader.assign(resume=False):
            if time.monotonic() > deadline:
                return ids
            await asyncio.sleep(0.2)
        last_new = time.monotonic()
        while time.monotonic() < deadline:
            if records := await reader.poll(0.2):
                for record in records:
                    ids[dict(record.headers).get("relay_id", b"").decode()] += 1
                last_new = time.monotonic()
            if time.monotonic() - last_new > quiet_s and (
                ids.total() >= expect or time.monotonic() - last_new > 10
            ):
                break
    return ids


def _account(sent_ids: set[str], records: Counter[str], server: dict[str, float]) -> Accounting:
    return Accounting(
        sent=len(sent_ids),
        records=records.total(),
        distinct=len(records),
        missing=len(sent_ids - records.keys()),
        extra=len(records.keys() - sent_ids),
        refused=int(server.get("rejected", 0) + server.get("unavailable", 0)),
        server=server,
    )


def cpu_pair() -> tuple[int | None, int | None]:
    """(server core, load core): the first two CPUs this process may use, or no pinning."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return None, None
    return cpus[0], cpus[1]

"""Hostile cost: what the costliest unauthenticated requests cost Relay, profile by profile.

For every fuzz instance (``tests.fuzz.instances``: every profile and its option variants),
requests that carry a wrong signature of the right shape, built to make Relay work as hard
as the defaults let it before it can say no (:data:`KINDS`):

- ``wrong_signature``: a sample request with one bit of its signature flipped (the floor);
- ``big_numbers``: a body near the instance's body limit of members such as ``"ab":1e4299``, each a
  4,300-digit integer once a ``sign``-field string writes it out;
- ``nested_numbers``: one member holding an array of ``1e4299``, near the limit (written out
  by the ``sorted_compact`` nesting of ``v2-payout``);
- ``many_members``: a body near the limit of ``"k123":0`` members;
- ``deep_nesting``: ``[[[[...]]]]`` as deep as the limit allows;
- ``long_headers``: as many headers as allowed, each as long as allowed;
- ``gzip``: ``Content-Encoding: gzip``, a body under the limit that inflates a
  thousandfold (1 GiB under a 1 MiB limit);
- ``many_signatures``: (Stripe, Standard Webhooks) a signature list of wrong ``v1`` entries
  as long as a header may be;
- ``many_items``: (the batch profiles) the most notifications a request may hold. Adyen:
  100 items, 99 of them copies of a captured, validly signed item (the attacker's one
  notification) and the last with a wrong signature, so that Relay reads and decodes all
  100 and computes 100 HMACs before it refuses the request; GoCardless: an ``events`` list
  near the body limit under a wrong ``Webhook-Signature``.
- ``form_payload``: (Braintree) a form whose ``bt_payload`` is as long as the limit allows;
- ``xml_bomb``: (Braintree) billion laughs in ``bt_payload``, with a wrong signature.

``RELAY_FUZZ_HOSTILE_KINDS`` and ``RELAY_FUZZ_HOSTILE_INSTANCES`` (comma-separated) limit a
run to some kinds and some instances. Each kind is sent ``RELAY_FUZZ_HOSTILE_REQUESTS``
times (CI default 50; ``make fuzz`` more), ``CONCURRENCY`` at a time, to a real ``relay
serve`` process, and measured from outside: its CPU time per request (``psutil``
``cpu_times()`` user + system, delta over the run / N) and its RSS growth (peak of
``memory_info().rss`` sampled every 2 ms in a thread, over the RSS before). An authentic
webhook's latency (p50/p99 over ``RELAY_FUZZ_HOSTILE_PROBES``, default 50, sent one after
another) is measured alone, and again while that kind of request keeps arriving
concurrently. A kind that takes longer than ``CELL_BUDGET_S`` stops early (the table says
how many were sent), so a pathological cost shows in the figures without holding CI for
minutes.

The figures are printed as a table and never asserted: speed depends on the machine.
Asserted: every hostile request answered 4xx (none 5xx, none unanswered), no record
published for any of them, every authentic request answered 2xx and published once, and
nothing logged at error level.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import os
import random
import re
import shutil
import string
import subprocess
import tempfile
import threading
import time
import urllib.parse
import zlib
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import aiohttp
import psutil
import pytest

from relay.config import Config, ProviderInstance, parse_config
from relay.devbroker import free_port
from relay.kafka import ReadRecord
from tests.conftest import TestBroker
from tests.fuzz.instances import fuzz_providers, signature_of, timestamp_of
from tests.fuzz.mutations import (
    Case,
    Fuzzer,
    Request,
    flipped_signature,
    slot_text,
    slot_value,
    with_header,
)
from tests.fuzz.test_http_fuzz import (
    ANSWER_WAIT_S,
    STATUS_LINE,
    fuzz_document,
    logged_errors,
    read_records,
    running,
    send,
    toml,
)
from tests.fuzz.topics import record_tokens
from tests.relay_process import RelayProcess
from verifiers.adyen import MAX_ITEMS

REQUESTS = int(os.environ.get("RELAY_FUZZ_HOSTILE_REQUESTS", "50"))
PROBES = int(os.environ.get("RELAY_FUZZ_HOSTILE_PROBES", "50"))
SEED = int(os.environ.get("RELAY_FUZZ_SEED", str(random.randrange(1 << 32))))
CONCURRENCY = 4
CELL_BUDGET_S = float(os.environ.get("RELAY_FUZZ_HOSTILE_BUDGET_S", "5"))
# A comma-separated subset of the kinds, to look at a few (default: all).
ONLY = {kind for kind in os.environ.get("RELAY_FUZZ_HOSTILE_KINDS", "").split(",") if kind}
# A comma-separated subset of the fuzz instances, to measure a few profiles (default: all).
INSTANCES = {name for name in os.environ.get("RELAY_FUZZ_HOSTILE_INSTANCES", "").split(",") if name}
SAMPLE_EVERY_S = 0.002
# The aiohttp client adds Host, Accept, Accept-Encoding, User-Agent and Content-Length.
CLIENT_HEADERS = 5
GZIP_TOKEN = "fz" + "9" * 16
GZIP_INFLATED = 1 << 30
_ALPHABET = string.ascii_letters + string.digits


# --- the hostile requests -----------------------------------------------------------------


_RESERVED = {"ref", "n", "sign"}


def _names() -> Iterator[str]:
    """Short distinct member names: ``aa``, ``ab``, ... then three characters (never one
    the bodies below use for something else)."""
    for size in itertools.count(2):
        for letters in itertools.product(_ALPHABET, repeat=size):
            if "".join(letters) not in _RESERVED:
                yield "".join(letters)


def _object(members: Iterator[str], limit: int, head: str, tail: str) -> bytes:
    """``{head,member,member,...,tail}`` with as many members as fit in ``limit`` bytes."""
    parts = [head]
    size = len(head) + len(tail) + 4
    for member in members:
        if size + len(member) + 1 > limit:
            break
        parts.append(member)
        size += len(member) + 1
    parts.append(tail)
    return ("{" + ",".join(part for part in parts if part) + "}").encode()


@dataclass(frozen=True)
class Forged:
    """A request of the instance with a wrong signature of the right shape, whose body a
    kind replaces (for ``sign``-field schemes, the wrong ``sign`` member goes in the body)."""

    instance: ProviderInstance
    request: Request
    sign_member: str
    """``"sign":"<wrong>"`` for sign-field schemes, else empty."""

    def with_body(self, body: bytes) -> Request:
        return replace(self.request, body=body)


def forge(fuzzer: Fuzzer, instance: ProviderInstance) -> Forged:
    request, _ = fuzzer.signed(instance)
    wrong = flipped_signature(fuzzer, instance, request)
    slot = signature_of(instance).slot
    sign_member = ""
    if slot.in_body and not slot.form:
        sign_member = f'"{slot.name}":"{slot_text(wrong, slot)}"'
    return Forged(instance, wrong, sign_member)


def _head(token: str) -> str:
    return f'"ref":"{token}"'


def wrong_signature(forged: Forged, token: str, limit: int) -> Request | None:
    return forged.request


def big_numbers(forged: Forged, token: str, limit: int) -> Request | None:
    members = (f'"{name}":1e4299' for name in _names())
    return forged.with_body(_object(members, limit, _head(token), forged.sign_member))


def nested_numbers(forged: Forged, token: str, limit: int) -> Request | None:
    room = limit - len(forged.sign_member) - 64
    count = room // len("1e4299,")
    array = "[" + ",".join(["1e4299"] * count) + "]"
    body = (
        "{"
        + _head(token)
        + ',"n":'
        + array
        + ("," + forged.sign_member if forged.sign_member else "")
        + "}"
    )
    return forged.with_body(body.encode())


def many_members(forged: Forged, token: str, limit: int) -> Request | None:
    members = (f'"k{index}":0' for index in itertools.count())
    return forged.with_body(_object(members, limit, _head(token), forged.sign_member))


def deep_nesting(forged: Forged, token: str, limit: int) -> Request | None:
    depth = (limit - len(forged.sign_member) - 64) // 2
    tail = "," + forged.sign_member if forged.sign_member else ""
    body = "{" + _head(token) + ',"n":' + "[" * depth + "]" * depth + tail + "}"
    return forged.with_body(body.encode())


def long_headers(
    forged: Forged, token: str, limit: int, *, headers: int, header_bytes: int
) -> Request | None:
    room = headers - len(forged.request.headers) - CLIENT_HEADERS - 1
    value = "v" * (header_bytes - len("X-Hostile-00: ") - 16)
    extra = [(f"X-Hostile-{index:02d}", value) for index in range(room)]
    return replace(forged.request, headers=[*forged.request.headers, *extra])


_GZIP: dict[int, bytes] = {}


def gzip_bomb(limit: int) -> bytes:
    """A gzip body under ``limit`` bytes that inflates about a thousandfold (deflate's
    most), to ``GZIP_INFLATED`` bytes of JSON at most."""
    mebibytes = max(1, min(GZIP_INFLATED, (limit - 4096) * 1000) >> 20)
    if mebibytes not in _GZIP:
        compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
        chunk = b" " * (1 << 20)
        parts = [compressor.compress(b'{"ref":"' + GZIP_TOKEN.encode() + b'","pad":"')]
        parts.extend(compressor.compress(chunk) for _ in range(mebibytes))
        parts += [compressor.compress(b'"}'), compressor.flush()]
        _GZIP[mebibytes] = b"".join(parts)
    return _GZIP[mebibytes]


def gzipped(forged: Forged, token: str, limit: int) -> Request | None:
    body = gzip_bomb(limit)
    if len(body) > limit:
        return None
    return with_header(forged.with_body(body), "Content-Encoding", "gzip")


def many_signatures(forged: Forged, token: str, limit: int, *, header_bytes: int) -> Request | None:
    scheme = forged.instance.profile.scheme.name
    rng = random.Random(token)
    room = header_bytes - 64
    if scheme == "stripe":
        stamp = timestamp_of(forged.instance)
        assert stamp is not None
        value = f"t={slot_text(forged.request, stamp.slot)}"
        while len(value) + len(",v1=") + 64 <= room:
            value += f",v1={rng.randbytes(32).hex()}"
        return with_header(forged.request, "stripe-signature", value)
    if scheme == "standard-webhooks":
        entries: list[str] = []
        while sum(len(entry) + 1 for entry in entries) + 48 <= room:
            entries.append("v1," + base64.b64encode(rng.randbytes(32)).decode())
        value = " ".join(entries)
        return with_header(forged.request, "webhook-signature", value)
    return None


def many_items(forged: Forged, token: str, limit: int) -> Request | None:
    instance = forged.instance
    if instance.profile.items is None:
        return None
    if instance.profile.scheme.name == "adyen":
        # The captured notification: the sample as the provider signed it.
        signed = instance.profile.scheme.sign(
            forged.request.body, instance.params, instance.keys, time.time()
        )
        captured = json.loads(signed.body)["notificationItems"][0]
        items = [captured] * (MAX_ITEMS - 1)
        wrong = json.loads(json.dumps(captured))
        wrong["NotificationRequestItem"]["merchantReference"] = token
        items.append(wrong)  # its signature is the captured item's: wrong for its content
        body = json.dumps({"live": "false", "notificationItems": items}, separators=(",", ":"))
        return forged.with_body(body.encode())
    event = (
        '{"id":"EV00000000000%d","created_at":"2026-01-02T03:04:05.000Z",'
        '"resource_type":"payments","action":"confirmed","links":{"payment":"PM0000000001"}}'
    )
    events = (event % index for index in itertools.count())
    head = f'"meta":{{"webhook_id":"{token}"}},"events":['
    parts, size = [], len(head) + 4
    for text in events:
        if size + len(text) + 1 > limit:
            break
        parts.append(text)
        size += len(text) + 1
    return forged.with_body(("{" + head + ",".join(parts) + "]}").encode())


def _form(forged: Forged, payload: bytes) -> Request:
    """A form of the forged request's (wrong) signature and ``payload`` as ``bt_payload``."""
    slot = signature_of(forged.instance).slot
    found = slot_value(forged.request, slot)
    assert found is not None
    text = found[0]
    field = text[: text.index("&")] if text.startswith(slot.name) else text.split("&")[1]
    body = f"{field}&bt_payload={urllib.parse.quote(base64.encodebytes(payload))}"
    return forged.with_body(body.encode())


def form_payload(forged: Forged, token: str, limit: int) -> Request | None:
    """(Braintree) a ``bt_payload`` as long as the limit allows: the HMACs' whole input."""
    if not signature_of(forged.instance).slot.form:
        return None
    xml = f"<notification><kind>{token}</kind><pad>".encode()
    room = (limit - 512) * 3 // 4 * 76 // 80  # base64 grows 4/3, newlines and %0A on top
    return _form(forged, xml + b"p" * (room - len(xml)))


def xml_bomb(forged: Forged, token: str, limit: int) -> Request | None:
    """(Braintree) billion laughs in ``bt_payload``, unsigned: never parsed."""
    if not signature_of(forged.instance).slot.form:
        return None
    entities = "".join(f'<!ENTITY l{n} "{("&l" + str(n - 1) + ";") * 10}">' for n in range(1, 10))
    xml = f'<!DOCTYPE n [<!ENTITY l0 "lol">{entities}]><n><kind>{token}&l9;</kind></n>'
    return _form(forged, xml.encode())


Build = Callable[[Forged, str, int], Request | None]


def kinds(config: Config) -> dict[str, Build]:
    server = config.server
    return {
        "wrong_signature": wrong_signature,
        "big_numbers": big_numbers,
        "nested_numbers": nested_numbers,
        "many_members": many_members,
        "deep_nesting": deep_nesting,
        "long_headers": lambda forged, token, limit: long_headers(
            forged, token, limit, headers=server.max_headers, header_bytes=server.max_header_bytes
        ),
        "gzip": gzipped,
        "many_signatures": lambda forged, token, limit: many_signatures(
            forged, token, limit, header_bytes=server.max_header_bytes
        ),
        "many_items": many_items,
        "form_payload": form_payload,
        "xml_bomb": xml_bomb,
    }


# --- measuring ----------------------------------------------------------------------------


class Sampler:
    """The process's RSS, sampled in a thread (the client's event loop is busy sending)."""

    def __init__(self, process: psutil.Process) -> None:
        self.process = process
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(psutil.Error):
                self.peak = max(self.peak, self.process.memory_info().rss)
            time.sleep(SAMPLE_EVERY_S)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def cpu_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


async def settle(process: psutil.Process, timeout_s: float = 20.0) -> None:
    """Return once the process is idle (under 5% of a core over 100 ms): work a request
    goes on causing after its answer (draining, inflating a body Relay refused) belongs to
    that request's figures, not to the next kind's."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        before = cpu_seconds(process)
        await asyncio.sleep(0.1)
        if cpu_seconds(process) - before < 0.005:
            return


def quantile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@dataclass
class Cell:
    instance: str
    kind: str
    size: int
    sent: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    """The answers to the N requests (those sent during the latency probes not counted)."""
    cpu_ms: float = 0.0
    rss_before: int = 0
    rss_growth: int = 0
    seconds: float = 0.0
    p50_ms: float = float("nan")
    p99_ms: float = float("nan")
    probes: int = 0
    hostile_during_probes: int = 0
    proxy_cpu_ms: float | None = None
    """The proxy's CPU per request (all its processes), when one is in front."""
    failures: list[str] = field(default_factory=list)


@dataclass
class Baseline:
    instance: str
    p50_ms: float
    p99_ms: float
    probes: int
    cpu_ms: float


class Client:
    """Sends cases to Relay; authentic ones are remembered for the topic check."""

    def __init__(self, relay: RelayProcess, session: aiohttp.ClientSession, fuzzer: Fuzzer) -> None:
        self.relay, self.session, self.fuzzer = relay, session, fuzzer
        self.base = f"http://127.0.0.1:{relay.port}"
        self.authentic: dict[str, int] = {}
        self.hostile_tokens: set[str] = set()

    async def post(self, case: Case) -> tuple[int, str]:
        status, _, detail = await send(self.session, self.base, "127.0.0.1", self.relay.port, case)
        return status, detail

    async def authentic_once(self, instance: ProviderInstance) -> float:
        request, token = self.fuzzer.signed(instance)
        case = Case("authentic", instance.name, token, request, must_reject=False, control=True)
        started = time.perf_counter()
        status, _ = await self.post(case)
        elapsed = time.perf_counter() - started
        self.authentic[token] = status
        return elapsed

    async def probe(
        self, instance: ProviderInstance, deadline: float, count: int = PROBES
    ) -> list[float]:
        latencies: list[float] = []
        for _ in range(count):
            if time.monotonic() > deadline and latencies:
                break
            latencies.append(await self.authentic_once(instance))
        return latencies


Post = Callable[[], Awaitable[tuple[int, str]]]


def refused(status: int) -> bool:
    return 400 <= status < 500


async def measure(
    client: Client,
    process: psutil.Process,
    instance: ProviderInstance,
    kind: str,
    case: Case,
    *,
    post: Post | None = None,
    accept: Callable[[int], bool] = refused,
    proxy: list[psutil.Process] | None = None,
) -> Cell:
    """The cell of ``case`` (sent by ``post``, by default the client's), whose answers must
    pass ``accept``; the CPU of ``proxy`` processes, when given, is measured as well."""
    size = len(case.raw) if case.raw is not None else len(case.request.body)
    cell = Cell(instance.name, kind, size + sum(len(n) + len(v) for n, v in case.request.headers))
    client.hostile_tokens.add(case.token)
    send = post or (lambda: client.post(case))

    async def hostile(stop: Callable[[], bool], statuses: Counter[int]) -> int:
        count = 0
        while not stop():
            status, detail = await send()
            count += 1
            statuses[status] += 1
            if not accept(status):
                cell.failures.append(
                    f"{instance.name} {kind}: answered {status or 'nothing'}: {detail[:160]}"
                )
        return count

    # 1. N requests alone: CPU time (including what they cost after their answers) and RSS.
    await settle(process)
    cell.rss_before = process.memory_info().rss
    cpu_before = cpu_seconds(process)
    proxy_before = sum(cpu_seconds(each) for each in proxy or [])
    started = time.monotonic()
    deadline = started + CELL_BUDGET_S
    queue = iter(range(REQUESTS))

    def next_one() -> bool:
        # True when this kind is done: N sent, or the budget spent.
        return next(queue, None) is None or time.monotonic() > deadline

    with Sampler(process) as sampler:
        counts = await asyncio.gather(
            *(hostile(next_one, cell.statuses) for _ in range(CONCURRENCY))
        )
        cell.seconds = time.monotonic() - started
        await settle(process)
    cell.sent = sum(counts)
    cell.cpu_ms = (cpu_seconds(process) - cpu_before) * 1000 / max(cell.sent, 1)
    if proxy is not None:
        proxy_cpu = sum(cpu_seconds(each) for each in proxy) - proxy_before
        cell.proxy_cpu_ms = proxy_cpu * 1000 / max(cell.sent, 1)
    cell.rss_growth = max(sampler.peak - cell.rss_before, 0)

    # 2. An authentic webhook's latency while the same kind keeps arriving.
    done = False
    probe_deadline = time.monotonic() + CELL_BUDGET_S
    during: Counter[int] = Counter()
    senders = [asyncio.create_task(hostile(lambda: done, during)) for _ in range(CONCURRENCY)]
    try:
        await asyncio.sleep(0.01)
        latencies = await client.probe(instance, probe_deadline)
    finally:
        done = True
        extra = await asyncio.gather(*senders)
    cell.hostile_during_probes = sum(extra)
    await settle(process)
    cell.probes = len(latencies)
    cell.p50_ms = quantile(latencies, 0.5) * 1000
    cell.p99_ms = quantile(latencies, 0.99) * 1000
    return cell


async def baseline(client: Client, process: psutil.Process, instance: ProviderInstance) -> Baseline:
    await client.probe(instance, time.monotonic() + CELL_BUDGET_S, 5)  # warm-up
    cpu_before = cpu_seconds(process)
    latencies = await client.probe(instance, time.monotonic() + CELL_BUDGET_S)
    cpu_ms = (cpu_seconds(process) - cpu_before) * 1000 / max(len(latencies), 1)
    return Baseline(
        instance.name,
        quantile(latencies, 0.5) * 1000,
        quantile(latencies, 0.99) * 1000,
        len(latencies),
        cpu_ms,
    )


def table(
    broker: str,
    baselines: dict[str, Baseline],
    cells: list[Cell],
    seconds: float,
    title: str = "hostile cost",
) -> str:
    proxied = any(cell.proxy_cpu_ms is not None for cell in cells)
    lines = [
        "",
        f"{title} [{broker}]: {REQUESTS} requests per kind ({CONCURRENCY} at a time, "
        f"at most {CELL_BUDGET_S:.0f} s), authentic latency over {PROBES} requests; "
        f"seed {SEED}; {seconds:.0f} s in all",
        f"{'instance':<12} {'kind':<16} {'bytes':>9} {'sent':>5} {'in s':>6} {'answers':<14} "
        f"{'CPU ms/req':>10} {'RSS MiB':>8} {'+peak MiB':>9}  "
        f"{'authentic p50 / p99 ms (n) under it':<36} {'alone':<14}"
        + (f" {'proxy CPU ms/req':>16}" if proxied else ""),
    ]
    for cell in cells:
        alone = baselines[cell.instance]
        answers = ",".join(f"{code}:{n}" for code, n in sorted(cell.statuses.items()))
        under = f"{cell.p50_ms:.1f} / {cell.p99_ms:.1f} ({cell.probes}, {cell.hostile_during_probes} hostile)"
        lines.append(
            f"{cell.instance:<12} {cell.kind:<16} {cell.size:>9} {cell.sent:>5} "
            f"{cell.seconds:>6.2f} {answers:<14} {cell.cpu_ms:>10.2f} "
            f"{cell.rss_before / 2**20:>8.1f} {cell.rss_growth / 2**20:>9.1f}  "
            f"{under:<36} {f'{alone.p50_ms:.1f} / {alone.p99_ms:.1f}':<14}"
            + (f" {cell.proxy_cpu_ms:>16.2f}" if cell.proxy_cpu_ms is not None else "")
        )
    costliest: dict[str, Cell] = {}
    for cell in cells:
        if cell.instance not in costliest or cell.cpu_ms > costliest[cell.instance].cpu_ms:
            costliest[cell.instance] = cell
    lines.append(
        "costliest kind by CPU: "
        + ", ".join(
            f"{name} {cell.kind} {cell.cpu_ms:.1f} ms" for name, cell in sorted(costliest.items())
        )
    )
    lines.append(
        "authentic CPU ms/request alone: "
        + ", ".join(f"{name} {b.cpu_ms:.2f}" for name, b in sorted(baselines.items()))
    )
    return "\n".join(lines)


async def test_hostile_requests_cost(
    broker: TestBroker, topic: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    started = time.monotonic()
    cells: list[Cell] = []
    baselines: dict[str, Baseline] = {}
    async with running(broker, topic, tmp_path) as (config, relay):
        assert relay.process is not None
        process = psutil.Process(relay.process.pid)
        fuzzer = Fuzzer(config, SEED)
        builders = kinds(config)
        # A connection per request: a pooled one the server closed after refusing a body it
        # did not read would fail the next request sent on it, and count as "no answer".
        connector = aiohttp.TCPConnector(limit=CONCURRENCY * 2 + 2, force_close=True)
        timeout = aiohttp.ClientTimeout(total=120)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            client = Client(relay, session, fuzzer)
            for name in sorted(config.providers):
                if INSTANCES and name not in INSTANCES:
                    continue
                instance = config.providers[name]
                # "Near the limit" is near the instance's own limit where it has one.
                limit = getattr(instance, "max_body_bytes", config.server.max_body_bytes)
                baselines[name] = await baseline(client, process, instance)
                for kind, build in builders.items():
                    if ONLY and kind not in ONLY:
                        continue
                    # Built afresh for each kind: signed timestamps must stay in tolerance.
                    token = fuzzer.token()
                    request = build(forge(fuzzer, instance), token, limit)
                    if request is None:
                        continue
                    if kind == "gzip":
                        token = GZIP_TOKEN
                    case = Case(kind, name, token, request, must_reject=True)
                    cells.append(await measure(client, process, instance, kind, case))
        await relay.wait_drained(60)
        records = await read_records(
            broker.bootstrap_servers,
            [config.kafka.topic, config.kafka.dead_letter_topic],
            set(client.authentic),
        )
        errors = logged_errors(relay)

    with capsys.disabled():
        print(table(broker.name, baselines, cells, time.monotonic() - started))

    assert_outcome(cells, client, records, errors)


def assert_outcome(
    cells: list[Cell], client: Client, records: list[ReadRecord], errors: list[str]
) -> None:
    """Every hostile answer accepted, every authentic request 2xx and published once, no
    record of a hostile request, nothing logged at error level."""
    failures = [failure for cell in cells for failure in cell.failures]
    assert failures == [], failures[:20]
    refused_authentic = {
        token: status for token, status in client.authentic.items() if not 200 <= status < 300
    }
    assert refused_authentic == {}, list(refused_authentic.items())[:20]
    published: Counter[str] = Counter()
    # A batch sample publishes one event per notification under one token: an event is
    # published twice when its source and id are.
    event_ids: Counter[tuple[bytes, bytes]] = Counter()
    for record in records:
        tokens = record_tokens(record)
        hostile = tokens & client.hostile_tokens
        assert not hostile, f"a record for a hostile request: {record.value[:200]!r}"
        assert tokens & set(client.authentic), f"a record from no request: {record.value[:200]!r}"
        if not record.topic.endswith(".dlq"):
            published.update(tokens)
            headers = dict(record.headers)
            event_ids[headers["relay_source"], headers["relay_id"]] += 1
    twice = [key for key, n in event_ids.items() if n > 1]
    missing = set(client.authentic) - set(published)
    assert not twice, f"authentic requests published more than once: {twice[:10]}"
    assert not missing, f"authentic requests never published: {sorted(missing)[:10]}"
    assert errors == [], errors[:20]


# --- request shapes: framing, pacing, refused routes, with and without the proxy ----------

NGINX_CONF = Path(__file__).resolve().parents[2] / "deploy" / "nginx.conf"
# The slow sender's pace: a byte per segment, about as often as the server can wake for it.
SLOW_PACE_S = 0.001
EMPTY_GZIP_MEMBER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff\x03\x00" + bytes(8)
# The instances the shapes are sent to, besides the fuzz instances: a Stripe endpoint behind
# an allow-list 127.0.0.1 is not on, and one that accepts gzip.
SHAPE_PROVIDERS: dict[str, dict[str, Any]] = {
    "listed": {**fuzz_providers()["stripe"], "allow_ips": ["192.0.2.0/24"]},
    "gzipped": {**fuzz_providers()["stripe"], "content_encodings": ["gzip"]},
}


@dataclass(frozen=True)
class Shape:
    kind: str
    case: Case
    pace_s: float = 0.0
    """Above 0: the body (or what follows ``paced_from``) is sent a byte at a time, this
    far apart, until answered."""
    paced_from: int = 0
    """Where the bytes sent a byte at a time begin, when not at the body (0)."""
    unanswered: bool = False
    """No answer is right: a proxy holding a slow body answers nothing before the client
    gives up."""


def framed(request: Request, body: bytes, framing: str, *, path: str | None = None) -> bytes:
    """The request line, the request's headers with ``framing`` as its only framing
    header and ``Connection: close``, then ``body`` as is."""
    # Connection: close, so that a proxy keeping connections alive ends this one too.
    lines = [f"{request.method} {path or request.path} HTTP/1.1", "Host: relay", framing]
    lines.append("Connection: close")
    lines += [
        f"{name}: {value}"
        for name, value in request.headers
        if name.lower() not in ("content-length", "transfer-encoding", "host", "connection")
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def one_byte_chunks(body: bytes) -> bytes:
    return b"".join(b"1\r\n" + body[i : i + 1] + b"\r\n" for i in range(len(body))) + b"0\r\n\r\n"


def padded_to(body: bytes, size: int) -> bytes:
    """``body`` with whitespace after it, ``size`` bytes in all (JSON ignores it)."""
    return body + b" " * max(size - len(body), 0)


def request_shapes(config: Config, fuzzer: Fuzzer, *, proxied: bool) -> list[Shape]:
    """Each shape once, built as bytes on the wire (no HTTP client writes them)."""
    stripe = forge(fuzzer, config.providers["stripe"]).request
    document = forge(fuzzer, config.providers["collect"])
    gzipped = forge(fuzzer, config.providers["gzipped"]).request
    limit = config.providers["stripe"].max_body_bytes
    document_limit = config.providers["collect"].max_body_bytes
    chunked = "Transfer-Encoding: chunked"
    big = one_byte_chunks(padded_to(stripe.body, limit - 64))
    members = (limit - 64 - len(gzipped.body)) // len(EMPTY_GZIP_MEMBER)
    gzip_body = EMPTY_GZIP_MEMBER * members + zlib.compress(gzipped.body, wbits=31)
    oversized = padded_to(stripe.body, 2 * limit)
    # Headers near the longest allowed, a byte at a time: more than read_timeout_s of them.
    whole = framed(stripe, b"", f"Content-Length: {len(stripe.body)}")
    slow_head = whole[: whole.index(b"\r\n\r\n") + 2] + b"\r\n".join(
        f"X-Slow-{i}: ".encode() + b"a" * 8000 for i in range(2)
    )

    def case(kind: str, instance: str, request: Request, raw: bytes) -> Case:
        return Case(kind, instance, fuzzer.token(), request, must_reject=True, raw=raw)

    shapes = [
        Shape("1B chunks", case("1B chunks", "stripe", stripe, framed(stripe, big, chunked))),
        Shape(
            "1B chunks, 60K",
            case(
                "1B chunks, 60K",
                "collect",
                document.request,
                framed(
                    document.request,
                    one_byte_chunks(padded_to(document.request.body, document_limit - 4096)),
                    chunked,
                ),
            ),
        ),
        Shape(
            "1B chunks, 404",
            case(
                "1B chunks, 404",
                "nope",
                stripe,
                framed(stripe, big, chunked, path="/webhooks/nope"),
            ),
        ),
        Shape(
            "1B chunks, 403",
            case(
                "1B chunks, 403",
                "listed",
                stripe,
                framed(stripe, big, chunked, path="/webhooks/listed"),
            ),
        ),
        Shape(
            "2 MiB, 413",
            case(
                "2 MiB, 413",
                "stripe",
                stripe,
                framed(stripe, oversized, f"Content-Length: {len(oversized)}"),
            ),
        ),
        Shape(
            "gzip members",
            case(
                "gzip members",
                "gzipped",
                gzipped,
                framed(
                    gzipped,
                    gzip_body,
                    f"Content-Length: {len(gzip_body)}\r\nContent-Encoding: gzip",
                    path="/webhooks/gzipped",
                ),
            ),
        ),
        Shape(
            "malformed HTTP",
            case(
                "malformed HTTP",
                "stripe",
                stripe,
                framed(
                    stripe,
                    stripe.body,
                    f"Content-Length: {len(stripe.body)}\r\nX-Broken: a\x00b",
                ),
            ),
        ),
        Shape(
            "slow sender",
            case(
                "slow sender",
                "stripe",
                stripe,
                framed(stripe, padded_to(stripe.body, limit), f"Content-Length: {limit}"),
            ),
            pace_s=SLOW_PACE_S,
            unanswered=proxied,
        ),
        Shape(
            "slow headers",
            case("slow headers", "stripe", stripe, slow_head),
            pace_s=SLOW_PACE_S,
            paced_from=slow_head.index(b"X-Slow-0: ") + len(b"X-Slow-0: "),
            # Cut off while its head is incomplete: there is no request to answer yet.
            unanswered=True,
        ),
    ]
    return [shape for shape in shapes if not ONLY or shape.kind in ONLY]


async def send_shape(host: str, port: int, shape: Shape, give_up_s: float) -> tuple[int, str]:
    """The status of the answer (0: none), sending the shape's bytes at its pace."""
    raw = shape.case.raw
    assert raw is not None
    reader, writer = await asyncio.open_connection(host, port)

    async def answer() -> bytes:
        received = b""
        with contextlib.suppress(ConnectionError):
            while chunk := await reader.read(65536):
                received += chunk
        return received

    reading = asyncio.create_task(answer())
    try:
        with contextlib.suppress(ConnectionError):
            if shape.pace_s:
                split = shape.paced_from or raw.index(b"\r\n\r\n") + 4
                writer.write(raw[:split])
                deadline = time.monotonic() + give_up_s
                for offset in range(split, len(raw)):
                    if reading.done() or time.monotonic() > deadline:
                        break
                    writer.write(raw[offset : offset + 1])
                    await writer.drain()
                    await asyncio.sleep(shape.pace_s)
            else:
                writer.write(raw)
        # A paced sender has waited already; a whole request gets the answer's time.
        done, _ = await asyncio.wait([reading], timeout=1 if shape.pace_s else ANSWER_WAIT_S)
        received = reading.result() if done else b""
    finally:
        reading.cancel()
        writer.close()
    statuses = STATUS_LINE.findall(received)
    return (int(statuses[0]) if statuses else 0), received[:300].decode("latin-1")


@contextlib.asynccontextmanager
async def running_at_defaults(
    broker: TestBroker, topic: str, var: Path
) -> AsyncIterator[tuple[Config, RelayProcess]]:
    """``relay serve`` with the fuzz instances and the shapes' own, every limit at its
    default (the fuzz suite's shorter read timeout included)."""
    for name in (topic, f"{topic}.dlq"):
        broker.create_topic(name)
    document = fuzz_document(broker, topic, var, free_port())
    document["server"] = {"host": "127.0.0.1", "port": document["server"]["port"]}
    document["providers"].update(SHAPE_PROVIDERS)
    config_path = var / "shapes.toml"
    config_path.write_text(toml(document), encoding="utf-8")
    relay = RelayProcess(config_path, document["server"]["port"], var / "relay.log")
    try:
        await relay.start()
        await relay.wait_drained(30)
        yield parse_config(document, env={}), relay
    finally:
        relay.kill()


def nginx_binary() -> str | None:
    return shutil.which("nginx") or next(
        (path for path in ("/usr/sbin/nginx",) if os.access(path, os.X_OK)), None
    )


def nginx_conf(text: str, relay_port: int, port: int, prefix: Path) -> str:
    """deploy/nginx.conf in front of one Relay on ``relay_port``, listening on ``port``,
    its files in ``prefix``. Each edit must apply: a change to the bundled file that
    breaks one fails here rather than measuring another proxy."""
    temp = "".join(
        f"    {name}_temp_path {prefix / name};\n"
        for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    edits = [
        (r"\n\s*server relay-\d:8080[^\n]*", ""),
        (r"upstream relay \{", f"upstream relay {{\n        server 127.0.0.1:{relay_port};"),
        (r"listen 8080;", f"listen 127.0.0.1:{port};"),
        (r"access_log /dev/stdout;", f"access_log {prefix / 'access.log'};"),
        (r"error_log /dev/stderr warn;", f"error_log {prefix / 'error.log'} warn;"),
        (r"\nhttp \{\n", "\nhttp {\n" + temp),
    ]
    for pattern, replacement in edits:
        text, count = re.subn(pattern, replacement.replace("\\", "\\\\"), text)
        assert count, f"deploy/nginx.conf no longer has {pattern!r}"
    return f"pid {prefix / 'nginx.pid'};\n" + text


@contextlib.asynccontextmanager
async def nginx_in_front(relay_port: int) -> AsyncIterator[tuple[int, list[psutil.Process]]]:
    """The bundled nginx config in front of Relay: its port and its processes. Skips when
    nginx is not installed (CI installs it: ``apt-get install -y nginx-light``)."""
    binary = nginx_binary()
    if binary is None:
        pytest.skip("nginx is not installed (apt-get install -y nginx-light)")
    # Not under pytest's tmp_path: nginx's workers run as nobody and must reach their
    # temporary files (request bodies are buffered there).
    prefix = Path(tempfile.mkdtemp(prefix="relay-nginx-"))
    prefix.chmod(0o755)
    for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (prefix / name).mkdir(mode=0o777)
        (prefix / name).chmod(0o777)
    port = free_port()
    conf = prefix / "nginx.conf"
    conf.write_text(nginx_conf(NGINX_CONF.read_text(), relay_port, port, prefix))
    command = [binary, "-p", str(prefix), "-e", str(prefix / "error.log"), "-c", str(conf)]
    with (prefix / "nginx.out").open("wb") as out:
        process = subprocess.Popen(
            [*command, "-g", "daemon off;"],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        async with aiohttp.ClientSession() as session:
            for _ in range(200):
                with contextlib.suppress(aiohttp.ClientError):
                    async with session.get(f"http://127.0.0.1:{port}/healthz") as response:
                        if response.status == 200:
                            break
                if process.poll() is not None:
                    raise AssertionError((prefix / "error.log").read_text(errors="replace"))
                await asyncio.sleep(0.05)
        master = psutil.Process(process.pid)
        yield port, [master, *master.children()]
    finally:
        process.terminate()
        process.wait()
        shutil.rmtree(prefix, ignore_errors=True)


@pytest.mark.parametrize("front", ["direct", "nginx"])
async def test_request_shapes_cost(
    broker: TestBroker, topic: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], front: str
) -> None:
    """What each request shape costs Relay at the default limits: 1-byte chunks on a webhook
    route, on a 404 and an allow_ips 403; a body over the limit sent whole; a gzip body of
    empty members; malformed HTTP; a slow sender, of a body and of headers. Directly, and
    behind deploy/nginx.conf (the proxy's own CPU in a column of its own). Figures printed,
    never asserted; asserted as for the kinds above, except that a slow sender of headers,
    and behind the proxy any slow sender, gets no answer."""
    started = time.monotonic()
    cells: list[Cell] = []
    async with running_at_defaults(broker, topic, tmp_path) as (config, relay):
        assert relay.process is not None
        process = psutil.Process(relay.process.pid)
        fuzzer = Fuzzer(config, SEED)
        stripe = config.providers["stripe"]
        async with contextlib.AsyncExitStack() as stack:
            port, proxy = relay.port, None
            if front == "nginx":
                port, proxy = await stack.enter_async_context(nginx_in_front(relay.port))
            connector = aiohttp.TCPConnector(limit=CONCURRENCY * 2 + 2, force_close=True)
            session = await stack.enter_async_context(
                aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=120))
            )
            client = Client(relay, session, fuzzer)
            client.base = f"http://127.0.0.1:{port}"
            baselines = {stripe.name: await baseline(client, process, stripe)}
            give_up_s = config.server.read_timeout_s + 5
            for shape in request_shapes(config, fuzzer, proxied=proxy is not None):

                def post(shape: Shape = shape) -> Awaitable[tuple[int, str]]:
                    return send_shape("127.0.0.1", port, shape, give_up_s)

                def accept(status: int, shape: Shape = shape) -> bool:
                    return refused(status) or (shape.unanswered and status == 0)

                cell = await measure(
                    client,
                    process,
                    stripe,
                    shape.kind,
                    shape.case,
                    post=post,
                    accept=accept,
                    proxy=proxy,
                )
                cells.append(cell)
        await relay.wait_drained(60)
        records = await read_records(
            broker.bootstrap_servers,
            [config.kafka.topic, config.kafka.dead_letter_topic],
            set(client.authentic),
        )
        errors = logged_errors(relay)

    with capsys.disabled():
        title = f"request shapes, {front}"
        print(table(broker.name, baselines, cells, time.monotonic() - started, title))

    assert_outcome(cells, client, records, errors)

"""Relay's CPU per webhook, line by line, measured in the running server.

``bench/stages.py`` times Relay's own steps in a tight loop in the harness;
in the server the same code costs more (cold caches, a loop full of other
work) and the libraries' share is not there at all. This budget is measured
where the cost is: py-spy samples the server (blocking; idle samples
dropped) during one saturated run, each sample is charged to one line by its stack, and a
line's share of the busy samples times the run's CPU per request (from
``/proc``) is its cost per webhook.

Each sample goes to the innermost frame that names a line (rules below, in
stack order from the innermost frame out): so a Relay function calling into
aiohttp (building the response) charges aiohttp, and a log call from inside
the pipeline charges the log line.

The check that the budget adds up is independent of the shares: busy
samples times the sampling interval against the CPU time ``/proc`` measured
over the same run (``coverage``). py-spy stops the server for each sample,
which costs the server some CPU of its own; the run's requests/s are not
the case's figure.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.profile_summary import raw_stacks

# (line, markers): a frame belongs to the line when its text contains a marker.
# Checked in this order for each frame, innermost frame first.
_RULES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("log line", ("(logging/", "(relay/logs.py")),
    ("metrics", ("(prometheus_client/",)),
    ("verify", ("(verifiers/",)),
    ("JSON parse", ("(schemas/payload.py", "(json/")),
    ("record build", ("(relay/records.py", "(schemas/records.py", "to_json (schemas/event.py")),
    ("normalize", ("(schemas/", "normalize (relay/pipeline.py")),
    ("dedup", ("(relay/dedup",)),
    ("Kafka client", ("(aiokafka/", "(relay/partitioner.py")),
    ("body read", ("(relay/body.py",)),
    ("aiohttp request handling", ("(aiohttp/", "(yarl/", "(multidict/")),
    ("Relay's glue (pipeline, delivery, handler)", ("(relay/",)),
    (
        "socket reads and writes (system calls)",
        (
            "_SelectorSocketTransport.write (",
            "_read_ready__data_received (",
            "_SelectorSocketTransport._read_ready (",
        ),
    ),
    ("event loop polling (epoll)", ("Selector.select (selectors.py",)),
    ("asyncio scheduling", ("(asyncio/", "(selectors.py", "(<frozen runpy>")),
)
LINES = tuple(line for line, _ in _RULES)
OTHER = "other"
# Inside the send path when the stack passes through Relay's sink, else the client's
# background work (the sender task, connection reads).
_SEND_PATH = "(relay/kafka.py"
_REPO = str(Path(__file__).resolve().parent.parent)


@dataclass(frozen=True)
class Budget:
    busy_samples: int
    samples_by_line: Counter[str]

    def table(self, cpu_us_per_request: float) -> dict[str, float]:
        """Microseconds of CPU per webhook for each line (shares of the busy samples)."""
        return {
            line: round(cpu_us_per_request * count / self.busy_samples, 1)
            for line, count in self.samples_by_line.most_common()
        }


def _frames(stack: str) -> list[str]:
    """Frames innermost first, each as ``function (package/module.py:line)``."""
    return [_trimmed(frame) for frame in reversed(stack.split(";"))]


def _trimmed(frame: str) -> str:
    function, _, path = frame.partition(" (")
    for marker in ("site-packages/", "/lib/python3.11/", f"{_REPO}/"):
        if marker in path:
            path = path.rpartition(marker)[2]
            break
    return f"{function} ({path}"


def line_of(frames: Sequence[str]) -> str:
    for frame in frames:
        for line, markers in _RULES:
            if any(marker in frame for marker in markers):
                if line == "Kafka client":
                    send_path = any(_SEND_PATH in outer for outer in frames)
                    return "Kafka client: send path" if send_path else "Kafka client: background"
                return line
    return OTHER


def read_budget(profile: Path) -> Budget:
    """A py-spy ``--format raw`` profile (``frame;frame;... COUNT``, outermost first)."""
    by_line: Counter[str] = Counter()
    busy = 0
    for stack, count in raw_stacks(profile):
        busy += count
        by_line[line_of(_frames(stack))] += count
    return Budget(busy, by_line)


def summary(profile: Path, rate_hz: int, cpu_s: float, requests: int) -> dict[str, object]:
    """The budget of one sampled run, as ``latest.json`` keeps it under ``relay_budget``."""
    budget = read_budget(profile)
    cpu_us = cpu_s / max(1, requests) * 1e6
    sampled_cpu_s = budget.busy_samples / rate_hz
    lines = budget.table(cpu_us)
    return {
        "method": "py-spy samples of one saturated run, charged by stack (bench/budget.py)",
        "cpu_us_per_request": round(cpu_us, 1),
        "requests": requests,
        "busy_samples": budget.busy_samples,
        "measured_cpu_s": round(cpu_s, 3),
        "sampled_cpu_s": round(sampled_cpu_s, 3),
        "coverage": round(sampled_cpu_s / cpu_s, 3) if cpu_s else None,
        "lines_us": lines,
        "sum_us": round(sum(lines.values()), 1),
    }


def describe(document: dict[str, object]) -> str:
    """The budget as the terminal shows it."""
    lines = document["lines_us"]
    assert isinstance(lines, dict)
    total = document["cpu_us_per_request"]
    assert isinstance(total, float)
    rows = [
        f"CPU budget per webhook (relay case, one more saturated run sampled by py-spy): "
        f"{total:.0f} us CPU per request measured; the samples cover "
        f"{document['coverage']:.0%} of the CPU /proc measured over the run",
    ]
    rows += [f"  {line:<44} {us:7.1f} us  {us / total:6.1%}" for line, us in lines.items()]
    rows.append(f"  {'sum':<44} {document['sum_us']:7.1f} us")
    return "\n".join(rows)

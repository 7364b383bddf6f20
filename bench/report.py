"""Results: the terminal table, ``latest.json`` and one latency chart per case."""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

from bench.cases import CaseResult
from bench.load import WrkResult

# Percentiles on the charts: 0 to 99.99, denser towards the tail.
_CHART_PERCENTILES = [p / 10 for p in range(0, 990, 5)] + [99 + p / 100 for p in range(0, 100)]


def case_summary(result: CaseResult, ceiling_rps: float) -> dict[str, Any]:
    m = result.measurement
    half, sat = m.half_load, m.median_rep
    summary: dict[str, Any] = {
        "title": result.title,
        "rps": round(m.rps, 1),
        "rps_reps": [round(rep.rps, 1) for rep in m.reps],
        "ratio": round(m.rps / ceiling_rps, 3),
        "cpu_us_per_request": round(statistics.median(m.cpu_us_per_request), 1),
        # Latency at half of the median saturated rate (the target's "half load").
        "p50_ms": round(half.percentile_ms(50), 3),
        "p99_ms": round(half.percentile_ms(99), 3),
        "p999_ms": round(half.percentile_ms(99.9), 3),
        "half_load": {
            "target_rps": round(half.rate, 1),
            "achieved_rps": round(half.rps, 1),
            "late_sends": half.late,
        },
        "saturated": {
            "p50_ms": round(sat.percentile_ms(50), 3),
            "p99_ms": round(sat.percentile_ms(99), 3),
            "p999_ms": round(sat.percentile_ms(99.9), 3),
        },
        "errors": m.errors,
        "lost": None,
        "duplicates": None,
        "notes": result.notes,
    }
    if result.accounting is not None:
        a = result.accounting
        summary.update(
            lost=a.lost,
            duplicates=a.duplicates,
            accounting={
                "ids_sent": a.sent,
                "records": a.records,
                "distinct_ids": a.distinct,
                "sent_without_record": a.missing,
                "records_not_sent": a.extra,
                "server_outcomes": a.server,
            },
        )
    return summary


def write_json(path: Path, document: dict[str, Any]) -> None:
    path.write_text(json.dumps(document, indent=2) + "\n")


def _count(value: int | None) -> str:
    return "-" if value is None else str(value)


def table(cases: dict[str, dict[str, Any]]) -> str:
    header = (
        f"{'case':<20} {'req/s':>7} {'ratio':>5} {'CPU us':>6} {'p50 ms':>7} {'p99 ms':>7} "
        f"{'p99.9':>7} {'sat p99':>7} {'errors':>6} {'lost':>5} {'dups':>5}"
    )
    lines = [header, "-" * len(header)]
    for name, c in cases.items():
        lines.append(
            f"{name:<20} {c['rps']:>7.0f} {c['ratio']:>5.2f} {c['cpu_us_per_request']:>6.0f} "
            f"{c['p50_ms']:>7.2f} {c['p99_ms']:>7.2f} {c['p999_ms']:>7.2f} "
            f"{c['saturated']['p99_ms']:>7.1f} {c['errors']:>6} "
            f"{_count(c['lost']):>5} {_count(c['duplicates']):>5}"
        )
    lines.append(
        "req/s: median of the saturated runs; ratio: to the ceiling; CPU us: server CPU per "
        "request, saturated;\np50/p99/p99.9: at half of the case's req/s; sat p99: saturated "
        "(median run); lost/dups: per webhook id on the topic"
    )
    return "\n".join(lines)


def chart(path: Path, result: CaseResult) -> None:
    """Latency against percentile (log-scaled tail) for the median saturated run and half load."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def curve(run: WrkResult) -> tuple[list[float], list[float]]:
        xs = [1 / (1 - p / 100) for p in _CHART_PERCENTILES]
        return xs, [run.percentile_ms(p) for p in _CHART_PERCENTILES]

    m = result.measurement
    figure, axes = plt.subplots(figsize=(8, 4.5))
    for run, label in (
        (m.median_rep, f"saturated, {m.median_rep.rps:.0f} req/s"),
        (m.half_load, f"half load, {m.half_load.rps:.0f} req/s"),
    ):
        xs, ys = curve(run)
        axes.plot(xs, ys, label=label)
    axes.set_xscale("log")
    ticks = [1, 2, 10, 100, 1000, 10000]
    axes.set_xticks(ticks, ["0%", "50%", "90%", "99%", "99.9%", "99.99%"])
    axes.set_xlabel("percentile")
    axes.set_ylabel("latency (ms)")
    axes.set_title(f"{result.name}: {result.title}")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)

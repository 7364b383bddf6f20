"""``make bench``: Relay against the aiohttp ceiling, in one run on this machine.

    python -m bench [--quick] [--cases relay,relay-spool,...] [--duration S] [--reps N]

Writes ``bench/results/latest.json``, ``bench/results/latency-<case>.png`` and
the run's logs under ``bench/results/run/`` (all git-ignored).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import platform
import shutil
import sys
import time
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path

from bench import budget, report, stages, verifier
from bench.cases import (
    REPO,
    CaseResult,
    RelayCase,
    Settings,
    ceiling_case,
    cpu_pair,
    floor_case,
    relay_case,
    signing_instance,
)
from bench.load import ensure_wrk
from relay.devbroker import DevBroker, free_port

RESULTS = Path(__file__).resolve().parent / "results"

RELAY_CASES = {
    "relay": RelayCase(
        "relay", "Relay: HMAC, memory dedup, dev broker", {"backend": "memory"}, budget=True
    ),
    "relay-sqlite": RelayCase(
        "relay-sqlite", "Relay: sqlite dedup, dev broker", {"backend": "sqlite"}
    ),
    "relay-redis": RelayCase("relay-redis", "Relay: redis dedup, dev broker", {"backend": "redis"}),
    "relay-spool": RelayCase(
        "relay-spool", "Relay: broker stopped, spool", {"backend": "memory"}, broker_down=True
    ),
    # Scale-out: one worker against two on this 2-core machine, both unpinned (the second
    # worker needs the second core, which wrk then shares), sqlite dedup as --workers needs.
    "relay-workers-1": RelayCase(
        "relay-workers-1",
        "Relay: 1 worker, unpinned, sqlite dedup",
        {"backend": "sqlite"},
        pinned=False,
    ),
    "relay-workers-2": RelayCase(
        "relay-workers-2",
        "Relay: 2 workers, unpinned, sqlite dedup",
        {"backend": "sqlite"},
        workers=2,
        pinned=False,
    ),
    "relay-apache-kafka": RelayCase(
        "relay-apache-kafka",
        "Relay: memory dedup, Apache Kafka 4.4, idempotence on",
        {"backend": "memory"},
        idempotence=True,
    ),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per measured run")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds of warm-up per case")
    parser.add_argument("--reps", type=int, default=3, help="measured runs per case")
    parser.add_argument("--latency-duration", type=float, default=10.0, help="half-load run")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--cases", default=",".join(["ceiling", "kafka-floor", *RELAY_CASES]))
    parser.add_argument("--quick", action="store_true", help="2 s runs, 1 rep: for development")
    parser.add_argument(
        "--profile", action="store_true", help="py-spy the server during each case's first run"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.duration = args.latency_duration = 2.0
        args.warmup, args.reps = 1.0, 1
    wanted = args.cases.split(",")
    unknown = set(wanted) - {"ceiling", "kafka-floor", *RELAY_CASES}
    if unknown:
        parser.error(f"unknown cases: {', '.join(sorted(unknown))}")

    server_cpu, load_cpu = cpu_pair()
    if load_cpu is not None:
        # Brokers, valkey and wrk start from here and inherit this core: the
        # server under test keeps the other one to itself.
        os.sched_setaffinity(0, {load_cpu})
    else:
        print("fewer than 2 CPUs: nothing is pinned", flush=True)
    work_dir = RESULTS / "run"
    shutil.rmtree(work_dir, ignore_errors=True)
    work_dir.mkdir(parents=True)
    settings = Settings(
        duration_s=args.duration,
        warmup_s=args.warmup,
        reps=args.reps,
        latency_s=args.latency_duration,
        connections=args.connections,
        server_cpu=server_cpu,
        load_cpu=load_cpu,
        work_dir=work_dir,
        wrk=ensure_wrk(),
        profile=args.profile,
    )
    load_before = os.getloadavg()
    started = time.monotonic()
    print(
        f"bench: {args.connections} connections, {args.reps} x {args.duration:g} s per case "
        f"after {args.warmup:g} s warm-up; server on CPU {server_cpu}, load on CPU {load_cpu}; "
        f"load average {load_before[0]:.2f}",
        flush=True,
    )
    instance = signing_instance()
    results: list[CaseResult] = []
    ceiling = ceiling_case(settings, instance)
    results.append(ceiling)
    ceiling_rps = ceiling.measurement.rps
    with DevBroker(log_path=work_dir / "tansu.log") as tansu:
        if "kafka-floor" in wanted:
            results.append(floor_case(settings, instance, tansu.bootstrap_servers))
        for name in wanted:
            if name not in RELAY_CASES:
                continue
            case = RELAY_CASES[name]
            result = _run_relay_case(settings, case, tansu.bootstrap_servers, ceiling_rps)
            if result is not None:
                results.append(result)

    micro = verifier.run()
    stage_costs = stages.run()
    relay_budget = next(
        (
            budget.summary(run.profile, run.rate_hz, run.cpu_s, run.requests)
            for result in results
            if (run := result.measurement.budget) is not None
        ),
        None,
    )
    load_after = os.getloadavg()
    cases = {result.name: report.case_summary(result, ceiling_rps) for result in results}
    for result in results:
        report.chart(RESULTS / f"latency-{result.name}.png", result)
    main_case = cases.get("relay", {})
    document = {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "ceiling_rps": cases["ceiling"]["rps"],
        "relay_rps": main_case.get("rps"),
        "ratio": main_case.get("ratio"),
        "p99_ms": main_case.get("p99_ms"),
        "lost": main_case.get("lost"),
        "duplicates": main_case.get("duplicates"),
        "cases": cases,
        "verifier_microbench": micro,
        "relay_stages_cpu_us": stage_costs,
        "relay_budget": relay_budget,
        "settings": {
            "connections": args.connections,
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "reps": args.reps,
            "latency_duration_s": args.latency_duration,
            "server_cpu": server_cpu,
            "load_cpu": load_cpu,
        },
        "machine": {
            "cpus": os.cpu_count(),
            "load_average_before": [round(x, 2) for x in load_before],
            "load_average_after": [round(x, 2) for x in load_after],
            "python": platform.python_version(),
            "aiohttp": version("aiohttp"),
            "aiokafka": version("aiokafka"),
        },
        "elapsed_s": round(time.monotonic() - started, 1),
    }
    report.write_json(RESULTS / "latest.json", document)
    print()
    print(report.table(cases))
    print(
        f"\nverifier micro-benchmark (standard-webhooks, {micro['vectors']} vectors): "
        f"ours {micro['ours_us']} us, standardwebhooks {micro['reference_us']} us per verify "
        f"({micro['speedup']}x)"
    )
    print(
        "Relay's own code per webhook, CPU us in this process: "
        + ", ".join(f"{stage} {us:g}" for stage, us in stage_costs.items())
        + f" (sum {sum(stage_costs.values()):.0f})"
    )
    if relay_budget is not None:
        print(budget.describe(relay_budget))
    print(
        f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f}; "
        f"{document['elapsed_s']:.0f} s; results in {RESULTS / 'latest.json'}"
    )
    return 0


def _run_relay_case(
    settings: Settings, case: RelayCase, tansu_bootstrap: str, ceiling_rps: float
) -> CaseResult | None:
    if case.name == "relay-apache-kafka":
        return _apache_kafka_case(settings, case, ceiling_rps)
    if case.name == "relay-redis":
        from tests.redis_server import start_valkey

        with start_valkey() as valkey:
            case = RelayCase(case.name, case.title, {"backend": "redis", "url": valkey.url})
            return relay_case(settings, case, tansu_bootstrap, ceiling_rps)
    if case.dedup["backend"] == "sqlite":
        path = str(settings.work_dir / case.name / "dedup.sqlite3")
        case = dataclasses.replace(case, dedup={"backend": "sqlite", "path": path})
    if case.broker_down:
        port = free_port()

        def broker() -> contextlib.AbstractContextManager[object]:
            return DevBroker(port=port, log_path=settings.work_dir / "tansu-spool.log")

        return relay_case(settings, case, f"127.0.0.1:{port}", ceiling_rps, broker)
    return relay_case(settings, case, tansu_bootstrap, ceiling_rps)


def _apache_kafka_case(
    settings: Settings, case: RelayCase, ceiling_rps: float
) -> CaseResult | None:
    from tests.apache_kafka.launcher import ApacheKafka, ensure_jars, java_and_maven

    missing = java_and_maven()
    if missing:
        print(f"  skipping {case.name}: {missing}", flush=True)
        return None
    lib = ensure_jars(REPO)
    with ApacheKafka(lib, settings.work_dir / "apache-kafka") as kafka:
        # Auto-creation is off on this broker, as in production: create the topics first.
        def make_topics(topic: str) -> None:
            for name in (topic, f"{topic}.dlq"):
                kafka.create_topic(name, partitions=4)

        return relay_case(
            settings, case, kafka.bootstrap_servers, ceiling_rps, before_start=make_topics
        )


if __name__ == "__main__":
    sys.exit(main())

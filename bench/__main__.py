"""Run the benchmark: `uv run python -m bench [--quick | --smoke] [--json FILE]`.

Every scenario runs against a new PostgreSQL database (created from the server in
TASKRUNNER_BENCH_URL or DATABASE_URL, by default the local one, and dropped afterwards),
and each is compared with its baseline in the same run. See docs/performance.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from bench import scenarios
from bench.harness import Result, fresh_database, have, print_table, write_json
from bench.retention import retention


@dataclass(frozen=True)
class Mode:
    seconds: float
    clients: tuple[int, ...]
    http_seconds: float
    http_workers: tuple[int, ...]
    queued_tasks: int
    queued_workers: tuple[int, ...]
    list_rows: int
    list_requests: int
    interpreter_tasks: int
    cli_runs: int
    retention_rows: int


MODES = {
    "smoke": Mode(0.3, (1, 4), 1.0, (1,), 30, (1,), 2_000, 5, 300, 2, 5_000),
    "quick": Mode(2.0, (1, 4, 16), 3.0, (1, 2), 2_000, (1, 2), 100_000, 50, 5_000, 10, 100_000),
    "full": Mode(
        5.0, (1, 4, 16), 5.0, (1, 2), 5_000, (1, 2), 1_000_000, 200, 20_000, 20, 1_000_000
    ),
}
SCENARIOS = ("raw", "in-process", "http", "queued", "list", "interpreter", "cli", "retention")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="a shorter run (a few minutes)")
    size.add_argument("--smoke", action="store_true", help="the smallest run: the harness works")
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    parser.add_argument(
        "--only", nargs="+", choices=SCENARIOS, default=list(SCENARIOS), help="these scenarios"
    )
    args = parser.parse_args()
    name = "smoke" if args.smoke else "quick" if args.quick else "full"
    mode = MODES[name]
    started = time.perf_counter()
    results: list[Result] = []
    for scenario in args.only:
        print(f"-- {scenario}", file=sys.stderr, flush=True)
        results += RUNNERS[scenario](mode)
    judge(results)
    print_table(results)
    meta = {
        "mode": name,
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "python": platform.python_version(),
        "load generator": "wrk"
        if have("wrk") and os.environ.get("BENCH_LOADGEN") != "python"
        else "bench.loadgen",
        "seconds": round(time.perf_counter() - started, 1),
    }
    print(f"\n{meta}")
    if args.json:
        write_json(results, args.json, meta)


def run_raw_and_in_process(mode: Mode) -> list[Result]:
    results = []
    for clients in mode.clients:
        with fresh_database("raw") as url:
            results.append(scenarios.raw_limit(url, clients, mode.seconds))
        with fresh_database("raw") as url:
            results.append(scenarios.raw_single_statements(url, clients, mode.seconds))
        with fresh_database("service") as url:
            results.append(scenarios.in_process(url, clients, mode.seconds))
    with fresh_database("ten") as url:
        ten = {"text": "hello", "a": 1}
        results.append(scenarios.in_process(url, 4, mode.seconds, "ten_steps", ten))
    return results


def run_http(mode: Mode) -> list[Result]:
    results = []
    for workers in mode.http_workers:
        for method in ("POST", "GET"):
            for app in ("bare", "taskrunner"):
                with fresh_database("http") as url:
                    results.append(scenarios.http(url, app, workers, mode.http_seconds, method))
    return results


def run_queued(mode: Mode) -> list[Result]:
    results = []
    for workers in mode.queued_workers:
        with fresh_database("queued") as url:
            results.append(scenarios.queued(url, workers, mode.queued_tasks))
    return results


def run_list(mode: Mode) -> list[Result]:
    with fresh_database("list") as url:
        return scenarios.listing(url, mode.list_rows, mode.list_requests)


RUNNERS = {
    "raw": lambda mode: [],  # measured together with in-process, client for client
    "in-process": run_raw_and_in_process,
    "http": run_http,
    "queued": run_queued,
    "list": run_list,
    "interpreter": lambda mode: [scenarios.interpreter(mode.interpreter_tasks)],
    "cli": lambda mode: scenarios.cli_startup(mode.cli_runs),
    "retention": lambda mode: retention(mode.retention_rows),
}


def judge(results: list[Result]) -> None:
    """Ratios against the baselines of the same run, and the targets."""
    by_variant = {(result.scenario, result.variant): result for result in results}
    for result in results:
        if result.variant.startswith("taskrunner in-process") and result.scenario.endswith(
            "echo_add"
        ):
            clients = result.variant.rsplit(", ", 1)[1]
            # The raw limit is the faster of the two ways of writing the rows.
            raws = [
                by_variant.get(("durable echo_add", f"{way}, {clients}"))
                for way in ("raw psycopg", "raw psycopg one-statement")
            ]
            raw = max(
                (found for found in raws if found and found.throughput),
                key=lambda found: found.throughput or 0,
                default=None,
            )
            if raw and raw.throughput and result.throughput:
                result.baseline = raw.variant
                result.ratio = round(result.throughput / raw.throughput, 2)
                if clients in ("4 clients", "16 clients"):
                    result.target = ">= 0.50 of raw, <= 3 commits"
                    result.met = result.ratio >= 0.5 and (result.commits or 0) <= 3
        elif result.variant.startswith("taskrunner,") and result.scenario.startswith("HTTP"):
            workers = result.variant.split(", ", 1)[1]
            bare = by_variant.get((result.scenario, f"bare FastAPI+psycopg, {workers}"))
            if bare and bare.throughput and result.throughput:
                result.baseline = bare.variant
                result.ratio = round(result.throughput / bare.throughput, 2)
                if result.scenario == "HTTP POST /tasks":
                    result.target = ">= 0.50 req/s, p99 <= 2x"
                    result.met = result.ratio >= 0.5 and (result.p99_ms or 0) <= 2 * (
                        bare.p99_ms or 0
                    )
        elif result.scenario == "queued echo_add" and result.variant.startswith("2 worker"):
            result.target = ">= 1,000 tasks/s"
            result.met = (result.throughput or 0) >= 1000


if __name__ == "__main__":
    main()

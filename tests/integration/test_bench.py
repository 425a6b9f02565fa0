"""The benchmark harness works (its smallest mode, against the test PostgreSQL server):
every scenario runs and reports what it measures. Timing is the benchmark's business,
not the suite's: nothing here asserts a speed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_benchmark_runs_every_scenario_in_its_smallest_mode(
    tmp_path: Path, postgres_url: str
) -> None:
    out = tmp_path / "bench.json"
    env = {**os.environ, "TASKRUNNER_BENCH_URL": postgres_url, "BENCH_LOADGEN": "python"}
    env.pop("DATABASE_URL", None)
    finished = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "--json", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert finished.returncode == 0, finished.stderr[-3000:]
    document = json.loads(out.read_text())
    results = document["results"]
    scenarios = {result["scenario"] for result in results}
    assert {
        "durable echo_add",
        "durable ten_steps",
        "HTTP POST /tasks",
        "HTTP GET /tasks/{id}",
        "queued echo_add",
        "interpreter alone (echo_add)",
        "CLI start-up",
    } <= scenarios
    assert any(scenario.startswith("GET /tasks at") for scenario in scenarios)
    purges = [r for r in results if r["scenario"].startswith("purge at")]
    assert {r["variant"].split(",")[0] for r in purges} == {"PostgreSQL", "SQLite"}
    assert all(r["extra"]["tasks"] == 500 for r in purges if "oldest" in r["variant"]), purges
    assert document["meta"]["load generator"] == "bench.loadgen"
    for result in results:
        if result["scenario"] != "CLI start-up":
            assert result["throughput"] > 0, result
        assert result["p50_ms"] > 0, result
        assert result["p99_ms"] >= result["p50_ms"], result
    service = [r for r in results if r["variant"].startswith("taskrunner in-process")]
    echo_add = [r for r in service if r["scenario"] == "durable echo_add"]
    assert echo_add
    assert all((r["statements"], r["commits"]) == (3, 3) for r in echo_add), echo_add
    [ten] = [r for r in service if r["scenario"] == "durable ten_steps"]
    assert (ten["statements"], ten["commits"]) == (11, 11)
    cli = {r["variant"]: r for r in results if r["scenario"] == "CLI start-up"}
    validate = cli["taskrunner validate-flow taskrunner/flows/echo_add.yaml"]
    assert validate["extra"]["heavy_imports"] == []
    assert "taskrunner" in finished.stdout  # the table was printed


def test_the_fan_out_benchmark_runs_in_a_small_size(postgres_url: str) -> None:
    env = {**os.environ, "TASKRUNNER_BENCH_URL": postgres_url}
    env.pop("DATABASE_URL", None)
    finished = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.fanout",
            *("--items", "20", "--parents", "2", "--workers", "1", "--concurrency", "2"),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert finished.returncode == 0, finished.stderr[-3000:]
    lines = finished.stdout.splitlines()
    assert lines[0].endswith("8 submitting threads")
    assert lines[1].startswith("single-step path: 20 one-step tasks in ")
    assert lines[2].startswith("map over 20 items: ")
    assert lines[3].startswith("parallel of 8 branches x 2 tasks: ")

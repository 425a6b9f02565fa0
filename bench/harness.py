"""What every scenario shares: results, percentiles, fresh databases, counters, the table."""

from __future__ import annotations

import json
import math
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
FLOWS = Path(__file__).resolve().parent / "flows"
CLI = "from taskrunner.cli import main; main()"


@dataclass
class Result:
    """One measured line of the table."""

    scenario: str
    variant: str
    throughput: float | None = None  # tasks (or requests) per second
    unit: str = "tasks/s"
    p50_ms: float | None = None
    p99_ms: float | None = None
    baseline: str | None = None  # the variant this one is compared with
    ratio: float | None = None  # throughput / baseline throughput (or time ratio)
    statements: float | None = None  # SQL statements per task
    commits: float | None = None  # commits per task
    target: str | None = None
    met: bool | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def percentile(samples: list[float], fraction: float) -> float:
    if not samples:
        return math.nan
    ordered = sorted(samples)
    index = min(len(ordered) - 1, max(0, math.ceil(fraction * len(ordered)) - 1))
    return ordered[index]


def latencies(samples_seconds: list[float]) -> tuple[float, float]:
    """(p50, p99) in milliseconds."""
    return percentile(samples_seconds, 0.5) * 1000, percentile(samples_seconds, 0.99) * 1000


def admin_url() -> str:
    url = os.environ.get("TASKRUNNER_BENCH_URL") or os.environ.get("DATABASE_URL")
    url = url or "postgresql://postgres@127.0.0.1:5432/postgres"
    parsed = make_url(url)
    if not parsed.get_backend_name().startswith("postgresql"):
        raise SystemExit("the benchmark needs PostgreSQL: set DATABASE_URL to a postgresql:// URL")
    return parsed.set(drivername="postgresql").render_as_string(hide_password=False)


def libpq(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@contextmanager
def fresh_database(label: str) -> Iterator[str]:
    """A new, migrated PostgreSQL database for one scenario, dropped afterwards."""
    admin = admin_url()
    name = f"taskrunner_bench_{label}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    url = make_url(admin).set(database=name).render_as_string(hide_password=False)
    try:
        migrated(url)
        yield url
    finally:
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def fresh_sqlite(label: str) -> Iterator[str]:
    """A new, migrated SQLite database file for one scenario, removed afterwards."""
    with tempfile.TemporaryDirectory(prefix=f"taskrunner-bench-{label}-") as directory:
        url = f"sqlite:///{Path(directory) / 'taskrunner.sqlite3'}"
        migrated(url)
        yield url


def migrated(url: str) -> None:
    from taskrunner.store.database import Database
    from taskrunner.store.migrate import migrate

    database = Database(url)
    try:
        migrate(database)
    finally:
        database.dispose()


def commits_of(url: str) -> int:
    """Committed transactions of the database so far (pg_stat_database)."""
    name = make_url(url).database
    with psycopg.connect(libpq(url), autocommit=True) as connection:
        connection.execute("SELECT pg_stat_clear_snapshot()")
        row = connection.execute(
            "SELECT xact_commit FROM pg_stat_database WHERE datname = %s", (name,)
        ).fetchone()
    return int(row[0]) if row else 0


def wait_for_stats() -> None:
    """pg_stat_database lags by up to half a second (PostgreSQL 15 flushes stats then)."""
    time.sleep(1.1)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def environment(url: str, **extra: str) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("TASKRUNNER_") and key != "DATABASE_URL"
    }
    env.update(
        DATABASE_URL=url,
        TASKRUNNER_FLOWS_DIR=str(FLOWS),
        TASKRUNNER_AUTO_MIGRATE="0",
        # The processes' stderr is a pipe read only until they start: a line per step
        # (INFO) would fill it and stall them. What is measured is the runner, not its log.
        TASKRUNNER_LOG_LEVEL="WARNING",
        **extra,
    )
    return env


def wait_until_up(port: int, process: subprocess.Popen[bytes], timeout: float = 30) -> None:
    import http.client

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with status {process.returncode}")
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            connection.request("GET", "/healthz")
            if connection.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError("the server did not start")


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def have(command: str) -> bool:
    return shutil.which(command) is not None


def python() -> str:
    return sys.executable


def print_table(results: list[Result]) -> None:
    headers = (
        "scenario",
        "variant",
        "throughput",
        "p50 ms",
        "p99 ms",
        "vs",
        "ratio",
        "stmts/task",
        "commits/task",
        "target",
        "met",
    )
    rows = [headers]
    for result in results:
        rows.append(
            (
                result.scenario,
                result.variant,
                _number(result.throughput, result.unit),
                _number(result.p50_ms),
                _number(result.p99_ms),
                result.baseline or "",
                _number(result.ratio),
                _number(result.statements),
                _number(result.commits),
                result.target or "",
                "" if result.met is None else ("yes" if result.met else "NO"),
            )
        )
    widths = [max(len(str(row[column])) for row in rows) for column in range(len(headers))]
    for index, row in enumerate(rows):
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)))
        if index == 0:
            print("  ".join("-" * width for width in widths))


def write_json(results: list[Result], path: Path, meta: dict[str, Any]) -> None:
    document = {"meta": meta, "results": [asdict(result) for result in results]}
    path.write_text(json.dumps(document, indent=2) + "\n")


def _number(value: float | None, unit: str = "") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    text = f"{value:,.0f}" if abs(value) >= 100 else f"{value:.2f}"
    return f"{text} {unit}".strip() if unit else text

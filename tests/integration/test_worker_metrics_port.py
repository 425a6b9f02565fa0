"""`taskrunner worker --metrics-port`: a worker serves its own metrics for Prometheus, and
a port it cannot have is one line and an exit status."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Final

import pytest
from prometheus_client.parser import text_string_to_metric_families

from taskrunner.catalog import FlowCatalog
from taskrunner.service import TaskService
from taskrunner.store.database import Database
from taskrunner.store.sql import SqlTaskRepository

ROOT: Final = Path(__file__).resolve().parents[2]
FLOWS: Final = ROOT / "taskrunner" / "flows"
ENTRY: Final = [sys.executable, "-c", "from taskrunner.cli import main; main()"]
HELLO: Final = {"text": "hello", "a": 2, "b": 3}


@pytest.fixture
def database_url(clean_database: Callable[[str], AbstractContextManager[str]]) -> Iterator[str]:
    """PostgreSQL only: `taskrunner worker` needs it."""
    with clean_database("postgresql") as url:
        yield url


def worker_env(database_url: str) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if key != "DATABASE_URL" and not key.startswith("TASKRUNNER_")
    }
    env.update(DATABASE_URL=database_url, TASKRUNNER_FLOWS_DIR=str(FLOWS))
    return env


def finished(url: str) -> float:
    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - our own http URL
        text = response.read().decode()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "taskrunner_tasks_finished_total" and sample.labels == {
                "flow": "echo_add",
                "status": "succeeded",
            }:
                return sample.value
    return 0.0


def test_a_worker_serves_its_metrics(
    database_url: str, database: Database, catalog: FlowCatalog, tmp_path: Path
) -> None:
    process = subprocess.Popen(
        [*ENTRY, "worker", "--concurrency", "1", "--metrics-port", "0"],
        cwd=tmp_path,
        env=worker_env(database_url),
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stderr is not None
        line = ""
        while "metrics on" not in line:
            line = process.stderr.readline()
            assert line, "the worker exited before serving metrics"
        address = line.split("metrics on ", 1)[1].strip()
        assert address.startswith("http://127.0.0.1:")
        assert finished(address) == 0
        TaskService(SqlTaskRepository(database), catalog).enqueue_task("echo_add", HELLO)
        deadline = time.monotonic() + 30
        while finished(address) < 1 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert finished(address) == 1
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=30)
    assert process.returncode == 0


def test_a_metrics_port_in_use_is_one_line_and_exit_1(database_url: str, tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [*ENTRY, "worker", "--metrics-port", str(port)],
            cwd=tmp_path,
            env=worker_env(database_url),
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 1
    assert f"error: cannot serve metrics on 127.0.0.1:{port}" in done.stderr
    assert "Traceback" not in done.stderr

"""A bad flow file on the command line, as a shell runs it: the commands that read or
cancel tasks never load flows; `run-flow` of another flow works and warns in one line per
skipped file; `run-flow` of the bad one is a one-line error. No traceback anywhere."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Final

import pytest

ROOT: Final = Path(__file__).resolve().parents[2]
FLOWS: Final = ROOT / "taskrunner" / "flows"
ENTRY: Final = [sys.executable, "-c", "from taskrunner.cli import main; main()"]
HELLO: Final = ["--text", "hello", "--a", "2", "--b", "3"]
BROKEN: Final = "name: broken\nstart: echo\nstates:\n  echo: {type: task, tool: echo, next: ad}\n"


@pytest.fixture
def flows(tmp_path: Path) -> Path:
    directory = tmp_path / "flows"
    directory.mkdir()
    shutil.copyfile(FLOWS / "echo_add.yaml", directory / "echo_add.yaml")
    (directory / "broken.yaml").write_text(BROKEN)
    return directory


def taskrunner(database_url: str, flows: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if key != "DATABASE_URL" and not key.startswith("TASKRUNNER_")
    }
    env.update(DATABASE_URL=database_url, TASKRUNNER_FLOWS_DIR=str(flows))
    return subprocess.run(
        [*ENTRY, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )


def lines(stderr: str, prefix: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith(prefix)]


def test_run_flow_of_another_flow_works_and_warns_once(database_url: str, flows: Path) -> None:
    done = taskrunner(database_url, flows, "run-flow", *HELLO)
    assert done.returncode == 0, done.stderr
    assert "succeeded" in done.stdout
    assert "Traceback" not in done.stderr
    assert lines(done.stderr, "warning: ") == [
        f"warning: {flows / 'broken.yaml'} has 2 problems; skipped "
        f"(see them with `taskrunner validate-flow {flows / 'broken.yaml'}`)"
    ]


def test_run_flow_of_the_bad_flow_is_one_line_exit_1(database_url: str, flows: Path) -> None:
    done = taskrunner(database_url, flows, "run-flow", "--flow", "broken")
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.splitlines() == [
        "error: the flow 'broken' is not loaded: its file broken.yaml in the flows directory "
        "has 2 problems; `taskrunner validate-flow` on that file (or GET /flows) shows why"
    ]
    shown = taskrunner(database_url, flows, "validate-flow", str(flows / "broken.yaml"))
    assert shown.returncode == 1
    assert len(shown.stdout.splitlines()) == 2  # the 2 problems the warning counts


def test_reading_and_cancelling_need_no_flows(database_url: str, flows: Path) -> None:
    queued = taskrunner(database_url, flows, "run-flow", "--no-wait", *HELLO)
    assert queued.returncode == 0, queued.stderr
    task_id = str(uuid.UUID(queued.stdout.strip()))
    shutil.rmtree(flows)  # not a flow left, not even the directory
    for args in (["list-tasks"], ["get-task", task_id], ["cancel-task", task_id]):
        done = taskrunner(database_url, flows, *args)
        assert done.returncode == 0, (args, done.stderr)
        assert task_id in done.stdout
        assert lines(done.stderr, "warning: ") == lines(done.stderr, "error: ") == []
    cancelled = taskrunner(database_url, flows, "get-task", task_id, "--json")
    assert '"status": "cancelled"' in cancelled.stdout


def test_a_missing_flows_directory_stops_run_flow_in_one_line(
    database_url: str, tmp_path: Path
) -> None:
    done = taskrunner(database_url, tmp_path / "missing", "run-flow", *HELLO)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    [line] = done.stderr.splitlines()
    assert line.startswith("error: the flows directory ")
    assert "does not exist" in line

"""The command line under faults: each error path is one `error:` line and the documented
exit status, never a traceback, and nothing is left without a word: a database path that
cannot be made, a URL that would leak its password, a Ctrl-C during a run."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SLOW_RETRY = ROOT / "tests" / "flows" / "slow" / "slow_retry.yaml"
ENTRY = [sys.executable, "-c", "from taskrunner.cli import main; main()"]
HELLO = ["--text", "hello", "--a", "2", "--b", "3"]


def taskrunner(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, **env}
    environment.pop("TASKRUNNER_DEBUG", None)
    return subprocess.run(
        [*ENTRY, *args], cwd=cwd, env=environment, capture_output=True, text=True, timeout=120
    )


def assert_one_error_line(done: subprocess.CompletedProcess[str], status: int) -> str:
    assert done.returncode == status, done.stderr
    assert "Traceback" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, done.stderr
    return errors[0]


@pytest.mark.parametrize(
    ("path", "status", "said"),
    [
        ("/proc/1/taskrunner.sqlite3", 1, "cannot be made"),
        ("{file}/taskrunner.sqlite3", 1, "cannot be made"),
        ("/tmp/a%00b.sqlite3", 2, "NUL character"),  # noqa: S108 - never made
    ],
    ids=["under-proc", "under-a-file", "nul"],
)
def test_a_sqlite_path_that_cannot_be_made_is_one_line(
    tmp_path: Path, path: str, status: int, said: str
) -> None:
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    url = "sqlite:///" + path.format(file=a_file)
    done = taskrunner("run-flow", *HELLO, cwd=tmp_path, DATABASE_URL=url)
    assert said in assert_one_error_line(done, status)


def test_a_database_url_without_a_scheme_is_not_echoed(tmp_path: Path) -> None:
    done = taskrunner("list-tasks", cwd=tmp_path, DATABASE_URL="admin:s3cret@db.example/tasks")
    line = assert_one_error_line(done, 2)
    assert "needs a scheme" in line
    assert "s3cret" not in done.stderr + done.stdout


def test_ctrl_c_during_a_run_hands_the_task_back_and_says_so(tmp_path: Path) -> None:
    flows = tmp_path / "flows"
    flows.mkdir()
    shutil.copy(SLOW_RETRY, flows)
    database = tmp_path / "taskrunner.sqlite3"
    environment = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{database}",
        "TASKRUNNER_FLOWS_DIR": str(flows),
    }
    run = subprocess.Popen(
        [*ENTRY, "run-flow", "--flow", "slow_retry", "--divisor", "0"],
        cwd=tmp_path,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not _steps(database):
            assert run.poll() is None, run.communicate()
            assert time.monotonic() < deadline, "the run recorded no step"
            time.sleep(0.1)
        run.send_signal(signal.SIGINT)
        _, err = run.communicate(timeout=30)
    finally:
        run.kill()
    assert run.returncode == 130, err
    assert "Traceback" not in err
    (task_id, status, lease_owner) = _task(database)
    assert f"interrupted: task {task_id} goes back to the queue" in err
    assert f"taskrunner cancel-task {task_id}" in err
    assert (status, lease_owner) == ("pending", None)


def _steps(database: Path) -> int:
    if not database.exists():
        return 0
    with sqlite3.connect(database) as connection:
        try:
            (count,) = connection.execute("SELECT count(*) FROM task_steps").fetchone()
        except sqlite3.OperationalError:  # not migrated yet
            return 0
    return int(count)


def _task(database: Path) -> tuple[str, str, str | None]:
    with sqlite3.connect(database) as connection:
        (task_id, status, owner) = connection.execute(
            "SELECT id, status, lease_owner FROM tasks"
        ).fetchone()
    return str(uuid.UUID(str(task_id))), str(status), owner

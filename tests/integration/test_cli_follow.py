"""`get-task ID --follow` and `run-flow --follow`: a task's steps printed as they land,
and the task's outcome as the exit status.

The queued task is run by a real `taskrunner worker` process on PostgreSQL, started only
once the follower is waiting, so that each step is seen to arrive while the task runs.
The follower is a process of its own too, its output read line by line as it comes:
piped, plain lines; on a terminal (a pseudo-terminal here), a progress line rewritten in
place.
"""

from __future__ import annotations

import json
import os
import pty
import re
import select
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FLOWS = ROOT / "taskrunner" / "flows"
PLUGINS = ROOT / "tests" / "plugins"
CLI = [sys.executable, "-c", "from taskrunner.cli import main; main()"]
STEP_LINE = re.compile(r"^\s+(?P<seq>\d+)\s+(?P<state>\w+) \((?P<tool>[\w.]+), attempt \d+\)")

NAPS = """\
name: naps
description: Two naps, then an echo, for following a task as it runs.
input:
  text: {type: string}
  ms: {type: integer}
start: first
states:
  first:
    type: task
    tool: test.nap
    args: {ms: $input.ms, token: $input.text}
    next: second
  second:
    type: task
    tool: test.nap
    args: {ms: $input.ms, token: $input.text}
    next: third
  third:
    type: task
    tool: echo
    args: {text: $input.text}
    next: done
  done:
    type: succeed
    output: {text: $states.third.text}
"""


@pytest.fixture
def flows(tmp_path: Path) -> Path:
    directory = tmp_path / "flows"
    directory.mkdir()
    (directory / "naps.yaml").write_text(NAPS)
    for name in ("echo_add", "safe_divide"):
        (directory / f"{name}.yaml").write_bytes((FLOWS / f"{name}.yaml").read_bytes())
    return directory


@pytest.fixture
def postgres_url(
    clean_database: Callable[[str], AbstractContextManager[str]],
) -> Iterator[str]:
    with clean_database("postgresql") as url:
        yield url


def environment(database_url: str, flows: Path) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("TASKRUNNER_") and key != "DATABASE_URL"
    }
    env.update(
        DATABASE_URL=database_url,
        TASKRUNNER_FLOWS_DIR=str(flows),
        PYTHONPATH=str(PLUGINS),
        TASKRUNNER_POLL_SECONDS="0.2",
    )
    return env


def taskrunner(database_url: str, flows: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args],
        env=environment(database_url, flows),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@dataclass
class Follower:
    """A `taskrunner` process whose stdout is read line by line, each line timed."""

    process: subprocess.Popen[bytes]
    lines: list[tuple[float, str]] = field(default_factory=list)
    raw: list[str] = field(default_factory=list)

    @classmethod
    def start(cls, env: dict[str, str], *args: str) -> Follower:
        process = subprocess.Popen(
            [*CLI, *args],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )  # bytes: text mode would turn a \r, which piped output must not have, into \n
        follower = cls(process)
        threading.Thread(target=follower._read, daemon=True).start()
        return follower

    def _read(self) -> None:
        assert self.process.stdout is not None
        for raw in self.process.stdout:
            line = raw.decode()
            self.raw.append(line)
            self.lines.append((time.monotonic(), line.rstrip("\n")))

    def wait_for(self, pattern: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not any(re.search(pattern, line) for _, line in self.lines):
            if time.monotonic() > deadline or self.process.poll() is not None:
                pytest.fail(f"no line like {pattern!r}: {self.lines!r} {self.stderr()}")
            time.sleep(0.05)

    def finish(self, timeout: float = 60) -> int:
        status = self.process.wait(timeout=timeout)
        time.sleep(0.1)  # the reader thread takes the last lines
        return status

    def stderr(self) -> str:
        if self.process.poll() is None:
            return ""
        assert self.process.stderr is not None
        return self.process.stderr.read().decode()

    def steps(self) -> list[tuple[float, int, str]]:
        found = []
        for at, line in self.lines:
            match = STEP_LINE.match(line)
            if match:
                found.append((at, int(match["seq"]), match["state"]))
        return found


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)


# -- following a queued task as a worker runs it --------------------------------------------


def test_run_flow_follow_prints_each_step_as_it_lands(
    postgres_url: str, flows: Path, processes: list[subprocess.Popen[bytes]]
) -> None:
    env = environment(postgres_url, flows)
    args = ["run-flow", "--flow", "naps", "--text", "hi", "--ms", "700", "--follow"]
    follower = Follower.start(env, *args, "--timeout", "60")
    processes.append(follower.process)
    follower.wait_for(r"^task [0-9a-f-]{36} pending$")
    worker = subprocess.Popen(
        [*CLI, "worker", "--concurrency", "1"],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    processes.append(worker)

    status = follower.finish()
    assert status == 0, (follower.lines, follower.stderr())
    steps = follower.steps()
    assert [(seq, state) for _, seq, state in steps] == [(1, "first"), (2, "second"), (3, "third")]
    # Each nap took 0.7 s: the first step was printed well before the second landed.
    assert steps[1][0] - steps[0][0] > 0.4, steps
    texts = [line for _, line in follower.lines]
    task_id = texts[0].split()[1]
    assert texts[0] == f"task {task_id} pending"
    assert texts.index(f"task {task_id} running") < texts.index(
        next(t for t in texts if "first" in t)
    )
    assert re.fullmatch(rf"task {task_id} succeeded  3 step\(s\)  in \d+\.\d s", texts[-2])
    assert texts[-1] == '  output    {"text": "hi"}'
    assert "\r" not in "".join(follower.raw)
    worker.send_signal(signal.SIGTERM)
    worker.wait(timeout=20)

    again = taskrunner(postgres_url, flows, "get-task", task_id, "--follow")
    assert again.returncode == 0
    assert [int(m["seq"]) for m in map(STEP_LINE.match, again.stdout.splitlines()) if m] == [
        1,
        2,
        3,
    ]


def test_get_task_follow_of_a_queued_task_ends_with_its_failure(
    postgres_url: str, flows: Path, processes: list[subprocess.Popen[bytes]]
) -> None:
    queued = taskrunner(
        postgres_url, flows, "run-flow", "--flow", "safe_divide", "--no-wait",
        "--dividend", "1", "--divisor", "0",
    )  # fmt: skip
    assert queued.returncode == 0, queued.stderr
    task_id = queued.stdout.strip()
    env = environment(postgres_url, flows)
    follower = Follower.start(env, "get-task", task_id, "--follow", "--timeout", "60")
    processes.append(follower.process)
    follower.wait_for(rf"^task {task_id} pending$")
    worker = subprocess.Popen(
        [*CLI, "worker"], env=env, stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    processes.append(worker)
    assert follower.finish() == 1
    assert [seq for _, seq, _ in follower.steps()] == [1, 2, 3]  # the retries, as they came
    texts = [line for _, line in follower.lines]
    assert texts[-2].startswith(f"task {task_id} failed  3 step(s)")
    assert texts[-1].startswith("  error     UndefinedQuotient: ")
    worker.send_signal(signal.SIGTERM)
    worker.wait(timeout=20)


# -- on both backends, with no worker -------------------------------------------------------


def test_follow_of_a_finished_task_prints_it_all_and_exits_with_its_status(
    database_url: str, flows: Path
) -> None:
    done = taskrunner(database_url, flows, "run-flow", "--text", "a", "--a", "1", "--b", "2")
    assert done.returncode == 0, done.stderr
    task_id = done.stdout.split()[1]
    followed = taskrunner(database_url, flows, "get-task", task_id, "--follow")
    assert followed.returncode == 0
    lines = followed.stdout.splitlines()
    assert [STEP_LINE.match(line)["state"] for line in lines[:2]] == ["echo", "add"]  # type: ignore[index]
    assert lines[2].startswith(f"task {task_id} succeeded  2 step(s)  in ")
    assert json.loads(lines[3].split(None, 1)[1]) == {"text": "a", "sum": 3}

    as_json = taskrunner(database_url, flows, "get-task", task_id, "--follow", "--json")
    assert as_json.returncode == 0
    assert json.loads(as_json.stdout)["status"] == "succeeded"

    failed = taskrunner(
        database_url, flows, "run-flow", "--flow", "safe_divide", "--dividend", "1",
        "--divisor", "0", "--json",
    )  # fmt: skip
    failed_id = json.loads(failed.stdout)["id"]
    followed = taskrunner(database_url, flows, "get-task", failed_id, "--follow")
    assert followed.returncode == 1
    assert "UndefinedQuotient" in followed.stdout


def test_follow_of_a_cancelled_task_exits_1(database_url: str, flows: Path) -> None:
    queued = taskrunner(
        database_url, flows, "run-flow", "--no-wait", *["--text", "a", "--a", "1", "--b", "2"]
    )
    task_id = queued.stdout.strip()
    assert taskrunner(database_url, flows, "cancel-task", task_id).returncode == 0
    followed = taskrunner(database_url, flows, "get-task", task_id, "--follow")
    assert followed.returncode == 1
    assert f"task {task_id} cancelled  0 step(s)" in followed.stdout


def test_a_timeout_exits_75_and_leaves_the_task_queued(database_url: str, flows: Path) -> None:
    started = time.monotonic()
    followed = taskrunner(
        database_url,
        flows,
        "run-flow",
        "--follow",
        "--timeout",
        "1",
        *["--text", "a", "--a", "1", "--b", "2"],
    )
    assert followed.returncode == 75, followed.stderr
    assert 1 <= time.monotonic() - started < 30
    task_id = followed.stdout.split()[1]
    assert followed.stdout == f"task {task_id} pending\n"
    assert "the task has not finished (pending) after 1." in followed.stderr
    shown = taskrunner(database_url, flows, "get-task", task_id, "--json")
    assert json.loads(shown.stdout)["status"] == "pending"


def test_ctrl_c_exits_130_and_leaves_the_task_queued(database_url: str, flows: Path) -> None:
    queued = taskrunner(
        database_url, flows, "run-flow", "--no-wait", *["--text", "a", "--a", "1", "--b", "2"]
    )
    task_id = queued.stdout.strip()
    follower = Follower.start(environment(database_url, flows), "get-task", task_id, "--follow")
    try:
        follower.wait_for(rf"^task {task_id} pending$")
        follower.process.send_signal(signal.SIGINT)
        assert follower.finish(timeout=20) == 130
    finally:
        if follower.process.poll() is None:
            follower.process.kill()
    err = follower.stderr()
    assert f"interrupted: task {task_id} goes on" in err
    assert "Traceback" not in err
    shown = taskrunner(database_url, flows, "get-task", task_id, "--json")
    assert json.loads(shown.stdout)["status"] == "pending"


def test_follow_of_an_unknown_task_is_the_usual_error(database_url: str, flows: Path) -> None:
    unknown = str(uuid.uuid4())
    followed = taskrunner(database_url, flows, "get-task", unknown, "--follow")
    assert (followed.returncode, followed.stdout) == (1, "")
    assert f"error: no task with id {unknown}" in followed.stderr
    malformed = taskrunner(database_url, flows, "get-task", "nope", "--follow")
    assert malformed.returncode == 2


def test_timeout_without_follow_is_a_usage_error(database_url: str, flows: Path) -> None:
    refused = taskrunner(database_url, flows, "get-task", str(uuid.uuid4()), "--timeout", "1")
    assert refused.returncode == 2
    assert "error: --timeout bounds --follow; give --follow too" in refused.stderr


def test_on_a_terminal_one_progress_line_is_rewritten(database_url: str, flows: Path) -> None:
    queued = taskrunner(
        database_url, flows, "run-flow", "--no-wait", *["--text", "a", "--a", "1", "--b", "2"]
    )
    task_id = queued.stdout.strip()
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [*CLI, "get-task", task_id, "--follow", "--timeout", "1.2"],
        env=environment(database_url, flows),
        stdin=subprocess.DEVNULL,
        stdout=follower,
        stderr=subprocess.PIPE,
    )
    os.close(follower)
    seen = b""
    try:
        while True:
            ready, _, _ = select.select([leader], [], [], 30)
            if not ready:
                break
            try:
                chunk = os.read(leader, 4096)
            except OSError:  # the terminal closed: the process is gone
                break
            if not chunk:
                break
            seen += chunk
        assert process.wait(timeout=30) == 75
    finally:
        os.close(leader)
        if process.poll() is None:
            process.kill()
    text = seen.decode()
    assert text.startswith(f"task {task_id}\r\n")
    rewritten = text.count("\r\x1b[Kpending")
    assert rewritten >= 3, text  # polled every 0.25 s for 1.2 s, each time in place
    assert text.count("\n") == 1  # the progress line never scrolls
    assert re.search(r"\r\x1b\[Kpending  at echo  0 step\(s\)  1\.\d s", text), text
    assert text.endswith("\r\x1b[K")  # and it is wiped before the last word

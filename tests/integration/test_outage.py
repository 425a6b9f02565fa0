"""The service under database faults, as an operator meets them: a PostgreSQL server of the
tests' own (`tests/pgserver.py`, never the shared one) restarted fast, restarted
immediately, and frozen (SIGSTOP) past every timeout, while a real `taskrunner serve
--no-worker` and two `taskrunner worker` processes serve a steady stream of clients.

Every timeout is short (set through the environment, as an operator would), so that a
fault outlasts them all within seconds. What must hold: no 5xx but 503, each with
`Retry-After`; every answer in bounded time; `/healthz` answering throughout; every task
a client was told of ends exactly once, with its two steps; every stored task is one the
client knows of (a 503 for a stored task names it in `Location`); readiness says the
outage and comes back; the logs hold no traceback, no SQL parameters, and no flood.

Then starvation: synchronous runs waiting out long retry delays in the API, and requests
waiting on a frozen database, must not slow `/healthz` past 100 ms, nor stop the endpoints
that need no database.

Marked `outage` (about a minute and a half): `-m 'not outage'` leaves it out.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx2 as httpx
import pytest
from pgserver import PrivatePostgres, free_port
from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import make_url

from taskrunner.settings import normalize_database_url
from taskrunner.store.tables import TaskRow, TaskStepRow

pytestmark = pytest.mark.outage

ROOT = Path(__file__).resolve().parents[2]
FLOWS = ROOT / "taskrunner" / "flows"
CLI = "from taskrunner.cli import main; main()"

TIMEOUTS = {
    "TASKRUNNER_REQUEST_TIMEOUT_SECONDS": "2",
    "TASKRUNNER_DB_STATEMENT_TIMEOUT_SECONDS": "3",
    "TASKRUNNER_DB_CONNECT_TIMEOUT_SECONDS": "2",
    "TASKRUNNER_DB_POOL_TIMEOUT_SECONDS": "2",
    "TASKRUNNER_DB_LOCK_TIMEOUT_SECONDS": "2",
    "TASKRUNNER_SYNC_WAIT_SECONDS": "5",
    "TASKRUNNER_LEASE_SECONDS": "3",
    "TASKRUNNER_POLL_SECONDS": "0.2",
    "TASKRUNNER_FLOWS_RELOAD_SECONDS": "0",
    # The lines counted here are the warnings and errors of the outage, not the log of
    # every task's steps (INFO) that the load writes.
    "TASKRUNNER_LOG_LEVEL": "WARNING",
}
ECHO_ADD_OPTIONS = ("--text", "a", "--a", "1", "--b", "2")
LONGEST_ANSWER = 2 + 5 + 4.0
"""No answer may take longer: the request timeout, plus the synchronous wait (a
synchronous run is given both), plus a margin for a loaded machine."""
PAUSE_SECONDS = 9.0
"""Longer than every timeout above, the synchronous wait and the request's together."""


def report(message: str) -> None:
    """Figures worth seeing even when the test passes (`pytest -s` shows them)."""
    print(f"\n[test_outage] {message}", file=sys.stderr)  # noqa: T201


# -- the server, its database, the processes ---------------------------------------------


@pytest.fixture(scope="module")
def private_postgres() -> Iterator[PrivatePostgres]:
    server = PrivatePostgres()
    try:
        server.start()
        yield server
    finally:
        server.destroy()


@contextmanager
def new_database(server: PrivatePostgres) -> Iterator[str]:
    """A database of its own on the private server; its URL."""
    name = f"outage_{uuid.uuid4().hex[:12]}"
    admin = create_engine(normalize_database_url(server.url), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        yield (
            make_url(normalize_database_url(server.url))
            .set(database=name)
            .render_as_string(hide_password=False)
        )
    finally:
        admin.dispose()


@dataclass
class Process:
    """A taskrunner process, its stdout and stderr kept in files."""

    name: str
    popen: subprocess.Popen[bytes]
    stdout: Path
    stderr: Path

    def errors(self) -> list[str]:
        return self.stderr.read_text(errors="replace").splitlines()

    def output(self) -> str:
        return self.stdout.read_text(errors="replace") + self.stderr.read_text(errors="replace")


@contextmanager
def processes(
    tmp_path: Path,
    database_url: str,
    flows: Path,
    commands: dict[str, list[str]],
    **settings: str,
) -> Iterator[dict[str, Process]]:
    """Start each command (in order: the first is the API, waited for before the rest, so
    that it alone migrates the database), and stop them all with SIGTERM afterwards."""
    env = {
        **os.environ,
        **TIMEOUTS,
        **settings,
        "DATABASE_URL": database_url,
        "TASKRUNNER_FLOWS_DIR": str(flows),
    }
    env.pop("TASKRUNNER_DEBUG", None)
    started: dict[str, Process] = {}
    try:
        for name, command in commands.items():
            out, err = tmp_path / f"{name}.out", tmp_path / f"{name}.err"
            with out.open("wb") as stdout, err.open("wb") as stderr:
                popen = subprocess.Popen(
                    [sys.executable, "-c", CLI, *command],
                    cwd=ROOT,
                    env=env,
                    stdout=stdout,
                    stderr=stderr,
                )
            started[name] = Process(name, popen, out, err)
            # Faults start once every process is up: a process that cannot reach its
            # database while it starts stops there, which is not what is tested here.
            if command[0] == "serve":
                wait_until_up(started[name], command[command.index("--port") + 1])
            else:
                wait_until_running(started[name])
        yield started
    finally:
        for process in started.values():
            process.popen.terminate()
        for process in started.values():
            try:
                process.popen.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.popen.kill()
                process.popen.wait()


def wait_until_up(process: Process, port: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.popen.poll() is not None:
            break
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    pytest.fail(f"{process.name} did not start:\n{process.output()}")


def wait_until_running(process: Process) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.popen.poll() is None:
        if "running" in process.stderr.read_text(errors="replace"):
            return
        time.sleep(0.1)
    pytest.fail(f"{process.name} did not start:\n{process.output()}")


def serve_command(port: int, *extra: str) -> list[str]:
    return ["serve", "--port", str(port), *extra]


# -- the clients -------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    kind: str
    status: int
    seconds: float
    headers: dict[str, str]
    task_id: str | None = None
    problem: str | None = None


@dataclass
class Traffic:
    """Client threads sending requests until stopped, and every answer they got."""

    base: str
    answers: list[Answer] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def send(self, client: httpx.Client, kind: str, method: str, path: str, **kw: object) -> Answer:
        began = time.monotonic()
        try:
            response = client.request(method, self.base + path, **kw)  # type: ignore[arg-type]
        except httpx.HTTPError as exc:
            with self._lock:
                self.failures.append(f"{kind} {method} {path}: {type(exc).__name__}: {exc}")
            return Answer(kind, 0, time.monotonic() - began, {})
        seconds = time.monotonic() - began
        task_id = problem = None
        if kind.startswith("post") and response.status_code in (200, 201, 202):
            task_id = str(response.json()["id"])
        elif response.status_code >= 400:
            problem = str(response.json().get("type"))
        answer = Answer(
            kind, response.status_code, seconds, dict(response.headers), task_id, problem
        )
        with self._lock:
            self.answers.append(answer)
        return answer

    def loop(self, body: Callable[[httpx.Client], None], pause: float) -> None:
        with httpx.Client(timeout=httpx.Timeout(LONGEST_ANSWER + 10)) as client:
            while not self.stop.is_set():
                body(client)
                self.stop.wait(pause)

    def of(self, *kinds: str) -> list[Answer]:
        with self._lock:
            return [answer for answer in self.answers if answer.kind in kinds]


def echo_add_body() -> dict[str, object]:
    return {"text": f"outage-{uuid.uuid4().hex[:8]}", "a": 2, "b": 3}


def start_outage_traffic(traffic: Traffic) -> list[threading.Thread]:
    told: list[str] = []

    def post_async(client: httpx.Client) -> None:
        answer = traffic.send(
            client,
            "post-async",
            "POST",
            "/tasks",
            json=echo_add_body(),
            headers={"Prefer": "respond-async"},
        )
        if answer.task_id:
            told.append(answer.task_id)

    def post_sync(client: httpx.Client) -> None:
        answer = traffic.send(client, "post-sync", "POST", "/tasks", json=echo_add_body())
        if answer.task_id:
            told.append(answer.task_id)

    def read(client: httpx.Client) -> None:
        if told:
            traffic.send(client, "get-task", "GET", f"/tasks/{told[-1]}")
        traffic.send(client, "list-tasks", "GET", "/tasks?limit=5")

    def probe(client: httpx.Client) -> None:
        traffic.send(client, "healthz", "GET", "/healthz")

    def ready(client: httpx.Client) -> None:
        traffic.send(client, "readyz", "GET", "/readyz")

    loops = [
        (post_async, 0.05),
        (post_async, 0.05),
        (post_sync, 0.05),
        (post_sync, 0.05),
        (read, 0.1),
        (probe, 0.05),
        (ready, 0.25),
    ]
    threads = [
        threading.Thread(target=traffic.loop, args=(body, pause), daemon=True)
        for body, pause in loops
    ]
    for thread in threads:
        thread.start()
    return threads


# -- checking the database ---------------------------------------------------------------


def stored_tasks(database_url: str) -> tuple[dict[str, TaskRow], dict[str, list[TaskStepRow]]]:
    engine = create_engine(normalize_database_url(database_url))
    try:
        with engine.connect() as connection:
            tasks = {str(row.id): row for row in connection.execute(select(TaskRow))}
            steps: dict[str, list[TaskStepRow]] = {}
            query = select(TaskStepRow).order_by(TaskStepRow.task_id, TaskStepRow.seq)
            for step in connection.execute(query):
                steps.setdefault(str(step.task_id), []).append(step)
    finally:
        engine.dispose()
    return tasks, steps


def wait_for_quiet(database_url: str, seconds: float) -> dict[str, TaskRow]:
    """The tasks once none is pending or running (or as they are at the deadline)."""
    deadline = time.monotonic() + seconds
    while True:
        tasks, _ = stored_tasks(database_url)
        active = [task for task in tasks.values() if task.status in ("pending", "running")]
        if not active or time.monotonic() > deadline:
            return tasks
        time.sleep(0.5)


def assert_clean_logs(process: Process) -> None:
    text_ = process.output()
    assert "Traceback" not in text_, f"{process.name}:\n{text_[-4000:]}"
    assert "[parameters:" not in text_, f"{process.name}:\n{text_[-4000:]}"


# -- the outage suite --------------------------------------------------------------------


def test_restarts_and_a_frozen_database_lose_nothing_and_answer_503(
    private_postgres: PrivatePostgres, tmp_path: Path
) -> None:
    port = free_port()
    with (
        new_database(private_postgres) as database_url,
        processes(
            tmp_path,
            database_url,
            FLOWS,
            {
                "serve": serve_command(port, "--no-worker"),
                "worker-1": ["worker", "--concurrency", "4"],
                "worker-2": ["worker", "--concurrency", "4"],
            },
        ) as running,
    ):
        traffic = Traffic(f"http://127.0.0.1:{port}")
        threads = start_outage_traffic(traffic)
        time.sleep(3)
        private_postgres.restart("fast")
        time.sleep(4)
        private_postgres.restart("immediate")
        time.sleep(4)
        ready_before_pause = len(traffic.of("readyz"))
        private_postgres.pause()
        try:
            time.sleep(PAUSE_SECONDS)
        finally:
            private_postgres.resume()
        ready_during_pause = traffic.of("readyz")[ready_before_pause:]
        time.sleep(6)
        traffic.stop.set()
        for thread in threads:
            thread.join(LONGEST_ANSWER + 15)
        tasks = wait_for_quiet(database_url, 60)
        _, steps = stored_tasks(database_url)
        ready_after = httpx.get(traffic.base + "/readyz", timeout=5)
        # Every process lived through the faults.
        exited = {name: p.popen.poll() for name, p in running.items() if p.popen.poll() is not None}
        assert exited == {}, {name: running[name].output()[-2000:] for name in exited}

    answers = traffic.answers
    by_status = Counter((answer.kind, answer.status) for answer in answers)
    slowest = max(answers, key=lambda answer: answer.seconds)
    slowest_probe = max(answer.seconds for answer in traffic.of("healthz"))
    report(
        f"{len(answers)} answers, {len(tasks)} tasks stored; slowest answer "
        f"{slowest.seconds:.2f} s ({slowest.kind}), slowest /healthz {slowest_probe * 1000:.0f} ms"
    )
    report(f"answers: {sorted(by_status.items())}")

    # Every request was answered, in bounded time, and no 5xx but 503 (with Retry-After).
    assert traffic.failures == []
    assert not [a for a in answers if a.status >= 500 and a.status != 503]
    assert all("retry-after" in a.headers for a in answers if a.status == 503)
    assert slowest.seconds < LONGEST_ANSWER, slowest
    # The outage was seen: there were 503s, and readiness said so while frozen.
    assert any(a.status == 503 for a in answers)
    assert any(a.status == 503 for a in ready_during_pause), ready_during_pause
    assert ready_after.status_code == 200

    # /healthz answered throughout, fast, and never anything but 200.
    probes = traffic.of("healthz")
    assert {a.status for a in probes} == {200}
    assert slowest_probe < 1.0
    assert len(probes) > 100

    # Every task the client was told of (201/202) ended once, with its two steps; and so
    # did every task stored, since a stored task a client was not told of is named by the
    # Location of its 503.
    told = {a.task_id for a in answers if a.task_id is not None and a.status in (201, 202)}
    located = {
        a.headers["location"].rsplit("/", 1)[-1]
        for a in answers
        if a.status == 503 and "location" in a.headers
    }
    assert told, "no task was started"
    assert told <= tasks.keys()
    assert tasks.keys() <= told | located, tasks.keys() - told - located
    for task_id, task in tasks.items():
        assert task.status == "succeeded", (task_id, task.status, task.error_message)
        assert task.output == {"text": task.input["text"], "sum": 5}
        assert [(s.seq, s.state, s.status) for s in steps[task_id]] == [
            (1, "echo", "succeeded"),
            (2, "add", "succeeded"),
        ]

    # No traceback, no SQL parameters, and few lines: one per failed request, a few per
    # outage and loop, not a flood.
    failed_requests = sum(1 for a in answers if a.status == 503)
    for process in running.values():
        assert_clean_logs(process)
    serve_lines = len(running["serve"].errors())
    worker_lines = [len(running[name].errors()) for name in ("worker-1", "worker-2")]
    report(f"stderr lines: serve {serve_lines} ({failed_requests} 503s), workers {worker_lines}")
    assert serve_lines <= failed_requests + 30
    assert all(lines <= 60 for lines in worker_lines), worker_lines


# -- starvation ----------------------------------------------------------------------------

ALWAYS_FAILS = """\
name: always_fails
description: Divide by zero three times, three seconds apart, then fail.
input:
  dividend:
    type: number
start: divide
states:
  divide:
    type: task
    tool: divide
    args:
      dividend: $input.dividend
      divisor: 0
    retry:
      max_attempts: 3
      interval_seconds: 3
      backoff_rate: 1
      errors: [DivisionByZero]
    next: done
  done:
    type: succeed
    output:
      quotient: $states.divide.quotient
"""
SYNCHRONOUS_RUNS = 40
WAITING_READS = 20
PROBES = 50


def test_runs_waiting_out_delays_and_a_frozen_database_do_not_starve_healthz(
    private_postgres: PrivatePostgres, tmp_path: Path
) -> None:
    flows = tmp_path / "flows"
    flows.mkdir()
    (flows / "always_fails.yaml").write_text(ALWAYS_FAILS)
    shutil.copy(FLOWS / "echo_add.yaml", flows / "echo_add.yaml")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    # The synchronous wait outlasts the two delays, so each run waits them out in the API.
    with (
        new_database(private_postgres) as database_url,
        processes(
            tmp_path,
            database_url,
            flows,
            {"serve": serve_command(port)},
            TASKRUNNER_SYNC_WAIT_SECONDS="10",
        ) as running,
        ThreadPoolExecutor(SYNCHRONOUS_RUNS + WAITING_READS) as pool,
    ):
        traffic = Traffic(base)

        def run(client_number: int) -> Answer:
            with httpx.Client(timeout=30) as client:
                body = {"flow": "always_fails", "input": {"dividend": client_number}}
                return traffic.send(client, "post-sync", "POST", "/tasks", json=body)

        def read(_: int) -> Answer:
            with httpx.Client(timeout=30) as client:
                return traffic.send(client, "list-tasks", "GET", "/tasks?limit=5")

        runs = [pool.submit(run, n) for n in range(SYNCHRONOUS_RUNS)]
        # Once every run has made its first attempt, each waits out a delay in the API.
        deadline = time.monotonic() + 30
        while sum(t.step_count >= 1 for t in stored_tasks(database_url)[0].values()) < len(runs):
            assert time.monotonic() < deadline, "the runs did not start"
            time.sleep(0.1)
        private_postgres.pause()
        try:
            reads = [pool.submit(read, n) for n in range(WAITING_READS)]
            probes, others = [], []
            with httpx.Client(timeout=5) as client:
                source = (FLOWS / "echo_add.yaml").read_bytes()
                for n in range(PROBES):
                    probes.append(traffic.send(client, "healthz", "GET", "/healthz"))
                    if n % 5 == 0:
                        others.append(traffic.send(client, "flows", "GET", "/flows"))
                        others.append(
                            traffic.send(
                                client,
                                "validate",
                                "POST",
                                "/flows/validate",
                                content=source,
                                headers={"content-type": "application/yaml"},
                            )
                        )
                    time.sleep(0.1)
        finally:
            private_postgres.resume()
        answered = [future.result() for future in runs + reads]
        tasks = wait_for_quiet(database_url, 60)
        _, steps = stored_tasks(database_url)
        assert running["serve"].popen.poll() is None

    slowest_probe = max(answer.seconds for answer in probes)
    report(
        f"starvation: slowest /healthz {slowest_probe * 1000:.0f} ms over {len(probes)} "
        f"probes; /flows and /flows/validate at most "
        f"{max(a.seconds for a in others) * 1000:.0f} ms; answers "
        f"{sorted(Counter((a.kind, a.status) for a in answered).items())}"
    )
    assert traffic.failures == []
    assert [a.status for a in probes] == [200] * PROBES
    assert slowest_probe < 0.1
    assert {a.status for a in others} == {200}
    assert max(a.seconds for a in others) < 1.0
    # The runs really waited in the API (a delay is 3 s), and the reads on the database:
    # each got an answer in bounded time, and no 5xx but 503.
    assert min(a.seconds for a in answered if a.kind == "post-sync") > 2.5
    assert {a.status for a in answered} <= {201, 202, 503}
    assert any(a.status == 503 for a in answered if a.kind == "list-tasks")
    assert max(a.seconds for a in answered) < 10 + 2 + 4
    # And each task ended as its flow says: failed after three attempts.
    assert len(tasks) == SYNCHRONOUS_RUNS
    for task_id, task in tasks.items():
        assert (task.status, task.error_kind) == ("failed", "DivisionByZero"), task_id
        assert [s.attempt for s in steps[task_id]] == [1, 2, 3]


def test_a_worker_started_while_the_database_is_down_waits_for_it(tmp_path: Path) -> None:
    server = PrivatePostgres()
    try:
        url = normalize_database_url(server.url)
        env = {**os.environ, **TIMEOUTS, "DATABASE_URL": url, "TASKRUNNER_FLOWS_DIR": str(FLOWS)}
        err = tmp_path / "worker.err"
        with err.open("wb") as stderr:
            worker = subprocess.Popen(
                [sys.executable, "-c", CLI, "worker", "--concurrency", "1"],
                cwd=ROOT,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
            )
        try:
            deadline = time.monotonic() + 60
            while "waiting for the database" not in err.read_text():
                assert worker.poll() is None, err.read_text()
                assert time.monotonic() < deadline, err.read_text()
                time.sleep(0.1)
            time.sleep(3)  # a few more tries, each said nowhere
            assert worker.poll() is None, err.read_text()
            server.start()
            process = Process("worker", worker, tmp_path / "none", err)
            wait_until_running(process)
            queued = subprocess.run(
                [sys.executable, "-c", CLI, "run-flow", "--no-wait", *ECHO_ADD_OPTIONS],
                cwd=ROOT,
                env=env,
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert queued.returncode == 0, queued.stderr
            task_id = queued.stdout.strip().splitlines()[-1]
            deadline = time.monotonic() + 30
            while status_of(url, task_id) != "succeeded":
                assert time.monotonic() < deadline, err.read_text()
                time.sleep(0.2)
        finally:
            worker.terminate()
            worker.wait(timeout=30)
        lines = err.read_text().splitlines()
        assert sum("waiting for the database" in line for line in lines) == 1, lines
        assert not any("Traceback" in line for line in lines), lines
    finally:
        server.destroy()


def status_of(database_url: str, task_id: str) -> str | None:
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            status: str | None = connection.execute(
                select(TaskRow.status).where(TaskRow.id == uuid.UUID(task_id))
            ).scalar_one_or_none()
            return status
    finally:
        engine.dispose()

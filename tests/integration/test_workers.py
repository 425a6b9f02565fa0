"""Workers as real, separate processes sharing one PostgreSQL database (`taskrunner worker`),
the way they are deployed: many at once, killed at random, stopped with SIGTERM, racing
cancels and idempotent starts.

Each test gets a fresh database cloned from the migrated template. Tasks are queued from
this process through a `TaskService` on the flows of `tests/flows/queued` (with the test
tools of `tests/plugins`), or over HTTP against a real `taskrunner serve --no-worker`.
The slow tool `test.nap` logs each call's start and end (TASKRUNNER_TEST_NAP_LOG), so the
tests can see which process ran what, and when, even for calls that were never recorded.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from math import inf
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, func, select, text
from sqlalchemy.engine import make_url

from taskrunner.catalog import FlowCatalog
from taskrunner.engine.validate import FlowChecker
from taskrunner.service import TaskFinishedError, TaskService
from taskrunner.settings import normalize_database_url
from taskrunner.store.database import Database
from taskrunner.store.sql import SqlTaskRepository
from taskrunner.store.tables import TaskRow, TaskStepRow
from taskrunner.tools import load_registry

ROOT = Path(__file__).resolve().parents[2]
QUEUED_FLOWS = ROOT / "tests" / "flows" / "queued"
PLUGINS = ROOT / "tests" / "plugins"
CLI = "from taskrunner.cli import main; main()"
POSTGRES_URL = normalize_database_url(
    os.environ.get("TASKRUNNER_TEST_POSTGRES_URL")
    or "postgresql://postgres@127.0.0.1:5432/postgres"
)
SLOW_STATES = [("nap", "test.nap"), ("echo", "echo"), ("add", "add")]
FAST_STATES = [("echo", "echo"), ("add", "add")]


def report(message: str) -> None:
    """Numbers worth seeing even when the test passes (`pytest -s` shows them)."""
    print(f"\n[test_workers] {message}", file=sys.stderr)  # noqa: T201


# -- databases ----------------------------------------------------------------------------


def _admin_execute(*statements: str) -> None:
    engine = create_engine(make_url(POSTGRES_URL), isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            for statement in statements:
                connection.execute(text(statement))
    finally:
        engine.dispose()


@pytest.fixture
def pg_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh PostgreSQL database for this test, cloned from the migrated template."""
    template = request.getfixturevalue("postgres_template")
    name = f"taskrunner_test_{uuid.uuid4().hex[:16]}"
    _admin_execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    try:
        yield make_url(POSTGRES_URL).set(database=name).render_as_string(False)
    finally:
        _admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def engine(pg_url: str) -> Iterator[Engine]:
    found = create_engine(pg_url)
    yield found
    found.dispose()


@pytest.fixture
def queue(pg_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[TaskService]:
    """The task service of this process, on the queued flows and the test tools."""
    monkeypatch.syspath_prepend(str(PLUGINS))
    checker = FlowChecker(load_registry())
    catalog = FlowCatalog.load(QUEUED_FLOWS, checker)
    database = Database(pg_url)
    service = TaskService(SqlTaskRepository(database), catalog, wait=lambda _event, _seconds: False)
    yield service
    service.close()
    database.dispose()


# -- processes ----------------------------------------------------------------------------


@dataclass
class Fleet:
    """The taskrunner processes of one test; whatever is still alive is killed at the end."""

    database_url: str
    directory: Path
    nap_log: Path
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    outputs: dict[int, Path] = field(default_factory=dict)

    def env(self, lease_seconds: float) -> dict[str, str]:
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith("TASKRUNNER_") and key != "DATABASE_URL"
        }
        env.update(
            DATABASE_URL=self.database_url,
            TASKRUNNER_FLOWS_DIR=str(QUEUED_FLOWS),
            PYTHONPATH=str(PLUGINS),
            TASKRUNNER_LEASE_SECONDS=str(lease_seconds),
            TASKRUNNER_POLL_SECONDS="0.2",
            TASKRUNNER_AUTO_MIGRATE="0",
            TASKRUNNER_TEST_NAP_LOG=str(self.nap_log),
        )
        return env

    def _start(self, args: list[str], lease_seconds: float) -> subprocess.Popen[bytes]:
        output = self.directory / f"process-{len(self.processes)}.log"
        with output.open("wb") as handle:
            process = subprocess.Popen(
                [sys.executable, "-c", CLI, *args],
                cwd=ROOT,
                env=self.env(lease_seconds),
                stdin=subprocess.DEVNULL,
                stdout=handle,
                stderr=subprocess.STDOUT,
            )
        self.processes.append(process)
        self.outputs[process.pid] = output
        return process

    def worker(self, *, concurrency: int = 4, lease_seconds: float = 2) -> subprocess.Popen[bytes]:
        return self._start(["worker", "--concurrency", str(concurrency)], lease_seconds)

    def server(self, port: int, *, lease_seconds: float = 2) -> subprocess.Popen[bytes]:
        args = ["serve", "--no-worker", "--host", "127.0.0.1", "--port", str(port)]
        return self._start(args, lease_seconds)

    def output(self, process: subprocess.Popen[bytes]) -> str:
        return self.outputs[process.pid].read_text(errors="replace")

    def wait_ready(self, *processes: subprocess.Popen[bytes], timeout: float = 30) -> None:
        """Wait until each worker says it is running."""
        deadline = time.monotonic() + timeout
        for process in processes:
            while " running" not in self.output(process):
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"worker {process.pid} did not start:\n{self.output(process)}")
                time.sleep(0.05)

    def kill(self, process: subprocess.Popen[bytes]) -> None:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)

    def stop(
        self,
        *processes: subprocess.Popen[bytes],
        timeout: float = 20,
        statuses: tuple[int, ...] = (0,),
    ) -> None:
        """SIGTERM, then each must drain and exit with status 0 (or one of `statuses`)."""
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                status = process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                pytest.fail(
                    f"process {process.pid} did not stop within {timeout} s of SIGTERM:\n"
                    f"{self.output(process)}"
                )
            assert status in statuses, (
                f"process {process.pid} exited {status}:\n{self.output(process)}"
            )

    def assert_clean(self, *, lost_leases: bool = False) -> None:
        """No process printed a traceback; none lost a lease (two workers on one task),
        unless `lost_leases` (a lease may run out on a machine overloaded on purpose)."""
        for process in self.processes:
            output = self.output(process)
            assert "Traceback" not in output, f"process {process.pid}:\n{output}"
            if not lost_leases:
                assert "lost the lease" not in output, f"process {process.pid}:\n{output}"

    def close(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.kill()
        for process in self.processes:
            process.wait()


@pytest.fixture
def fleet(pg_url: str, tmp_path: Path) -> Iterator[Fleet]:
    found = Fleet(pg_url, tmp_path, tmp_path / "nap.log")
    try:
        yield found
    finally:
        found.close()


# -- reading the outcome ------------------------------------------------------------------


def wait_until(check: Callable[[], bool], timeout: float, what: Callable[[], str]) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what()}")
        time.sleep(0.1)


def status_counts(engine: Engine) -> Counter[str]:
    with engine.connect() as connection:
        rows = connection.execute(
            select(TaskRow.status, func.count()).group_by(TaskRow.status)
        ).all()
    return Counter(dict(rows))


def wait_quiet(engine: Engine, total: int, timeout: float) -> None:
    """Wait until all `total` tasks have finished (none pending or running)."""

    def quiet() -> bool:
        counts = status_counts(engine)
        return counts.total() == total and not counts["pending"] and not counts["running"]

    wait_until(
        quiet, timeout, lambda: f"{total} tasks to finish; now {dict(status_counts(engine))}"
    )


def load_tasks(engine: Engine) -> tuple[dict[uuid.UUID, Any], dict[uuid.UUID, list[Any]]]:
    with engine.connect() as connection:
        tasks = {row.id: row for row in connection.execute(select(TaskRow)).all()}
        steps: dict[uuid.UUID, list[Any]] = defaultdict(list)
        for row in connection.execute(
            select(TaskStepRow).order_by(TaskStepRow.task_id, TaskStepRow.seq)
        ).all():
            steps[row.task_id].append(row)
    return tasks, steps


def step_shape(steps: list[Any]) -> list[tuple[int, str, str, int, str]]:
    return [(step.seq, step.state, step.tool, step.attempt, step.status) for step in steps]


def expected_shape(states: list[tuple[str, str]]) -> list[tuple[int, str, str, int, str]]:
    return [(seq, state, tool, 1, "succeeded") for seq, (state, tool) in enumerate(states, 1)]


def assert_all_succeeded(engine: Engine, states: list[tuple[str, str]]) -> int:
    """Every task succeeded once, with each step of `states` recorded once, attempt 1, and
    the right outputs; no lease is left behind. Returns the number of step rows."""
    tasks, steps = load_tasks(engine)
    wrong: list[str] = []
    for task_id, task in tasks.items():
        data = task.input
        total = data["a"] + data["b"]
        recorded = steps.get(task_id, [])
        outputs = {step.state: step.output for step in recorded}
        problems = []
        if task.status != "succeeded":
            problems.append(f"status {task.status} ({task.error_kind}: {task.error_message})")
        if step_shape(recorded) != expected_shape(states):
            problems.append(f"steps {step_shape(recorded)}")
        if task.output != {"text": data["text"], "sum": total}:
            problems.append(f"output {task.output}")
        if outputs.get("echo") != {"text": data["text"]} or outputs.get("add") != {"sum": total}:
            problems.append(f"step outputs {outputs}")
        if "nap" in outputs and outputs["nap"] != {"token": data["text"]}:
            problems.append(f"nap output {outputs['nap']}")
        if task.step_count != len(states):
            problems.append(f"step_count {task.step_count}")
        if task.lease_owner is not None or task.lease_expires_at is not None:
            problems.append(f"lease left: {task.lease_owner} until {task.lease_expires_at}")
        if problems:
            wrong.append(f"{task_id} {data['text']}: {'; '.join(problems)}")
    assert not wrong, f"{len(wrong)} of {len(tasks)} tasks are wrong:\n" + "\n".join(wrong[:20])
    return sum(len(found) for found in steps.values())


@dataclass
class NapCalls:
    """The nap log: per token, the calls that started, and those that ended."""

    starts: dict[str, list[tuple[int, float]]]
    ends: dict[str, list[tuple[int, float, float]]]

    @classmethod
    def read(cls, path: Path) -> NapCalls:
        starts: dict[str, list[tuple[int, float]]] = defaultdict(list)
        ends: dict[str, list[tuple[int, float, float]]] = defaultdict(list)
        lines = path.read_text().splitlines() if path.exists() else []
        for line in lines:
            kind, token, pid, *times = line.split()
            if kind == "start":
                starts[token].append((int(pid), float(times[0])))
            else:
                ends[token].append((int(pid), float(times[0]), float(times[1])))
        return cls(starts, ends)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def http(
    method: str, url: str, body: object = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(  # noqa: S310 - a local test server
        url,
        data=data,
        method=method,
        headers={"content-type": "application/json", **(headers or {})},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            return response.status, dict(response.headers), json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), json.loads(error.read())


def enqueue_slow(queue: TaskService, count: int, ms: Callable[[int], int]) -> Iterator[uuid.UUID]:
    """Queue `count` slow_echo_add tasks (tokens t0000, t0001…), yielding each id as it is."""
    for index in range(count):
        data = {"text": f"t{index:04d}", "a": index, "b": 2 * index + 1, "ms": ms(index)}
        yield queue.enqueue_task("slow_echo_add", data).task.id


# -- the tests ----------------------------------------------------------------------------


def test_four_workers_run_500_tasks_each_exactly_once(
    fleet: Fleet, queue: TaskService, engine: Engine
) -> None:
    workers = [fleet.worker(concurrency=4) for _ in range(4)]
    fleet.wait_ready(*workers)
    began = time.monotonic()

    def enqueue(index: int) -> None:
        data = {"text": f"hello {index}", "a": index, "b": 1000 - 3 * index}
        queue.enqueue_task("echo_add", data)

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(enqueue, range(500)))
    queued = time.monotonic()
    wait_quiet(engine, 500, timeout=90)
    done = time.monotonic()
    report(
        f"500 echo_add tasks on 4 workers: queued in {queued - began:.1f} s, all finished "
        f"{done - began:.1f} s after the first was queued ({500 / (done - began):.0f} tasks/s)"
    )
    assert status_counts(engine) == Counter({"succeeded": 500})
    assert assert_all_succeeded(engine, FAST_STATES) == 1000
    fleet.stop(*workers)
    fleet.assert_clean()


def test_sigkilled_workers_lose_and_duplicate_nothing(
    fleet: Fleet, queue: TaskService, engine: Engine
) -> None:
    lease = 1.0
    concurrency = 1  # few slots, so that the tasks outlast the kills
    chance = random.Random(20240611)  # noqa: S311 - not cryptography
    workers = [fleet.worker(concurrency=concurrency, lease_seconds=lease) for _ in range(3)]
    fleet.wait_ready(*workers)
    count = 150
    list(enqueue_slow(queue, count, lambda _: chance.randint(30, 80)))
    kills: list[tuple[int, int]] = []  # (tasks left, tasks the victim held) at each kill
    while len(kills) < 8:
        time.sleep(0.7)
        left = count - status_counts(engine)["succeeded"]
        if not left:
            break
        victim = chance.choice(workers)
        with engine.connect() as connection:
            held = connection.execute(
                select(func.count()).where(TaskRow.lease_owner.like(f"%:{victim.pid}:%"))
            ).scalar_one()
        fleet.kill(victim)
        kills.append((left, held))
        workers.remove(victim)
        workers.append(fleet.worker(concurrency=concurrency, lease_seconds=lease))
    wait_quiet(engine, count, timeout=60)
    naps = NapCalls.read(fleet.nap_log)
    rerun = {token: len(calls) for token, calls in naps.starts.items() if len(calls) > 1}
    report(
        f"SIGKILL chaos: {len(kills)} workers killed, each while tasks were left "
        f"(tasks left, tasks the victim held): {kills}; {len(rerun)} nap calls ran more "
        f"than once: {sorted(rerun.items())}"
    )
    assert len(kills) >= 6, f"the tasks finished before 6 kills: {kills}"
    assert assert_all_succeeded(engine, SLOW_STATES) == 3 * count
    assert set(naps.starts) == {f"t{index:04d}" for index in range(count)}
    fleet.wait_ready(*workers)  # a replacement still starting would die of SIGTERM
    fleet.stop(*workers)
    fleet.assert_clean(lost_leases=True)


def test_lease_renewal_keeps_a_second_worker_away(
    fleet: Fleet, queue: TaskService, engine: Engine
) -> None:
    # Each worker has room to spare, so it keeps looking for tasks whose lease ran out:
    # only the renewal of the leases (1 s, naps of 2.5 s) keeps it off the other's tasks.
    workers = [fleet.worker(concurrency=12, lease_seconds=1) for _ in range(2)]
    fleet.wait_ready(*workers)
    list(enqueue_slow(queue, 10, lambda _: 2500))
    wait_quiet(engine, 10, timeout=60)
    naps = NapCalls.read(fleet.nap_log)
    tokens = {f"t{index:04d}" for index in range(10)}
    assert set(naps.starts) == tokens
    twice = {token: naps.starts[token] for token in tokens if len(naps.starts[token]) != 1}
    assert not twice, f"naps that ran more than once: {twice}"
    assert {token: len(naps.ends[token]) for token in tokens} == dict.fromkeys(tokens, 1)
    for token in tokens:
        ended = {(pid, start): end for pid, start, end in naps.ends[token]}
        # A call that never logged its end (its process was killed) runs on forever.
        runs = sorted((start, ended.get((pid, start), inf)) for pid, start in naps.starts[token])
        for (_, end), (start, _) in itertools.pairwise(runs):
            assert end <= start, f"two runs of {token} overlap: {runs}"
    assert assert_all_succeeded(engine, SLOW_STATES) == 30
    fleet.stop(*workers)
    fleet.assert_clean()


def test_sigterm_drains_the_step_in_hand_and_requeues_the_task(
    fleet: Fleet, queue: TaskService, engine: Engine
) -> None:
    first = fleet.worker(concurrency=4)
    fleet.wait_ready(first)
    task_id = queue.enqueue_task(
        "slow_echo_add", {"text": "drain", "a": 4, "b": 5, "ms": 3000}
    ).task.id
    wait_until(
        lambda: "drain" in NapCalls.read(fleet.nap_log).starts,
        timeout=30,
        what=lambda: "the nap to start",
    )
    first.send_signal(signal.SIGTERM)
    try:
        status = first.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the worker did not stop within 10 s of SIGTERM:\n{fleet.output(first)}")
    assert status == 0, fleet.output(first)
    assert "worker stopped" in fleet.output(first)

    tasks, steps = load_tasks(engine)
    task = tasks[task_id]
    assert step_shape(steps[task_id]) == expected_shape(SLOW_STATES[:1])
    assert (task.status, task.lease_owner, task.lease_expires_at) == ("pending", None, None)
    assert (task.current_state, task.step_count) == ("echo", 1)

    second = fleet.worker(concurrency=4)
    wait_quiet(engine, 1, timeout=30)
    assert assert_all_succeeded(engine, SLOW_STATES) == 3
    naps = NapCalls.read(fleet.nap_log)
    assert len(naps.starts["drain"]) == 1
    assert len(naps.ends["drain"]) == 1
    assert naps.starts["drain"][0][0] == first.pid
    fleet.stop(second)
    fleet.assert_clean()


def test_a_killed_workers_task_is_taken_over_when_its_lease_runs_out(
    fleet: Fleet, queue: TaskService, engine: Engine
) -> None:
    first = fleet.worker(concurrency=4, lease_seconds=1)
    fleet.wait_ready(first)
    task_id = queue.enqueue_task(
        "slow_echo_add", {"text": "crash", "a": 1, "b": 2, "ms": 2000}
    ).task.id
    wait_until(
        lambda: "crash" in NapCalls.read(fleet.nap_log).starts,
        timeout=30,
        what=lambda: "the nap to start",
    )
    fleet.kill(first)
    killed_at = time.time()
    second = fleet.worker(concurrency=4, lease_seconds=1)
    wait_quiet(engine, 1, timeout=30)
    assert assert_all_succeeded(engine, SLOW_STATES) == 3
    naps = NapCalls.read(fleet.nap_log)
    assert [pid for pid, _ in naps.starts["crash"]] == [first.pid, second.pid]
    assert [pid for pid, _, _ in naps.ends["crash"]] == [second.pid]
    _, steps = load_tasks(engine)
    nap_step = steps[task_id][0]
    report(
        f"crash recovery: the nap ran again {naps.starts['crash'][1][1] - killed_at:.2f} s "
        f"after the kill (lease 1 s); recorded once, attempt {nap_step.attempt}"
    )
    fleet.stop(second)
    fleet.assert_clean()


def test_concurrent_idempotent_starts_over_http(
    fleet: Fleet, queue: TaskService, engine: Engine
) -> None:
    port = free_port()
    server = fleet.server(port)
    base = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        if server.poll() is not None:
            pytest.fail(f"the server exited:\n{fleet.output(server)}")
        try:
            return http("GET", base + "/healthz")[0] == 200
        except OSError:
            return False

    wait_until(healthy, timeout=30, what=lambda: f"the server:\n{fleet.output(server)}")
    body = {"flow": "echo_add", "input": {"text": "once", "a": 1, "b": 2}}

    def together(headers: dict[str, str]) -> list[tuple[int, dict[str, str], Any]]:
        gate = threading.Barrier(16)

        def post(_: int) -> tuple[int, dict[str, str], Any]:
            gate.wait()
            return http("POST", base + "/tasks", body, headers)

        with ThreadPoolExecutor(16) as pool:
            return list(pool.map(post, range(16)))

    queued = together({"Prefer": "respond-async", "Idempotency-Key": "queued-key"})
    assert [status for status, _, _ in queued] == [202] * 16, queued
    assert len({answer["id"] for _, _, answer in queued}) == 1
    assert {answer["status"] for _, _, answer in queued} == {"pending"}

    changed = {"flow": "echo_add", "input": {"text": "once", "a": 1, "b": 3}}
    status, headers, problem = http(
        "POST",
        base + "/tasks",
        changed,
        {"Prefer": "respond-async", "Idempotency-Key": "queued-key"},
    )
    assert status == 409, problem
    assert headers["content-type"].startswith("application/problem+json")
    assert (problem["status"], problem["type"]) == (
        409,
        "urn:taskrunner:problem:idempotency-conflict",
    )

    ran = together({"Idempotency-Key": "sync-key"})
    assert sorted(status for status, _, _ in ran) == [200] * 15 + [201], ran
    assert len({answer["id"] for _, _, answer in ran}) == 1
    created = next(answer for status, _, answer in ran if status == 201)
    assert created["status"] == "succeeded"
    assert created["output"] == {"text": "once", "sum": 3}

    with engine.connect() as connection:
        keys = connection.execute(
            select(TaskRow.idempotency_key, func.count()).group_by(TaskRow.idempotency_key)
        ).all()
    assert dict(keys) == {"queued-key": 1, "sync-key": 1}
    # uvicorn shuts down gracefully, then raises the signal it caught again: -SIGTERM.
    fleet.stop(server, statuses=(0, -signal.SIGTERM))
    assert "Application shutdown complete" in fleet.output(server)
    fleet.assert_clean()


def test_cancels_racing_claims(fleet: Fleet, queue: TaskService, engine: Engine) -> None:
    chance = random.Random(7)  # noqa: S311 - not cryptography
    workers = [fleet.worker(concurrency=2) for _ in range(2)]
    fleet.wait_ready(*workers)
    answered: dict[uuid.UUID, datetime] = {}

    def cancel(task_id: uuid.UUID, when: float) -> str:
        time.sleep(max(0.0, when - time.monotonic()))
        try:
            outcome, _ = queue.cancel_task(task_id)
        except TaskFinishedError:
            outcome = "finished"
        answered[task_id] = datetime.now(UTC)
        return outcome

    # Each task is cancelled a small random while after it is queued, so that cancels
    # meet tasks pending, being claimed, running and finished.
    with ThreadPoolExecutor(30) as pool:
        futures = {}
        for task_id in enqueue_slow(queue, 60, lambda _: chance.randint(20, 60)):
            when = time.monotonic() + chance.uniform(0, 0.6)
            futures[task_id] = pool.submit(cancel, task_id, when)
        outcomes = {task_id: future.result() for task_id, future in futures.items()}
    wait_quiet(engine, 60, timeout=60)
    tasks, steps = load_tasks(engine)
    report(
        f"cancels racing claims: outcomes {dict(Counter(outcomes.values()))}, final "
        f"{dict(Counter(task.status for task in tasks.values()))}"
    )

    wrong = []
    for task_id, outcome in outcomes.items():
        task = tasks[task_id]
        recorded = steps.get(task_id, [])
        shape = step_shape(recorded)
        problems = []
        if task.status not in ("cancelled", "succeeded"):
            problems.append(f"status {task.status}")
        if task.lease_owner is not None:
            problems.append(f"lease left with {task.lease_owner}")
        if outcome == "cancelled" and (task.status != "cancelled" or recorded):
            problems.append(f"cancelled while pending, yet {task.status} with {shape}")
        if outcome == "requested" and task.status == "succeeded":
            # Too late to stop it: the last step was already running, so the request came
            # after the step before it had been recorded.
            echo = next((step for step in recorded if step.state == "echo"), None)
            if echo is None or answered[task_id] < echo.finished_at:
                problems.append(f"cancel requested at {answered[task_id]}, yet it succeeded")
        if task.status == "cancelled":
            if shape != expected_shape(SLOW_STATES)[: len(shape)] or len(shape) == 3:
                problems.append(f"cancelled with steps {shape}")
            late = [step.seq for step in recorded if step.finished_at > task.finished_at]
            if late:
                problems.append(f"steps {late} finished after the task ({task.finished_at})")
            if (task.error_kind, task.output) != ("Cancelled", None):
                problems.append(f"cancelled with error {task.error_kind}, output {task.output}")
        if task.status == "succeeded" and shape != expected_shape(SLOW_STATES):
            problems.append(f"succeeded with steps {shape}")
        if outcome == "finished" and task.status != "succeeded":
            problems.append(f"cancel said finished, yet the task is {task.status}")
        if problems:
            wrong.append(f"{task_id} (cancel: {outcome}): {'; '.join(problems)}")
    assert not wrong, "\n".join(wrong)

    # A cancelled task is never claimed again, however long the workers keep looking.
    before = {task_id: (task.status, task.updated_at) for task_id, task in tasks.items()}
    counted = {task_id: len(found) for task_id, found in steps.items()}
    time.sleep(1.0)
    tasks, steps = load_tasks(engine)
    assert {task_id: (task.status, task.updated_at) for task_id, task in tasks.items()} == before
    assert {task_id: len(found) for task_id, found in steps.items()} == counted
    fleet.stop(*workers)
    fleet.assert_clean()

"""Fan-outs as child tasks on the real stores (SQLite and PostgreSQL), with the test-only
`spread` kind (`tests/fanout_kind.py`) standing for `map`: run in the caller and on
workers, children hidden from the task list and listed by parent, cancels and purges that
take the children with the parent; and, on PostgreSQL, children spread over worker
processes, one of which is killed mid-map (SIGKILL): every child's steps are recorded
once, and the output is in input order."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from datetime import timedelta
from pathlib import Path

import pytest
from fanout_kind import spread_checker
from fastapi.testclient import TestClient
from sqlalchemy import text
from test_cli import cli, run_main

from taskrunner.catalog import FlowCatalog
from taskrunner.errors import EXIT_FAILED
from taskrunner.service import TaskService, utc_now
from taskrunner.store import statements as stmt
from taskrunner.store.database import Database
from taskrunner.store.records import FINISHED, TaskRecord
from taskrunner.store.sql import SqlTaskRepository
from taskrunner.tools import load_registry
from taskrunner.worker import Worker

ROOT = Path(__file__).resolve().parents[2]
PLUGINS = ROOT / "tests" / "plugins"

DIVIDE = """
name: spread_divide
input:
  numbers: {type: array}
start: fan
states:
  fan:
    type: spread
    flow: spread_divide
    items: $input.numbers
    chart:
      start: div
      states:
        div: {type: task, tool: divide, args: {dividend: 12, divisor: $input.item}, next: done}
        done: {type: succeed, output: {q: $states.div.quotient, index: $input.index}}
    next: done
  done:
    type: succeed
    output: {results: $states.fan.items}
"""

NAPS = """
name: spread_naps
input:
  items: {type: array}
start: fan
states:
  fan:
    type: spread
    flow: spread_naps
    items: $input.items
    MAX
    chart:
      start: nap
      states:
        nap:
          type: task
          tool: test.nap
          args: {ms: $input.item.ms, token: $input.item.token}
          next: add
        add: {type: task, tool: add, args: {a: $input.index, b: 1}, next: done}
        done: {type: succeed, output: {token: $states.nap.token, n: $states.add.sum}}
    next: done
  done:
    type: succeed
    output: {results: $states.fan.items}
"""


def write_flows(directory: Path, max_concurrency: int | None = None) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    limit = "" if max_concurrency is None else f"max_concurrency: {max_concurrency}"
    (directory / "spread_divide.yaml").write_text(DIVIDE)
    (directory / "spread_naps.yaml").write_text(NAPS.replace("MAX", limit))
    return directory


def naps(count: int, ms: Callable[[int], int]) -> list[dict[str, object]]:
    return [{"ms": ms(index), "token": f"t{index}"} for index in range(count)]


def expected(items: list[dict[str, object]]) -> dict[str, object]:
    return {
        "results": [{"token": item["token"], "n": index + 1} for index, item in enumerate(items)]
    }


@pytest.fixture
def flows_dir(tmp_path: Path) -> Path:
    return write_flows(tmp_path / "flows", max_concurrency=1)


@pytest.fixture
def spread_service(
    database: Database, flows_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[TaskService]:
    monkeypatch.syspath_prepend(str(PLUGINS))
    catalog = FlowCatalog.load(flows_dir, spread_checker(load_registry()))
    service = TaskService(SqlTaskRepository(database), catalog)
    yield service
    service.close()


def children(service: TaskService, task_id: uuid.UUID) -> list[TaskRecord]:
    found = service.repository.children_of(task_id, 1, 1)
    return sorted(found, key=lambda child: int((child.child_key or ":0").split(":")[1]))


def wait_for(check: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


class Working:
    """A worker in a thread of this process, for the length of a `with`."""

    def __init__(self, service: TaskService) -> None:
        self._stop = threading.Event()
        worker = Worker(service, concurrency=2, poll_seconds=0.05)
        self._thread = threading.Thread(target=worker.run, args=(self._stop,))

    def __enter__(self) -> None:
        self._thread.start()

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def test_a_fan_out_runs_in_the_caller_and_on_a_worker(spread_service: TaskService) -> None:
    here = spread_service.run_task("spread_divide", {"numbers": [1, 2, 3, 4]}).task
    assert here.output == {"results": [{"q": 12.0 / n, "index": n - 1} for n in (1, 2, 3, 4)]}
    queued = spread_service.enqueue_task("spread_divide", {"numbers": [4, 3]}).task
    with Working(spread_service):
        wait_for(lambda: spread_service.get_task(queued.id).finished_at is not None)
    done = spread_service.get_task(queued.id)
    assert done.output == {"results": [{"q": 3.0, "index": 0}, {"q": 4.0, "index": 1}]}
    for task_id, count in ((here.id, 4), (queued.id, 2)):
        found = children(spread_service, task_id)
        assert [child.child_key for child in found] == [f"item:{n}" for n in range(count)]
        assert all(child.step_count == 1 for child in found)


def test_children_are_listed_by_parent_only(spread_service: TaskService) -> None:
    task = spread_service.run_task("spread_divide", {"numbers": [1, 2, 3]}).task
    assert [item.id for item in spread_service.list_tasks().items] == [task.id]
    assert spread_service.list_tasks(status="succeeded").items[0].id == task.id
    listed = spread_service.list_tasks(parent=task.id, limit=2)
    rest = spread_service.list_tasks(parent=task.id, cursor=listed.next_cursor)
    keys = sorted(item.child_key or "" for item in (*listed.items, *rest.items))
    assert keys == ["item:0", "item:1", "item:2"]
    assert {item.parent_id for item in rest.items} == {task.id}


def test_a_fail_fast_fan_out_ends_with_the_failure(spread_service: TaskService) -> None:
    task = spread_service.run_task("spread_divide", {"numbers": [3, 0, 4]}).task
    assert task.status == "failed"
    assert task.error is not None
    assert task.error.kind == "DivisionByZero"


def test_cancelling_a_parent_cancels_its_children(spread_service: TaskService) -> None:
    items = naps(4, lambda _index: 300)
    task = spread_service.enqueue_task("spread_naps", {"items": items}).task
    with Working(spread_service):
        wait_for(lambda: any(c.status == "running" for c in children(spread_service, task.id)))
        spread_service.cancel_task(task.id)
        wait_for(lambda: all(c.finished for c in children(spread_service, task.id)))
        wait_for(lambda: spread_service.get_task(task.id).status == "cancelled")
    statuses = Counter(child.status for child in children(spread_service, task.id))
    # max_concurrency 1: one child ran (it may have ended first), the rest never started.
    assert statuses["cancelled"] >= 3
    assert statuses["succeeded"] + statuses["cancelled"] == 4


def test_a_parent_is_purged_with_its_children(spread_service: TaskService) -> None:
    task = spread_service.run_task("spread_divide", {"numbers": [1, 2, 3]}).task
    repository = spread_service.repository
    later = utc_now() + timedelta(hours=1)
    assert repository.count_purgeable(later, FINISHED).tasks == 4
    purged = repository.purge(later, FINISHED, 10)
    assert (purged.tasks, purged.steps) == (4, 4)
    assert repository.children_of(task.id, 1, 1) == []


def test_the_list_of_tasks_is_served_by_its_partial_indexes(pg_database: str) -> None:
    """The query plan is PostgreSQL's: this runs there only."""
    database = Database(pg_database)
    for status, flow, parent, index in (
        (False, False, False, "ix_tasks_created_at_id"),
        (True, False, False, "ix_tasks_status_created_at_id"),
        (False, True, False, "ix_tasks_flow_name_created_at_id"),
        (False, False, True, "ix_tasks_parent_id_created_at_id"),
    ):
        query = stmt.select_heads(status, flow, False, parent)
        compiled = query.compile(
            dialect=database.engine.dialect, compile_kwargs={"render_postcompile": True}
        )
        given = {
            "status": "pending",
            "flow": "x",
            "parent": uuid.uuid4(),
            "limit": 51,
        }
        with database.engine.connect() as connection:
            connection.execute(text("SET enable_seqscan = off"))
            plan = connection.exec_driver_sql(
                f"EXPLAIN {compiled.string}",
                {name: given[name] for name in compiled.params},
            ).all()
        assert index in "\n".join(row[0] for row in plan), plan
    database.dispose()


# -- worker processes on PostgreSQL ---------------------------------------------------------


@pytest.fixture
def pg_database(
    clean_database: Callable[[str], AbstractContextManager[str]],
) -> Iterator[str]:
    with clean_database("postgresql") as url:
        yield url


class Workers:
    """Worker processes of `tests/spread_worker.py`, each logging to a file of its own."""

    def __init__(self, url: str, flows: Path, directory: Path) -> None:
        self.url = url
        self.flows = flows
        self.directory = directory
        self.nap_log = directory / "nap.log"
        self.processes: list[subprocess.Popen[bytes]] = []

    def start(self, concurrency: int = 2) -> subprocess.Popen[bytes]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("TASKRUNNER_")}
        env["PYTHONPATH"] = os.pathsep.join([str(PLUGINS), str(ROOT / "tests")])
        env["TASKRUNNER_TEST_NAP_LOG"] = str(self.nap_log)
        log = self.directory / f"worker-{len(self.processes)}.log"
        with log.open("wb") as handle:
            process = subprocess.Popen(
                [
                    sys.executable,
                    str(ROOT / "tests" / "spread_worker.py"),
                    self.url,
                    str(self.flows),
                    str(concurrency),
                    "2",
                ],
                cwd=ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=handle,
                stderr=subprocess.STDOUT,
            )
        self.processes.append(process)
        wait_for(lambda: "worker running" in log.read_text() or process.poll() is not None)
        assert process.poll() is None, log.read_text()
        return process

    def pids_that_napped(self) -> Counter[int]:
        lines = self.nap_log.read_text().splitlines() if self.nap_log.exists() else []
        return Counter(int(line.split()[2]) for line in lines if line.startswith("end "))

    def outputs(self) -> str:
        return "\n".join(path.read_text() for path in sorted(self.directory.glob("worker-*.log")))

    def close(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture
def workers(pg_database: str, tmp_path: Path) -> Iterator[Workers]:
    fleet = Workers(pg_database, write_flows(tmp_path / "flows"), tmp_path)
    try:
        yield fleet
    finally:
        fleet.close()


@pytest.fixture
def pg_service(workers: Workers, monkeypatch: pytest.MonkeyPatch) -> Iterator[TaskService]:
    monkeypatch.syspath_prepend(str(PLUGINS))
    database = Database(workers.url)
    catalog = FlowCatalog.load(workers.flows, spread_checker(load_registry()))
    service = TaskService(SqlTaskRepository(database), catalog)
    yield service
    service.close()
    database.dispose()


@pytest.mark.slow
def test_children_of_one_map_run_on_several_worker_processes(
    workers: Workers, pg_service: TaskService
) -> None:
    first, second = workers.start(), workers.start()
    items = naps(24, lambda _index: 100)
    task = pg_service.enqueue_task("spread_naps", {"items": items}).task
    wait_for(lambda: pg_service.get_task(task.id).finished_at is not None, timeout=60)
    done = pg_service.get_task(task.id)
    assert done.output == expected(items), workers.outputs()
    napped = workers.pids_that_napped()
    assert set(napped) == {first.pid, second.pid}
    assert sum(napped.values()) == 24
    assert "Traceback" not in workers.outputs()


@pytest.mark.slow
def test_a_worker_killed_mid_map_leaves_every_child_run_once(
    workers: Workers, pg_service: TaskService
) -> None:
    durations = random.Random(10)  # noqa: S311 - random completion order, not secrets
    items = naps(40, lambda _index: durations.randint(50, 400))
    first, second = workers.start(), workers.start()
    task = pg_service.enqueue_task("spread_naps", {"items": items}).task

    def some_children_ended() -> bool:
        found = children(pg_service, task.id)
        return sum(child.status == "succeeded" for child in found) >= 8

    wait_for(some_children_ended, timeout=60)
    holder = pg_service.repository.get_task(task.id)
    assert holder is not None
    assert holder.status == "running"
    owner_pid = int((holder.lease_owner or "::").split(":")[1])
    victim = first if owner_pid == first.pid else second
    assert owner_pid == victim.pid
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=10)
    workers.start()
    wait_for(lambda: pg_service.get_task(task.id).finished_at is not None, timeout=90)
    done = pg_service.get_task(task.id, all_steps=True)
    assert done.status == "succeeded", workers.outputs()
    assert done.output == expected(items)
    assert [step.tool for step in done.steps] == ["map"]
    found = children(pg_service, task.id)
    assert [child.child_key for child in found] == [f"item:{n}" for n in range(40)]
    for child in found:
        steps = pg_service.repository.steps_of(child.id)
        assert [(step.seq, step.state, step.attempt) for step in steps] == [
            (1, "nap", 1),
            (2, "add", 1),
        ]
    # Every child row of the parent belongs to its one map call: none was started twice.
    assert pg_service.list_tasks(parent=task.id, limit=100).next_cursor is None
    assert len(pg_service.list_tasks(parent=task.id, limit=100).items) == 40


def test_the_api_lists_a_tasks_children_and_says_a_tasks_parent(client: TestClient) -> None:
    started = client.post(
        "/tasks", json={"flow": "echo_add", "input": {"text": "x", "a": 1, "b": 2}}
    )
    task = started.json()
    assert (task["parent_id"], task["child_key"]) == (None, None)
    listed = client.get("/tasks", params={"parent": task["id"]})
    assert listed.status_code == 200
    assert listed.json() == {"items": [], "next_cursor": None}
    assert client.get("/tasks").json()["items"][0]["parent_id"] is None
    missing = client.get("/tasks", params={"parent": str(uuid.uuid4())})
    assert missing.status_code == 404
    assert client.get("/tasks", params={"parent": "nope"}).status_code == 422


def test_list_tasks_parent_lists_the_children_on_the_command_line(
    spread_service: TaskService,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    task = spread_service.run_task("spread_divide", {"numbers": [1, 2]}).task
    listing = cli(database_url, "list-tasks", "--parent", str(task.id), "--json")
    assert listing.exit_code == 0, listing.output
    items = json.loads(listing.stdout)["items"]
    assert sorted(item["child_key"] for item in items) == ["item:0", "item:1"]
    assert {item["parent_id"] for item in items} == {str(task.id)}
    top = json.loads(cli(database_url, "list-tasks", "--json").stdout)["items"]
    assert [item["id"] for item in top] == [str(task.id)]
    unknown = str(uuid.uuid4())
    status, _out, err = run_main(
        monkeypatch, capsys, database_url, "list-tasks", "--parent", unknown
    )
    assert status == EXIT_FAILED
    assert f"no task with id {unknown}" in err

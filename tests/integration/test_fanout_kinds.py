"""The real `map` and `parallel` kinds on the real stores (SQLite and PostgreSQL) and on
worker processes: run in the caller (POST /tasks) and queued (a worker), their children
listed by parent with keys `item:N` / `branch:NAME`, a failing item caught by the map's
`catch` or tolerated; and, on PostgreSQL, a worker killed (SIGKILL) mid-fan-out while
another finishes: every child's steps are recorded once, and the parent has one step."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from test_child_tasks import wait_for

from taskrunner.api import create_app
from taskrunner.catalog import FlowCatalog
from taskrunner.engine.validate import FlowChecker
from taskrunner.service import TaskService
from taskrunner.settings import Settings
from taskrunner.store.database import Database
from taskrunner.store.records import TaskRecord
from taskrunner.store.sql import SqlTaskRepository
from taskrunner.tools import load_registry

ROOT = Path(__file__).resolve().parents[2]
PLUGINS = ROOT / "tests" / "plugins"

JITTER_EACH = """
      start: call
      states:
        call:
          type: task
          tool: test.jitter
          args: {value: $input.item.value, fail: $input.item.fail}
          next: done
        done: {type: succeed, output: {value: $states.call.value, index: $input.index}}
"""

MAP_CAUGHT = f"""
name: map_caught
input:
  items: {{type: array}}
start: each
states:
  each:
    type: map
    items: $input.items
    max_concurrency: 3
    each:{JITTER_EACH}
    next: done
    catch:
      - errors: [Jittered]
        next: caught
  caught:
    type: succeed
    output: {{caught: $error.message}}
  done:
    type: succeed
    output: {{values: $states.each}}
"""

MAP_TOLERANT = f"""
name: map_tolerant
input:
  items: {{type: array}}
start: each
states:
  each:
    type: map
    items: $input.items
    tolerated_failures: 1
    each:{JITTER_EACH}
    next: done
  done:
    type: succeed
    output: {{values: $states.each}}
"""


def branch(name: str) -> str:
    return f"""
      {name}:
        start: call
        states:
          call: {{type: task, tool: test.jitter, args: {{value: $input.{name}}}, next: done}}
          done: {{type: succeed, output: {{value: $states.call.value}}}}"""


PARALLEL = f"""
name: three_ways
input:
  a: {{type: integer}}
  b: {{type: integer}}
  c: {{type: integer}}
start: all
states:
  all:
    type: parallel
    branches:{branch("a")}{branch("b")}{branch("c")}
    next: done
  done:
    type: succeed
    output: {{ways: $states.all}}
"""

MAP_NAPS = """
name: map_naps
input:
  items: {type: array}
start: each
states:
  each:
    type: map
    items: $input.items
    each:
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
    output: {results: $states.each}
"""

BRANCHES = 8


def nap_branch(index: int) -> str:
    return f"""
      b{index}:
        start: nap
        states:
          nap:
            type: task
            tool: test.nap
            args: {{ms: $input.ms.{index}, token: t{index}}}
            next: add
          add: {{type: task, tool: add, args: {{a: {index}, b: 1}}, next: done}}
          done: {{type: succeed, output: {{token: $states.nap.token, n: $states.add.sum}}}}"""


PARALLEL_NAPS = f"""
name: parallel_naps
input:
  ms: {{type: array, items: {{type: integer}}}}
start: all
states:
  all:
    type: parallel
    branches:{"".join(nap_branch(index) for index in range(BRANCHES))}
    next: done
  done:
    type: succeed
    output: {{branches: $states.all}}
"""


def write_flows(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in (
        ("map_caught", MAP_CAUGHT),
        ("map_tolerant", MAP_TOLERANT),
        ("three_ways", PARALLEL),
        ("map_naps", MAP_NAPS),
        ("parallel_naps", PARALLEL_NAPS),
    ):
        (directory / f"{name}.yaml").write_text(text)
    return directory


def jitters(count: int, failing: frozenset[int] = frozenset()) -> list[dict[str, object]]:
    return [{"value": index * 10, "fail": index in failing} for index in range(count)]


def values(count: int) -> list[dict[str, int]]:
    return [{"value": index * 10, "index": index} for index in range(count)]


@pytest.fixture
def flows_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.syspath_prepend(str(PLUGINS))
    return write_flows(tmp_path / "flows")


@pytest.fixture
def service(database: Database, flows_dir: Path) -> Iterator[TaskService]:
    catalog = FlowCatalog.load(flows_dir, FlowChecker(load_registry()))
    running = TaskService(SqlTaskRepository(database), catalog)
    yield running
    running.close()


def app_client(database_url: str, flows_dir: Path, worker_concurrency: int) -> TestClient:
    settings = Settings(
        database_url=database_url,
        auto_migrate=False,
        flows_dir=flows_dir,
        worker_concurrency=worker_concurrency,
    )
    return TestClient(create_app(settings))


def child_keys(client: TestClient, task_id: str) -> list[str]:
    listed = client.get("/tasks", params={"parent": task_id, "limit": 100})
    assert listed.status_code == 200, listed.text
    assert listed.json()["next_cursor"] is None
    return sorted(item["child_key"] for item in listed.json()["items"])


def test_a_map_and_a_parallel_run_in_the_caller_over_http(
    database_url: str, flows_dir: Path
) -> None:
    with app_client(database_url, flows_dir, 0) as client:
        mapped = client.post(
            "/tasks", json={"flow": "map_tolerant", "input": {"items": jitters(12)}}
        )
        assert mapped.status_code == 201, mapped.text
        task = mapped.json()
        assert (task["status"], task["output"]) == ("succeeded", {"values": values(12)})
        assert child_keys(client, task["id"]) == sorted(f"item:{n}" for n in range(12))
        both = client.post("/tasks", json={"flow": "three_ways", "input": {"a": 1, "b": 2, "c": 3}})
        assert both.status_code == 201, both.text
        ways = both.json()
        assert ways["output"] == {"ways": {"a": {"value": 1}, "b": {"value": 2}, "c": {"value": 3}}}
        assert child_keys(client, ways["id"]) == ["branch:a", "branch:b", "branch:c"]
        top = client.get("/tasks", params={"limit": 100}).json()["items"]
        assert sorted(item["id"] for item in top) == sorted([task["id"], ways["id"]])


def test_a_map_and_a_parallel_run_queued_on_a_worker(database_url: str, flows_dir: Path) -> None:
    prefer = {"Prefer": "respond-async"}
    with app_client(database_url, flows_dir, 2) as client:
        mapped = client.post(
            "/tasks", json={"flow": "map_caught", "input": {"items": jitters(9)}}, headers=prefer
        )
        both = client.post(
            "/tasks", json={"flow": "three_ways", "input": {"a": 4, "b": 5, "c": 6}}, headers=prefer
        )
        assert (mapped.status_code, both.status_code) == (202, 202), (mapped.text, both.text)
        ids = [mapped.json()["id"], both.json()["id"]]

        def finished() -> bool:
            return all(client.get(f"/tasks/{id_}").json()["finished_at"] for id_ in ids)

        wait_for(finished, timeout=60)
        map_task, parallel_task = (client.get(f"/tasks/{id_}").json() for id_ in ids)
        assert map_task["output"] == {"values": values(9)}, map_task
        assert parallel_task["output"] == {
            "ways": {"a": {"value": 4}, "b": {"value": 5}, "c": {"value": 6}}
        }
        assert child_keys(client, ids[0]) == sorted(f"item:{n}" for n in range(9))
        assert child_keys(client, ids[1]) == ["branch:a", "branch:b", "branch:c"]


def test_a_failing_item_is_caught_by_the_maps_catch(service: TaskService) -> None:
    task = service.run_task("map_caught", {"items": jitters(6, frozenset({4}))}).task
    assert task.status == "succeeded", task.error
    assert task.output == {"caught": "item 4 failed: item 40 failed"}
    found = service.repository.children_of(task.id, 1, 1)
    failed = [child.child_key for child in found if child.status == "failed"]
    assert failed == ["item:4"]


def test_tolerated_failures_leave_nulls_and_one_more_fails_the_map(
    service: TaskService,
) -> None:
    task = service.run_task("map_tolerant", {"items": jitters(5, frozenset({2}))}).task
    assert task.status == "succeeded", task.error
    expected: list[object] = [*values(5)]
    expected[2] = None
    assert task.output == {"values": expected}
    too_many = service.run_task("map_tolerant", {"items": jitters(5, frozenset({1, 3}))}).task
    assert too_many.status == "failed"
    assert too_many.error is not None
    assert too_many.error.kind == "ToleratedFailuresExceeded"


# -- worker processes on PostgreSQL ---------------------------------------------------------


class Workers:
    """Worker processes of `tests/worker_process.py`, each logging to a file of its own."""

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
                    str(ROOT / "tests" / "worker_process.py"),
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
def workers(
    clean_database: Callable[[str], AbstractContextManager[str]], tmp_path: Path
) -> Iterator[Workers]:
    with clean_database("postgresql") as url:
        fleet = Workers(url, write_flows(tmp_path / "flows"), tmp_path)
        try:
            yield fleet
        finally:
            fleet.close()


@pytest.fixture
def pg_service(workers: Workers, monkeypatch: pytest.MonkeyPatch) -> Iterator[TaskService]:
    monkeypatch.syspath_prepend(str(PLUGINS))
    database = Database(workers.url)
    catalog = FlowCatalog.load(workers.flows, FlowChecker(load_registry()))
    running = TaskService(SqlTaskRepository(database), catalog)
    yield running
    running.close()
    database.dispose()


def children(service: TaskService, task_id: uuid.UUID) -> list[TaskRecord]:
    return service.repository.children_of(task_id, 1, 1)


def kill_the_holder(workers: Workers, service: TaskService, task_id: uuid.UUID) -> None:
    """SIGKILL the worker process that holds the parent task once 3 children have ended
    (the rest are running or waiting), and start another worker."""

    def some_children_ended() -> bool:
        return sum(child.status == "succeeded" for child in children(service, task_id)) >= 3

    wait_for(some_children_ended, timeout=60)
    holder = service.repository.get_task(task_id)
    assert holder is not None
    assert holder.status == "running"
    owner_pid = int((holder.lease_owner or "::").split(":")[1])
    [victim] = [process for process in workers.processes if process.pid == owner_pid]
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=10)
    workers.start()


def assert_every_child_ran_once(
    service: TaskService, task_id: uuid.UUID, keys: list[str], tool: str
) -> None:
    done = service.get_task(task_id, all_steps=True)
    assert done.status == "succeeded", done.error
    assert [step.tool for step in done.steps] == [tool]
    found = children(service, task_id)
    assert sorted(child.child_key or "" for child in found) == sorted(keys)
    for child in found:
        steps = service.repository.steps_of(child.id)
        assert [(step.seq, step.state, step.attempt) for step in steps] == [
            (1, "nap", 1),
            (2, "add", 1),
        ], child.child_key


@pytest.mark.slow
def test_a_worker_killed_mid_map_leaves_every_item_run_once(
    workers: Workers, pg_service: TaskService
) -> None:
    durations = random.Random(10)  # noqa: S311 - a random completion order, not a secret
    items = [{"ms": durations.randint(50, 400), "token": f"t{n}"} for n in range(30)]
    workers.start()
    workers.start()
    task = pg_service.enqueue_task("map_naps", {"items": items}).task
    kill_the_holder(workers, pg_service, task.id)
    wait_for(lambda: pg_service.get_task(task.id).finished_at is not None, timeout=90)
    assert_every_child_ran_once(pg_service, task.id, [f"item:{n}" for n in range(30)], "map")
    results = [{"token": f"t{n}", "n": n + 1} for n in range(30)]
    assert pg_service.get_task(task.id).output == {"results": results}, workers.outputs()


@pytest.mark.slow
def test_a_worker_killed_mid_parallel_leaves_every_branch_run_once(
    workers: Workers, pg_service: TaskService
) -> None:
    durations = random.Random(11)  # noqa: S311 - a random completion order, not a secret
    ms = [durations.randint(200, 900) for _ in range(BRANCHES)]
    workers.start()
    workers.start()
    task = pg_service.enqueue_task("parallel_naps", {"ms": ms}).task
    kill_the_holder(workers, pg_service, task.id)
    wait_for(lambda: pg_service.get_task(task.id).finished_at is not None, timeout=90)
    keys = [f"branch:b{n}" for n in range(BRANCHES)]
    assert_every_child_ran_once(pg_service, task.id, keys, "parallel")
    branches = {f"b{n}": {"token": f"t{n}", "n": n + 1} for n in range(BRANCHES)}
    assert pg_service.get_task(task.id).output == {"branches": branches}, workers.outputs()


@pytest.mark.slow
def test_the_items_of_one_map_run_on_several_worker_processes(
    workers: Workers, pg_service: TaskService
) -> None:
    first, second = workers.start(), workers.start()
    items = [{"ms": 100, "token": f"t{n}"} for n in range(24)]
    task = pg_service.enqueue_task("map_naps", {"items": items}).task
    wait_for(lambda: pg_service.get_task(task.id).finished_at is not None, timeout=60)
    results = [{"token": f"t{n}", "n": n + 1} for n in range(24)]
    assert pg_service.get_task(task.id).output == {"results": results}, workers.outputs()
    napped = workers.pids_that_napped()
    assert set(napped) == {first.pid, second.pid}
    assert sum(napped.values()) == 24
    assert "Traceback" not in workers.outputs()

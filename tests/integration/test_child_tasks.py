"""Fan-outs as child tasks on the real stores (SQLite and PostgreSQL), with `map`: run in
the caller and on workers, children hidden from the task list and listed by parent, cancels
and purges that take the children with the parent. Worker processes, and the crash tests
that kill one, are in `test_fanout_kinds.py`."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from test_cli import cli, run_main

from taskrunner.catalog import FlowCatalog
from taskrunner.engine.validate import FlowChecker
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
name: map_divide
input:
  numbers: {type: array}
start: fan
states:
  fan:
    type: map
    items: $input.numbers
    each:
      start: div
      states:
        div: {type: task, tool: divide, args: {dividend: 12, divisor: $input.item}, next: done}
        done: {type: succeed, output: {q: $states.div.quotient, index: $input.index}}
    next: done
  done:
    type: succeed
    output: {results: $states.fan}
"""

NAPS = """
name: map_naps
input:
  items: {type: array}
start: fan
states:
  fan:
    type: map
    items: $input.items
    MAX
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
    output: {results: $states.fan}
"""


def write_flows(directory: Path, max_concurrency: int | None = None) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    limit = "" if max_concurrency is None else f"max_concurrency: {max_concurrency}"
    (directory / "map_divide.yaml").write_text(DIVIDE)
    (directory / "map_naps.yaml").write_text(NAPS.replace("MAX", limit))
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
def map_service(
    database: Database, flows_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[TaskService]:
    monkeypatch.syspath_prepend(str(PLUGINS))
    catalog = FlowCatalog.load(flows_dir, FlowChecker(load_registry()))
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


def test_a_fan_out_runs_in_the_caller_and_on_a_worker(map_service: TaskService) -> None:
    here = map_service.run_task("map_divide", {"numbers": [1, 2, 3, 4]}).task
    assert here.output == {"results": [{"q": 12.0 / n, "index": n - 1} for n in (1, 2, 3, 4)]}
    queued = map_service.enqueue_task("map_divide", {"numbers": [4, 3]}).task
    with Working(map_service):
        wait_for(lambda: map_service.get_task(queued.id).finished_at is not None)
    done = map_service.get_task(queued.id)
    assert done.output == {"results": [{"q": 3.0, "index": 0}, {"q": 4.0, "index": 1}]}
    for task_id, count in ((here.id, 4), (queued.id, 2)):
        found = children(map_service, task_id)
        assert [child.child_key for child in found] == [f"item:{n}" for n in range(count)]
        assert all(child.step_count == 1 for child in found)


def test_children_are_listed_by_parent_only(map_service: TaskService) -> None:
    task = map_service.run_task("map_divide", {"numbers": [1, 2, 3]}).task
    assert [item.id for item in map_service.list_tasks().items] == [task.id]
    assert map_service.list_tasks(status="succeeded").items[0].id == task.id
    listed = map_service.list_tasks(parent=task.id, limit=2)
    rest = map_service.list_tasks(parent=task.id, cursor=listed.next_cursor)
    keys = sorted(item.child_key or "" for item in (*listed.items, *rest.items))
    assert keys == ["item:0", "item:1", "item:2"]
    assert {item.parent_id for item in rest.items} == {task.id}


def test_a_fail_fast_fan_out_ends_with_the_failure(map_service: TaskService) -> None:
    task = map_service.run_task("map_divide", {"numbers": [3, 0, 4]}).task
    assert task.status == "failed"
    assert task.error is not None
    assert task.error.kind == "DivisionByZero"


def test_cancelling_a_parent_cancels_its_children(map_service: TaskService) -> None:
    items = naps(4, lambda _index: 300)
    task = map_service.enqueue_task("map_naps", {"items": items}).task
    with Working(map_service):
        wait_for(lambda: any(c.status == "running" for c in children(map_service, task.id)))
        map_service.cancel_task(task.id)
        wait_for(lambda: all(c.finished for c in children(map_service, task.id)))
        wait_for(lambda: map_service.get_task(task.id).status == "cancelled")
    statuses = Counter(child.status for child in children(map_service, task.id))
    # max_concurrency 1: one child ran (it may have ended first), the rest never started.
    assert statuses["cancelled"] >= 3
    assert statuses["succeeded"] + statuses["cancelled"] == 4


def test_a_parent_is_purged_with_its_children(map_service: TaskService) -> None:
    task = map_service.run_task("map_divide", {"numbers": [1, 2, 3]}).task
    repository = map_service.repository
    later = utc_now() + timedelta(hours=1)
    assert repository.count_purgeable(later, FINISHED).tasks == 4
    purged = repository.purge(later, FINISHED, 10)
    assert (purged.tasks, purged.steps) == (4, 4)
    assert repository.children_of(task.id, 1, 1) == []


@pytest.fixture
def pg_database(
    clean_database: Callable[[str], AbstractContextManager[str]],
) -> Iterator[str]:
    with clean_database("postgresql") as url:
        yield url


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
    database.dispose()


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
    map_service: TaskService,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    task = map_service.run_task("map_divide", {"numbers": [1, 2]}).task
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

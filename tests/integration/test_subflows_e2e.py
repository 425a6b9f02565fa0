"""The `flow` state end to end on the service, on both stores (SQLite and PostgreSQL): the
sub-flow runs as a child task (listed by parent, key `flow`) in the caller and on a worker;
its failure is caught or retried (a retry starts a new child); it runs the version pinned
when the parent started, whatever the files became; a cancel, the state's
`timeout_seconds` and the parent's whole-task deadline end it; a chain of three flows runs
the versions each one locked; and an input that the sub-flow's declared input refuses at
run time fails the state with `InvalidToolInput`."""

from __future__ import annotations

import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from taskrunner.api import create_app
from taskrunner.catalog import FlowCatalog
from taskrunner.engine.validate import FlowChecker
from taskrunner.flowwatch import FlowReloader
from taskrunner.service import TaskService
from taskrunner.settings import Settings
from taskrunner.store.database import Database
from taskrunner.store.records import TaskRecord
from taskrunner.store.sql import SqlTaskRepository
from taskrunner.worker import Worker

SIBLINGS = Path(__file__).resolve().parents[1] / "flows" / "siblings"

FLOWS = {
    "outer": """
name: outer
input:
  n: {type: integer}
start: call
states:
  call:
    type: flow
    flow: relay
    input: {n: $input.n}
    next: done
  done:
    type: succeed
    output: {n: $states.call.n}
""",
    "divider": """
name: divider
input:
  n: {type: integer}
start: div
states:
  div:
    type: task
    tool: divide
    args: {dividend: 12, divisor: $input.n}
    next: done
  done:
    type: succeed
    output: {q: $states.div.quotient}
""",
    "safe_divide": """
name: safe_divide
input:
  n: {type: integer}
start: call
states:
  call:
    type: flow
    flow: divider
    input: {n: $input.n}
    catch:
      - errors: [DivisionByZero]
        next: explain
    next: done
  explain:
    type: pass
    value: {kind: $error.kind, state: $error.state, message: $error.message}
    next: failed_softly
  failed_softly:
    type: succeed
    output:
      kind: $states.explain.kind
      state: $states.explain.state
      message: $states.explain.message
  done:
    type: succeed
    output: {q: $states.call.q}
""",
    "stubborn_divide": """
name: stubborn_divide
input:
  n: {type: integer}
start: call
states:
  call:
    type: flow
    flow: divider
    input: {n: $input.n}
    retry: {max_attempts: 3, interval_seconds: 0, errors: [DivisionByZero]}
    next: done
  done:
    type: succeed
    output: {q: $states.call.q}
""",
    "napper": """
name: napper
input:
  seconds: {type: number}
start: nap
states:
  nap:
    type: wait
    seconds: $input.seconds
    next: done
  done:
    type: succeed
    output: {slept: $input.seconds}
""",
    "naps": """
name: naps
input:
  seconds: {type: number}
start: call
states:
  call:
    type: flow
    flow: napper
    input: {seconds: $input.seconds}
    next: done
  done:
    type: succeed
    output: {slept: $states.call.slept}
""",
    "impatient": """
name: impatient
input:
  seconds: {type: number}
start: call
states:
  call:
    type: flow
    flow: napper
    input: {seconds: $input.seconds}
    timeout_seconds: 0.5
    catch:
      - errors: [Timeout]
        next: gave_up
    next: done
  gave_up:
    type: succeed
    output: {kind: $error.kind, state: $error.state}
  done:
    type: succeed
    output: {slept: $states.call.slept}
""",
    "hurried": """
name: hurried
timeout_seconds: 0.5
input:
  seconds: {type: number}
start: call
states:
  call:
    type: flow
    flow: napper
    input: {seconds: $input.seconds}
    next: done
  done:
    type: succeed
    output: {slept: $states.call.slept}
""",
    "sleepy": """
name: sleepy
timeout_seconds: 0.3
input:
  seconds: {type: number}
start: nap
states:
  nap:
    type: wait
    seconds: $input.seconds
    next: done
  done:
    type: succeed
    output: {slept: $input.seconds}
""",
    "patient": """
name: patient
input:
  seconds: {type: number}
start: call
states:
  call:
    type: flow
    flow: sleepy
    input: {seconds: $input.seconds}
    catch:
      - errors: [Timeout]
        next: gave_up
    next: done
  gave_up:
    type: succeed
    output: {kind: $error.kind, message: $error.message}
  done:
    type: succeed
    output: {slept: $states.call.slept}
""",
    "loose": """
name: loose
input:
  payload: {type: object}
start: call
states:
  call:
    type: flow
    flow: pong
    input: {n: $input.payload.n}
    next: done
  done:
    type: succeed
    output: {n: $states.call.n}
""",
}


def write_flows(directory: Path) -> Path:
    shutil.copytree(SIBLINGS, directory)
    for name, text in FLOWS.items():
        (directory / f"{name}.yaml").write_text(text)
    return directory


@pytest.fixture
def flows_dir(tmp_path: Path) -> Path:
    return write_flows(tmp_path / "flows")


@pytest.fixture
def subflow_service(
    database: Database, flows_dir: Path, checker: FlowChecker
) -> Iterator[TaskService]:
    catalog = FlowCatalog.load(flows_dir, checker)
    assert not catalog.skipped, catalog.skipped
    service = TaskService(SqlTaskRepository(database), catalog)
    yield service
    service.close()


def children(service: TaskService, task_id: uuid.UUID) -> list[TaskRecord]:
    """Every child of the task, of every call, oldest first."""
    page = service.list_tasks(parent=task_id, limit=100)
    assert page.next_cursor is None
    found = [service.repository.get_task(item.id) for item in page.items]
    rows = [row for row in found if row is not None]
    return sorted(rows, key=lambda row: (row.parent_seq or 0, row.parent_attempt or 0))


def wait_for(check: Callable[[], bool], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


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


def finished(service: TaskService, task_id: uuid.UUID) -> Callable[[], bool]:
    return lambda: service.get_task(task_id).finished_at is not None


# -- 1. a child row, its output joined ------------------------------------------------------


def test_a_sub_flow_runs_as_a_child_task_in_the_caller_and_on_a_worker(
    subflow_service: TaskService,
) -> None:
    here = subflow_service.run_task("relay", {"n": 7}).task
    assert (here.status, here.output) == ("succeeded", {"n": 7})
    queued = subflow_service.enqueue_task("relay", {"n": 8}).task
    with Working(subflow_service):
        wait_for(finished(subflow_service, queued.id))
    done = subflow_service.get_task(queued.id, all_steps=True)
    assert (done.status, done.output) == ("succeeded", {"n": 8})
    assert [(step.state, step.tool, step.output) for step in done.steps] == [
        ("call", "flow", {"n": 8})
    ]
    for task_id, n in ((here.id, 7), (queued.id, 8)):
        [child] = children(subflow_service, task_id)
        assert (child.child_key, child.flow_name, child.status) == ("flow", "pong", "succeeded")
        assert (child.input, child.output) == ({"n": n}, {"n": n})
        assert child.flow_digest == subflow_service.catalog.get("pong").flow.digest
    # The children are not tasks that requests started: the plain list leaves them out.
    assert {item.id for item in subflow_service.list_tasks().items} == {here.id, queued.id}


def test_the_api_lists_the_sub_flow_task_under_its_parent(
    database_url: str, flows_dir: Path
) -> None:
    settings = Settings(
        database_url=database_url, auto_migrate=False, flows_dir=flows_dir, worker_concurrency=0
    )
    with TestClient(create_app(settings)) as client:
        started = client.post("/tasks", json={"flow": "relay", "input": {"n": 3}})
        assert started.status_code == 201, started.text
        task = started.json()
        assert (task["status"], task["output"]) == ("succeeded", {"n": 3})
        listed = client.get("/tasks", params={"parent": task["id"]}).json()
        [child] = listed["items"]
        assert (child["child_key"], child["parent_id"], child["flow"]) == (
            "flow",
            task["id"],
            "pong",
        )
        shown = client.get(f"/tasks/{child['id']}").json()
        assert (shown["status"], shown["input"], shown["output"]) == (
            "succeeded",
            {"n": 3},
            {"n": 3},
        )


# -- 2. failures: caught, retried ---------------------------------------------------------


def test_a_failing_sub_flow_is_caught_by_the_flow_state(subflow_service: TaskService) -> None:
    task = subflow_service.run_task("safe_divide", {"n": 0}).task
    assert task.status == "succeeded"
    assert task.output is not None
    assert (task.output["kind"], task.output["state"]) == ("DivisionByZero", "call")
    [child] = children(subflow_service, task.id)
    assert (child.status, child.error_kind, child.current_state) == (
        "failed",
        "DivisionByZero",
        "div",
    )
    assert task.output["message"] == f"the sub-flow failed: {child.error_message}"
    fine = subflow_service.run_task("safe_divide", {"n": 4}).task
    assert fine.output == {"q": 3.0}


def test_a_retried_flow_state_starts_a_new_child_each_attempt(
    subflow_service: TaskService,
) -> None:
    task = subflow_service.run_task("stubborn_divide", {"n": 0}).task
    assert task.status == "failed"
    assert task.error is not None
    assert (task.error.kind, task.current_state) == ("DivisionByZero", "call")
    steps = subflow_service.get_task(task.id, all_steps=True).steps
    assert [(step.state, step.attempt, step.status) for step in steps] == [
        ("call", 1, "failed"),
        ("call", 2, "failed"),
        ("call", 3, "failed"),
    ]
    found = children(subflow_service, task.id)
    assert [(row.parent_seq, row.parent_attempt) for row in found] == [
        (steps[0].seq, 1),
        (steps[1].seq, 2),
        (steps[2].seq, 3),
    ]
    assert len({row.id for row in found}) == 3
    assert all(row.status == "failed" for row in found)


# -- 3. pinning -----------------------------------------------------------------------------


def test_a_queued_parent_runs_the_sub_flow_version_it_started_with(
    subflow_service: TaskService, flows_dir: Path
) -> None:
    old_pong = subflow_service.catalog.get("pong").flow.digest
    before = subflow_service.enqueue_task("relay", {"n": 5}).task
    pong = flows_dir / "pong.yaml"
    pong.write_text(pong.read_text().replace("n: $input.n", "n: 99"))
    FlowReloader(flows_dir, subflow_service, warn=lambda _line: None).reload()
    new_pong = subflow_service.catalog.get("pong").flow.digest
    assert new_pong != old_pong
    after = subflow_service.enqueue_task("relay", {"n": 5}).task
    assert after.flow_version != before.flow_version
    with Working(subflow_service):
        wait_for(finished(subflow_service, before.id))
        wait_for(finished(subflow_service, after.id))
    assert subflow_service.get_task(before.id).output == {"n": 5}
    assert subflow_service.get_task(after.id).output == {"n": 99}
    [old_child] = children(subflow_service, before.id)
    [new_child] = children(subflow_service, after.id)
    assert (old_child.flow_digest, new_child.flow_digest) == (old_pong, new_pong)


# -- 4. cancel ------------------------------------------------------------------------------


def test_cancelling_a_parent_cancels_its_waiting_sub_flow(subflow_service: TaskService) -> None:
    task = subflow_service.enqueue_task("naps", {"seconds": 60}).task

    def child_waits() -> bool:
        found = children(subflow_service, task.id)
        return bool(found) and found[0].step_count >= 1

    with Working(subflow_service):
        wait_for(child_waits)
        subflow_service.cancel_task(task.id)
        wait_for(finished(subflow_service, task.id))
        [child] = children(subflow_service, task.id)
        wait_for(finished(subflow_service, child.id))
    parent = subflow_service.get_task(task.id, all_steps=True)
    assert parent.status == "cancelled", (parent.error, parent.steps)
    assert subflow_service.get_task(child.id).status == "cancelled"


def test_cancelling_the_sub_flow_alone_fails_the_flow_state(
    subflow_service: TaskService,
) -> None:
    task = subflow_service.enqueue_task("naps", {"seconds": 60}).task

    def child_waits() -> bool:
        found = children(subflow_service, task.id)
        return bool(found) and found[0].step_count >= 1

    with Working(subflow_service):
        wait_for(child_waits)
        [child] = children(subflow_service, task.id)
        subflow_service.cancel_task(child.id)
        wait_for(finished(subflow_service, task.id))
    parent = subflow_service.get_task(task.id)
    assert parent.status == "failed"
    assert parent.error is not None
    assert parent.error.kind == "Cancelled"
    assert subflow_service.get_task(child.id).status == "cancelled"


# -- 5. time limits -------------------------------------------------------------------------


def test_the_flow_states_timeout_ends_the_sub_flow(subflow_service: TaskService) -> None:
    started = time.monotonic()
    task = subflow_service.run_task("impatient", {"seconds": 60}).task
    assert time.monotonic() - started < 5
    assert (task.status, task.output) == ("succeeded", {"kind": "Timeout", "state": "call"})
    [child] = children(subflow_service, task.id)
    wait_for(finished(subflow_service, child.id))
    assert subflow_service.get_task(child.id).status in {"failed", "cancelled"}
    quick = subflow_service.run_task("impatient", {"seconds": 0}).task
    assert quick.output == {"slept": 0}


def test_the_flow_states_timeout_ends_the_sub_flow_on_a_worker(
    subflow_service: TaskService,
) -> None:
    task = subflow_service.enqueue_task("impatient", {"seconds": 60}).task
    with Working(subflow_service):
        wait_for(finished(subflow_service, task.id), timeout=5)
        [child] = children(subflow_service, task.id)
        wait_for(finished(subflow_service, child.id), timeout=5)
    done = subflow_service.get_task(task.id, all_steps=True)
    assert (done.status, done.output) == ("succeeded", {"kind": "Timeout", "state": "call"})
    [step] = done.steps
    assert step.error is not None
    assert step.error.message == (
        "the sub-flow failed: it did not end within the state's timeout_seconds (0.5 s)"
    )


def test_the_parents_deadline_ends_the_sub_flow(subflow_service: TaskService) -> None:
    started = time.monotonic()
    task = subflow_service.run_task("hurried", {"seconds": 60}).task
    assert time.monotonic() - started < 5
    assert task.status == "failed"
    assert task.error is not None
    assert task.error.kind == "TaskTimeout"
    [child] = children(subflow_service, task.id)
    assert child.deadline_at is not None
    wait_for(finished(subflow_service, child.id))
    assert subflow_service.get_task(child.id).status in {"failed", "cancelled"}


def test_a_sub_flow_past_its_own_deadline_fails_the_state_with_timeout(
    subflow_service: TaskService,
) -> None:
    task = subflow_service.run_task("patient", {"seconds": 60}).task
    assert task.status == "succeeded"
    assert task.output is not None
    assert task.output["kind"] == "Timeout"
    assert "timeout_seconds (0.3 s)" in str(task.output["message"])
    [child] = children(subflow_service, task.id)
    assert (child.status, child.error_kind) == ("failed", "TaskTimeout")


# -- resuming ------------------------------------------------------------------------------


def test_a_parent_handed_back_mid_sub_flow_finds_its_child_again(
    database: Database, flows_dir: Path, checker: FlowChecker
) -> None:
    catalog = FlowCatalog.load(flows_dir, checker)
    service = TaskService(SqlTaskRepository(database), catalog, sync_wait_seconds=0.2)
    try:
        answered = service.run_task("naps", {"seconds": 0.6}).task
        assert answered.status in {"pending", "running"}
        [child] = children(service, answered.id)
        with Working(service):
            wait_for(finished(service, answered.id))
        done = service.get_task(answered.id, all_steps=True)
        assert (done.status, done.output) == ("succeeded", {"slept": 0.6})
        assert [(step.state, step.attempt) for step in done.steps] == [("call", 1)]
        assert [row.id for row in children(service, answered.id)] == [child.id]
        assert [step.tool for step in service.repository.steps_of(child.id)] == ["wait", "wait"]
    finally:
        service.close()


# -- 6. three levels ------------------------------------------------------------------------


def test_a_chain_of_three_flows_runs_the_versions_each_locked(
    subflow_service: TaskService, flows_dir: Path
) -> None:
    catalog = subflow_service.catalog
    relay, pong = catalog.get("relay").flow.digest, catalog.get("pong").flow.digest
    before = subflow_service.enqueue_task("outer", {"n": 2}).task
    path = flows_dir / "pong.yaml"
    path.write_text(path.read_text().replace("n: $input.n", "n: 42"))
    FlowReloader(flows_dir, subflow_service, warn=lambda _line: None).reload()
    assert subflow_service.catalog.get("relay").flow.digest != relay
    with Working(subflow_service):
        wait_for(finished(subflow_service, before.id))
    assert subflow_service.get_task(before.id).output == {"n": 2}
    [middle] = children(subflow_service, before.id)
    [inner] = children(subflow_service, middle.id)
    assert (middle.flow_name, middle.flow_digest) == ("relay", relay)
    assert (inner.flow_name, inner.flow_digest) == ("pong", pong)
    fresh = subflow_service.run_task("outer", {"n": 2}).task
    assert fresh.output == {"n": 42}
    [fresh_middle] = children(subflow_service, fresh.id)
    [fresh_inner] = children(subflow_service, fresh_middle.id)
    assert fresh_inner.flow_digest == subflow_service.catalog.get("pong").flow.digest


# -- 7. an input refused at run time ---------------------------------------------------------


def test_an_input_the_sub_flow_refuses_at_run_time_fails_the_state(
    subflow_service: TaskService,
) -> None:
    task = subflow_service.run_task("loose", {"payload": {"n": "seven"}}).task
    assert task.status == "failed"
    assert task.error is not None
    assert (task.error.kind, task.current_state) == ("InvalidToolInput", "call")
    assert task.error.message == (
        "the sub-flow failed: the sub-flow's input is refused: n: Input should be a valid integer"
    )
    [child] = children(subflow_service, task.id)
    assert (child.status, child.step_count, child.error_kind) == ("failed", 0, "InvalidToolInput")
    fine = subflow_service.run_task("loose", {"payload": {"n": 7}}).task
    assert fine.output == {"n": 7}

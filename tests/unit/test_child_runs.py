"""Fan-out calls run as child tasks, on the in-memory store: the real service and
workers, with the `map` kind (and a `flow` state, for a child whose input is refused).

Each child is a task row with a parent; the parent joins them in input order whichever
ended first, fails fast or tolerates failures as its policy says, keeps at most
`max_concurrency` of them under way, and finds them again when it is resumed."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from taskrunner.catalog import FlowCatalog
from taskrunner.engine.validate import FlowChecker
from taskrunner.flowfile import check_source
from taskrunner.service import TaskService
from taskrunner.store.memory import InMemoryTaskRepository
from taskrunner.store.records import TaskRecord
from taskrunner.tools import ToolModel, ToolRegistry, tool
from taskrunner.tools.builtin import BUILTIN_TOOLS
from taskrunner.worker import Worker


class NapInput(ToolModel):
    ms: int


class NapOutput(ToolModel):
    ms: int


class Overlap:
    """How many naps run at once now, and the most that ever did."""

    def __init__(self) -> None:
        self.now = 0
        self.most = 0
        self.lock = threading.Lock()


NAPPING = Overlap()


@tool("test.nap_counted")
def nap(args: NapInput) -> NapOutput:
    """Sleep `ms` milliseconds, counting how many naps run at once."""
    with NAPPING.lock:
        NAPPING.now += 1
        NAPPING.most = max(NAPPING.most, NAPPING.now)
    time.sleep(args.ms / 1000)
    with NAPPING.lock:
        NAPPING.now -= 1
    return NapOutput(ms=args.ms)


def map_flow(name: str, extra: str = "", divisor: str = "$input.item") -> bytes:
    return f"""
name: {name}
input:
  numbers: {{type: array}}
start: fan
states:
  fan:
    type: map
    items: $input.numbers
    {extra}
    each:
      start: div
      states:
        div: {{type: task, tool: divide, args: {{dividend: 12, divisor: {divisor}}}, next: done}}
        done: {{type: succeed, output: {{q: $states.div.quotient, index: $input.index}}}}
    next: done
  done:
    type: succeed
    output: {{results: $states.fan}}
""".encode()


NAPS = b"""
name: naps
input:
  numbers: {type: array}
start: fan
states:
  fan:
    type: map
    items: $input.numbers
    max_concurrency: 2
    each:
      start: nap
      states:
        nap: {type: task, tool: test.nap_counted, args: {ms: $input.item}, next: done}
        done: {type: succeed, output: {ms: $states.nap.ms}}
    next: done
  done:
    type: succeed
    output: {results: $states.fan}
"""

NESTED = b"""
name: nested
input:
  numbers: {type: array}
start: outer
states:
  outer:
    type: map
    items: $input.numbers
    each:
      start: inner
      states:
        inner:
          type: map
          items: $input.item
          each:
            start: add
            states:
              add: {type: task, tool: add, args: {a: $input.item, b: 1}, next: done}
              done: {type: succeed, output: {sum: $states.add.sum}}
          next: done
        done: {type: succeed, output: {sums: $states.inner}}
    next: done
  done:
    type: succeed
    output: {results: $states.outer}
"""


ECHO_WORD = b"""
name: echo_word
input:
  word: {type: string}
start: echo
states:
  echo: {type: task, tool: echo, args: {text: $input.word}, next: done}
  done: {type: succeed, output: {text: $states.echo.text}}
"""

CHECKED = b"""
name: checked
input:
  words: {type: array}
start: call
states:
  call: {type: flow, flow: echo_word, input: {word: $input.words.0}, next: done}
  done: {type: succeed, output: {text: $states.call.text}}
"""


@pytest.fixture
def repository() -> InMemoryTaskRepository:
    return InMemoryTaskRepository()


@pytest.fixture
def service(repository: InMemoryTaskRepository) -> Iterator[TaskService]:
    checker = FlowChecker(ToolRegistry([*BUILTIN_TOOLS, nap]))
    echo_word = check_source(ECHO_WORD, "echo_word.yaml", checker).flow
    assert echo_word is not None
    checker = checker.with_flows({"echo_word": checker.signature(echo_word)})
    sources = {
        "map_divide": map_flow("map_divide"),
        "map_tolerant": map_flow("map_tolerant", "tolerated_failures: 1"),
        "naps": NAPS,
        "nested": NESTED,
        "checked": CHECKED,
        "naps_in_time": NAPS.replace(b"name: naps", b"name: naps_in_time\ntimeout_seconds: 0.3"),
    }
    flows = [echo_word]
    for name, source in sources.items():
        report = check_source(source, f"{name}.yaml", checker)
        assert report.flow is not None, report.problems
        flows.append(report.flow)
    service = TaskService(repository, FlowCatalog.of(flows, checker))
    yield service
    service.close()


def children_of(repository: InMemoryTaskRepository, task_id: uuid.UUID) -> list[TaskRecord]:
    found = repository.children_of(task_id, 1, 1)
    return sorted(found, key=lambda child: int((child.child_key or ":0").split(":")[1]))


def test_a_fan_out_run_here_joins_its_children_in_input_order(
    service: TaskService, repository: InMemoryTaskRepository
) -> None:
    task = service.run_task("map_divide", {"numbers": [1, 2, 3, 4]}).task
    assert task.status == "succeeded"
    assert task.output == {"results": [{"q": 12.0 / n, "index": n - 1} for n in (1, 2, 3, 4)]}
    children = children_of(repository, task.id)
    assert [child.child_key for child in children] == [f"item:{n}" for n in range(4)]
    assert {child.status for child in children} == {"succeeded"}
    assert [child.input for child in children] == [
        {"item": n, "index": n - 1} for n in (1, 2, 3, 4)
    ]
    assert all(len(repository.steps_of(child.id)) == 1 for child in children)
    # The parent's history has one step for the whole fan-out.
    (step,) = repository.steps_of(task.id)
    assert (step.tool, step.output) == ("map", {"items": task.output["results"]})


def test_children_are_hidden_from_the_list_and_listed_by_parent(service: TaskService) -> None:
    task = service.run_task("map_divide", {"numbers": [1, 2, 3]}).task
    assert [item.id for item in service.list_tasks().items] == [task.id]
    children = service.list_tasks(parent=task.id).items
    assert len(children) == 3
    assert {child.status for child in children} == {"succeeded"}
    one = service.get_task(children[0].id)
    assert one.parent_id == task.id
    assert one.child_key is not None
    assert one.child_key.startswith("item:")


def test_a_failed_item_fails_the_fan_out_with_its_own_kind(service: TaskService) -> None:
    task = service.run_task("map_divide", {"numbers": [1, 0, 3]}).task
    assert task.status == "failed"
    assert task.error is not None
    assert task.error.kind == "DivisionByZero"
    assert task.error.message.startswith("item 1 failed: ")


def test_a_tolerated_failure_leaves_a_null_in_its_place(service: TaskService) -> None:
    task = service.run_task("map_tolerant", {"numbers": [1, 0, 3]}).task
    assert task.status == "succeeded"
    assert task.output == {"results": [{"q": 12.0, "index": 0}, None, {"q": 4.0, "index": 2}]}
    failed = service.run_task("map_tolerant", {"numbers": [0, 0, 3]}).task
    assert failed.error is not None
    assert failed.error.kind == "ToleratedFailuresExceeded"


def test_no_more_children_than_max_concurrency_run_at_once(service: TaskService) -> None:
    NAPPING.most = 0
    task = service.run_task("naps", {"numbers": [30, 10, 20, 10, 30, 10]}).task
    assert task.status == "succeeded"
    assert task.output == {"results": [{"ms": ms} for ms in (30, 10, 20, 10, 30, 10)]}
    assert NAPPING.most == 2


def test_fan_outs_nest(service: TaskService, repository: InMemoryTaskRepository) -> None:
    task = service.run_task("nested", {"numbers": [[1, 2], [], [5]]}).task
    assert task.status == "succeeded"
    assert task.output == {
        "results": [{"sums": [{"sum": 2}, {"sum": 3}]}, {"sums": []}, {"sums": [{"sum": 6}]}]
    }
    first = children_of(repository, task.id)[0]
    assert len(repository.children_of(first.id, 1, 1)) == 2


def test_a_queued_fan_out_runs_on_a_worker(service: TaskService) -> None:
    task = service.enqueue_task("map_divide", {"numbers": [3, 4, 6]}).task
    stop = threading.Event()
    worker = threading.Thread(
        target=Worker(service, concurrency=2, poll_seconds=0.05).run, args=(stop,)
    )
    worker.start()
    try:
        deadline = time.monotonic() + 10
        while service.get_task(task.id).status in ("pending", "running"):
            assert time.monotonic() < deadline
            time.sleep(0.02)
    finally:
        stop.set()
        worker.join()
    done = service.get_task(task.id)
    assert done.output == {
        "results": [{"q": 4.0, "index": 0}, {"q": 3.0, "index": 1}, {"q": 2.0, "index": 2}]
    }


def test_a_resumed_parent_runs_only_the_children_that_had_not_ended(
    service: TaskService, repository: InMemoryTaskRepository, monkeypatch: pytest.MonkeyPatch
) -> None:
    stopped = threading.Event()
    spawn = repository.spawn_children

    def spawn_then_stop(*args: Any) -> list[TaskRecord]:
        stored = spawn(*args)
        stopped.set()
        return stored

    monkeypatch.setattr(repository, "spawn_children", spawn_then_stop)
    task = service.enqueue_task("map_divide", {"numbers": [1, 2, 3]}).task
    (claimed,) = service.claim(1)
    # The worker stops as the children are stored: the parent goes back to the queue.
    service.resume(claimed, stopped)
    assert service.get_task(task.id).status == "pending"
    children = children_of(repository, task.id)
    assert len(children) == 3
    # Meanwhile, another runner runs the first child to its end.
    claimed = {found.id: found for found in service.claim(10)}
    assert set(claimed) == {task.id, *(child.id for child in children)}
    service.resume(claimed.pop(children[0].id))
    first = repository.get_task(children[0].id)
    assert first is not None
    assert first.status == "succeeded"
    for other in children[1:]:
        service.release(claimed.pop(other.id))
    service.resume(claimed.pop(task.id))
    done = service.get_task(task.id)
    assert done.status == "succeeded"
    assert done.output == {"results": [{"q": 12.0 / n, "index": n - 1} for n in (1, 2, 3)]}
    again = children_of(repository, task.id)
    assert [child.id for child in again] == [child.id for child in children]
    assert again[0].finished_at == first.finished_at
    assert [len(repository.steps_of(child.id)) for child in again] == [1, 1, 1]


def test_a_child_whose_input_its_flow_refuses_is_stored_failed(
    service: TaskService, repository: InMemoryTaskRepository
) -> None:
    good = service.run_task("checked", {"words": ["a"]}).task
    assert good.output == {"text": "a"}, good.error
    task = service.run_task("checked", {"words": [2]}).task
    assert task.status == "failed"
    assert task.error is not None
    assert task.error.kind == "InvalidToolInput"
    assert "the sub-flow's input is refused: " in task.error.message
    [refused] = repository.children_of(task.id, 1, 1)
    assert refused.child_key == "flow"
    assert (refused.status, refused.step_count, refused.started_at) == ("failed", 0, None)


def test_a_synchronous_run_out_of_time_leaves_its_children_to_the_queue(
    service: TaskService, repository: InMemoryTaskRepository
) -> None:
    service.sync_wait_seconds = 0.1
    started = service.run_task("naps", {"numbers": [200, 200, 200]}).task
    assert started.status == "pending"
    assert len(repository.children_of(started.id, 1, 1)) == 3
    stop = threading.Event()
    worker = Worker(service, concurrency=2, poll_seconds=0.05)
    thread = threading.Thread(target=worker.run, args=(stop,))
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while service.get_task(started.id).finished_at is None:
            assert time.monotonic() < deadline
            time.sleep(0.02)
    finally:
        stop.set()
        thread.join()
    done = service.get_task(started.id)
    assert done.output == {"results": [{"ms": 200}] * 3}
    children = children_of(repository, started.id)
    assert [len(repository.steps_of(child.id)) for child in children] == [1, 1, 1]


def test_children_have_their_parents_deadline(
    service: TaskService, repository: InMemoryTaskRepository
) -> None:
    task = service.run_task("naps_in_time", {"numbers": [100, 1000, 1000]}).task
    assert task.status == "failed"
    assert task.error is not None
    assert task.error.kind == "TaskTimeout"
    children = children_of(repository, task.id)
    created = service.get_task(task.id).created_at
    assert {child.deadline_at for child in children} == {created + timedelta(seconds=0.3)}
    assert children[0].status == "succeeded"
    late = repository.get_task(children[1].id)
    assert late is not None
    assert (late.status, late.error_kind) == ("failed", "TaskTimeout")


@pytest.mark.parametrize("concurrency", [1, 2])
def test_a_worker_busy_with_parents_still_runs_the_children_it_claimed(
    service: TaskService, concurrency: int
) -> None:
    tasks = [
        service.enqueue_task("naps", {"numbers": [5] * 8}).task for _ in range(4 * concurrency)
    ]
    stop = threading.Event()
    thread = threading.Thread(
        target=Worker(service, concurrency=concurrency, poll_seconds=0.05).run, args=(stop,)
    )
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while any(service.get_task(task.id).finished_at is None for task in tasks):
            assert time.monotonic() < deadline, "the parents wait for children nobody runs"
            time.sleep(0.02)
    finally:
        stop.set()
        thread.join()
    assert {service.get_task(task.id).status for task in tasks} == {"succeeded"}

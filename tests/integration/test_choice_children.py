"""A choice's decision is recorded by every chart the service runs, on both backends: the
task's own, each map item's and each sub-flow's, whether the caller waits or a worker
runs the task from the queue."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from taskrunner.catalog import FlowCatalog
from taskrunner.engine.validate import FlowChecker
from taskrunner.service import TaskService
from taskrunner.store.database import Database
from taskrunner.store.sql import SqlTaskRepository
from taskrunner.tools import builtin_registry

SIGN_OF = """
name: sign_of
input:
  n: {type: number}
start: sign
states:
  sign:
    type: choice
    rules: [{when: {value: $input.n, lt: 0}, next: minus}]
    default: plus
  minus: {type: succeed, output: {sign: minus}}
  plus: {type: succeed, output: {sign: plus}}
"""

SIGNS = """
name: signs
input:
  numbers: {type: array, items: {type: number}}
  first: {type: number}
start: any
states:
  any:
    type: choice
    rules: [{when: {value: $input.first, eq: 0}, next: zero}]
    default: each
  zero: {type: succeed, output: {signs: []}}
  each:
    type: map
    items: $input.numbers
    each:
      start: sign
      states:
        sign:
          type: choice
          rules: [{when: {value: $input.item, lt: 0}, next: minus}]
          default: plus
        minus: {type: succeed, output: {sign: minus}}
        plus: {type: succeed, output: {sign: plus}}
    next: first
  first:
    type: flow
    flow: sign_of
    input: {n: $input.first}
    next: done
  done:
    type: succeed
    output: {signs: $states.each, first: $states.first.sign}
"""


@pytest.fixture
def service(database: Database, tmp_path: Path) -> Iterator[TaskService]:
    flows = tmp_path / "flows"
    flows.mkdir()
    (flows / "sign_of.yaml").write_text(SIGN_OF)
    (flows / "signs.yaml").write_text(SIGNS)
    catalog = FlowCatalog.load(flows, FlowChecker(builtin_registry()))
    running = TaskService(SqlTaskRepository(database), catalog)
    yield running
    running.close()


def _decisions(service: TaskService, task_id: uuid.UUID) -> list[tuple[str, object, object]]:
    steps = service.get_task(task_id).steps
    return [(step.state, step.input, step.output) for step in steps if step.tool == "choice"]


def _check(service: TaskService, task_id: uuid.UUID) -> None:
    task = service.get_task(task_id)
    assert (task.status, task.output) == (
        "succeeded",
        {"signs": [{"sign": "minus"}, {"sign": "plus"}], "first": "minus"},
    )
    assert [(step.seq, step.state, step.tool) for step in task.steps] == [
        (1, "any", "choice"),
        (2, "each", "map"),
        (3, "first", "flow"),
    ]
    assert _decisions(service, task.id) == [
        ("any", {"$input.first": -3}, {"rule": "default", "next": "each"})
    ]
    children = {
        child.child_key: _decisions(service, child.id)
        for seq in (2, 3)
        for child in service.repository.children_of(task.id, seq, 1)
    }
    assert children == {
        "item:0": [("sign", {"$input.item": -1}, {"rule": 1, "next": "minus"})],
        "item:1": [("sign", {"$input.item": 2}, {"rule": "default", "next": "plus"})],
        "flow": [("sign", {"$input.n": -3}, {"rule": 1, "next": "minus"})],
    }


def test_a_task_its_map_items_and_its_sub_flow_record_their_decisions(
    service: TaskService,
) -> None:
    task = service.run_task("signs", {"numbers": [-1, 2], "first": -3}).task
    _check(service, task.id)


def test_a_queued_task_records_the_same_decisions(service: TaskService) -> None:
    task = service.enqueue_task("signs", {"numbers": [-1, 2], "first": -3}).task
    deadline = time.monotonic() + 30
    while service.get_task(task.id).finished_at is None:
        assert time.monotonic() < deadline, "the task did not end"
        for claimed in service.claim(1):
            service.resume(claimed)
    _check(service, task.id)

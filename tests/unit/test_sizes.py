"""Outputs have a size limit: a step's output past it fails the step with `OutputTooLarge`,
which `catch` and `retry` match like any kind; a task's output past it fails the task; and
the service never stores either (on the in-memory twin)."""

from __future__ import annotations

import pytest

from taskrunner.catalog import FlowCatalog
from taskrunner.engine.flow import Flow
from taskrunner.engine.runner import InMemoryRunner
from taskrunner.engine.sizes import MAX_OUTPUT_BYTES, OUTPUT_TOO_LARGE, oversize
from taskrunner.engine.validate import FlowChecker
from taskrunner.flowfile import check_source
from taskrunner.service import TaskService
from taskrunner.store.memory import InMemoryTaskRepository
from taskrunner.tools import ToolRegistry

CAUGHT = b"""
name: caught
input:
  text: {type: string}
start: echo
states:
  echo:
    type: task
    tool: echo
    args: {text: $input.text}
    catch: [{errors: [OutputTooLarge], next: too_big}]
    next: done
  done: {type: succeed, output: {text: $states.echo.text}}
  too_big: {type: fail, error: TooBig, message: the echo was too large}
"""

DOUBLED = b"""
name: doubled
input:
  text: {type: string}
start: echo
states:
  echo: {type: task, tool: echo, args: {text: $input.text}, next: done}
  done: {type: succeed, output: {one: $states.echo.text, two: $input.text}}
"""


def flow_of(source: bytes, checker: FlowChecker) -> Flow:
    flow = check_source(source, "flow.yaml", checker).flow
    assert flow is not None
    return flow


def test_the_limit_counts_compact_json_in_utf8() -> None:
    assert oversize({"t": "x" * (MAX_OUTPUT_BYTES - 8)}) is None  # {"t":"…"} is 8 more
    assert oversize({"t": "x" * (MAX_OUTPUT_BYTES - 7)}) is not None
    assert oversize({"t": "é" * (MAX_OUTPUT_BYTES // 2)}) is not None  # 2 bytes each


def test_a_step_output_past_the_limit_fails_the_step(
    echo_add: Flow, registry: ToolRegistry
) -> None:
    text = "x" * MAX_OUTPUT_BYTES
    result = InMemoryRunner(registry).run(echo_add, {"text": text, "a": 1, "b": 2})
    assert result.status == "failed"
    (step,) = result.steps
    assert (step.status, step.output) == ("failed", None)
    assert step.error is not None
    assert step.error.kind == OUTPUT_TOO_LARGE
    assert "over the limit of 256.0 KiB" in step.error.message


def test_catch_matches_an_output_too_large(checker: FlowChecker, registry: ToolRegistry) -> None:
    flow = flow_of(CAUGHT, checker)
    result = InMemoryRunner(registry).run(flow, {"text": "x" * MAX_OUTPUT_BYTES})
    assert (result.status, result.state) == ("failed", "too_big")
    assert result.error is not None
    assert result.error.kind == "TooBig"
    small = InMemoryRunner(registry).run(flow, {"text": "hello"})
    assert (small.status, small.output) == ("succeeded", {"text": "hello"})


@pytest.mark.parametrize("size", [MAX_OUTPUT_BYTES // 2 + 100, MAX_OUTPUT_BYTES // 3])
def test_a_task_output_past_the_limit_fails_the_task_and_is_not_stored(
    checker: FlowChecker, size: int
) -> None:
    flow = flow_of(DOUBLED, checker)
    repository = InMemoryTaskRepository()
    service = TaskService(repository, FlowCatalog.of([flow], checker))
    task = service.run_task("doubled", {"text": "x" * size}).task
    stored = repository.get_task(task.id)
    assert stored is not None
    if size > MAX_OUTPUT_BYTES // 2:
        assert (task.status, task.output) == ("failed", None)
        assert task.error is not None
        assert task.error.kind == OUTPUT_TOO_LARGE
        assert stored.output is None
    else:
        assert task.status == "succeeded"
        assert stored.output == {"one": "x" * size, "two": "x" * size}
    assert [step.status for step in task.steps] == ["succeeded"]

"""Golden traces: every shipped flow, `taskrunner/flows/NAME.yaml`, and every flow of
`tests/golden/flows/` runs on the inputs of `tests/golden/NAME.trace.json` and must take
exactly the recorded steps, and end exactly as recorded. Running twice gives identical
traces (determinism), and replaying the recorded steps reaches the same end.

The flows of `tests/golden/flows/` call the test tools of `tests/plugins/`: a nap that
outlasts its state's timeout, and a tool whose output no database can store. They go
through the same driver as the service, so their traces are what the service records."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest

from taskrunner.engine.flow import Flow
from taskrunner.engine.interpreter import Execution, replay
from taskrunner.engine.runner import InMemoryRunner, RunResult
from taskrunner.engine.steps import (
    TASK_TIMEOUT,
    CallTool,
    Decision,
    Fail,
    Finish,
    Step,
    StepError,
)
from taskrunner.engine.validate import FlowChecker
from taskrunner.linking import Source, link
from taskrunner.tools import ToolRegistry, load_registry

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "tests" / "golden"
PLUGINS = ROOT / "tests" / "plugins"
FLOW_FILES = sorted(
    [*(ROOT / "taskrunner" / "flows").glob("*.yaml"), *(GOLDEN / "flows").glob("*.yaml")]
)
CASES = [
    pytest.param(path, index, case, id=f"{path.stem}-{index}")
    for path in FLOW_FILES
    for index, case in enumerate(json.loads((GOLDEN / f"{path.stem}.trace.json").read_text()))
]


@pytest.fixture(scope="module")
def registry() -> Iterator[ToolRegistry]:
    """The built-in tools and the test tools of `tests/plugins/`."""
    sys.path.insert(0, str(PLUGINS))
    try:
        yield load_registry()
    finally:
        sys.path.remove(str(PLUGINS))


@pytest.fixture(scope="module")
def load(registry: ToolRegistry) -> Callable[[Path], Flow]:
    """Each flow as its flows directory loads it: linked with the others, so that one
    that calls another is pinned to its version (`greet_and_sum` runs `echo_add`)."""
    checker = FlowChecker(registry)
    linkage = link([Source(path.name, path.read_bytes()) for path in FLOW_FILES], checker)
    flows: dict[str, Flow] = {}
    for linked in linkage.linked:
        assert linked.flow is not None, [str(problem) for problem in linked.report.problems]
        flows[linked.source.file] = linked.flow

    def load(path: Path) -> Flow:
        return flows[path.name]

    return load


def _trace(result: RunResult, sleeps: list[float]) -> str:
    """Canonical JSON, so that 5 and 5.0 differ as they do on the wire."""
    return json.dumps({**_ending(result), "sleeps": sleeps}, sort_keys=True)


def _ending(result: RunResult) -> dict[str, Any]:
    """How a run ended and its steps; with those of its fan-outs' children, by key."""
    found = {
        "status": result.status,
        "state": result.state,
        "output": result.output,
        "error": asdict(result.error) if result.error else None,
        "steps": [asdict(step) for step in result.steps],
    }
    if result.children:
        found["children"] = {key: _ending(child) for key, child in result.children.items()}
    return found


def _run(registry: ToolRegistry, flow: Flow, data: dict[str, Any]) -> tuple[RunResult, str]:
    sleeps: list[float] = []
    result = InMemoryRunner(registry, sleep=sleeps.append).run(flow, data)
    return result, _trace(result, sleeps)


def test_every_flow_has_a_golden_trace() -> None:
    assert FLOW_FILES
    missing = [p.name for p in FLOW_FILES if not (GOLDEN / f"{p.stem}.trace.json").exists()]
    assert missing == []


def test_the_golden_traces_cover_timeouts_waits_and_unstorable_outputs() -> None:
    kinds = {
        step["error"]["kind"]
        for path in FLOW_FILES
        for case in json.loads((GOLDEN / f"{path.stem}.trace.json").read_text())
        for step in case["steps"]
        if step["error"]
    }
    assert {"Timeout", "InvalidToolOutput"} <= kinds
    ends = {
        case["error"]["kind"]
        for path in FLOW_FILES
        for case in json.loads((GOLDEN / f"{path.stem}.trace.json").read_text())
        if case["error"]
    }
    assert {"TaskTimeout", "InvalidWait"} <= ends


@pytest.mark.parametrize(("path", "index", "case"), CASES)
def test_the_flow_takes_exactly_the_golden_steps(
    registry: ToolRegistry,
    load: Callable[[Path], Flow],
    path: Path,
    index: int,
    case: dict[str, Any],
) -> None:
    expected = {key: value for key, value in case.items() if key != "input"}
    _, trace = _run(registry, load(path), case["input"])
    assert json.loads(trace) == expected
    assert trace == json.dumps(expected, sort_keys=True)


@pytest.mark.parametrize(("path", "index", "case"), CASES)
def test_the_same_input_gives_the_same_trace(
    registry: ToolRegistry,
    load: Callable[[Path], Flow],
    path: Path,
    index: int,
    case: dict[str, Any],
) -> None:
    flow = load(path)
    assert _run(registry, flow, case["input"])[1] == _run(registry, flow, case["input"])[1]


@pytest.mark.parametrize(("path", "index", "case"), CASES)
def test_replaying_the_recorded_steps_reaches_the_same_end(
    registry: ToolRegistry,
    load: Callable[[Path], Flow],
    path: Path,
    index: int,
    case: dict[str, Any],
) -> None:
    runner = InMemoryRunner(registry)
    plan = runner.plan(load(path))
    steps = [
        Step(**{**step, "error": StepError(**step["error"]) if step["error"] else None})
        for step in case["steps"]
    ]
    execution = replay(plan, plan.validate_input(case["input"]), steps)
    _assert_end(execution.decide(), case)


@pytest.mark.parametrize(("path", "index", "case"), CASES)
def test_a_checkpoint_after_any_step_resumes_to_the_same_steps_and_end(
    registry: ToolRegistry,
    load: Callable[[Path], Flow],
    path: Path,
    index: int,
    case: dict[str, Any],
) -> None:
    """A claim resumes from the checkpoint stored with the task's last step: taken after
    any step, through JSON as the store keeps it, it leads to the recorded rest."""
    runner = InMemoryRunner(registry)
    plan = runner.plan(load(path))
    data = plan.validate_input(case["input"])
    steps = [
        Step(**{**step, "error": StepError(**step["error"]) if step["error"] else None})
        for step in case["steps"]
    ]
    for done in range(len(steps) + 1):
        stored = json.loads(json.dumps(replay(plan, data, steps[:done]).checkpoint()))
        assert stored["seq"] == done
        resumed = Execution.resume(plan, data, stored)
        assert resumed is not None
        for step in steps[done:]:
            resumed.record(step)
        _assert_end(resumed.decide(), case)


def _assert_end(end: Decision, case: dict[str, Any]) -> None:
    """The recorded steps lead to the recorded end. A task past its flow's deadline was
    ended by its runner, which reads the clock, not by the flow: the steps lead to the
    call it was about to make, in the state it failed in."""
    if case["status"] == "succeeded":
        assert end == Finish(case["state"], case["output"])
    elif case["error"]["kind"] == TASK_TIMEOUT:
        assert isinstance(end, CallTool)
        assert end.state == case["state"]
    else:
        assert end == Fail(case["state"], StepError(**case["error"]))

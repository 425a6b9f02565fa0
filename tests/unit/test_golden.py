"""Golden traces: every shipped flow, `taskrunner/flows/NAME.yaml`, runs on the inputs of
`tests/golden/NAME.trace.json` and must take exactly the recorded steps, and end exactly as
recorded. Running twice gives identical traces (determinism), and replaying the recorded
steps reaches the same end."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest

from taskrunner.engine.flow import Flow
from taskrunner.engine.interpreter import replay
from taskrunner.engine.runner import InMemoryRunner, RunResult
from taskrunner.engine.steps import Fail, Finish, Step, StepError
from taskrunner.tools import ToolRegistry

ROOT = Path(__file__).resolve().parents[2]
FLOWS = ROOT / "taskrunner" / "flows"
GOLDEN = ROOT / "tests" / "golden"
CASES = [
    pytest.param(path.stem, index, case, id=f"{path.stem}-{index}")
    for path in sorted(FLOWS.glob("*.yaml"))
    for index, case in enumerate(json.loads((GOLDEN / f"{path.stem}.trace.json").read_text()))
]


def _trace(result: RunResult, sleeps: list[float]) -> str:
    """Canonical JSON, so that 5 and 5.0 differ as they do on the wire."""
    return json.dumps(
        {
            "status": result.status,
            "state": result.state,
            "output": result.output,
            "error": asdict(result.error) if result.error else None,
            "sleeps": sleeps,
            "steps": [asdict(step) for step in result.steps],
        },
        sort_keys=True,
    )


def _run(registry: ToolRegistry, flow: Flow, data: dict[str, Any]) -> tuple[RunResult, str]:
    sleeps: list[float] = []
    result = InMemoryRunner(registry, sleep=sleeps.append).run(flow, data)
    return result, _trace(result, sleeps)


def test_every_flow_has_a_golden_trace() -> None:
    flows = sorted(FLOWS.glob("*.yaml"))
    assert flows
    missing = [path.name for path in flows if not (GOLDEN / f"{path.stem}.trace.json").exists()]
    assert missing == []


@pytest.mark.parametrize(("name", "index", "case"), CASES)
def test_the_flow_takes_exactly_the_golden_steps(
    registry: ToolRegistry,
    load_flow: Callable[[str], Flow],
    name: str,
    index: int,
    case: dict[str, Any],
) -> None:
    expected = {key: value for key, value in case.items() if key != "input"}
    _, trace = _run(registry, load_flow(name), case["input"])
    assert json.loads(trace) == expected
    assert trace == json.dumps(expected, sort_keys=True)


@pytest.mark.parametrize(("name", "index", "case"), CASES)
def test_the_same_input_gives_the_same_trace(
    registry: ToolRegistry,
    load_flow: Callable[[str], Flow],
    name: str,
    index: int,
    case: dict[str, Any],
) -> None:
    flow = load_flow(name)
    assert _run(registry, flow, case["input"])[1] == _run(registry, flow, case["input"])[1]


@pytest.mark.parametrize(("name", "index", "case"), CASES)
def test_replaying_the_recorded_steps_reaches_the_same_end(
    registry: ToolRegistry,
    load_flow: Callable[[str], Flow],
    name: str,
    index: int,
    case: dict[str, Any],
) -> None:
    runner = InMemoryRunner(registry)
    plan = runner.plan(load_flow(name))
    steps = [
        Step(**{**step, "error": StepError(**step["error"]) if step["error"] else None})
        for step in case["steps"]
    ]
    execution = replay(plan, plan.validate_input(case["input"]), steps)
    end = execution.decide()
    if case["status"] == "succeeded":
        assert end == Finish(case["state"], case["output"])
    else:
        assert end == Fail(case["state"], StepError(**case["error"]))

"""The wait state in the engine: its two steps, the wake time fixed by the first and
honoured by the second, replay and checkpoints mid-wait, timestamps, and the deadline that
the driver gives each call (`take_step`) and the in-memory runner enforces."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
import yaml

from taskrunner.engine.driver import take_step
from taskrunner.engine.flow import Flow
from taskrunner.engine.interpreter import Execution, replay
from taskrunner.engine.plan import FlowPlan
from taskrunner.engine.runner import VIRTUAL_START, InMemoryRunner
from taskrunner.engine.steps import TASK_TIMEOUT, CallTool, Fail, Finish
from taskrunner.engine.timers import format_timestamp, parse_timestamp, timer_step
from taskrunner.engine.validate import FlowChecker
from taskrunner.errors import ToolRegistryError
from taskrunner.tools import ToolModel, ToolRegistry, builtin_registry, tool

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
WAIT_THEN_ADD = """
name: wait_then_add
input:
  seconds: {type: number}
start: pause
states:
  pause: {type: wait, seconds: $input.seconds, next: add}
  add: {type: task, tool: add, args: {a: 2, b: 3}, next: done}
  done: {type: succeed, output: {sum: $states.add.sum}}
"""


@pytest.fixture
def make_flow(checker: FlowChecker) -> Callable[[str], Flow]:
    def make(text: str) -> Flow:
        result = checker.check(yaml.safe_load(text))
        assert result.flow is not None, result.diagnostics
        return result.flow

    return make


def test_a_wait_is_a_step_that_fixes_the_wake_time_then_one_made_not_before_it(
    make_flow: Callable[[str], Flow], registry: ToolRegistry
) -> None:
    execution = Execution(FlowPlan(make_flow(WAIT_THEN_ADD), registry), {"seconds": 90})
    begin = execution.decide()
    assert begin == CallTool(1, "pause", "wait", 1, {"seconds": 90})
    assert isinstance(begin, CallTool)
    step = timer_step(begin, NOW)
    assert step.output == {"until": "2026-03-01T12:01:30Z"}
    execution.record(step)

    wake = execution.decide()
    assert isinstance(wake, CallTool)
    assert (wake.seq, wake.state, wake.tool, wake.attempt) == (2, "pause", "wait", 2)
    assert wake.not_before == NOW + timedelta(seconds=90)
    assert wake.delay_seconds == 0.0
    # The second step is made later, but says the same wake time whatever the clock.
    execution.record(timer_step(wake, NOW + timedelta(days=3)))

    add = execution.decide()
    assert add == CallTool(3, "add", "add", 1, {"a": 2, "b": 3})


def test_a_replay_or_a_checkpoint_taken_mid_wait_keeps_the_wake_time(
    make_flow: Callable[[str], Flow], registry: ToolRegistry
) -> None:
    plan = FlowPlan(make_flow(WAIT_THEN_ADD), registry)
    first = Execution(plan, {"seconds": 5})
    begin = first.decide()
    assert isinstance(begin, CallTool)
    step = timer_step(begin, NOW)
    first.record(step)
    expected = first.decide()

    assert replay(plan, {"seconds": 5}, [step]).decide() == expected
    stored = json.loads(json.dumps(first.checkpoint()))
    resumed = Execution.resume(plan, {"seconds": 5}, stored)
    assert resumed is not None
    assert resumed.decide() == expected


@pytest.mark.parametrize(
    ("seconds", "message"),
    [(-1, "outside 0 to 31,536,000"), (40_000_000, "outside 0 to 31,536,000")],
)
def test_a_referenced_number_of_seconds_out_of_range_fails_the_task(
    make_flow: Callable[[str], Flow], registry: ToolRegistry, seconds: int, message: str
) -> None:
    execution = Execution(FlowPlan(make_flow(WAIT_THEN_ADD), registry), {"seconds": seconds})
    decision = execution.decide()
    assert isinstance(decision, Fail)
    assert decision.state == "pause"
    assert decision.error.kind == "InvalidWait"
    assert message in decision.error.message


@pytest.mark.parametrize(
    ("text", "moment"),
    [
        ("2026-01-31T09:00:00Z", datetime(2026, 1, 31, 9, tzinfo=UTC)),
        ("2026-01-31t10:00:00+01:00", datetime(2026, 1, 31, 9, tzinfo=UTC)),
        ("2026-01-31 09:00:00.25z", datetime(2026, 1, 31, 9, 0, 0, 250_000, tzinfo=UTC)),
        ("2026-01-31T09:00:00.123456789Z", datetime(2026, 1, 31, 9, 0, 0, 123_456, tzinfo=UTC)),
        ("2026-01-31T09:00:00", None),
        ("2026-01-31", None),
        ("2026-02-30T09:00:00Z", None),
        ("2026-01-31T25:00:00Z", None),
        ("20260131T090000Z", None),
        ("next tuesday", None),
    ],
)
def test_timestamps_are_rfc_3339_with_an_offset(text: str, moment: datetime | None) -> None:
    assert parse_timestamp(text) == moment


def test_wake_times_are_written_in_utc() -> None:
    assert format_timestamp(datetime(2026, 1, 31, 10, tzinfo=UTC) - timedelta(hours=1)) == (
        "2026-01-31T09:00:00Z"
    )


def test_the_in_memory_runner_waits_only_what_is_left(
    make_flow: Callable[[str], Flow], registry: ToolRegistry
) -> None:
    now = [NOW]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += timedelta(seconds=seconds)

    def clock() -> datetime:
        # Each reading takes a second: the wait's first step is made a second after the
        # run starts, and the wake is due 90 s after that.
        now[0] += timedelta(seconds=1)
        return now[0]

    runner = InMemoryRunner(registry, sleep=sleep, clock=clock)
    result = runner.run(make_flow(WAIT_THEN_ADD), {"seconds": 90})
    assert result.status == "succeeded"
    assert slept == [89.0]


def test_the_in_memory_runner_keeps_virtual_time_without_a_clock(
    make_flow: Callable[[str], Flow], registry: ToolRegistry
) -> None:
    result = InMemoryRunner(registry).run(make_flow(WAIT_THEN_ADD), {"seconds": 90})
    until = VIRTUAL_START + timedelta(seconds=90)
    assert result.steps[0].output == {"until": format_timestamp(until)}
    assert result.output == {"sum": 5}


def test_the_in_memory_runner_fails_a_wait_past_the_deadline_at_the_deadline(
    make_flow: Callable[[str], Flow], registry: ToolRegistry
) -> None:
    slept: list[float] = []
    flow = make_flow(WAIT_THEN_ADD.replace("start: pause", "timeout_seconds: 30\nstart: pause"))
    result = InMemoryRunner(registry, sleep=slept.append).run(flow, {"seconds": 90})
    assert result.status == "failed"
    assert result.error is not None
    assert result.error.kind == TASK_TIMEOUT
    assert result.error.message == "the task did not end within its timeout_seconds (30 s)"
    assert slept == [30.0]
    assert [step.attempt for step in result.steps] == [1]


class _Gate(ToolModel):
    token: str


_RELEASE = threading.Event()


@tool("slow.gate")
def _gate(args: _Gate) -> _Gate:
    """Wait until the test lets it go (so that it outlasts any timeout it is given)."""
    _RELEASE.wait(5)
    return args


class _Journal:
    def __init__(self, left: float | None) -> None:
        self.left = left

    def before_call(self, call: CallTool) -> bool:
        return True

    def now(self) -> datetime:
        return NOW

    def time_left(self) -> float | None:
        return self.left

    def record(self, *_: object) -> bool:
        return True

    def settle(self, decision: Finish | Fail) -> None:
        pass


def test_a_call_gets_at_most_the_time_left_and_is_cut_short_as_a_task_timeout() -> None:
    registry = ToolRegistry([_gate])
    call = CallTool(1, "gate", "slow.gate", 1, {"token": "x"}, timeout_seconds=60)
    try:
        step = take_step(registry, call, _Journal(left=0.05))
    finally:
        _RELEASE.set()
    assert step.status == "failed"
    assert step.error is not None
    assert step.error.kind == TASK_TIMEOUT
    _RELEASE.clear()


def test_a_call_within_the_time_left_keeps_its_own_timeout() -> None:
    registry = builtin_registry()
    call = CallTool(1, "add", "add", 1, {"a": 1, "b": 2}, timeout_seconds=1)
    assert take_step(registry, call, _Journal(left=100)).output == {"sum": 3}
    assert take_step(registry, call, _Journal(left=None)).output == {"sum": 3}


def test_no_tool_may_take_the_name_of_wait_steps() -> None:
    @tool("wait")
    def wait(args: _Gate) -> _Gate:
        """A tool that would be mistaken for a wait step."""
        return args

    with pytest.raises(ToolRegistryError, match="reserved"):
        ToolRegistry([wait])

"""The in-memory runner: runs flows to their end in this process, with no database.

For tests, for the documentation's examples, and as the model of the durable service:
both advance runs through the same driver (`engine.driver.drive`), so the golden traces
taken here are what the service records.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final, Literal

from taskrunner.engine.driver import drive
from taskrunner.engine.fanout import ChildResult, Fanout
from taskrunner.engine.flow import Flow
from taskrunner.engine.interpreter import Execution
from taskrunner.engine.plan import FlowPlan
from taskrunner.engine.steps import (
    TASK_TIMEOUT,
    CallTool,
    Decision,
    Fail,
    Finish,
    Step,
    StepError,
    task_timed_out,
)
from taskrunner.tools import JsonObject, ToolRegistry


@dataclass(frozen=True, slots=True)
class RunResult:
    """How a task ended, and every step it took."""

    status: Literal["succeeded", "failed"]
    state: str
    output: JsonObject | None
    error: StepError | None
    steps: tuple[Step, ...]


VIRTUAL_START: Final = datetime(2000, 1, 1, tzinfo=UTC)
"""Where a run's time starts when the runner is given no clock."""


class _Memory:
    """A journal that keeps nothing but what the execution already holds, and enforces
    the flow's `timeout_seconds`. Without a clock, time is virtual: it starts at
    `VIRTUAL_START` and moves only by the delays and waits (tools take no time), so the
    same input gives the same wake times and the same deadline failures."""

    def __init__(
        self,
        sleep: Callable[[float], None] | None,
        clock: Callable[[], datetime] | None,
        timeout_seconds: float | None,
    ) -> None:
        self._sleep = sleep
        self._clock = clock
        self._virtual = VIRTUAL_START
        self._limit = timeout_seconds
        started = self.now()
        self._deadline = (
            None if timeout_seconds is None else started + timedelta(seconds=timeout_seconds)
        )
        self.timed_out: Fail | None = None
        """How the run ended when it ran out of time (no state's decision says it)."""

    def now(self) -> datetime:
        return self._clock() if self._clock is not None else self._virtual

    def time_left(self) -> float | None:
        return None if self._deadline is None else (self._deadline - self.now()).total_seconds()

    def before_call(self, call: CallTool) -> bool:
        pause = call.delay_seconds
        if call.not_before is not None:
            pause = max(0.0, (call.not_before - self.now()).total_seconds())
        left = self.time_left()
        if left is not None and pause >= left:
            self._pass(max(left, 0.0))
            self._time_out(call.state)
            return False
        if pause:
            self._pass(pause)
        return True

    def run_children(self, call: CallTool, fanout: Fanout) -> Sequence[ChildResult] | None:
        raise NotImplementedError("fan-out states do not run here yet")

    def record(self, step: Step, decision: Decision, checkpoint: JsonObject) -> bool:
        left = self.time_left()
        if (step.error is not None and step.error.kind == TASK_TIMEOUT) or (
            left is not None and left <= 0
        ):
            self._time_out(step.state)
            return False
        return True

    def settle(self, decision: Finish | Fail) -> None:
        pass

    def _pass(self, seconds: float) -> None:
        if seconds and self._sleep is not None:
            self._sleep(seconds)
        if self._clock is None:
            self._virtual += timedelta(seconds=seconds)

    def _time_out(self, state: str) -> None:
        self.timed_out = Fail(state, task_timed_out(self._limit or 0.0))


class InMemoryRunner:
    """Runs flows to completion in this process, keeping the history in memory.

    Retry delays and waits are passed to `sleep`; by default nobody waits, which keeps
    tests fast (the delays are still part of every `CallTool` decision). Without a
    `clock`, time is virtual (see `_Memory`), which keeps the runner free of clocks.
    """

    def __init__(
        self,
        registry: ToolRegistry,
        *,
        sleep: Callable[[float], None] | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.registry = registry
        self._sleep = sleep
        self._clock = clock
        self._plans: dict[str, FlowPlan] = {}

    def plan(self, flow: Flow) -> FlowPlan:
        found = self._plans.get(flow.digest)
        if found is None:
            found = self._plans[flow.digest] = FlowPlan(flow, self.registry)
        return found

    def run(self, flow: Flow, data: Mapping[str, object]) -> RunResult:
        """Validate the input (raising `FlowInputError`), then run the task to its end."""
        plan = self.plan(flow)
        execution = Execution(plan, plan.validate_input(data))
        journal = _Memory(self._sleep, self._clock, flow.timeout_seconds)
        decision = drive(execution, journal)
        steps = tuple(execution.steps)
        if journal.timed_out is not None:
            decision = journal.timed_out
        if isinstance(decision, Fail):
            return RunResult("failed", decision.state, None, decision.error, steps)
        if isinstance(decision, Finish):
            return RunResult("succeeded", decision.state, decision.output, None, steps)
        raise AssertionError("an in-memory run stops only at its end")

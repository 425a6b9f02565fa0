"""The in-memory runner: runs flows to their end in this process, with no database.

For tests, for the documentation's examples, and as the model of the durable service:
both advance runs through the same driver (`engine.driver.drive`), so the golden traces
taken here are what the service records.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal

from taskrunner.engine.driver import drive
from taskrunner.engine.flow import Flow
from taskrunner.engine.interpreter import Execution
from taskrunner.engine.plan import FlowPlan
from taskrunner.engine.steps import CallTool, Decision, Fail, Finish, Step, StepError
from taskrunner.tools import JsonObject, ToolRegistry


@dataclass(frozen=True, slots=True)
class RunResult:
    """How a task ended, and every step it took."""

    status: Literal["succeeded", "failed"]
    state: str
    output: JsonObject | None
    error: StepError | None
    steps: tuple[Step, ...]


@dataclass(frozen=True, slots=True)
class _Memory:
    """A journal that keeps nothing but what the execution already holds."""

    sleep: Callable[[float], None] | None

    def before_call(self, call: CallTool) -> bool:
        if call.delay_seconds and self.sleep is not None:
            self.sleep(call.delay_seconds)
        return True

    def record(self, step: Step, decision: Decision, checkpoint: JsonObject) -> bool:
        return True

    def settle(self, decision: Finish | Fail) -> None:
        pass


class InMemoryRunner:
    """Runs flows to completion in this process, keeping the history in memory.

    Retry delays are passed to `sleep`; by default nobody waits, which keeps tests fast and
    the runner free of clocks (the delays are still part of every `CallTool` decision).
    """

    def __init__(
        self, registry: ToolRegistry, *, sleep: Callable[[float], None] | None = None
    ) -> None:
        self.registry = registry
        self._sleep = sleep
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
        decision = drive(execution, _Memory(self._sleep))
        steps = tuple(execution.steps)
        if isinstance(decision, Fail):
            return RunResult("failed", decision.state, None, decision.error, steps)
        if isinstance(decision, Finish):
            return RunResult("succeeded", decision.state, decision.output, None, steps)
        raise AssertionError("an in-memory run stops only at its end")

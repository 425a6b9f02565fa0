"""The in-memory runner: drives the interpreter and the tools end to end, without a database.

For tests, for the documentation's examples, and as the model that the durable service
follows: decide, call the tool, record the step, until the task finishes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal

from taskrunner.engine.interpreter import CallTool, Execution, Fail, Step, StepError
from taskrunner.engine.model import Flow
from taskrunner.engine.plan import FlowPlan
from taskrunner.tools import JsonObject, ToolCallError, ToolRegistry


@dataclass(frozen=True, slots=True)
class RunResult:
    """How a task ended, and every step it took."""

    status: Literal["succeeded", "failed"]
    state: str
    output: JsonObject | None
    error: StepError | None
    steps: tuple[Step, ...]


def call(plan: FlowPlan, decision: CallTool) -> Step:
    """Run the tool of a `CallTool` decision; its result, success or failure, as a step."""
    try:
        output = plan.tasks[decision.state].tool.invoke(decision.arguments)
    except ToolCallError as exc:
        return decision.failed(exc.kind, exc.message)
    return decision.succeeded(output)


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
        while isinstance(decision := execution.decide(), CallTool):
            if decision.delay_seconds and self._sleep is not None:
                self._sleep(decision.delay_seconds)
            execution.record(call(plan, decision))
        steps = tuple(execution.steps)
        if isinstance(decision, Fail):
            return RunResult("failed", decision.state, None, decision.error, steps)
        return RunResult("succeeded", decision.state, decision.output, None, steps)

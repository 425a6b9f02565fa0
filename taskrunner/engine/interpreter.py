"""The interpreter: a pure function of (flow, input, recorded steps) to what happens next.

`Execution` holds the position of one task in its flow. `decide()` says what comes next:
call a tool (after a delay, for a retry), finish with an output, or fail. `record()` takes
the result of that call and moves on. The same steps recorded give the same decisions,
which is what makes a task resumable from its history: `replay()` feeds recorded steps
back in and raises `UnexpectedStepError` when one is not what the flow expects there.

What each state does is its kind's (`StatePlan.enter`, `StatePlan.on_step`); the
execution only follows. Nothing here reads a clock, draws a random number or does I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from pydantic import JsonValue

from taskrunner.engine.plan import FlowPlan
from taskrunner.engine.refs import Expression, UnresolvedReferenceError
from taskrunner.engine.states.base import Again, Goto
from taskrunner.engine.states.choice import same
from taskrunner.engine.steps import CallTool, Decision, Fail, Finish, Step, StepError
from taskrunner.errors import UnexpectedStepError
from taskrunner.tools import JsonObject

MAX_STEPS: Final = 10_000
"""A task that records this many steps fails with `StepLimitExceeded`."""

UNRESOLVED_REFERENCE: Final = "UnresolvedReference"
STEP_LIMIT_EXCEEDED: Final = "StepLimitExceeded"


class Execution:
    """One task's position in its flow."""

    def __init__(self, plan: FlowPlan, data: JsonObject) -> None:
        self.plan = plan
        self.data = data
        self.state = plan.flow.start
        self.outputs: dict[str, JsonValue] = {}
        self.steps: list[Step] = []
        self.attempt = 1
        self.delay = 0.0
        self._decision: Decision | None = None

    # -- what a state's plan sees (`states.base.Run`) -------------------------------------

    @property
    def next_seq(self) -> int:
        return len(self.steps) + 1

    def resolve(self, expression: Expression) -> JsonValue:
        return expression.resolve(self.data, self.outputs)

    # -- driving --------------------------------------------------------------------------

    def decide(self) -> Decision:
        """What happens next. Calling it again without `record()` gives the same answer."""
        if self._decision is None:
            self._decision = self._next()
        return self._decision

    def record(self, step: Step) -> None:
        """Take the result of the `CallTool` that `decide()` returned."""
        expected = self.decide()
        if not isinstance(expected, CallTool) or not _matches(expected, step):
            raise UnexpectedStepError(_mismatch(expected, step))
        self.steps.append(step)
        self._decision = None
        if step.status == "succeeded":
            self.outputs[step.state] = step.output
        outcome = self.plan.states[step.state].on_step(self, step)
        if isinstance(outcome, Goto):
            self._move(outcome.target)
        elif isinstance(outcome, Again):
            self.attempt, self.delay = outcome.attempt, outcome.delay_seconds
        else:
            self._decision = outcome

    @property
    def finished(self) -> bool:
        return isinstance(self.decide(), Finish | Fail)

    def _move(self, state: str) -> None:
        self.state = state
        self.attempt = 1
        self.delay = 0.0

    def _next(self) -> Decision:
        hops = 0
        while True:
            name = self.state
            if len(self.steps) >= MAX_STEPS:
                return Fail(name, StepError(STEP_LIMIT_EXCEEDED, f"{MAX_STEPS} steps recorded"))
            try:
                arrival = self.plan.states[name].enter(self)
                if isinstance(arrival, Goto):
                    if arrival.output is not None:
                        self.outputs[name] = arrival.output
                    hops += 1
                    if hops > len(self.plan.states):
                        raise UnresolvedReferenceError("choice states loop without a task")
                    self._move(arrival.target)
                    continue
            except UnresolvedReferenceError as exc:
                return Fail(name, StepError(UNRESOLVED_REFERENCE, str(exc)))
            return arrival


def replay(plan: FlowPlan, data: JsonObject, steps: Iterable[Step]) -> Execution:
    """An execution with these recorded steps fed back in, in order."""
    execution = Execution(plan, data)
    for step in steps:
        execution.record(step)
    return execution


def _matches(expected: CallTool, step: Step) -> bool:
    return (
        step.seq == expected.seq
        and step.state == expected.state
        and step.tool == expected.tool
        and step.attempt == expected.attempt
        and (step.input is expected.arguments or same(step.input, expected.arguments))
    )


def _mismatch(expected: Decision, step: Step) -> str:
    got = f"step {step.seq} ({step.state}/{step.tool} attempt {step.attempt})"
    if isinstance(expected, CallTool):
        wanted = (
            f"step {expected.seq} ({expected.state}/{expected.tool} attempt {expected.attempt})"
        )
        return f"recorded {got} where the flow expects {wanted}"
    return f"recorded {got} after the flow has already ended in state {expected.state}"

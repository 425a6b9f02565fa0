"""The interpreter: a pure function of (flow, input, recorded steps) to what happens next.

`Execution` holds the position of one task in its flow. `decide()` says what comes next:
call a tool (after a delay, for a retry), finish with an output, or fail. `record()` takes
the result of that call and moves on. The same steps recorded give the same decisions,
which is what makes a task resumable from its history: `replay()` feeds recorded steps
back in and raises `UnexpectedStepError` when one is not what the flow expects there (a
choice's step that records another decision than the flow makes now is not).
Replaying costs a task's whole history; `Execution.checkpoint()` is the position itself,
as JSON, and `Execution.resume()` takes it back up in O(1). The checkpoint names the step
it follows (`seq`), so a store can tell whether it is the one its history ends with.

What each state does is its kind's (`StatePlan.enter`, `StatePlan.on_step`); the
execution only follows. Nothing here reads a clock, draws a random number or does I/O.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Final, Self

from pydantic import JsonValue

from taskrunner.engine.errorkinds import STEP_LIMIT_EXCEEDED, UNRESOLVED_REFERENCE
from taskrunner.engine.plan import FlowPlan
from taskrunner.engine.refs import CAUGHT_ERROR, Expression, UnresolvedReferenceError
from taskrunner.engine.sizes import OUTPUT_TOO_LARGE, oversize
from taskrunner.engine.states.base import Again, Goto
from taskrunner.engine.states.choice import DEFAULT_RULE, same
from taskrunner.engine.steps import CallTool, Decision, Fail, Finish, Step, StepError
from taskrunner.errors import UnexpectedStepError
from taskrunner.tools import JsonObject

MAX_STEPS: Final = 10_000
"""A task that records this many steps fails with `StepLimitExceeded`."""

CHECKPOINT_VERSION: Final = 1
"""The shape of `Execution.checkpoint()`; a checkpoint of another shape is not resumed."""


class Execution:
    """One task's position in its flow."""

    def __init__(self, plan: FlowPlan, data: JsonObject) -> None:
        self.plan = plan
        self.data = data
        self.state = plan.flow.start
        self.outputs: dict[str, JsonValue] = {
            name: initial[0]
            for name, state in plan.flow.states.items()
            if (initial := state.initial_output()) is not None
        }
        """Each state's last output (or `initial`), and the error caught last."""
        self.steps: list[Step] = []
        """The steps recorded by this execution (not those before a `resume`)."""
        self.step_count = 0
        """How many steps the task has recorded, from its start."""
        self.attempt = 1
        self.delay = 0.0
        self._decision: Decision | None = None
        self.on_move: Callable[[str, str], None] | None = None
        """Told of each move, from the state left to the state entered: how a diagram
        follows a task's path through transient states, which leave no step."""

    # -- what a state's plan sees (`states.base.Run`) -------------------------------------

    @property
    def next_seq(self) -> int:
        return self.step_count + 1

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
        self.step_count += 1
        self._decision = None
        if step.status == "succeeded":
            self.outputs[step.state] = step.output
        outcome = self.plan.states[step.state].on_step(self, step)
        if isinstance(outcome, Goto):
            if outcome.produced:  # the state's output is not the step's (a map's array)
                self.outputs[step.state] = outcome.output
            if outcome.caught is not None:
                self.outputs[CAUGHT_ERROR] = outcome.caught
            self._move(outcome.target)
        elif isinstance(outcome, Again):
            self.attempt, self.delay = outcome.attempt, outcome.delay_seconds
        else:
            self._decision = outcome

    # -- checkpoints ----------------------------------------------------------------------

    def checkpoint(self) -> JsonObject:
        """Where the execution stands, as JSON: enough for `resume` to go on from here
        without the steps before. A decision still to be made is not in it (it is made
        again, the same), but a failure a step led to is, since no state's arrival says it."""
        ended = self._decision if isinstance(self._decision, Fail) else None
        return {
            "version": CHECKPOINT_VERSION,
            "seq": self.step_count,
            "state": self.state,
            "outputs": dict(self.outputs),
            "attempt": self.attempt,
            "delay": self.delay,
            "failed": None
            if ended is None
            else {"state": ended.state, "kind": ended.error.kind, "message": ended.error.message},
        }

    @classmethod
    def resume(cls, plan: FlowPlan, data: JsonObject, checkpoint: JsonObject) -> Self | None:
        """The execution `checkpoint` describes, or None when it does not fit this flow
        (another shape, an unknown state): then only a replay of the history will do."""
        execution = cls(plan, data)
        match checkpoint:
            case {
                "version": 1,
                "seq": int(seq),
                "state": str(state),
                "outputs": dict(outputs),
                "attempt": int(attempt),
                "delay": int() | float() as delay,
                "failed": failed,
            } if state in plan.states and all(
                name in plan.states or name == CAUGHT_ERROR for name in outputs
            ):
                pass
            case _:
                return None
        match failed:
            case None:
                pass
            case {"state": str(where), "kind": str(kind), "message": str(message)}:
                execution._decision = Fail(where, StepError(kind, message))
            case _:
                return None
        execution.step_count = seq
        execution.state = state
        execution.outputs = dict(outputs)
        execution.attempt = attempt
        execution.delay = float(delay)
        return execution

    @property
    def finished(self) -> bool:
        return isinstance(self.decide(), Finish | Fail)

    def _move(self, state: str) -> None:
        if self.on_move is not None:
            self.on_move(self.state, state)
        self.state = state
        self.attempt = 1
        self.delay = 0.0

    def _next(self) -> Decision:
        hops = 0
        while True:
            name = self.state
            if self.step_count >= MAX_STEPS:
                return Fail(name, StepError(STEP_LIMIT_EXCEEDED, f"{MAX_STEPS} steps recorded"))
            try:
                arrival = self.plan.states[name].enter(self)
                if isinstance(arrival, Goto):
                    if arrival.produced:
                        too_large = oversize(arrival.output)
                        if too_large is not None:
                            message = f"the output of `{name}` is {too_large}"
                            return Fail(name, StepError(OUTPUT_TOO_LARGE, message))
                        self.outputs[name] = arrival.output
                    hops += 1
                    if hops > len(self.plan.states):
                        raise UnresolvedReferenceError("states loop without a task")
                    self._move(arrival.target)
                    continue
            except UnresolvedReferenceError as exc:
                return Fail(name, StepError(UNRESOLVED_REFERENCE, str(exc)))
            if isinstance(arrival, Finish):
                too_large = oversize(arrival.output)
                if too_large is not None:
                    message = f"the task's output is {too_large}"
                    return Fail(name, StepError(OUTPUT_TOO_LARGE, message))
            return arrival


def replay(plan: FlowPlan, data: JsonObject, steps: Iterable[Step]) -> Execution:
    """An execution with these recorded steps fed back in, in order."""
    execution = Execution(plan, data)
    for step in steps:
        execution.record(step)
    return execution


def _matches(expected: CallTool, step: Step) -> bool:
    return (
        _same_place(expected, step)
        and (step.input is expected.arguments or same(step.input, expected.arguments))
        and (expected.decided is None or same(step.output, expected.decided))
    )


def _same_place(expected: CallTool, step: Step) -> bool:
    return (
        step.seq == expected.seq
        and step.state == expected.state
        and step.tool == expected.tool
        and step.attempt == expected.attempt
    )


def _mismatch(expected: Decision, step: Step) -> str:
    got = f"step {step.seq} ({step.state}/{step.tool} attempt {step.attempt})"
    if isinstance(expected, CallTool):
        if expected.decided is not None and _same_place(expected, step):
            return _other_decision(expected, step)
        wanted = (
            f"step {expected.seq} ({expected.state}/{expected.tool} attempt {expected.attempt})"
        )
        return f"recorded {got} where the flow expects {wanted}"
    return f"recorded {got} after the flow has already ended in state {expected.state}"


def _other_decision(expected: CallTool, step: Step) -> str:
    """What differs between a recorded decision and the one the flow makes now: where it
    led, or else what it read."""
    where = f"recorded step {step.seq} ({step.state}/{step.tool})"
    if not same(step.output, expected.decided):
        chosen, choosing = _decision_text(step.output), _decision_text(expected.decided)
        return f"{where} chose {chosen} where the flow chooses {choosing}"
    read, reading = json.dumps(step.input), json.dumps(expected.arguments)
    return f"{where} read {read} where the flow reads {reading}"


def _decision_text(decision: JsonObject | None) -> str:
    """`rule 2 -> big`, or `the default -> small`."""
    rule = None if decision is None else decision.get("rule")
    target = None if decision is None else decision.get("next")
    if rule == DEFAULT_RULE:
        return f"the default -> {target}"
    if isinstance(rule, int):
        return f"rule {rule} -> {target}"
    return f"no decision ({json.dumps(decision)})"

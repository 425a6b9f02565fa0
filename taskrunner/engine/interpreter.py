"""The interpreter: a pure function of (flow, input, recorded steps) to what happens next.

`Execution` holds the position of one task in its flow. `decide()` says what comes next:
call a tool (after a delay, for a retry), finish with an output, or fail. `record()` takes
the result of that call and moves on. The same steps recorded give the same decisions,
which is what makes a task resumable from its history: `replay()` feeds recorded steps
back in and raises `UnexpectedStepError` when one is not what the flow expects there.

Nothing here reads a clock, draws a random number or does I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final, Literal, TypeGuard

from pydantic import JsonValue

from taskrunner.engine.model import FailState
from taskrunner.engine.plan import Combination, FlowPlan, Test
from taskrunner.engine.refs import UnresolvedReferenceError
from taskrunner.errors import UnexpectedStepError
from taskrunner.tools import JsonObject

MAX_STEPS: Final = 10_000
"""A task that records this many steps fails with `StepLimitExceeded`."""

UNRESOLVED_REFERENCE: Final = "UnresolvedReference"
STEP_LIMIT_EXCEEDED: Final = "StepLimitExceeded"

StepStatus = Literal["succeeded", "failed"]


@dataclass(frozen=True, slots=True)
class StepError:
    """Why a step or a task failed: a kind that `catch` and `retry` match, and a message."""

    kind: str
    message: str


@dataclass(frozen=True, slots=True)
class Step:
    """One tool call and its result, as recorded in a task's history."""

    seq: int
    state: str
    tool: str
    attempt: int
    input: JsonObject
    status: StepStatus
    output: JsonObject | None = None
    error: StepError | None = None


@dataclass(frozen=True, slots=True)
class CallTool:
    """Call `tool` with `arguments` as step `seq`, after waiting `delay_seconds`."""

    seq: int
    state: str
    tool: str
    attempt: int
    arguments: JsonObject
    delay_seconds: float = 0.0
    timeout_seconds: float | None = None

    def succeeded(self, output: JsonObject) -> Step:
        return Step(
            self.seq, self.state, self.tool, self.attempt, self.arguments, "succeeded", output
        )

    def failed(self, kind: str, message: str) -> Step:
        error = StepError(kind, message)
        return Step(
            self.seq, self.state, self.tool, self.attempt, self.arguments, "failed", None, error
        )


@dataclass(frozen=True, slots=True)
class Finish:
    """The task succeeded in `state` with `output`."""

    state: str
    output: JsonObject


@dataclass(frozen=True, slots=True)
class Fail:
    """The task failed in `state` with `error`."""

    state: str
    error: StepError


Decision = CallTool | Finish | Fail


class Execution:
    """One task's position in its flow."""

    def __init__(self, plan: FlowPlan, data: JsonObject) -> None:
        self.plan = plan
        self.data = data
        self.state = plan.flow.start
        self.outputs: dict[str, JsonValue] = {}
        self.steps: list[Step] = []
        self._attempt = 1
        self._delay = 0.0
        self._decision: Decision | None = None

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
        task = self.plan.tasks[step.state].state
        if step.status == "succeeded":
            self.outputs[step.state] = step.output
            self._move(task.next)
            return
        error = step.error or StepError("Unknown", "the step failed without an error")
        retry = task.retry
        if retry and step.attempt < retry.max_attempts and _caught(retry.errors, error.kind):
            self._attempt = step.attempt + 1
            self._delay = retry.delay_before(self._attempt)
            return
        for handler in task.catch:
            if _caught(handler.errors, error.kind):
                self._move(handler.next)
                return
        self._decision = Fail(step.state, error)

    @property
    def finished(self) -> bool:
        return isinstance(self.decide(), Finish | Fail)

    def _move(self, state: str) -> None:
        self.state = state
        self._attempt = 1
        self._delay = 0.0

    def _next(self) -> Decision:
        hops = 0
        while True:
            name = self.state
            if len(self.steps) >= MAX_STEPS:
                return Fail(name, StepError(STEP_LIMIT_EXCEEDED, f"{MAX_STEPS} steps recorded"))
            try:
                if name in self.plan.tasks:
                    return self._call(name)
                if name in self.plan.outputs:
                    output = {
                        key: value.resolve(self.data, self.outputs)
                        for key, value in self.plan.outputs[name]
                    }
                    return Finish(name, output)
                if name in self.plan.choices:
                    self.state = self._choose(name)
                    hops += 1
                    if hops > len(self.plan.flow.states):
                        raise UnresolvedReferenceError("choice states loop without a task")
                    continue
            except UnresolvedReferenceError as exc:
                return Fail(name, StepError(UNRESOLVED_REFERENCE, str(exc)))
            failure = self.plan.flow.states[name]
            if isinstance(failure, FailState):
                return Fail(name, StepError(failure.error, failure.message))
            raise ValueError(f"state {name!r} has no plan")

    def _call(self, name: str) -> CallTool:
        task = self.plan.tasks[name]
        arguments = {key: value.resolve(self.data, self.outputs) for key, value in task.arguments}
        return CallTool(
            len(self.steps) + 1,
            name,
            task.tool.name,
            self._attempt,
            arguments,
            self._delay,
            task.state.timeout_seconds,
        )

    def _choose(self, name: str) -> str:
        choice = self.plan.choices[name]
        for test, target in choice.rules:
            if self._holds(test):
                return target
        return choice.state.default

    def _holds(self, test: Test) -> bool:
        if isinstance(test, Combination):
            results = (self._holds(term) for term in test.terms)
            if test.operator == "all":
                return all(results)
            if test.operator == "any":
                return any(results)
            return not next(results)
        left = test.left.resolve(self.data, self.outputs)
        right = test.right.resolve(self.data, self.outputs)
        return _compare(test.operator, left, right)


def replay(plan: FlowPlan, data: JsonObject, steps: Iterable[Step]) -> Execution:
    """An execution with these recorded steps fed back in, in order."""
    execution = Execution(plan, data)
    for step in steps:
        execution.record(step)
    return execution


def _compare(operator: str, left: JsonValue, right: JsonValue) -> bool:
    if operator == "eq":
        return _same(left, right)
    if operator == "ne":
        return not _same(left, right)
    if not _is_number(left) or not _is_number(right):
        return False  # ordering is defined on numbers only
    if operator == "lt":
        return left < right
    if operator == "le":
        return left <= right
    if operator == "gt":
        return left > right
    return left >= right


def _is_number(value: JsonValue) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _same(left: JsonValue, right: JsonValue) -> bool:
    """JSON equality: `1 == 1.0`, but `true` is not `1`."""
    if isinstance(left, bool) or isinstance(right, bool):
        return isinstance(left, bool) and isinstance(right, bool) and left is right
    if isinstance(left, list) and isinstance(right, list):
        return len(left) == len(right) and all(map(_same, left, right))
    if isinstance(left, dict) and isinstance(right, dict):
        return left.keys() == right.keys() and all(_same(left[k], right[k]) for k in left)
    if _is_number(left) and _is_number(right):
        return left == right
    return type(left) is type(right) and bool(left == right)


def _caught(kinds: list[str], kind: str) -> bool:
    return "*" in kinds or kind in kinds


def _matches(expected: CallTool, step: Step) -> bool:
    return (
        step.seq == expected.seq
        and step.state == expected.state
        and step.tool == expected.tool
        and step.attempt == expected.attempt
        and (step.input is expected.arguments or _same(step.input, expected.arguments))
    )


def _mismatch(expected: Decision, step: Step) -> str:
    got = f"step {step.seq} ({step.state}/{step.tool} attempt {step.attempt})"
    if isinstance(expected, CallTool):
        wanted = (
            f"step {expected.seq} ({expected.state}/{expected.tool} attempt {expected.attempt})"
        )
        return f"recorded {got} where the flow expects {wanted}"
    return f"recorded {got} after the flow has already ended in state {expected.state}"

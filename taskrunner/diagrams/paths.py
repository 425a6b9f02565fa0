"""The path a task took through its flow, found by replaying its recorded steps.

A replay through the interpreter (`Execution.on_move`) sees every move, those through
choice and pass states included, which leave no step of their own: the path is what the
flow did, not what the steps suggest.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from taskrunner.engine.interpreter import Execution
from taskrunner.engine.plan import FlowPlan
from taskrunner.engine.steps import Step
from taskrunner.errors import UnexpectedStepError
from taskrunner.tools import JsonObject

PASSED_THROUGH = "passed through"


@dataclass(frozen=True, slots=True)
class StateVisit:
    """What a task did in one state: how many steps it recorded there (retries and
    repeated visits included), and how that went, in words."""

    steps: int
    status: str

    def words(self) -> str:
        """`1 step · succeeded`, `3 steps · failed`, `passed through`."""
        if not self.steps:
            return self.status
        return f"{self.steps} step{'s' if self.steps != 1 else ''} · {self.status}"


@dataclass(frozen=True)
class TaskPath:
    """The states a task went through, in the order first entered, with the moves it
    made between them and the states it retried in; where it ended (or stands), and its
    status."""

    visits: Mapping[str, StateVisit]
    moves: frozenset[tuple[str, str]]
    retried: frozenset[str]
    status: str
    state: str | None

    @property
    def failed_state(self) -> str | None:
        """The state the task failed in, if it failed."""
        return self.state if self.status == "failed" else None


def path_of(
    plan: FlowPlan, data: JsonObject, steps: Iterable[Step], status: str, state: str | None
) -> TaskPath:
    """The path of a task of `plan`'s flow on input `data` that recorded `steps` and now
    has `status` in `state` (its current state, as stored). A history the flow does not
    lead to (a step it would not make) is followed as far as it agrees."""
    recorded = list(steps)
    moves: list[tuple[str, str]] = []
    execution = Execution(plan, data)
    execution.on_move = lambda left, entered: moves.append((left, entered))
    try:
        for step in recorded:
            execution.record(step)
        execution.decide()  # through the choice and pass states after the last step
    except UnexpectedStepError:
        pass
    order = [plan.flow.start, *(entered for _, entered in moves)]
    if state is not None:
        order.append(state)
    counts = Counter(step.state for step in recorded)
    last = {step.state: step.status for step in recorded}
    visits: dict[str, StateVisit] = {}
    for name in dict.fromkeys(order):
        if name == state:
            said = status
        elif name in last:
            said = "failed, caught" if last[name] == "failed" else last[name]
        else:
            said = PASSED_THROUGH
        visits[name] = StateVisit(counts[name], said)
    retried = frozenset(step.state for step in recorded if step.attempt > 1)
    return TaskPath(visits, frozenset(moves), retried, status, state)

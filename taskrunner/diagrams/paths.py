"""The path a task took through its flow, found by replaying its recorded steps.

A replay through the interpreter (`Execution.on_move`) sees every move, those through
pass states included, which leave no step of their own: the path is what the flow did,
not what the steps suggest. Each move is matched to the one transition it took, by the
step that led to it: a choice's step names the rule that held (or the default), a failed
step leads through a catch, a succeeded one through `next`; so of two edges to the same
state only the one taken is on the path.

A history recorded before a choice's decision was a step has none where the flow expects
one. Its decisions are made again as the replay reaches them (a decision depends on the
data alone, so it is the one the task made), and the steps after are read one place on.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from taskrunner.engine.interpreter import Execution
from taskrunner.engine.plan import FlowPlan
from taskrunner.engine.states import State
from taskrunner.engine.states.choice import CHOICE_TOOL, DEFAULT_RULE
from taskrunner.engine.states.recovery import Catch, caught_by
from taskrunner.engine.steps import CallTool, Decision, Step
from taskrunner.errors import UnexpectedStepError
from taskrunner.tools import JsonObject

PASSED_THROUGH = "passed through"

Rule = int | str
"""A choice's decision: the rule that held, counted from 1, or `DEFAULT_RULE`."""
Edge = tuple[str, tuple[str | int, ...]]
"""A transition of a state: the state's name, and where the transition is written in it
(`Transition.path`: `("next",)`, `("rules", 0, "next")`, `("default",)`…)."""


@dataclass(frozen=True, slots=True)
class StateVisit:
    """What a task did in one state: how many steps it recorded there (retries and
    repeated visits included), how that went, in words, and, in a choice, each decision
    it made there, in order."""

    steps: int
    status: str
    decisions: tuple[Rule, ...] = ()

    def words(self) -> str:
        """`1 step · succeeded`, `3 steps · failed`, `passed through`; in a choice,
        `rule 2 matched`, `no rule matched: default`, `4 decisions · last: default`, or
        `2 decisions · failed` where the task ended in it."""
        count = len(self.decisions)
        if count and self.status == "succeeded":
            last = self.decisions[-1]
            if count > 1:
                return f"{count} decisions · last: {_rule_text(last)}"
            return f"rule {last} matched" if last != DEFAULT_RULE else "no rule matched: default"
        if count:
            return f"{count} decision{'s' if count != 1 else ''} · {self.status}"
        if not self.steps:
            return self.status
        return f"{self.steps} step{'s' if self.steps != 1 else ''} · {self.status}"


@dataclass(frozen=True)
class TaskPath:
    """The states a task went through, in the order first entered, with the transitions
    it took between them and the states it retried in; where it ended (or stands), and
    its status."""

    visits: Mapping[str, StateVisit]
    taken: frozenset[Edge]
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
    replay = _Replay(plan, data)
    replayed = 0
    try:
        for step in recorded:
            replay.record(step)
            replayed += 1
        if state is not None:  # a history without decisions, past its last step
            replay.remake_decisions(until=state)
        replay.execution.decide()  # through the pass states after the last step
    except UnexpectedStepError:
        pass
    history = [*replay.execution.steps, *recorded[replayed:]]
    order = [plan.flow.start, *(entered for _, entered in replay.moves)]
    if state is not None:
        order.append(state)
    counts = Counter(step.state for step in history)
    last = {step.state: step.status for step in history}
    decisions: dict[str, list[Rule]] = {}
    for step in history:
        if (rule := _rule_of(step)) is not None:
            decisions.setdefault(step.state, []).append(rule)
    visits: dict[str, StateVisit] = {}
    for name in dict.fromkeys(order):
        if name == state:
            said = status
        elif name in last:
            said = "failed, caught" if last[name] == "failed" else last[name]
        else:
            said = PASSED_THROUGH
        visits[name] = StateVisit(counts[name], said, tuple(decisions.get(name, ())))
    retried = frozenset(step.state for step in history if step.attempt > 1)
    return TaskPath(visits, frozenset(replay.taken), retried, status, state)


class _Replay:
    """An execution fed a task's steps, noting each move with the transition it took."""

    def __init__(self, plan: FlowPlan, data: JsonObject) -> None:
        self.states = plan.flow.states
        self.execution = Execution(plan, data)
        self.execution.on_move = self._moved
        self.moves: list[tuple[str, str]] = []
        self.taken: set[Edge] = set()
        self.shift = 0
        """How many decisions were made again: the steps after them come that much later."""
        self._cause: Step | None = None

    def record(self, step: Step) -> None:
        if step.tool != CHOICE_TOOL:
            self.remake_decisions()
        if self.shift:
            step = dataclasses.replace(step, seq=step.seq + self.shift)
        self._record(step)

    def remake_decisions(self, *, until: str | None = None) -> None:
        """Record the decisions the flow makes from here on, which the history does not
        have, up to the first other step (or to state `until`)."""
        while self.execution.state != until and (
            decision := _decision_to_remake(self.execution.decide())
        ):
            self.shift += 1
            self._record(decision)

    def _record(self, step: Step) -> None:
        """Record `step`, after the moves that lead to it (through pass states), so that a
        move made while recording it is the one it caused."""
        self.execution.decide()
        self._cause = step
        try:
            self.execution.record(step)
        finally:
            self._cause = None

    def _moved(self, left: str, entered: str) -> None:
        self.moves.append((left, entered))
        state = self.states.get(left)
        if state is not None:
            self.taken.update((left, path) for path in _transitions(state, self._cause, entered))


def _transitions(state: State, cause: Step | None, entered: str) -> list[tuple[str | int, ...]]:
    """Where the move from `state` to `entered` is written in `state`: the transition its
    step `cause` (None for a move no step made) names; every transition to `entered` when
    that cannot be told."""
    paths = [transition.path for transition in state.transitions() if transition.target == entered]
    rule = None if cause is None else _rule_of(cause)
    wanted: list[tuple[str | int, ...]]
    if rule == DEFAULT_RULE:
        wanted = [("default",)]
    elif isinstance(rule, int):
        wanted = [("rules", rule - 1, "next")]
    elif cause is not None and cause.status == "failed":
        handlers: list[Catch] = getattr(state, "catch", None) or []
        kind = cause.error.kind if cause.error is not None else ""
        position = next(
            (at for at, handler in enumerate(handlers) if caught_by(handler.errors, kind)), None
        )
        wanted = [] if position is None else [("catch", position, "next")]
    else:
        wanted = [path for path in paths if path[0] != "catch"]
    return [path for path in paths if path in wanted] or paths


def _decision_to_remake(decision: Decision) -> Step | None:
    """The step that records `decision` if it is a choice's, which a history from before
    decisions were steps does not have."""
    if isinstance(decision, CallTool) and decision.tool == CHOICE_TOOL:
        return None if decision.decided is None else decision.succeeded(decision.decided)
    return None


def _rule_of(step: Step) -> Rule | None:
    """The decision a choice's step records, or None for any other step."""
    rule = (step.output or {}).get("rule") if step.tool == CHOICE_TOOL else None
    return rule if isinstance(rule, int | str) and not isinstance(rule, bool) else None


def _rule_text(rule: Rule) -> str:
    return f"rule {rule}" if rule != DEFAULT_RULE else DEFAULT_RULE

"""The in-memory runner: runs flows to their end in this process, with no database.

For tests, for the documentation's examples, and as the model of the durable service:
both advance runs through the same driver (`engine.driver.drive`), so the golden traces
taken here are what the service records.

A fan-out's children (parallel branches, map items) are nested runs of the same runner,
at most `max_concurrency` at once. The engine starts no thread: by default the children
run one after the other, in order; given a `Concurrency` (`taskrunner.concurrency.
on_threads`), at once. Each starts at the parent's time with what is left of the parent's
deadline (or the state's `timeout_seconds`, if shorter). Under fail-fast, once a child
fails, the children after it (by position) that have not started are cancelled; those
before it still run, so the failure the state reports, the first by position, is the same
whatever order the children ended in.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Final, Literal, Protocol

from taskrunner.engine.driver import drive
from taskrunner.engine.fanout import Child, ChildResult, Fanout
from taskrunner.engine.flow import Flow, builtin_language
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
from taskrunner.errors import FlowInputError
from taskrunner.tools import INVALID_INPUT, TIMEOUT, JsonObject, ToolRegistry


@dataclass(frozen=True, slots=True)
class RunResult:
    """How a task ended, and every step it took."""

    status: Literal["succeeded", "failed"]
    state: str
    output: JsonObject | None
    error: StepError | None
    steps: tuple[Step, ...]
    children: Mapping[str, RunResult] = field(default_factory=dict)
    """The runs of the fan-outs' children, keyed `SEQ/KEY` (`3/item:0`: the child at
    `item:0` of the call recorded as step 3). Under fail-fast, a failed call keeps only the
    children up to the first failed one: whether later ones ran depends on timing."""


class Concurrency(Protocol):
    """How a runner makes several calls: each call's result, in the order of `calls`,
    with at most `width` of them running at once."""

    def __call__[T](self, calls: Sequence[Callable[[], T]], width: int) -> list[T]: ...


def one_by_one[T](calls: Sequence[Callable[[], T]], width: int) -> list[T]:
    """The calls made one after the other, in order."""
    return [call() for call in calls]


VIRTUAL_START: Final = datetime(2000, 1, 1, tzinfo=UTC)
"""Where a run's time starts when the runner is given no clock."""


class _Memory:
    """A journal that keeps nothing but what the execution already holds, and enforces
    the flow's `timeout_seconds`. Without a clock, time is virtual: it starts at
    `VIRTUAL_START` and moves only by the delays and waits (tools take no time), so the
    same input gives the same wake times and the same deadline failures."""

    def __init__(
        self,
        runner: InMemoryRunner,
        timeout_seconds: float | None,
        started: datetime = VIRTUAL_START,
    ) -> None:
        self._runner = runner
        self._sleep = runner.sleep
        self._clock = runner.clock
        self._virtual = started
        self._limit = timeout_seconds
        started = self.now()
        self._deadline = (
            None if timeout_seconds is None else started + timedelta(seconds=timeout_seconds)
        )
        self.timed_out: Fail | None = None
        """How the run ended when it ran out of time (no state's decision says it)."""
        self.children: dict[str, RunResult] = {}

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
        left = self.time_left()
        limit = min(math.inf if left is None else left, call.timeout_seconds or math.inf)
        state_bound = call.timeout_seconds is not None and call.timeout_seconds == limit
        started = self.now()
        # A failed child's position: a child after it that has not started is cancelled.
        # Two children failing at once may race on it, but either value is the position
        # of a failure, so the first failure by position is never cancelled.
        failed_at = [len(fanout.children)]

        def run(position: int, child: Child) -> tuple[RunResult | None, float]:
            if fanout.fail_fast and failed_at[0] < position:
                return None, 0.0
            result, took = self._runner.run_child(
                child, None if limit == math.inf else limit, started
            )
            if result.status == "failed" and fanout.fail_fast:
                failed_at[0] = min(failed_at[0], position)
            return result, took

        calls = [partial(run, position, child) for position, child in enumerate(fanout.children)]
        ran = self._runner.concurrency(calls, fanout.max_concurrency or len(calls))
        failures = [
            position
            for position, (result, _) in enumerate(ran)
            if result is not None and result.status == "failed"
        ]
        shown = min(failures) if fanout.fail_fast and failures else len(ran)
        results: list[ChildResult] = []
        for position, (child, (result, _)) in enumerate(zip(fanout.children, ran, strict=True)):
            if result is None:
                results.append(ChildResult(child.key, "cancelled"))
                continue
            if position <= shown:
                self.children[f"{call.seq}/{child.key}"] = result
            results.append(_ended(child.key, result, state_bound=state_bound))
        self._pass(max((took for _, took in ran), default=0.0), sleep=False)
        return results

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

    def _pass(self, seconds: float, *, sleep: bool = True) -> None:
        if seconds and sleep and self._sleep is not None:
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
    A fan-out's children are made through `concurrency`: one by one unless told.
    """

    def __init__(
        self,
        registry: ToolRegistry,
        *,
        sleep: Callable[[float], None] | None = None,
        clock: Callable[[], datetime] | None = None,
        concurrency: Concurrency = one_by_one,
    ) -> None:
        self.registry = registry
        self.sleep = sleep
        self.clock = clock
        self.concurrency = concurrency
        self._plans: dict[str, FlowPlan] = {}

    def plan(self, flow: Flow) -> FlowPlan:
        # Children may plan their chart from several threads at once: at worst a chart is
        # compiled twice, the same.
        found = self._plans.get(flow.digest)
        if found is None:
            found = self._plans[flow.digest] = FlowPlan(flow, self.registry)
        return found

    def run(self, flow: Flow, data: Mapping[str, object]) -> RunResult:
        """Validate the input (raising `FlowInputError`), then run the task to its end."""
        plan = self.plan(flow)
        result, _ = self._run(plan, plan.validate_input(data), flow.timeout_seconds, None)
        return result

    def run_child(
        self, child: Child, time_left: float | None, started: datetime
    ) -> tuple[RunResult, float]:
        """Run one child of a fan-out from `started`, within `time_left` seconds; how it
        ended, and how many seconds of virtual time it took."""
        plan = self.plan(builtin_language().parse(child.definition))
        data = child.input
        if child.validate_input:
            try:
                data = plan.validate_input(data)
            except FlowInputError as exc:
                error = StepError(INVALID_INPUT, str(exc))
                return RunResult("failed", plan.flow.start, None, error, ()), 0.0
        limit = plan.flow.timeout_seconds
        if time_left is not None:
            limit = time_left if limit is None else min(limit, time_left)
        return self._run(plan, data, limit, started)

    def _run(
        self,
        plan: FlowPlan,
        data: JsonObject,
        timeout_seconds: float | None,
        started: datetime | None,
    ) -> tuple[RunResult, float]:
        execution = Execution(plan, data)
        journal = _Memory(self, timeout_seconds, started or VIRTUAL_START)
        begun = journal.now()
        decision = drive(execution, journal)
        took = (journal.now() - begun).total_seconds()
        steps = tuple(execution.steps)
        children = journal.children
        if journal.timed_out is not None:
            decision = journal.timed_out
        if isinstance(decision, Fail):
            return RunResult("failed", decision.state, None, decision.error, steps, children), took
        if isinstance(decision, Finish):
            output = decision.output
            return RunResult("succeeded", decision.state, output, None, steps, children), took
        raise AssertionError("an in-memory run stops only at its end")


def _ended(key: str, result: RunResult, *, state_bound: bool) -> ChildResult:
    """How a child ended, as its fan-out sees it. A child stopped by the state's own
    `timeout_seconds` failed with `Timeout`, which the state may catch; one stopped by the
    task's deadline with `TaskTimeout`, which ends the task."""
    if result.status == "succeeded":
        return ChildResult(key, "succeeded", result.output)
    error = result.error or StepError("Unknown", "the child failed without an error")
    if error.kind == TASK_TIMEOUT and state_bound:
        return ChildResult(key, "timed_out", None, TIMEOUT, error.message)
    return ChildResult(key, "failed", None, error.kind, error.message)

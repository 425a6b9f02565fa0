"""The one driver of a run: decide, call, record, until the run ends or leaves this runner.

The in-memory runner and the durable service both advance runs through `drive`. What
differs between them is their `Journal`'s: where steps go, whether a retry's delay is
waited out here or handed back to a queue, and when to stop. Every call goes through
`call_tool`: the tool's strict validation of its input and output, the state's timeout,
and the checks that the output can be stored (its text, how deeply it nests) and is not
too large (`sizes.py`). Any of
those failing is a failed step with an error kind that `retry` and `catch` can match,
never an exception. A decided step (a choice's decision) calls nothing: it is recorded at
once, as the engine decided it.

Time comes from the journal, never from here: the time a wait begins (`Journal.now`), and
how long is left before the task's deadline (`Journal.time_left`), which bounds each
call's timeout. A call cut short by the deadline is a failed step of kind `TaskTimeout`;
the journal, which reads the clock, ends the task.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from typing import Protocol

from taskrunner.engine.fanout import ChildResult, Fanout
from taskrunner.engine.interpreter import Execution
from taskrunner.engine.sizes import OUTPUT_TOO_LARGE, oversize
from taskrunner.engine.steps import TASK_TIMEOUT, CallTool, Decision, Fail, Finish, Step
from taskrunner.engine.storable import fault_message, unstorable
from taskrunner.engine.timers import WAIT_TOOL, timer_step
from taskrunner.tools import INVALID_OUTPUT, TIMEOUT, JsonObject, ToolCallError, ToolRegistry


class Journal(Protocol):
    """Where a driven run's progress goes."""

    def before_call(self, call: CallTool) -> bool:
        """Get ready to make `call` (wait out its delay or until its `not_before`, note the
        time); False to stop before it instead (the journal has said why the run stops)."""

    def now(self) -> datetime:
        """The time, for a wait that begins now."""

    def time_left(self) -> float | None:
        """Seconds left before the task's deadline, or None when it has none."""

    def run_children(self, call: CallTool, fanout: Fanout) -> Sequence[ChildResult] | None:
        """Run the children of a fan-out call (at most `fanout.max_concurrency` at once) and
        say how each ended; None when they cannot all end here (the run stops, and the
        call is made again when it resumes: children that ended are not run twice)."""

    def record(self, step: Step, decision: Decision, checkpoint: JsonObject) -> bool:
        """Keep `step`, what the execution decided after it, and where it now stands
        (`Execution.checkpoint()`); whether to go on."""

    def settle(self, decision: Finish | Fail) -> None:
        """Keep how the run ends, when the drive found nothing left to call."""


def drive(execution: Execution, journal: Journal) -> Decision:
    """Advance `execution` as far as it goes here; return where it stands."""
    decision = execution.decide()
    if not isinstance(decision, CallTool):
        journal.settle(decision)
        return decision
    while isinstance(decision, CallTool) and journal.before_call(decision):
        step = take_step(execution.plan.registry, decision, journal)
        if step is None:
            break
        execution.record(step)
        decision = execution.decide()
        if not journal.record(step, decision, execution.checkpoint()):
            break
    return decision


def take_step(registry: ToolRegistry, call: CallTool, journal: Journal) -> Step | None:
    """Make the call the execution asked for, a decided step (a choice's), a wait's step,
    a fan-out's or a tool's, within the time the task has left; None when a fan-out's
    children did not all end."""
    if call.decided is not None:
        return call.succeeded(call.decided)
    if call.fanout is not None:
        results = journal.run_children(call, call.fanout)
        return None if results is None else call.fanout.join(call, results)
    if call.tool == WAIT_TOOL:
        return timer_step(call, journal.now())
    left = journal.time_left()
    if left is None or (call.timeout_seconds is not None and call.timeout_seconds <= left):
        return call_tool(registry, call)
    step = call_tool(registry, replace(call, timeout_seconds=max(left, 0.0)))
    if step.error is not None and step.error.kind == TIMEOUT:
        return call.failed(TASK_TIMEOUT, f"the task's deadline came during the call ({left:g} s)")
    return step


def call_tool(registry: ToolRegistry, call: CallTool) -> Step:
    """Make the call; its result, success or failure, as a step."""
    try:
        output = registry.get(call.tool).invoke(call.arguments, timeout=call.timeout_seconds)
    except ToolCallError as exc:
        return call.failed(exc.kind, exc.message)
    fault = unstorable(output)
    if fault is not None:
        return call.failed(INVALID_OUTPUT, fault_message(fault, "the output"))
    too_large = oversize(output)
    if too_large is not None:
        return call.failed(OUTPUT_TOO_LARGE, f"the output is {too_large}")
    return call.succeeded(output)

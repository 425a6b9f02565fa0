"""The one driver of a run: decide, call, record, until the run ends or leaves this runner.

The in-memory runner and the durable service both advance runs through `drive`. What
differs between them is their `Journal`'s: where steps go, whether a retry's delay is
waited out here or handed back to a queue, and when to stop. Every call goes through
`call_tool`: the tool's strict validation of its input and output, the state's timeout,
and the checks that the output can be stored (its text, how deeply it nests) and is not
too large (`sizes.py`). Any of
those failing is a failed step with an error kind that `retry` and `catch` can match,
never an exception.
"""

from __future__ import annotations

from typing import Protocol

from taskrunner.engine.interpreter import Execution
from taskrunner.engine.sizes import OUTPUT_TOO_LARGE, oversize
from taskrunner.engine.steps import CallTool, Decision, Fail, Finish, Step
from taskrunner.engine.storable import fault_message, unstorable
from taskrunner.tools import INVALID_OUTPUT, JsonObject, ToolCallError, ToolRegistry


class Journal(Protocol):
    """Where a driven run's progress goes."""

    def before_call(self, call: CallTool) -> bool:
        """Get ready to make `call` (wait out its delay, note the time); False to stop
        before it instead."""

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
        step = call_tool(execution.plan.registry, decision)
        execution.record(step)
        decision = execution.decide()
        if not journal.record(step, decision, execution.checkpoint()):
            break
    return decision


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

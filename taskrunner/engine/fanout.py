"""Fan-out: a state that runs other charts as children and joins what they produced.

A `parallel` state runs one child per branch, a `map` state one per item of an array, a
`flow` state one run of another flow. To the execution, each is one call, like a tool's:
`CallTool` with a `Fanout` attached. Whoever drives the run (`driver.Journal`) runs the
children, here or on other workers, and hands back one `ChildResult` each; `Fanout.join`
turns them into the one step the parent records. A child is known by its position in the
state (`Child.key`: `branch:NAME`, `item:INDEX`, `flow`), never by when it finished, so the
joined output, and every decision after it, is the same whatever order the children ended
in. The join is pure: it reads no clock and keeps no state.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Literal

from pydantic import JsonValue

from taskrunner.engine.sizes import OUTPUT_TOO_LARGE, oversize
from taskrunner.engine.steps import CallTool, Step
from taskrunner.tools import TIMEOUT, JsonObject

PARALLEL_TOOL: Final = "parallel"
MAP_TOOL: Final = "map"
FLOW_TOOL: Final = "flow"
FANOUT_TOOLS: Final = frozenset({PARALLEL_TOOL, MAP_TOOL, FLOW_TOOL})
"""The tool names a parent's history gives the steps that join its children."""

TOLERATED_FAILURES_EXCEEDED: Final = "ToleratedFailuresExceeded"
"""A map state's error when more items failed than its failure policy tolerates."""

ChildStatus = Literal["succeeded", "failed", "cancelled", "timed_out"]
Shape = Literal["object", "array", "single"]


@dataclass(frozen=True, slots=True)
class Child:
    """One run a fan-out starts: the flow version it runs, and its input."""

    key: str
    """Its position in the state: `branch:NAME`, `item:INDEX` or `flow`."""
    digest: str
    """The version of the flow it runs (a branch's or an item's chart, or a pinned flow)."""
    definition: JsonObject
    """That version's canonical document, for a runner that has not stored it yet."""
    input: JsonObject
    validate_input: bool = False
    """Whether the input must still be checked against the flow's declared input (a
    sub-flow's); a chart's input is built by the parent and typed by the checker."""


@dataclass(frozen=True, slots=True)
class ChildResult:
    """How one child ended. A child cancelled because a sibling failed is `cancelled`; one
    cut short because the fan-out state's own `timeout_seconds` ran out is `timed_out`."""

    key: str
    status: ChildStatus
    output: JsonValue = None
    error_kind: str | None = None
    error_message: str | None = None


@dataclass(frozen=True, slots=True)
class Fanout:
    """The children of one fan-out call, how many may run at once, and how to join them.

    `shape` says what the joined output is: `object`, keyed by branch name (`parallel`);
    `array`, one entry per item in input order, wrapped as `{"items": [...]}` in the step
    (`map`); `single`, the one child's output (`flow`). Failures: with `tolerated_failures`
    and `tolerated_percentage` both unset, the first failed child (in key order, not in
    time) fails the call with its own error kind; with either set, more failures than it
    allows fail the call with `ToleratedFailuresExceeded`, and fewer leave a null in the
    failed items' places. A child cut short by the state's `timeout_seconds` fails the call
    with `Timeout`, whatever the policy (as a Step Functions Map's `TimeoutSeconds` does).
    """

    children: tuple[Child, ...]
    shape: Shape
    max_concurrency: int | None = None
    tolerated_failures: int | None = None
    tolerated_percentage: float | None = None

    @property
    def fail_fast(self) -> bool:
        """The first failure ends the call (and the runner may cancel the other children)."""
        return self.tolerated_failures is None and self.tolerated_percentage is None

    def tolerates(self, failed: int) -> bool:
        """Whether `failed` failed children still let the call succeed."""
        if self.fail_fast:
            return failed == 0
        if self.tolerated_failures is not None and failed > self.tolerated_failures:
            return False
        if self.tolerated_percentage is not None and self.children:
            return failed * 100 <= self.tolerated_percentage * len(self.children)
        return True

    def join(self, call: CallTool, results: Sequence[ChildResult]) -> Step:
        """The step `call` records, given how each of its children ended."""
        by_key: Mapping[str, ChildResult] = {result.key: result for result in results}
        ordered = [by_key.get(child.key) for child in self.children]
        missing = [
            child.key
            for child, result in zip(self.children, ordered, strict=True)
            if result is None
        ]
        if missing:
            raise ValueError(f"no result for the children {', '.join(missing)}")
        ended = [result for result in ordered if result is not None]
        late = [result for result in ended if result.status == "timed_out"]
        if late:  # the state's time is up: the whole call fails, whatever the policy
            return call.failed(TIMEOUT, f"{_label(late[0].key)} failed: {late[0].error_message}")
        failed = [result for result in ended if result.status == "failed"]
        if not self.tolerates(len(failed)):
            if self.fail_fast:
                first = failed[0]
                kind = first.error_kind or "Unknown"
                return call.failed(kind, f"{_label(first.key)} failed: {first.error_message}")
            return call.failed(
                TOLERATED_FAILURES_EXCEEDED,
                f"{len(failed)} of {len(ended)} items failed, more than the policy tolerates; "
                f"the first, {_label(failed[0].key)}: {failed[0].error_message}",
            )
        unfinished = [result.key for result in ended if result.status == "cancelled"]
        if unfinished:
            raise ValueError(f"children cancelled without a failure: {', '.join(unfinished)}")
        output = self._output(ended)
        too_large = oversize(output)
        if too_large is not None:
            return call.failed(OUTPUT_TOO_LARGE, f"the joined output is {too_large}")
        return call.succeeded(output)

    def _output(self, ended: Sequence[ChildResult]) -> JsonObject:
        values = [result.output if result.status == "succeeded" else None for result in ended]
        if self.shape == "object":
            return {
                result.key.partition(":")[2]: value
                for result, value in zip(ended, values, strict=True)
            }
        if self.shape == "array":
            return {"items": values}
        value = values[0] if values else None
        return value if isinstance(value, dict) else {"value": value}


def _label(key: str) -> str:
    kind, _, name = key.partition(":")
    if kind == "branch":
        return f"branch `{name}`"
    if kind == "item":
        return f"item {name}"
    return "the sub-flow"

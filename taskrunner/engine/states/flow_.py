"""The `flow` state: run another flow, by name, as a sub-flow task, and go on with its output.

The sub-flow is a child of the task (see `fanout`): one call whose only child, `flow`,
runs the version of the flow that the task pinned when it started (`subflows`), on the
state's `input`, checked against that flow's declared input, before the run by the
checker and again by the runner. What the sub-flow's task produced is the state's output,
`$states.NAME`; its failure is the state's, with its own error kind, to retry or catch as a
task state's.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Final, Literal

from pydantic import Field

from taskrunner.engine import types
from taskrunner.engine.diagnostics import Diagnostic, closest, listing, pointer
from taskrunner.engine.errorkinds import RaisableKinds
from taskrunner.engine.fanout import FLOW_TOOL, Child, Fanout
from taskrunner.engine.model import FlowName, StateName, Value
from taskrunner.engine.refs import Expression, parse_value
from taskrunner.engine.states.base import Arrival, Goto, Outcome, Run, Scope, State
from taskrunner.engine.states.charts import CHART_KINDS
from taskrunner.engine.states.recovery import Catch, Retry, after_failure, check_handlers
from taskrunner.engine.steps import CallTool, Fail, Step, StepError
from taskrunner.engine.subflows import UnpinnedFlowError, pinned_version
from taskrunner.engine.types import ANY, ValueType
from taskrunner.tools import INVALID_INPUT, TIMEOUT, JsonObject, ToolRegistry

UNPINNED_FLOW: Final = "UnpinnedFlow"
"""A flow state's flow has no pinned version in the task's flow version."""


class FlowState(State):
    """Run the flow `flow` on `input` as a sub-flow task, then go to `next`."""

    type: Literal["flow"]
    flow: FlowName = Field(description="The name of the flow to run.")
    input: Value = Field(
        default_factory=dict,
        description="The sub-flow's input, an object: literals or references, or one "
        "reference to an object. It is checked against the flow's declared input.",
    )
    next: StateName = Field(description="The state to go to when the sub-flow succeeds.")
    timeout_seconds: float | None = Field(
        default=None,
        gt=0,
        le=86_400,
        description="A sub-flow that takes longer fails the state with the error kind `Timeout`.",
    )
    retry: Retry | None = Field(
        default=None, description="Run the sub-flow again (a new task) when it fails."
    )
    catch: list[Catch] = Field(
        default_factory=list,
        description="Checked in order. The target state sees the caught error as `$error`.",
    )

    TRANSITIONS = ("next", "catch")
    OUTPUT_TRANSITION = "next"
    has_output = True

    def check(self, scope: Scope) -> Iterator[Diagnostic]:
        known = scope.flows
        at_flow = scope.here + pointer("flow")
        signature = known.get(self.flow)
        cycle = known.cycle_through(self.flow)
        if cycle is not None:
            shown = " -> ".join(f"`{name}`" for name in cycle)
            yield Diagnostic(
                "flow.cycle",
                f"flows call each other in a cycle: {shown}",
                at_flow,
                "a flow may not call itself, directly or through other flows: such a task "
                "would never end; break the cycle",
            )
        elif self.flow not in known:
            meant = closest(self.flow, known.names())
            yield Diagnostic(
                "flow.unknown",
                f"there is no flow `{self.flow}`",
                at_flow,
                f"did you mean `{meant}`?"
                if meant
                else f"flows: {listing(known.names()) or 'none besides this one'}",
            )
        elif signature is None:
            yield Diagnostic(
                "flow.unknown",
                f"the flow `{self.flow}` does not load: its file has problems",
                at_flow,
                f"fix the flow `{self.flow}` first (see `taskrunner validate-flow`)",
            )
        # In a cycle, the flow called is being replaced: its old input is no measure.
        declared = signature.input if signature is not None and cycle is None else None
        yield from self._check_input(scope, declared)
        raised = self.raises(scope)
        raisable = (
            None
            if raised is None
            else RaisableKinds("", tuple(sorted(raised)), (), owner=f"the flow `{self.flow}`")
        )
        yield from check_handlers(scope.here, self.retry, self.catch, raisable)

    def raises(self, scope: Scope) -> frozenset[str] | None:
        """What the sub-flow's task may fail with (its signature's kinds, and those of any
        chart), its input refused, and `Timeout`: of this state's `timeout_seconds`, or of
        the sub-flow's own, which reaches this state as `Timeout`. None when unknown."""
        signature = scope.flows.get(self.flow)
        if signature is None or signature.raises is None:
            return None
        return frozenset({*CHART_KINDS, *signature.raises, INVALID_INPUT, TIMEOUT})

    def _check_input(self, scope: Scope, declared: ValueType | None) -> Iterator[Diagnostic]:
        """The input against the flow's declared input: field by field when it is written
        as an object (no unknown field, every required one), else as one value."""
        path = scope.here + pointer("input")
        where = f"the input of the flow `{self.flow}`"
        if not isinstance(self.input, dict) or declared is None:
            _ = yield from scope.value(self.input, path, declared, where)
            return
        known = _fields(declared)
        for key, value in self.input.items():
            try:
                field_type = types.member(declared, key)
            except types.NoSuchFieldError:
                meant = closest(key, known)
                yield Diagnostic(
                    "flow.input",
                    f"the flow `{self.flow}` declares no input field `{key}`",
                    path + pointer(key),
                    f"did you mean `{meant}`?"
                    if meant
                    else f"its input fields: {listing(known) or 'none'}",
                    at_key=True,
                )
                continue
            inner = f"`{self.flow}`'s input `{key}`"
            _ = yield from scope.value(value, path + pointer(key), field_type, inner)
        missing = [name for name in _required(declared) if name not in self.input]
        if missing:
            shown = ", ".join(f"`{name}`" for name in missing)
            # Without an `input` key, the call itself is what lacks them.
            written = "input" in self.model_fields_set
            yield Diagnostic(
                "flow.input",
                f"the flow `{self.flow}` needs the input field{'s' if len(missing) > 1 else ''} "
                f"{shown}, which this input lacks",
                path if written else scope.here + pointer("flow"),
                "give every input field the flow declares without a default or `optional`",
                at_key=True,
            )

    def output_type(self, scope: Scope) -> ValueType:
        signature = scope.flows.get(self.flow)
        return signature.output if signature is not None else ANY

    def compile(self, name: str, tools: ToolRegistry) -> FlowCallPlan:
        return FlowCallPlan(name, self, parse_value(self.input))


def _fields(declared: ValueType) -> list[str]:
    properties = declared.schema.get("properties") if declared.schema is not None else None
    return list(properties) if isinstance(properties, Mapping) else []


def _required(declared: ValueType) -> list[str]:
    required = declared.schema.get("required") if declared.schema is not None else None
    return (
        [name for name in required if isinstance(name, str)] if isinstance(required, list) else []
    )


@dataclass(frozen=True, slots=True)
class FlowCallPlan:
    """A flow state compiled: it finds the version to run among its flow version's pins,
    which the flow plan gives it (`with_pins`)."""

    name: str
    state: FlowState
    input: Expression
    pins: Mapping[str, str] = field(default_factory=dict)
    locked: Mapping[str, JsonObject] = field(default_factory=dict)

    def with_pins(self, pins: Mapping[str, str], locked: Mapping[str, JsonObject]) -> FlowCallPlan:
        return replace(self, pins=pins, locked=locked)

    def enter(self, run: Run) -> Arrival:
        try:
            version = pinned_version(self.pins, self.locked, self.state.flow)
        except UnpinnedFlowError as exc:
            return Fail(self.name, StepError(UNPINNED_FLOW, str(exc)))
        given = run.resolve(self.input)
        if not isinstance(given, dict):
            problem = f"the input of the flow `{self.state.flow}` is {given!r}, not an object"
            return Fail(self.name, StepError(INVALID_INPUT, problem))
        child = Child("flow", version.digest, version.definition, given, validate_input=True)
        return CallTool(
            run.next_seq,
            self.name,
            FLOW_TOOL,
            run.attempt,
            given,
            run.delay,
            self.state.timeout_seconds,
            fanout=Fanout((child,), "single"),
        )

    def on_step(self, run: Run, step: Step) -> Outcome:
        if step.status == "succeeded":
            return Goto(self.state.next)
        return after_failure(self.name, step, self.state.retry, self.state.catch)

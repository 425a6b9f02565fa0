"""Sub-charts: the `{start, states}` that a `parallel` branch or a `map` item runs.

A sub-chart is checked as a chart of its own (`Scope.chart`) and runs as a flow of its own:
each child of a fan-out is a run of the flow document `{"name": CHART_FLOW_NAME, "start":
..., "states": ...}`, read with the built-in language, with its version digest. Its
`$input` is what the parent hands it; it cannot see the parent's `$states`.

Its states are kept as written (plain mappings) in the model: the published schema says
what they are (the same union of kinds as a flow's states, `schema.py` links the two), and
the checker reads them with the flow's language.
"""

from __future__ import annotations

from collections.abc import Generator, Iterable, Mapping
from dataclasses import dataclass
from typing import Annotated, Final

from pydantic import Field, JsonValue, WithJsonSchema

from taskrunner.engine import types
from taskrunner.engine.diagnostics import Diagnostic
from taskrunner.engine.errorkinds import CALL_KINDS, RaisableKinds
from taskrunner.engine.model import MAX_STATES, Node, StateName
from taskrunner.engine.states.base import Scope
from taskrunner.engine.states.fail import INVALID_ERROR_KIND
from taskrunner.engine.subflows import pins_for
from taskrunner.engine.timers import INVALID_WAIT
from taskrunner.engine.types import ANY, ValueType
from taskrunner.tools import JsonObject

CHART_FLOW_NAME: Final = "chart"
"""The name of the flow document a sub-chart runs as (a child's flow has no name of its own)."""
CHART_STATE_MARK: Final = "x-chart-state"
"""Where the published schema has a sub-chart's state: `schema.py` makes each a reference
to the union of state kinds (Pydantic cannot refer to a union it has not built yet)."""

ChartStateDocument = Annotated[dict[str, JsonValue], WithJsonSchema({CHART_STATE_MARK: True})]


class Chart(Node):
    """A chart of states inside a state: it starts at `start` and ends in a succeed or fail
    state of its own. Its `$input` is what the enclosing state hands it."""

    start: StateName = Field(description="The first state of the sub-chart.")
    states: dict[StateName, ChartStateDocument] = Field(
        min_length=1,
        max_length=MAX_STATES,
        description="The sub-chart's states, by name: any kind, fan-outs included.",
    )

    def document(self) -> JsonObject:
        """The flow document a child of this chart runs."""
        states: dict[str, JsonValue] = {name: dict(raw) for name, raw in self.states.items()}
        return {"name": CHART_FLOW_NAME, "start": self.start, "states": states}


@dataclass(frozen=True, slots=True)
class CompiledChart:
    """A sub-chart as the flow version its children run."""

    digest: str
    definition: JsonObject


def compile_chart(
    chart: Chart,
    pins: Mapping[str, str] | None = None,
    locked: Mapping[str, JsonObject] | None = None,
) -> CompiledChart:
    """The chart as a flow version, pinned to the versions of the flows its `flow` states
    call, taken from the enclosing version's `pins` and `locked` (see `with_pins`)."""
    # The flow module imports every state kind, this one included.
    from taskrunner.engine.flow import builtin_language

    document = chart.document()
    document.update(pins_for(document, pins or {}, locked or {}))
    flow = builtin_language().parse(document)
    return CompiledChart(flow.digest, flow.stored_definition())


CHART_KINDS: Final = (*CALL_KINDS, INVALID_WAIT, INVALID_ERROR_KIND)
"""The error kinds any chart's run may fail with, whatever its states: a tool call's own,
an output too large, a wait or a fail state given a bad value by the data."""


def fanout_kinds(
    scope: Scope, charts: Iterable[Chart], own: Iterable[str], owner: str
) -> RaisableKinds | None:
    """The kinds a fan-out state may fail with: those its charts' runs may fail with, and
    its `own`; None when a chart's cannot be known (an unknown tool, a built error kind)."""
    found = set(CHART_KINDS) | set(own)
    for chart in charts:
        raised = scope.chart_raises(chart.model_dump())
        if raised is None:
            return None
        found |= raised
    return RaisableKinds("", tuple(sorted(found)), (), owner=owner)


INDEX_TYPE: Final = types.of_schema({"type": "integer", "minimum": 0})


def check_chart(
    scope: Scope, chart: Chart, path: str, input_type: ValueType
) -> Generator[Diagnostic, None, ValueType]:
    """The sub-chart's problems, at their places in the parent document; the type of what
    it ends with (the union of its succeed states' outputs)."""
    return (yield from scope.chart(chart.model_dump(), path, input_type))


def array_of(item: ValueType, *, nullable: bool = False) -> ValueType:
    """The type of an array whose items are of type `item` (or null)."""
    if item.schema is None:
        return types.of_schema({"type": "array"})
    element: JsonValue = dict(item.schema)
    if nullable:
        element = {"anyOf": [element, {"type": "null"}]}
    return types.of_schema({"type": "array", "items": element}, item.defs)


def element_of(array: ValueType) -> ValueType | None:
    """The type of an item of `array`; None when it is not an array at all."""
    if array.kinds is None:
        return ANY
    if "array" not in array.kinds:
        return None
    literal = array.schema.get("const") if array.schema is not None else None
    if isinstance(literal, list):
        found: ValueType | None = None
        for value in literal:
            item = types.of_value(value)
            found = item if found is None else types.join(found, item)
        return found or ANY
    try:
        return types.member(types.non_null(array), "0")
    except types.NoSuchFieldError:
        return ANY


def drained(checking: Generator[Diagnostic, None, ValueType]) -> ValueType:
    """What a check returns, its diagnostics dropped (the state's `check` reports them)."""
    while True:
        try:
            next(checking)
        except StopIteration as stop:
            found: ValueType = stop.value
            return found


def as_object(value: JsonValue) -> Mapping[str, JsonValue] | None:
    return value if isinstance(value, dict) else None

"""Pass two: the meaning of a flow document.

It runs even when the shape pass found problems, so that an unknown tool and a transition
to a missing state are both reported. Each state is read as its kind's model; a state that
does not read (its shape is broken) still has its transitions read tolerantly, so that its
neighbours are checked, and whatever of it does read is checked too.

The chart itself is `chart.py`'s: the start state and every transition target exist;
every state is reachable; a terminal state is reachable from every state; no loop is made
only of states that call no tool. Checked here: every reference parses, resolves to
a declared input or to the output of a state that has produced it on *every* path to the
point of use; and types agree, from the flow input and the tools' output models to the
tools' input models. The checks of each state's own content belong to its kind
(`State.check`); a sub-chart is checked by an analysis of its own.
"""

from __future__ import annotations

import copy
from collections.abc import Generator, Iterator, Mapping
from dataclasses import replace
from typing import Final

from pydantic import JsonValue, ValidationError

from taskrunner.engine import types
from taskrunner.engine.chart import Chart, Hints
from taskrunner.engine.diagnostics import Diagnostic, listing, pointer
from taskrunner.engine.flow import Language, builtin_language
from taskrunner.engine.input_checks import check_inputs, input_type
from taskrunner.engine.model import MAX_STATES
from taskrunner.engine.refs import Reference
from taskrunner.engine.states.base import State
from taskrunner.engine.subflows import FlowSignature, KnownFlows
from taskrunner.engine.type_diagnostics import nullable_diagnostic
from taskrunner.engine.types import ToolTypes, ValueType
from taskrunner.engine.values import CAUGHT_ERROR_TYPE, check_value
from taskrunner.tools import ToolRegistry

MAX_ROUTES: Final = 100
"""How many `ref.not-run` hints spell out a path without the output: each is a search of
the chart. Past it, the hint says only that there is such a path."""
MAX_ROUTE_SHOWN: Final = 8
"""How many states of such a path a hint shows: its first and last few."""
MAX_TYPING_DEPTH: Final = 64
"""How deep a chain of output types (each from its state's arguments) is followed."""


class MeaningChecker:
    """Checks the meaning of flow documents against one tool registry and one language."""

    def __init__(
        self,
        registry: ToolRegistry,
        language: Language | None = None,
        flows: Mapping[str, FlowSignature | None] | None = None,
    ) -> None:
        """`flows`: the other flows that `flow` states may call (None for a flow that
        exists but does not load)."""
        self._tools = {item.name: ToolTypes.of(item) for item in registry}
        self._language = language or builtin_language()
        self._flows: Mapping[str, FlowSignature | None] = flows or {}

    def with_flows(self, flows: Mapping[str, FlowSignature | None]) -> MeaningChecker:
        """This checker, knowing `flows` instead (the tools' types are not read again)."""
        checker = copy.copy(self)
        checker._flows = flows
        return checker

    def check(self, document: Mapping[str, object]) -> list[Diagnostic]:
        analysis = self._analysis(document)
        return [] if analysis is None else list(analysis.run())

    def output_type(self, document: Mapping[str, object]) -> ValueType:
        """The type of what a task of this (valid) flow produces: the union of what its
        reachable succeed states output."""
        analysis = self._analysis(document)
        return types.ANY if analysis is None else analysis.flow_output()

    def raises(self, document: Mapping[str, object]) -> frozenset[str] | None:
        """The error kinds a task of this (valid) flow may fail with, besides those every
        chart may (`charts.CHART_KINDS`); None when they cannot be known."""
        analysis = self._analysis(document)
        if analysis is None:
            return None
        return _StateScope(analysis, analysis.start or "").chart_raises(document)

    def _analysis(self, document: Mapping[str, object]) -> _Analysis | None:
        states = document.get("states")
        if not isinstance(states, Mapping) or not states or len(states) > MAX_STATES:
            return None  # the shape pass reports it; there is no chart to reason about
        name = document.get("name")
        flows = KnownFlows(name if isinstance(name, str) else None, self._flows)
        return _Analysis(document, states, self._tools, self._language, flows)


class _Analysis:
    def __init__(
        self,
        document: Mapping[str, object],
        states: Mapping[str, object],
        tools: Mapping[str, ToolTypes],
        language: Language,
        flows: KnownFlows,
        chart_input: ValueType | None = None,
        outer: frozenset[str] = frozenset(),
    ) -> None:
        self.document = document
        self.states = states
        self.tools = tools
        self.language = language
        self.flows = flows
        self.kinds: dict[str, type[State] | None] = {}
        self.whole: dict[str, State] = {}
        """The states that read as their kind's model."""
        self.readable: dict[str, State] = {}
        """Those, and the broken states whose well-formed part reads (`State.salvage`)."""
        for name, raw in states.items():
            kind = language.kind(raw.get("type")) if isinstance(raw, Mapping) else None
            self.kinds[name] = kind
            if kind is None or not isinstance(raw, Mapping):
                continue
            try:
                self.whole[name] = self.readable[name] = kind.model_validate(raw)
            except ValidationError:
                salvaged = kind.salvage(raw)
                if salvaged is not None:
                    self.readable[name] = salvaged
        self.hints = Hints()
        self.chart = Chart(states, self.kinds, self.whole, language, document.get("start"))
        self.start = self.chart.start
        self.nested = chart_input is not None
        """A sub-chart: its `$input` is what the enclosing state hands it."""
        self.outer = outer
        """The states of the charts around this one, which it cannot see."""
        self.input_names: list[str] | None
        if chart_input is None:
            self.input_names, self.input_type = input_type(document.get("input"))
        else:
            self.input_names, self.input_type = _field_names(chart_input), chart_input
        self.output_types: dict[str, ValueType] = {}
        self.typing: list[str] = []
        """The states whose output type is being worked out, innermost last."""
        self.routes_left = MAX_ROUTES

    def run(self) -> Iterator[Diagnostic]:
        yield from self.chart.check(self.hints)
        if self.start is not None:  # producers first, so that no chain of types is deep
            for name in self.chart.graph.breadth_first(self.start):
                self.output_of(name)
        yield from check_inputs(self.document.get("input"))
        for name, raw in self.states.items():
            scope = _StateScope(self, name)
            kind = self.kinds[name]
            if name in self.whole:
                yield from self.whole[name].check(scope)
            elif kind is not None and isinstance(raw, Mapping):
                yield from kind.check_broken(raw, scope)

    def flow_output(self) -> ValueType:
        """The union of what the reachable succeed states output."""
        # Checking the chart works out what is reachable; its problems are `run`'s.
        for _ in self.chart.check(self.hints):
            pass
        return self.end_type()

    # -- values and references ------------------------------------------------------------

    def value(
        self,
        state: str,
        value: JsonValue,
        path: str,
        target: ValueType | None,
        where: str,
        *,
        literal_checked: bool,
        non_null: frozenset[str] = frozenset(),
    ) -> Generator[Diagnostic, None, ValueType | None]:
        def resolve(reference: Reference, where: str) -> ValueType | Diagnostic:
            return self._resolve(state, reference, where, non_null)

        return (
            yield from check_value(
                resolve, value, path, target, where, literal_checked=literal_checked
            )
        )

    def _resolve(
        self, state: str, ref: Reference, path: str, non_null: frozenset[str] = frozenset()
    ) -> ValueType | Diagnostic:
        if ref.root == "error":
            if (
                self.start is not None
                and state in self.chart.reachable
                and state not in self.chart.caught
            ):
                return Diagnostic(
                    "ref.no-error",
                    f"`{ref.text}`: `{state}` can be reached without an error being caught",
                    path,
                    "use $error only in states that every path reaches through a `catch`",
                )
            current = CAUGHT_ERROR_TYPE
        elif ref.state is None:
            current = self.input_type
            names = self.input_names
            if names is not None and ref.path and ref.path[0] not in names:
                owner = (
                    "the sub-chart's `$input` has no field"
                    if self.nested
                    else ("the flow declares no input field")
                )
                return Diagnostic(
                    "ref.unknown-input",
                    f"`{ref.text}`: {owner} `{ref.path[0]}`",
                    path,
                    self.hints.suggest(ref.path[0], names)
                    or f"declared: {listing(names) or 'none'}",
                )
        else:
            problem = self._producer_problem(state, ref, path)
            if problem is not None:
                return problem
            current = self.output_of(ref.state)
        known = self.chart.non_null.get(state, frozenset()) | non_null
        prefixes = ref.prefixes()
        walked: list[str] = []
        for position, segment in enumerate(ref.path):
            if current.nullable:
                if not ref.has_default and prefixes[position] not in known:
                    return nullable_diagnostic(ref, prefixes[position], current, path)
                current = types.non_null(current)
            try:
                current = types.member(current, segment)
            except types.NoSuchFieldError as exc:
                subject = "$" + ".".join((ref.root, *([ref.state] if ref.state else []), *walked))
                return Diagnostic(
                    "ref.unknown-field",
                    f"`{ref.text}`: `{subject}` ({current.describe()}) has no field `{segment}`",
                    path,
                    self.hints.suggest(segment, exc.known)
                    or (f"fields: {listing(exc.known)}" if exc.known else None),
                )
            walked.append(segment)
        if ref.has_default:
            return types.join(types.non_null(current), types.of_value(ref.default))
        return types.non_null(current) if ref.target in known else current

    def sub_chart(
        self, chart: Mapping[str, object], path: str, chart_input: ValueType
    ) -> Generator[Diagnostic, None, ValueType]:
        """Check a sub-chart as a chart of its own; its problems, at their places in this
        document; the type it ends with."""
        states = chart.get("states")
        if not isinstance(states, Mapping) or not states or len(states) > MAX_STATES:
            return types.ANY
        outer = self.outer | frozenset(self.states)
        inner = _Analysis(chart, states, self.tools, self.language, self.flows, chart_input, outer)
        for diagnostic in inner.run():
            yield replace(diagnostic, path=path + diagnostic.path)
        return inner.end_type()

    def end_type(self) -> ValueType:
        """The type of what the chart ends with: the union of its reachable succeed states'
        outputs (after `run`)."""
        found: ValueType | None = None
        for name, state in self.readable.items():
            if self.start is not None and name not in self.chart.reachable:
                continue
            end = state.end_type(_StateScope(self, name))
            if end is not None:
                found = end if found is None else types.join(found, end)
        return found if found is not None else types.ANY

    def output_of(self, name: str) -> ValueType:
        """The type of the output of state `name`, worked out once. A state whose output
        type depends on its own (a loop), or a chain of them too long to follow, gets the
        type its kind declares without looking at its arguments."""
        if name in self.output_types:
            return self.output_types[name]
        producer = self.readable.get(name)
        if producer is None:
            return types.ANY
        if name in self.typing or len(self.typing) >= MAX_TYPING_DEPTH:
            return producer.output_type(_StateScope(self, name, shallow=True))
        self.typing.append(name)
        try:
            found = producer.output_type(_StateScope(self, name))
        finally:
            self.typing.pop()
        self.output_types[name] = found
        return found

    def _producer_problem(self, state: str, ref: Reference, path: str) -> Diagnostic | None:
        producer = ref.state or ""
        producing = " or ".join(kind.kind for kind in self.language if kind.has_output)
        if producer not in self.states and producer in self.outer:
            return Diagnostic(
                "ref.outer-state",
                f"`{ref.text}`: `{producer}` is outside this sub-chart, which sees only its "
                "own states and its `$input`",
                path,
                "pass the value in through the enclosing state's `input:` and read it "
                "from `$input`",
            )
        if producer not in self.states:
            names = [n for n, kind in self.kinds.items() if kind is not None and kind.has_output]
            return Diagnostic(
                "ref.unknown-state",
                f"`{ref.text}`: there is no state `{producer}`",
                path,
                self.hints.suggest(producer, names)
                or f"{producing} states: {listing(names) or 'none'}",
            )
        kind = self.kinds.get(producer)
        if kind is None:  # its `type` is in error (`Task` for `task`): that is the problem
            return None
        if not kind.has_output:
            return Diagnostic(
                "ref.no-output",
                f"`{ref.text}`: `{producer}` is a {kind.kind} state, which has no output",
                path,
                f"only {producing} states have outputs",
            )
        if self.start is None or state not in self.chart.reachable:
            return None
        if producer in self.chart.outputs.get(state, frozenset()):
            return None
        written = self.readable.get(producer)
        if written is not None and written.initial_output() is not None:
            return None  # it has its `initial` value before it first runs
        if producer == state:
            return Diagnostic(
                "ref.not-run",
                f"`{ref.text}`: `{state}` cannot use its own output, which does not exist "
                "before it first succeeds",
                path,
                "give the state an `initial` value for its output before its first run",
            )
        return Diagnostic(
            "ref.not-run",
            f"`{ref.text}`: `{producer}` has not succeeded on every path to `{state}`",
            path,
            self._route_hint(state, producer),
        )

    def _route_hint(self, state: str, producer: str) -> str | None:
        if self.start is None:
            return None
        if self.routes_left <= 0:
            return f"some path from `{self.start}` reaches `{state}` without its output"
        self.routes_left -= 1
        route = self.chart.graph.path_without_output(self.start, state, producer)
        if not route:
            return None
        if len(route) > MAX_ROUTE_SHOWN:
            half = MAX_ROUTE_SHOWN // 2
            hidden = len(route) - 2 * half
            route = [*route[:half], f"… ({hidden:,} more)", *route[-half:]]
        return f"a path without its output: {' -> '.join(route)}"


class _StateScope:
    """What one state's checks see of the analysis (`states.base.Scope`). A shallow scope
    knows no value's type (for an output type that cannot look at its arguments)."""

    def __init__(self, analysis: _Analysis, name: str, *, shallow: bool = False) -> None:
        self._analysis = analysis
        self._name = name
        self._shallow = shallow
        self.here = pointer("states", name)

    def tool(self, name: str) -> ToolTypes | None:
        return self._analysis.tools.get(name)

    @property
    def flows(self) -> KnownFlows:
        return self._analysis.flows

    def own_output(self) -> ValueType:
        return self._analysis.output_of(self._name)

    def chart_raises(self, chart: Mapping[str, object]) -> frozenset[str] | None:
        states = chart.get("states")
        if not isinstance(states, Mapping):
            return None
        found: set[str] = set()
        for raw in states.values():
            kind = (
                self._analysis.language.kind(raw.get("type")) if isinstance(raw, Mapping) else None
            )
            if kind is None:
                return None
            try:
                raised = kind.model_validate(raw).raises(self)
            except ValidationError:
                return None
            if raised is None:
                return None
            found |= raised
        return frozenset(found)

    def chart(
        self, chart: Mapping[str, object], path: str, chart_input: ValueType
    ) -> Generator[Diagnostic, None, ValueType]:
        if self._shallow:
            return _any_chart()
        return self._analysis.sub_chart(chart, path, chart_input)

    def value(
        self,
        value: JsonValue,
        path: str,
        target: ValueType | None = None,
        where: str = "",
        *,
        literal_checked: bool = False,
        non_null: frozenset[str] = frozenset(),
    ) -> Generator[Diagnostic, None, ValueType | None]:
        if self._shallow:
            return _unknown()
        return self._analysis.value(
            self._name,
            value,
            path,
            target,
            where,
            literal_checked=literal_checked,
            non_null=non_null,
        )


def _unknown() -> Generator[Diagnostic, None, ValueType | None]:
    return None
    yield  # a generator that reports nothing


def _any_chart() -> Generator[Diagnostic, None, ValueType]:
    return types.ANY
    yield  # a generator that reports nothing


def _field_names(value: ValueType) -> list[str] | None:
    """The fields an object of this type may have, when they are known (a closed object)."""
    schema = value.schema
    if schema is None:
        return None
    literal = schema.get("const")
    if isinstance(literal, dict):
        return list(literal)
    properties = schema.get("properties")
    if isinstance(properties, Mapping) and schema.get("additionalProperties") is False:
        return list(properties)
    return None

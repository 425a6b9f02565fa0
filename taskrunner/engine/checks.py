"""Pass two: the meaning of a flow document.

Checked here, on the raw document so that it runs even when the shape pass found
problems: the start state and every transition target exist; every state is reachable; a
succeed or fail state is reachable from every state; no cycle is made of choice states
only; every reference parses, resolves to a declared input or to the output of a task
state that has run on *every* path to the point of use; and types agree, from the flow
input and the tools' output models to the tools' input models.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator, Mapping
from dataclasses import dataclass, replace
from functools import cache
from typing import Final

from pydantic import JsonValue, TypeAdapter, ValidationError

from taskrunner.engine import types
from taskrunner.engine.diagnostics import Diagnostic, closest, pointer, suggest
from taskrunner.engine.graph import Graph, read_graph
from taskrunner.engine.model import (
    COMBINATORS,
    COMPARISONS,
    MAX_STATES,
    TERMINAL_TYPES,
    Condition,
)
from taskrunner.engine.refs import Reference, ReferenceSyntaxError, parse_value
from taskrunner.engine.types import ValueType
from taskrunner.tools import Tool, ToolRegistry

_INPUT_KINDS: Final = {"string", "integer", "number", "boolean", "object", "array"}
_ORDERING: Final = ("lt", "le", "gt", "ge")


@cache
def _condition_adapter() -> TypeAdapter[Condition]:
    return TypeAdapter(Condition)


def _members(value: object) -> list[tuple[str, JsonValue]]:
    return list(value.items()) if isinstance(value, dict) else []


@dataclass(frozen=True)
class ToolTypes:
    """A tool's argument types and output type, read off its models' JSON Schemas."""

    arguments: dict[str, ValueType]
    output: ValueType

    @classmethod
    def of(cls, item: Tool) -> ToolTypes:
        schema = item.input_model.model_json_schema()
        defs = schema.get("$defs")
        properties = schema.get("properties", {})
        arguments = {name: types.of_schema(prop, defs) for name, prop in properties.items()}
        output_schema = item.output_model.model_json_schema()
        return cls(arguments, types.of_schema(output_schema, output_schema.get("$defs")))


class MeaningChecker:
    """Checks the meaning of flow documents against one tool registry."""

    def __init__(self, registry: ToolRegistry) -> None:
        self._tools = {item.name: ToolTypes.of(item) for item in registry}

    def check(self, document: Mapping[str, object]) -> list[Diagnostic]:
        states = document.get("states")
        if not isinstance(states, Mapping) or not states or len(states) > MAX_STATES:
            return []  # the shape pass reports it; there is no chart to reason about
        return list(_Analysis(document, states, self._tools).run())


class _Analysis:
    def __init__(
        self,
        document: Mapping[str, object],
        states: Mapping[str, object],
        tools: Mapping[str, ToolTypes],
    ) -> None:
        self.states = states
        self.tools = tools
        self.graph: Graph = read_graph(states)
        start = document.get("start")
        self.start = start if isinstance(start, str) and start in states else None
        self.start_text = start
        self.document = document
        self.input_names, self.input_type = _input_type(document.get("input"))
        self.reachable: set[str] = set()
        self.outputs: dict[str, frozenset[str]] = {}

    def run(self) -> Iterator[Diagnostic]:
        yield from self._chart()
        yield from self._input_defaults()
        for name, raw in self.states.items():
            if isinstance(raw, Mapping):
                yield from self._state(name, raw)

    # -- the chart ------------------------------------------------------------------------

    def _chart(self) -> Iterator[Diagnostic]:
        names = self.graph.names
        if isinstance(self.start_text, str) and self.start is None:
            yield Diagnostic(
                "flow.unknown-start",
                f"the start state `{self.start_text}` does not exist",
                "/start",
                suggest(self.start_text, names) or f"states: {', '.join(names)}",
            )
        for edge in list(self.graph.edges):
            if edge.target not in self.states:
                meant = closest(edge.target, names)
                yield Diagnostic(
                    "flow.unknown-state",
                    f"transition to `{edge.target}`, which is not a state",
                    edge.path,
                    f"did you mean `{meant}`?" if meant else f"states: {', '.join(names)}",
                )
                if meant:  # follow the evident intent, so the typo does not cascade
                    self.graph.add(replace(edge, target=meant))
        if self.start is None:
            return
        self.reachable = self.graph.reachable_from(self.start)
        # Where an incomplete state leads is unknown: any state may be its missing target.
        complete = not (self.graph.incomplete & self.reachable)
        for name in names:
            if complete and name not in self.reachable:
                yield Diagnostic(
                    "flow.unreachable",
                    f"state `{name}` cannot be reached from the start state `{self.start}`",
                    pointer("states", name),
                    "remove it, or add a transition to it",
                    at_key=True,
                )
        # An incomplete state, or one with a transition to nowhere, may well end the flow
        # once its own problem is fixed: do not cascade from that problem.
        broken = {edge.source for edge in self.graph.edges if edge.target not in self.states}
        broken |= self.graph.incomplete
        ends = [
            name
            for name, kind in self.graph.kinds.items()
            if kind in TERMINAL_TYPES or name in broken
        ]
        finishing = self.graph.reaching(ends)
        for name in names:
            if name in self.reachable and name not in finishing:
                yield Diagnostic(
                    "flow.no-terminal",
                    f"no succeed or fail state can be reached from `{name}`",
                    pointer("states", name),
                    "every path must be able to end: add a transition out of the loop",
                    at_key=True,
                )
        choices = {n for n, kind in self.graph.kinds.items() if kind == "choice"}
        for cycle in self.graph.cycles_among(choices):
            looping = (
                f"choice states {', '.join(f'`{n}`' for n in cycle)} form a loop"
                if len(cycle) > 1
                else f"choice state `{cycle[0]}` loops to itself"
            )
            yield Diagnostic(
                "flow.choice-cycle",
                f"{looping} with no task in it",
                pointer("states", cycle[0]),
                "data cannot change without a task, so the loop would never end",
                at_key=True,
            )
        self.outputs = self.graph.guaranteed_outputs(self.start, self.reachable)

    # -- input declarations ---------------------------------------------------------------

    def _input_defaults(self) -> Iterator[Diagnostic]:
        declared = self.document.get("input")
        if not isinstance(declared, Mapping):
            return
        for name, spec in declared.items():
            if not isinstance(spec, Mapping) or "default" not in spec:
                continue
            expected = types.member(self.input_type, name)
            found = types.of_value(spec["default"])
            if not types.accepts(expected, found):
                yield Diagnostic(
                    "type.mismatch",
                    f"the default of `{name}` is {found.describe()}, "
                    f"but `{name}` is declared {expected.describe()}",
                    pointer("input", name, "default"),
                )

    # -- one state ------------------------------------------------------------------------

    def _state(self, name: str, raw: Mapping[str, object]) -> Iterator[Diagnostic]:
        # Read from the raw mapping, so that a state with a shape problem elsewhere (an
        # unknown key, say) still has its data checked.
        here = pointer("states", name)
        kind = raw.get("type")
        if kind == "task":
            tool_name = raw.get("tool")
            tool = self.tools.get(tool_name) if isinstance(tool_name, str) else None
            for argument, value in _members(raw.get("args")):
                target = tool.arguments.get(argument) if tool else None
                where = f"`{tool_name}.{argument}`"
                path = here + pointer("args", argument)
                # A literal argument is checked against the tool's field by the schema.
                yield from self._value(name, value, path, target, where, literal_checked=True)
        elif kind == "succeed":
            for field, value in _members(raw.get("output")):
                yield from self._value(name, value, here + pointer("output", field))
        elif kind == "choice":
            rules = raw.get("rules")
            for position, rule in enumerate(rules if isinstance(rules, list) else []):
                when = rule.get("when") if isinstance(rule, Mapping) else None
                try:
                    condition = _condition_adapter().validate_python(when)
                except ValidationError:
                    continue  # the shape pass reports it
                path = here + pointer("rules", position, "when")
                yield from self._condition(name, condition, path)

    def _condition(self, name: str, condition: Condition, path: str) -> Iterator[Diagnostic]:
        given = condition.model_fields_set
        operators = [op for op in (*COMPARISONS, *COMBINATORS) if _field(op) in given]
        if len(operators) != 1:
            listing = ", ".join(f"`{op}`" for op in (*COMPARISONS, *COMBINATORS))
            found = ", ".join(f"`{op}`" for op in operators) or "none"
            yield Diagnostic(
                "choice.condition",
                f"a condition needs exactly one operator; found {found}",
                path,
                f"operators: {listing}",
            )
            return
        [operator] = operators
        if operator in COMBINATORS:
            if "value" in given:
                yield Diagnostic(
                    "choice.condition",
                    f"`value` has no meaning beside `{operator}`",
                    path + "/value",
                    f"put `value` in the conditions under `{operator}`",
                )
            inner = condition.not_ if operator == "not" else getattr(condition, operator)
            if isinstance(inner, Condition):
                yield from self._condition(name, inner, path + "/not")
            elif isinstance(inner, list):
                for position, item in enumerate(inner):
                    yield from self._condition(name, item, path + pointer(operator, position))
            return
        if "value" not in given:
            yield Diagnostic(
                "choice.condition",
                f"`{operator}` compares `value` with something, but `value` is missing",
                path,
                "add `value: $input.NAME` or another reference",
            )
            return
        numeric = ValueType(frozenset({"number"})) if operator in _ORDERING else None
        left = yield from self._value(name, condition.value, path + "/value", numeric, "`value`")
        operand = getattr(condition, operator)
        where = f"`{operator}`"
        right = yield from self._value(name, operand, path + pointer(operator), numeric, where)
        if (
            operator in ("eq", "ne")
            and left is not None
            and right is not None
            and not types.overlaps(left, right)
        ):
            yield Diagnostic(
                "type.mismatch",
                f"`{operator}` compares {left.describe()} with {right.describe()}: never equal",
                path + pointer(operator),
            )

    # -- one value ------------------------------------------------------------------------

    def _value(
        self,
        state: str,
        value: JsonValue,
        path: str,
        target: ValueType | None = None,
        where: str = "",
        *,
        literal_checked: bool = False,
    ) -> Generator[Diagnostic, None, ValueType | None]:
        """Check a literal or a reference; return its type (None if it is in error)."""
        try:
            expression = parse_value(value)
        except ReferenceSyntaxError as exc:
            yield Diagnostic("ref.syntax", str(exc), path, "write $$ for a literal $")
            return None
        if not isinstance(expression, Reference):
            found = types.of_value(expression.value)
            if target is not None and not literal_checked and not types.accepts(target, found):
                yield Diagnostic(
                    "type.mismatch",
                    f"{where} takes {target.describe()}, but {value!r} is {found.describe()}",
                    path,
                )
            return found
        found_or_problem = self._resolve(state, expression, path)
        if isinstance(found_or_problem, Diagnostic):
            yield found_or_problem
            return None
        if target is not None and not types.accepts(target, found_or_problem):
            yield Diagnostic(
                "type.mismatch",
                f"{where} takes {target.describe()}, but `{expression.text}` is "
                f"{found_or_problem.describe()}",
                path,
            )
        return found_or_problem

    def _resolve(self, state: str, ref: Reference, path: str) -> ValueType | Diagnostic:
        if ref.state is None:
            current = self.input_type
            names = self.input_names
            if ref.path and ref.path[0] not in names:
                return Diagnostic(
                    "ref.unknown-input",
                    f"`{ref.text}`: the flow declares no input field `{ref.path[0]}`",
                    path,
                    suggest(ref.path[0], names) or f"declared: {', '.join(names) or 'none'}",
                )
        else:
            problem = self._producer_problem(state, ref, path)
            if problem is not None:
                return problem
            raw = self.states[ref.state]
            tool_name = raw.get("tool") if isinstance(raw, Mapping) else None
            tool = self.tools.get(tool_name) if isinstance(tool_name, str) else None
            current = tool.output if tool else types.ANY
        walked: list[str] = []
        for segment in ref.path:
            try:
                current = types.member(current, segment)
            except types.NoSuchFieldError as exc:
                subject = "$" + ".".join((ref.root, *([ref.state] if ref.state else []), *walked))
                return Diagnostic(
                    "ref.unknown-field",
                    f"`{ref.text}`: `{subject}` ({current.describe()}) has no field `{segment}`",
                    path,
                    suggest(segment, exc.known)
                    or (f"fields: {', '.join(exc.known)}" if exc.known else None),
                )
            walked.append(segment)
        return current

    def _producer_problem(self, state: str, ref: Reference, path: str) -> Diagnostic | None:
        producer = ref.state or ""
        if producer not in self.states:
            names = [n for n, kind in self.graph.kinds.items() if kind == "task"]
            return Diagnostic(
                "ref.unknown-state",
                f"`{ref.text}`: there is no state `{producer}`",
                path,
                suggest(producer, names) or f"task states: {', '.join(names) or 'none'}",
            )
        kind = self.graph.kinds.get(producer)
        if _known(kind) and kind != "task":
            return Diagnostic(
                "ref.no-output",
                f"`{ref.text}`: `{producer}` is a {kind} state, which has no output",
                path,
                "only task states have outputs",
            )
        if self.start is None or state not in self.reachable:
            return None
        if producer in self.outputs.get(state, frozenset()):
            return None
        if producer == state:
            return Diagnostic(
                "ref.not-run",
                f"`{ref.text}`: `{state}` cannot use its own output, which does not exist "
                "before it first succeeds",
                path,
            )
        route = self.graph.path_without_output(self.start, state, producer)
        shown = " -> ".join(route) if route else None
        return Diagnostic(
            "ref.not-run",
            f"`{ref.text}`: `{producer}` has not succeeded on every path to `{state}`",
            path,
            f"a path without its output: {shown}" if shown else None,
        )


def _known(kind: str | None) -> bool:
    return kind in ("task", "choice", *TERMINAL_TYPES)


def _field(operator: str) -> str:
    return "not_" if operator == "not" else operator


def _input_type(declared: object) -> tuple[list[str], ValueType]:
    """The declared input fields, and the type of the whole input object."""
    properties: dict[str, JsonValue] = {}
    if isinstance(declared, Mapping):
        for name, spec in declared.items():
            kind = spec.get("type") if isinstance(spec, Mapping) else None
            properties[name] = {"type": kind} if kind in _INPUT_KINDS else {}
    schema = {"type": "object", "properties": properties, "additionalProperties": False}
    return list(properties), types.of_schema(schema)

"""What a state kind is, and what it may ask of the validator and the interpreter.

A state kind is one subclass of `State`. Being a frozen Pydantic model, it is its own
model, and so its own part of the published schema. Besides, it says:

- where it can go: `TRANSITIONS` names the keys that hold a state's name (or a list of
  items, each with a `next`), which gives `transitions()` on the typed model and, for a
  state whose shape is broken, `read_transitions()` on the raw data, so that its
  neighbours are still checked;
- what it means: `check(scope)`, on the typed model, reports its references and types;
- what it does: `compile(name, tools)` gives a `StatePlan`, whose `enter(run)` says what
  happens when the execution arrives, and whose `on_step(run, step)` takes the result of
  the call it asked for.

The validator and the interpreter dispatch over these and know no kind by name.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator, Mapping
from dataclasses import dataclass
from typing import ClassVar, Literal, Protocol, Self, get_args, get_origin

from pydantic import JsonValue, ValidationError
from pydantic.fields import FieldInfo

from taskrunner.engine.diagnostics import Diagnostic
from taskrunner.engine.model import Node
from taskrunner.engine.refs import (
    Constant,
    Expression,
    ReferenceSyntaxError,
    TemplateSyntaxError,
    parse_value,
)
from taskrunner.engine.steps import CallTool, Fail, Finish, Step
from taskrunner.engine.subflows import KnownFlows
from taskrunner.engine.types import ANY, ToolTypes, ValueType
from taskrunner.tools import JsonObject, ToolRegistry


@dataclass(frozen=True, slots=True)
class Transition:
    """An edge of the chart: where it goes, where it is written (relative to the state),
    and whether the state's output exists when it is taken."""

    target: str
    path: tuple[str | int, ...]
    with_output: bool = False


class Scope(Protocol):
    """What a state's checks may ask of the flow around it."""

    @property
    def here(self) -> str:
        """The JSON pointer of the state being checked."""

    def tool(self, name: str) -> ToolTypes | None:
        """The types of a registered tool, or None."""

    @property
    def flows(self) -> KnownFlows:
        """The other flows that a `flow` state may call, and the flow being checked."""

    def own_output(self) -> ValueType:
        """The type of the state's own output (`output_type`, worked out once; where it
        refers to itself through its `initial`, that part is any value)."""

    def chart_raises(self, chart: Mapping[str, object]) -> frozenset[str] | None:
        """The error kinds a run of a sub-chart may fail with, as its states say
        (`State.raises`); None when that cannot be known."""

    def chart(
        self, chart: Mapping[str, object], path: str, chart_input: ValueType
    ) -> Generator[Diagnostic, None, ValueType]:
        """Check a sub-chart (`{start, states}`, at `path` in the document) as a chart of
        its own, whose `$input` has type `chart_input` and which cannot see this chart's
        states; report its problems, and return the type of what it ends with."""

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
        """Check a literal or a reference at `path`, against `target` if given (described
        as `where` in messages); return its type, or None when it is in error. References
        in `non_null` (as `Reference.target`) are known not to be null here, besides those
        the chart guards (a choice's earlier rules, a conjunction's earlier terms)."""


class Run(Protocol):
    """What a state's plan sees of the execution it is part of."""

    data: JsonObject
    """The task's input."""
    outputs: dict[str, JsonValue]
    """What each state that has produced an output produced last."""
    attempt: int
    """The attempt the state is at: 1, then 2 after a first retry…"""
    delay: float
    """Seconds to wait before the attempt (a retry's backoff)."""

    @property
    def next_seq(self) -> int:
        """The number the next recorded step will have."""

    def resolve(self, expression: Expression) -> JsonValue:
        """The value of a literal or reference now; `UnresolvedReferenceError` if absent.
        (The same as `expression.resolve(run.data, run.outputs)`.)"""


@dataclass(frozen=True, slots=True)
class Goto:
    """Move on to `target` without a step. `output`, if given, is what the state produced
    (what `$states.NAME` refers to from then on); a state that produced null says so with
    `null_output`. `caught` is the error caught on the way, if any (what `$error` refers
    to from then on)."""

    target: str
    output: JsonValue = None
    null_output: bool = False
    caught: JsonObject | None = None

    @property
    def produced(self) -> bool:
        return self.output is not None or self.null_output


@dataclass(frozen=True, slots=True)
class Again:
    """Stay in the state and make attempt `attempt`, after `delay_seconds`."""

    attempt: int
    delay_seconds: float


Arrival = CallTool | Finish | Fail | Goto
"""What a state does when the execution arrives in it."""
Outcome = Arrival | Again
"""Where the result of a call leads."""


class StatePlan(Protocol):
    """A state compiled for running."""

    def enter(self, run: Run) -> Arrival:
        """What happens when the execution is in this state (again, after a retry)."""

    def on_step(self, run: Run, step: Step) -> Outcome:
        """Where the result of the `CallTool` that `enter` asked for leads."""


class CallsNothing:
    """For plans of kinds that never ask for a call, and so are never told of a step."""

    def on_step(self, run: Run, step: Step) -> Outcome:
        raise TypeError(f"state {step.state!r} calls no tool, yet a step was recorded for it")


class State(Node):
    """The base of every state kind. Subclasses declare `type` as a one-value `Literal`."""

    type: str
    description: str | None = None

    kind: ClassVar[str] = ""
    """The value of `type` that selects this kind (read off the annotation)."""
    TRANSITIONS: ClassVar[tuple[str, ...]] = ()
    """The keys that hold a state's name, or a list of items each with a `next`."""
    OUTPUT_TRANSITION: ClassVar[str | None] = None
    """The key whose transition is taken once the state has produced its output."""
    terminal: ClassVar[bool] = False
    """The task ends in this state."""
    transient: ClassVar[bool] = False
    """The state calls no tool, so a loop of such states alone would never end: nothing
    in it changes the data its decisions read."""
    has_output: ClassVar[bool] = False
    """`$states.NAME` refers to what this state produced."""

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: object) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        annotation = cls.model_fields["type"].annotation
        if get_origin(annotation) is Literal and len(get_args(annotation)) == 1:
            cls.kind = str(get_args(annotation)[0])

    # -- the chart ------------------------------------------------------------------------

    def transitions(self) -> Iterator[Transition]:
        written = self.model_dump(include=set(self.TRANSITIONS))
        return transitions_in(written, self.TRANSITIONS, self.OUTPUT_TRANSITION)

    @classmethod
    def read_transitions(cls, raw: Mapping[str, object]) -> tuple[list[Transition], bool]:
        """The transitions that can be read off a state that failed the shape check, and
        whether they are all there (every required single transition is a string)."""
        found = list(transitions_in(raw, cls.TRANSITIONS, cls.OUTPUT_TRANSITION))
        required = [
            key
            for key in cls.TRANSITIONS
            if (field := cls.model_fields.get(key)) is not None
            and field.is_required()
            and field.annotation is str
        ]
        return found, all(isinstance(raw.get(key), str) for key in required)

    # -- meaning --------------------------------------------------------------------------

    def check(self, scope: Scope) -> Iterator[Diagnostic]:
        """Every problem of this state's references and types."""
        return iter(())

    def output_type(self, scope: Scope) -> ValueType:
        """The type of what `$states.NAME` refers to (for kinds that have an output)."""
        return ANY

    def raises(self, scope: Scope) -> frozenset[str] | None:
        """The error kinds of its own (besides those of every chart: `charts.CHART_KINDS`)
        that a chart may end with in this state, failed; None when they cannot be known."""
        return frozenset()

    def end_type(self, scope: Scope) -> ValueType | None:
        """The type of the output a chart ends with in this state (a succeed state's), or
        None when the chart does not end here with an output."""
        return None

    def initial_output(self) -> tuple[JsonValue] | None:
        """What `$states.NAME` is before the state first runs (its `initial`), as a
        one-item tuple since null is a value; None when it has none."""
        return None

    def guards(self) -> Mapping[tuple[str | int, ...], frozenset[str]]:
        """The references known not to be null when a transition is taken (by the
        transition's path, as in `Transition.path`): `$states.x.match` after a choice rule
        `ne: null` on it. Each reference is written as `Reference.target`."""
        return {}

    @classmethod
    def check_broken(cls, raw: Mapping[str, object], scope: Scope) -> Iterator[Diagnostic]:
        """Check what can be read of a state that failed the shape check: by default, the
        state as `salvage` reads it."""
        state = cls.salvage(raw)
        return state.check(scope) if state is not None else iter(())

    @classmethod
    def salvage(cls, raw: Mapping[str, object]) -> Self | None:
        """The state read despite its shape problems (which the shape pass reports), so
        that its well-formed parts are still checked: unknown keys, and optional keys that
        do not validate, are left out. None when a required key cannot be read."""
        fields = _fields_by_key(cls)
        data = {key: value for key, value in raw.items() if key in fields}
        for _ in range(len(data) + 1):
            try:
                return cls.model_validate(data)
            except ValidationError as exc:
                broken = {str(error["loc"][0]) for error in exc.errors() if error["loc"]}
                dropped = {key for key in broken & data.keys() if not fields[key].is_required()}
                if not dropped:
                    return None
                for key in dropped:
                    del data[key]
        return None

    @classmethod
    def schema_variant(cls, tools: ToolRegistry) -> object:
        """What this kind is in the published schema, given the registered tools: the
        model itself, unless the kind specialises it (the task state does, per tool)."""
        return cls

    # -- running --------------------------------------------------------------------------

    def compile(self, name: str, tools: ToolRegistry) -> StatePlan:
        raise NotImplementedError(f"the {self.kind} state kind does not say how it runs")


def transitions_in(
    raw: Mapping[str, object], keys: tuple[str, ...], output_key: str | None
) -> Iterator[Transition]:
    """Whatever is a string where one of `keys` expects a state's name (or a list of
    items, each with a `next`)."""
    for key in keys:
        value = raw.get(key)
        if isinstance(value, str):
            yield Transition(value, (key,), with_output=key == output_key)
        elif isinstance(value, list):
            for position, item in enumerate(value):
                target = item.get("next") if isinstance(item, Mapping) else None
                if isinstance(target, str):
                    yield Transition(target, (key, position, "next"))


def _fields_by_key(kind: type[State]) -> dict[str, FieldInfo]:
    """The kind's fields, by name and by alias (`not` for `not_`)."""
    found = dict(kind.model_fields)
    found.update({field.alias: field for field in kind.model_fields.values() if field.alias})
    return found


def check_initial(state: State, scope: Scope) -> Iterator[Diagnostic]:
    """The problems of a state's `initial`: a literal that must fit the state's output."""
    initial = state.initial_output()
    if initial is None:
        return
    path = scope.here + "/initial"
    try:
        literal = isinstance(parse_value(initial[0]), Constant)
    except (ReferenceSyntaxError, TemplateSyntaxError):
        literal = False
    if not literal:
        yield Diagnostic(
            "state.initial",
            "`initial` holds a reference or a template, but it is the value before any "
            "state has run: it must be literal",
            path,
            "write the value itself; write $$ for a literal $ and {{ for a literal {",
        )
        return
    _ = yield from scope.value(initial[0], path, scope.own_output(), "`initial`")

"""The `choice` state: ordered rules over data, then a default.

A choice calls no tool, but its decision is a step of the state, with the tool name
`choice` (a name no registered tool may take): its input is what the conditions read, each
value by its reference as written (`{"$states.add.sum": 100}`), and its output the rule
that held, counted from 1, and where it leads (`{"rule": 2, "next": "big"}`), or
`{"rule": "default", ...}`. So a task's history says which way it went and why, and a
replay that would now choose otherwise stops with `UnexpectedStepError`. The engine
decides it alone (`CallTool.decided`); the driver records it without calling anything.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator, Mapping
from dataclasses import dataclass
from typing import Final, Literal, TypeGuard

from pydantic import Field, JsonValue, ValidationError

from taskrunner.engine import types
from taskrunner.engine.diagnostics import Diagnostic, pointer
from taskrunner.engine.model import Node, StateName, Value
from taskrunner.engine.refs import (
    Constant,
    Expression,
    Reference,
    ReferenceSyntaxError,
    Structure,
    Template,
    parse_value,
)
from taskrunner.engine.states.base import Arrival, Goto, Outcome, Run, Scope, State
from taskrunner.engine.steps import CallTool, Step
from taskrunner.engine.types import ValueType
from taskrunner.tools import JsonObject, ToolRegistry

CHOICE_TOOL: Final = "choice"
"""The tool name of the step that records a choice's decision; `ToolRegistry` refuses a
tool of that name."""
DEFAULT_RULE: Final = "default"
"""What a choice's step records as its rule when none held."""


class Condition(Node):
    """A test over data: one comparison of `value`, or `all`, `any` or `not` of conditions."""

    value: Value = Field(default=None, description="The left-hand side of a comparison.")
    eq: Value = Field(default=None, description="`value` equals this.")
    ne: Value = Field(default=None, description="`value` does not equal this.")
    lt: Value = Field(default=None, description="`value` is a number less than this.")
    le: Value = Field(default=None, description="`value` is a number at most this.")
    gt: Value = Field(default=None, description="`value` is a number greater than this.")
    ge: Value = Field(default=None, description="`value` is a number at least this.")
    all: list[Condition] | None = Field(
        default=None, min_length=1, description="Every condition holds."
    )
    any: list[Condition] | None = Field(
        default=None, min_length=1, description="At least one condition holds."
    )
    not_: Condition | None = Field(default=None, alias="not", description="The condition fails.")


COMPARISONS: Final = ("eq", "ne", "lt", "le", "gt", "ge")
COMBINATORS: Final = ("all", "any", "not")
_ORDERING: Final = ("lt", "le", "gt", "ge")


class Rule(Node):
    """If `when` holds, go to `next`."""

    when: Condition
    next: StateName


class ChoiceState(State):
    """Go to the `next` of the first rule that holds, else to `default`."""

    type: Literal["choice"]
    rules: list[Rule] = Field(min_length=1, description="Tried in order.")
    default: StateName = Field(description="The state to go to when no rule holds.")

    TRANSITIONS = ("rules", "default")
    transient = True

    def check(self, scope: Scope) -> Iterator[Diagnostic]:
        failed: frozenset[str] = frozenset()  # a rule is tried only if those before failed
        for position, rule in enumerate(self.rules):
            path = scope.here + pointer("rules", position, "when")
            yield from _check_condition(scope, rule.when, path, failed)
            failed |= _non_null(rule.when)[1]

    @classmethod
    def salvage(cls, raw: Mapping[str, object]) -> ChoiceState | None:
        return None  # a choice without one of its rules would mean something else

    @classmethod
    def check_broken(cls, raw: Mapping[str, object], scope: Scope) -> Iterator[Diagnostic]:
        """Each rule's condition that reads is checked, where it is."""
        rules = raw.get("rules")
        for position, rule in enumerate(rules if isinstance(rules, list) else []):
            when = rule.get("when") if isinstance(rule, Mapping) else None
            try:
                condition = Condition.model_validate(when)
            except ValidationError:
                continue  # the shape pass reports it
            yield from _check_condition(
                scope, condition, scope.here + pointer("rules", position, "when")
            )

    def guards(self) -> Mapping[tuple[str | int, ...], frozenset[str]]:
        """A rule's target knows what its condition says is not null; the later rules and
        the default know what the failed conditions before them say (`eq: null` failed)."""
        found: dict[tuple[str | int, ...], frozenset[str]] = {}
        failed: frozenset[str] = frozenset()
        for position, rule in enumerate(self.rules):
            held, refuted = _non_null(rule.when)
            found[("rules", position, "next")] = failed | held
            failed |= refuted
        found[("default",)] = failed
        return found

    def compile(self, name: str, tools: ToolRegistry) -> ChoicePlan:
        rules = tuple((_test(rule.when), rule.next) for rule in self.rules)
        return ChoicePlan(name, rules, self.default)


def _check_condition(
    scope: Scope, condition: Condition, path: str, known: frozenset[str] = frozenset()
) -> Generator[Diagnostic, None, None]:
    """Check a condition where the references in `known` are surely not null: a term of
    `all` is evaluated only if those before it held, a term of `any` only if they failed."""
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
            yield from _check_condition(scope, inner, path + "/not", known)
        elif isinstance(inner, list):
            for position, item in enumerate(inner):
                where = path + pointer(operator, position)
                yield from _check_condition(scope, item, where, known)
                held, refuted = _non_null(item)
                known |= held if operator == "all" else refuted
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
    left = yield from scope.value(
        condition.value, path + "/value", numeric, "`value`", non_null=known
    )
    operand = getattr(condition, operator)
    where = f"`{operator}`"
    right = yield from scope.value(
        operand, path + pointer(operator), numeric, where, non_null=known
    )
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


def _non_null(condition: Condition) -> tuple[frozenset[str], frozenset[str]]:
    """The references that are surely not null when the condition holds, and those that
    are surely not null when it does not."""
    given = condition.model_fields_set
    if "all" in given or "any" in given:
        parts = [_non_null(term) for term in (condition.all or condition.any or [])]
        if "all" in given:
            return frozenset().union(*(held for held, _ in parts)), frozenset()
        return frozenset(), frozenset().union(*(refuted for _, refuted in parts))
    if "not_" in given and condition.not_ is not None:
        held, refuted = _non_null(condition.not_)
        return refuted, held
    for operator in ("eq", "ne"):
        if operator not in given:
            continue
        try:
            sides = (parse_value(condition.value), parse_value(getattr(condition, operator)))
        except ReferenceSyntaxError:
            return frozenset(), frozenset()  # reported by the checks
        for reference, other in (sides, sides[::-1]):
            if not isinstance(reference, Reference) or reference.has_default:
                continue
            if isinstance(other, Constant) and other.value is None:
                fact = frozenset({reference.target})
                return (fact, frozenset()) if operator == "ne" else (frozenset(), fact)
            if operator == "eq" and isinstance(other, Constant):
                return frozenset({reference.target}), frozenset()
    return frozenset(), frozenset()


def _field(operator: str) -> str:
    return "not_" if operator == "not" else operator


# -- running --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Comparison:
    operator: str
    left: Expression
    right: Expression


@dataclass(frozen=True, slots=True)
class Combination:
    operator: str  # "all", "any" or "not"
    terms: tuple[Test, ...]


Test = Comparison | Combination


@dataclass(frozen=True, slots=True)
class ChoicePlan:
    name: str
    rules: tuple[tuple[Test, str], ...]
    default: str

    def enter(self, run: Run) -> Arrival:
        """Decide, and ask for the step that records the decision. Only the conditions
        tried are read: those of the rules up to the one that held, and of `all` and `any`
        only the terms up to the one that settled them."""
        read: dict[str, JsonValue] = {}
        rule: int | str = DEFAULT_RULE
        target = self.default
        for number, (test, then) in enumerate(self.rules, start=1):
            if _holds(run, test, read):
                rule, target = number, then
                break
        decision: JsonObject = {"rule": rule, "next": target}
        return CallTool(run.next_seq, self.name, CHOICE_TOOL, 1, read, decided=decision)

    def on_step(self, run: Run, step: Step) -> Outcome:
        # `Execution.record` has checked that the step records the decision made now.
        target = (step.output or {}).get("next")
        if not isinstance(target, str):
            raise TypeError(f"the step of choice {self.name!r} records no next state")
        return Goto(target)


def _test(condition: Condition) -> Test:
    given = condition.model_fields_set
    if "all" in given or "any" in given:
        operator = "all" if "all" in given else "any"
        terms = getattr(condition, operator) or []
        return Combination(operator, tuple(_test(term) for term in terms))
    if "not_" in given and condition.not_ is not None:
        return Combination("not", (_test(condition.not_),))
    for operator in COMPARISONS:
        if operator in given:
            right = parse_value(getattr(condition, operator))
            return Comparison(operator, parse_value(condition.value), right)
    raise ValueError("a condition without an operator passed validation")


def _holds(run: Run, test: Test, read: dict[str, JsonValue]) -> bool:
    """Whether `test` holds now; each reference it reads is noted in `read`."""
    if isinstance(test, Combination):
        results = (_holds(run, term, read) for term in test.terms)
        if test.operator == "all":
            return all(results)
        if test.operator == "any":
            return any(results)
        return not next(results)
    left = _read(run, test.left, read)
    return _compare(test.operator, left, _read(run, test.right, read))


def _read(run: Run, expression: Expression, read: dict[str, JsonValue]) -> JsonValue:
    """The value of one side of a comparison. The references in it are noted in `read`
    by their text as written, in the order first read; a constant is not data read."""
    value = run.resolve(expression)
    if isinstance(expression, Reference):
        read.setdefault(expression.text, value)
    else:
        for reference in _references(expression):
            if reference.text not in read:
                read[reference.text] = run.resolve(reference)
    return value


def _references(expression: Expression) -> list[Reference]:
    if isinstance(expression, Reference):
        return [expression]
    if isinstance(expression, Template):
        return list(expression.references)
    if isinstance(expression, Structure):
        return [found for _, item in expression.items for found in _references(item)]
    return []


def _compare(operator: str, left: JsonValue, right: JsonValue) -> bool:
    if operator == "eq":
        return same(left, right)
    if operator == "ne":
        return not same(left, right)
    if not _is_number(left) or not _is_number(right):
        return False  # ordering is defined on numbers only
    if operator == "lt":
        return left < right
    if operator == "le":
        return left <= right
    if operator == "gt":
        return left > right
    return left >= right


def _is_number(value: JsonValue) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def same(left: JsonValue, right: JsonValue) -> bool:
    """JSON equality: `1 == 1.0`, but `true` is not `1`."""
    if isinstance(left, bool) or isinstance(right, bool):
        return isinstance(left, bool) and isinstance(right, bool) and left is right
    if isinstance(left, list) and isinstance(right, list):
        return len(left) == len(right) and all(map(same, left, right))
    if isinstance(left, dict) and isinstance(right, dict):
        return left.keys() == right.keys() and all(same(left[k], right[k]) for k in left)
    if _is_number(left) and _is_number(right):
        return left == right
    return type(left) is type(right) and bool(left == right)

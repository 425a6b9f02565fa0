"""A flow compiled for running: references parsed once, tools looked up once, and the
Pydantic model of the flow's input built from its declaration."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationError, create_model

from taskrunner.engine.model import ChoiceState, Condition, Flow, InputField, TaskState
from taskrunner.engine.refs import Expression, parse_value
from taskrunner.errors import FlowInputError
from taskrunner.tools import JsonObject, Number, Tool, ToolRegistry

_PYTHON_TYPES: Final[dict[str, Any]] = {
    "string": str,
    "integer": int,
    "number": Number,
    "boolean": bool,
    "object": dict[str, JsonValue],
    "array": list[JsonValue],
}


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
class TaskPlan:
    state: TaskState
    tool: Tool
    arguments: tuple[tuple[str, Expression], ...]


@dataclass(frozen=True, slots=True)
class ChoicePlan:
    state: ChoiceState
    rules: tuple[tuple[Test, str], ...]


class FlowPlan:
    """Everything the interpreter needs of one flow version, prepared once."""

    def __init__(self, flow: Flow, registry: ToolRegistry) -> None:
        self.flow = flow
        self.tasks: dict[str, TaskPlan] = {}
        self.choices: dict[str, ChoicePlan] = {}
        self.outputs: dict[str, tuple[tuple[str, Expression], ...]] = {}
        for name, state in flow.states.items():
            if isinstance(state, TaskState):
                arguments = tuple((key, parse_value(value)) for key, value in state.args.items())
                self.tasks[name] = TaskPlan(state, registry.get(state.tool), arguments)
            elif isinstance(state, ChoiceState):
                rules = tuple((_test(rule.when), rule.next) for rule in state.rules)
                self.choices[name] = ChoicePlan(state, rules)
            elif state.type == "succeed":
                self.outputs[name] = tuple(
                    (key, parse_value(value)) for key, value in state.output.items()
                )
        self.input_model = _input_model(flow.name, flow.input)

    def validate_input(self, data: Mapping[str, object]) -> JsonObject:
        """The task input with defaults applied, checked as strictly as the tools' inputs.

        Raises `FlowInputError` listing every problem.
        """
        try:
            parsed = self.input_model.model_validate(data, strict=True)
        except ValidationError as exc:
            raise FlowInputError([_input_problem(item) for item in exc.errors()]) from None
        dumped: JsonObject = parsed.model_dump(mode="json")
        return dumped


def _test(condition: Condition) -> Test:
    given = condition.model_fields_set
    if "all" in given or "any" in given:
        operator = "all" if "all" in given else "any"
        terms = getattr(condition, operator) or []
        return Combination(operator, tuple(_test(term) for term in terms))
    if "not_" in given and condition.not_ is not None:
        return Combination("not", (_test(condition.not_),))
    for operator in ("eq", "ne", "lt", "le", "gt", "ge"):
        if operator in given:
            right = parse_value(getattr(condition, operator))
            return Comparison(operator, parse_value(condition.value), right)
    raise ValueError("a condition without an operator passed validation")


def _input_model(flow_name: str, declared: Mapping[str, InputField]) -> type[BaseModel]:
    fields: dict[str, Any] = {}
    for name, spec in declared.items():
        if spec.required:
            info = Field(description=spec.description)
        else:
            default = spec.default
            info = Field(
                default_factory=lambda value=default: copy.deepcopy(value),
                description=spec.description,
            )
        fields[name] = (_PYTHON_TYPES[spec.type], info)
    config = ConfigDict(strict=True, extra="forbid", allow_inf_nan=False)
    return create_model(f"{flow_name}_input", __config__=config, **fields)


def _input_problem(error: Any) -> str:
    where = ".".join(str(part) for part in error["loc"]) or "(input)"
    if error["type"] == "extra_forbidden":
        return f"{where}: not an input of this flow"
    return f"{where}: {error['msg']}"

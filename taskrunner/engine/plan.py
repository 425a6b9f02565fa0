"""A flow compiled for running: each state compiled once by its kind (references parsed,
tools looked up), and the Pydantic model of the flow's input built from its declaration."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Annotated, Any

from jsonschema.exceptions import ValidationError as SchemaError
from jsonschema.exceptions import best_match
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    ValidationError,
    WithJsonSchema,
    create_model,
)
from pydantic_core import ErrorDetails, PydanticCustomError

from taskrunner.engine.flow import Flow
from taskrunner.engine.inputs import INPUT_KINDS, is_plain, spec_schema
from taskrunner.engine.literals import unescape_literal
from taskrunner.engine.model import InputField
from taskrunner.engine.shape import make_validator
from taskrunner.engine.states.base import StatePlan
from taskrunner.engine.subflows import CallsFlows
from taskrunner.errors import FlowInputError
from taskrunner.tools import JsonObject, ToolRegistry


class FlowPlan:
    """Everything the interpreter needs of one flow version, prepared once."""

    def __init__(self, flow: Flow, registry: ToolRegistry) -> None:
        self.flow = flow
        self.registry = registry
        self.states: dict[str, StatePlan] = {
            name: _pinned(state.compile(name, registry), flow)
            for name, state in flow.states.items()
        }
        self.input_model = _input_model(flow.name, flow.input)

    def validate_input(self, data: Mapping[str, object]) -> JsonObject:
        """The task input with defaults applied, checked as strictly as the tools' inputs.

        Raises `FlowInputError` listing every problem.
        """
        try:
            parsed = self.input_model.model_validate(data, strict=True)
        except ValidationError as exc:
            raise FlowInputError([_input_problem(item) for item in exc.errors()]) from None
        # An optional field without a default that was not given stays absent.
        absent = {
            name
            for name, spec in self.flow.input.items()
            if spec.optional and not spec.has_default and name not in parsed.model_fields_set
        }
        dumped: JsonObject = parsed.model_dump(mode="json", exclude=absent)
        return dumped


def _pinned(plan: StatePlan, flow: Flow) -> StatePlan:
    """The plan, told of the sub-flow versions that `flow`'s version pins if it runs any."""
    return plan.with_pins(flow.pins, flow.locked) if isinstance(plan, CallsFlows) else plan


def _input_model(flow_name: str, declared: Mapping[str, InputField]) -> type[BaseModel]:
    fields: dict[str, Any] = {}
    for name, spec in declared.items():
        if spec.has_default:
            default = unescape_literal(spec.default)  # `$$5` is the text `$5`
            info = Field(
                default_factory=lambda value=default: copy.deepcopy(value),
                description=spec.description,
            )
        elif spec.optional:  # absent, it is left out of the input (null is not a value)
            info = Field(default=None, description=spec.description)
        else:
            info = Field(description=spec.description)
        fields[name] = (_annotation(spec), info)
    config = ConfigDict(strict=True, extra="forbid", allow_inf_nan=False)
    return create_model(f"{flow_name}_input", __config__=config, **fields)


def _annotation(spec: InputField) -> object:
    """A plain spec is its kind's Python type; any other is checked against its JSON
    Schema, read as the published schema is read, so that the two cannot disagree."""
    if is_plain(spec):
        return INPUT_KINDS[spec.type].annotation
    schema = spec_schema(spec)
    validator = make_validator(schema)

    def conforming(value: JsonValue) -> JsonValue:
        problem = best_match(validator.iter_errors(value))
        if problem is not None:
            inside = "".join(f"[{part!r}]" for part in problem.absolute_path)
            where = f"at {inside}: " if inside else ""
            raise PydanticCustomError(
                "input_constraint", "{where}{message}", {"where": where, "message": _said(problem)}
            )
        return value

    return Annotated[JsonValue, AfterValidator(conforming), WithJsonSchema(schema)]


def _said(problem: SchemaError) -> str:
    """jsonschema's message, without a long value spelled out in it."""
    message = problem.message
    return message if len(message) <= 200 else message[:200] + "…"


def _input_problem(error: ErrorDetails) -> str:
    where = ".".join(str(part) for part in error["loc"]) or "(input)"
    if error["type"] == "extra_forbidden":
        return f"{where}: not an input of this flow"
    return f"{where}: {error['msg']}"

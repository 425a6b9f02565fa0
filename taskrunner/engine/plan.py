"""A flow compiled for running: each state compiled once by its kind (references parsed,
tools looked up), and the Pydantic model of the flow's input built from its declaration."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model
from pydantic_core import ErrorDetails

from taskrunner.engine.flow import Flow
from taskrunner.engine.inputs import INPUT_KINDS
from taskrunner.engine.literals import unescape_literal
from taskrunner.engine.model import InputField
from taskrunner.engine.states.base import StatePlan
from taskrunner.errors import FlowInputError
from taskrunner.tools import JsonObject, ToolRegistry


class FlowPlan:
    """Everything the interpreter needs of one flow version, prepared once."""

    def __init__(self, flow: Flow, registry: ToolRegistry) -> None:
        self.flow = flow
        self.registry = registry
        self.states: dict[str, StatePlan] = {
            name: state.compile(name, registry) for name, state in flow.states.items()
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
        dumped: JsonObject = parsed.model_dump(mode="json")
        return dumped


def _input_model(flow_name: str, declared: Mapping[str, InputField]) -> type[BaseModel]:
    fields: dict[str, Any] = {}
    for name, spec in declared.items():
        if spec.required:
            info = Field(description=spec.description)
        else:
            default = unescape_literal(spec.default)  # `$$5` is the text `$5`
            info = Field(
                default_factory=lambda value=default: copy.deepcopy(value),
                description=spec.description,
            )
        fields[name] = (INPUT_KINDS[spec.type].annotation, info)
    config = ConfigDict(strict=True, extra="forbid", allow_inf_nan=False)
    return create_model(f"{flow_name}_input", __config__=config, **fields)


def _input_problem(error: ErrorDetails) -> str:
    where = ".".join(str(part) for part in error["loc"]) or "(input)"
    if error["type"] == "extra_forbidden":
        return f"{where}: not an input of this flow"
    return f"{where}: {error['msg']}"

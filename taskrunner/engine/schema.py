"""The published JSON Schema of flow documents, generated from the Pydantic models.

The generic `Flow` model accepts any tool name and any arguments. For the schema, each
registered tool gets its own task-state model whose `args` are the tool's `Input` fields,
each of which also accepts a reference. The union of task states is discriminated on
`tool`, and the union of states on `type`. Discriminated unions are rendered as `if`/`then`
branches rather than `oneOf`, so that any JSON Schema validator (ours, an editor's) reports
the real culprit, say `args.a: expected number`, instead of "not valid under any of the
given schemas".
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Any, Final, Literal, Union

from pydantic import BaseModel, Field, RootModel, create_model
from pydantic.fields import FieldInfo
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue
from pydantic_core import PydanticUndefined, core_schema

from taskrunner.engine.model import (
    MAX_STATES,
    ChoiceState,
    FailState,
    Flow,
    StateName,
    SucceedState,
    TaskState,
)
from taskrunner.tools import Tool, ToolRegistry

DIALECT: Final = "https://json-schema.org/draft/2020-12/schema"
REFERENCE_PATTERN: Final = r"^\$(input|states)(\.[A-Za-z0-9_-]+)*$"


class Reference(RootModel[str]):
    """A reference to the flow input (`$input.NAME`) or to a state's output
    (`$states.STATE.FIELD`)."""

    root: Annotated[str, Field(pattern=REFERENCE_PATTERN)]


class _FlowSchemaGenerator(GenerateJsonSchema):
    def tagged_union_schema(self, schema: core_schema.TaggedUnionSchema) -> JsonSchemaValue:
        key = schema["discriminator"]
        if not isinstance(key, str):
            return super().tagged_union_schema(schema)
        choices = schema["choices"].items()
        branches = {str(tag): self.generate_inner(choice) for tag, choice in choices}
        return {
            "type": "object",
            "required": [key],
            "properties": {key: {"enum": list(branches)}},
            "allOf": [
                {
                    "if": {"properties": {key: {"const": tag}}, "required": [key]},
                    "then": branch,
                }
                for tag, branch in branches.items()
            ],
        }

    def dict_schema(self, schema: core_schema.DictSchema) -> JsonSchemaValue:
        # Pydantic renders constrained keys as `patternProperties`, which lets a key that
        # breaks the pattern through; `propertyNames` rejects it, as the model does.
        generated = super().dict_schema(schema)
        patterns = generated.pop("patternProperties", None)
        if isinstance(patterns, dict) and len(patterns) == 1:
            [(pattern, values)] = patterns.items()
            generated["propertyNames"] = {"pattern": pattern}
            generated["additionalProperties"] = values
        elif patterns is not None:
            generated["patternProperties"] = patterns
        return generated


def flow_json_schema(registry: ToolRegistry) -> dict[str, Any]:
    """The JSON Schema (Draft 2020-12) of flow documents that use the tools of `registry`."""
    document = _document_model(registry)
    generated = document.model_json_schema(schema_generator=_FlowSchemaGenerator)
    return {"$schema": DIALECT, **generated, "title": "taskrunner flow"}


def _document_model(registry: ToolRegistry) -> type[BaseModel]:
    tasks = [_task_model(item) for item in registry]
    if not tasks:
        task_union: Any = TaskState
    elif len(tasks) == 1:
        task_union = tasks[0]
    else:
        task_union = Annotated[Union[tuple(tasks)], Field(discriminator="tool")]  # noqa: UP007
    state = Annotated[
        Union[task_union, ChoiceState, SucceedState, FailState],  # noqa: UP007
        Field(discriminator="type"),
    ]
    states_field = Flow.model_fields["states"]
    return create_model(
        "Flow",
        __base__=Flow,
        __doc__=Flow.__doc__,
        states=(
            dict[StateName, state],
            Field(min_length=1, max_length=MAX_STATES, description=states_field.description),
        ),
    )


def _task_model(item: Tool) -> type[BaseModel]:
    stem = _camel(item.name)
    arguments: dict[str, Any] = {}
    for name, info in item.input_model.model_fields.items():
        annotation: Any = info.annotation
        if info.metadata:
            annotation = Annotated[(annotation, *info.metadata)]
        arguments[name] = (
            Union[annotation, Reference],  # noqa: UP007
            FieldInfo(
                default=PydanticUndefined if info.is_required() else info.get_default(),
                alias=info.alias,
                description=info.description,
            ),
        )
    args_model = create_model(
        f"{stem}Args",
        __config__=TaskState.model_config,
        __doc__=f"The input of the tool `{item.name}`.",
        **arguments,
    )
    required = any(info.is_required() for info in item.input_model.model_fields.values())
    return create_model(
        f"{stem}Task",
        __base__=TaskState,
        __doc__=f"Call the tool `{item.name}`: {item.description}",
        tool=(_literal(item.name), Field(description=item.description)),
        args=(args_model, Field(...) if required else Field(default_factory=args_model)),
    )


def _literal(value: str) -> Any:
    return Literal[value]


def _camel(name: str) -> str:
    return "".join(part.capitalize() for part in re.split(r"[._]", name))


def flow_schema_text(registry: ToolRegistry) -> str:
    """The schema as committed in `schema/flow.schema.json` and printed by `taskrunner schema`."""
    return json.dumps(flow_json_schema(registry), indent=2, ensure_ascii=False) + "\n"

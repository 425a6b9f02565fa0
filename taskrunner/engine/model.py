"""The building blocks of the flow document's models: the base of every node, the forms
of names, and the declaration of the flow's input. The flow itself is in `flow.py`, each
kind of state in `states/`. Field descriptions end up in the published schema, so editors
show them.
"""

from __future__ import annotations

from typing import Annotated, Final

from pydantic import BaseModel, ConfigDict, Field, JsonValue, StringConstraints

from taskrunner.engine.inputs import InputType

FLOW_NAME_PATTERN: Final = r"^[a-z][a-z0-9_-]{0,63}$"
STATE_NAME_PATTERN: Final = r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$"
FIELD_NAME_PATTERN: Final = r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"
ERROR_KIND_PATTERN: Final = r"^(\*|[A-Za-z][A-Za-z0-9_.]{0,127})$"
ERROR_CODE_PATTERN: Final = r"^[A-Za-z][A-Za-z0-9_.]{0,127}$"
MAX_STATES: Final = 1_000

FlowName = Annotated[str, StringConstraints(pattern=FLOW_NAME_PATTERN)]
StateName = Annotated[str, StringConstraints(pattern=STATE_NAME_PATTERN)]
FieldName = Annotated[str, StringConstraints(pattern=FIELD_NAME_PATTERN)]
ErrorKind = Annotated[str, StringConstraints(pattern=ERROR_KIND_PATTERN)]
ErrorCode = Annotated[str, StringConstraints(pattern=ERROR_CODE_PATTERN)]

Value = JsonValue
"""A JSON value: a reference when it is a string that starts with `$`, a template when a
string contains `{$`, and an object or array may hold either at any depth (see `refs`)."""


class Node(BaseModel):
    model_config = ConfigDict(
        strict=True, extra="forbid", frozen=True, validate_by_name=True, validate_by_alias=True
    )


class InputField(Node):
    """One field of the flow's input."""

    type: InputType = Field(description="The JSON type of the field.")
    description: str | None = Field(default=None, description="What the field means.")
    default: JsonValue = Field(
        default=None, description="Value used when the field is absent; makes it optional."
    )

    @property
    def required(self) -> bool:
        return "default" not in self.model_fields_set

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


class InputSpec(Node):
    """The type of a value of the flow's input: a JSON type and its constraints."""

    type: InputType = Field(description="The JSON type of the value.")
    description: str | None = Field(default=None, description="What the value means.")
    nullable: bool = Field(default=False, description="`null` is a value too.")
    enum: list[JsonValue] | None = Field(
        default=None, min_length=1, description="The only values allowed, each of `type`."
    )
    minimum: int | float | None = Field(
        default=None, description="The least value allowed (integer and number only)."
    )
    maximum: int | float | None = Field(
        default=None, description="The greatest value allowed (integer and number only)."
    )
    pattern: str | None = Field(
        default=None,
        description="A regular expression that string values contain a match of "
        "(anchor it with ^ and $ to match the whole string).",
    )
    items: InputSpec | None = Field(
        default=None, description="The type of every item (arrays only)."
    )
    properties: dict[FieldName, InputSpec] | None = Field(
        default=None,
        description="The fields of the object (objects only); the object has no others.",
    )
    required: list[FieldName] | None = Field(
        default=None,
        description="The properties that must be present; without it, every property "
        "not marked `optional` must be.",
    )
    optional: bool = Field(
        default=False,
        description="The value may be absent (a property, or a field of the flow's input); "
        "a reference to it is then null.",
    )

    def required_properties(self) -> list[str]:
        if self.properties is None:
            return []
        if self.required is not None:
            return [name for name in self.properties if name in self.required]
        return [name for name, spec in self.properties.items() if not spec.optional]


class InputField(InputSpec):
    """One field of the flow's input."""

    default: JsonValue = Field(
        default=None, description="Value used when the field is absent; makes it optional."
    )

    @property
    def has_default(self) -> bool:
        return "default" in self.model_fields_set

    @property
    def is_required(self) -> bool:
        """The task input must give this field: it has no default and is not optional."""
        return not self.has_default and not self.optional

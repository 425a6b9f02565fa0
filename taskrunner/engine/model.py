"""The flow document as frozen Pydantic models: what the interpreter reads.

These models are also the source of the published JSON Schema (see `schema.py`), which
specialises `TaskState` per registered tool. Field descriptions end up in the schema, so
editors show them.
"""

from __future__ import annotations

import hashlib
import json
from functools import cached_property
from typing import Annotated, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, StringConstraints

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
"""A literal JSON value, or a reference when it is a string that starts with `$`."""

InputType = Literal["string", "integer", "number", "boolean", "object", "array"]


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


class Retry(Node):
    """Run a failed task state again, after a deterministic, growing delay."""

    max_attempts: int = Field(ge=1, le=100, description="Attempts in all, the first included.")
    interval_seconds: float = Field(
        default=1.0, ge=0, le=86_400, description="Delay before the second attempt."
    )
    backoff_rate: float = Field(
        default=2.0, ge=1, le=100, description="Each further delay is the previous one times this."
    )
    max_interval_seconds: float = Field(
        default=3_600.0, ge=0, le=86_400, description="No delay is longer than this."
    )
    errors: list[ErrorKind] = Field(
        default=["*"], min_length=1, description="Error kinds to retry; `*` matches every kind."
    )

    def delay_before(self, attempt: int) -> float:
        """Seconds to wait before attempt number `attempt` (2 or more)."""
        delay = self.interval_seconds * self.backoff_rate ** (attempt - 2)
        return min(delay, self.max_interval_seconds)


class Catch(Node):
    """Go to another state when the task state fails with one of these error kinds."""

    errors: list[ErrorKind] = Field(min_length=1, description="`*` matches every kind.")
    next: StateName = Field(description="The state to go to.")


class TaskState(Node):
    """Call a tool with arguments, then go to `next`."""

    type: Literal["task"]
    description: str | None = None
    tool: str = Field(description="The name of the tool to call.")
    args: dict[str, Value] = Field(
        default_factory=dict,
        description="The tool's input: literal values or references such as `$input.text`.",
    )
    next: StateName = Field(description="The state to go to when the tool succeeds.")
    timeout_seconds: float | None = Field(
        default=None,
        gt=0,
        le=86_400,
        description="An attempt that takes longer fails with the error kind `Timeout`.",
    )
    retry: Retry | None = None
    catch: list[Catch] = Field(default_factory=list, description="Checked in order.")


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


class Rule(Node):
    """If `when` holds, go to `next`."""

    when: Condition
    next: StateName


class ChoiceState(Node):
    """Go to the `next` of the first rule that holds, else to `default`."""

    type: Literal["choice"]
    description: str | None = None
    rules: list[Rule] = Field(min_length=1, description="Tried in order.")
    default: StateName = Field(description="The state to go to when no rule holds.")


class SucceedState(Node):
    """End the task successfully with an output."""

    type: Literal["succeed"]
    description: str | None = None
    output: dict[FieldName, Value] = Field(
        default_factory=dict, description="The task's output: literals or references."
    )


class FailState(Node):
    """End the task with an error."""

    type: Literal["fail"]
    description: str | None = None
    error: ErrorCode = Field(description="The error kind the task fails with.")
    message: str = Field(default="", description="A message for people.")


State = Annotated[TaskState | ChoiceState | SucceedState | FailState, Field(discriminator="type")]
TERMINAL_TYPES: Final = ("succeed", "fail")


class Flow(Node):
    """A flow: a state chart that starts at `start` and ends in a succeed or fail state."""

    name: FlowName = Field(description="The flow's name, used to start tasks.")
    description: str | None = None
    input: dict[FieldName, InputField] = Field(
        default_factory=dict, description="The fields a task's input must have."
    )
    start: StateName = Field(description="The first state.")
    states: dict[StateName, State] = Field(
        min_length=1, max_length=MAX_STATES, description="The states, by name."
    )

    @cached_property
    def canonical(self) -> str:
        """The definition as canonical JSON: sorted keys, no insignificant whitespace."""
        document = self.model_dump(mode="json", by_alias=True, exclude_unset=True)
        return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)

    @cached_property
    def digest(self) -> str:
        """The flow version: SHA-256 of the canonical definition."""
        return "sha256:" + hashlib.sha256(self.canonical.encode()).hexdigest()

"""The `task` state: call a tool with mapped arguments, retry it, catch its errors."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, Field, JsonValue, RootModel, create_model
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from taskrunner.engine.diagnostics import Diagnostic, pointer
from taskrunner.engine.errorkinds import RaisableKinds
from taskrunner.engine.model import StateName, Value
from taskrunner.engine.refs import REFERENCE_PATTERN, Expression, parse_value
from taskrunner.engine.states.base import Arrival, Goto, Outcome, Run, Scope, State, check_initial
from taskrunner.engine.states.recovery import Catch, Retry, after_failure, check_handlers
from taskrunner.engine.steps import CallTool, Step
from taskrunner.engine.types import ANY, ValueType
from taskrunner.engine.values import quietly
from taskrunner.tools import Tool, ToolRegistry


class TaskState(State):
    """Call a tool with arguments, then go to `next`."""

    type: Literal["task"]
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
    catch: list[Catch] = Field(
        default_factory=list,
        description="Checked in order. The target state sees the caught error as `$error`.",
    )
    initial: dict[str, JsonValue] | None = Field(
        default=None,
        description="What `$states.NAME` is before the state first runs, so that the state "
        "can read its own previous output (a loop counter): an object of the tool's output.",
    )

    TRANSITIONS = ("next", "catch")
    OUTPUT_TRANSITION = "next"
    has_output = True

    def check(self, scope: Scope) -> Iterator[Diagnostic]:
        tool = scope.tool(self.tool)
        for argument, value in self.args.items():
            target = tool.arguments.get(argument) if tool else None
            path = scope.here + pointer("args", argument)
            where = f"`{self.tool}.{argument}`"
            # A literal argument is checked against the tool's field by the schema.
            yield from scope.value(value, path, target, where, literal_checked=True)
        raisable = (
            RaisableKinds.of(self.tool, tool.errors, timeout=self.timeout_seconds is not None)
            if tool
            else None
        )
        yield from check_handlers(scope.here, self.retry, self.catch, raisable)
        yield from check_initial(self, scope)

    def raises(self, scope: Scope) -> frozenset[str] | None:
        tool = scope.tool(self.tool)
        if tool is None:
            return None
        timeout = self.timeout_seconds is not None
        return frozenset(RaisableKinds.of(self.tool, tool.errors, timeout=timeout).names())

    def output_type(self, scope: Scope) -> ValueType:
        tool = scope.tool(self.tool)
        if tool is None:
            return ANY
        arguments: dict[str, ValueType] = {}
        for argument, value in self.args.items():
            found = quietly(scope.value(value, scope.here + pointer("args", argument)))
            if found is not None:
                arguments[argument] = found
        return tool.output_for(arguments)

    def initial_output(self) -> tuple[JsonValue] | None:
        return (self.initial,) if self.initial is not None else None

    @classmethod
    def schema_variant(cls, tools: ToolRegistry) -> object:
        tasks = [_task_model(item) for item in tools]
        if not tasks:
            return cls
        if len(tasks) == 1:
            return tasks[0]
        return Annotated[Union[tuple(tasks)], Field(discriminator="tool")]  # noqa: UP007

    def compile(self, name: str, tools: ToolRegistry) -> TaskPlan:
        arguments = tuple((key, parse_value(value)) for key, value in self.args.items())
        return TaskPlan(name, self, tools.get(self.tool).name, arguments)


@dataclass(frozen=True, slots=True)
class TaskPlan:
    name: str
    state: TaskState
    tool: str
    arguments: tuple[tuple[str, Expression], ...]

    def enter(self, run: Run) -> Arrival:
        data, outputs = run.data, run.outputs
        return CallTool(
            run.next_seq,
            self.name,
            self.tool,
            run.attempt,
            {key: value.resolve(data, outputs) for key, value in self.arguments},
            run.delay,
            self.state.timeout_seconds,
        )

    def on_step(self, run: Run, step: Step) -> Outcome:
        if step.status == "succeeded":
            return Goto(self.state.next)
        return after_failure(self.name, step, self.state.retry, self.state.catch)


# -- the published schema: one task-state model per tool -----------------------------------


class Reference(RootModel[str]):
    """A reference to the flow input (`$input.NAME`) or to a state's output
    (`$states.STATE.FIELD`)."""

    root: Annotated[str, Field(pattern=REFERENCE_PATTERN)]


def _task_model(item: Tool) -> type[BaseModel]:
    """The task state that calls `item`: its `args` are the tool's input fields, each of
    which also accepts a reference."""
    stem = "".join(part.capitalize() for part in re.split(r"[._]", item.name))
    arguments: dict[str, Any] = {}
    for name, info in item.input_model.model_fields.items():
        annotation: Any = _referable(info.annotation)
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
    tool_name: Any = Literal[item.name]
    declared = ", ".join(f"`{kind}`" for kind in item.errors)
    fails = f" It may fail with {declared}." if declared else ""
    return create_model(
        f"{stem}Task",
        __base__=TaskState,
        __doc__=f"Call the tool `{item.name}`: {item.description}{fails}",
        tool=(tool_name, Field(description=item.description)),
        args=(args_model, Field(...) if required else Field(default_factory=args_model)),
    )


def _referable(annotation: Any) -> Any:
    """`annotation`, where each item of a list and each value of a dict may also be a
    reference: references nest in arguments (the meaning pass checks their types)."""
    origin = get_origin(annotation)
    arguments = get_args(annotation)
    if origin is list:
        return list[Union[_referable(arguments[0]), Reference]]  # type: ignore[misc]  # noqa: UP007
    if origin is dict:
        key, value = arguments
        return dict[key, Union[_referable(value), Reference]]  # type: ignore[misc,valid-type]  # noqa: UP007
    if origin is Annotated:
        return Annotated[(_referable(arguments[0]), *annotation.__metadata__)]
    if origin in (Union, UnionType):
        return Union[tuple(_referable(item) for item in arguments)]  # noqa: UP007
    return annotation

"""What a tool is: a name, a description, Pydantic input and output models, a pure function.

A tool is written as a plain function whose one parameter is its input model and whose
return annotation is its output model; `@tool` reads both from the annotations:

    @tool("add")
    def add(args: AddInput) -> AddOutput:
        "Add two numbers."
        return AddOutput(sum=args.a + args.b)

Inputs and outputs are validated in strict mode, the same strictness as the published
JSON Schema: `"2"` is not an integer and `true` is not a number.
"""

from __future__ import annotations

import inspect
import logging
import math
import re
import threading
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, Final

from pydantic import (
    BaseModel,
    ConfigDict,
    JsonValue,
    PlainValidator,
    ValidationError,
    WithJsonSchema,
)
from pydantic_core import PydanticCustomError

from taskrunner.errors import ToolRegistryError

JsonObject = dict[str, JsonValue]
OutputSignature = Callable[[Mapping[str, frozenset[str]]], JsonObject | None]
"""Argument kinds → the output's JSON Schema at that call site (`Tool.output_for`)."""

TOOL_NAME_PATTERN: Final = r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$"
"""Tool names are lower-case words joined by `_`, optionally namespaced with dots."""

INVALID_INPUT: Final = "InvalidToolInput"
INVALID_OUTPUT: Final = "InvalidToolOutput"
TIMEOUT: Final = "Timeout"
GENERIC_ERROR: Final = "ToolError"
"""The kind of a `ToolError` raised without one: every tool may raise it undeclared."""
DECLARED_KIND_PATTERN: Final = r"^[A-Za-z][A-Za-z0-9_.]{0,127}$"

log = logging.getLogger("taskrunner.tools")


def _number(value: object) -> int | float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PydanticCustomError("number_type", "Input should be a number")
    if isinstance(value, float) and not math.isfinite(value):
        raise PydanticCustomError("finite_number", "Input should be a finite number")
    return value


Number = Annotated[int | float, PlainValidator(_number), WithJsonSchema({"type": "number"})]
"""A JSON number: an integer stays an integer (so `2 + 3` is `5`), a boolean is not one."""


class ToolModel(BaseModel):
    """Base for tool input and output models: strict, closed, immutable, finite numbers only."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True, allow_inf_nan=False)


class ToolError(Exception):
    """Raised by a tool to fail with a named error kind that flows can `catch` and `retry`."""

    def __init__(self, message: str, *, kind: str = GENERIC_ERROR) -> None:
        self.kind = kind
        self.message = message
        super().__init__(message)


class ToolCallError(Exception):
    """A tool call that did not produce a valid output: the kind and message to record."""

    def __init__(self, kind: str, message: str) -> None:
        self.kind = kind
        self.message = message
        super().__init__(f"{kind}: {message}")


@dataclass(frozen=True, eq=False)
class Tool:
    """A named, typed, pure function that a task state can call.

    `errors` are the kinds its function may raise with `ToolError`, besides the kinds every
    tool may fail with (`engine/errorkinds.py`): the checker warns of a `retry` or `catch`
    that names a kind its tool cannot raise.
    """

    name: str
    description: str
    input_model: type[BaseModel]
    output_model: type[BaseModel]
    function: Callable[..., BaseModel] = field(repr=False)
    errors: tuple[str, ...] = ()
    output_for: OutputSignature | None = field(default=None, repr=False)
    """The tool's typed signature, when its output is narrower for some inputs: given the
    JSON kinds each argument may have (`{"a": {"integer"}, ...}`, arguments of unknown
    type left out), the JSON Schema of the output at that call site, or None for the
    output model's. `add` says: an integer sum when both addends are integers."""

    def __post_init__(self) -> None:
        _check_name(self.name)
        for kind in self.errors:
            if not isinstance(kind, str) or not re.fullmatch(DECLARED_KIND_PATTERN, kind):
                raise ToolRegistryError(
                    f"tool {self.name!r}: invalid error kind {kind!r}: a letter, then "
                    "letters, digits, '_' or '.', such as 'DivisionByZero'"
                )

    def invoke(
        self, arguments: Mapping[str, JsonValue], *, timeout: float | None = None
    ) -> JsonObject:
        """Validate the arguments, call the function, validate and return its output as JSON.

        Raises `ToolCallError` for invalid input or output, for any exception of the tool,
        and (kind `Timeout`) when the call takes longer than `timeout` seconds: the
        function's thread is then left to finish on its own, and its result is dropped.
        """
        if timeout is not None:
            return self._invoke_within(arguments, timeout)
        try:
            parsed = self.input_model.model_validate(arguments, strict=True)
        except ValidationError as exc:
            raise ToolCallError(INVALID_INPUT, describe_validation_error(exc)) from None
        try:
            result = self.function(parsed)
        except ToolError as exc:
            self._note_undeclared(exc.kind)
            raise ToolCallError(exc.kind, exc.message) from None
        except Exception as exc:  # noqa: BLE001 - a tool's bug fails the step, never the runner
            raise ToolCallError(type(exc).__name__, str(exc) or type(exc).__name__) from None
        return self._output_json(result)

    def _note_undeclared(self, kind: str) -> None:
        # Recorded as raised all the same: the task's history must say what happened, and a
        # `catch: ['*']` still sees it. The log is for the tool's author.
        if kind not in self.errors and kind != GENERIC_ERROR:
            log.warning(
                "tool %r raised the error kind %r, which it does not declare in @tool(errors=...)",
                self.name,
                kind,
            )

    def _invoke_within(self, arguments: Mapping[str, JsonValue], timeout: float) -> JsonObject:
        outcome: list[JsonObject | ToolCallError] = []

        def run() -> None:
            try:
                outcome.append(self.invoke(arguments))
            except ToolCallError as exc:
                outcome.append(exc)

        runner = threading.Thread(target=run, name=f"taskrunner-tool-{self.name}", daemon=True)
        runner.start()
        runner.join(timeout)
        if not outcome:
            raise ToolCallError(TIMEOUT, f"the tool took longer than {timeout} s")
        [result] = outcome
        if isinstance(result, ToolCallError):
            raise result
        return result

    def _output_json(self, result: object) -> JsonObject:
        if type(result) is self.output_model and self.output_model.model_config.get("strict"):
            checked = result
        else:
            raw = result.model_dump() if isinstance(result, BaseModel) else result
            try:
                checked = self.output_model.model_validate(raw, strict=True)
            except ValidationError as exc:
                raise ToolCallError(INVALID_OUTPUT, describe_validation_error(exc)) from None
        try:
            dumped: JsonObject = checked.model_dump(mode="json")
        except ValueError as exc:  # pydantic's serialization errors, a value too deep among them
            raise ToolCallError(INVALID_OUTPUT, f"the output cannot be serialized: {exc}") from None
        return dumped


def describe_validation_error(error: ValidationError) -> str:
    """One line per problem, `field: message`, for people rather than programs."""
    parts = []
    for item in error.errors(include_url=False):
        where = ".".join(str(part) for part in item["loc"]) or "(root)"
        parts.append(f"{where}: {item['msg']}")
    return "; ".join(parts)


def tool(
    name: str,
    *,
    description: str | None = None,
    errors: tuple[str, ...] = (),
    output_for: OutputSignature | None = None,
) -> Callable[[Callable[..., BaseModel]], Tool]:
    """Make a `Tool` of a function annotated `(args: InputModel) -> OutputModel`.

    `errors`: the kinds of `ToolError` the function may raise (`("DivisionByZero",)`).
    `output_for`: its typed signature (see `Tool.output_for`).
    """

    _check_name(name)

    def build(function: Callable[..., BaseModel]) -> Tool:
        input_model, output_model = _models_of(name, function)
        text = description or inspect.getdoc(function) or ""
        return Tool(
            name=name,
            description=text.strip(),
            input_model=input_model,
            output_model=output_model,
            function=function,
            errors=tuple(errors),
            output_for=output_for,
        )

    return build


def _check_name(name: str) -> None:
    if not re.fullmatch(TOOL_NAME_PATTERN, name):
        raise ToolRegistryError(
            f"invalid tool name {name!r}: use lower-case words joined by '_' or '.'"
        )


def _models_of(name: str, function: Callable[..., Any]) -> tuple[type[BaseModel], type[BaseModel]]:
    hints = typing.get_type_hints(function)
    returned = hints.pop("return", None)
    parameters = list(hints.values())
    if len(parameters) != 1 or not _is_model(parameters[0]) or not _is_model(returned):
        raise ToolRegistryError(
            f"tool {name!r}: the function must take one Pydantic model and return one, "
            "e.g. `def run(args: Input) -> Output`"
        )
    return parameters[0], returned


def _is_model(annotation: object) -> typing.TypeGuard[type[BaseModel]]:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)

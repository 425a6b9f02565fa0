"""The tools that ship with taskrunner."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Annotated

from pydantic import Field

from taskrunner.tools.base import JsonObject, Number, ToolError, ToolModel, tool


class EchoInput(ToolModel):
    text: Annotated[str, Field(description="The text to return.")]


class EchoOutput(ToolModel):
    text: Annotated[str, Field(description="The same text, unchanged.")]


@tool("echo")
def echo(args: EchoInput) -> EchoOutput:
    """Return the text unchanged."""
    return EchoOutput(text=args.text)


class AddInput(ToolModel):
    a: Annotated[Number, Field(description="The first addend.")]
    b: Annotated[Number, Field(description="The second addend.")]


class AddOutput(ToolModel):
    sum: Annotated[Number, Field(description="a + b; an integer when both are integers.")]


def _sum_type(kinds: Mapping[str, frozenset[str]]) -> JsonObject | None:
    integer = frozenset({"integer"})
    if kinds.get("a") == integer and kinds.get("b") == integer:
        schema = AddOutput.model_json_schema()
        properties = schema["properties"]
        return {**schema, "properties": {**properties, "sum": {"type": "integer"}}}
    return None


@tool("add", output_for=_sum_type)
def add(args: AddInput) -> AddOutput:
    """Add two numbers."""
    total = args.a + args.b
    if not math.isfinite(total):
        raise ToolError(f"{args.a} + {args.b} overflows a 64-bit float", kind="NumberOverflow")
    return AddOutput(sum=total)


class DivideInput(ToolModel):
    dividend: Annotated[Number, Field(description="The number to divide.")]
    divisor: Annotated[Number, Field(description="The number to divide by.")]


class DivideOutput(ToolModel):
    quotient: Annotated[float, Field(description="dividend / divisor.")]


@tool("divide")
def divide(args: DivideInput) -> DivideOutput:
    """Divide two numbers; fails with `DivisionByZero` when the divisor is 0."""
    if args.divisor == 0:
        raise ToolError("cannot divide by zero", kind="DivisionByZero")
    quotient = args.dividend / args.divisor
    if not math.isfinite(quotient):
        raise ToolError(f"{args.dividend} / {args.divisor} overflows", kind="NumberOverflow")
    return DivideOutput(quotient=quotient)


BUILTIN_TOOLS = (echo, add, divide)

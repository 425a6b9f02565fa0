"""The tools that ship with taskrunner."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Annotated, Literal

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


@tool("add", errors=("NumberOverflow",), output_for=_sum_type)
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


@tool("divide", errors=("DivisionByZero", "NumberOverflow"))
def divide(args: DivideInput) -> DivideOutput:
    """Divide two numbers; fails with `DivisionByZero` when the divisor is 0."""
    if args.divisor == 0:
        raise ToolError("cannot divide by zero", kind="DivisionByZero")
    quotient = args.dividend / args.divisor
    if not math.isfinite(quotient):
        raise ToolError(f"{args.dividend} / {args.divisor} overflows", kind="NumberOverflow")
    return DivideOutput(quotient=quotient)


class SumInput(ToolModel):
    numbers: Annotated[list[Number], Field(description="The numbers to add up.")]


class SumOutput(ToolModel):
    sum: Annotated[Number, Field(description="Their sum (0 for no numbers).")]


@tool("sum")
def sum_of(args: SumInput) -> SumOutput:
    """Add up a list of numbers."""
    total = sum(args.numbers)
    if not math.isfinite(total):
        raise ToolError("the sum overflows a 64-bit float", kind="NumberOverflow")
    return SumOutput(sum=total)


class JoinInput(ToolModel):
    parts: Annotated[list[str], Field(description="The texts to join.")]
    separator: Annotated[str, Field(description="Put between two parts.")] = ""


class TextOutput(ToolModel):
    text: Annotated[str, Field(description="The text made.")]


@tool("join")
def join(args: JoinInput) -> TextOutput:
    """Join texts with a separator."""
    return TextOutput(text=args.separator.join(args.parts))


class RepeatInput(ToolModel):
    text: Annotated[str, Field(description="The text to repeat.")]
    times: Annotated[int, Field(ge=0, le=100, description="How many times, 0 to 100.")]


@tool("repeat")
def repeat(args: RepeatInput) -> TextOutput:
    """Repeat a text a number of times."""
    return TextOutput(text=args.text * args.times)


class Person(ToolModel):
    name: Annotated[str, Field(description="What the person is called.")]
    title: Annotated[str | None, Field(description="Dr, Ms, …; none by default.")] = None


class GreetInput(ToolModel):
    person: Annotated[Person, Field(description="Whom to greet.")]
    style: Annotated[Literal["formal", "casual"], Field(description="`formal` uses the title.")] = (
        "casual"
    )


@tool("greet")
def greet(args: GreetInput) -> TextOutput:
    """Greet a person, formally (`Good day, Dr Ada.`) or not (`Hi Ada!`)."""
    person = args.person
    if args.style == "casual":
        return TextOutput(text=f"Hi {person.name}!")
    named = f"{person.title} {person.name}" if person.title else person.name
    return TextOutput(text=f"Good day, {named}.")


BUILTIN_TOOLS = (echo, add, divide, sum_of, join, repeat, greet)

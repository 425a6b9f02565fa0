"""The meaning of the flow's input declaration: the type of `$input` that references are
checked against, and the problems of the declaration itself (constraints that do not fit
the type, an `enum` value that is not of it, a pattern that is not a regular expression,
a default that is not a value of the field)."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping

from pydantic import JsonValue, ValidationError

from taskrunner.engine import types
from taskrunner.engine.diagnostics import Diagnostic, pointer
from taskrunner.engine.inputs import INPUT_KINDS, spec_schema
from taskrunner.engine.model import InputField, InputSpec
from taskrunner.engine.subtypes import valid
from taskrunner.engine.types import ValueType

NUMERIC = ("integer", "number")


def input_type(declared: object) -> tuple[list[str], ValueType]:
    """The declared input fields, and the type of the whole input object."""
    properties: dict[str, JsonValue] = {}
    required: list[JsonValue] = []
    if isinstance(declared, Mapping):
        for name, raw in declared.items():
            field = _read(raw)
            if field is not None:
                properties[name] = spec_schema(field)
                if not field.optional or field.has_default:
                    required.append(name)
                continue
            kind = raw.get("type") if isinstance(raw, Mapping) else None
            known = INPUT_KINDS.get(kind) if isinstance(kind, str) else None
            properties[name] = known.schema if known else {}
            required.append(name)  # its own problem is reported; do not cascade
    schema = {
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": False,
    }
    return list(properties), types.of_schema(schema)


def check_inputs(declared: object) -> Iterator[Diagnostic]:
    if not isinstance(declared, Mapping):
        return
    for name, raw in declared.items():
        field = _read(raw)
        if field is None:
            continue  # the shape pass reports it
        here = pointer("input", name)
        problems = list(_spec_problems(field, here))
        yield from problems
        if field.optional and field.has_default:
            yield Diagnostic(
                "input.spec",
                f"`{name}` is optional and has a default; with a default it is never absent",
                here + "/optional",
                "remove `optional: true` (or the default)",
                at_key=True,
            )
        if field.has_default and not problems:
            yield from _check_default(name, field, here)


def _read(raw: object) -> InputField | None:
    try:
        return InputField.model_validate(raw)
    except ValidationError:
        return None


def _spec_problems(spec: InputSpec, here: str) -> Iterator[Diagnostic]:
    yield from _misplaced(spec, here)
    yield from _bounds(spec, here)
    yield from _names_and_patterns(spec, here)
    if spec.items is not None:
        if spec.items.optional:
            yield Diagnostic(
                "input.spec",
                "an array item cannot be optional",
                here + "/items/optional",
                "declare `nullable: true` for items that may be null",
                at_key=True,
            )
        yield from _spec_problems(spec.items, here + "/items")
    for name, sub in (spec.properties or {}).items():
        yield from _spec_problems(sub, here + pointer("properties", name))
    if spec.enum is not None:
        kind_only = spec_schema(spec.model_copy(update={"enum": None}))
        for position, value in enumerate(spec.enum):
            if not valid(kind_only, None, value):
                yield Diagnostic(
                    "input.spec",
                    f"the `enum` value {value!r} is not a value of this field "
                    f"({types.of_schema(kind_only).describe()})",
                    here + pointer("enum", position),
                )


def _misplaced(spec: InputSpec, here: str) -> Iterator[Diagnostic]:
    given = spec.model_fields_set
    allowed = {
        "minimum": NUMERIC,
        "maximum": NUMERIC,
        "pattern": ("string",),
        "items": ("array",),
        "properties": ("object",),
        "required": ("object",),
    }
    for key, kinds in allowed.items():
        if key in given and getattr(spec, key) is not None and spec.type not in kinds:
            takes = " or ".join(kinds)
            yield Diagnostic(
                "input.spec",
                f"`{key}` applies to {takes} values, but this one is declared {spec.type}",
                here + pointer(key),
                f"remove `{key}`, or declare `type: {kinds[0]}`",
                at_key=True,
            )


def _bounds(spec: InputSpec, here: str) -> Iterator[Diagnostic]:
    if spec.minimum is not None and spec.maximum is not None and spec.minimum > spec.maximum:
        yield Diagnostic(
            "input.spec",
            f"`minimum` ({spec.minimum}) is greater than `maximum` ({spec.maximum}): no value fits",
            here + "/minimum",
        )
    if spec.type == "integer":
        for key in ("minimum", "maximum"):
            bound = getattr(spec, key)
            if isinstance(bound, float):
                yield Diagnostic(
                    "input.spec",
                    f"`{key}` of an integer is {bound}, not an integer",
                    here + pointer(key),
                    f"write `{key}: {int(bound)}`" if bound.is_integer() else None,
                )


def _names_and_patterns(spec: InputSpec, here: str) -> Iterator[Diagnostic]:
    if spec.pattern is not None and spec.type == "string":
        try:
            re.compile(spec.pattern)
        except re.error as exc:
            yield Diagnostic(
                "input.spec",
                f"`pattern` {spec.pattern!r} is not a regular expression: {exc}",
                here + "/pattern",
            )
    if spec.required is not None and spec.properties is not None:
        for position, name in enumerate(spec.required):
            if name not in spec.properties:
                yield Diagnostic(
                    "input.spec",
                    f"`required` names `{name}`, which is not one of the properties",
                    here + pointer("required", position),
                    f"properties: {', '.join(spec.properties)}",
                )


def _check_default(name: str, field: InputField, here: str) -> Iterator[Diagnostic]:
    expected = types.of_schema(spec_schema(field))
    found = types.of_value(field.default)
    problem = types.why_not(expected, found)
    if problem is not None:
        yield Diagnostic(
            "type.mismatch",
            f"the default of `{name}` is {found.describe()}, "
            f"but `{name}` is declared {expected.describe()}",
            here + "/default",
        )

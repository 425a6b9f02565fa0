"""Reading JSON Schemas as the checker needs them: references followed, unions flattened
into branches of one kind each, numeric bounds normalised, and a short description of the
values a schema allows, for messages.

A schema this module cannot read (a keyword it does not know decides the kind, `allOf`, a
custom validator's empty schema) reads as None: the checker then stays permissive.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Final

from pydantic import JsonValue

Schema = Mapping[str, JsonValue]
KINDS: Final = ("string", "integer", "number", "boolean", "object", "array", "null")
MAX_DEPTH: Final = 32
MAX_FIELDS_SHOWN: Final = 6


def resolve(schema: Schema, defs: Schema | None) -> Schema:
    """`schema` with its `$ref` followed (into `defs`), as far as it leads."""
    for _ in range(MAX_DEPTH):
        target = schema.get("$ref")
        if not isinstance(target, str) or defs is None:
            return schema
        found = defs.get(target.rsplit("/", 1)[-1])
        if not isinstance(found, Mapping):
            return schema
        schema = found
    return schema


def kind_of_value(value: JsonValue) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "null"


def literals(schema: Schema) -> list[JsonValue] | None:
    """The values of a `const` or `enum` schema; None for other schemas."""
    if "const" in schema:
        return [schema["const"]]
    enum = schema.get("enum")
    return list(enum) if isinstance(enum, list) else None


def branches(schema: Schema, defs: Schema | None, depth: int = 0) -> list[Schema] | None:
    """The schema as a union of branches that each allow one kind (or a set of literals);
    None when some branch cannot be read."""
    if depth > MAX_DEPTH:
        return None
    schema = resolve(schema, defs)
    if literals(schema) is not None:
        return [schema]
    union = schema.get("anyOf") or schema.get("oneOf")
    if isinstance(union, list):
        found: list[Schema] = []
        for branch in union:
            inner = branches(branch, defs, depth + 1) if isinstance(branch, Mapping) else None
            if inner is None:
                return None
            found.extend(inner)
        return found
    declared = schema.get("type")
    if isinstance(declared, str) and declared in KINDS:
        return [schema]
    if isinstance(declared, list) and declared and all(kind in KINDS for kind in declared):
        return [{**schema, "type": kind} for kind in declared if isinstance(kind, str)]
    if "properties" in schema and "allOf" not in schema:
        return [{**schema, "type": "object"}]
    return None


def kind(branch: Schema) -> str:
    """The one kind of a branch from `branches` (a literal branch: its first value's)."""
    values = literals(branch)
    if values is not None:
        return kind_of_value(values[0]) if values else "null"
    declared = branch.get("type")
    return declared if isinstance(declared, str) else "object"


def kinds(schema: Schema, defs: Schema | None) -> set[str] | None:
    found = branches(schema, defs)
    if found is None:
        return None
    result: set[str] = set()
    for branch in found:
        values = literals(branch)
        result |= {kind_of_value(v) for v in values} if values is not None else {kind(branch)}
    return result


Bound = tuple[float, bool]
"""A numeric bound and whether it is exclusive."""


def lower_bound(schema: Schema, integer: bool) -> Bound | None:
    return _bound(schema, "minimum", "exclusiveMinimum", integer, lower=True)


def upper_bound(schema: Schema, integer: bool) -> Bound | None:
    return _bound(schema, "maximum", "exclusiveMaximum", integer, lower=False)


def _bound(
    schema: Schema, inclusive: str, exclusive: str, integer: bool, *, lower: bool
) -> Bound | None:
    found: list[Bound] = []
    for key, is_exclusive in ((inclusive, False), (exclusive, True)):
        value = schema.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            if integer and is_exclusive:  # an integer above 2.5 is at least 3
                found.append((math.floor(value) + 1 if lower else math.ceil(value) - 1, False))
            elif integer:
                found.append((math.ceil(value) if lower else math.floor(value), False))
            else:
                found.append((value, is_exclusive))
    if not found:
        return None
    if lower:
        return max(found, key=lambda bound: (bound[0], bound[1]))
    return min(found, key=lambda bound: (bound[0], not bound[1]))


def describe(schema: Schema | None, defs: Schema | None, depth: int = 0) -> str:
    """The values `schema` allows, in a few words: `integer ≥ 0`, `array of string`."""
    if schema is None:
        return "any value"
    found = branches(schema, defs)
    if found is None:
        return "any value"
    if not found:
        return "no value"
    described = [_describe_branch(branch, defs, depth) for branch in found]
    if "number" in described:
        described = [text for text in described if text != "integer"]
    return " or ".join(dict.fromkeys(described))


def _describe_branch(branch: Schema, defs: Schema | None, depth: int) -> str:
    values = literals(branch)
    if values is not None:
        shown = [json.dumps(value) for value in values[:MAX_FIELDS_SHOWN]]
        more = ", …" if len(values) > MAX_FIELDS_SHOWN else ""
        return shown[0] if len(values) == 1 else f"one of {', '.join(shown)}{more}"
    name = kind(branch)
    if name in ("integer", "number"):
        return name + _range_text(branch, name == "integer")
    if name == "string":
        return "string" + _string_text(branch)
    if name == "array":
        items = branch.get("items")
        if isinstance(items, Mapping) and depth < 2 and branches(items, defs) is not None:
            return f"array of {describe(items, defs, depth + 1)}"
        return "array"
    if name == "object":
        return "object" + _fields_text(branch, defs, depth)
    return name


def _range_text(branch: Schema, integer: bool) -> str:
    parts = []
    low = lower_bound(branch, integer)
    high = upper_bound(branch, integer)
    if low is not None:
        parts.append(f"{'>' if low[1] else '≥'} {_number(low[0])}")
    if high is not None:
        parts.append(f"{'<' if high[1] else '≤'} {_number(high[0])}")
    return " " + " and ".join(parts) if parts else ""


def _string_text(branch: Schema) -> str:
    parts = []
    pattern = branch.get("pattern")
    if isinstance(pattern, str):
        parts.append(f"matching `{pattern}`")
    low, high = branch.get("minLength"), branch.get("maxLength")
    if isinstance(low, int):
        parts.append(f"of at least {low} characters")
    if isinstance(high, int):
        parts.append(f"of at most {high} characters")
    return " " + " ".join(parts) if parts else ""


def _fields_text(branch: Schema, defs: Schema | None, depth: int) -> str:
    properties = branch.get("properties")
    if not isinstance(properties, Mapping) or not properties or depth >= 2:
        return ""
    required = branch.get("required")
    needed = set(required) if isinstance(required, list) else set()
    shown = []
    for name, sub in list(properties.items())[:MAX_FIELDS_SHOWN]:
        mark = "" if name in needed else "?"
        text = describe(sub, defs, depth + 1) if isinstance(sub, Mapping) else "any value"
        shown.append(f"{name}{mark}: {text}")
    more = ", …" if len(properties) > MAX_FIELDS_SHOWN else ""
    return " {" + ", ".join(shown) + more + "}"


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)

"""Static types of flow data, read off JSON Schemas, for checking flows before they run.

A type is a JSON Schema (with the `$defs` its references point into) and the set of JSON
kinds its values may have (with `integer` a subset of `number`). Types are compared by
structure (`subtypes.py`): array items, object fields, nullability, enums, ranges,
patterns. A schema this module cannot read gives `ANY`, which agrees with everything: the
checker never reports a mismatch it cannot prove.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from pydantic import JsonValue

from taskrunner.engine import schemas
from taskrunner.engine.schemas import KINDS, MAX_DEPTH, Schema
from taskrunner.engine.subtypes import Mismatch, mismatch
from taskrunner.tools import Tool

__all__ = [
    "ANY",
    "KINDS",
    "Mismatch",
    "NoSuchFieldError",
    "Schema",
    "ToolTypes",
    "ValueType",
    "accepts",
    "join",
    "member",
    "non_null",
    "of_schema",
    "of_value",
    "overlaps",
    "why_not",
]


@dataclass(frozen=True)
class ValueType:
    """The kinds a value may have, and the schema they were read from; `kinds is None`
    means any value at all (the schema could not be read)."""

    kinds: frozenset[str] | None
    schema: Schema | None = None
    defs: Schema | None = None

    def describe(self) -> str:
        if self.kinds is None:
            return "any value"
        if self.schema is not None:
            return schemas.describe(self.schema, self.defs)
        shown = self.kinds - {"integer"} if "number" in self.kinds else self.kinds
        ordered = [kind for kind in KINDS if kind in shown]
        return " or ".join(ordered) if ordered else "no value"

    @property
    def nullable(self) -> bool:
        return self.kinds is not None and "null" in self.kinds


ANY: Final = ValueType(None)


def of_schema(schema: object, defs: Schema | None = None) -> ValueType:
    """The type a JSON Schema describes."""
    if not isinstance(schema, Mapping):
        return ANY
    resolved = schemas.resolve(schema, defs)
    kinds = schemas.kinds(resolved, defs)
    return ValueType(None if kinds is None else frozenset(kinds), resolved, defs)


def of_value(value: JsonValue) -> ValueType:
    """The type of a literal JSON value: that value alone."""
    return ValueType(frozenset({schemas.kind_of_value(value)}), {"const": value})


def why_not(target: ValueType, source: ValueType) -> Mismatch | None:
    """Why some value of `source` may not be a value of `target`; None if every one is."""
    if target.schema is None or source.schema is None:
        if accepts_kinds(target, source):
            return None
        return Mismatch((), target.describe(), f"is {source.describe()}")
    return mismatch(target.schema, target.defs, source.schema, source.defs)


def accepts(target: ValueType, source: ValueType) -> bool:
    """Whether every value of `source` is a value of `target`."""
    return why_not(target, source) is None


def accepts_kinds(target: ValueType, source: ValueType) -> bool:
    """Whether every value of `source` has a kind that `target` allows."""
    if target.kinds is None or source.kinds is None:
        return True
    allowed = set(target.kinds)
    if "number" in allowed:
        allowed.add("integer")
    return source.kinds <= allowed


def overlaps(left: ValueType, right: ValueType) -> bool:
    """Whether some value could have both types (for `eq` and `ne`)."""
    if left.kinds is None or right.kinds is None:
        return True
    numeric = {"integer", "number"}
    if left.kinds & numeric and right.kinds & numeric:
        return True
    return bool(left.kinds & right.kinds)


def non_null(value: ValueType) -> ValueType:
    """The type without `null`: what a value is once it is known not to be null."""
    if value.kinds is None or "null" not in value.kinds or value.schema is None:
        return value
    found = schemas.branches(value.schema, value.defs) or []
    kept: list[JsonValue] = []
    for branch in found:
        if schemas.kind(branch) != "null" or schemas.literals(branch) is not None:
            without = _without_null_literal(branch)
            if without is not None:
                kept.append(dict(without))
    only = kept[0] if len(kept) == 1 else None
    schema: Schema = only if isinstance(only, dict) else {"anyOf": kept}
    return ValueType(value.kinds - {"null"}, schema, value.defs)


def _without_null_literal(branch: Schema) -> Schema | None:
    values = schemas.literals(branch)
    if values is None or None not in values:
        return branch
    kept: list[JsonValue] = [value for value in values if value is not None]
    return {"enum": kept} if kept else None


def nullable(value: ValueType) -> ValueType:
    """The type, or null (a field that may be absent)."""
    if value.kinds is None or value.schema is None:
        return value
    schema: Schema = {"anyOf": [dict(value.schema), {"type": "null"}]}
    return ValueType(value.kinds | {"null"}, schema, value.defs)


def join(left: ValueType, right: ValueType) -> ValueType:
    """A type of the values of either type."""
    if left.kinds is None or right.kinds is None or left.schema is None or right.schema is None:
        return ANY
    if left.defs is not None and right.defs is not None and left.defs is not right.defs:
        return ANY  # two sets of definitions cannot share one schema
    defs = left.defs if left.defs is not None else right.defs
    schema: Schema = {"anyOf": [dict(left.schema), dict(right.schema)]}
    return ValueType(left.kinds | right.kinds, schema, defs)


class NoSuchFieldError(LookupError):
    """A reference walks into a field or item that the type does not have."""

    def __init__(self, message: str, known: list[str]) -> None:
        self.known = known
        super().__init__(message)


def member(parent: ValueType, segment: str) -> ValueType:
    """The type of `parent.segment`, or `NoSuchFieldError`. A field that an object may
    lack is nullable: at run time, walking into an absent field gives null."""
    if parent.schema is None:
        return ANY
    found = _member(parent.schema, parent.defs, segment, depth=0)
    if found is None:
        known = sorted(_property_names(parent.schema, parent.defs))
        raise NoSuchFieldError(f"{parent.describe()} has no field {segment!r}", known)
    return found


def _member(schema: Schema, defs: Schema | None, segment: str, depth: int) -> ValueType | None:
    if depth > MAX_DEPTH:
        return ANY
    schema = schemas.resolve(schema, defs)
    values = schemas.literals(schema)
    if values is not None and len(values) == 1:
        [value] = values
        if isinstance(value, dict):
            return of_value(value[segment]) if segment in value else None
        if isinstance(value, list) and segment.isdigit():
            return of_value(value[int(segment)]) if int(segment) < len(value) else None
        return None
    branches = schema.get("anyOf") or schema.get("oneOf")
    if isinstance(branches, list):
        found = [
            _member(branch, defs, segment, depth + 1)
            for branch in branches
            if isinstance(branch, Mapping) and schemas.resolve(branch, defs).get("type") != "null"
        ]
        hits = [item for item in found if item is not None]
        if not hits:
            return None
        result = hits[0]
        for hit in hits[1:]:
            result = join(result, hit)
        return result
    properties = schema.get("properties")
    if isinstance(properties, Mapping):
        required = schema.get("required")
        if segment in properties:
            field = of_schema(properties[segment], defs)
            needed = isinstance(required, list) and segment in required
            return field if needed else nullable(field)
        extra = schema.get("additionalProperties")
        return nullable(of_schema(extra, defs)) if isinstance(extra, Mapping) else None
    kinds = schemas.kinds(schema, defs)
    if kinds is None:
        return ANY
    if "array" in kinds and segment.isdigit():
        return of_schema(schema.get("items", {}), defs)
    if "object" in kinds:
        extra = schema.get("additionalProperties", {})
        return nullable(of_schema(extra, defs)) if extra is not False else None
    return None


def _property_names(schema: Schema, defs: Schema | None) -> set[str]:
    schema = schemas.resolve(schema, defs)
    names: set[str] = set()
    properties = schema.get("properties")
    if isinstance(properties, Mapping):
        names.update(properties)
    for key in ("anyOf", "oneOf"):
        branches = schema.get(key)
        if isinstance(branches, list):
            for branch in branches:
                if isinstance(branch, Mapping):
                    names |= _property_names(branch, defs)
    return names


@dataclass(frozen=True)
class ToolTypes:
    """A tool's argument types and output type, read off its models' JSON Schemas, and
    the error kinds it declares."""

    arguments: dict[str, ValueType]
    output: ValueType
    errors: tuple[str, ...] = ()
    tool: Tool | None = None

    @classmethod
    def of(cls, item: Tool) -> ToolTypes:
        schema = item.input_model.model_json_schema()
        defs = schema.get("$defs")
        properties = schema.get("properties", {})
        arguments = {name: of_schema(prop, defs) for name, prop in properties.items()}
        output_schema = item.output_model.model_json_schema()
        output = of_schema(output_schema, output_schema.get("$defs"))
        return cls(arguments, output, item.errors, item)

    def output_for(self, arguments: Mapping[str, ValueType]) -> ValueType:
        """The output type at one call site, refined by the tool's signature
        (`Tool.output_for`) given the kinds of its arguments, when it has one."""
        if self.tool is None or self.tool.output_for is None:
            return self.output
        kinds = {name: value.kinds for name, value in arguments.items() if value.kinds is not None}
        refined = self.tool.output_for(kinds)
        if refined is None:
            return self.output
        return of_schema(refined, _defs_of(refined))


def of_parts(parts: Mapping[str, ValueType], is_array: bool) -> ValueType:
    """The type of an object (or array, keyed by position) built of values of these types:
    a schema of exactly those fields (or items), so that references walk into it."""
    defs: dict[str, JsonValue] = {}
    schemas: dict[str, JsonValue] = {}
    for key, part in parts.items():
        defs.update(part.defs or {})
        schemas[key] = dict(part.schema) if part.schema is not None else _kinds_schema(part)
    schema: dict[str, JsonValue]
    if is_array:
        items = list({repr(item): item for item in schemas.values()}.values())
        schema = {
            "type": "array",
            "items": items[0] if len(items) == 1 else ({"anyOf": items} if items else {}),
            "minItems": len(schemas),
            "maxItems": len(schemas),
        }
    else:
        schema = {
            "type": "object",
            "properties": schemas,
            "required": list(schemas),
            "additionalProperties": False,
        }
    return of_schema(schema, defs or None)


def _kinds_schema(part: ValueType) -> JsonValue:
    if part.kinds is None:
        return {}
    kinds: list[JsonValue] = []
    kinds.extend(sorted(part.kinds))
    return {"type": kinds}


def _defs_of(schema: Mapping[str, JsonValue]) -> Schema | None:
    defs = schema.get("$defs")
    return defs if isinstance(defs, Mapping) else None

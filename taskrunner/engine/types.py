"""Static types of flow data, read off JSON Schemas, for checking flows before they run.

A type is the set of JSON kinds a value may have (with `integer` a subset of `number`),
plus the schema it came from so that references can walk into objects. A schema this
module cannot read gives `ANY`, which agrees with everything: the checker never reports a
mismatch it cannot prove.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from pydantic import JsonValue

from taskrunner.tools import Tool

Schema = Mapping[str, JsonValue]
KINDS: Final = ("string", "integer", "number", "boolean", "object", "array", "null")


@dataclass(frozen=True)
class ValueType:
    """The kinds a value may have; `kinds is None` means any kind at all."""

    kinds: frozenset[str] | None
    schema: Schema | None = None
    defs: Schema | None = None

    def describe(self) -> str:
        if self.kinds is None:
            return "any value"
        shown = self.kinds - {"integer"} if "number" in self.kinds else self.kinds
        ordered = [kind for kind in KINDS if kind in shown]
        return " or ".join(ordered) if ordered else "no value"


ANY: Final = ValueType(None)


def of_schema(schema: object, defs: Schema | None = None) -> ValueType:
    """The type a JSON Schema describes (as far as kinds go)."""
    if not isinstance(schema, Mapping):
        return ANY
    resolved = _resolve(schema, defs)
    kinds = _kinds(resolved, defs, depth=0)
    return ValueType(None if kinds is None else frozenset(kinds), resolved, defs)


def of_value(value: JsonValue) -> ValueType:
    """The type of a literal JSON value."""
    if isinstance(value, bool):
        kind = "boolean"
    elif isinstance(value, int):
        kind = "integer"
    elif isinstance(value, float):
        kind = "number"
    elif isinstance(value, str):
        kind = "string"
    elif isinstance(value, list):
        kind = "array"
    elif isinstance(value, dict):
        kind = "object"
    else:
        kind = "null"
    return ValueType(frozenset({kind}))


def accepts(target: ValueType, source: ValueType) -> bool:
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


class NoSuchFieldError(LookupError):
    """A reference walks into a field or item that the type does not have."""

    def __init__(self, message: str, known: list[str]) -> None:
        self.known = known
        super().__init__(message)


def member(parent: ValueType, segment: str) -> ValueType:
    """The type of `parent.segment`, or `NoSuchFieldError`."""
    if parent.schema is None:
        return ANY
    found = _member(parent.schema, parent.defs, segment, depth=0)
    if found is None:
        known = sorted(_property_names(parent.schema, parent.defs))
        raise NoSuchFieldError(f"{parent.describe()} has no field {segment!r}", known)
    return found


def _member(schema: Schema, defs: Schema | None, segment: str, depth: int) -> ValueType | None:
    if depth > 32:
        return ANY
    schema = _resolve(schema, defs)
    branches = schema.get("anyOf") or schema.get("oneOf")
    if isinstance(branches, list):
        found = [
            _member(branch, defs, segment, depth + 1)
            for branch in branches
            if isinstance(branch, Mapping)
        ]
        hits = [item for item in found if item is not None]
        if not hits:
            return None
        if any(hit.kinds is None for hit in hits):
            return ANY
        return ValueType(frozenset().union(*(hit.kinds or () for hit in hits)))
    properties = schema.get("properties")
    if isinstance(properties, Mapping):
        if segment in properties:
            return of_schema(properties[segment], defs)
        extra = schema.get("additionalProperties")
        return of_schema(extra, defs) if isinstance(extra, Mapping) else None
    kinds = _kinds(schema, defs, depth)
    if kinds is None:
        return ANY
    if "array" in kinds and segment.isdigit():
        return of_schema(schema.get("items", {}), defs)
    if "object" in kinds:
        extra = schema.get("additionalProperties", {})
        return of_schema(extra, defs) if extra is not False else None
    return None


def _property_names(schema: Schema, defs: Schema | None) -> set[str]:
    schema = _resolve(schema, defs)
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


def _kinds(schema: Schema, defs: Schema | None, depth: int) -> set[str] | None:
    if depth > 32:
        return None
    schema = _resolve(schema, defs)
    if "const" in schema:
        return set(of_value(schema["const"]).kinds or ())
    enum = schema.get("enum")
    if isinstance(enum, list):
        return {kind for value in enum for kind in of_value(value).kinds or ()}
    declared = schema.get("type")
    if isinstance(declared, str):
        return {declared}
    if isinstance(declared, list):
        return {kind for kind in declared if isinstance(kind, str)}
    branches = schema.get("anyOf") or schema.get("oneOf")
    if isinstance(branches, list):
        union: set[str] = set()
        for branch in branches:
            kinds = _kinds(branch, defs, depth + 1) if isinstance(branch, Mapping) else None
            if kinds is None:
                return None
            union |= kinds
        return union
    if "properties" in schema:
        return {"object"}
    return None


def _resolve(schema: Schema, defs: Schema | None) -> Schema:
    for _ in range(32):
        target = schema.get("$ref")
        if not isinstance(target, str) or defs is None:
            return schema
        name = target.rsplit("/", 1)[-1]
        found = defs.get(name)
        if not isinstance(found, Mapping):
            return schema
        schema = found
    return schema


@dataclass(frozen=True)
class ToolTypes:
    """A tool's argument types and output type, read off its models' JSON Schemas, and
    the error kinds it declares."""

    arguments: dict[str, ValueType]
    output: ValueType
    errors: tuple[str, ...] = ()

    @classmethod
    def of(cls, item: Tool) -> ToolTypes:
        schema = item.input_model.model_json_schema()
        defs = schema.get("$defs")
        properties = schema.get("properties", {})
        arguments = {name: of_schema(prop, defs) for name, prop in properties.items()}
        output_schema = item.output_model.model_json_schema()
        output = of_schema(output_schema, output_schema.get("$defs"))
        return cls(arguments, output, item.errors)


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

"""The kinds of field a flow's input may declare, each defined once: its Python type (for
the input model), its JSON Schema (for the checker's types), and how a command-line word
becomes a value of it."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Literal, get_args

from pydantic import JsonValue

from taskrunner.errors import JsonTextError
from taskrunner.jsontext import parse_json
from taskrunner.tools import Number

if TYPE_CHECKING:
    from taskrunner.engine.model import InputSpec

InputType = Literal["string", "integer", "number", "boolean", "object", "array"]


class InputTextError(ValueError):
    """A word that is not a value of the field's kind."""


@dataclass(frozen=True, slots=True)
class InputKind:
    name: str
    annotation: object
    """The Python type of the field in the flow's input model (strict Pydantic)."""
    article: str
    """The kind with its article, for messages: `an integer`."""
    from_text: Callable[[str], JsonValue]
    """A value of this kind from a command-line word; raises `InputTextError`."""

    @property
    def schema(self) -> dict[str, JsonValue]:
        return {"type": self.name}


def _integer(text: str) -> JsonValue:
    try:
        return int(text)
    except ValueError:
        raise InputTextError(text) from None


def _number(text: str) -> JsonValue:
    try:
        return int(text)
    except ValueError:
        pass
    try:
        number = float(text)
    except ValueError:
        raise InputTextError(text) from None
    if not math.isfinite(number):
        raise InputTextError(text)
    return number


def _boolean(text: str) -> JsonValue:
    found = {"true": True, "false": False}.get(text.lower())
    if found is None:
        raise InputTextError(text)
    return found


def _json_of(kind: type) -> Callable[[str], JsonValue]:
    def parse(text: str) -> JsonValue:
        try:
            value = parse_json(text)
        except JsonTextError:
            raise InputTextError(text) from None
        if not isinstance(value, kind):
            raise InputTextError(text)
        return value

    return parse


INPUT_KINDS: Final[Mapping[str, InputKind]] = {
    kind.name: kind
    for kind in (
        InputKind("string", str, "a string", str),
        InputKind("integer", int, "an integer", _integer),
        InputKind("number", Number, "a number", _number),
        InputKind("boolean", bool, "a boolean", _boolean),
        InputKind("object", dict[str, JsonValue], "a JSON object", _json_of(dict)),
        InputKind("array", list[JsonValue], "a JSON array", _json_of(list)),
    )
}
if set(INPUT_KINDS) != set(get_args(InputType)):  # pragma: no cover - a definition error
    raise RuntimeError("InputType and INPUT_KINDS must name the same kinds")


def spec_schema(spec: InputSpec) -> dict[str, JsonValue]:
    """The JSON Schema of the values an input spec allows: what the checker's types are
    read from, and what the input model checks at run time."""
    schema: dict[str, JsonValue] = {"type": spec.type}
    if spec.enum is not None:
        schema["enum"] = list(spec.enum)
    if spec.minimum is not None:
        schema["minimum"] = spec.minimum
    if spec.maximum is not None:
        schema["maximum"] = spec.maximum
    if spec.pattern is not None:
        schema["pattern"] = spec.pattern
    if spec.items is not None:
        schema["items"] = spec_schema(spec.items)
    if spec.properties is not None:
        schema["properties"] = {name: spec_schema(sub) for name, sub in spec.properties.items()}
        schema["required"] = list(spec.required_properties())
        schema["additionalProperties"] = False
    if spec.nullable:
        return {"anyOf": [schema, {"type": "null"}]}
    return schema


def is_plain(spec: InputSpec) -> bool:
    """A spec of a JSON type alone, which the input model checks with a plain Python type."""
    return spec.model_fields_set <= {"type", "description", "default", "optional"}

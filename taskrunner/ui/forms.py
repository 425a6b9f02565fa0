"""A form generated from a flow's declared input, and a task's input read back from it.

Each field gets the control that fits its declaration: a text box for a string, a number
box (with its bounds and step) for an integer or a number, a checkbox for a boolean, a
list for an enum, and a JSON text area for what a simple control cannot hold (arrays,
objects, nullable fields). Reading the form back only turns each control's text into a
JSON value; the flow's own input check then judges the whole input, exactly as for
`POST /tasks`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final, Literal

from pydantic import JsonValue

from taskrunner.engine.model import InputField
from taskrunner.errors import JsonTextError
from taskrunner.jsontext import parse_json

Control = Literal["text", "integer", "number", "checkbox", "select", "json"]
NOT_GIVEN: Final = object()


@dataclass(frozen=True)
class FormField:
    """One control of the form, and the row of the input schema's table it documents."""

    name: str
    spec: InputField
    control: Control
    value: str = ""
    """The text the control shows: the visitor's, when the form comes back refused."""
    checked: bool = False
    problems: list[str] = field(default_factory=list)

    @property
    def options(self) -> list[tuple[str, str]]:
        """(value sent, label) of each choice of an enum, as JSON text for non-strings."""
        return [(_option_value(item), _option_value(item)) for item in self.spec.enum or []]

    @property
    def type_text(self) -> str:
        spec = self.spec
        text: str = spec.type
        if spec.type == "array" and spec.items is not None:
            text = f"array of {spec.items.type}"
        return f"{text} or null" if spec.nullable else text

    @property
    def default_text(self) -> str:
        return json.dumps(self.spec.default) if self.spec.has_default else ""

    @property
    def constraints(self) -> list[str]:
        spec, found = self.spec, []
        if spec.enum is not None:
            found.append("one of " + ", ".join(json.dumps(item) for item in spec.enum))
        if spec.minimum is not None:
            found.append(f"≥ {spec.minimum}")
        if spec.maximum is not None:
            found.append(f"≤ {spec.maximum}")
        if spec.pattern is not None:
            found.append(f"matches {spec.pattern}")
        if spec.properties is not None:
            found.append("fields: " + ", ".join(spec.properties))
        return found

    @property
    def step(self) -> str:
        return "1" if self.spec.type == "integer" else "any"


def _option_value(item: JsonValue) -> str:
    return item if isinstance(item, str) else json.dumps(item)


def control_of(spec: InputField) -> Control:
    if spec.nullable or spec.type in ("array", "object"):
        return "json"
    if spec.enum is not None:
        return "select"
    if spec.type == "boolean":
        return "checkbox"
    if spec.type in ("integer", "number"):
        return spec.type
    return "text"


def blank_form(declared: Mapping[str, InputField]) -> list[FormField]:
    """The form as first shown: defaults filled in."""
    fields = []
    for name, spec in declared.items():
        control = control_of(spec)
        value, checked = "", False
        if spec.has_default:
            default = spec.default
            checked = default is True
            value = _option_value(default) if control == "select" else _shown(default, control)
        fields.append(FormField(name, spec, control, value, checked))
    return fields


def _shown(value: JsonValue, control: Control) -> str:
    if control == "json":
        return json.dumps(value, indent=2)
    if isinstance(value, bool) or value is None:
        return ""
    return str(value)


@dataclass(frozen=True)
class ReadForm:
    """The input read from a sent form, the form to show again, and the problems found
    before the flow's own check (text that is not a number, not JSON)."""

    data: dict[str, JsonValue]
    fields: list[FormField]
    problems: int


def read_form(declared: Mapping[str, InputField], sent: Mapping[str, str]) -> ReadForm:
    data: dict[str, JsonValue] = {}
    fields, problems = [], 0
    for name, spec in declared.items():
        control = control_of(spec)
        text = sent.get(f"input.{name}", "")
        found: list[str] = []
        value = _value(spec, control, text, f"input.{name}" in sent, found)
        if value is not NOT_GIVEN:
            data[name] = value  # type: ignore[assignment] # NOT_GIVEN is ruled out
        problems += len(found)
        fields.append(FormField(name, spec, control, text, checked=bool(text), problems=found))
    return ReadForm(data, fields, problems)


def _value(
    spec: InputField, control: Control, text: str, sent: bool, problems: list[str]
) -> object:
    """The JSON value of one control's text; `NOT_GIVEN` when it is left empty (then the
    flow's default applies, or the flow says the field is required)."""
    if control == "checkbox":
        return bool(text)
    if not text.strip():
        # An empty text box is the empty text when the flow requires a text.
        return "" if control == "text" and spec.is_required and sent else NOT_GIVEN
    if control == "text":
        return text
    if control == "select":
        return _choice(spec, text, problems)
    if control in ("integer", "number"):
        return _number(control, text, problems)
    try:
        return parse_json(text)
    except JsonTextError as exc:
        problems.append(f"not valid JSON: {exc.message}")
        return NOT_GIVEN


def _choice(spec: InputField, text: str, problems: list[str]) -> object:
    for item in spec.enum or []:
        if _option_value(item) == text:
            return item
    problems.append("not one of the choices offered")
    return NOT_GIVEN


def _number(control: Control, text: str, problems: list[str]) -> object:
    word = text.strip()
    try:
        return int(word)
    except ValueError:
        pass
    if control == "integer":
        problems.append(f"{word[:40]!r} is not a whole number")
        return NOT_GIVEN
    try:
        number = float(word)
    except ValueError:
        number = math.nan
    if not math.isfinite(number):
        problems.append(f"{word[:40]!r} is not a number")
        return NOT_GIVEN
    return number


def place_problems(fields: list[FormField], problems: list[str]) -> list[str]:
    """Put each of the flow's input problems (`a: Input should be a number`) next to its
    field; return those that name no field of the form."""
    by_name = {item.name: item for item in fields}
    general = []
    for problem in problems:
        name, _, message = problem.partition(":")
        owner = by_name.get(name.split(".")[0].split("[")[0].strip())
        if owner is not None and message:
            owner.problems.append(message.strip())
        else:
            general.append(problem)
    return general

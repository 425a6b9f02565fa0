"""References: how data moves between the flow input, the states and the output.

A value in a flow is a *reference* when it is a string that starts with `$`:

- `$input` is the task's input; `$input.text` one of its fields;
- `$states.echo` is the output of the state `echo`; `$states.echo.text` one field;
- `$error` is the error caught last (`{kind, message, state}`), in a catch's target.

Further segments walk into objects (by key) and arrays (by index); walking into a field
that an object lacks gives null. A reference may end with a default, ` ?? ` and a JSON
literal (`$input.n ?? 0`, `$states.x.match.sign ?? "none"`): the default is the value when
any value walked through, or the one reached, is null or absent. A string that should
start with a literal `$` is written with two: `$$5` is the text `$5`.

A string that contains `{$` is a *template*: each `{$...}` part is replaced by the text of
a scalar reference (`{{` and `}}` are literal braces). Objects and arrays are walked, so a
reference or template nested anywhere in them is one too (a *structure*). Everything else
is a literal JSON value, taken as it is.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from pydantic import JsonValue

from taskrunner.errors import JsonTextError
from taskrunner.jsontext import parse_json

ROOTS: Final = ("input", "states", "error")
REFERENCE_PATTERN: Final = r"^\$(input|states|error)(\.[A-Za-z0-9_-]+)*( \?\? .+)?$"
"""What the published schema accepts as a reference (the meaning pass checks the rest)."""
_SEGMENT: Final = re.compile(r"^[A-Za-z0-9_-]+$")
DEFAULT_MARK: Final = " ?? "
_TEMPLATE: Final = re.compile(r"\{\s*\$")
"""What makes a string a template: `{$`, or `{ $`, which is reported rather than silently
taken as text."""
CAUGHT_ERROR: Final = "$error"
"""Where the outputs keep the error caught last: a key that no state name can be, so that
it travels with the outputs (and the checkpoint) without a slot of its own."""


class ReferenceSyntaxError(ValueError):
    """A string starting with `$` that is not a well-formed reference."""


class TemplateSyntaxError(ValueError):
    """A template whose braces do not pair up into `{$reference}` parts."""


class UnresolvedReferenceError(LookupError):
    """A reference whose data is not there at run time."""


@dataclass(frozen=True, slots=True)
class Reference:
    """A parsed `$input...`, `$states.NAME...` or `$error...` reference."""

    text: str
    root: str
    state: str | None
    path: tuple[str, ...]
    has_default: bool = False
    default: JsonValue = None
    """The value when a walked value is null or absent (after ` ?? `), if `has_default`."""

    @property
    def target(self) -> str:
        """The reference without its default: `$states.x.match`."""
        return self.text.split(DEFAULT_MARK, 1)[0]

    def prefixes(self) -> list[str]:
        """The references walked through on the way, the whole one last:
        `$states.x`, `$states.x.match`, `$states.x.match.sign`."""
        head = "$" + self.root + (f".{self.state}" if self.state is not None else "")
        return [".".join((head, *self.path[:count])) for count in range(len(self.path) + 1)]

    def resolve(self, data: JsonValue, outputs: Mapping[str, JsonValue]) -> JsonValue:
        """The referenced value, given the task input and the latest output of each state."""
        if self.root == "error":
            if CAUGHT_ERROR not in outputs:
                raise UnresolvedReferenceError(f"{self.text}: no error has been caught")
            current = outputs[CAUGHT_ERROR]
        elif self.state is None:
            current = data
        elif self.state in outputs:
            current = outputs[self.state]
        else:
            raise UnresolvedReferenceError(f"{self.text}: state {self.state!r} has no output yet")
        for segment in self.path:
            if current is None and self.has_default:
                return self.default
            try:
                current = _step_into(current, segment, self.text)
            except UnresolvedReferenceError:
                if self.has_default:  # an index past the end of an array is absent too
                    return self.default
                raise
        return self.default if current is None and self.has_default else current


@dataclass(frozen=True, slots=True)
class Constant:
    """A literal JSON value."""

    value: JsonValue

    def resolve(self, data: JsonValue, outputs: Mapping[str, JsonValue]) -> JsonValue:
        return self.value


@dataclass(frozen=True, slots=True)
class Template:
    """A string built from literal text and the text of scalar references."""

    text: str
    parts: tuple[str | Reference, ...]

    def resolve(self, data: JsonValue, outputs: Mapping[str, JsonValue]) -> JsonValue:
        return "".join(
            part if isinstance(part, str) else _text_of(part, part.resolve(data, outputs))
            for part in self.parts
        )

    @property
    def references(self) -> tuple[Reference, ...]:
        return tuple(part for part in self.parts if isinstance(part, Reference))


@dataclass(frozen=True, slots=True)
class Structure:
    """An object or an array with a reference or a template somewhere inside."""

    items: tuple[tuple[str | int, Expression], ...]
    is_array: bool

    def resolve(self, data: JsonValue, outputs: Mapping[str, JsonValue]) -> JsonValue:
        if self.is_array:
            return [item.resolve(data, outputs) for _, item in self.items]
        return {str(key): item.resolve(data, outputs) for key, item in self.items}


Expression = Reference | Constant | Template | Structure


def parse_value(value: JsonValue) -> Expression:
    """What a value of a flow document means: a reference if it is a string starting with
    `$`, a template if it contains `{$`, a structure if an object or array holds either,
    else the literal value. Raises `ReferenceSyntaxError` or `TemplateSyntaxError`."""
    if isinstance(value, dict | list):
        pairs = value.items() if isinstance(value, dict) else enumerate(value)
        items = tuple((key, parse_value(item)) for key, item in pairs)
        if all(isinstance(item, Constant) for _, item in items):
            return Constant(value)
        return Structure(items, isinstance(value, list))
    if not isinstance(value, str):
        return Constant(value)
    if value.startswith("$$"):
        value = value[1:]
    elif value.startswith("$"):
        return parse_reference(value)
    if _TEMPLATE.search(value):
        return parse_template(value)
    return Constant(value)


def parse_template(text: str) -> Template:
    """The parts of a template: literal text, with `{{` and `}}` for braces, and
    `{$reference}` parts."""
    parts: list[str | Reference] = []
    literal: list[str] = []
    position = 0
    while position < len(text):
        pair = text[position : position + 2]
        if pair in ("{{", "}}"):
            literal.append(pair[0])
            position += 2
            continue
        char = text[position]
        if char == "}":
            raise TemplateSyntaxError(
                f"{text!r}: a `}}` at character {position + 1} closes nothing; write `}}}}` "
                "for a literal brace"
            )
        if char != "{":
            literal.append(char)
            position += 1
            continue
        end = text.find("}", position)
        if end == -1:
            raise TemplateSyntaxError(
                f"{text!r}: the `{{` at character {position + 1} is never closed; close the "
                "reference with `}`, or write `{{` for a literal brace"
            )
        inner = text[position + 1 : end]
        if not inner.startswith("$") or "{" in inner:
            shown = text[position : end + 1]
            raise TemplateSyntaxError(
                f"{text!r}: `{shown}` at character {position + 1} is not a `{{$reference}}`; "
                "write `{{` for a literal brace"
            )
        if literal:
            parts.append("".join(literal))
            literal = []
        parts.append(parse_reference(inner))
        position = end + 1
    if literal:
        parts.append("".join(literal))
    return Template(text, tuple(parts))


def parse_reference(text: str) -> Reference:
    if DEFAULT_MARK in text:
        target, written = text.split(DEFAULT_MARK, 1)
        try:
            default = parse_json(written)
        except JsonTextError:
            raise ReferenceSyntaxError(
                f"{text!r}: the default after ` ?? ` must be a JSON literal, such as 0, "
                '"none", null or []'
            ) from None
        found = parse_reference(target)
        return Reference(text, found.root, found.state, found.path, True, default)
    segments = text[1:].split(".")
    root = segments[0]
    if root not in ROOTS:
        raise ReferenceSyntaxError(
            f"{text!r} is not a reference: it must start with $input, $states or $error"
        )
    for segment in segments[1:]:
        if not _SEGMENT.match(segment):
            raise ReferenceSyntaxError(
                f"{text!r} is not a reference: segment {segment!r} must be letters, digits, "
                "'_' or '-'"
            )
    if root in ("input", "error"):
        return Reference(text=text, root=root, state=None, path=tuple(segments[1:]))
    if len(segments) < 2:
        raise ReferenceSyntaxError(f"{text!r} names no state: write $states.NAME")
    return Reference(text=text, root=root, state=segments[1], path=tuple(segments[2:]))


def _step_into(current: JsonValue, segment: str, text: str) -> JsonValue:
    if isinstance(current, dict):
        return current.get(segment)  # an optional field, absent: its type is nullable
    if isinstance(current, list) and segment.isdigit() and int(segment) < len(current):
        return current[int(segment)]
    raise UnresolvedReferenceError(f"{text}: cannot take {segment!r} of {_kind(current)}")


def _kind(value: JsonValue) -> str:
    if isinstance(value, list):
        return f"an array of {len(value)} items"
    return "null" if value is None else f"a {type(value).__name__}"


def _text_of(reference: Reference, value: JsonValue) -> str:
    """A scalar as a template shows it: a string as it is, anything else as JSON."""
    if isinstance(value, str):
        return value
    if value is None or isinstance(value, dict | list):
        raise UnresolvedReferenceError(
            f"{reference.text} is {_kind(value)}, which a template cannot show"
        )
    return json.dumps(value)

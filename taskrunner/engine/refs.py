"""References: how data moves between the flow input, the states and the output.

A value in a flow is a *reference* when it is a string that starts with `$`:

- `$input` is the task's input; `$input.text` one of its fields;
- `$states.echo` is the output of the task state `echo`; `$states.echo.text` one field.

Further segments walk into objects (by key) and arrays (by index); walking into a field
that an object lacks gives null. A reference may end with a default, ` ?? ` and a JSON
literal (`$input.n ?? 0`, `$states.x.match.sign ?? "none"`): the default is the value when
any value walked through, or the one reached, is null or absent. A string that should
start with a literal `$` is written with two: `$$5` is the text `$5`. Everything else is a
literal JSON value, taken as it is.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from pydantic import JsonValue

from taskrunner.errors import JsonTextError
from taskrunner.jsontext import parse_json

ROOTS: Final = ("input", "states")
REFERENCE_PATTERN: Final = r"^\$(input|states)(\.[A-Za-z0-9_-]+)*( \?\? .+)?$"
"""What the published schema accepts as a reference (the meaning pass checks the rest)."""
_SEGMENT: Final = re.compile(r"^[A-Za-z0-9_-]+$")
DEFAULT_MARK: Final = " ?? "


class ReferenceSyntaxError(ValueError):
    """A string starting with `$` that is not a well-formed reference."""


class UnresolvedReferenceError(LookupError):
    """A reference whose data is not there at run time."""


@dataclass(frozen=True, slots=True)
class Reference:
    """A parsed `$input...` or `$states.NAME...` reference."""

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
        if self.state is None:
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


Expression = Reference | Constant


def parse_value(value: JsonValue) -> Expression:
    """A reference if `value` is a string starting with `$`, else the literal value."""
    if not isinstance(value, str) or not value.startswith("$"):
        return Constant(value)
    if value.startswith("$$"):
        return Constant(value[1:])
    return parse_reference(value)


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
            f"{text!r} is not a reference: it must start with $input or $states"
        )
    for segment in segments[1:]:
        if not _SEGMENT.match(segment):
            raise ReferenceSyntaxError(
                f"{text!r} is not a reference: segment {segment!r} must be letters, digits, "
                "'_' or '-'"
            )
    if root == "input":
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

"""The meaning of one value of a flow document: a literal, a reference, a template, or an
object or array with any of these nested anywhere in it (see `refs`).

`check_value` reports every problem of a value where it is (the JSON pointer of the nested
part, not of the whole), and gives its type: a structure's type is the object or array of
its parts' types, as a JSON Schema, so that a reference into it walks its fields. How a
reference resolves is the caller's: it knows the flow's inputs and states.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Final

from pydantic import JsonValue

from taskrunner.engine import types
from taskrunner.engine.diagnostics import Diagnostic, pointer
from taskrunner.engine.refs import (
    DEFAULT_MARK,
    Reference,
    ReferenceSyntaxError,
    Template,
    TemplateSyntaxError,
    parse_value,
)
from taskrunner.engine.type_diagnostics import mismatch_diagnostic
from taskrunner.engine.types import ValueType

Resolver = Callable[[Reference, str], ValueType | Diagnostic]
"""The type of a reference used at a path, or the problem with it."""

STRING: Final = ValueType(frozenset({"string"}))
SCALARS: Final = frozenset({"string", "integer", "number", "boolean"})
"""What a template can show."""
CAUGHT_ERROR_TYPE: Final = types.of_schema(
    {
        "type": "object",
        "properties": {field: {"type": "string"} for field in ("kind", "message", "state")},
        "required": ["kind", "message", "state"],
        "additionalProperties": False,
    }
)
"""The type of `$error`."""


def check_value(
    resolve: Resolver,
    value: JsonValue,
    path: str,
    target: ValueType | None,
    where: str,
    *,
    literal_checked: bool,
) -> Generator[Diagnostic, None, ValueType | None]:
    """Every problem of `value` at `path` (fed into `target`, described as `where`), and
    its type, or None when it is in error. `literal_checked`: the schema has already
    checked literal text against `target`."""
    if isinstance(value, dict | list):
        return (yield from _structure(resolve, value, path, target, where, literal_checked))
    try:
        expression = parse_value(value)
    except ReferenceSyntaxError as exc:
        default = isinstance(value, str) and DEFAULT_MARK in value
        hint = 'quote a text default: `?? "none"`' if default else "write $$ for a literal $"
        yield Diagnostic("ref.syntax", str(exc), path, hint)
        return None
    except TemplateSyntaxError as exc:
        hint = "a template part is `{$reference}`; write `{{` and `}}` for literal braces"
        yield Diagnostic("template.syntax", str(exc), path, hint)
        return None
    if isinstance(expression, Template):
        return (yield from _template(resolve, expression, path, target, where, literal_checked))
    if not isinstance(expression, Reference):
        found = types.of_value(value)
        if target is not None and not literal_checked:
            problem = types.why_not(target, found)
            if problem is not None:
                yield mismatch_diagnostic(where, target, repr(value), problem, path, None, found)
        return found
    found_or_problem = resolve(expression, path)
    if isinstance(found_or_problem, Diagnostic):
        yield found_or_problem
        return None
    if target is not None:
        problem = types.why_not(target, found_or_problem)
        if problem is not None:
            subject = f"`{expression.text}`"
            yield mismatch_diagnostic(
                where, target, subject, problem, path, expression, found_or_problem
            )
    return found_or_problem


def _template(
    resolve: Resolver,
    template: Template,
    path: str,
    target: ValueType | None,
    where: str,
    literal_checked: bool,
) -> Generator[Diagnostic, None, ValueType | None]:
    sound = True
    for reference in template.references:
        found = resolve(reference, path)
        if isinstance(found, Diagnostic):
            yield found
            sound = False
        elif found.kinds is not None and not found.kinds <= SCALARS:
            yield Diagnostic(
                "template.not-scalar",
                f"`{{{reference.text}}}` is {found.describe()}, which a template cannot show",
                path,
                "a template shows strings, numbers and booleans: reference one of its fields"
                if found.kinds - {"null"}
                else "a template shows strings, numbers and booleans",
            )
            sound = False
    if target is not None and not literal_checked and not types.accepts(target, STRING):
        yield Diagnostic(
            "type.mismatch",
            f"{where} takes {target.describe()}, but a template is a string",
            path,
        )
    return STRING if sound else None


def _structure(
    resolve: Resolver,
    value: dict[str, JsonValue] | list[JsonValue],
    path: str,
    target: ValueType | None,
    where: str,
    literal_checked: bool,
) -> Generator[Diagnostic, None, ValueType | None]:
    found = types.of_value(value)
    if target is not None and not literal_checked and not types.accepts(target, found):
        shown = "an object" if isinstance(value, dict) else "an array"
        yield Diagnostic(
            "type.mismatch", f"{where} takes {target.describe()}, but this is {shown}", path
        )
        return None
    pairs = list(value.items()) if isinstance(value, dict) else list(enumerate(value))
    parts: dict[str, ValueType] = {}
    sound = True
    for key, item in pairs:
        inner = _member(target, str(key)) if target is not None else None
        if isinstance(inner, Diagnostic):
            yield Diagnostic(inner.code, f"{where}: {inner.message}", path + pointer(key))
            sound = False
            continue
        part = yield from check_value(
            resolve,
            item,
            path + pointer(key),
            inner,
            _inside(where, key),
            literal_checked=literal_checked,
        )
        if part is None:
            sound = False
        else:
            parts[str(key)] = part
    if isinstance(value, dict) and target is not None and not literal_checked:
        missing = [key for key in _required(target) if key not in value]
        if missing:
            yield Diagnostic(
                "type.mismatch",
                f"{where} needs the field{'s' if len(missing) > 1 else ''} "
                f"{', '.join(f'`{key}`' for key in missing)}, which this object lacks",
                path,
            )
            sound = False
    if not sound:
        return None
    return types.of_parts(parts, isinstance(value, list))


def _member(target: ValueType, key: str) -> ValueType | Diagnostic | None:
    try:
        return types.member(target, key)
    except types.NoSuchFieldError as exc:
        known = ", ".join(f"`{name}`" for name in exc.known)
        return Diagnostic(
            "type.mismatch",
            f"no field `{key}` in {target.describe()}" + (f" (fields: {known})" if known else ""),
        )


def _required(target: ValueType) -> list[str]:
    required = target.schema.get("required") if target.schema is not None else None
    return [key for key in required if isinstance(key, str)] if isinstance(required, list) else []


def _inside(where: str, key: str | int) -> str:
    """How a part is named in messages: `` `initial.sum` `` inside `` `initial` ``."""
    if len(where) > 1 and where.startswith("`") and where.endswith("`"):
        return f"`{where[1:-1]}.{key}`"
    return f"{where}.{key}" if where else f"`{key}`"


def quietly(checking: Generator[Diagnostic, None, ValueType | None]) -> ValueType | None:
    """The type a check gives, its problems aside (they are reported where the value is
    checked, not where its type is asked for: a state's output type, say)."""
    while True:
        try:
            next(checking)
        except StopIteration as stop:
            found: ValueType | None = stop.value
            return found

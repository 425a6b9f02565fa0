"""Pass one: the shape of a flow document, checked with the generated JSON Schema.

Every schema error becomes a `Diagnostic` with a message a person can act on: which key is
missing or unknown (and which one was probably meant), which type was expected, which tool
does not exist. Strings that start with `$` are references; their syntax is the meaning
pass's to report, so that each problem is reported once.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Iterator, Mapping
from functools import cache
from typing import Any, Final

from jsonschema import Draft202012Validator, validators
from jsonschema.exceptions import ValidationError, best_match
from jsonschema.protocols import Validator
from pydantic import JsonValue

from taskrunner.engine.diagnostics import Diagnostic, pointer, suggest
from taskrunner.engine.model import (
    ERROR_CODE_PATTERN,
    ERROR_KIND_PATTERN,
    FIELD_NAME_PATTERN,
    FLOW_NAME_PATTERN,
    STATE_NAME_PATTERN,
)
from taskrunner.engine.refs import REFERENCE_PATTERN
from taskrunner.engine.spellings import KEY_ALIASES

_PATTERN_MEANING: Final = {
    STATE_NAME_PATTERN: "a state name: a letter or `_`, then letters, digits, `_` or `-`, "
    "64 characters at most",
    FIELD_NAME_PATTERN: "a field name: a letter or `_`, then letters, digits or `_`, "
    "64 characters at most",
    FLOW_NAME_PATTERN: "a flow name: a lower-case letter, then lower-case letters, digits, "
    "`_` or `-`, 64 characters at most",
    ERROR_KIND_PATTERN: "an error kind such as `DivisionByZero`, or `*` for every kind",
    ERROR_CODE_PATTERN: "an error code such as `InvalidAmount`",
    REFERENCE_PATTERN: "a reference such as `$input.text` or `$states.echo.text`",
}

_TYPE_CHECKER: Final = Draft202012Validator.TYPE_CHECKER.redefine_many(
    {
        # JSON Schema counts 2.0 as an integer; the tools' strict models do not, and the
        # published schema must accept exactly what they accept.
        "integer": lambda _checker, value: isinstance(value, int) and not isinstance(value, bool),
        # JSON has no NaN or infinity; Python's json module reads them all the same.
        "number": lambda _checker, value: (
            isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
        ),
    }
)


@cache
def _ecma_regex(pattern: str) -> re.Pattern[str]:
    """`pattern` compiled with ECMA-262 (JSON Schema) meaning: an unescaped `$` outside a
    character class matches only at the very end, not before a final newline as in
    Python. Pydantic's validators read patterns the ECMA way too."""
    translated = []
    escaped = in_class = False
    for char in pattern:
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == "[":
            in_class = True
        elif char == "]":
            in_class = False
        elif char == "$" and not in_class:
            translated.append(r"\Z")
            continue
        translated.append(char)
    return re.compile("".join(translated))


def _pattern(
    validator: Validator, pattern: str, instance: object, schema: Mapping[str, Any]
) -> Iterator[ValidationError]:
    if isinstance(instance, str) and not _ecma_regex(pattern).search(instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


_StrictValidator: Final = validators.extend(  # type: ignore[no-untyped-call]
    Draft202012Validator,
    validators={"pattern": _pattern},
    type_checker=_TYPE_CHECKER,
)


def make_validator(schema: Mapping[str, JsonValue]) -> Validator:
    """A validator for the schema, with taskrunner's strict reading of `integer`."""
    validator: Validator = _StrictValidator(schema)
    return validator


def check_shape(document: dict[str, JsonValue], validator: Validator) -> list[Diagnostic]:
    """Every way in which `document` breaks the schema, one diagnostic each."""
    found: dict[tuple[str, str, str], Diagnostic] = {}
    for error in validator.iter_errors(document):
        for diagnostic in _describe(error):
            found.setdefault((diagnostic.code, diagnostic.path, diagnostic.message), diagnostic)
    # A misspelt key is one problem, not two: when an unknown key evidently means a
    # missing one, report the unknown key (with its hint) and not the missing key.
    meant = {
        (item.path.rsplit("/", 1)[0], item.hint)
        for item in found.values()
        if item.code == "schema.unknown-key" and item.hint
    }
    return [
        item
        for item in found.values()
        if item.code != "schema.required"
        or (item.path, f"did you mean `{item.message.split('`')[1]}`?") not in meant
    ]


def _describe(error: ValidationError) -> Iterable[Diagnostic]:
    path = pointer(*error.absolute_path)
    keyword = error.validator
    instance = error.instance
    if "propertyNames" in error.absolute_schema_path:
        yield _bad_name(error, path)
    elif keyword == "required":
        yield from _missing(error, path)
    elif keyword == "additionalProperties":
        yield from _unknown_keys(error, path)
    elif keyword in ("anyOf", "oneOf"):
        yield from _alternatives(error, path)
    elif keyword == "type":
        expected = _expected_types(error.validator_value)
        yield Diagnostic(
            "schema.type", f"expected {expected}, got {_describe_value(instance)}", path
        )
    elif keyword in ("enum", "const"):
        yield _not_allowed(error, path)
    elif keyword == "pattern":
        if isinstance(instance, str) and instance.startswith("$") and _in_arguments(path):
            return
        meaning = _PATTERN_MEANING.get(str(error.validator_value), "the required form")
        yield Diagnostic("schema.pattern", f"{_describe_value(instance)} is not {meaning}", path)
    elif keyword in _SIZE_KEYWORDS:
        # jsonschema's own message spells out the whole value, which may be the document.
        yield Diagnostic("schema.range", _size_message(error), path)
    elif keyword in _RANGE_KEYWORDS:
        yield Diagnostic("schema.range", error.message, path)
    else:
        yield Diagnostic("schema.invalid", error.message, path)


_STATE_PATH: Final = r"(?:/states/[^/]+/(?:branches/[^/]+|each))*/states/[^/]+"
"""The pointer of a state: of the flow's, or of a sub-chart's (a parallel branch's, a map's
`each`), at any depth."""
_RANGE_KEYWORDS: Final = {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"}
_SIZE_KEYWORDS: Final = {
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "minProperties",
    "maxProperties",
}
_COUNTED: Final = {
    "states": ("state", "states"),
    "rules": ("rule", "rules"),
    "errors": ("error kind", "error kinds"),
    "all": ("condition", "conditions"),
    "any": ("condition", "conditions"),
    "catch": ("handler", "handlers"),
    "args": ("argument", "arguments"),
    "input": ("input field", "input fields"),
    "output": ("output field", "output fields"),
}
"""What the members of a collection are called, by the key that holds it."""


def _size_message(error: ValidationError) -> str:
    """One line however large the value: `at most 1,000 states; this flow has 1,001`."""
    keyword = str(error.validator)
    limit = error.validator_value if isinstance(error.validator_value, int) else 0
    instance = error.instance
    count = len(instance) if isinstance(instance, str | list | dict) else 0
    key = error.absolute_path[-1] if error.absolute_path else ""
    if keyword.endswith("Length"):
        one, many = "character", "characters"
    else:
        default = ("item", "items") if keyword.endswith("Items") else ("member", "members")
        one, many = _COUNTED.get(str(key), default)
    bound = "at most" if keyword.startswith("max") else "at least"
    holder = "this flow has" if list(error.absolute_path) == ["states"] else "this has"
    found = f"{count:,}" if count else "none"
    return f"{bound} {limit:,} {one if limit == 1 else many}; {holder} {found}"


def _bad_name(error: ValidationError, path: str) -> Diagnostic:
    name = str(error.instance)
    meaning = _PATTERN_MEANING.get(str(error.validator_value), "a valid name")
    return Diagnostic(
        "schema.pattern",
        f"{_describe_value(name)} is not {meaning}",
        path + pointer(name),
        at_key=True,
    )


def _missing(error: ValidationError, path: str) -> Iterable[Diagnostic]:
    instance = error.instance
    if not isinstance(instance, dict):
        return
    properties = error.schema.get("properties", {}) if isinstance(error.schema, dict) else {}
    for name in _listed(error.validator_value):
        if name in instance:
            continue
        described = properties.get(name, {}).get("description")
        yield Diagnostic(
            "schema.required",
            f"missing required key `{name}`",
            path,
            hint=f"`{name}`: {described}" if described else None,
        )


def _unknown_keys(error: ValidationError, path: str) -> Iterable[Diagnostic]:
    instance = error.instance
    schema = error.schema if isinstance(error.schema, dict) else {}
    allowed = list(schema.get("properties", {}))
    if not isinstance(instance, dict) or schema.get("additionalProperties") is not False:
        yield Diagnostic("schema.invalid", error.message, path)
        return
    for key in instance:
        if key in allowed:
            continue
        alias = KEY_ALIASES.get(key.lower())
        meant = f"did you mean `{alias}`?" if alias in allowed else suggest(key, allowed)
        hint = meant or (
            f"allowed here: {', '.join(allowed)}" if allowed else "no keys are allowed here"
        )
        yield Diagnostic(
            "schema.unknown-key", f"unknown key `{key}`", path + pointer(key), hint, at_key=True
        )


def _alternatives(error: ValidationError, path: str) -> Iterable[Diagnostic]:
    instance = error.instance
    if isinstance(instance, str) and instance.startswith("$") and not instance.startswith("$$"):
        return  # a reference that does not parse: the meaning pass names the problem
    context = list(error.context or ())
    branches: dict[object, list[ValidationError]] = {}
    for item in context:
        if not _is_reference_branch(item):
            branches.setdefault(item.relative_schema_path[0], []).append(item)
    # A branch that failed on the type of the value itself was not the one meant.
    meant = [
        errors
        for errors in branches.values()
        if not any(item.validator == "type" and not item.path for item in errors)
    ]
    if len(meant) == 1:
        for item in meant[0]:
            yield from _describe(item)
        return
    if len(meant) > 1:
        chosen = best_match(item for errors in meant for item in errors)
        if chosen is not None:
            yield from _describe(chosen)
            return
    expected = _expected_types(
        [item.validator_value for errors in branches.values() for item in errors]
    )
    references = len(context) > sum(len(errors) for errors in branches.values())
    or_reference = " (or a reference such as `$input.NAME`)" if references else ""
    yield Diagnostic(
        "schema.type",
        f"expected {expected or 'a reference'}{or_reference}, got {_describe_value(instance)}",
        path,
    )


def _is_reference_branch(error: ValidationError) -> bool:
    schema = error.schema
    return isinstance(schema, dict) and schema.get("pattern") == REFERENCE_PATTERN


def _not_allowed(error: ValidationError, path: str) -> Diagnostic:
    instance = error.instance
    value = error.validator_value
    allowed = [value] if error.validator == "const" else _listed(value)
    names = [str(item) for item in allowed]
    hint = suggest(str(instance), names) if isinstance(instance, str) else None
    listing = ", ".join(f"`{name}`" for name in names)
    if re.fullmatch(_STATE_PATH + "/tool", path):
        return Diagnostic(
            "tool.unknown",
            f"unknown tool `{instance}`",
            path,
            hint or f"registered tools: {listing}",
        )
    return Diagnostic(
        "schema.enum",
        f"{_describe_value(instance)} is not allowed here",
        path,
        hint or f"expected one of: {listing}",
    )


def _listed(value: object) -> list[object]:
    return list(value) if isinstance(value, list) else []


def _in_arguments(path: str) -> bool:
    return bool(re.match(_STATE_PATH + "/(args|output)/", path))


def _expected_types(value: object) -> str:
    names: list[str] = []
    for item in value if isinstance(value, list) else [value]:
        for name in item if isinstance(item, list) else [item]:
            if name not in names:
                names.append(str(name))
    if "integer" in names and "number" in names:
        names.remove("integer")
    if "null" in names and len(names) > 1:
        names.remove("null")  # optional keys may be null, but nobody means to write that
    return " or ".join(names)


def _describe_value(value: object) -> str:
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if value is None:
        return "null"
    if isinstance(value, int):
        return f"integer {value}"
    if isinstance(value, float):
        return f"number {value}"
    if isinstance(value, str):
        shown = value if len(value) <= 60 else value[:57] + "..."
        return f"string {shown!r}"
    if isinstance(value, list):
        return f"an array of {len(value)} items"
    return "an object"

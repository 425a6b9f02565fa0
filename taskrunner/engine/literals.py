"""`$`-strings where a flow takes text literally: never silently.

A string that starts with `$` is a reference wherever a flow reads data (`args`, `output`,
choice operands). Some places take their value as it is written: an input field's
`default` (a task's input is not there yet when defaults apply) and the descriptions
written for people. A `$input.a` there would be kept as the text `$input.a`, which is
never what was meant, so the checker says so (`ref.literal`):

- in a `default`, any string that starts with a single `$`, at any depth: `$$` writes a
  literal `$` there as everywhere else (`$$5` is the text `$5`);
- in a `description`, a text that is exactly a reference (`$input.a`): prose such as
  `$5 a call` is left alone.

`literal_reference` is the one test; another place that takes values literally (an
input's `enum`, say) applies it to each of its values.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping

from pydantic import JsonValue

from taskrunner.engine.diagnostics import Diagnostic, pointer
from taskrunner.engine.refs import REFERENCE_PATTERN

_HINT = "write $$ for a literal $"


def check_literal_text(document: Mapping[str, object]) -> Iterator[Diagnostic]:
    """Every `$`-string that `document` would take as literal text."""
    yield from _description(document.get("description"), "/description")
    declared = document.get("input")
    if isinstance(declared, Mapping):
        for name, spec in declared.items():
            if not isinstance(spec, Mapping):
                continue
            here = pointer("input", name)
            yield from _description(spec.get("description"), here + "/description")
            if "default" in spec:
                where = f"the default of `{name}`"
                yield from literal_reference(spec["default"], here + "/default", where)
    yield from _state_descriptions(document.get("states"), "")


def _state_descriptions(states: object, chart: str) -> Iterator[Diagnostic]:
    """The states' descriptions, and those of their sub-charts' states (a parallel
    branch's, a map's `each`), at any depth."""
    if not isinstance(states, Mapping):
        return
    for name, state in states.items():
        if not isinstance(state, Mapping):
            continue
        here = chart + pointer("states", name)
        yield from _description(state.get("description"), here + "/description")
        branches = state.get("branches")
        if isinstance(branches, Mapping):
            for branch, inner in branches.items():
                if isinstance(inner, Mapping):
                    where = here + pointer("branches", branch)
                    yield from _state_descriptions(inner.get("states"), where)
        each = state.get("each")
        if isinstance(each, Mapping):
            yield from _state_descriptions(each.get("states"), here + "/each")


def literal_reference(value: object, path: str, where: str) -> Iterator[Diagnostic]:
    """`value` is taken as it is written at `path` (described as `where`): each string in
    it that starts with a single `$`."""
    if isinstance(value, str):
        if value.startswith("$") and not value.startswith("$$"):
            yield Diagnostic(
                "ref.literal",
                f"{where} is a literal value, not a reference: {_shown(value)} would be "
                "kept as this text",
                path,
                _HINT,
            )
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from literal_reference(item, path + pointer(index), where)
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from literal_reference(item, path + pointer(key), where)


def unescape_literal(value: JsonValue) -> JsonValue:
    """`value` as meant: each string that starts with `$$` loses one `$`."""
    if isinstance(value, str):
        return value[1:] if value.startswith("$$") else value
    if isinstance(value, list):
        return [unescape_literal(item) for item in value]
    if isinstance(value, dict):
        return {key: unescape_literal(item) for key, item in value.items()}
    return value


def _description(value: object, path: str) -> Iterator[Diagnostic]:
    if isinstance(value, str) and re.fullmatch(REFERENCE_PATTERN, value):
        yield Diagnostic(
            "ref.literal",
            f"a description is text for people: {_shown(value)} is not a reference here",
            path,
            "describe in words, or " + _HINT,
        )


def _shown(value: str) -> str:
    return f"`{value}`" if len(value) <= 60 else f"`{value[:57]}...`"

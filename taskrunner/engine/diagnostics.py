"""Problems found in a flow document, each with a stable code.

A `Diagnostic` locates its problem by JSON pointer; whoever read the document (the YAML
reader) turns the pointer into a line and a column. Codes never change meaning: tools and
people may match on them. `docs/flow-language.md` lists them all (a test keeps it so).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Final, Literal

CODES: Final[dict[str, str]] = {
    # reading the text
    "yaml.encoding": "The file is not UTF-8 text.",
    "yaml.too-large": "The file is larger than the size limit.",
    "yaml.syntax": "The text is not well-formed YAML.",
    "yaml.indentation": "A line is indented with a tab or a non-ASCII space (such as U+00A0).",
    "yaml.duplicate-key": "A mapping has the same key twice.",
    "yaml.key": "A mapping key is not a plain string.",
    "yaml.tag": "The document uses a YAML tag; flows are plain data.",
    "yaml.alias": "An alias is recursive or expands the document beyond the node limit.",
    "yaml.too-deep": "The document nests deeper than the depth limit.",
    "yaml.documents": "The file holds more than one YAML document.",
    "yaml.empty": "The file holds no document.",
    "yaml.not-mapping": "The document is not a mapping of keys to values.",
    # shape: the generated JSON Schema
    "schema.required": "A required key is missing.",
    "schema.unknown-key": "A key that this place does not allow.",
    "schema.type": "A value of the wrong JSON type.",
    "schema.enum": "A value that is not one of those allowed.",
    "schema.pattern": "A name or string that does not have the required form.",
    "schema.range": "A number or a size outside the allowed range.",
    "schema.invalid": "Any other violation of the schema.",
    "tool.unknown": "A task state calls a tool that is not registered.",
    # meaning
    "flow.unknown-start": "`start` names a state that does not exist.",
    "flow.unknown-state": "A transition goes to a state that does not exist.",
    "flow.unreachable": "No path from the start state reaches this state.",
    "flow.no-terminal": "No succeed or fail state can be reached from this state.",
    "flow.choice-cycle": "A cycle of choice and pass states only: it would loop forever.",
    "flow.unknown": "A flow state calls a flow that does not exist, or does not load.",
    "flow.input": "A flow state's input lacks a field the flow requires, or has one it lacks.",
    "flow.cycle": "Flows call each other in a cycle (or a flow calls itself).",
    "choice.condition": "A condition has no operator, several, or a misplaced `value`.",
    "ref.syntax": "A string starting with `$` is not a well-formed reference.",
    "ref.unknown-input": "A reference to an input field that the flow does not declare.",
    "ref.unknown-state": "A reference to a state that does not exist.",
    "ref.no-output": "A reference to a state that has no output (a choice, wait, succeed or "
    "fail state).",
    "ref.not-run": "A reference to a state that has not run on every path to this point.",
    "ref.unknown-field": "A reference to a field that the data does not have.",
    "ref.no-error": "`$error` in a state that some path reaches without a caught error.",
    "ref.outer-state": "A sub-chart (a parallel branch, a map's `each`) refers to a state "
    "outside it: it sees only its own states and its `$input`; pass the value in through "
    "`input:`.",
    "template.syntax": "A template whose braces are not `{$reference}` parts or `{{`/`}}`.",
    "template.not-scalar": "A template part that is an object, an array or may be null.",
    "fail.error-kind": "A fail state's `error` template cannot build an error kind.",
    "state.initial": "An `initial` value that holds a reference or a template.",
    "ref.literal": "A `$`-string that would be kept as text: in a default or a description.",
    "ref.nullable": "A reference walks through a value that may be null, unguarded.",
    "input.spec": "An input field's declaration contradicts itself: a constraint that "
    "does not apply to its type, an `enum` value not of it, a regular expression that "
    "does not compile.",
    "type.mismatch": "A value whose type does not fit where it goes.",
    "error.uncatchable": "`retry` or `catch` names an error kind that ends a task regardless.",
    "error.unknown-kind": "Warning: `retry` or `catch` names a kind its tool never fails with.",
    "wait.duration": "A wait state has both `seconds` and `until`, or neither.",
    "wait.timestamp": "A literal `until` that is not an RFC 3339 timestamp with an offset.",
    "map.reserved-input": "A map state's `input` sets `item` or `index`, which the map sets "
    "for each item.",
    # the report itself
    "report.omitted": "More problems than a report lists: how many were left out.",
}


Severity = Literal["error", "warning"]
"""An error makes a flow invalid; a warning is reported but the flow is valid: something
that is allowed, yet almost certainly not what was meant."""


MAX_LISTED_NAMES: Final = 10
"""How many names a hint lists (`states: a, b, …`): a flow may have a thousand states."""


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """One problem: what it is (`code`, `message`, `hint`) and where (`path`).

    `path` is a JSON pointer into the document. `at_key` places the problem on the key of
    that member rather than on its value (an unknown key, an unreachable state). Only
    `severity="error"` problems make a flow invalid.
    """

    code: str
    message: str
    path: str = ""
    hint: str | None = None
    at_key: bool = False
    severity: Severity = "error"

    def __post_init__(self) -> None:
        if self.code not in CODES:
            raise ValueError(f"unregistered diagnostic code {self.code!r}")


def pointer(*parts: str | int) -> str:
    """A JSON pointer (RFC 6901) made of these members."""
    return "".join("/" + str(part).replace("~", "~0").replace("/", "~1") for part in parts)


def closest(word: str, choices: list[str]) -> str | None:
    """The one of `choices` that `word` most likely misspells, if one is close enough: one
    that differs only in case first (`TASK` for `task`), then the closest spelling."""
    folded = word.casefold()
    for choice in choices:
        if choice.casefold() == folded:
            return choice
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return close[0] if close else None


def listing(names: list[str], limit: int = MAX_LISTED_NAMES) -> str:
    """`names` joined for a hint: the first `limit` of them, and how many more there are."""
    shown = ", ".join(names[:limit])
    return shown if len(names) <= limit else f"{shown}, … ({len(names) - limit:,} more)"


def suggest(word: str, choices: list[str]) -> str | None:
    """`did you mean ...?` for the closest of `choices`, if one is close enough."""
    meant = closest(word, choices)
    return f"did you mean `{meant}`?" if meant else None

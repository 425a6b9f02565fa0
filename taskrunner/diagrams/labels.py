"""What a diagram writes beside its shapes: each state's kind in words, each choice rule's
condition, and what retries and catches.

The text is short and plain, the same in both formats (each writer escapes it its way):
a condition reads `$states.add.sum < 0`, `all(…, …)`, `not(…)`; a retry reads
`retry up to 3 attempts on Timeout`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Final

from pydantic import JsonValue

from taskrunner.engine.states import (
    ChoiceState,
    FailState,
    FlowState,
    MapState,
    ParallelState,
    PassState,
    State,
    SucceedState,
    TaskState,
    WaitState,
)
from taskrunner.engine.states.choice import COMPARISONS, Condition
from taskrunner.engine.states.recovery import Retry

MAX_LABEL: Final = 60
"""A condition or a value longer than this is cut, with an ellipsis: a label is a hint,
the flow file says the rest."""

SYMBOLS: Final = {"eq": "==", "ne": "!=", "lt": "<", "le": "<=", "gt": ">", "ge": ">="}


def kind_text(state: State | None, written_type: str = "") -> str:
    """The second line of a state's label: its kind, and what matters most about it (a
    state of no built-in kind, or none read, by its `written_type`)."""
    match state:
        case TaskState(tool=tool):
            return f"task: {tool}"
        case WaitState(seconds=seconds, until=until):
            if until is not None:
                return f"wait until {value_text(until)}"
            return f"wait {value_text(seconds)} s"
        case ParallelState(branches=branches):
            count = len(branches)
            return f"parallel: {count} branch{'es' if count != 1 else ''}"
        case MapState(items=items):
            return f"map over {value_text(items)}"
        case FlowState(flow=flow):
            return f"flow: {flow}"
        case FailState(error=error):
            return f"fail: {shortened(error)}"
        case ChoiceState() | PassState() | SucceedState():
            return state.kind
        case State(kind=kind):
            return kind
    return written_type or "state"


def condition_text(condition: Condition) -> str:
    """A choice rule's condition, short: `$states.add.sum < 0`, `all(…)`, `not(…)`."""
    return shortened(_condition(condition))


def _condition(condition: Condition) -> str:
    given = condition.model_fields_set
    for combinator in ("all", "any"):
        terms = getattr(condition, combinator)
        if combinator in given and terms:
            return f"{combinator}({', '.join(_condition(term) for term in terms)})"
    if "not_" in given and condition.not_ is not None:
        return f"not({_condition(condition.not_)})"
    for operator in COMPARISONS:
        if operator in given:
            left, right = condition.value, getattr(condition, operator)
            return f"{value_text(left)} {SYMBOLS[operator]} {value_text(right)}"
    return "?"


def value_text(value: JsonValue) -> str:
    """A value as a flow writes it: a reference as itself, a literal as JSON."""
    if isinstance(value, str):
        if value.startswith("$") and not value.startswith("$$"):
            return shortened(value)
        literal = value[1:] if value.startswith("$$") else value
        return shortened(json.dumps(literal, ensure_ascii=False))
    return shortened(json.dumps(value, ensure_ascii=False, separators=(", ", ": ")))


def retry_text(retry: Retry) -> str:
    """`retry up to 3 attempts on Timeout`: the attempts in all (the first one counts),
    and the kinds retried."""
    text = f"retry up to {retry.max_attempts} attempts on {kinds_text(retry.errors)}"
    if retry.non_retryable:
        text += f", not {', '.join(retry.non_retryable)}"
    return shortened(text)


def catch_text(kinds: Sequence[str]) -> str:
    return shortened(f"catch {kinds_text(kinds)}")


def kinds_text(kinds: Sequence[str]) -> str:
    return "any error" if "*" in kinds else ", ".join(kinds)


def shortened(text: str) -> str:
    """One line of at most `MAX_LABEL` characters."""
    line = " ".join(text.split())
    return line if len(line) <= MAX_LABEL else line[: MAX_LABEL - 1] + "…"

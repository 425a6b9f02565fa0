"""The `fail` state: end the task with an error kind and a message.

Both may be built from data: a whole reference to a string, or a template. The kind a
template builds must still be an error kind; what can be told before the run (the literal
text around its references) is checked, the rest when it is built.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated, Final, Literal

from pydantic import Field, StringConstraints

from taskrunner.engine.diagnostics import Diagnostic
from taskrunner.engine.model import ERROR_CODE_PATTERN
from taskrunner.engine.refs import (
    Expression,
    Reference,
    ReferenceSyntaxError,
    Template,
    TemplateSyntaxError,
    parse_value,
)
from taskrunner.engine.states.base import Arrival, CallsNothing, Run, Scope, State
from taskrunner.engine.steps import Fail, StepError
from taskrunner.engine.values import STRING
from taskrunner.tools import ToolRegistry

INVALID_ERROR_KIND: Final = "InvalidErrorKind"
"""The kind a task fails with when a fail state builds an error kind that is not one."""
_KIND_TEXT: Final = re.compile(r"^[A-Za-z0-9_.]*$")

FailError = Annotated[
    str,
    StringConstraints(
        pattern=r"^([A-Za-z][A-Za-z0-9_.]{0,127}|\$(input|states|error)(\.[A-Za-z0-9_-]+)*"
        r"|.*\{\s*\$.*)$"
    ),
]


class FailState(State):
    """End the task with an error."""

    type: Literal["fail"]
    error: FailError = Field(
        description="The error kind the task fails with: a name such as `NotFound`, a "
        "reference to a string, or a template such as `Http{$states.get.status}`."
    )
    message: str = Field(
        default="",
        description="A message for people: text, a reference to a string, or a template.",
    )

    terminal = True

    def raises(self, scope: Scope) -> frozenset[str] | None:
        built = self.error.startswith("$") or "{" in self.error  # known only at run time
        return None if built else frozenset({self.error})

    def check(self, scope: Scope) -> Iterator[Diagnostic]:
        path = scope.here + "/error"
        _ = yield from scope.value(self.error, path, STRING, "`error`")
        try:
            error = parse_value(self.error)
        except (ReferenceSyntaxError, TemplateSyntaxError):
            error = None  # reported by the check above
        if isinstance(error, Template) and not _can_be_a_kind(error):
            yield Diagnostic(
                "fail.error-kind",
                f"the template {self.error!r} cannot build an error kind, which is a letter "
                "then letters, digits, `_` or `.`",
                path,
                "keep spaces and punctuation for `message`",
            )
        _ = yield from scope.value(self.message, scope.here + "/message", STRING, "`message`")

    def compile(self, name: str, tools: ToolRegistry) -> FailPlan:
        return FailPlan(name, parse_value(self.error), parse_value(self.message))


@dataclass(frozen=True, slots=True)
class FailPlan(CallsNothing):
    name: str
    error: Expression
    message: Expression

    def enter(self, run: Run) -> Arrival:
        kind, message = run.resolve(self.error), run.resolve(self.message)
        if not isinstance(kind, str) or not re.match(ERROR_CODE_PATTERN, kind):
            problem = f"the fail state built the error kind {kind!r}, which is not one"
            return Fail(self.name, StepError(INVALID_ERROR_KIND, f"{problem}: {message}"))
        return Fail(self.name, StepError(kind, str(message)))


def _can_be_a_kind(template: Template) -> bool:
    """Whether some values of its references make an error kind of the template."""
    text = [part for part in template.parts if not isinstance(part, Reference)]
    if not all(_KIND_TEXT.match(part) for part in text):
        return False
    first = template.parts[0]
    return not isinstance(first, str) or first[:1].isalpha()

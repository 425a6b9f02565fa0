"""The `wait` state: wait a number of seconds, or until a time, then go to `next`.

The wait is durable: it is two steps of the state (see `timers`), the first fixing the wake
time, the second made once it has come. Whoever drives the run carries the wait out: the
in-memory runner sleeps; the service hands a queued task back to the queue until then.
A wait state has no output.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Annotated, Final, Literal

from pydantic import Field, JsonValue

from taskrunner.engine.diagnostics import Diagnostic, pointer
from taskrunner.engine.model import StateName
from taskrunner.engine.refs import Constant, Expression, parse_value
from taskrunner.engine.states.base import Again, Arrival, Goto, Outcome, Run, Scope, State
from taskrunner.engine.steps import CallTool, Fail, Step, StepError
from taskrunner.engine.timers import INVALID_WAIT, MAX_WAIT_SECONDS, WAIT_TOOL, parse_timestamp
from taskrunner.engine.types import of_schema
from taskrunner.tools import ToolRegistry

NUMBER: Final = of_schema({"type": "number"})
TEXT: Final = of_schema({"type": "string"})
TIMESTAMP_FORM: Final = "an RFC 3339 timestamp with an offset, such as 2026-01-31T09:00:00Z"

Seconds = (
    Annotated[int, Field(ge=0, le=MAX_WAIT_SECONDS)]
    | Annotated[float, Field(ge=0, le=MAX_WAIT_SECONDS)]
    | str
)


class WaitState(State):
    """Wait `seconds`, or until the time `until`, then go to `next`."""

    type: Literal["wait"]
    seconds: Seconds | None = Field(
        default=None,
        description=(
            f"How long to wait: a number of seconds from 0 to {MAX_WAIT_SECONDS:,} (365 days), "
            "or a reference to one. Give `seconds` or `until`, not both."
        ),
    )
    until: str | None = Field(
        default=None,
        description=(
            f"When to wake: {TIMESTAMP_FORM}, or a reference to one. A time already past "
            "wakes at once. Give `seconds` or `until`, not both."
        ),
    )
    next: StateName = Field(description="The state to go to once the wait is over.")

    TRANSITIONS = ("next",)

    def check(self, scope: Scope) -> Iterator[Diagnostic]:
        written = {key for key in ("seconds", "until") if getattr(self, key) is not None}
        return self._check(scope, written)

    @classmethod
    def check_broken(cls, raw: Mapping[str, object], scope: Scope) -> Iterator[Diagnostic]:
        # A `seconds` the shape pass refused is still there: no "neither" on top of it.
        state = cls.salvage(raw)
        written = {key for key in ("seconds", "until") if raw.get(key) is not None}
        return state._check(scope, written) if state is not None else iter(())

    def _check(self, scope: Scope, written: set[str]) -> Iterator[Diagnostic]:
        if written == {"seconds", "until"}:
            yield Diagnostic(
                "wait.duration",
                "a wait state takes `seconds` or `until`, not both",
                scope.here + pointer("until"),
                "keep the one that says when the wait ends",
            )
        elif not written:
            yield Diagnostic(
                "wait.duration",
                "a wait state needs `seconds` or `until`",
                scope.here,
                "add `seconds: 10` to wait ten seconds, or `until: $input.when` to wait "
                "until a time taken from the data",
            )
        if self.seconds is not None:
            path = scope.here + pointer("seconds")
            _ = yield from scope.value(self.seconds, path, NUMBER, "a wait's `seconds`")
        if self.until is not None:
            path = scope.here + pointer("until")
            found = yield from scope.value(self.until, path, TEXT, "a wait's `until`")
            literal = _literal(self.until)
            if found is not None and literal is not None and parse_timestamp(literal) is None:
                yield Diagnostic(
                    "wait.timestamp",
                    f"`until` is {literal!r}, which is not {TIMESTAMP_FORM}",
                    path,
                    "write the date, `T`, the time and the offset (`Z` for UTC, or +HH:MM)",
                )

    def compile(self, name: str, tools: ToolRegistry) -> WaitPlan:
        seconds = None if self.seconds is None else parse_value(self.seconds)
        until = None if self.until is None else parse_value(self.until)
        return WaitPlan(name, seconds, until, self.next)


def _literal(value: str) -> str | None:
    """The text of a literal `until` (`$$` unescaped), or None for a reference."""
    try:
        expression = parse_value(value)
    except ValueError:
        return None
    if isinstance(expression, Constant) and isinstance(expression.value, str):
        return expression.value
    return None


@dataclass(frozen=True, slots=True)
class WaitPlan:
    name: str
    seconds: Expression | None
    until: Expression | None
    next: str

    def enter(self, run: Run) -> Arrival:
        if run.attempt > 1:
            return self._wake(run)
        if self.seconds is not None:
            seconds = run.resolve(self.seconds)
            if isinstance(seconds, bool) or not isinstance(seconds, int | float):
                return self._invalid(f"`seconds` is {seconds!r}, not a number")
            if not 0 <= seconds <= MAX_WAIT_SECONDS:
                return self._invalid(
                    f"`seconds` is {seconds!r}, outside 0 to {MAX_WAIT_SECONDS:,} (365 days)"
                )
            arguments: dict[str, JsonValue] = {"seconds": seconds}
        else:
            # The checker lets no wait state through without `seconds` or `until`.
            until = run.resolve(self.until or Constant(None))
            if not isinstance(until, str) or parse_timestamp(until) is None:
                return self._invalid(f"`until` is {until!r}, which is not {TIMESTAMP_FORM}")
            arguments = {"until": until}
        return CallTool(run.next_seq, self.name, WAIT_TOOL, 1, arguments)

    def _wake(self, run: Run) -> Arrival:
        """The second step: made once the time the first one fixed has come."""
        begun = run.outputs.get(self.name)
        until = begun.get("until") if isinstance(begun, dict) else None
        wake = parse_timestamp(until) if isinstance(until, str) else None
        if wake is None:
            return self._invalid(f"the wait's first step recorded no wake time: {begun!r}")
        return CallTool(
            run.next_seq, self.name, WAIT_TOOL, run.attempt, {"until": until}, not_before=wake
        )

    def _invalid(self, message: str) -> Fail:
        return Fail(self.name, StepError(INVALID_WAIT, message))

    def on_step(self, run: Run, step: Step) -> Outcome:
        if step.status != "succeeded":
            return Fail(self.name, step.error or StepError(INVALID_WAIT, "the wait failed"))
        if step.attempt == 1:
            return Again(2, 0.0)
        return Goto(self.next)

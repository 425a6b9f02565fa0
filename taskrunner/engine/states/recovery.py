"""Retry and catch: what a state that makes a call does when the call fails.

Task states and fan-out states (`parallel`, `map`) share it, so a failed branch is retried
and caught exactly as a failed tool call is: the same backoff, the same `non_retryable`,
the same `$error` handed to the handler.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from pydantic import Field

from taskrunner.engine.diagnostics import Diagnostic, pointer
from taskrunner.engine.errorkinds import UNCATCHABLE_KINDS, RaisableKinds, check_kinds
from taskrunner.engine.model import ErrorCode, ErrorKind, Node, StateName
from taskrunner.engine.states.base import Again, Goto, Outcome
from taskrunner.engine.steps import TASK_TIMEOUT, Fail, Step, StepError
from taskrunner.tools import JsonObject


class Retry(Node):
    """Run a failed state again, after a deterministic, growing delay."""

    max_attempts: int = Field(ge=1, le=100, description="Attempts in all, the first included.")
    interval_seconds: float = Field(
        default=1.0, ge=0, le=86_400, description="Delay before the second attempt."
    )
    backoff_rate: float = Field(
        default=2.0, ge=1, le=100, description="Each further delay is the previous one times this."
    )
    max_interval_seconds: float = Field(
        default=3_600.0, ge=0, le=86_400, description="No delay is longer than this."
    )
    errors: list[ErrorKind] = Field(
        default=["*"], min_length=1, description="Error kinds to retry; `*` matches every kind."
    )
    non_retryable: list[ErrorCode] = Field(
        default_factory=list,
        description="Error kinds never retried, even when `errors` matches them: they go "
        "straight to `catch`.",
    )

    def retries(self, kind: str) -> bool:
        """Whether an error of this kind is retried (attempts left aside)."""
        return kind not in self.non_retryable and caught_by(self.errors, kind)

    def delay_before(self, attempt: int) -> float:
        """Seconds to wait before attempt number `attempt` (2 or more)."""
        delay = self.interval_seconds * self.backoff_rate ** (attempt - 2)
        return min(delay, self.max_interval_seconds)


class Catch(Node):
    """Go to another state when the state fails with one of these error kinds."""

    errors: list[ErrorKind] = Field(min_length=1, description="`*` matches every kind.")
    next: StateName = Field(description="The state to go to.")


def after_failure(name: str, step: Step, retry: Retry | None, catch: Sequence[Catch]) -> Outcome:
    """Where a failed step of state `name` leads: another attempt, a handler (which sees
    the error as `$error`), or the end of the task."""
    error = step.error or StepError("Unknown", "the step failed without an error")
    if error.kind in UNCATCHABLE_KINDS and error.kind != TASK_TIMEOUT:
        # A fan-out's child that ended so (a reference that found no data) ends the task.
        # The task's own deadline is its journal's to enforce, after the step is recorded.
        return Fail(name, error)
    if retry and step.attempt < retry.max_attempts and retry.retries(error.kind):
        return Again(step.attempt + 1, retry.delay_before(step.attempt + 1))
    for handler in catch:
        if caught_by(handler.errors, error.kind):
            caught: JsonObject = {"kind": error.kind, "message": error.message, "state": name}
            return Goto(handler.next, caught=caught)
    return Fail(name, error)


def check_handlers(
    here: str, retry: Retry | None, catch: Sequence[Catch], raisable: RaisableKinds | None
) -> Iterator[Diagnostic]:
    """The kinds that the state's `retry` and `catch` name, against those it can raise."""
    if retry is not None:
        yield from check_kinds(retry.errors, here + "/retry/errors", raisable)
        yield from check_kinds(retry.non_retryable, here + "/retry/non_retryable", raisable)
    for index, handler in enumerate(catch):
        yield from check_kinds(handler.errors, here + pointer("catch", index, "errors"), raisable)


def caught_by(kinds: Sequence[str], kind: str) -> bool:
    return "*" in kinds or kind in kinds

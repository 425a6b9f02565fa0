"""Error kinds: which a task state can fail with, and which no `retry` or `catch` can see.

A task state fails with a kind: one its tool declares (`@tool(errors=...)`), or one of the
kinds every tool call may fail with (`SYSTEM_KINDS`; `Timeout` only where the state sets
`timeout_seconds`). Some kinds end the task whatever its states say (`UNCATCHABLE_KINDS`):
naming one in `retry` or `catch` is an error, and naming a kind that the state's tool
cannot raise is a warning, since the handler would never run.

`check_kinds` is the one check of a list of kinds; every list of kinds a flow may write
(`retry.errors`, `catch[].errors`, and any other) goes through it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Final

from taskrunner.engine.diagnostics import Diagnostic, closest, listing, pointer
from taskrunner.engine.sizes import OUTPUT_TOO_LARGE
from taskrunner.engine.steps import TASK_TIMEOUT
from taskrunner.tools import GENERIC_ERROR, INVALID_INPUT, INVALID_OUTPUT, TIMEOUT

EVERY_KIND: Final = "*"

UNRESOLVED_REFERENCE: Final = "UnresolvedReference"
"""A reference had no value at run time: the flow is wrong, no handler can fix it."""
STEP_LIMIT_EXCEEDED: Final = "StepLimitExceeded"
"""The task recorded `interpreter.MAX_STEPS` steps."""
TOO_MANY_ITEMS: Final = "TooManyItems"
"""A map state was given more than `states.map.MAX_ITEMS` items."""
INVALID_ITEMS: Final = "InvalidItems"
"""A map state's `items` was not an array when it ran (only an untyped value can be)."""
INVALID_BRANCH_INPUT: Final = "InvalidBranchInput"
"""A parallel state's `input` was not an object when it ran (only an untyped value can be)."""

UNCATCHABLE_KINDS: Final = frozenset(
    {
        UNRESOLVED_REFERENCE,
        STEP_LIMIT_EXCEEDED,
        TASK_TIMEOUT,
        TOO_MANY_ITEMS,
        INVALID_ITEMS,
        INVALID_BRANCH_INPUT,
    }
)
"""Kinds that end a task regardless of `retry` and `catch` (`*` does not match them)."""

CALL_KINDS: Final = (INVALID_INPUT, INVALID_OUTPUT, OUTPUT_TOO_LARGE, GENERIC_ERROR)
"""Kinds that any tool call may fail with, declared or not."""

SYSTEM_KINDS: Final = (*CALL_KINDS, TIMEOUT)
"""`CALL_KINDS`, and `Timeout`: a call that outlives its state's `timeout_seconds`."""


@dataclass(frozen=True)
class RaisableKinds:
    """The kinds one task state can fail with: its tool's declared kinds and the system's."""

    tool: str
    declared: tuple[str, ...]
    system: tuple[str, ...]
    owner: str = ""
    """Who fails, for messages, when not a tool (`the parallel state `both``)."""

    @classmethod
    def of(cls, tool: str, declared: Iterable[str], *, timeout: bool) -> RaisableKinds:
        """For a state calling `tool`; `timeout`: the state sets `timeout_seconds`."""
        system = SYSTEM_KINDS if timeout else CALL_KINDS
        return cls(tool, tuple(kind for kind in declared if kind not in system), system)

    def __contains__(self, kind: object) -> bool:
        return kind in self.declared or kind in self.system

    def names(self) -> list[str]:
        return [*self.declared, *self.system]


def check_kinds(
    kinds: Sequence[str], path: str, raisable: RaisableKinds | None
) -> Iterator[Diagnostic]:
    """Each entry of the list of kinds at `path` that no handler can ever see: an error
    (`error.uncatchable`) for an uncatchable kind, a warning (`error.unknown-kind`) for a
    kind that is not in `raisable` (None: not known, as for an unknown tool)."""
    for index, kind in enumerate(kinds):
        where = path + pointer(index)
        if kind in UNCATCHABLE_KINDS:
            yield Diagnostic(
                "error.uncatchable",
                f"`{kind}` cannot be retried or caught: it ends the task whatever the flow says",
                where,
                f"remove it; the uncatchable kinds are {listing(sorted(UNCATCHABLE_KINDS))}",
            )
        elif raisable is not None and kind != EVERY_KIND and kind not in raisable:
            yield _unknown(kind, where, raisable)


def _unknown(kind: str, path: str, raisable: RaisableKinds) -> Diagnostic:
    if kind == TIMEOUT:
        return Diagnostic(
            "error.unknown-kind",
            f"`{TIMEOUT}` happens only in a state with `timeout_seconds`, and this one has none",
            path,
            "set `timeout_seconds` on the state, or remove `Timeout`",
            severity="warning",
        )
    meant = closest(kind, raisable.names())
    hint = f"did you mean `{meant}`?" if meant else None
    owner = raisable.owner or f"the tool `{raisable.tool}`"
    return Diagnostic(
        "error.unknown-kind",
        f"{owner} never fails with `{kind}`, so this never matches",
        path,
        hint or f"it can fail with: {listing(raisable.names())}",
        severity="warning",
    )

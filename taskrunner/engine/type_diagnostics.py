"""The diagnostics of types: a value that does not fit where it goes (`type.mismatch`),
and a reference through a value that may be null (`ref.nullable`). Their messages say
where inside the value the problem is; their hints, what would fix it."""

from __future__ import annotations

from taskrunner.engine import types
from taskrunner.engine.diagnostics import Diagnostic
from taskrunner.engine.refs import Reference
from taskrunner.engine.types import ValueType


def nullable_diagnostic(ref: Reference, through: str, found: ValueType, path: str) -> Diagnostic:
    """`ref` walks through `through`, of type `found`, which may be null: unguarded."""
    return Diagnostic(
        "ref.nullable",
        f"`{ref.text}` walks through `{through}`, which may be null ({found.describe()})",
        path,
        f"guard it with a choice rule `when: {{value: {through}, ne: null}}` before this "
        f'state, or give a default: `{ref.text} ?? "..."`',
    )


def mismatch_diagnostic(
    where: str,
    target: ValueType,
    subject: str,
    problem: types.Mismatch,
    path: str,
    ref: Reference | None,
    found: ValueType,
) -> Diagnostic:
    """`subject` (of type `found`; `ref` if it is a reference) does not fit `target`,
    described as `where`: the message says where inside the value, the hint what to
    declare or guard."""
    part = problem.subject(subject)
    if problem.inside:
        message = f"{part} {problem.problem}, but {where} takes {target.describe()}"
    else:
        message = f"{where} takes {target.describe()}, but {part} {problem.problem}"
    hint = None
    if problem.needs is not None:
        if ref is not None and ref.root == "input":
            hint = f"declare `{problem.needs}` on {part}"
        else:
            hint = f"{part} is not declared with `{problem.needs}`"
    elif ref is not None and found.nullable and types.accepts(target, types.non_null(found)):
        hint = (
            f"guard it with a choice rule `ne: null` on `{ref.target}`, or give a default: "
            f"`{ref.target} ?? ...`"
        )
    return Diagnostic("type.mismatch", message, path, hint)

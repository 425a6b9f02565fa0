"""An option that takes one value is given once: `run-flow --flow a --flow b` is a usage
error, not a run of `b`. click keeps the last value without a word, so a command line
edited by appending (`!! --status failed`) would silently answer another question. Flow
inputs given as options are checked the same way by `inputs.py`.

Flags (`--follow`, `--wait/--no-wait`) and options that take several values are left as
click has them: given twice, a flag still means one thing.
"""

from __future__ import annotations

# Typer carries its own copy of click, whose classes its commands and parameters are.
from typer._click import Command, Context
from typer._click.exceptions import UsageError
from typer.core import TyperGroup, TyperOption


class OneValueOnceGroup(TyperGroup):
    """A command group that refuses, before its command runs, an option of that command
    given more than once."""

    def resolve_command(
        self, ctx: Context, args: list[str]
    ) -> tuple[str | None, Command | None, list[str]]:
        name, command, rest = super().resolve_command(ctx, args)
        if (
            command is not None
            and not isinstance(command, TyperGroup)
            and not ctx.resilient_parsing
        ):
            refuse_repeated_options(ctx, name, command, rest)
        return name, command, rest


def refuse_repeated_options(
    parent: Context, name: str | None, command: Command, args: list[str]
) -> None:
    """Raise a usage error naming the first option of `command` that takes one value and
    is given twice in `args`. Arguments click cannot parse are left for the command's
    own parse to report."""
    ctx = command.context_class(command, info_name=name, parent=parent, **command.context_settings)
    try:
        _, _, order = command.make_parser(ctx).parse_args(args=list(args))
    except UsageError:
        return
    seen: set[str | None] = set()
    for param in order:
        if not isinstance(param, TyperOption) or param.is_flag or param.multiple or param.count:
            continue
        if param.name in seen:
            spelling = max(param.opts, key=len)
            raise UsageError(f"{spelling} is given twice: give it once", ctx=ctx)
        seen.add(param.name)

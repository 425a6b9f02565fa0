"""How a command's help names its arguments: `FILE...` and `ID`, as Unix manuals and click
write them, rather than Typer's `{files}...` with a type such as `<list[str]>` after it.

A command with positional arguments is declared with `cls=PlainCommand`; options need
nothing of this, their `metavar` is shown as given.
"""

from __future__ import annotations

# Typer carries its own copy of click, whose classes its commands and parameters are.
from typer._click import Context, HelpFormatter, Parameter
from typer.core import TyperArgument, TyperCommand


class PlainCommand(TyperCommand):
    """A command whose usage line and Arguments section show each argument's metavar
    alone: `[OPTIONS] FILE...` and `FILE...  Flow files to check.  [required]`."""

    def collect_usage_pieces(self, ctx: Context) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.get_params(ctx):
            if isinstance(param, TyperArgument):
                name = argument_name(param)
                pieces.append(name if param.required else f"[{name}]")
            else:
                pieces.extend(param.get_usage_pieces(ctx))
        return pieces

    def format_options(self, ctx: Context, formatter: HelpFormatter) -> None:
        arguments: list[tuple[str, str]] = []
        options: list[tuple[str, str]] = []
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is None:
                continue
            if isinstance(param, TyperArgument):
                arguments.append((argument_name(param), record[1]))
            else:
                options.append(record)
        if arguments:
            with formatter.section("Arguments"):
                formatter.write_dl(arguments)
        if options:
            with formatter.section("Options"):
                formatter.write_dl(options)


def argument_name(argument: Parameter) -> str:
    """`FILE...` for a metavar FILE that takes several values, the metavar otherwise (the
    upper-cased name when there is none)."""
    name = argument.metavar or (argument.name or "").upper()
    return f"{name}..." if argument.nargs != 1 else name

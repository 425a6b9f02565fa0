"""The `taskrunner` command line.

Thin: it parses arguments, calls the library, prints, and chooses the exit status. Commands
import what they need when they run, so that `taskrunner --help` and `validate-flow` start
fast. Exit status: 0 success, 1 an invalid flow (or a failed task), 2 a usage error.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from taskrunner.errors import TaskrunnerError

EXIT_OK = 0
EXIT_INVALID = 1
EXIT_USAGE = 2

app = typer.Typer(
    name="taskrunner",
    help="A deterministic task runner: YAML state charts calling typed tools.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


@app.command("validate-flow")
def validate_flow(
    files: Annotated[list[str], typer.Argument(help="Flow files to check.", show_default=False)],
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the problems as a JSON list.")
    ] = False,
) -> None:
    """Check flow files and print every problem as FILE:LINE:COL: CODE message.

    Exit status: 0 when every file is valid, 1 when a flow is invalid, 2 when a path is not
    a readable file.
    """
    from taskrunner.engine.validate import FlowChecker
    from taskrunner.flowfile import UnreadableFlowFileError, check_file
    from taskrunner.tools import load_registry

    checker = FlowChecker(load_registry())
    problems = []
    status = EXIT_OK
    unreadable = 0
    for path in files:
        try:
            report = check_file(Path(path), checker)
        except UnreadableFlowFileError as exc:
            typer.echo(f"error: {exc.message}", err=True)
            status = EXIT_USAGE
            unreadable += 1
            continue
        problems.extend(report.problems)
        if report.problems and status == EXIT_OK:
            status = EXIT_INVALID
    if as_json:
        typer.echo(json.dumps([item.as_json() for item in problems], indent=2))
    else:
        for item in problems:
            typer.echo(str(item))
        invalid = len({item.file for item in problems})
        checked = len(files) - unreadable
        summary = f"{checked} file(s) checked: "
        summary += f"{len(problems)} problem(s) in {invalid} file(s)" if problems else "all valid"
        if unreadable:
            summary += f"; {unreadable} path(s) could not be read"
        typer.echo(summary, err=True)
    raise typer.Exit(status)


@app.command("schema")
def schema() -> None:
    """Print the JSON Schema of flow documents, with every registered tool."""
    from taskrunner.engine.schema import flow_schema_text
    from taskrunner.tools import load_registry

    sys.stdout.write(flow_schema_text(load_registry()))


def main() -> None:
    """Entry point: taskrunner's own errors become one line on stderr, never a traceback."""
    try:
        app()
    except TaskrunnerError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        sys.exit(EXIT_USAGE)
    except Exception as exc:
        if os.environ.get("TASKRUNNER_DEBUG"):
            raise
        typer.echo(f"internal error: {type(exc).__name__}: {exc}", err=True)
        typer.echo("set TASKRUNNER_DEBUG=1 to see the traceback", err=True)
        sys.exit(70)

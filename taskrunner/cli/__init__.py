"""The `taskrunner` command line.

Thin: it parses arguments, calls the library, prints, and chooses the exit status. Commands
import what they need when they run, so that `taskrunner --help` and `validate-flow` start
fast without loading the database or web layers.

Exit status: 0 success; 1 an invalid flow, a failed or cancelled task, an unknown task,
flow or tool asked for by name (`get-task`, `show-flow`, `show-tool`), an unreachable
database; 2 a usage error (bad options, a refused input, a path that cannot be read, an
unknown flow to run); 75 a task that has not finished yet; 130 interrupted; 70 a fault of
taskrunner's. Each error's class says which (`errors.py`).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from taskrunner.cli.helptext import PlainCommand
from taskrunner.cli.keys import api_key_app
from taskrunner.cli.repeats import OneValueOnceGroup
from taskrunner.errors import EXIT_FAILED, EXIT_INTERNAL, EXIT_USAGE, TaskrunnerError
from taskrunner.logs import configure_logging, reset_logging
from taskrunner.settings import LogSettings, Settings

if TYPE_CHECKING:
    from taskrunner.catalog import FlowCatalog
    from taskrunner.runtime import Runtime

EXIT_OK = 0

# Help and errors are plain text: with no markup mode and no pretty exceptions, Typer never
# imports rich, which is neither wanted nor worth its import time.
# `-h` is `--help` everywhere: subcommands inherit the option names from this context.
app = typer.Typer(
    name="taskrunner",
    cls=OneValueOnceGroup,
    help="A deterministic task runner: YAML state charts calling typed tools.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(api_key_app)

SHELLS = ("bash", "zsh", "fish")
"""The shells `taskrunner completion` writes a script for."""


def _print_version(asked: bool) -> None:
    if asked:
        from importlib.metadata import version

        typer.echo(f"taskrunner {version('taskrunner')}")
        raise typer.Exit(EXIT_OK)


@app.callback()
def _options(
    show_version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_print_version,
            is_eager=True,
            help="Print taskrunner's version and exit.",
        ),
    ] = False,
) -> None:
    """A deterministic task runner: YAML state charts calling typed tools."""


@app.command("validate-flow", cls=PlainCommand)
def validate_flow(
    files: Annotated[
        list[str],
        typer.Argument(metavar="FILE", help="Flow files to check.", show_default=False),
    ],
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the problems as a JSON list.")
    ] = False,
) -> None:
    """Check flow files and print every problem as FILE:LINE:COL: CODE message (the first
    100 of a file, then how many more there are); a warning reads FILE:LINE:COL: warning
    CODE message. A flow may call the flows of the other files given, and those of the
    flows directory (TASKRUNNER_FLOWS_DIR), which a file given replaces by name.

    Exit status: 0 when every file is valid (warnings allowed), 1 when a flow is invalid,
    2 when a path is not a readable file.
    """
    from taskrunner.errors import UnreadableFlowFileError
    from taskrunner.flowfile import read_flow_file
    from taskrunner.linking import Source, link

    catalog = _flows_beside()
    sources = []
    problems = []
    status = EXIT_OK
    unreadable = omitted = 0
    invalid: set[str] = set()
    for path in files:
        try:
            sources.append(Source(path, read_flow_file(Path(path))))
        except UnreadableFlowFileError as exc:
            typer.echo(f"error: {exc.message}", err=True)
            status = EXIT_USAGE
            unreadable += 1
    linkage = link(sources, catalog.checker, catalog.pinned())
    for linked in linkage.linked:
        report = linked.report
        problems.extend(report.problems)
        marker = report.omitted_marker()
        if marker is not None:  # a report lists the first problems and counts the rest
            problems.append(marker)
            omitted += report.omitted
        if linked.flow is None:
            invalid.add(report.file)
            if status == EXIT_OK:
                status = EXIT_FAILED
    if as_json:
        typer.echo(json.dumps([item.as_json() for item in problems], indent=2))
    else:
        for item in problems:
            typer.echo(f"{item.file}: {item.message}" if item.code == "report.omitted" else item)
        warned = sum(item.severity == "warning" for item in problems)
        listed = len(problems) - sum(item.code == "report.omitted" for item in problems)
        count = listed - warned + omitted
        summary = f"{len(files) - unreadable} file(s) checked: "
        summary += f"{count} problem(s) in {len(invalid)} file(s)" if invalid else "all valid"
        if warned:
            summary += f"; {warned} warning(s)"
        if unreadable:
            summary += f"; {unreadable} path(s) could not be read"
        typer.echo(summary, err=True)
    raise typer.Exit(status)


def _flows_beside() -> FlowCatalog:
    """The flows of the flows directory, which the files checked may call; none when it
    cannot be read (the files are checked all the same)."""
    from taskrunner.catalog import FlowCatalog
    from taskrunner.engine.validate import FlowChecker
    from taskrunner.errors import TaskrunnerError
    from taskrunner.tools import load_registry

    checker = FlowChecker(load_registry())
    try:
        return FlowCatalog.load(Settings.from_env().flows_dir, checker)
    except TaskrunnerError:
        return FlowCatalog.of([], checker)


@app.command("schema")
def schema() -> None:
    """Print the JSON Schema of flow documents, with every registered tool."""
    from taskrunner.engine.schema import flow_schema_text
    from taskrunner.tools import load_registry

    sys.stdout.write(flow_schema_text(load_registry()))


def _open_runtime(
    settings: Settings,
    catalog: FlowCatalog | None = None,
    *,
    tasks_only: bool = False,
    quiet: bool = False,
) -> Runtime:
    """The runtime of a command. `tasks_only`, for the commands that only read or cancel
    tasks: no flow is loaded at all (no flow file can stop them), and the database must
    exist already (a mistyped SQLite path is not taken for an empty database)."""
    from taskrunner.runtime import open_runtime

    if tasks_only:
        from taskrunner.catalog import FlowCatalog
        from taskrunner.engine.validate import FlowChecker
        from taskrunner.tools import load_registry

        catalog = FlowCatalog.of([], FlowChecker(load_registry()))
    return open_runtime(
        settings,
        catalog=catalog,
        announce=None if quiet else lambda line: typer.echo(line, err=True),
        warn=_warn,
        existing=tasks_only,
    )


def _warn(line: str) -> None:
    typer.echo(f"warning: {line}", err=True)


def main() -> None:
    """Entry point: taskrunner's own errors become a message on stderr and the exit status
    their class says, never a traceback."""
    try:
        configure_logging(LogSettings.from_env(), default_level="WARNING")
        # Named, not read off argv[0], so that shell completion answers to
        # _TASKRUNNER_COMPLETE however taskrunner was started (`python -m`, a venv's path).
        app(prog_name="taskrunner", standalone_mode=True)
    except TaskrunnerError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        sys.exit(exc.exit_status)
    except Exception as exc:  # the last line of defence: never a traceback
        if os.environ.get("TASKRUNNER_DEBUG"):
            raise
        typer.echo(f"internal error: {type(exc).__name__}: {exc}", err=True)
        typer.echo("set TASKRUNNER_DEBUG=1 to see the traceback", err=True)
        sys.exit(EXIT_INTERNAL)
    finally:
        reset_logging()  # a command run in-process leaves its caller's logging as it was


# The other commands register themselves on `app` as they are imported: here, once the
# helpers they use exist, and in this order, which is `taskrunner --help`'s.
from taskrunner.cli import discover  # noqa: E402, F401

# isort: split
from taskrunner.cli import tasks  # noqa: E402, F401

# isort: split
from taskrunner.cli import processes  # noqa: E402, F401

# isort: split
from taskrunner.cli import graph  # noqa: E402, F401


@app.command("completion", cls=PlainCommand)
def completion(
    shell: Annotated[
        str,
        typer.Argument(metavar="SHELL", help="bash, zsh or fish.", show_default=False),
    ],
) -> None:
    """Print the script that completes taskrunner's commands and options in a shell:
    `eval "$(taskrunner completion bash)"` in ~/.bashrc; for zsh, the same with zsh; for
    fish, `taskrunner completion fish | source` in config.fish. (`--install-completion`
    installs it for the shell taskrunner runs in.) Exit status 2 for another shell."""
    from typer._completion_shared import get_completion_script

    if shell not in SHELLS:
        typer.echo(f"error: no completion for {shell!r}; shells: {', '.join(SHELLS)}", err=True)
        raise typer.Exit(EXIT_USAGE)
    script = get_completion_script(
        prog_name="taskrunner", complete_var="_TASKRUNNER_COMPLETE", shell=shell
    )
    typer.echo(script)

"""`taskrunner graph`: the state chart of a flow, or the path a task took through it, as
Mermaid or Graphviz DOT text on standard output.

Registered on the one `app` of `taskrunner.cli`; it imports what it needs when it runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Final, Literal

import typer

from taskrunner.cli import _flows_beside, _open_runtime, app
from taskrunner.cli.helptext import PlainCommand
from taskrunner.errors import EXIT_FAILED, EXIT_USAGE
from taskrunner.settings import Settings

if TYPE_CHECKING:
    from taskrunner.diagrams import DiagramFormat
    from taskrunner.engine.flow import Flow

FORMATS: Final = ("mermaid", "dot")
"""`diagrams.DIAGRAM_FORMATS`, spelt here so that the help does not import the engine."""
FILE_SUFFIXES: Final = (".yaml", ".yml")


@app.command("graph", cls=PlainCommand)
def graph(
    flow_or_file: Annotated[
        str,
        typer.Argument(
            metavar="FLOW_OR_FILE",
            help="A flow's name, from the flows directory, or a flow file.",
            show_default=False,
        ),
    ],
    diagram_format: Annotated[
        Literal["mermaid", "dot"],
        typer.Option(
            "--format", help="mermaid (a flowchart, as GitHub renders it) or dot (Graphviz)."
        ),
    ] = "mermaid",
    task: Annotated[
        str | None,
        typer.Option(
            "--task",
            metavar="ID",
            help="Draw the path this task took: its states highlighted, each with its "
            "steps and status. The task must be one of this flow's.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Print the state chart of a flow: each state in a shape of its kind, each choice
    rule's condition on its edge, retries and catches as dashed edges.

    Exit status: 0 when drawn; 1 when the flow file is invalid (its problems are printed as
    validate-flow prints them) or the task is unknown; 2 when the flow is unknown, a path
    cannot be read, or the task is not one of this flow's.
    """
    chosen: DiagramFormat = "dot" if diagram_format == "dot" else "mermaid"
    if task is not None:
        # A task is drawn on the version it pinned: its flow's file may be gone since.
        name = _flow_of(flow_or_file).name if _is_file(flow_or_file) else flow_or_file
        typer.echo(_task_graph(name, task, chosen), nl=False)
        return
    from taskrunner.diagrams import draw

    typer.echo(draw(_flow_of(flow_or_file), chosen), nl=False)


def _is_file(flow_or_file: str) -> bool:
    return Path(flow_or_file).suffix in FILE_SUFFIXES or "/" in flow_or_file


def _flow_of(flow_or_file: str) -> Flow:
    """The flow named, from the flows directory, or that of the file given."""
    if _is_file(flow_or_file):
        return _flow_in_file(Path(flow_or_file))
    from taskrunner.catalog import load_catalog

    return load_catalog(Settings.from_env().flows_dir).get(flow_or_file).flow


def _flow_in_file(path: Path) -> Flow:
    """The flow of a file, checked as validate-flow checks it (it may call the flows of
    the flows directory); its problems are printed, and it exits 1, when it is invalid."""
    from taskrunner.errors import UnreadableFlowFileError
    from taskrunner.flowfile import read_flow_file
    from taskrunner.linking import Source, link

    try:
        raw = read_flow_file(path)
    except UnreadableFlowFileError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(EXIT_USAGE) from None
    catalog = _flows_beside()
    [linked] = link([Source(str(path), raw)], catalog.checker, catalog.pinned()).linked
    for item in linked.report.problems:  # errors and warnings, as validate-flow says them
        typer.echo(str(item), err=True)
    if linked.flow is None:
        typer.echo(f"{path}: the flow is invalid; nothing to draw", err=True)
        raise typer.Exit(EXIT_FAILED)
    return linked.flow


def _task_graph(flow_name: str, task: str, chosen: DiagramFormat) -> str:
    from taskrunner.cli.tasks import _task_id
    from taskrunner.graphs import task_graph

    parsed = _task_id(task)
    runtime = _open_runtime(Settings.from_env(), tasks_only=True)
    try:
        found = runtime.service.get_task(parsed)
        if found.flow != flow_name:
            typer.echo(
                f"error: task {parsed} is a task of the flow {found.flow!r}, not of "
                f"{flow_name!r}: run `taskrunner graph {found.flow} --task {parsed}`",
                err=True,
            )
            raise typer.Exit(EXIT_USAGE)
        return task_graph(runtime.service, parsed, chosen)
    finally:
        runtime.close()

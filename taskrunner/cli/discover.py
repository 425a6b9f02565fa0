"""What there is to run: `list-flows`, `show-flow`, `list-tools` and `show-tool`.

They read the flows directory and the tool registry, never the database. An unknown name
is an error with exit status 1, as an unknown task is for `get-task`, with the closest
known name when one is close enough. `--json` gives each the document the API gives, or,
for tools, which the API does not list, one in the same spirit.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer

from taskrunner.cli import _warn, app
from taskrunner.cli.helptext import PlainCommand
from taskrunner.cli.render import table
from taskrunner.errors import EXIT_FAILED
from taskrunner.settings import Settings

if TYPE_CHECKING:
    from pydantic import JsonValue

    from taskrunner.catalog import CatalogEntry, FlowCatalog
    from taskrunner.engine.flow import Flow
    from taskrunner.tools import Tool

SHORT_DIGEST = 19
"""How much of a version digest a table shows: `sha256:` and 12 hex digits."""
SUMMARY_CHARS = 72
"""How long a description may be in a table."""
WRAP_CHARS = 88
"""The width descriptions are wrapped to."""


@app.command("list-flows")
def list_flows(
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the flows as GET /flows lists them.")
    ] = False,
) -> None:
    """List the flows that tasks can be started from: name, version, how many states, and
    the first line of the description. A flow file that is not loaded is named on stderr
    (with --json: listed with `valid: false`, as GET /flows does)."""
    catalog = _catalog()
    if as_json:
        typer.echo(json.dumps(_listing(catalog), indent=2, ensure_ascii=False))
        return
    for skipped in catalog.skipped:
        _warn(skipped.warning())
    entries = list(catalog)
    if not entries:
        typer.echo("no flows")
        return
    rows = [("NAME", "VERSION", "STATES", "DESCRIPTION")]
    rows.extend(
        (
            entry.flow.name,
            entry.flow.digest[:SHORT_DIGEST],
            str(len(entry.flow.states)),
            _summary(entry.flow.description),
        )
        for entry in entries
    )
    typer.echo(table(rows))


@app.command("show-flow", cls=PlainCommand)
def show_flow(
    name: Annotated[str, typer.Argument(metavar="NAME", help="The flow.", show_default=False)],
    as_json: Annotated[
        bool,
        typer.Option("--json", help="Print the flow as GET /flows/NAME gives it."),
    ] = False,
) -> None:
    """Show a flow: its description, the fields of its input (each an option of
    `run-flow`), its states, its version digest and its file. Exit status 1 when there is
    no such flow, or its file is not loaded."""
    from taskrunner.errors import UnknownFlowError

    catalog = _catalog()
    try:
        entry = catalog.get(name)
    except UnknownFlowError:
        unknown_name("flow", name, catalog.names())
    if as_json:
        typer.echo(json.dumps(_flow_document(entry), indent=2, ensure_ascii=False))
        return
    typer.echo(_flow_text(entry))


@app.command("list-tools")
def list_tools(
    as_json: Annotated[bool, typer.Option("--json", help="Print the tools as JSON.")] = False,
) -> None:
    """List the tools that flows can call (built in, and those of installed plugins):
    name and the first line of the description."""
    from taskrunner.tools import load_registry

    registry = load_registry()
    if as_json:
        documents = [
            {"name": tool.name, "description": tool.description, "errors": list(tool.errors)}
            for tool in registry
        ]
        typer.echo(json.dumps(documents, indent=2, ensure_ascii=False))
        return
    rows = [("NAME", "DESCRIPTION")]
    rows.extend((tool.name, _summary(tool.description)) for tool in registry)
    typer.echo(table(rows))


@app.command("show-tool", cls=PlainCommand)
def show_tool(
    name: Annotated[str, typer.Argument(metavar="NAME", help="The tool.", show_default=False)],
    as_json: Annotated[
        bool,
        typer.Option("--json", help="Print the tool and its input and output JSON Schemas."),
    ] = False,
) -> None:
    """Show a tool's contract: its description, the JSON Schema of its input (what a task
    state's `args` must give) and of its output, and the error kinds it declares. Exit
    status 1 when there is no such tool."""
    from taskrunner.errors import UnknownToolError
    from taskrunner.tools import load_registry

    registry = load_registry()
    try:
        tool = registry.get(name)
    except UnknownToolError:
        unknown_name("tool", name, registry.names())
    document = _tool_document(tool)
    if as_json:
        typer.echo(json.dumps(document, indent=2, ensure_ascii=False))
        return
    errors = ", ".join(tool.errors) or "none declared (any tool may fail with the engine's kinds)"
    lines = [
        f"tool {tool.name}",
        _wrapped(tool.description),
        f"  errors  {errors}",
        "  input schema",
        _indented(json.dumps(document["input_schema"], indent=2, ensure_ascii=False), 4),
        "  output schema",
        _indented(json.dumps(document["output_schema"], indent=2, ensure_ascii=False), 4),
    ]
    typer.echo("\n".join(lines))


def _catalog() -> FlowCatalog:
    from taskrunner.catalog import load_catalog

    return load_catalog(Settings.from_env().flows_dir)


def unknown_name(kind: str, name: str, known: list[str], *, status: int = EXIT_FAILED) -> NoReturn:
    """Say that there is no `kind` named `name`, with the closest known name if one is
    close enough, and end with exit status `status`: 1 for the name a command shows, as
    for an unknown task; `run-flow` says 2, its flow being one of its options."""
    from taskrunner.engine.diagnostics import closest, listing
    from taskrunner.errors import clipped

    meant = closest(name, known)
    hint = f"; did you mean {meant!r}?" if meant else ""
    typer.echo(
        f"error: no {kind} named {clipped(name, 80)!r}{hint} ({kind}s: {listing(known) or 'none'})",
        err=True,
    )
    raise typer.Exit(status)


def _listing(catalog: FlowCatalog) -> list[dict[str, JsonValue]]:
    """GET /flows's document: the loaded flows by name, then the skipped files; each flow
    also with its number of states."""
    listing: list[dict[str, JsonValue]] = [
        {
            "valid": True,
            "name": entry.flow.name,
            "description": entry.flow.description,
            "version": entry.flow.digest,
            "file": entry.path.name,
            "states": len(entry.flow.states),
        }
        for entry in catalog
    ]
    listing.extend(
        {
            "valid": False,
            "file": skipped.path.name,
            "name": skipped.name,
            "error": skipped.reason,
            "problems": [problem.as_json() for problem in skipped.problems],
        }
        for skipped in catalog.skipped
    )
    return listing


def _flow_document(entry: CatalogEntry) -> dict[str, JsonValue]:
    """GET /flows/NAME's document."""
    flow = entry.flow
    definition: dict[str, JsonValue] = json.loads(flow.canonical)
    return {
        "valid": True,
        "name": flow.name,
        "description": flow.description,
        "version": flow.digest,
        "file": entry.path.name,
        "input_schema": entry.plan.input_model.model_json_schema(),
        "definition": definition,
    }


def _flow_text(entry: CatalogEntry) -> str:
    from taskrunner.engine.states.task import TaskState

    flow = entry.flow
    lines = [f"flow {flow.name}"]
    if flow.description:
        lines.append(_wrapped(flow.description))
    lines += [f"  version  {flow.digest}", f"  file     {entry.path}", "  input"]
    lines.extend(_input_lines(flow) or ["    none"])
    lines.append(f"  states   (start: {flow.start})")
    width = max(len(name) for name in flow.states)
    for name, state in flow.states.items():
        kind = f"task {state.tool}" if isinstance(state, TaskState) else state.type
        targets = list(dict.fromkeys(item.target for item in state.transitions()))
        goes = f"  -> {', '.join(targets)}" if targets else ""
        lines.append(f"    {name:<{width}}  {kind}{goes}")
    return "\n".join(lines)


def _input_lines(flow: Flow) -> list[str]:
    """One line per input field: its option, its type, whether it is needed (or its
    default), and its description."""
    from taskrunner.engine.literals import unescape_literal

    rows = []
    for name, spec in flow.input.items():
        if spec.has_default:
            need = f"default {json.dumps(unescape_literal(spec.default), ensure_ascii=False)}"
        else:
            need = "optional" if spec.optional else "required"
        rows.append((f"--{name}", spec.type, need, spec.description or ""))
    return [f"    {line}" for line in table(rows).splitlines()] if rows else []


def _tool_document(tool: Tool) -> dict[str, JsonValue]:
    return {
        "name": tool.name,
        "description": tool.description,
        "errors": list(tool.errors),
        "input_schema": tool.input_model.model_json_schema(),
        "output_schema": tool.output_model.model_json_schema(),
    }


def _summary(text: str | None) -> str:
    """The first sentence of a description's first line, for a table: YAML folds a long
    description into one line, which would be the whole of it."""
    from taskrunner.errors import clipped

    line = (text or "").strip().split("\n", 1)[0]
    sentence, stop, _ = line.partition(". ")
    return clipped(sentence + ("." if stop else ""), SUMMARY_CHARS)


def _wrapped(text: str) -> str:
    """A description, each paragraph wrapped and indented under its heading."""
    import textwrap

    paragraphs = [" ".join(part.split()) for part in text.strip().split("\n\n")]
    return "\n\n".join(
        textwrap.fill(part, WRAP_CHARS, initial_indent="  ", subsequent_indent="  ")
        for part in paragraphs
        if part
    )


def _indented(text: str, by: int = 2) -> str:
    return "\n".join(" " * by + line if line else line for line in text.splitlines())

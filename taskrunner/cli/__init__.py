"""The `taskrunner` command line.

Thin: it parses arguments, calls the library, prints, and chooses the exit status. Commands
import what they need when they run, so that `taskrunner --help` and `validate-flow` start
fast without loading the database or web layers.

Exit status: 0 success; 1 an invalid flow, a failed task, an unknown task, an unreachable
database; 2 a usage error (bad options, a refused input, a path that cannot be read); 75
a task that has not finished yet; 130 interrupted; 70 a fault of taskrunner's. Each
error's class says which (`errors.py`).
"""

from __future__ import annotations

import json
import os
import sys
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from taskrunner.cli.keys import api_key_app
from taskrunner.errors import (
    EXIT_FAILED,
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_UNFINISHED,
    EXIT_USAGE,
    TaskrunnerError,
)
from taskrunner.settings import Settings

if TYPE_CHECKING:
    import threading

    from taskrunner.catalog import FlowCatalog
    from taskrunner.runtime import Runtime
    from taskrunner.store.records import TaskStatus
    from taskrunner.views import TaskView

EXIT_OK = 0
START_RETRY_SECONDS = 2.0
"""How often a starting worker tries again to reach its database."""
FINISHED_STATUSES = ("succeeded", "failed", "cancelled")
"""The statuses `purge` may delete: `store.records.FINISHED`, spelt here so that the help
does not import the store."""

# Help and errors are plain text: with no markup mode and no pretty exceptions, Typer never
# imports rich, which is neither wanted nor worth its import time.
app = typer.Typer(
    name="taskrunner",
    help="A deterministic task runner: YAML state charts calling typed tools.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
app.add_typer(api_key_app)


@app.command("validate-flow")
def validate_flow(
    files: Annotated[list[str], typer.Argument(help="Flow files to check.", show_default=False)],
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the problems as a JSON list.")
    ] = False,
) -> None:
    """Check flow files and print every problem as FILE:LINE:COL: CODE message (the first
    100 of a file, then how many more there are).

    Exit status: 0 when every file is valid, 1 when a flow is invalid, 2 when a path is not
    a readable file.
    """
    from taskrunner.engine.validate import FlowChecker
    from taskrunner.errors import UnreadableFlowFileError
    from taskrunner.flowfile import check_file
    from taskrunner.tools import load_registry

    checker = FlowChecker(load_registry())
    problems = []
    status = EXIT_OK
    unreadable = omitted = 0
    for path in files:
        try:
            report = check_file(Path(path), checker)
        except UnreadableFlowFileError as exc:
            typer.echo(f"error: {exc.message}", err=True)
            status = EXIT_USAGE
            unreadable += 1
            continue
        problems.extend(report.problems)
        marker = report.omitted_marker()
        if marker is not None:  # a report lists the first problems and counts the rest
            problems.append(marker)
            omitted += report.omitted
        if report.problems and status == EXIT_OK:
            status = EXIT_FAILED
    if as_json:
        typer.echo(json.dumps([item.as_json() for item in problems], indent=2))
    else:
        for item in problems:
            typer.echo(f"{item.file}: {item.message}" if item.code == "report.omitted" else item)
        invalid = len({item.file for item in problems})
        checked = len(files) - unreadable
        count = len(problems) - sum(item.code == "report.omitted" for item in problems) + omitted
        summary = f"{checked} file(s) checked: "
        summary += f"{count} problem(s) in {invalid} file(s)" if problems else "all valid"
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


@app.command(
    "run-flow",
    context_settings={
        "ignore_unknown_options": True,
        "allow_extra_args": True,
        "help_option_names": [],
    },
)
def run_flow(
    ctx: typer.Context,
    flow: Annotated[str, typer.Option(help="The flow to run.")] = "echo_add",
    input_json: Annotated[
        str | None,
        typer.Option("--input", help="The whole input as JSON, or @FILE with the JSON in it."),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the task as the API returns it.")
    ] = False,
    no_wait: Annotated[
        bool,
        typer.Option("--no-wait", help="Queue the task for a worker, print its id, and exit."),
    ] = False,
    idempotency_key: Annotated[
        str | None,
        typer.Option(help="Start at most one task for this key (the same input: that task)."),
    ] = None,
    show_help: Annotated[
        bool, typer.Option("--help", help="Show this message and the flow's input options.")
    ] = False,
) -> None:
    """Run a task of a flow to its end: `taskrunner run-flow --text hello --a 2 --b 3`.

    Each field of the flow's input is an option of its own (see --flow NAME --help).
    Exit status: 0 when the task succeeded (with --no-wait: was queued), 1 when it failed
    or was cancelled, 2 when the input is refused, 75 when it has not finished (an
    idempotency key's task, still running elsewhere), 130 when interrupted (Ctrl-C: the
    task goes back to the queue).
    """
    from taskrunner.catalog import load_catalog
    from taskrunner.cli.inputs import options_help, read_input
    from taskrunner.cli.render import task_text

    settings = Settings.from_env()
    catalog = load_catalog(settings.flows_dir)
    entry = catalog.get(flow)
    # Said after the lookup: when the flow asked for is the one skipped, its error alone
    # is the one line to say.
    for skipped in catalog.skipped:
        _warn(skipped.warning())
    if show_help:
        typer.echo(ctx.get_help())
        typer.echo("\n" + options_help(entry.flow))
        raise typer.Exit(EXIT_OK)
    data = read_input(entry.flow, input_json, list(ctx.args))
    runtime = _open_runtime(settings, catalog)
    service = runtime.service
    task_id = service.new_task_id()
    try:
        if no_wait:
            task = service.enqueue_task(flow, data, idempotency_key=idempotency_key).task
        else:
            task = service.run_task(
                flow, data, idempotency_key=idempotency_key, task_id=task_id, bounded=False
            ).task
    except KeyboardInterrupt:
        typer.echo(
            f"interrupted: task {task_id} goes back to the queue, pending; a worker (or "
            f"`taskrunner serve`) goes on with it, `taskrunner cancel-task {task_id}` "
            "stops it",
            err=True,
        )
        raise typer.Exit(EXIT_INTERRUPTED) from None
    finally:
        runtime.close()
    if as_json:
        typer.echo(task.model_dump_json(indent=2))
    elif no_wait:
        typer.echo(str(task.id))
    else:
        typer.echo(task_text(task))
    if no_wait and task.status == "pending" and not settings.is_postgres:
        typer.echo(
            "note: queued on SQLite, the task runs when `taskrunner serve` runs on this "
            "database (it runs the queue in its own process)",
            err=True,
        )
    raise typer.Exit(_run_status(task, queued=no_wait))


@app.command("get-task")
def get_task(
    task_id: Annotated[str, typer.Argument(help="The task's id.", show_default=False)],
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the task as the API returns it.")
    ] = False,
    all_steps: Annotated[
        bool, typer.Option("--all-steps", help="Show every step, not only the first 100.")
    ] = False,
) -> None:
    """Show a task: its status, output and step history. Unknown id: exit status 1."""
    from taskrunner.cli.render import task_text

    parsed = _task_id(task_id)
    runtime = _open_runtime(Settings.from_env(), tasks_only=True)
    try:
        task = runtime.service.get_task(parsed, all_steps=all_steps)
    finally:
        runtime.close()
    typer.echo(task.model_dump_json(indent=2) if as_json else task_text(task))


@app.command("list-tasks")
def list_tasks(
    status: Annotated[
        str | None,
        typer.Option(help="Only tasks in this status: pending, running, succeeded, failed…"),
    ] = None,
    flow: Annotated[str | None, typer.Option(help="Only tasks of this flow.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many (1 to 500).")] = 50,
    cursor: Annotated[
        str | None, typer.Option(help="Continue after a previous page (its next_cursor).")
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the page as the API returns it.")
    ] = False,
) -> None:
    """List tasks, newest first."""
    from typing import get_args

    from taskrunner.cli.render import page_text
    from taskrunner.store.records import TaskStatus

    if status is not None and status not in get_args(TaskStatus):
        typer.echo(
            f"error: no status {status!r}; use one of {', '.join(get_args(TaskStatus))}", err=True
        )
        raise typer.Exit(EXIT_USAGE)
    runtime = _open_runtime(Settings.from_env(), tasks_only=True)
    try:
        page = runtime.service.list_tasks(
            status=status,  # type: ignore[arg-type]
            flow=flow,
            limit=limit,
            cursor=cursor,
        )
    finally:
        runtime.close()
    typer.echo(page.model_dump_json(indent=2) if as_json else page_text(page))


@app.command("cancel-task")
def cancel_task(
    task_id: Annotated[str, typer.Argument(help="The task's id.", show_default=False)],
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the task as the API returns it.")
    ] = False,
) -> None:
    """Cancel a task: a pending one at once, a running one before its next step.
    Exit status 1 when the task is unknown or has already finished."""
    from taskrunner.cli.render import task_text

    parsed = _task_id(task_id)
    runtime = _open_runtime(Settings.from_env(), tasks_only=True)
    try:
        outcome, task = runtime.service.cancel_task(parsed)
    finally:
        runtime.close()
    if as_json:
        typer.echo(task.model_dump_json(indent=2))
    else:
        said = "cancelled" if outcome == "cancelled" else "asked to stop before its next step"
        typer.echo(f"task {task.id} {said}\n{task_text(task)}")


@app.command("purge")
def purge(
    older_than: Annotated[
        str,
        typer.Option(
            "--older-than",
            help="Delete tasks that finished longer ago than this: 90m, 12h, 30d.",
            show_default=False,
        ),
    ],
    status: Annotated[
        str,
        typer.Option(help="Only tasks in these finished statuses, comma-separated."),
    ] = ",".join(FINISHED_STATUSES),
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Count what would be deleted; delete nothing.")
    ] = False,
    batch_size: Annotated[
        int, typer.Option(min=1, max=10_000, help="Tasks deleted per transaction.")
    ] = 1000,
    as_json: Annotated[bool, typer.Option("--json", help="Print the counts as JSON.")] = False,
) -> None:
    """Delete finished tasks, with their steps, that finished longer ago than --older-than.

    Pending and running tasks are never touched; flow versions are kept (tasks pin them).
    Deletes in batches, each its own short transaction, so that workers keep running.
    Exit status 2 for a bad duration or status.
    """
    from datetime import UTC, datetime

    from taskrunner.durations import parse_duration
    from taskrunner.retention import purge_finished

    age = parse_duration(older_than)
    statuses = _finished_statuses(status)
    before = datetime.now(UTC) - age
    runtime = _open_runtime(Settings.from_env())
    try:
        repository = runtime.service.repository
        if dry_run:
            counted = repository.count_purgeable(before, statuses)
        else:
            counted = purge_finished(repository, before, statuses, batch_size=batch_size)
    finally:
        runtime.close()
    if as_json:
        document = {
            "dry_run": dry_run,
            "finished_before": before.isoformat(),
            "statuses": list(statuses),
            "tasks": counted.tasks,
            "steps": counted.steps,
        }
        typer.echo(json.dumps(document, indent=2))
        return
    verb = "would delete" if dry_run else "deleted"
    typer.echo(
        f"{verb} {counted.tasks:,} task(s) and {counted.steps:,} step(s): "
        f"{', '.join(statuses)}, finished before {before.isoformat(timespec='seconds')}"
    )


@app.command("serve")
def serve(
    host: Annotated[
        str,
        typer.Option(
            help="The address to listen on. Beyond loopback only with API keys configured, "
            "or --insecure."
        ),
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="The port to listen on.")] = 8000,
    no_worker: Annotated[
        bool,
        typer.Option("--no-worker", help="Serve HTTP only: leave queued tasks to workers."),
    ] = False,
    insecure: Annotated[
        bool,
        typer.Option(
            "--insecure",
            help="Listen beyond loopback even though no API key is configured: anyone who "
            "reaches the port may read, start and cancel every task.",
        ),
    ] = False,
) -> None:
    """Serve the HTTP API (as `uvicorn main:app` does), with a worker in the same process
    for queued tasks unless --no-worker. Flow files that change are reloaded (see
    TASKRUNNER_FLOWS_RELOAD_SECONDS), and so are all on SIGHUP or POST /flows/reload.

    Without API keys (TASKRUNNER_API_KEYS_FILE, TASKRUNNER_API_KEYS) the API is open, so it
    listens on a loopback address only, unless --insecure. Exit status 2 otherwise."""
    import dataclasses

    from taskrunner.errors import UnprotectedServerError

    settings = Settings.from_env()
    if settings.api_keys is None and not insecure and not _is_loopback(host):
        raise UnprotectedServerError(host)

    from taskrunner.api import create_app
    from taskrunner.api.server import serve as serve_http
    from taskrunner.catalog import directory_fingerprint
    from taskrunner.runtime import settle_memory

    if no_worker:
        settings = dataclasses.replace(settings, worker_concurrency=0)
    # A flows directory that is not there stops the server before it starts, in one line
    # (the app would find it too, but in its lifespan, where uvicorn shows a traceback).
    directory_fingerprint(settings.flows_dir)
    app = create_app(settings, on_started=settle_memory, reload_on_sighup=True)
    serve_http(app, settings, host, port)


@app.command("worker")
def worker(
    concurrency: Annotated[
        int, typer.Option(min=1, max=256, help="How many tasks to run at once.")
    ] = 4,
) -> None:
    """Run queued tasks until stopped. Any number of workers, on any machines, can share
    one PostgreSQL database. SIGTERM (or Ctrl-C) drains: each task in hand finishes its
    current step, goes back to the queue, and the worker exits. SIGHUP reloads the flows
    (so do changed flow files, see TASKRUNNER_FLOWS_RELOAD_SECONDS)."""
    import signal
    import threading

    settings = Settings.from_env()
    if not settings.is_postgres:
        typer.echo(
            "error: `taskrunner worker` needs PostgreSQL (set DATABASE_URL): SQLite has one "
            "writer, so on SQLite queued tasks run in the API's own process "
            "(`taskrunner serve`)",
            err=True,
        )
        raise typer.Exit(EXIT_USAGE)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    from taskrunner.runtime import settle_memory

    runtime = _open_when_reachable(settings, stop)
    if runtime is None:
        typer.echo("taskrunner: worker stopped before the database could be reached", err=True)
        return
    settle_memory()
    watcher = runtime.flow_watcher()
    watcher.start()
    signal.signal(signal.SIGHUP, lambda *_: watcher.wake())
    try:
        typer.echo(f"taskrunner: worker {runtime.service.owner} running", err=True)
        runtime.worker(concurrency).run(stop)
    finally:
        watcher.stop()
        runtime.close()
    typer.echo("taskrunner: worker stopped", err=True)


def _run_status(task: TaskView, *, queued: bool) -> int:
    if task.status == "succeeded" or (queued and task.status in ("pending", "running")):
        return EXIT_OK
    if task.status in ("pending", "running"):
        typer.echo(
            f"the task has not finished ({task.status}): it goes on elsewhere; "
            f"`taskrunner get-task {task.id}` shows how it stands",
            err=True,
        )
        return EXIT_UNFINISHED
    return EXIT_FAILED


def _is_loopback(host: str) -> bool:
    """Whether `host` is a loopback address (127.0.0.0/8, ::1) or `localhost`."""
    import ipaddress

    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.removeprefix("[").removesuffix("]")).is_loopback
    except ValueError:
        return False


def _finished_statuses(text: str) -> tuple[TaskStatus, ...]:
    """The statuses of `purge --status`: finished ones only, each at most once."""
    from typing import cast

    from taskrunner.errors import RetentionStatusError

    chosen = [word.strip() for word in text.split(",") if word.strip()]
    refused = [word for word in chosen if word not in FINISHED_STATUSES]
    if refused or not chosen:
        named = f" (not {', '.join(repr(word) for word in refused)})" if refused else ""
        raise RetentionStatusError(
            f"--status takes finished statuses only: {', '.join(FINISHED_STATUSES)}{named}; "
            "pending and running tasks are never purged"
        )
    return tuple(cast("TaskStatus", word) for word in dict.fromkeys(chosen))


def _task_id(text: str) -> uuid.UUID:
    try:
        return uuid.UUID(text)
    except ValueError:
        typer.echo(f"error: {text!r} is not a task id (a UUID)", err=True)
        raise typer.Exit(EXIT_USAGE) from None


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


def _open_when_reachable(settings: Settings, stop: threading.Event) -> Runtime | None:
    """The runtime of a long-running process, which starts whenever its database does: a
    database that cannot be reached yet is tried again every few seconds, said once, until
    it answers or `stop` is set (then None). Anything else stops the start at once."""
    from taskrunner.errors import StoreUnavailableError

    waiting = False
    while not stop.is_set():
        try:
            return _open_runtime(settings, quiet=waiting)
        except StoreUnavailableError as exc:
            if not waiting:
                typer.echo(f"taskrunner: waiting for the database: {exc.message}", err=True)
                waiting = True
            stop.wait(START_RETRY_SECONDS)
    return None


def _warn(line: str) -> None:
    typer.echo(f"warning: {line}", err=True)


def main() -> None:
    """Entry point: taskrunner's own errors become a message on stderr and the exit status
    their class says, never a traceback."""
    try:
        app(standalone_mode=True)
    except TaskrunnerError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        sys.exit(exc.exit_status)
    except Exception as exc:  # the last line of defence: never a traceback
        if os.environ.get("TASKRUNNER_DEBUG"):
            raise
        typer.echo(f"internal error: {type(exc).__name__}: {exc}", err=True)
        typer.echo("set TASKRUNNER_DEBUG=1 to see the traceback", err=True)
        sys.exit(EXIT_INTERNAL)

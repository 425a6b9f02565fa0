"""The task commands: `run-flow`, `get-task`, `list-tasks`, `cancel-task` and `purge`.

Each registers itself on the one `app` of `taskrunner.cli`, and imports what it needs when
it runs, as every command does.
"""

from __future__ import annotations

import json
import uuid
from typing import TYPE_CHECKING, Annotated

import typer

from taskrunner.cli import EXIT_OK, _open_runtime, _warn, app
from taskrunner.cli.helptext import PlainCommand
from taskrunner.errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_UNFINISHED, EXIT_USAGE
from taskrunner.settings import Settings
from taskrunner.statuses import FINISHED, TASK_STATUSES, TaskStatus

if TYPE_CHECKING:
    from pydantic import JsonValue

    from taskrunner.service import TaskService
    from taskrunner.views import TaskView

TIMEOUT_OPTION = typer.Option(
    "--timeout",
    metavar="SECONDS",
    min=0,
    help="With --follow: stop following after this long (exit status 75; the task goes on).",
)


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
    flow: Annotated[str, typer.Option(metavar="NAME", help="The flow to run.")] = "echo_add",
    input_json: Annotated[
        str | None,
        typer.Option(
            "--input",
            metavar="JSON|@FILE",
            help="The whole input as JSON, or @FILE with the JSON in it.",
        ),
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
        typer.Option(
            metavar="KEY", help="Start at most one task for this key (the same input: that task)."
        ),
    ] = None,
    follow: Annotated[
        bool,
        typer.Option(
            "--follow",
            help="Queue the task (as --no-wait does), then show its steps as they land until "
            "it ends; the exit status is the task's.",
        ),
    ] = False,
    timeout: Annotated[float | None, TIMEOUT_OPTION] = None,
    show_help: Annotated[
        bool, typer.Option("--help", "-h", help="Show this message and the flow's input options.")
    ] = False,
) -> None:
    """Run a task of a flow to its end: `taskrunner run-flow --text hello --a 2 --b 3`.

    Each field of the flow's input is an option of its own (see --flow NAME --help).
    Exit status: 0 when the task succeeded (with --no-wait: was queued), 1 when it failed
    or was cancelled, 2 when the input is refused, 75 when it has not finished (an
    idempotency key's task, still running elsewhere; or still running when --timeout ran
    out), 130 when interrupted (Ctrl-C: the task goes back to the queue; a task followed
    goes on).
    """
    from taskrunner.catalog import load_catalog
    from taskrunner.cli.discover import unknown_name
    from taskrunner.cli.follow import check_timeout, follow_task
    from taskrunner.cli.inputs import options_help, read_input
    from taskrunner.cli.render import task_text
    from taskrunner.errors import UnknownFlowError

    settings = Settings.from_env()
    catalog = load_catalog(settings.flows_dir)
    try:
        entry = catalog.get(flow)
    except UnknownFlowError:
        unknown_name("flow", flow, catalog.names(), status=EXIT_USAGE)
    # Said after the lookup: when the flow asked for is the one skipped, its error alone
    # is the one line to say.
    for skipped in catalog.skipped:
        _warn(skipped.warning())
    if show_help:
        typer.echo(ctx.get_help())
        typer.echo("\n" + options_help(entry.flow))
        raise typer.Exit(EXIT_OK)
    data = read_input(entry.flow, input_json, list(ctx.args))
    check_timeout(timeout, follow)
    no_wait = no_wait or follow
    runtime = _open_runtime(settings, catalog)
    try:
        task = _start(runtime.service, flow, data, idempotency_key, queued=no_wait)
        if follow:
            _say_where_queued_tasks_run(task, settings)
            raise typer.Exit(
                follow_task(runtime.service, task.id, timeout=timeout, as_json=as_json)
            )
    finally:
        runtime.close()
    if as_json:
        typer.echo(task.model_dump_json(indent=2))
    elif no_wait:
        typer.echo(str(task.id))
    else:
        typer.echo(task_text(task))
    if no_wait:
        _say_where_queued_tasks_run(task, settings)
    raise typer.Exit(_run_status(task, queued=no_wait))


@app.command("get-task", cls=PlainCommand)
def get_task(
    task_id: Annotated[
        str, typer.Argument(metavar="ID", help="The task's id.", show_default=False)
    ],
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the task as the API returns it.")
    ] = False,
    all_steps: Annotated[
        bool, typer.Option("--all-steps", help="Show every step, not only the first 100.")
    ] = False,
    follow: Annotated[
        bool,
        typer.Option(
            "--follow",
            help="Show the steps as they land until the task ends (with --json: print the "
            "task once it has ended); the exit status is the task's.",
        ),
    ] = False,
    timeout: Annotated[float | None, TIMEOUT_OPTION] = None,
) -> None:
    """Show a task: its status, output and step history. Unknown id: exit status 1.

    With --follow, exit status 0 when the task succeeded, 1 when it failed or was
    cancelled, 75 when it is still running when --timeout runs out, 130 when interrupted
    (Ctrl-C); the task goes on either way.
    """
    from taskrunner.cli.follow import check_timeout, follow_task
    from taskrunner.cli.render import task_text

    parsed = _task_id(task_id)
    check_timeout(timeout, follow)
    runtime = _open_runtime(Settings.from_env(), tasks_only=True)
    try:
        if follow:
            raise typer.Exit(follow_task(runtime.service, parsed, timeout=timeout, as_json=as_json))
        task = runtime.service.get_task(parsed, all_steps=all_steps)
    finally:
        runtime.close()
    typer.echo(task.model_dump_json(indent=2) if as_json else task_text(task))


@app.command("list-tasks")
def list_tasks(
    status: Annotated[
        str | None,
        typer.Option(
            metavar="STATUS", help=f"Only tasks in this status: {', '.join(TASK_STATUSES)}."
        ),
    ] = None,
    flow: Annotated[
        str | None, typer.Option(metavar="NAME", help="Only tasks of this flow.")
    ] = None,
    parent: Annotated[
        str | None,
        typer.Option(
            metavar="ID",
            help="The children of this task (its branches, map items, sub-flow runs).",
        ),
    ] = None,
    limit: Annotated[int, typer.Option(metavar="N", help="At most this many (1 to 500).")] = 50,
    cursor: Annotated[
        str | None,
        typer.Option(metavar="CURSOR", help="Continue after a previous page (its next_cursor)."),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the page as the API returns it.")
    ] = False,
) -> None:
    """List tasks, newest first: id, status, flow, when it was created (ISO 8601, UTC) and
    the kind of its error, under a header row."""
    from taskrunner.cli.render import page_text

    if status is not None and status not in TASK_STATUSES:
        typer.echo(f"error: no status {status!r}; use one of {', '.join(TASK_STATUSES)}", err=True)
        raise typer.Exit(EXIT_USAGE)
    runtime = _open_runtime(Settings.from_env(), tasks_only=True)
    try:
        page = runtime.service.list_tasks(
            status=status,  # type: ignore[arg-type]
            flow=flow,
            parent=None if parent is None else _task_id(parent),
            limit=limit,
            cursor=cursor,
        )
    finally:
        runtime.close()
    typer.echo(page.model_dump_json(indent=2) if as_json else page_text(page))


@app.command("cancel-task", cls=PlainCommand)
def cancel_task(
    task_id: Annotated[
        str, typer.Argument(metavar="ID", help="The task's id.", show_default=False)
    ],
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
            metavar="DURATION",
            help="Delete tasks that finished longer ago than this: 90m, 12h, 30d.",
            show_default=False,
        ),
    ],
    status: Annotated[
        str,
        typer.Option(
            metavar="STATUSES", help="Only tasks in these finished statuses, comma-separated."
        ),
    ] = ",".join(FINISHED),
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Count what would be deleted; delete nothing.")
    ] = False,
    batch_size: Annotated[
        int,
        typer.Option(metavar="N", min=1, max=10_000, help="Tasks deleted per transaction."),
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


def _start(
    service: TaskService,
    flow: str,
    data: dict[str, JsonValue],
    idempotency_key: str | None,
    *,
    queued: bool,
) -> TaskView:
    """Queue the task, or run it here to its end."""
    task_id = service.new_task_id()
    try:
        if queued:
            return service.enqueue_task(flow, data, idempotency_key=idempotency_key).task
        return service.run_task(
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


def _say_where_queued_tasks_run(task: TaskView, settings: Settings) -> None:
    if task.status == "pending" and not settings.is_postgres:
        typer.echo(
            "note: queued on SQLite, the task runs when `taskrunner serve` runs on this "
            "database (it runs the queue in its own process)",
            err=True,
        )


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


def _finished_statuses(text: str) -> tuple[TaskStatus, ...]:
    """The statuses of `purge --status`: finished ones only, each at most once."""
    from typing import cast

    from taskrunner.errors import RetentionStatusError

    chosen = [word.strip() for word in text.split(",") if word.strip()]
    refused = [word for word in chosen if word not in FINISHED]
    if refused or not chosen:
        named = f" (not {', '.join(repr(word) for word in refused)})" if refused else ""
        raise RetentionStatusError(
            f"--status takes finished statuses only: {', '.join(FINISHED)}{named}; "
            "pending and running tasks are never purged"
        )
    return tuple(cast("TaskStatus", word) for word in dict.fromkeys(chosen))


def _task_id(text: str) -> uuid.UUID:
    try:
        return uuid.UUID(text)
    except ValueError:
        typer.echo(f"error: {text!r} is not a task id (a UUID)", err=True)
        raise typer.Exit(EXIT_USAGE) from None

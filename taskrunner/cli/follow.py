"""`--follow`: a task's steps shown as they land, until it finishes.

It reads the store through the service every `POLL_SECONDS`: the task first, then its
steps after the last one shown. A task's finish is written with its last step, so once
the task reads as finished, the steps read after it are all of them. The steps are the
task's own: a fan-out's children are not followed, their state's step appears when the
state is done.

On a terminal one progress line (status, state, steps so far, time) is rewritten in
place under the steps; piped, each change of status is a plain line of its own, so that
the output is a log that `grep` and files can take. Either way it ends with the task's
outcome, and the exit status says it: 0 succeeded; 1 failed or cancelled; 75 not finished
when `--timeout` ran out; 130 interrupted. Stopping to follow never stops the task.
"""

from __future__ import annotations

import json
import sys
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TextIO

import typer

from taskrunner.cli.render import step_line
from taskrunner.errors import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_UNFINISHED,
    EXIT_USAGE,
    TaskNotFoundError,
)
from taskrunner.service import MAX_STEP_PAGE, TaskService
from taskrunner.statuses import FINISHED

if TYPE_CHECKING:
    from taskrunner.store.records import TaskRecord
    from taskrunner.views import TaskView

POLL_SECONDS = 0.25
"""How often the store is read for new steps."""
CLEAR_LINE = "\r\x1b[K"
"""Back to the start of the line, and erase it: the progress line is written over."""


@dataclass
class Follower:
    """Follows one task, printing to `out`; `live` when `out` is a terminal."""

    service: TaskService
    task_id: uuid.UUID
    out: TextIO
    err: TextIO
    live: bool
    timeout: float | None = None
    quiet: bool = False
    """Print nothing while following (`--json` prints the task once it has finished)."""
    _shown: int = field(default=0, init=False)
    """The seq of the last step printed."""
    _status: str | None = field(default=None, init=False)
    _progress: bool = field(default=False, init=False)
    """Whether the progress line is on screen, to be wiped before anything else."""

    def run(self) -> tuple[int, TaskView | None]:
        """Follow the task to its end: the exit status, and the finished task (None when
        it has not finished). Raises `TaskNotFoundError` for an unknown task."""
        started = time.monotonic()
        if self.live and not self.quiet:
            self._line(f"task {self.task_id}")
        try:
            while True:
                task = self.service.repository.get_task(self.task_id)
                if task is None:
                    raise TaskNotFoundError(self.task_id)
                # The status was read before the steps: said first, it is in time order.
                self._print_status_change(task)
                self._print_new_steps()
                self._print_progress(task, time.monotonic() - started)
                if task.status in FINISHED:
                    break
                if self.timeout is not None and time.monotonic() - started >= self.timeout:
                    self._say_unfinished(task, time.monotonic() - started)
                    return EXIT_UNFINISHED, None
                time.sleep(POLL_SECONDS)
        except KeyboardInterrupt:
            self._clear()
            self._line(
                f"interrupted: task {self.task_id} goes on; `taskrunner get-task "
                f"{self.task_id} --follow` follows it again",
                self.err,
            )
            return EXIT_INTERRUPTED, None
        self._clear()
        finished = self.service.get_task(self.task_id)
        if not self.quiet:
            self._print_outcome(finished)
        return (0 if finished.status == "succeeded" else EXIT_FAILED), finished

    def _print_new_steps(self) -> None:
        while True:
            page = self.service.task_steps(self.task_id, after=self._shown, limit=MAX_STEP_PAGE)
            for step in page.items:
                if not self.quiet:
                    self._clear()
                    self._line(step_line(step))
                self._shown = step.seq
            if page.next_after is None:
                return

    def _print_status_change(self, task: TaskRecord) -> None:
        """Piped: a line when the status changes (the outcome says the last one)."""
        changed = task.status != self._status
        self._status = task.status
        if changed and not (self.live or self.quiet) and task.status not in FINISHED:
            self._line(f"task {self.task_id} {task.status}")

    def _print_progress(self, task: TaskRecord, elapsed: float) -> None:
        """On a terminal: the one line under the steps, written over at each poll."""
        if not self.live or self.quiet or task.status in FINISHED:
            return
        state = f"  at {task.current_state}" if task.current_state else ""
        steps = max(task.step_count, self._shown)
        self.out.write(f"{CLEAR_LINE}{task.status}{state}  {steps} step(s)  {elapsed:.1f} s")
        self.out.flush()
        self._progress = True

    def _print_outcome(self, task: TaskView) -> None:
        took = ""
        if task.finished_at is not None:
            took = f"  in {(task.finished_at - task.created_at).total_seconds():.1f} s"
        self._line(f"task {task.id} {task.status}  {task.steps_total} step(s){took}")
        if task.output is not None:
            self._line(f"  output    {json.dumps(task.output, ensure_ascii=False)}")
        if task.error is not None:
            self._line(f"  error     {task.error.kind}: {task.error.message}")

    def _say_unfinished(self, task: TaskRecord, elapsed: float) -> None:
        self._clear()
        self._line(
            f"the task has not finished ({task.status}) after {elapsed:.1f} s: it goes on; "
            f"`taskrunner get-task {self.task_id} --follow` follows it again",
            self.err,
        )

    def _clear(self) -> None:
        if self._progress:
            self.out.write(CLEAR_LINE)
            self.out.flush()
            self._progress = False

    def _line(self, text: str, stream: TextIO | None = None) -> None:
        target = stream or self.out
        target.write(text + "\n")
        target.flush()


def follow_task(
    service: TaskService, task_id: uuid.UUID, *, timeout: float | None, as_json: bool
) -> int:
    """Follow a task to its end on this process's stdout, live when it is a terminal; with
    `as_json`, print nothing but the task's document once it has ended."""
    status, task = Follower(
        service,
        task_id,
        out=sys.stdout,
        err=sys.stderr,
        live=sys.stdout.isatty(),
        timeout=timeout,
        quiet=as_json,
    ).run()
    if as_json and task is not None:
        typer.echo(task.model_dump_json(indent=2))
    return status


def check_timeout(timeout: float | None, follow: bool) -> None:
    if timeout is not None and not follow:
        typer.echo("error: --timeout bounds --follow; give --follow too", err=True)
        raise typer.Exit(EXIT_USAGE)

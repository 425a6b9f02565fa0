"""Fan-out calls run as child tasks: a parallel state's branches, a map state's items and a
sub-flow's run are each a row of `tasks` with a parent, run like any task.

Why rows, not threads inside the parent: workers already share tasks through the store
(claims with `SKIP LOCKED`, leases that a dead worker's tasks run out of), so children
spread over every worker, a killed worker's child is taken over like any task, and each
child's history is its own append-only list of (task, seq) steps. A resumed parent makes
the same call again (same seq, same attempt), finds the children it started by their
position (`child_key`) and waits only for those that have not ended.

The parent's runner (`ChildRunner.run`, the `StoredRun`'s `run_children`) stores the
children, then, until every one has ended:

- keeps at most `max_concurrency` of them claimable: the rest are stored held back (pending
  with no `run_after`) and made due as earlier ones end, so the limit holds across workers;
- runs due children itself in a pool of its own (at most `LOCAL_CHILDREN` threads), each
  through the service's ordinary `resume`, so that a child's own fan-out nests; other
  workers claim due children too, as they claim any task;
- reads the children back every so often (bounded polling, `POLL_SECONDS` at most), and
  the parent's row, to see a cancel.

A failure the policy does not tolerate cancels the siblings (and theirs) and ends the call
at once; so does the call's `timeout_seconds` or the parent's deadline (the unfinished
children fail it with `Timeout`). A parent that must leave (its worker stops, a
synchronous request's time is up) stops its pool after the step in hand, goes back to the
queue, and returns None: its children go on, on any worker, and the parent finds them
when it is resumed.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Final

from pydantic import ValidationError

from taskrunner.backlog import Backlog
from taskrunner.engine.fanout import Child, ChildResult, Fanout
from taskrunner.engine.plan import FlowPlan
from taskrunner.engine.steps import TASK_TIMEOUT, CallTool
from taskrunner.engine.validate import FlowChecker
from taskrunner.errors import FlowInputError, LeaseLostError, TaskrunnerError
from taskrunner.leases import LeaseKeeper
from taskrunner.store.records import CANCELLED, FlowVersion, TaskRecord
from taskrunner.store.repository import TaskRepository
from taskrunner.tools import INVALID_INPUT, TIMEOUT

if TYPE_CHECKING:
    from taskrunner.runs import StoredRun

log = logging.getLogger("taskrunner.children")

LOCAL_CHILDREN: Final = 8
"""At most this many children of one call run in the parent's own process at once (its
other children wait for another worker, or for a thread here)."""
POLL_SECONDS: Final = 0.25
"""The longest the parent goes without reading its children back."""
FIRST_POLL_SECONDS: Final = 0.01
"""How soon the parent first looks again; each look that finds nothing new doubles it."""


class ChildRunner:
    """Runs the children of fan-out calls for one service (its store, lease and flows)."""

    def __init__(
        self,
        repository: TaskRepository,
        leases: LeaseKeeper,
        backlog: Backlog,
        *,
        clock: Callable[[], datetime],
        new_id: Callable[[], uuid.UUID],
        checker: Callable[[], FlowChecker],
        resume: Callable[[TaskRecord, threading.Event], None],
    ) -> None:
        self._repository = repository
        self._leases = leases
        self._backlog = backlog
        self._clock = clock
        self._new_id = new_id
        self._checker = checker
        self._resume = resume

    def run(
        self, parent: StoredRun, call: CallTool, fanout: Fanout
    ) -> Sequence[ChildResult] | None:
        """Run the call's children to their ends and say how each ended; None when the
        parent had to leave first (it is then back on the queue, or ended cancelled)."""
        rows = self._spawn(parent, call, fanout)
        # Past the call's limit or the parent's deadline, the children are cut short here,
        # even when no runner is left to end them on their own.
        call_limit = _call_deadline(call, rows)
        limit = _earliest(call_limit, parent.expires())
        window = fanout.max_concurrency or len(fanout.children)
        threads = max(1, min(window, LOCAL_CHILDREN))
        leave = threading.Event()
        running: set[Future[None]] = set()
        pause = FIRST_POLL_SECONDS
        pool = ThreadPoolExecutor(threads, thread_name_prefix=f"taskrunner-child-{call.state}")
        try:
            while True:
                # A cancelled parent's children end cancelled by the cascade: the parent
                # must see its own cancel first, not take theirs for a failure of the call.
                if self._cancelled(parent):
                    return None
                results = _ended(fanout, rows)
                if results is not None:
                    return _explained(results, rows, call, call_limit)
                if self._failed_beyond_policy(fanout, rows):
                    self._repository.cancel_children(
                        parent.task.id, call.seq, call.attempt, self._clock()
                    )
                    ended = _with_siblings_cancelled(fanout, rows)
                    return _explained(ended, rows, call, call_limit)
                if limit is not None and self._clock() >= limit:
                    self._repository.cancel_children(
                        parent.task.id, call.seq, call.attempt, self._clock()
                    )
                    reason = _call_timed_out(call) if limit == call_limit else None
                    message = reason or "it did not end within the task's deadline"
                    return _with_unfinished_timed_out(rows, message)
                if parent.must_leave():
                    leave.set()
                    wait(running)
                    parent.hand_back()
                    return None
                # Tasks claimed here and not started may be this call's children: run them
                # too, rather than wait for runner threads that may all be waiting.
                due = self._let_in(rows, window) + len(self._backlog)
                while len(running) < threads and due > len(running):
                    running.add(pool.submit(self._drain, parent, call, leave))
                before = _progress(rows)
                if running:
                    finished, running_now = wait(running, pause, FIRST_COMPLETED)
                    running = set(running_now)
                    for future in finished:
                        future.result()
                else:
                    leave.wait(pause)
                rows = self._repository.children_of(parent.task.id, call.seq, call.attempt)
                moved = _progress(rows) != before
                pause = FIRST_POLL_SECONDS if moved else min(pause * 2, POLL_SECONDS)
        finally:
            pool.shutdown(wait=False)

    # -- the steps of a run ------------------------------------------------------------

    def _spawn(self, parent: StoredRun, call: CallTool, fanout: Fanout) -> list[TaskRecord]:
        """Store the call's children (those not stored yet) and return them all."""
        now = self._clock()
        held_back = fanout.max_concurrency is not None
        records = [self._record(parent, call, child, now, held_back) for child in fanout.children]
        versions = {
            child.digest: FlowVersion(
                child.digest, str(child.definition.get("name", "")), child.definition, now
            )
            for child in fanout.children
        }
        return self._repository.spawn_children(records, list(versions.values()))

    def _record(
        self, parent: StoredRun, call: CallTool, child: Child, now: datetime, held_back: bool
    ) -> TaskRecord:
        """A new child task: pending (held back, when the call limits its concurrency), or
        failed already when its input is not what its flow declares."""
        task = parent.task
        refused = self._refused(child)
        return TaskRecord(
            id=self._new_id(),
            flow_name=str(child.definition.get("name", task.flow_name)),
            flow_digest=child.digest,
            status="pending" if refused is None else "failed",
            current_state=str(child.definition.get("start", "")),
            error_kind=None if refused is None else INVALID_INPUT,
            error_message=refused,
            cancel_requested=False,
            created_at=now,
            updated_at=now,
            started_at=None,
            finished_at=None if refused is None else now,
            input=child.input,
            output=None,
            idempotency_key=None,
            run_after=None if held_back or refused is not None else now,
            lease_owner=None,
            lease_expires_at=None,
            step_count=0,
            checkpoint=None,
            parent_id=task.id,
            parent_seq=call.seq,
            parent_attempt=call.attempt,
            child_key=child.key,
            deadline_at=_earliest(parent.expires(), _call_deadline(call, [], now)),
        )

    def _refused(self, child: Child) -> str | None:
        """Why a sub-flow's input is refused by the flow's declared input, if it is."""
        if not child.validate_input:
            return None
        checker = self._checker()
        try:
            flow = checker.language.parse(child.definition)
            FlowPlan(flow, checker.registry).validate_input(child.input)
        except FlowInputError as exc:
            return f"the sub-flow's input is refused: {exc.message}"
        except (TaskrunnerError, ValidationError) as exc:
            return f"the sub-flow cannot be run here: {exc}"
        return None

    def _let_in(self, rows: Sequence[TaskRecord], window: int) -> int:
        """Make held-back children due, in position order, while fewer than `window` are
        under way; how many children are due and waiting for a runner."""
        under_way = [row for row in rows if not row.finished and row.run_after is not None]
        running = sum(1 for row in rows if row.status == "running")
        held = sorted(
            (row for row in rows if row.status == "pending" and row.run_after is None),
            key=_position,
        )
        room = window - len(under_way) - running
        if room > 0 and held:
            self._repository.make_due([row.id for row in held[:room]], self._clock())
        now = self._clock()
        due = [
            row
            for row in under_way
            if row.status == "pending" and row.run_after is not None and row.run_after <= now
        ]
        return len(due) + min(max(room, 0), len(held))

    def _drain(self, parent: StoredRun, call: CallTool, leave: threading.Event) -> None:
        """Run, one after another, the tasks claimed here and not started, then due
        children of the call claimed now, until there are none or the parent leaves."""
        while not leave.is_set():
            task = self._backlog.take() or self._claim_child(parent, call)
            if task is None:
                return
            try:
                self._resume(task, leave)
            except Exception:  # one task's failure to run is its own, never the parent's
                log.exception("running task %s failed", task.id)

    def _claim_child(self, parent: StoredRun, call: CallTool) -> TaskRecord | None:
        claimed = self._repository.claim_children(
            self._leases.owner,
            parent.task.id,
            call.seq,
            call.attempt,
            1,
            self._clock(),
            self._leases.expiry(),
        )
        if not claimed:
            return None
        self._leases.hold(claimed[0].id)
        return claimed[0]

    def _failed_beyond_policy(self, fanout: Fanout, rows: Sequence[TaskRecord]) -> bool:
        return not fanout.tolerates(sum(1 for row in rows if row.status == "failed"))

    def _cancelled(self, parent: StoredRun) -> bool:
        """Whether the parent was cancelled meanwhile (its children are, by the store's
        cascade); if so, it ends cancelled now. Raises `LeaseLostError` when this runner
        no longer holds the parent (another took it over): it stops waiting for it."""
        found = self._repository.get_task(parent.task.id)
        if found is None or found.status != "running" or found.lease_owner != self._leases.owner:
            raise LeaseLostError
        if not found.cancel_requested:
            return False
        parent.cancelled(CANCELLED)
        return True


def _call_deadline(
    call: CallTool, rows: Sequence[TaskRecord], now: datetime | None = None
) -> datetime | None:
    """When the call's `timeout_seconds` is up: counted from when its first child was
    stored (so a resumed parent keeps the limit it had), or from `now` before any was."""
    if call.timeout_seconds is None:
        return None
    started = min((row.created_at for row in rows), default=now)
    return None if started is None else started + timedelta(seconds=call.timeout_seconds)


def _call_timed_out(call: CallTool) -> str:
    return f"it did not end within the state's timeout_seconds ({call.timeout_seconds:g} s)"


def _explained(
    results: list[ChildResult],
    rows: Sequence[TaskRecord],
    call: CallTool,
    call_limit: datetime | None,
) -> list[ChildResult]:
    """The results, where a child that ran out of time at the call's limit (its inherited
    deadline) says so: its own message speaks of a `timeout_seconds` it does not have."""
    if call_limit is None:
        return results
    late = {
        row.child_key
        for row in rows
        if row.error_kind == TASK_TIMEOUT
        and row.finished_at is not None
        and row.finished_at >= call_limit
    }
    message = _call_timed_out(call)
    return [
        replace(result, status="timed_out", error_message=message) if result.key in late else result
        for result in results
    ]


def _earliest(*moments: datetime | None) -> datetime | None:
    known = [moment for moment in moments if moment is not None]
    return min(known, default=None)


def _position(row: TaskRecord) -> tuple[int, str]:
    """A child's place in its call: items by index, branches by name."""
    kind, _, name = (row.child_key or "").partition(":")
    return (int(name), "") if kind == "item" and name.isdigit() else (0, name)


def _progress(rows: Sequence[TaskRecord]) -> tuple[tuple[str, str, int], ...]:
    """What the parent has seen of its children: when it changes, it looks again soon."""
    return tuple(sorted((str(row.id), row.status, row.step_count) for row in rows))


def _result(row: TaskRecord, beyond_policy: bool) -> ChildResult:
    key = row.child_key or ""
    if row.status == "succeeded":
        return ChildResult(key, "succeeded", row.output)
    if row.status == "cancelled" and beyond_policy:
        return ChildResult(key, "cancelled")  # for a sibling's failure, which ends the call
    if row.error_kind == TASK_TIMEOUT:
        # The child ran out of time: the call's `timeout_seconds`, or the child flow's
        # own limit. To the parent that is a catchable `Timeout` of the state; had the
        # parent's own deadline passed, the parent's run fails the task anyway.
        return ChildResult(key, "failed", None, TIMEOUT, row.error_message)
    # A child cancelled on its own, not for a sibling's failure, failed its call.
    return ChildResult(key, "failed", None, row.error_kind, row.error_message)


def _ended(fanout: Fanout, rows: Sequence[TaskRecord]) -> list[ChildResult] | None:
    """How every child ended, once each has."""
    if len(rows) < len(fanout.children) or not all(row.finished for row in rows):
        return None
    beyond = not fanout.tolerates(sum(1 for row in rows if row.status == "failed"))
    return [_result(row, beyond) for row in rows]


def _with_unfinished_timed_out(rows: Sequence[TaskRecord], message: str) -> list[ChildResult]:
    """The results of a call whose time is up: those unfinished `timed_out` (they were
    cancelled), which fails the call with `Timeout` whatever its failure policy."""
    return [
        _result(row, False)
        if row.finished
        else ChildResult(row.child_key or "", "timed_out", None, TIMEOUT, message)
        for row in rows
    ]


def _with_siblings_cancelled(fanout: Fanout, rows: Sequence[TaskRecord]) -> list[ChildResult]:
    """The results of a call that a failure ended: those unfinished were cancelled."""
    return [
        _result(row, True) if row.finished else ChildResult(row.child_key or "", "cancelled")
        for row in rows
    ]

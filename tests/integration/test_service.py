"""The service on a real database (both backends): tasks and steps in the database are
exactly the interpreter's trace, each step is committed as it completes, and what cannot be
stored is refused before anything is written."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, text, update
from sqlalchemy.exc import DBAPIError

from taskrunner.catalog import FlowCatalog, UnknownFlowError
from taskrunner.engine.flow import Flow
from taskrunner.engine.runner import InMemoryRunner
from taskrunner.engine.validate import FlowChecker
from taskrunner.errors import (
    FlowInputError,
    InvalidRequestError,
    TaskNotFoundError,
    UnstorableDataError,
)
from taskrunner.flowfile import check_source
from taskrunner.service import TaskService
from taskrunner.store.database import Database
from taskrunner.store.sql import SqlTaskRepository
from taskrunner.store.tables import FlowVersionRow, TaskRow, TaskStepRow
from taskrunner.tools import ToolModel, ToolRegistry, tool

HELLO = {"text": "hello", "a": 2, "b": 3}


def test_echo_add_runs_and_is_stored(service: TaskService, database: Database) -> None:
    task = service.run_task("echo_add", HELLO).task
    assert (task.status, task.output) == ("succeeded", {"text": "hello", "sum": 5})
    assert [(s.seq, s.state, s.output) for s in task.steps] == [
        (1, "echo", {"text": "hello"}),
        (2, "add", {"sum": 5}),
    ]
    assert service.get_task(task.id) == task
    with database.engine.connect() as connection:
        row = connection.execute(select(TaskRow).where(TaskRow.id == task.id)).one()
        steps = connection.execute(select(func.count()).select_from(TaskStepRow)).scalar()
        version = connection.execute(select(FlowVersionRow)).one()
    assert (row.status, row.output, row.current_state) == ("succeeded", task.output, "done")
    assert steps == 2
    assert version.digest == task.flow_version
    assert version.definition["name"] == "echo_add"


@pytest.mark.parametrize(
    ("flow", "data"),
    [
        ("echo_add", HELLO),
        ("echo_add", {"text": "", "a": -1.5, "b": 1.5}),
        ("safe_divide", {"dividend": 1, "divisor": 0}),
        ("safe_divide", {"dividend": 6, "divisor": 3}),
        ("classify_sum", {"a": 60, "b": 40}),
        ("classify_sum", {"a": -5, "b": 2}),
        ("count_to", {"n": 3}),
        ("divide_or_explain", {"dividend": 1, "divisor": 0}),
        ("reshape_order", {"item": "pen", "price": 2.5}),
    ],
)
def test_the_stored_history_is_exactly_the_interpreters_trace(
    service: TaskService,
    registry: ToolRegistry,
    load_flow: Callable[[str], Flow],
    flow: str,
    data: dict[str, Any],
) -> None:
    expected = InMemoryRunner(registry).run(load_flow(flow), data)
    stored = service.get_task(service.run_task(flow, data).task.id)
    assert [
        (
            s.seq,
            s.state,
            s.tool,
            s.attempt,
            s.status,
            s.input,
            s.output,
            s.error.model_dump() if s.error else None,
        )
        for s in stored.steps
    ] == [
        (
            s.seq,
            s.state,
            s.tool,
            s.attempt,
            s.status,
            s.input,
            s.output,
            None if s.error is None else {"kind": s.error.kind, "message": s.error.message},
        )
        for s in expected.steps
    ]
    assert stored.status == expected.status
    assert stored.current_state == expected.state
    assert stored.output == expected.output
    expected_error = asdict(expected.error) if expected.error else None
    assert (stored.error.model_dump() if stored.error else None) == expected_error


class _Nothing(ToolModel):
    pass


class _Seen(ToolModel):
    steps: int
    state: str | None


PROBES = b"""
name: probes
start: one
states:
  one: {type: task, tool: probe, next: two}
  two: {type: task, tool: probe, next: three}
  three: {type: task, tool: probe, next: done}
  done:
    type: succeed
    output: {one: $states.one, two: $states.two, three: $states.three}
"""


def test_each_step_is_committed_as_it_completes(database: Database) -> None:
    """While a tool runs, every earlier step is already committed (seen from another
    connection), and the task says which state it is in."""

    @tool("probe")
    def probe(args: _Nothing) -> _Seen:
        with database.engine.connect() as connection:
            steps = connection.execute(select(func.count()).select_from(TaskStepRow)).scalar()
            state = connection.execute(select(TaskRow.current_state)).scalar()
        return _Seen(steps=steps or 0, state=state)

    checker = FlowChecker(ToolRegistry([probe]))
    flow = check_source(PROBES, "probes.yaml", checker).flow
    assert flow is not None
    service = TaskService(SqlTaskRepository(database), FlowCatalog.of([flow], checker))
    task = service.run_task("probes", {}).task
    assert task.output == {
        "one": {"steps": 0, "state": "one"},
        "two": {"steps": 1, "state": "two"},
        "three": {"steps": 2, "state": "three"},
    }


def test_a_flow_version_is_stored_once(service: TaskService, database: Database) -> None:
    for _ in range(3):
        service.run_task("echo_add", HELLO)
    with database.engine.connect() as connection:
        versions = connection.execute(select(func.count()).select_from(FlowVersionRow)).scalar()
    assert versions == 1


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        ({"text": "hello", "a": "2", "b": 3}, "a: Input should be a number"),
        ({"text": "hello", "a": True, "b": 3}, "a: Input should be a number"),
        ({"text": "hello", "a": 2}, "b: Field required"),
        ({"text": "hello", "a": 2, "b": 3, "c": 4}, "c: not an input of this flow"),
    ],
)
def test_refused_input_writes_nothing(
    service: TaskService, database: Database, data: dict[str, object], problem: str
) -> None:
    with pytest.raises(FlowInputError) as caught:
        service.run_task("echo_add", data)
    assert problem in caught.value.problems
    with database.engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(TaskRow)).scalar() == 0


@pytest.mark.parametrize("text_value", ["nul\x00byte", "lone \ud800 surrogate"])
def test_text_the_database_cannot_store_is_refused(
    service: TaskService, database: Database, text_value: str
) -> None:
    with pytest.raises(UnstorableDataError, match="/text"):
        service.run_task("echo_add", {"text": text_value, "a": 1, "b": 2})
    with database.engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(TaskRow)).scalar() == 0


def test_an_unknown_flow_is_refused(service: TaskService) -> None:
    with pytest.raises(UnknownFlowError):
        service.run_task("../../etc/passwd", {})


def test_an_unknown_task_is_not_found(service: TaskService) -> None:
    with pytest.raises(TaskNotFoundError):
        service.get_task(uuid.uuid4())


def test_steps_are_never_rewritten(service: TaskService, database: Database) -> None:
    task = service.run_task("echo_add", HELLO).task
    with pytest.raises(DBAPIError, match="never rewritten"), database.engine.begin() as db:
        db.execute(update(TaskStepRow).values(output={"text": "changed"}))
    assert service.get_task(task.id).steps[0].output == {"text": "hello"}


def test_pages_are_newest_first_and_cursors_continue(
    database: Database, catalog: FlowCatalog
) -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    ticks = iter(start + timedelta(seconds=n) for n in range(1000))
    service = TaskService(
        SqlTaskRepository(database),
        catalog,
        clock=lambda: next(ticks),
        wait=lambda _event, _seconds: False,
    )
    made = [
        service.run_task("echo_add", {"text": str(n), "a": n, "b": 0}).task.id for n in range(7)
    ]
    made += [service.run_task("safe_divide", {"dividend": 1, "divisor": 0}).task.id]
    seen: list[uuid.UUID] = []
    cursor = None
    while True:
        page = service.list_tasks(limit=3, cursor=cursor)
        seen += [item.id for item in page.items]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == made[::-1]
    failed = service.list_tasks(status="failed")
    assert [item.id for item in failed.items] == [made[-1]]
    echo = service.list_tasks(flow="echo_add", limit=500)
    assert [item.id for item in echo.items] == made[:7][::-1]
    assert service.list_tasks(flow="nothing").items == []


def test_tasks_created_in_the_same_instant_are_all_listed(
    database: Database, catalog: FlowCatalog
) -> None:
    instant = datetime(2026, 1, 1, tzinfo=UTC)
    service = TaskService(SqlTaskRepository(database), catalog, clock=lambda: instant)
    made = {service.run_task("echo_add", HELLO).task.id for _ in range(5)}
    first = service.list_tasks(limit=2)
    second = service.list_tasks(limit=2, cursor=first.next_cursor)
    third = service.list_tasks(limit=2, cursor=second.next_cursor)
    listed = [item.id for page in (first, second, third) for item in page.items]
    assert set(listed) == made
    assert len(listed) == 5
    assert third.next_cursor is None


@pytest.mark.parametrize("cursor", ["nonsense", "", "bm9wZQ", "MjAyNnxub3BlCg"])
def test_a_cursor_that_was_not_issued_is_refused(service: TaskService, cursor: str) -> None:
    if cursor == "":
        assert service.list_tasks(cursor=cursor).next_cursor is None
        return
    with pytest.raises(InvalidRequestError, match="cursor"):
        service.list_tasks(cursor=cursor)


@pytest.mark.parametrize("limit", [0, -1, 501])
def test_the_page_size_is_bounded(service: TaskService, limit: int) -> None:
    with pytest.raises(InvalidRequestError, match="limit"):
        service.list_tasks(limit=limit)


def test_timestamps_are_utc_and_ordered(service: TaskService) -> None:
    task = service.get_task(service.run_task("echo_add", HELLO).task.id)
    assert task.created_at.tzinfo is not None
    assert task.created_at.utcoffset() == timedelta(0)
    assert task.finished_at is not None
    assert task.created_at <= task.steps[0].started_at <= task.steps[-1].finished_at
    assert task.steps[-1].finished_at == task.finished_at


def test_the_database_is_jsonb_on_postgres(database: Database) -> None:
    if not database.is_postgres:
        assert database.dialect == "sqlite"
        return
    with database.engine.connect() as connection:
        kinds = connection.execute(
            text(
                "SELECT data_type FROM information_schema.columns "
                "WHERE table_name = 'tasks' AND column_name IN ('input', 'output')"
            )
        ).scalars()
        assert set(kinds) == {"jsonb"}

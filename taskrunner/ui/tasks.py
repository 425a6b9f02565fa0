"""The console's task pages: the list (filters, keyset pages, live rows), one task (its
summary, data, diagram, steps, children; live while it runs), and its cancel button.
Thin: each parses, calls the service off the event loop, and renders."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Final, get_args
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import RedirectResponse

from taskrunner.api.routes import offload_of, runtime_of
from taskrunner.errors import InvalidRequestError, TaskNotFoundError
from taskrunner.service import DEFAULT_STEP_PAGE, TaskService
from taskrunner.store.records import ACTIVE, TaskStatus
from taskrunner.ui.access import runner_of, viewer_of
from taskrunner.ui.diagrams import task_diagram
from taskrunner.ui.render import SECURITY_HEADERS, ConsoleRoute, page
from taskrunner.views import StepView, TaskPage, TaskSummary, TaskView

router = APIRouter(prefix="/ui", route_class=ConsoleRoute, include_in_schema=False)

PAGE_SIZE: Final = 25
MAX_TRAIL: Final = 20
"""How many pages back "Previous" can go: the cursors of the pages before ride along in
the link, since a cursor only leads forward."""
CHILDREN_SHOWN: Final = 50


@dataclass(frozen=True)
class ListFilter:
    status: TaskStatus | None
    flow: str | None
    parent: uuid.UUID | None

    def query(self, **more: str) -> str:
        pairs = {
            "status": self.status or "",
            "flow": self.flow or "",
            "parent": str(self.parent) if self.parent else "",
            **more,
        }
        return urlencode({key: value for key, value in pairs.items() if value})


def _list_filter(status: str | None, flow: str | None, parent: str | None) -> ListFilter:
    chosen: TaskStatus | None = None
    if status:
        for known in get_args(TaskStatus):
            if known == status:
                chosen = known
        if chosen is None:
            raise InvalidRequestError(f"{status[:40]!r} is not a task status")
    return ListFilter(chosen, flow or None, _task_id(parent, "parent") if parent else None)


def _task_id(text: str, what: str = "task") -> uuid.UUID:
    try:
        return uuid.UUID(text)
    except ValueError:
        if what == "task":
            raise TaskNotFoundError(f"{text[:40]!r} (not a task id)") from None
        raise InvalidRequestError(f"{what}: {text[:40]!r} is not a task id") from None


Text = Annotated[str | None, Query(max_length=256)]


@router.get("", response_model=None)
async def console_home() -> Response:
    return RedirectResponse("/ui/tasks", status_code=307, headers=SECURITY_HEADERS)


@router.get("/tasks")
async def task_list(
    request: Request,
    status: Text = None,
    flow: Text = None,
    parent: Text = None,
    cursor: Text = None,
    trail: Annotated[str | None, Query(max_length=6_000)] = None,
) -> Response:
    """Tasks, newest first, a page at a time, filtered by status and flow."""
    viewer_of(request)
    chosen = _list_filter(status, flow, parent)
    runtime = runtime_of(request)
    found = await _list(request, runtime.service, chosen, cursor)
    cursors = [item for item in (trail or "").split(",") if item][-MAX_TRAIL:]
    previous = None
    if cursor:
        back = cursors[:-1]
        previous = chosen.query(
            **({"cursor": cursors[-1]} if cursors else {}),
            **({"trail": ",".join(back)} if back else {}),
        )
    following = None
    if found.next_cursor:
        ahead = [*cursors, cursor] if cursor else cursors
        following = chosen.query(
            cursor=found.next_cursor, **({"trail": ",".join(ahead[-MAX_TRAIL:])} if ahead else {})
        )
    context = {
        "filter": chosen,
        "flows": runtime.catalog.names(),
        "tasks": found.items,
        "live": _live_rows_url(chosen, cursor, found.items),
        "previous": previous,
        "following": following,
        "newest": bool(cursor),
    }
    return page(request, "tasks.html", context)


@router.get("/tasks/rows")
async def task_rows(
    request: Request,
    status: Text = None,
    flow: Text = None,
    parent: Text = None,
    cursor: Text = None,
) -> Response:
    """The rows of the list as they are now: what the list polls while it shows tasks
    that have not finished."""
    viewer_of(request)
    chosen = _list_filter(status, flow, parent)
    found = await _list(request, runtime_of(request).service, chosen, cursor)
    context = {"tasks": found.items, "live": _live_rows_url(chosen, cursor, found.items)}
    return page(request, "_task_rows.html", context)


async def _list(
    request: Request, service: TaskService, chosen: ListFilter, cursor: str | None
) -> TaskPage:
    return await offload_of(request).call(
        service.list_tasks,
        status=chosen.status,
        flow=chosen.flow,
        parent=chosen.parent,
        limit=PAGE_SIZE,
        cursor=cursor,
    )


def _live_rows_url(chosen: ListFilter, cursor: str | None, tasks: list[TaskSummary]) -> str | None:
    if not any(task.status in ACTIVE for task in tasks):
        return None
    return "/ui/tasks/rows?" + chosen.query(**({"cursor": cursor} if cursor else {}))


@dataclass(frozen=True)
class TaskDetail:
    """What the task page shows, read in one go."""

    task: TaskView
    steps: list[StepView]
    steps_after: int | None
    next_steps: int | None
    next_attempt_at: datetime | None
    children: list[TaskSummary]
    more_children: bool
    diagram: str | None


def _detail(service: TaskService, task_id: uuid.UUID, after: int) -> TaskDetail:
    task = service.get_task(task_id)
    steps, next_steps = task.steps, task.steps_next_after
    if after:
        later = service.task_steps(task_id, after=after, limit=DEFAULT_STEP_PAGE)
        steps, next_steps = later.items, later.next_after
    # When the task waits (a retry's delay, a wait state), the queue says until when.
    record = service.repository.get_task(task_id) if task.status == "pending" else None
    children = service.list_tasks(parent=task_id, limit=CHILDREN_SHOWN)
    return TaskDetail(
        task=task,
        steps=steps,
        steps_after=after or None,
        next_steps=next_steps,
        next_attempt_at=record.run_after if record and task.steps else None,
        children=children.items,
        more_children=children.next_cursor is not None,
        diagram=task_diagram(service, task_id),
    )


@router.get("/tasks/{task_id}")
async def task_page(
    request: Request,
    task_id: str,
    after: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
) -> Response:
    """One task: where and why it stands as it does, what it was given, what each step
    did."""
    viewer = viewer_of(request)
    service = runtime_of(request).service
    detail = await offload_of(request).call(_detail, service, _task_id(task_id), after)
    context = {"detail": detail, "task": detail.task, "can_run": viewer.can_run}
    return page(request, "task.html", context)


@router.get("/tasks/{task_id}/live")
async def task_live(request: Request, task_id: str) -> Response:
    """The parts of the task page that change while it runs: what it polls."""
    viewer = viewer_of(request)
    service = runtime_of(request).service
    detail = await offload_of(request).call(_detail, service, _task_id(task_id), 0)
    context = {"detail": detail, "task": detail.task, "can_run": viewer.can_run}
    return page(request, "_task_live.html", context)


@router.post("/tasks/{task_id}/cancel")
async def cancel(request: Request, task_id: str) -> Response:
    """Cancel the task (a run key), then show it again."""
    runner_of(request)
    service = runtime_of(request).service
    found = _task_id(task_id)
    await offload_of(request).call(service.cancel_task, found)
    return RedirectResponse(f"/ui/tasks/{found}", status_code=303, headers=SECURITY_HEADERS)

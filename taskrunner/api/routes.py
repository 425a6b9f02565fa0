"""The HTTP endpoints of tasks, and of health: thin. Each parses, calls the service, and
returns a view. The flows' endpoints are in `api/flows.py`, which shares the helpers here.

Health has a router of its own (`health_router`), included last, after the flows'."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Final

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from taskrunner.api.auth import require
from taskrunner.api.offload import Offload
from taskrunner.api.problems import error_problem
from taskrunner.apikeys import ApiKey
from taskrunner.engine.diagnostics import listing
from taskrunner.engine.model import FLOW_NAME_PATTERN
from taskrunner.errors import (
    InvalidRequestError,
    JsonTextError,
    MalformedBodyError,
    StoreUnavailableError,
)
from taskrunner.idempotency import IDEMPOTENCY_KEY_PATTERN, scoped_idempotency_key
from taskrunner.jsontext import parse_json
from taskrunner.runtime import Runtime
from taskrunner.service import DEFAULT_PAGE, DEFAULT_STEP_PAGE, MAX_PAGE, MAX_STEP_PAGE
from taskrunner.store.records import TaskStatus
from taskrunner.views import StepPage, TaskPage, TaskView

DEFAULT_FLOW: Final = "echo_add"
READ: Final = [require("read")]
RUN: Final = [require("run")]
router = APIRouter()
health_router = APIRouter()


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    # The content is filled in by taskrunner.api.openapi: application/problem+json.
    return {
        status: {"description": description}
        for status, description in {
            400: "The body is not well-formed JSON.",
            404: "No such flow or task, or the flow's file is invalid (skipped).",
            408: "The body did not arrive within the body timeout.",
            409: "The idempotency key started another task, or the task has finished.",
            413: "The body is larger than 1 MiB.",
            422: "The request is well-formed but cannot be served as it is.",
            503: "The database cannot be reached; try again after `Retry-After` seconds.",
        }.items()
        if status in statuses
    }


def runtime_of(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def offload_of(request: Request) -> Offload:
    offload: Offload = request.app.state.offload
    return offload


_START_TASK_BODY: Final = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "oneOf": [
                    {
                        "type": "object",
                        "title": "Start a task of any flow",
                        "properties": {
                            "flow": {"type": "string", "example": "echo_add"},
                            "input": {"type": "object"},
                        },
                        "required": ["flow", "input"],
                        "additionalProperties": False,
                    },
                    {
                        "type": "object",
                        "title": "Start an echo_add task (the flat, original form)",
                        "properties": {
                            "text": {"type": "string"},
                            "a": {"type": "number"},
                            "b": {"type": "number"},
                        },
                        "required": ["text", "a", "b"],
                    },
                ]
            },
            "examples": {
                "flow": {
                    "summary": "A flow and its input",
                    "value": {"flow": "echo_add", "input": {"text": "hello", "a": 2, "b": 3}},
                },
                "flat": {
                    "summary": "echo_add, flat",
                    "value": {"text": "hello", "a": 2, "b": 3},
                },
            },
        }
    },
}


@router.post(
    "/tasks",
    status_code=201,
    response_model=TaskView,
    tags=["tasks"],
    summary="Start a task: run it to its end, or queue it",
    openapi_extra={"requestBody": _START_TASK_BODY},
    responses={
        200: {"description": "The task this idempotency key already started, finished."},
        202: {
            "description": "The task has not finished: it was queued (`Prefer: "
            "respond-async`, or the server is busy with synchronous runs), it goes on on "
            "the queue after `TASKRUNNER_SYNC_WAIT_SECONDS` or before a retry's delay that "
            "would outlast them, or it runs elsewhere (a key's earlier request, another "
            "runner). Follow `Location`."
        },
        **problem_responses(400, 404, 408, 409, 413, 422, 503),
    },
)
async def start_task(
    request: Request,
    caller: Annotated[ApiKey | None, require("run")],
    prefer: Annotated[
        str | None,
        Header(description="`respond-async` to queue the task and answer at once (202)."),
    ] = None,
    idempotency_key: Annotated[
        str | None,
        Header(
            description="Start at most one task per key: the same key and input give the "
            "same task; the same key with another input is a 409. Each API key has keys of "
            "its own. 1 to 255 visible ASCII characters.",
            # Said in the OpenAPI document; checked by the service, which says it plainly.
            json_schema_extra={"pattern": IDEMPOTENCY_KEY_PATTERN.pattern},
        ),
    ] = None,
) -> Response:
    """Start a task of `flow` on `input`. By default, run it and answer once it has
    finished, with the task and its steps (201, whether the task succeeded or failed), or
    202 with `Location` if it has not finished within the synchronous limit. With
    `Prefer: respond-async`, queue it for a worker and answer at once (202). A body
    without `flow` and `input` is the input of `echo_add`."""
    body = _json_body(await request.body())
    flow, data = _task_request(body)
    service, offload = runtime_of(request).service, offload_of(request)
    asked_async = _prefers_async(prefer)
    task_id = service.new_task_id()
    scoped = scoped_idempotency_key(caller.name if caller else None, idempotency_key)
    if asked_async or offload.runs_busy():
        started = await offload.call(
            service.enqueue_task, flow, data, idempotency_key=scoped, task_id=task_id
        )
    else:
        started = await offload.run(
            service.run_task, flow, data, idempotency_key=scoped, task_id=task_id
        )
    task = started.task
    headers = {"Location": f"/tasks/{task.id}"}
    if asked_async:
        headers["Preference-Applied"] = "respond-async"
    finished = task.status not in ("pending", "running")
    status = (201 if started.created else 200) if finished else 202
    return _json(task, status, headers)


@router.post(
    "/tasks/{task_id}/cancel",
    response_model=TaskView,
    tags=["tasks"],
    summary="Cancel a task",
    dependencies=RUN,
    responses={
        202: {"description": "The task is running: it stops before its next step."},
        **problem_responses(404, 409, 422, 503),
    },
)
async def cancel_task(request: Request, task_id: uuid.UUID) -> Response:
    """Cancel a pending task at once (200), or ask a running one to stop before its next
    step (202); one that is waiting out a retry's delay ends at once. A finished task
    cannot be cancelled (409). A cancelled task never runs again."""
    service = runtime_of(request).service
    outcome, task = await offload_of(request).call(service.cancel_task, task_id)
    return _json(task, 202 if outcome == "requested" else 200)


@router.get(
    "/tasks",
    response_model=TaskPage,
    tags=["tasks"],
    summary="List tasks, newest first",
    dependencies=READ,
    responses=problem_responses(404, 422, 503),
)
async def list_tasks(
    request: Request,
    status: Annotated[TaskStatus | None, Query(description="Only tasks in this status.")] = None,
    flow: Annotated[
        str | None,
        Query(max_length=64, pattern=FLOW_NAME_PATTERN, description="Only tasks of this flow."),
    ] = None,
    parent: Annotated[
        uuid.UUID | None,
        Query(
            description="The children of this task (the branches, map items and sub-flow "
            "runs its states started) instead of the tasks started by requests, which "
            "never include a child."
        ),
    ] = None,
    limit: Annotated[
        int, Query(ge=1, le=MAX_PAGE, description="At most this many tasks.")
    ] = DEFAULT_PAGE,
    cursor: Annotated[
        str | None, Query(max_length=256, description="`next_cursor` of the previous page.")
    ] = None,
) -> Response:
    """Task summaries (no input, output or steps), newest first, a page at a time: the
    tasks started by requests, or with `parent`, that task's children (404 if there is no
    such task)."""
    service = runtime_of(request).service
    page = await offload_of(request).call(
        service.list_tasks, status=status, flow=flow, parent=parent, limit=limit, cursor=cursor
    )
    return _json(page)


@router.get(
    "/tasks/{task_id}",
    response_model=TaskView,
    tags=["tasks"],
    summary="A task with its first steps",
    dependencies=READ,
    responses=problem_responses(404, 422, 503),
)
async def get_task(request: Request, task_id: uuid.UUID) -> Response:
    """The task, with its first 100 steps at most: `steps_total` says how many it has,
    and `steps_next_after`, when not null, where `GET /tasks/{id}/steps` goes on."""
    service = runtime_of(request).service
    return _json(await offload_of(request).call(service.get_task, task_id))


@router.get(
    "/tasks/{task_id}/steps",
    response_model=StepPage,
    tags=["tasks"],
    summary="A page of a task's steps, in order",
    dependencies=READ,
    responses=problem_responses(404, 422, 503),
)
async def task_steps(
    request: Request,
    task_id: uuid.UUID,
    after: Annotated[
        int, Query(ge=0, le=2**31 - 1, description="Only steps whose `seq` is greater.")
    ] = 0,
    limit: Annotated[
        int, Query(ge=1, le=MAX_STEP_PAGE, description="At most this many steps.")
    ] = DEFAULT_STEP_PAGE,
) -> Response:
    """The task's steps after `after`, a page at a time; pass `next_after` back as `after`
    for the next page (null on the last)."""
    service = runtime_of(request).service
    page = await offload_of(request).call(service.task_steps, task_id, after=after, limit=limit)
    return _json(page)


@health_router.get(
    "/healthz",
    tags=["health"],
    summary="The process is up",
    responses={200: {"content": {"application/json": {"example": {"status": "ok"}}}}},
)
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@health_router.get(
    "/readyz",
    tags=["health"],
    summary="The database can be reached",
    responses={
        200: {"content": {"application/json": {"example": {"status": "ready"}}}},
        **problem_responses(503),
    },
)
async def readyz(request: Request) -> Response:
    if await offload_of(request).call(runtime_of(request).service.ready):
        return JSONResponse({"status": "ready"})
    return error_problem(StoreUnavailableError())


def _json(view: BaseModel, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    # The view is already validated: serialize it once, directly (the declared
    # response_model still describes it in the OpenAPI document).
    return Response(
        view.model_dump_json(), status_code=status, headers=headers, media_type="application/json"
    )


def _prefers_async(prefer: str | None) -> bool:
    """Whether `Prefer` (RFC 7240) asks for `respond-async`."""
    if not prefer:
        return False
    preferences = (item.split(";")[0].strip().lower() for item in prefer.split(","))
    return "respond-async" in preferences


def _json_body(raw: bytes) -> object:
    try:
        return parse_json(raw)
    except JsonTextError as exc:
        raise MalformedBodyError(f"the body: {exc.message}") from None


def _task_request(body: object) -> tuple[str, dict[str, object]]:
    if not isinstance(body, dict):
        raise InvalidRequestError('the body must be a JSON object: {"flow": NAME, "input": {...}}')
    if "flow" not in body and "input" not in body:
        return DEFAULT_FLOW, body
    flow, data = body.get("flow"), body.get("input")
    extra = sorted(set(body) - {"flow", "input"})
    if not isinstance(flow, str) or not isinstance(data, dict) or extra:
        raise InvalidRequestError(
            'the body must be {"flow": NAME, "input": {...}} with nothing else'
            + (f"; unexpected: {listing(extra)}" if extra else "")
        )
    return flow, data

"""The console's flow pages: the flows, one flow (its diagram, its input schema and a form
generated from it that starts a task), and the check of a pasted flow document.

A task started from the form goes the way of `POST /tasks`: the same service calls, so
its input is checked exactly as the API checks it; a refused input shows the form again
with each problem next to its field (422)."""

from __future__ import annotations

from typing import Final
from urllib.parse import parse_qsl

from fastapi import APIRouter, Request, Response
from fastapi.responses import RedirectResponse

from taskrunner.api.flows import flow_listing
from taskrunner.api.routes import offload_of, runtime_of
from taskrunner.errors import BodyTooLargeError, FlowInputError, InvalidRequestError
from taskrunner.flowfile import check_source
from taskrunner.ui.access import check_same_origin, runner_of, viewer_of
from taskrunner.ui.diagrams import document_diagram, flow_diagram
from taskrunner.ui.forms import FormField, blank_form, place_problems, read_form
from taskrunner.ui.render import SECURITY_HEADERS, ConsoleRoute, page

router = APIRouter(prefix="/ui", route_class=ConsoleRoute, include_in_schema=False)

MAX_FORM_FIELDS: Final = 1_000
MAX_SHOWN_LINES: Final = 5_000
"""How many lines of a pasted document the validate page shows back."""
PASTED_FILE: Final = "pasted.yaml"


@router.get("/flows")
async def flow_list(request: Request) -> Response:
    viewer_of(request)
    listing = flow_listing(runtime_of(request).catalog)
    return page(request, "flows.html", {"flows": listing})


@router.get("/flows/{name}")
async def flow_page(request: Request, name: str) -> Response:
    viewer = viewer_of(request)
    return await _flow_page(request, name, viewer.can_run)


async def _flow_page(
    request: Request,
    name: str,
    can_run: bool,
    *,
    fields: list[FormField] | None = None,
    problems: list[str] | None = None,
    mode: str = "wait",
    status: int = 200,
) -> Response:
    runtime = runtime_of(request)
    entry = runtime.catalog.get(name)
    diagram = await offload_of(request).check(flow_diagram, runtime.service, name)
    context = {
        "flow": entry.flow,
        "file": entry.path.name,
        "fields": fields if fields is not None else blank_form(entry.flow.input),
        "problems": problems or [],
        "mode": mode,
        "diagram": diagram,
        "can_run": can_run,
    }
    return page(request, "flow.html", context, status)


@router.post("/flows/{name}/tasks")
async def start_task(request: Request, name: str) -> Response:
    """Start a task from the flow's form: run it to its end (up to the synchronous limit)
    or queue it, then open its page."""
    viewer = runner_of(request)
    sent = await read_sent_form(request)
    runtime = runtime_of(request)
    flow = runtime.catalog.get(name).flow
    mode = sent.get("mode", "wait")
    if mode not in ("wait", "queue"):
        # Anything else is not from the page: running it at once would be a guess.
        raise InvalidRequestError(f"{mode[:40]!r} is not a run mode; use wait or queue")
    read = read_form(flow.input, sent)
    if read.problems:
        return await _flow_page(
            request, name, viewer.can_run, fields=read.fields, mode=mode, status=422
        )
    service, offload = runtime.service, offload_of(request)
    task_id = service.new_task_id()
    try:
        if mode == "queue" or offload.runs_busy():
            await offload.call(service.enqueue_task, name, read.data, task_id=task_id)
        else:
            await offload.run(service.run_task, name, read.data, task_id=task_id)
    except FlowInputError as exc:
        general = place_problems(read.fields, exc.problems)
        return await _flow_page(
            request,
            name,
            viewer.can_run,
            fields=read.fields,
            problems=general,
            mode=mode,
            status=422,
        )
    return RedirectResponse(f"/ui/tasks/{task_id}", status_code=303, headers=SECURITY_HEADERS)


@router.get("/validate")
async def validate_form(request: Request) -> Response:
    viewer_of(request)
    return page(request, "validate.html", {"source": None})


@router.post("/validate")
async def validate(request: Request) -> Response:
    """Check a pasted flow document: its problems at their line and column, the text with
    those lines marked, and the diagram when it is valid."""
    check_same_origin(request)
    viewer_of(request)
    source = (await read_sent_form(request)).get("source", "")
    runtime = runtime_of(request)
    raw = source.encode("utf-8", "surrogateescape")
    if len(raw) > runtime.settings.max_body_bytes:
        raise BodyTooLargeError(
            f"the document is larger than {runtime.settings.max_body_bytes:,} bytes"
        )
    checker = runtime.catalog.checker
    report = await offload_of(request).check(check_source, raw, PASTED_FILE, checker)
    diagram = None
    if report.flow is not None:
        diagram = await offload_of(request).check(document_diagram, report.flow)
    lines = source.splitlines()
    marked = {item.line for item in report.problems}
    context = {
        "source": source,
        "report": report,
        "lines": list(enumerate(lines[:MAX_SHOWN_LINES], start=1)),
        "lines_left_out": max(len(lines) - MAX_SHOWN_LINES, 0),
        "marked": marked,
        "diagram": diagram,
    }
    return page(request, "validate.html", context)


async def read_sent_form(request: Request) -> dict[str, str]:
    """The fields of a sent form (`application/x-www-form-urlencoded`; the body is already
    bounded in size by the app). A field sent twice keeps its last value."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        raise InvalidRequestError("send this form from its page (a URL-encoded form)")
    body = (await request.body()).decode("utf-8", "replace")
    try:
        pairs = parse_qsl(body, keep_blank_values=True, max_num_fields=MAX_FORM_FIELDS)
    except ValueError:
        raise InvalidRequestError(f"a form has at most {MAX_FORM_FIELDS} fields") from None
    return dict(pairs)

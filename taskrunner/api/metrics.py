"""`GET /metrics`, and the middleware that measures every HTTP request.

Who may scrape: without API keys, anyone who reaches the server (as every endpoint, on
loopback only unless `--insecure`); with keys, a key of scope `read` or above, sent as
Prometheus sends one (`authorization: {credentials_file: ...}` in its scrape config, a
`Bearer` header). The metrics name the flows and say how busy the server is, which is
no less than `GET /tasks` tells, so they need what it needs.

A request is counted under its route's template (`/tasks/{task_id}`), never its path, so
that ids do not make a series each; a request that matches no route is `unmatched`, and a
method outside HTTP's usual ones is `OTHER`.
"""

from __future__ import annotations

import time
from typing import Final

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from taskrunner.api.auth import require
from taskrunner.api.routes import offload_of, problem_responses, runtime_of
from taskrunner.runtime import Runtime

METHODS: Final = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED: Final = "unmatched"

router = APIRouter()


@router.get(
    "/metrics",
    tags=["health"],
    summary="Metrics, in the Prometheus text format",
    dependencies=[require("read")],
    response_class=Response,
    responses={
        200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Every metric."},
        **problem_responses(503),
    },
)
async def metrics(request: Request) -> Response:
    """The process's metrics: tasks started and finished, step durations, retries, lease
    losses and takeovers, synchronous runs in flight, HTTP requests, and the queue as the
    database has it (left out, with `taskrunner_database_up 0`, when the database does not
    answer within two seconds). See docs/operations.md for what each one means."""
    body = await offload_of(request).call(runtime_of(request).metrics.render)
    return Response(body, media_type=CONTENT_TYPE_LATEST)


class RequestMetrics:
    """Counts and times each HTTP request, once it has been answered, in the metrics of
    the application's runtime (none before it has started)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # unless an answer starts: an exception is answered 500 further out

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            runtime: Runtime | None = getattr(scope["app"].state, "runtime", None)
            if runtime is not None:
                method = scope["method"] if scope["method"] in METHODS else "OTHER"
                route = getattr(scope.get("route"), "path", None) or UNMATCHED
                runtime.metrics.http_request(method, route, status, time.perf_counter() - started)

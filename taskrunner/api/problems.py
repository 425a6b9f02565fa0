"""Errors as `application/problem+json` (RFC 9457). Each of taskrunner's errors says its own
status and problem type (`errors.py`); FastAPI's validation errors and HTTP errors are
mapped here. Bad input is a 4xx; a database that cannot be reached is a 503 with
`Retry-After`; a 500 means a bug, is logged with its traceback, and says nothing of its
internals."""

from __future__ import annotations

import logging
from typing import Any, Final

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from taskrunner.errors import (
    MAX_PROBLEM_CHARS,
    StoreUnavailableError,
    TaskrunnerError,
    clipped,
)

MEDIA_TYPE: Final = "application/problem+json"
MAX_DETAIL_CHARS: Final = 4_000
"""How long a problem's detail may be: it can quote the request, which may be a megabyte."""
MAX_ERRORS: Final = 100
"""How many `errors` a problem lists (each at most `MAX_PROBLEM_CHARS`)."""
INTERNAL_DETAIL: Final = "an internal error occurred; it has been logged"
log = logging.getLogger("taskrunner.api")


class Problem(BaseModel):
    """An error, as `application/problem+json`."""

    type: str = Field(examples=["urn:taskrunner:problem:invalid-input"])
    title: str = Field(examples=["Unprocessable Content"])
    status: int = Field(examples=[422])
    detail: str = Field(examples=["a: Input should be a number"])
    errors: list[str] | None = Field(
        default=None, description="Each problem, when there are several."
    )


def problem(
    status: int,
    code: str,
    detail: str,
    errors: list[str] | None = None,
    *,
    retry_after: int | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": f"urn:taskrunner:problem:{code}",
        "title": _TITLES.get(status, "Error"),
        "status": status,
        "detail": _printable(clipped(detail, MAX_DETAIL_CHARS)),
    }
    if errors:
        listed = errors[:MAX_ERRORS]
        body["errors"] = [_printable(clipped(error, MAX_PROBLEM_CHARS)) for error in listed]
    sent = dict(headers or {})
    if retry_after is not None:
        sent["Retry-After"] = str(retry_after)
    return JSONResponse(body, status_code=status, media_type=MEDIA_TYPE, headers=sent or None)


def error_problem(error: TaskrunnerError) -> JSONResponse:
    """The problem that `error` says it is. A fault on our side (5xx) tells the client
    only what its class means, never its internals (they are logged)."""
    status = error.http_status
    if status < 500:
        return problem(status, error.problem, error.message, error.details, headers=error.headers)
    detail = INTERNAL_DETAIL if status == 500 else error.default_message()
    response = problem(
        status, error.problem, detail, retry_after=error.retry_after, headers=error.headers
    )
    if isinstance(error, StoreUnavailableError) and error.task_id is not None:
        # The task may be stored: where to find out (a 404 there: it was not).
        response.headers["Location"] = f"/tasks/{error.task_id}"
    return response


def install(app: FastAPI) -> None:
    """Register the one mapping from errors to problems."""

    @app.exception_handler(TaskrunnerError)
    async def taskrunner_error(request: Request, exc: TaskrunnerError) -> JSONResponse:
        if exc.http_status == 500:
            log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
        elif exc.http_status > 500:
            log.warning("%s %s: %s", request.method, request.url.path, exc.message)
        return error_problem(exc)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [_describe(item) for item in exc.errors()]
        return problem(422, "invalid-request", "; ".join(errors), errors)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        code = {404: "not-found", 405: "method-not-allowed"}.get(exc.status_code, "http-error")
        response = problem(exc.status_code, code, str(exc.detail))
        response.headers.update(exc.headers or {})
        if exc.status_code == 405:
            response.headers["Allow"] = ", ".join(_allowed_methods(request))
        return response

    app.add_middleware(InternalErrors)


class InternalErrors:
    """Anything unexpected: logged once, with its traceback, and answered `500` with a
    generic problem. (An exception handler for `Exception` would leave Starlette to raise
    it again after answering, and the server to log it a second time.)"""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def sending(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except Exception:
            log.exception("unexpected error serving %s %s", scope["method"], scope["path"])
            if not started:
                await problem(500, "internal", INTERNAL_DETAIL)(scope, receive, send)


def _allowed_methods(request: Request) -> list[str]:
    """Every method that some route serves at this path (the router names only the methods
    of the first route whose path matches: `/flows/reload` is also `/flows/{name}`)."""
    routes = request.app.router.routes
    return [
        method
        for method in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")
        if any(
            route.matches({**request.scope, "method": method})[0] == Match.FULL for route in routes
        )
    ]


def _printable(text: str) -> str:
    """Text that can be sent as UTF-8: a lone surrogate from the request is escaped."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _describe(error: Any) -> str:
    where = ".".join(str(part) for part in error.get("loc", ()) if part != "body")
    return f"{where}: {error.get('msg', 'invalid')}" if where else str(error.get("msg"))


_TITLES: Final = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    409: "Conflict",
    405: "Method Not Allowed",
    408: "Request Timeout",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    422: "Unprocessable Content",
    500: "Internal Server Error",
    503: "Service Unavailable",
}

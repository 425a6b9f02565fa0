"""Errors as `application/problem+json` (RFC 9457): one place maps taskrunner's exceptions,
FastAPI's validation errors and HTTP errors to a status and a message a person can act on.
Bad input is a 4xx; a 500 means a bug, and says nothing of its internals."""

from __future__ import annotations

import logging
from typing import Any, Final

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException

from taskrunner.catalog import UnknownFlowError
from taskrunner.errors import (
    FlowInputError,
    InvalidRequestError,
    TaskNotFoundError,
    TaskrunnerError,
    UnstorableDataError,
)
from taskrunner.service import IdempotencyConflictError, TaskFinishedError

MEDIA_TYPE: Final = "application/problem+json"
log = logging.getLogger("taskrunner.api")

_STATUS: Final[dict[type[TaskrunnerError], tuple[int, str]]] = {
    UnknownFlowError: (404, "unknown-flow"),
    TaskNotFoundError: (404, "unknown-task"),
    FlowInputError: (422, "invalid-input"),
    UnstorableDataError: (422, "unstorable-text"),
    InvalidRequestError: (422, "invalid-request"),
    IdempotencyConflictError: (409, "idempotency-conflict"),
    TaskFinishedError: (409, "task-finished"),
}


class Problem(BaseModel):
    """An error, as `application/problem+json`."""

    type: str = Field(examples=["urn:taskrunner:problem:invalid-input"])
    title: str = Field(examples=["Unprocessable Content"])
    status: int = Field(examples=[422])
    detail: str = Field(examples=["a: Input should be a number"])
    errors: list[str] | None = Field(
        default=None, description="Each problem, when there are several."
    )


class BadRequestError(TaskrunnerError):
    """The request body is not what this endpoint reads."""

    def __init__(self, message: str, *, status: int = 400, code: str = "malformed-body") -> None:
        self.status = status
        self.code = code
        super().__init__(message)


def problem(status: int, code: str, detail: str, errors: list[str] | None = None) -> JSONResponse:
    body: dict[str, Any] = {
        "type": f"urn:taskrunner:problem:{code}",
        "title": _TITLES.get(status, "Error"),
        "status": status,
        "detail": _printable(detail),
    }
    if errors:
        body["errors"] = [_printable(error) for error in errors]
    return JSONResponse(body, status_code=status, media_type=MEDIA_TYPE)


def install(app: FastAPI) -> None:
    """Register the one mapping from errors to problems."""

    @app.exception_handler(TaskrunnerError)
    async def taskrunner_error(request: Request, exc: TaskrunnerError) -> JSONResponse:
        if isinstance(exc, BadRequestError):
            return problem(exc.status, exc.code, exc.message)
        status, code = next(
            (found for kind, found in _STATUS.items() if isinstance(exc, kind)),
            (400, "bad-request"),
        )
        errors = exc.problems if isinstance(exc, FlowInputError) else None
        return problem(status, code, exc.message, errors)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [_describe(item) for item in exc.errors()]
        return problem(422, "invalid-request", "; ".join(errors), errors)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        code = {404: "not-found", 405: "method-not-allowed"}.get(exc.status_code, "http-error")
        response = problem(exc.status_code, code, str(exc.detail))
        response.headers.update(exc.headers or {})
        return response

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error serving %s %s", request.method, request.url.path)
        return problem(500, "internal", "an internal error occurred; it has been logged")


def _printable(text: str) -> str:
    """Text that can be sent as UTF-8: a lone surrogate from the request is escaped."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _describe(error: Any) -> str:
    where = ".".join(str(part) for part in error.get("loc", ()) if part != "body")
    return f"{where}: {error.get('msg', 'invalid')}" if where else str(error.get("msg"))


_TITLES: Final = {
    400: "Bad Request",
    404: "Not Found",
    409: "Conflict",
    405: "Method Not Allowed",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    422: "Unprocessable Content",
    500: "Internal Server Error",
    503: "Service Unavailable",
}

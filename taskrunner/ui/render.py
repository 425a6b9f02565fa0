"""How the console answers: pages rendered from the templates, with the headers every page
carries, and the errors of taskrunner shown as pages in the console's own layout.

Every console route is a `ConsoleRoute`: an error raised while serving it (an unknown
task, a database that cannot be reached, a refused form) becomes a page with the error's
status instead of the API's `application/problem+json`, and a visitor without a valid key
is sent to the login page. Templates escape everything they show (autoescape), and the
Content-Security-Policy allows no script but the app's own files.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine, Mapping
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse
from fastapi.routing import APIRoute
from fastapi.templating import Jinja2Templates
from jinja2 import Environment, FileSystemLoader, StrictUndefined

from taskrunner.errors import StoreUnavailableError, TaskrunnerError
from taskrunner.ui import present

TEMPLATES_DIR: Final = Path(__file__).resolve().parent / "templates"
CONTENT_SECURITY_POLICY: Final = (
    "default-src 'self'; script-src 'self'; "
    # Mermaid writes a <style> element into each diagram it draws; nothing else is inline.
    "style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS: Final = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
log = logging.getLogger("taskrunner.ui")


def _environment() -> Environment:
    environment = Environment(
        loader=FileSystemLoader(TEMPLATES_DIR),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters.update(present.FILTERS)
    environment.globals.update(present.GLOBALS)
    return environment


templates = Jinja2Templates(env=_environment())


class SignInNeeded(Exception):  # noqa: N818 - an outcome, not a fault
    """The visitor has no valid key: the login page says why, then comes back here."""

    def __init__(self, reason: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason


def page(
    request: Request,
    template: str,
    context: Mapping[str, Any],
    status: int = 200,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """The template rendered for `request`, with the console's headers. Every page knows
    who is looking (`viewer`), set by the route's access check."""
    viewer = getattr(request.state, "viewer", None)
    response = templates.TemplateResponse(
        request, template, {"viewer": viewer, **context}, status_code=status
    )
    response.headers.update({**SECURITY_HEADERS, **(headers or {})})
    return response


def error_page(request: Request, error: TaskrunnerError) -> Response:
    """The error as a page of the console: its status, its message, and for a database
    that cannot be reached, when to try again."""
    status = error.http_status
    if status == 500:
        log.error("%s %s failed", request.method, request.url.path, exc_info=error)
    headers = {}
    if status >= 500:
        message = "An internal error occurred; it has been logged." if status == 500 else None
        message = message or error.default_message()
        if error.retry_after is not None:
            headers["Retry-After"] = str(error.retry_after)
    else:
        message = error.message
    context = {"status": status, "title": _TITLES.get(status, "Error"), "message": message}
    return page(request, "error.html", context, status, headers)


def _to_login(request: Request, reason: str | None) -> Response:
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    target = f"/ui/login?next={quote(here, safe='')}"
    if reason:
        target += f"&reason={quote(reason, safe='')}"
    if request.headers.get("hx-request"):
        # A live fragment cannot show a login page: htmx sends the whole window there.
        return Response(status_code=204, headers={"HX-Redirect": target})
    return RedirectResponse(target, status_code=303, headers=SECURITY_HEADERS)


class ConsoleRoute(APIRoute):
    """A route of the console: its errors are pages, its visitors may have to sign in."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                return await handler(request)
            except SignInNeeded as exc:
                return _to_login(request, exc.reason)
            except StoreUnavailableError as exc:
                log.warning("%s %s: %s", request.method, request.url.path, exc.message)
                return error_page(request, exc)
            except TaskrunnerError as exc:
                return error_page(request, exc)
            except RequestValidationError as exc:
                problems = "; ".join(_named(item) for item in exc.errors())
                context = {"status": 422, "title": _TITLES[422], "message": problems}
                return page(request, "error.html", context, 422)

        return handle


def _named(error: Any) -> str:
    """A refused parameter's problem, led by the parameter's name (`flow: ...`): a page
    that only says "at most 256 characters" leaves the visitor guessing which one."""
    where = [str(part) for part in error.get("loc", ())[1:]]
    message = str(error.get("msg", "invalid"))
    return f"{'.'.join(where)}: {message}" if where else message


_TITLES: Final = {
    400: "Bad request",
    401: "Sign-in needed",
    403: "Not allowed",
    404: "Not found",
    408: "Too slow",
    409: "Conflict",
    413: "Too large",
    422: "Cannot be done as asked",
    500: "Internal error",
    503: "Database unavailable",
}

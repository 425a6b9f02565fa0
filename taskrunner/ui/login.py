"""Signing in to the console with an API key, and out again."""

from __future__ import annotations

from typing import Annotated, Final

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import RedirectResponse

from taskrunner.apikeys import ApiKeyring
from taskrunner.ui.access import check_same_origin, forget_key, keep_key
from taskrunner.ui.flows import read_sent_form
from taskrunner.ui.render import SECURITY_HEADERS, ConsoleRoute, page

router = APIRouter(prefix="/ui", route_class=ConsoleRoute, include_in_schema=False)

HOME: Final = "/ui/tasks"
MAX_KEY_CHARS: Final = 512


def _local(target: str | None) -> str:
    """Where to go after signing in: a console page of this app, never another site."""
    if target and target.startswith("/ui/") and not target.startswith("/ui//"):
        return target
    return HOME


@router.get("/login")
async def login_form(
    request: Request,
    target: Annotated[str | None, Query(alias="next", max_length=2_048)] = None,
    reason: Annotated[str | None, Query(max_length=300)] = None,
) -> Response:
    if request.app.state.runtime.settings.api_keys is None:
        return RedirectResponse(_local(target), status_code=303, headers=SECURITY_HEADERS)
    context = {"next": _local(target), "message": reason}
    return page(request, "login.html", context, headers={"Cache-Control": "no-store"})


@router.post("/login")
async def login(request: Request) -> Response:
    """Check the key; keep it in a session cookie and go back where the visitor was, or
    say why not."""
    check_same_origin(request)
    keyring: ApiKeyring | None = request.app.state.runtime.settings.api_keys
    sent = await read_sent_form(request)
    target = _local(sent.get("next"))
    if keyring is None:
        return RedirectResponse(target, status_code=303, headers=SECURITY_HEADERS)
    token = sent.get("key", "").strip()[:MAX_KEY_CHARS]
    key = keyring.find(token) if token else None
    message = None
    if key is None:
        message = "That key is not valid here." if token else "Enter an API key."
    elif key.revoked:
        message = f"The key {key.name!r} has been revoked."
    if message is not None:
        return page(request, "login.html", {"next": target, "message": message}, 401)
    response = RedirectResponse(target, status_code=303, headers=SECURITY_HEADERS)
    keep_key(request, response, token)
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    check_same_origin(request)
    response = RedirectResponse("/ui/login", status_code=303, headers=SECURITY_HEADERS)
    forget_key(request, response)
    return response

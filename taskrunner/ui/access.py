"""Who is looking at the console, and what they may do.

Without API keys configured the console is open, as the API is. With keys, a visitor signs
in with one (`/ui/login`); the browser keeps it for its session in a cookie that scripts
cannot read (HttpOnly), that no other site's request carries (SameSite=Strict), that only
the console receives (path `/ui`) and that ends with the browser session (no Max-Age). The
key is checked again on every request, so a key revoked since is refused at once.

A `read` key sees everything; a `run` key (or `admin`) may also start and cancel tasks. A
form that changes something must come from the console itself: its `Origin` (or, from an
older browser, its `Referer`) must be this app, on top of SameSite.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

from fastapi import Request, Response

from taskrunner.apikeys import ApiKeyring, Scope, scope_includes
from taskrunner.errors import ForeignFormError, InsufficientScopeError
from taskrunner.ui.render import SignInNeeded

COOKIE: Final = "taskrunner_console"
COOKIE_PATH: Final = "/ui"


@dataclass(frozen=True)
class Viewer:
    """The visitor: the name of their key (None when the console is open), and whether
    they may start and cancel tasks (and if not, why)."""

    name: str | None
    scope: Scope
    keys_configured: bool

    @property
    def can_run(self) -> bool:
        return scope_includes(self.scope, "run")

    @property
    def why_not_run(self) -> str:
        return f"the key {self.name!r} may only read: starting and cancelling need a run key"


def viewer_of(request: Request) -> Viewer:
    """The visitor, from the key in their cookie; raises `SignInNeeded` when keys are
    configured and the cookie holds none that is valid."""
    keyring: ApiKeyring | None = request.app.state.runtime.settings.api_keys
    if keyring is None:
        found = Viewer(None, "admin", keys_configured=False)
    else:
        token = request.cookies.get(COOKIE)
        if not token:
            raise SignInNeeded()
        key = keyring.find(token)
        if key is None:
            raise SignInNeeded("that key is not known here (any more): sign in again")
        if key.revoked:
            raise SignInNeeded(f"the key {key.name!r} has been revoked: sign in with another")
        found = Viewer(key.name, key.scope, keys_configured=True)
    request.state.viewer = found
    return found


def runner_of(request: Request) -> Viewer:
    """The visitor of a form that starts or cancels: signed in with a run key, and sending
    the form from the console itself."""
    check_same_origin(request)
    viewer = viewer_of(request)
    if not viewer.can_run:
        raise InsufficientScopeError(viewer.name or "", viewer.scope, "run")
    return viewer


def check_same_origin(request: Request) -> None:
    """Refuse a form sent from another site (cross-site request forgery)."""
    own = f"{request.url.scheme}://{request.url.netloc}".lower()
    origin = request.headers.get("origin")
    if origin is not None and origin != "null":
        if origin.lower().rstrip("/") != own:
            raise ForeignFormError()
        return
    referer = request.headers.get("referer")
    if referer is None:
        raise ForeignFormError("this form must be sent from the console (no Origin or Referer)")
    parts = urlsplit(referer)
    if f"{parts.scheme}://{parts.netloc}".lower() != own:
        raise ForeignFormError()


def keep_key(request: Request, response: Response, token: str) -> None:
    response.set_cookie(
        COOKIE,
        token,
        path=COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


def forget_key(request: Request, response: Response) -> None:
    response.delete_cookie(
        COOKIE,
        path=COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )

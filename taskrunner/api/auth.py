"""Who is calling: each protected endpoint names the scope it needs.

    @router.post("/flows/reload", dependencies=[require("admin")])

or, to know the caller, `caller: Annotated[ApiKey | None, require("run")]`. The scope is
declared in the OpenAPI document too, as the role of the operation's security requirement
(`security: [{"apiKey": ["admin"]}]`), which `api/openapi.py` describes further. With
keys configured (`Settings.api_keys`), a request without a key, or with one that is unknown
or revoked, is a 401 carrying `WWW-Authenticate: Bearer`; a key whose scope is below the
one needed is a 403. Without keys every request passes, as the one anonymous caller
(`None`). The check is `async` and does no I/O, so it never waits for a worker thread.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from taskrunner.apikeys import ApiKey, ApiKeyring, Scope, scope_includes
from taskrunner.errors import (
    InsufficientScopeError,
    InvalidApiKeyError,
    RevokedApiKeyError,
    UnauthenticatedError,
)

SCHEME_NAME = "apiKey"

bearer = HTTPBearer(
    auto_error=False,
    scheme_name=SCHEME_NAME,
    bearerFormat="taskrunner API key",
    description="An API key, sent as `Authorization: Bearer <key>`; each key has a scope: "
    "`read` < `run` < `admin`. Needed only when the server has API keys configured.",
)


class Require:
    """The dependency that admits a caller whose key has `scope` (or a higher one)."""

    def __init__(self, scope: Scope) -> None:
        self.scope = scope

    async def __call__(
        self,
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> ApiKey | None:
        keyring: ApiKeyring | None = request.app.state.runtime.settings.api_keys
        if keyring is None:
            return None
        if credentials is None:
            if "authorization" in request.headers:
                raise UnauthenticatedError(
                    "the Authorization header must be `Bearer <key>`, with an API key"
                )
            raise UnauthenticatedError()
        key = keyring.find(credentials.credentials.strip())
        if key is None:
            raise InvalidApiKeyError()
        if key.revoked:
            raise RevokedApiKeyError(key.name)
        if not scope_includes(key.scope, self.scope):
            raise InsufficientScopeError(key.name, key.scope, self.scope)
        return key

    def __repr__(self) -> str:
        return f"require({self.scope!r})"


def require(scope: Scope) -> Any:
    """The dependency for an endpoint that needs `scope`: `dependencies=[require("run")]`.

    (`Any`, as FastAPI's own `Security` is typed, so that it fits both in `dependencies`
    and in `Annotated`.)"""
    return Security(Require(scope), scopes=[scope])

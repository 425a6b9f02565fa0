"""The OpenAPI document, with every error response described as what the server sends:
`application/problem+json`, shaped as `Problem`; and, on each operation that needs an API
key, the scope it needs and its 401 and 403 answers (on a server with API keys
configured: without, no operation needs one, and none says so)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from taskrunner.api.auth import SCHEME_NAME
from taskrunner.api.problems import MEDIA_TYPE, Problem

_REFERENCE = {"$ref": "#/components/schemas/Problem"}


def install(app: FastAPI) -> None:
    def document() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(
                title=app.title, version=app.version, summary=app.summary, routes=app.routes
            )
            runtime = getattr(app.state, "runtime", None)
            if runtime is not None and runtime.settings.api_keys is None:
                document = _without_security(document)
            app.openapi_schema = _with_problems(_with_scopes(document))
        return app.openapi_schema

    app.openapi = document  # type: ignore[method-assign]


def _with_problems(document: dict[str, Any]) -> dict[str, Any]:
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    schemas["Problem"] = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            for status, response in operation.get("responses", {}).items():
                if status[0] in "45":
                    response["content"] = {MEDIA_TYPE: {"schema": _REFERENCE}}
                    if status == "422":
                        response["description"] = "The request cannot be served as it is."
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    return document


def _with_scopes(document: dict[str, Any]) -> dict[str, Any]:
    """Say in words, and with its 401 and 403, what each protected operation needs."""
    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            roles = [
                role
                for requirement in operation.get("security", ())
                for role in requirement.get(SCHEME_NAME, ())
            ]
            if not roles:
                continue
            scope = roles[0]
            needs = f"Needs an API key of scope `{scope}` or above, when keys are configured."
            described = operation.get("description")
            operation["description"] = f"{described}\n\n{needs}" if described else needs
            responses = operation.setdefault("responses", {})
            responses["401"] = {"description": "No API key, or one that is unknown or revoked."}
            responses["403"] = {"description": f"The API key's scope is below `{scope}`."}
    return document


def _without_security(document: dict[str, Any]) -> dict[str, Any]:
    """The document of a server with no API keys configured: nothing needs one, so no
    operation says it does (a client or a fuzzer would otherwise expect 401s)."""
    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            operation.pop("security", None)
    document.get("components", {}).pop("securitySchemes", None)
    return document

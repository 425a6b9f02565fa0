"""The OpenAPI document, with every error response described as what the server sends:
`application/problem+json`, shaped as `Problem`."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from taskrunner.api.problems import MEDIA_TYPE, Problem

_REFERENCE = {"$ref": "#/components/schemas/Problem"}


def install(app: FastAPI) -> None:
    def document() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = _with_problems(
                get_openapi(
                    title=app.title,
                    version=app.version,
                    summary=app.summary,
                    routes=app.routes,
                )
            )
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

"""The API's browsable documentation, `/docs` (Swagger UI) and `/redoc`, and the console's
static files at `/ui/static`: everything these pages load is served by the app.

FastAPI's own doc pages load Swagger UI and Redoc from a CDN (and Redoc its fonts from
Google), so offline they are blank. Here the same pages (`get_swagger_ui_html`,
`get_redoc_html`) point at the pinned copies under `taskrunner/ui/static/vendor/`, and
carry a Content-Security-Policy that lets them load nothing from another host. Their
only inline script, Swagger UI's start-up call, is allowed by its sha256 hash, computed
from the page itself, so no other inline script can run. Styles may be inline:
Swagger UI and Redoc both set them from their scripts (Redoc inserts `<style>` elements),
and a stylesheet cannot run code. Like `/openapi.json`, the pages need no API key.
"""

from __future__ import annotations

import base64
import hashlib
import re
from pathlib import PurePosixPath

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from taskrunner.ui import STATIC

STATIC_PREFIX = "/ui/static"
SWAGGER_UI = f"{STATIC_PREFIX}/vendor/swagger-ui-dist"
REDOC = f"{STATIC_PREFIX}/vendor/redoc"

_TEXT_FILES = frozenset({"LICENSE", "NOTICE"})
# An inline <script> with no `src`: its text is what a hash in the policy must match.
_INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)


class StaticAssets(StaticFiles):
    """The files under `taskrunner/ui/static`. The vendored packages change only with a
    release of taskrunner, so browsers keep them a day without asking; the console's own
    files are revalidated (by ETag) each time, so an upgrade shows at once. A package's
    `LICENSE` and `NOTICE` are shown as text, not downloaded."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        if response.status_code in (200, 304):
            if PurePosixPath(path).name in _TEXT_FILES:
                response.headers["content-type"] = "text/plain; charset=utf-8"
            vendored = path.startswith("vendor/")
            response.headers["cache-control"] = "public, max-age=86400" if vendored else "no-cache"
            response.headers["x-content-type-options"] = "nosniff"
        return response


def content_security_policy(html: str, *, workers: bool = False) -> str:
    """Only this origin, with the page's own inline scripts allowed by their hashes;
    `workers` lets the page start a worker from a `blob:` URL, as Redoc does for its
    search."""
    hashes = [
        "'sha256-" + base64.b64encode(hashlib.sha256(script.encode()).digest()).decode() + "'"
        for script in _INLINE_SCRIPT.findall(html)
    ]
    directives = [
        "default-src 'self'",
        " ".join(["script-src 'self'", *hashes]),
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
        "font-src 'self' data:",
        "connect-src 'self'",
        "worker-src 'self' blob:" if workers else "worker-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'self'",
    ]
    return "; ".join(directives)


def _secured(page: HTMLResponse, *, workers: bool = False) -> HTMLResponse:
    html = bytes(page.body).decode()
    page.headers["content-security-policy"] = content_security_policy(html, workers=workers)
    return page


def install(app: FastAPI) -> None:
    """Mount the static files and add `/docs` and `/redoc` (the app is created with
    `docs_url=None, redoc_url=None`, so FastAPI adds neither of its own)."""
    app.mount(STATIC_PREFIX, StaticAssets(directory=STATIC), name="ui-static")

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        page = get_swagger_ui_html(
            openapi_url=f"{root}{app.openapi_url}",
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{root}{SWAGGER_UI}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{SWAGGER_UI}/swagger-ui.css",
            swagger_favicon_url=f"{root}{SWAGGER_UI}/favicon-32x32.png",
            # No badge from the online validator, which would send the document away.
            swagger_ui_parameters={**(app.swagger_ui_parameters or {}), "validatorUrl": None},
        )
        return _secured(page)

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        page = get_redoc_html(
            openapi_url=f"{root}{app.openapi_url}",
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{root}{REDOC}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{SWAGGER_UI}/favicon-32x32.png",
            with_google_fonts=False,
        )
        return _secured(page, workers=True)

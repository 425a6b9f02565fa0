"""`/docs`, `/redoc` and the static files, without a server or a database: every URL the
doc pages load is the app's own, their policy allows exactly their own inline script,
and the vendored files are served as committed. (In a real browser: tests/browser.)"""

from __future__ import annotations

import base64
import hashlib
import re

import pytest
from fastapi.testclient import TestClient

from taskrunner.api import create_app
from taskrunner.ui import VENDOR


@pytest.fixture(scope="module")
def app_client() -> TestClient:
    # Not entered: the lifespan (database, flows) is not needed to serve these pages.
    return TestClient(create_app())


def _loaded_urls(html: str) -> list[str]:
    return re.findall(r'(?:src|href)="([^"]*)"', html) + re.findall(r"url: '([^']*)'", html)


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_a_doc_page_loads_only_from_the_app(app_client: TestClient, page: str) -> None:
    response = app_client.get(page)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    urls = _loaded_urls(response.text)
    assert urls
    assert all(url.startswith("/") and not url.startswith("//") for url in urls), urls
    for url in urls:
        assert app_client.get(url).status_code == 200, url
    assert "fonts.googleapis" not in response.text
    assert "cdn." not in response.text


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_a_doc_page_allows_only_its_own_inline_script(app_client: TestClient, page: str) -> None:
    response = app_client.get(page)
    policy = dict(
        directive.strip().split(" ", 1)
        for directive in response.headers["content-security-policy"].split(";")
    )
    assert policy["default-src"] == "'self'"
    assert policy["connect-src"] == "'self'"
    assert "'unsafe-inline'" not in policy["script-src"]
    assert "'unsafe-eval'" not in policy["script-src"]
    inline = re.findall(r"<script>(.*?)</script>", response.text, re.DOTALL)
    hashes = {
        "'sha256-" + base64.b64encode(hashlib.sha256(script.encode()).digest()).decode() + "'"
        for script in inline
    }
    assert set(policy["script-src"].split()) == {"'self'", *hashes}
    assert len(inline) == (1 if page == "/docs" else 0)


def test_swagger_ui_asks_no_online_validator(app_client: TestClient) -> None:
    assert '"validatorUrl": null' in app_client.get("/docs").text


def test_the_doc_pages_are_not_operations_of_the_api(app_client: TestClient) -> None:
    paths = app_client.get("/openapi.json").json()["paths"]
    assert not {"/docs", "/redoc"} & paths.keys()
    assert not any(path.startswith("/ui/static") for path in paths)


def test_a_vendored_file_is_served_as_committed_and_kept_a_day(app_client: TestClient) -> None:
    response = app_client.get("/ui/static/vendor/mermaid/mermaid.min.js")
    assert response.status_code == 200
    assert response.content == (VENDOR / "mermaid" / "mermaid.min.js").read_bytes()
    assert response.headers["content-type"].startswith("text/javascript")
    assert response.headers["cache-control"] == "public, max-age=86400"
    assert response.headers["x-content-type-options"] == "nosniff"
    again = app_client.get(
        "/ui/static/vendor/mermaid/mermaid.min.js",
        headers={"if-none-match": response.headers["etag"]},
    )
    assert again.status_code == 304


@pytest.mark.parametrize("path", ["mermaid/LICENSE", "swagger-ui-dist/NOTICE"])
def test_a_licence_is_shown_as_text(app_client: TestClient, path: str) -> None:
    response = app_client.get(f"/ui/static/vendor/{path}")
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    assert response.content == (VENDOR / path).read_bytes()


@pytest.mark.parametrize(
    "path",
    [
        "/ui/static/vendor/nothing.js",
        "/ui/static/../__init__.py",
        "/ui/static/%2e%2e/__init__.py",
        "/ui/static/vendor/../../__init__.py",
    ],
)
def test_nothing_outside_the_static_files_is_served(app_client: TestClient, path: str) -> None:
    response = app_client.get(path)
    assert response.status_code == 404
    assert "STATIC" not in response.text

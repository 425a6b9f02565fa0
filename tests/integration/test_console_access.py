"""Signing in to the console, on both backends: without keys configured there is no login;
with keys, a visitor without a valid key is sent to the login page (and comes back after),
the key is kept in an HttpOnly, SameSite=Strict session cookie for `/ui`, a read key sees
everything but may not start or cancel (the controls say why), a run key may, a key
revoked or unknown sends the visitor back to the login page with a message, and forms
sent from another site are refused."""

from __future__ import annotations

import dataclasses
import re
import uuid
from collections.abc import Iterator
from typing import Final

import pytest
from fastapi.testclient import TestClient

from taskrunner.api import create_app
from taskrunner.apikeys import ApiKeyring, new_key
from taskrunner.service import TaskService
from taskrunner.settings import Settings

SAME_ORIGIN: Final = {"Origin": "http://testserver"}
READ: Final = new_key("viewer", "read")
RUN: Final = new_key("operator", "run")
REVOKED: Final = new_key("former", "run")
KEYRING: Final = ApiKeyring((READ.key, RUN.key, dataclasses.replace(REVOKED.key, revoked=True)))
HELLO: Final = {"input.text": "hi", "input.a": "1", "input.b": "2", "mode": "wait"}


@pytest.fixture
def guarded(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(dataclasses.replace(settings, api_keys=KEYRING))) as client:
        yield client


def sign_in(client: TestClient, token: str, target: str = "/ui/tasks") -> None:
    response = client.post(
        "/ui/login",
        data={"key": token, "next": target},
        headers=SAME_ORIGIN,
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    assert response.headers["location"] == target


def test_without_keys_there_is_no_login(client: TestClient) -> None:
    response = client.get("/ui/login?next=/ui/flows", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/ui/flows"
    assert "Sign out" not in client.get("/ui/tasks").text


def test_a_visitor_without_a_key_is_asked_for_one_and_comes_back(guarded: TestClient) -> None:
    response = guarded.get("/ui/flows/echo_add", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/ui/login?next=%2Fui%2Fflows%2Fecho_add"
    login = guarded.get(response.headers["location"])
    assert login.status_code == 200
    assert '<label for="key">API key</label>' in login.text
    assert 'value="/ui/flows/echo_add"' in login.text
    # The API itself is untouched: it still wants a bearer key.
    assert guarded.get("/tasks").status_code == 401


def test_the_key_is_kept_in_a_session_cookie_only_the_console_receives(
    guarded: TestClient,
) -> None:
    response = guarded.post(
        "/ui/login",
        data={"key": READ.token, "next": "/ui/flows"},
        headers=SAME_ORIGIN,
        follow_redirects=False,
    )
    assert response.status_code == 303
    cookie = response.headers["set-cookie"]
    assert cookie.startswith("taskrunner_console=")
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie or "SameSite=Strict" in cookie
    assert "Path=/ui" in cookie
    assert "Max-Age" not in cookie
    assert "expires" not in cookie.lower()
    page = guarded.get("/ui/flows")
    assert page.status_code == 200
    assert "Key viewer (read)" in re.sub(r"<[^>]+>", "", page.text)

    out = guarded.post("/ui/logout", headers=SAME_ORIGIN, follow_redirects=False)
    assert out.status_code == 303
    assert 'taskrunner_console=""' in out.headers["set-cookie"]
    assert "Max-Age=0" in out.headers["set-cookie"]
    assert guarded.get("/ui/flows", follow_redirects=False).status_code == 303


@pytest.mark.parametrize(
    ("token", "message"),
    [
        ("", "Enter an API key."),
        ("trk_not-a-key", "That key is not valid here."),
        (REVOKED.token, "The key &#39;former&#39; has been revoked."),
    ],
)
def test_a_bad_key_is_refused_on_the_login_page(
    guarded: TestClient, token: str, message: str
) -> None:
    response = guarded.post(
        "/ui/login", data={"key": token, "next": "/ui/tasks"}, headers=SAME_ORIGIN
    )
    assert response.status_code == 401
    assert message in response.text
    assert "set-cookie" not in response.headers


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        (REVOKED.token, "has been revoked"),
        ("trk_forged", "not known here"),
    ],
)
def test_a_cookie_with_a_revoked_or_unknown_key_leads_back_to_login(
    guarded: TestClient, token: str, reason: str
) -> None:
    guarded.cookies.set("taskrunner_console", token, domain="testserver.local", path="/ui")
    response = guarded.get("/ui/tasks", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"].startswith("/ui/login?next=%2Fui%2Ftasks&reason=")
    login = guarded.get(response.headers["location"])
    assert reason in login.text
    # A live fragment asks htmx to send the whole window to the login page.
    rows = guarded.get("/ui/tasks/rows", headers={"HX-Request": "true"}, follow_redirects=False)
    assert rows.status_code == 204
    assert rows.headers["hx-redirect"].startswith("/ui/login?")


def test_a_read_key_sees_everything_but_cannot_start_or_cancel(
    guarded: TestClient, service: TaskService
) -> None:
    queued = service.enqueue_task("echo_add", {"text": "x", "a": 1, "b": 2}).task.id
    sign_in(guarded, READ.token)
    assert str(queued)[:8] in guarded.get("/ui/tasks").text
    page = guarded.get(f"/ui/tasks/{queued}")
    assert '<button type="submit" disabled aria-describedby="cancel-why">' in page.text
    assert "may only read: starting and cancelling need a run key" in page.text
    flow = guarded.get("/ui/flows/echo_add")
    assert '<fieldset disabled aria-describedby="start-why">' in flow.text
    assert (
        guarded.post("/ui/validate", data={"source": "x: 1"}, headers=SAME_ORIGIN).status_code
        == 200
    )

    refused = guarded.post("/ui/flows/echo_add/tasks", data=HELLO, headers=SAME_ORIGIN)
    assert refused.status_code == 403
    assert "Not allowed" in refused.text
    cancel = guarded.post(f"/ui/tasks/{queued}/cancel", headers=SAME_ORIGIN)
    assert cancel.status_code == 403
    assert service.get_task(queued).status == "pending"


def test_a_run_key_starts_and_cancels(guarded: TestClient, service: TaskService) -> None:
    sign_in(guarded, RUN.token)
    started = guarded.post(
        "/ui/flows/echo_add/tasks",
        data={**HELLO, "mode": "queue"},
        headers=SAME_ORIGIN,
        follow_redirects=False,
    )
    assert started.status_code == 303
    task_id = started.headers["location"].removeprefix("/ui/tasks/")
    page = guarded.get(f"/ui/tasks/{task_id}")
    assert '<button type="submit" class="danger">Cancel task</button>' in page.text
    cancelled = guarded.post(
        f"/ui/tasks/{task_id}/cancel", headers=SAME_ORIGIN, follow_redirects=False
    )
    assert cancelled.status_code == 303
    assert service.get_task(uuid.UUID(task_id)).status == "cancelled"


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "https://evil.example"},
        {"Origin": "http://testserver.evil.example"},
        {"Referer": "https://evil.example/ui/flows/echo_add"},
        {},
    ],
)
def test_forms_from_another_site_are_refused(
    guarded: TestClient, service: TaskService, headers: dict[str, str]
) -> None:
    sign_in(guarded, RUN.token)
    for path, data in (
        ("/ui/flows/echo_add/tasks", HELLO),
        ("/ui/validate", {"source": "x: 1"}),
        ("/ui/logout", {}),
        ("/ui/login", {"key": RUN.token}),
    ):
        response = guarded.post(path, data=data, headers=headers, follow_redirects=False)
        assert response.status_code == 403, path
        assert "not sent from the console" in response.text or "must be sent" in response.text
    assert service.list_tasks().items == []
    referer = guarded.post(
        "/ui/flows/echo_add/tasks",
        data=HELLO,
        headers={"Referer": "http://testserver/ui/flows/echo_add"},
        follow_redirects=False,
    )
    assert referer.status_code == 303


@pytest.mark.parametrize(
    "target", ["https://evil.example/", "//evil.example/ui", "/tasks", "/ui//x"]
)
def test_signing_in_never_leads_off_the_console(guarded: TestClient, target: str) -> None:
    response = guarded.post(
        "/ui/login",
        data={"key": READ.token, "next": target},
        headers=SAME_ORIGIN,
        follow_redirects=False,
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/ui/tasks"

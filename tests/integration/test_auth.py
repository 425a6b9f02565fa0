"""Authentication, on both backends: every endpoint x every scope, no key, an unknown key, a
revoked key and a header that is not `Bearer`; idempotency keys scoped per API key; the
OpenAPI document's security; `serve` refusing to listen beyond loopback without keys, and
stopping on a malformed key file; and `taskrunner api-key new`, whose printed key
authenticates against its printed line. The key file's parser is tested on its own in
`tests/unit/test_apikeys.py`."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from taskrunner.api import create_app
from taskrunner.apikeys import ApiKeyring, NewKey, Scope, new_key
from taskrunner.cli import app as cli_app
from taskrunner.settings import Settings

PROBLEM: Final = "application/problem+json"
HELLO: Final = {"text": "hello", "a": 2, "b": 3}
BROKEN_FLOW: Final = "name: broken\nstart: nowhere\nstates: {}\n"
EVERYWHERE: Final = "0.0.0.0"  # noqa: S104 - the address that serve must refuse
ENTRY: Final = [sys.executable, "-c", "from taskrunner.cli import main; main()"]

KEYS: Final[dict[str, NewKey]] = {
    scope: new_key(f"{scope}-key", scope) for scope in ("read", "run", "admin")
}
REVOKED: Final = new_key("old-key", "admin")
KEYRING: Final = ApiKeyring(
    (*(made.key for made in KEYS.values()), dataclasses.replace(REVOKED.key, revoked=True))
)
UNKNOWN_TOKEN: Final = new_key("stranger", "admin").token

# Each protected endpoint: (method, path, the scope it needs, what it answers once admitted).
# `{task}` is a pending task made for the test; `{other}` a task id that does not exist.
ENDPOINTS: Final = [
    ("GET", "/tasks", "read", 200),
    ("GET", "/tasks/{task}", "read", 200),
    ("GET", "/tasks/{task}/steps", "read", 200),
    ("GET", "/flows", "read", 200),
    ("GET", "/flows/echo_add", "read", 200),
    ("GET", "/schema/flow.json", "read", 200),
    ("GET", "/metrics", "read", 200),
    ("POST", "/flows/validate", "read", 200),
    ("POST", "/tasks", "run", 201),
    ("POST", "/tasks/{task}/cancel", "run", 200),
    ("POST", "/tasks/{other}/cancel", "run", 404),
    ("POST", "/flows/reload", "admin", 200),
]
OPEN_ENDPOINTS: Final = [
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/openapi.json"),
    ("GET", "/docs"),
]
# Who calls: the header sent, and for a refusal (status, problem type).
STRANGERS: Final = {
    "no key": (None, 401, "unauthenticated"),
    "not bearer": ("Basic dXNlcjpwYXNz", 401, "unauthenticated"),
    "empty bearer": ("Bearer ", 401, "unauthenticated"),
    "unknown key": (f"Bearer {UNKNOWN_TOKEN}", 401, "invalid-api-key"),
    "revoked key": (f"Bearer {REVOKED.token}", 401, "revoked-api-key"),
}
SCOPES: Final[tuple[Scope, ...]] = ("read", "run", "admin")
RANK: Final = {scope: index for index, scope in enumerate(SCOPES)}


def bearer(scope: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {KEYS[scope].token}"}


@pytest.fixture
def secured(settings: Settings) -> Iterator[TestClient]:
    """The API with the keys of KEYRING configured."""
    chosen = dataclasses.replace(settings, api_keys=KEYRING)
    with TestClient(create_app(chosen)) as client:
        yield client


def call(client: TestClient, method: str, path: str, headers: dict[str, str] | None = None) -> Any:
    if path == "/flows/validate":
        return client.post(path, content=BROKEN_FLOW, headers=headers)
    if path == "/tasks" and method == "POST":
        return client.post("/tasks", json=HELLO, headers=headers)
    return client.request(method, path, headers=headers)


def pending_task(client: TestClient) -> str:
    response = client.post(
        "/tasks", json=HELLO, headers={"Prefer": "respond-async", **bearer("admin")}
    )
    assert response.status_code == 202, response.text
    task_id: str = response.json()["id"]
    return task_id


def assert_problem(response: Any, status: int, problem: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body = response.json()
    assert body["type"] == f"urn:taskrunner:problem:{problem}"
    assert body["status"] == status


# -- every endpoint x every caller ----------------------------------------------------------


@pytest.mark.parametrize("stranger", list(STRANGERS))
@pytest.mark.parametrize(("method", "path", "needed", "admitted"), ENDPOINTS)
def test_an_endpoint_refuses_a_caller_without_a_valid_key(
    secured: TestClient, method: str, path: str, needed: str, admitted: int, stranger: str
) -> None:
    header, status, problem = STRANGERS[stranger]
    task = pending_task(secured)
    headers = {"Authorization": header} if header is not None else None
    url = path.format(task=task, other=uuid.uuid4())
    response = call(secured, method, url, headers)
    assert_problem(response, status, problem)
    assert response.headers["www-authenticate"].startswith("Bearer ")
    if stranger == "revoked key":
        assert "revoked" in response.json()["detail"]
        assert 'error="invalid_token"' in response.headers["www-authenticate"]
    # Refused before anything was done: the pending task is still pending, and alone.
    listed = secured.get("/tasks", headers=bearer("read")).json()["items"]
    assert [(item["id"], item["status"]) for item in listed] == [(task, "pending")]


@pytest.mark.parametrize("scope", SCOPES)
@pytest.mark.parametrize(("method", "path", "needed", "admitted"), ENDPOINTS)
def test_an_endpoint_admits_exactly_the_scopes_that_include_the_one_it_needs(
    secured: TestClient, method: str, path: str, needed: str, admitted: int, scope: str
) -> None:
    task = pending_task(secured)
    url = path.format(task=task, other=uuid.uuid4())
    response = call(secured, method, url, bearer(scope))
    if RANK[scope] >= RANK[needed]:
        assert response.status_code == admitted, response.text
        assert "www-authenticate" not in response.headers
    else:
        assert_problem(response, 403, "insufficient-scope")
        assert f"{scope}-key" in response.json()["detail"]
        challenge = response.headers["www-authenticate"]
        assert 'error="insufficient_scope"' in challenge
        assert f'scope="{needed}"' in challenge


@pytest.mark.parametrize("stranger", list(STRANGERS))
@pytest.mark.parametrize(("method", "path"), OPEN_ENDPOINTS)
def test_health_and_the_api_description_stay_open(
    secured: TestClient, method: str, path: str, stranger: str
) -> None:
    header = STRANGERS[stranger][0]
    response = secured.request(method, path, headers={"Authorization": header} if header else None)
    assert response.status_code == 200, response.text


def test_without_keys_the_api_is_open_to_every_caller(settings: Settings) -> None:
    assert settings.api_keys is None
    with TestClient(create_app(settings)) as client:
        for method, path, _, admitted in ENDPOINTS:
            for header in (None, f"Bearer {UNKNOWN_TOKEN}"):
                url = path.format(task=pending_task(client), other=uuid.uuid4())
                response = call(client, method, url, {"Authorization": header} if header else None)
                assert response.status_code == admitted, (method, path, response.text)


def test_a_refusal_for_a_bad_task_id_says_nothing_before_the_key_is_checked(
    secured: TestClient,
) -> None:
    assert_problem(secured.get("/tasks/not-a-uuid"), 401, "unauthenticated")
    assert secured.get("/tasks/not-a-uuid", headers=bearer("read")).status_code == 422


# -- idempotency keys, per API key ----------------------------------------------------------


def start(client: TestClient, key: str, scope: str) -> Any:
    return client.post(
        "/tasks",
        json=HELLO,
        headers={"Idempotency-Key": key, "Prefer": "respond-async", **bearer(scope)},
    )


def test_one_idempotency_key_under_two_api_keys_starts_two_tasks(secured: TestClient) -> None:
    first, second = start(secured, "order-42", "run"), start(secured, "order-42", "admin")
    assert (first.status_code, second.status_code) == (202, 202)
    assert first.json()["id"] != second.json()["id"]
    again = start(secured, "order-42", "run")
    assert again.status_code == 202
    assert again.json()["id"] == first.json()["id"]
    listed = secured.get("/tasks", headers=bearer("read")).json()["items"]
    assert len(listed) == 2


def test_without_keys_an_idempotency_key_has_one_scope(settings: Settings) -> None:
    with TestClient(create_app(settings)) as client:
        ids = {
            client.post(
                "/tasks",
                json=HELLO,
                headers={"Idempotency-Key": "order-42", "Authorization": header},
            ).json()["id"]
            for header in ("Bearer a", "Bearer b", "")
        }
        assert len(ids) == 1


def test_idempotency_keys_keep_their_length_and_pattern_under_a_long_key_name(
    settings: Settings,
) -> None:
    long_name = new_key("n" * 64, "run")
    chosen = dataclasses.replace(settings, api_keys=ApiKeyring((long_name.key,)))
    auth = {"Authorization": f"Bearer {long_name.token}", "Prefer": "respond-async"}
    with TestClient(create_app(chosen)) as client:
        longest = "k" * 255
        first = client.post("/tasks", json=HELLO, headers={"Idempotency-Key": longest, **auth})
        again = client.post("/tasks", json=HELLO, headers={"Idempotency-Key": longest, **auth})
        assert (first.status_code, again.status_code) == (202, 202)
        assert first.json()["id"] == again.json()["id"]
        other = client.post(
            "/tasks", json=HELLO, headers={"Idempotency-Key": "k" * 254 + "j", **auth}
        )
        assert other.json()["id"] != first.json()["id"]
        for refused in ("k" * 256, "has space"):
            response = client.post(
                "/tasks", json=HELLO, headers={"Idempotency-Key": refused, **auth}
            )
            assert_problem(response, 422, "invalid-request")


# -- the OpenAPI document --------------------------------------------------------------------


def test_openapi_declares_the_bearer_scheme_and_each_operations_scope(
    secured: TestClient,
) -> None:
    document = secured.get("/openapi.json").json()
    scheme = document["components"]["securitySchemes"]["apiKey"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    for method, path, needed, _ in ENDPOINTS:
        template = path.replace("{task}", "{task_id}").replace("{other}", "{task_id}")
        template = template.replace("/flows/echo_add", "/flows/{name}")
        operation = document["paths"][template][method.lower()]
        assert operation["security"] == [{"apiKey": [needed]}], (method, path)
        assert f"scope `{needed}`" in operation["description"]
        for status in ("401", "403"):
            content = operation["responses"][status]["content"]
            assert content[PROBLEM]["schema"] == {"$ref": "#/components/schemas/Problem"}
    for path in ("/healthz", "/readyz"):
        assert "security" not in document["paths"][path]["get"]


def test_without_keys_no_operation_says_it_needs_one(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    assert "securitySchemes" not in document.get("components", {})
    for operations in document["paths"].values():
        for operation in operations.values():
            assert "security" not in operation
            assert not {"401", "403"} & set(operation["responses"])


# -- serve: loopback only without keys -------------------------------------------------------


def taskrunner(args: list[str], cwd: Path, **extra: str) -> subprocess.CompletedProcess[str]:
    """`taskrunner ARGS` as a shell runs it, with no taskrunner setting but `extra`."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key != "DATABASE_URL" and not key.startswith("TASKRUNNER_")
    }
    env.update(extra)
    return subprocess.run(
        [*ENTRY, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize("host", [EVERYWHERE, "::", "192.0.2.7", "example.org"])
def test_serve_refuses_a_non_loopback_host_without_keys(host: str, tmp_path: Path) -> None:
    finished = taskrunner(["serve", "--host", host], tmp_path)
    assert finished.returncode == 2
    assert finished.stdout == ""
    assert finished.stderr.splitlines() == [
        f"error: --host {host} is not a loopback address and no API keys are configured: "
        "set TASKRUNNER_API_KEYS_FILE (see `taskrunner api-key new`), or pass --insecure "
        "to serve without authentication"
    ]
    assert not (tmp_path / "var").exists()  # refused before any database was opened


@pytest.mark.parametrize(
    ("host", "extra", "env"),
    [
        ("127.0.0.1", [], {}),
        ("127.0.0.2", [], {}),
        ("::1", [], {}),
        ("localhost", [], {}),
        (EVERYWHERE, ["--insecure"], {}),
        (EVERYWHERE, [], {"TASKRUNNER_API_KEYS": KEYS["read"].key.line()}),
    ],
)
def test_serve_listens_on_loopback_or_with_keys_or_when_told_it_is_insecure(
    host: str, extra: list[str], env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from taskrunner.api import server

    served: list[tuple[str, object]] = []
    monkeypatch.setattr(
        server, "serve", lambda app, settings, host, port: served.append((host, app))
    )
    for name in ("TASKRUNNER_API_KEYS", "TASKRUNNER_API_KEYS_FILE"):
        monkeypatch.delenv(name, raising=False)
    result = CliRunner().invoke(cli_app, ["serve", "--host", host, *extra], env=env)
    assert result.exit_code == 0, result.output
    assert [host for host, _ in served] == [host]


def test_a_malformed_key_file_stops_a_command_with_one_line_and_exit_2(tmp_path: Path) -> None:
    path = tmp_path / "keys"
    path.write_text(f"{KEYS['run'].key.line()}\nci run\n")
    finished = taskrunner(["serve"], tmp_path, TASKRUNNER_API_KEYS_FILE=str(path))
    assert finished.returncode == 2
    assert finished.stderr.splitlines() == [
        f"error: {path}:2: expected `NAME SCOPE sha256:HEX [revoked]`, found 2 field(s)"
    ]


# -- api-key new -----------------------------------------------------------------------------


@pytest.mark.parametrize("as_json", [False, True])
def test_a_new_key_authenticates_against_its_printed_line(
    settings: Settings, as_json: bool
) -> None:
    result = CliRunner().invoke(
        cli_app, ["api-key", "new", "--name", "deploy", "--scope", "run", *(["--json"] * as_json)]
    )
    assert result.exit_code == 0, result.output
    if as_json:
        printed = json.loads(result.stdout)
        token, line = printed["key"], printed["line"]
        assert (printed["name"], printed["scope"]) == ("deploy", "run")
    else:
        rows = dict(row.split(maxsplit=1) for row in result.stdout.splitlines())
        token, line = rows["key"], rows["line"]
    assert token not in line
    assert line.startswith("deploy run sha256:")
    configured = Settings.from_env({"TASKRUNNER_API_KEYS": line}).api_keys
    chosen = dataclasses.replace(settings, api_keys=configured)
    with TestClient(create_app(chosen)) as client:
        auth = {"Authorization": f"Bearer {token}"}
        assert client.post("/tasks", json=HELLO, headers=auth).status_code == 201
        assert client.get("/tasks", headers=auth).status_code == 200
        wrong = {"Authorization": f"Bearer {token[:-1]}"}
        assert_problem(client.get("/tasks", headers=wrong), 401, "invalid-api-key")


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--name", "two words"], "is not a key name"),
        (["--name", "ci", "--scope", "root"], "'root' is not one of"),
        (["--scope", "run"], "Missing option '--name'"),
    ],
)
def test_api_key_new_refuses_a_bad_name_or_scope(
    args: list[str], says: str, tmp_path: Path
) -> None:
    finished = taskrunner(["api-key", "new", *args], tmp_path)
    assert finished.returncode == 2
    assert says in finished.stderr
    assert "Traceback" not in finished.stderr
    assert finished.stdout == ""

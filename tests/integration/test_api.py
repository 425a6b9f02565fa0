"""The HTTP API end to end, on both backends (the `client` fixture runs every test on SQLite
and on PostgreSQL): the happy paths, the OpenAPI document, a battery of hostile requests
that must each get a located 4xx problem and never a 5xx, and content that must round-trip
exactly."""

from __future__ import annotations

import base64
import gc
import json
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final
from urllib.parse import parse_qsl

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from taskrunner.api import create_app
from taskrunner.api.limits import MAX_DRAIN_BYTES
from taskrunner.cli import app as cli_app
from taskrunner.settings import Settings

ROOT: Final = Path(__file__).resolve().parents[2]
FLOWS: Final = ROOT / "taskrunner" / "flows"
MIB: Final = 1024 * 1024
PROBLEM: Final = "application/problem+json"
HELLO: Final = {"text": "hello", "a": 2, "b": 3}
JSON_HEADERS: Final = {"content-type": "application/json"}
PROBLEM_KEYS: Final = {"file", "line", "column", "code", "path", "message", "hint", "severity"}
SUMMARY_KEYS: Final = {
    "id",
    "flow",
    "flow_version",
    "status",
    "current_state",
    "error",
    "cancel_requested",
    "created_at",
    "updated_at",
    "started_at",
    "finished_at",
    "parent_id",
    "child_key",
}
OPERATIONS: Final = {
    ("/tasks", "post"),
    ("/tasks", "get"),
    ("/tasks/{task_id}", "get"),
    ("/tasks/{task_id}/cancel", "post"),
    ("/tasks/{task_id}/steps", "get"),
    ("/flows", "get"),
    ("/flows/{name}", "get"),
    ("/schema/flow.json", "get"),
    ("/flows/validate", "post"),
    ("/flows/reload", "post"),
    ("/healthz", "get"),
    ("/readyz", "get"),
}

BROKEN_FLOW: Final = """\
name: broken
input:
  text: {type: string}
start: echo
states:
  echo:
    type: task
    tool: echo
    args:
      text: $input.text
    next: ad
  add:
    type: task
    tool: multiply
    args:
      a: 1
      b: 2
    next: done
  done:
    type: succeed
"""


# -- helpers ------------------------------------------------------------------------------


def media_type(response: Any) -> str:
    return str(response.headers.get("content-type", "")).split(";")[0].strip()


def assert_problem(response: Any, *expected: int) -> dict[str, Any]:
    """A 4xx `application/problem+json` answer with a status among `expected` and a detail
    that a person can act on (no Python internals)."""
    status = response.status_code
    assert 400 <= status < 500, (status, response.text[:500])
    assert status in expected, (status, response.text[:500])
    assert media_type(response) == PROBLEM, response.headers.get("content-type")
    body = response.json()
    assert isinstance(body, dict), body
    assert {"type", "title", "status", "detail"} <= set(body), body
    assert body["status"] == status, body
    assert isinstance(body["type"], str), body
    assert body["type"], body
    assert isinstance(body["title"], str), body
    assert body["title"], body
    detail = body["detail"]
    assert isinstance(detail, str), body
    assert detail.strip(), body
    assert "Traceback" not in detail, detail
    assert re.search(r"\bsys\.\w", detail) is None, f"detail leaks Python internals: {detail}"
    return body


@pytest.fixture
def quiet(client: TestClient) -> TestClient:
    """The same running application, but a server error is answered (500), not raised: a
    hostile request must be judged by the response it gets."""
    return TestClient(client.app, raise_server_exceptions=False)


def no_tasks(client: TestClient) -> None:
    listed = client.get("/tasks")
    assert listed.status_code == 200, listed.text
    assert listed.json() == {"items": [], "next_cursor": None}


def start(client: TestClient, body: object) -> dict[str, Any]:
    response = client.post("/tasks", json=body)
    assert response.status_code == 201, response.text
    document: dict[str, Any] = response.json()
    return document


def walk(client: TestClient, query: str, limit: int) -> list[list[dict[str, Any]]]:
    """Every page of `GET /tasks?{query}&limit={limit}`, following `next_cursor`."""
    pages: list[list[dict[str, Any]]] = []
    cursor: str | None = None
    while True:
        params: dict[str, str | int] = {**dict(parse_qsl(query)), "limit": limit}
        if cursor is not None:
            params["cursor"] = cursor
        response = client.get("/tasks", params=params)
        assert response.status_code == 200, response.text
        page = response.json()
        assert set(page) == {"items", "next_cursor"}
        assert len(page["items"]) <= limit
        pages.append(page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            return pages
        assert len(page["items"]) == limit, "a page before the last one is not full"
        assert len(pages) <= 100, "next_cursor never ends"


def cursor_of(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def canonical(value: object) -> str:
    """JSON text that tells 5 from 5.0 and 1e20 from 100000000000000000000."""
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


# -- happy paths --------------------------------------------------------------------------


def test_start_echo_add(client: TestClient) -> None:
    response = client.post("/tasks", json={"flow": "echo_add", "input": HELLO})
    assert response.status_code == 201, response.text
    assert media_type(response) == "application/json"
    task = response.json()
    assert response.headers["location"] == f"/tasks/{task['id']}"
    assert uuid.UUID(task["id"]).version == 4
    assert task["flow"] == "echo_add"
    assert task["flow_version"].startswith("sha256:")
    assert task["status"] == "succeeded"
    assert task["current_state"] == "done"
    assert task["error"] is None
    assert task["input"] == HELLO
    assert task["output"] == {"text": "hello", "sum": 5}
    assert type(task["output"]["sum"]) is int
    assert re.search(r'"sum":\s*5\s*[,}]', response.text), response.text
    assert task["started_at"] is not None
    assert task["finished_at"] is not None
    assert [step["state"] for step in task["steps"]] == ["echo", "add"]
    assert [
        (s["seq"], s["tool"], s["attempt"], s["status"], s["input"], s["output"], s["error"])
        for s in task["steps"]
    ] == [
        (1, "echo", 1, "succeeded", {"text": "hello"}, {"text": "hello"}, None),
        (2, "add", 1, "succeeded", {"a": 2, "b": 3}, {"sum": 5}, None),
    ]


def test_a_flat_body_is_the_input_of_echo_add(client: TestClient) -> None:
    response = client.post("/tasks", json=HELLO)
    assert response.status_code == 201, response.text
    task = response.json()
    assert response.headers["location"] == f"/tasks/{task['id']}"
    assert (task["flow"], task["status"], task["input"]) == ("echo_add", "succeeded", HELLO)
    assert task["output"] == {"text": "hello", "sum": 5}
    assert type(task["output"]["sum"]) is int
    assert [step["state"] for step in task["steps"]] == ["echo", "add"]


def test_safe_divide_by_zero_is_a_clean_failure(client: TestClient) -> None:
    response = client.post(
        "/tasks", json={"flow": "safe_divide", "input": {"dividend": 1, "divisor": 0}}
    )
    assert response.status_code == 201, response.text
    task = response.json()
    assert response.headers["location"] == f"/tasks/{task['id']}"
    assert task["status"] == "failed"
    assert task["current_state"] == "undefined"
    assert task["output"] is None
    assert task["error"] == {
        "kind": "UndefinedQuotient",
        "message": "the divisor is zero, so the quotient is undefined",
    }
    assert [
        (s["seq"], s["state"], s["attempt"], s["status"], s["output"], s["error"]["kind"])
        for s in task["steps"]
    ] == [(n, "divide", n, "failed", None, "DivisionByZero") for n in (1, 2, 3)]
    assert client.get(f"/tasks/{task['id']}").json() == task


@pytest.mark.parametrize(
    ("flow", "data"),
    [
        ("echo_add", HELLO),
        ("echo_add", {"text": "", "a": -1.5, "b": 1.5}),
        ("classify_sum", {"a": 60, "b": 40}),
        ("classify_sum", {"a": -5, "b": 2}),
        ("safe_divide", {"dividend": 6, "divisor": 3}),
    ],
)
def test_get_returns_the_document_that_post_returned(
    client: TestClient, flow: str, data: dict[str, Any]
) -> None:
    posted = client.post("/tasks", json={"flow": flow, "input": data})
    assert posted.status_code == 201, posted.text
    fetched = client.get(posted.headers["location"])
    assert fetched.status_code == 200, fetched.text
    assert media_type(fetched) == "application/json"
    assert fetched.json() == posted.json()
    assert canonical(fetched.json()) == canonical(posted.json())


def test_list_is_newest_first_and_summaries_only(client: TestClient) -> None:
    created = [start(client, {**HELLO, "text": f"t{n}"})["id"] for n in range(3)]
    created.append(start(client, {"flow": "classify_sum", "input": {"a": -5, "b": 2}})["id"])
    response = client.get("/tasks")
    assert response.status_code == 200, response.text
    page = response.json()
    assert page["next_cursor"] is None
    assert [item["id"] for item in page["items"]] == created[::-1]
    for item in page["items"]:
        assert set(item) == SUMMARY_KEYS, item
        assert not {"input", "output", "steps"} & set(item)
    times = [item["created_at"] for item in page["items"]]
    assert times == sorted(times, reverse=True)
    failed = page["items"][0]
    assert (failed["flow"], failed["status"]) == ("classify_sum", "failed")
    assert failed["error"]["kind"] == "NegativeSum"


@pytest.mark.parametrize("limit", [1, 2, 3, 6, 7, 8, 500])
def test_pagination_walks_every_task_once(client: TestClient, limit: int) -> None:
    created = [start(client, {**HELLO, "a": n})["id"] for n in range(7)]
    pages = walk(client, "", limit)
    ids = [item["id"] for page in pages for item in page]
    assert ids == created[::-1]
    assert len(set(ids)) == len(ids)
    assert len(pages) == max(1, -(-len(created) // limit))


def test_filters_by_status_and_flow(client: TestClient) -> None:
    echo = [start(client, {**HELLO, "a": n})["id"] for n in range(3)]
    negative = [
        start(client, {"flow": "classify_sum", "input": {"a": -n, "b": 0}})["id"] for n in (1, 2)
    ]
    positive = start(client, {"flow": "classify_sum", "input": {"a": 1, "b": 2}})["id"]

    def ids(query: str, limit: int = 50) -> list[str]:
        return [item["id"] for page in walk(client, query, limit) for item in page]

    assert ids("status=failed") == negative[::-1]
    assert ids("status=failed", limit=1) == negative[::-1]
    assert ids("status=succeeded") == [positive, *echo[::-1]]
    assert ids("flow=classify_sum") == [positive, *negative[::-1]]
    assert ids("flow=classify_sum", limit=2) == [positive, *negative[::-1]]
    assert ids("flow=echo_add&status=succeeded", limit=2) == echo[::-1]
    assert ids("flow=echo_add&status=failed") == []
    assert ids("status=running") == []
    assert ids("flow=safe_divide") == []
    assert ids("flow=nope") == []
    for item in client.get("/tasks", params={"status": "failed"}).json()["items"]:
        assert item["status"] == "failed"


def test_flows_are_listed(client: TestClient) -> None:
    response = client.get("/flows")
    assert response.status_code == 200, response.text
    flows = response.json()
    assert [flow["name"] for flow in flows] == [
        "classify_sum",
        "count_to",
        "delayed_echo",
        "divide_or_explain",
        "echo_add",
        "echo_and_add",
        "greet_and_sum",
        "halve_all",
        "reshape_order",
        "safe_divide",
    ]
    for flow in flows:
        assert set(flow) == {"name", "description", "version", "valid", "file"}
        assert (flow["valid"], flow["file"]) == (True, f"{flow['name']}.yaml")
        assert flow["version"].startswith("sha256:")
        assert re.fullmatch(r"sha256:[0-9a-f]{64}", flow["version"]), flow
    task = start(client, HELLO)
    assert {flow["name"]: flow["version"] for flow in flows}["echo_add"] == task["flow_version"]


def test_a_flow_shows_its_input_schema_and_definition(client: TestClient) -> None:
    response = client.get("/flows/echo_add")
    assert response.status_code == 200, response.text
    flow = response.json()
    assert flow["name"] == "echo_add"
    assert flow["version"].startswith("sha256:")
    listed = {item["name"]: item for item in client.get("/flows").json()}
    assert flow["version"] == listed["echo_add"]["version"]
    assert flow["description"] == listed["echo_add"]["description"]
    assert {"text", "a", "b"} <= set(flow["input_schema"]["properties"])
    assert flow["definition"]["name"] == "echo_add"
    assert flow["definition"]["start"] == "echo"
    assert set(flow["definition"]["states"]) == {"echo", "add", "done"}


def test_the_flow_schema_is_the_committed_one(client: TestClient) -> None:
    response = client.get("/schema/flow.json")
    assert response.status_code == 200, response.text
    committed = json.loads((ROOT / "schema" / "flow.schema.json").read_text(encoding="utf-8"))
    assert response.json() == committed


def test_validate_a_valid_flow(client: TestClient) -> None:
    response = client.post(
        "/flows/validate",
        content=(FLOWS / "echo_add.yaml").read_bytes(),
        headers={"content-type": "application/yaml"},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body.pop("diagram").startswith("flowchart TD\n")
    assert body == {"valid": True, "problems": [], "warnings": [], "omitted": 0}


def test_validate_a_broken_flow_like_the_cli(client: TestClient, tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(BROKEN_FLOW, encoding="utf-8")
    response = client.post(
        "/flows/validate",
        params={"file": str(path)},
        content=BROKEN_FLOW.encode(),
        headers={"content-type": "application/yaml"},
    )
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["valid"] is False
    problems = report["problems"]
    for problem in problems:
        assert set(problem) == PROBLEM_KEYS, problem
        assert problem["file"] == str(path)
        assert isinstance(problem["line"], int)
        assert problem["line"] >= 1
        assert isinstance(problem["column"], int)
        assert problem["column"] >= 1
        assert problem["message"]
    located = {problem["code"]: (problem["line"], problem["column"]) for problem in problems}
    assert located["flow.unknown-state"] == (11, 11)
    assert located["tool.unknown"][0] == 14
    cli = CliRunner().invoke(cli_app, ["validate-flow", "--json", str(path)])
    assert cli.exit_code == 1, cli.output
    assert problems == json.loads(cli.stdout)


def test_validate_names_the_file_as_asked(client: TestClient) -> None:
    response = client.post("/flows/validate", content=BROKEN_FLOW.encode())
    assert response.status_code == 200, response.text
    assert {problem["file"] for problem in response.json()["problems"]} == {"flow.yaml"}


def alias_bomb() -> bytes:
    lines = ["l0: &l0 [" + ", ".join(["lol"] * 9) + "]"]
    for level in range(1, 10):
        lines.append(f"l{level}: &l{level} [" + ", ".join([f"*l{level - 1}"] * 9) + "]")
    return ("\n".join(lines) + "\n").encode()


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe\xfd", id="png"),
        pytest.param(bytes(range(255, -1, -1)) * 16, id="all-bytes"),
        pytest.param(b"\x00" * 64, id="nul-bytes"),
        pytest.param(b"\xff\xfe" + "name: x\n".encode("utf-16-le"), id="utf-16"),
        pytest.param(b"", id="empty"),
        pytest.param(b"hello", id="scalar"),
        pytest.param(b"- 1\n- 2\n", id="list"),
        pytest.param(b"[" * 10_000 + b"]" * 10_000, id="deep"),
        pytest.param(alias_bomb(), id="alias-bomb"),
        pytest.param(b"name: !!python/object/apply:os.system ['echo hi']\n", id="python-tag"),
        pytest.param(b'name: "\\ud800"\n', id="surrogate-escape"),
        pytest.param(b"a: 1\na: 2\n", id="duplicate-key"),
    ],
)
def test_validate_garbage_is_a_located_yaml_problem(client: TestClient, raw: bytes) -> None:
    response = client.post(
        "/flows/validate", content=raw, headers={"content-type": "application/yaml"}
    )
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["valid"] is False
    assert len(report["problems"]) == 1, report
    problem = report["problems"][0]
    assert set(problem) == PROBLEM_KEYS
    assert problem["code"].startswith("yaml."), problem
    assert problem["line"] >= 1
    assert problem["column"] >= 1
    assert problem["message"]
    no_tasks(client)


def test_health(client: TestClient) -> None:
    healthz = client.get("/healthz")
    assert healthz.status_code == 200, healthz.text
    assert healthz.json() == {"status": "ok"}
    readyz = client.get("/readyz")
    assert readyz.status_code == 200, readyz.text
    assert readyz.json() == {"status": "ready"}


def test_an_app_leaves_the_garbage_collector_as_it_found_it(settings: Settings) -> None:
    """Only the servers tune the collector (`on_started`); an app in a test does not."""
    threshold, frozen = gc.get_threshold(), gc.get_freeze_count()
    with TestClient(create_app(settings)) as client:
        assert client.post("/tasks", json={"flow": "echo_add", "input": HELLO}).status_code == 201
    assert (gc.get_threshold(), gc.get_freeze_count()) == (threshold, frozen)


# -- the OpenAPI document -----------------------------------------------------------------


@pytest.fixture
def openapi(client: TestClient) -> dict[str, Any]:
    response = client.get("/openapi.json")
    assert response.status_code == 200, response.text
    document: dict[str, Any] = response.json()
    assert document["openapi"].startswith("3.")
    return document


def operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    methods = {"get", "put", "post", "delete", "patch", "head", "options"}
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method in methods:
                yield path, method, operation


def test_openapi_lists_every_operation(openapi: dict[str, Any]) -> None:
    found = {(path, method) for path, method, _ in operations(openapi)}
    assert found >= OPERATIONS, OPERATIONS - found


def test_openapi_every_operation_has_a_response_schema(openapi: dict[str, Any]) -> None:
    for path, method, operation in operations(openapi):
        schemas = [
            content.get("schema")
            for response in operation["responses"].values()
            for content in response.get("content", {}).values()
        ]
        assert any(
            isinstance(schema, dict) and ({"$ref", "type", "items", "oneOf"} & set(schema))
            for schema in schemas
        ), (path, method, operation["responses"])


def test_openapi_start_task_has_working_examples(
    openapi: dict[str, Any], client: TestClient
) -> None:
    body = openapi["paths"]["/tasks"]["post"]["requestBody"]
    examples = body["content"]["application/json"]["examples"]
    assert examples
    for name, example in examples.items():
        response = client.post("/tasks", json=example["value"])
        assert response.status_code == 201, (name, response.text)
        assert response.json()["status"] == "succeeded", name


def test_a_choice_decision_is_a_step_of_the_task_as_the_openapi_document_says(
    openapi: dict[str, Any], client: TestClient
) -> None:
    task = start(client, {"flow": "classify_sum", "input": {"a": 60, "b": 40}})
    assert [(step["seq"], step["state"], step["tool"]) for step in task["steps"]] == [
        (1, "add", "add"),
        (2, "size", "choice"),
        (3, "big", "echo"),
    ]
    decision = task["steps"][1]
    assert decision["status"] == "succeeded"
    assert decision["input"] == {"$states.add.sum": 100, "$input.label": "sum"}
    assert decision["output"] == {"rule": 2, "next": "big"}
    paged = client.get(f"/tasks/{task['id']}/steps", params={"after": 1, "limit": 1})
    assert paged.status_code == 200, paged.text
    assert paged.json()["items"] == [decision]
    tool = openapi["components"]["schemas"]["StepView"]["properties"]["tool"]
    assert "`choice`, a choice state's decision" in tool["description"]
    assert "`wait`, a wait state's two steps" in tool["description"]


def test_openapi_error_responses_declare_problem_json(openapi: dict[str, Any]) -> None:
    missing = [
        (path, method, status, sorted(response.get("content", {})))
        for path, method, operation in operations(openapi)
        for status, response in operation["responses"].items()
        if status[0] in "45" and PROBLEM not in response.get("content", {})
    ]
    assert missing == []


def test_openapi_problem_json_responses_carry_the_problem_schema(
    openapi: dict[str, Any],
) -> None:
    assert "Problem" in openapi["components"]["schemas"]
    wrong = [
        (path, method, status, response["content"][PROBLEM])
        for path, method, operation in operations(openapi)
        for status, response in operation["responses"].items()
        if PROBLEM in response.get("content", {})
        and response["content"][PROBLEM].get("schema") != {"$ref": "#/components/schemas/Problem"}
    ]
    assert wrong == []


# -- the hostile battery ------------------------------------------------------------------

DEEP_ARRAY: Final = b"[" * 10_000 + b"]" * 10_000
DEEP_OBJECT: Final = b'{"a":' * 10_000 + b"1" + b"}" * 10_000
DIGITS: Final = "1" * 5000
BIG: Final = b'{"text":"' + b"x" * (MIB + MIB // 2) + b'","a":1,"b":2}'
RANDOM_ID: Final = "6f1c1a43-2d3c-4c8e-9a3e-0b7f5d2e9c11"


def hostile(
    name: str, body: bytes | str | None, *status: int, method: str = "POST", url: str = "/tasks"
) -> Any:
    raw = body.encode("utf-8") if isinstance(body, str) else body
    return pytest.param(method, url, raw, status, id=name)


def envelope(data: str, flow: str = '"echo_add"') -> str:
    return '{"flow":' + flow + ',"input":' + data + "}"


HOSTILE: Final = [
    # not JSON
    hostile("malformed", b"{text: hello}", 400),
    hostile("trailing-garbage", b'{"text":"hello","a":2,"b":3} x', 400),
    hostile("truncated", b'{"flow":"echo_add","input":{"text":"hel', 400),
    hostile("truncated-after-colon", b'{"text":', 400),
    hostile("empty-body", b"", 400),
    hostile("whitespace-body", b" \n\t ", 400),
    hostile("single-quotes", b"{'text':'hello','a':2,'b':3}", 400),
    hostile("trailing-comma", b'{"text":"hello","a":2,"b":3,}', 400),
    hostile("comment", b'{"text":"hello","a":2,"b":3 /* c */}', 400),
    # JSON, but not an object
    hostile("null", b"null", 422),
    hostile("list", b"[]", 422),
    hostile("list-of-input", b'[{"text":"hello","a":2,"b":3}]', 422),
    hostile("string", b'"hello"', 422),
    hostile("number", b"42", 422),
    hostile("boolean", b"true", 422),
    # wrong types
    hostile("a-string", '{"a":"x"}', 422),
    hostile("a-true", '{"a":true}', 422),
    hostile("a-numeric-string", '{"a":"2"}', 422),
    hostile("full-a-string", '{"text":"hello","a":"x","b":3}', 422),
    hostile("full-a-true", '{"text":"hello","a":true,"b":3}', 422),
    hostile("full-a-numeric-string", '{"text":"hello","a":"2","b":3}', 422),
    hostile("full-a-null", '{"text":"hello","a":null,"b":3}', 422),
    hostile("full-a-list", '{"text":"hello","a":[2],"b":3}', 422),
    hostile("full-text-number", '{"text":5,"a":2,"b":3}', 422),
    hostile("envelope-a-string", envelope('{"a":"x"}'), 422),
    hostile("envelope-a-true", envelope('{"a":true}'), 422),
    hostile("envelope-a-numeric-string", envelope('{"a":"2"}'), 422),
    hostile("envelope-full-a-string", envelope('{"text":"hello","a":"x","b":3}'), 422),
    hostile("envelope-full-a-true", envelope('{"text":"hello","a":true,"b":3}'), 422),
    hostile("envelope-full-a-numeric", envelope('{"text":"hello","a":"2","b":3}'), 422),
    hostile(
        "integer-with-fraction",
        envelope('{"a":1.5,"b":2}', '"classify_sum"'),
        422,
    ),
    hostile("integer-bool", envelope('{"a":true,"b":2}', '"classify_sum"'), 422),
    # missing and extra fields
    hostile("empty-object", "{}", 422),
    hostile("missing-b", '{"text":"hello","a":2}', 422),
    hostile("missing-text", '{"a":2,"b":3}', 422),
    hostile("envelope-empty-input", envelope("{}"), 422),
    hostile("envelope-missing-b", envelope('{"text":"hello","a":2}'), 422),
    hostile("extra-input-field", '{"text":"hello","a":2,"b":3,"c":4}', 422),
    hostile("envelope-extra-input-field", envelope('{"text":"hello","a":2,"b":3,"c":4}'), 422),
    # the envelope itself
    hostile("flow-number", '{"flow":5,"input":{}}', 422),
    hostile("flow-null", '{"flow":null,"input":{}}', 422),
    hostile("flow-list", '{"flow":["echo_add"],"input":{}}', 422),
    hostile("flow-object", '{"flow":{"name":"echo_add"},"input":{}}', 422),
    hostile("flow-without-input", '{"flow":"echo_add"}', 422),
    hostile("input-list", '{"flow":"echo_add","input":[]}', 422),
    hostile("input-null", '{"flow":"echo_add","input":null}', 422),
    hostile("input-string", '{"flow":"echo_add","input":"hello"}', 422),
    hostile("input-without-flow", '{"input":{"text":"hello","a":2,"b":3}}', 422),
    hostile(
        "envelope-extra-key",
        '{"flow":"echo_add","input":{"text":"hello","a":2,"b":3},"priority":1}',
        422,
    ),
    hostile("flow-beside-flat-input", '{"flow":"echo_add","text":"hello","a":2,"b":3}', 422),
    # unknown and hostile flow names
    hostile("unknown-flow", envelope('{"text":"hello","a":2,"b":3}', '"nope"'), 404),
    hostile("empty-flow-name", envelope("{}", '""'), 404),
    hostile("flow-path-traversal", envelope("{}", '"../../etc/passwd"'), 404),
    hostile("flow-encoded-traversal", envelope("{}", '"%2e%2e%2f%2e%2e%2fetc%2fpasswd"'), 404),
    hostile("flow-encoded-dots", envelope("{}", '"..%2F..%2Fflows%2Fecho_add"'), 404),
    hostile("flow-yaml-file", envelope("{}", '"echo_add.yaml"'), 404),
    hostile("flow-upper-case", envelope('{"text":"hello","a":2,"b":3}', '"ECHO_ADD"'), 404),
    hostile("flow-nul", envelope("{}", '"echo_add\\u0000"'), 404),
    hostile("flow-very-long", envelope("{}", '"' + "x" * 100_000 + '"'), 404),
    hostile("flow-lone-surrogate", envelope("{}", '"\\ud800"'), 404),
    # numbers
    hostile("nan", '{"text":"hello","a":NaN,"b":3}', 400),
    hostile("infinity", '{"text":"hello","a":Infinity,"b":3}', 400),
    hostile("minus-infinity", '{"text":"hello","a":-Infinity,"b":3}', 400),
    hostile("envelope-nan", envelope('{"text":"hello","a":2,"b":NaN}'), 400),
    hostile("overflow-to-inf", '{"text":"hello","a":1e400,"b":3}', 422),
    hostile("overflow-to-minus-inf", '{"text":"hello","a":-1e400,"b":3}', 422),
    hostile("envelope-overflow", envelope('{"text":"hello","a":2,"b":1e400}'), 422),
    hostile("5000-digit-integer", '{"text":"hello","a":' + DIGITS + ',"b":3}', 400, 422),
    hostile("5000-digit-float", '{"text":"hello","a":' + DIGITS + '.5,"b":3}', 400, 422),
    hostile("5000-digit-body", DIGITS, 400, 422),
    # nesting
    hostile("deep-array-body", DEEP_ARRAY, 400),
    hostile("deep-object-body", DEEP_OBJECT, 400),
    hostile("deep-array-in-text", b'{"text":' + DEEP_ARRAY + b',"a":2,"b":3}', 400),
    # encodings and text the database cannot store
    hostile("invalid-utf-8", b'{"text":"\xff\xfe","a":2,"b":3}', 400),
    hostile("encoded-surrogate-bytes", b'{"text":"\xed\xa0\x80","a":2,"b":3}', 400, 422),
    hostile("overlong-utf-8", b'{"text":"\xc0\xaf","a":2,"b":3}', 400),
    hostile("truncated-utf-8", b'{"text":"\xe2\x82","a":2,"b":3}', 400),
    hostile("nul-in-text", '{"text":"a\\u0000b","a":2,"b":3}', 422),
    hostile("envelope-nul-in-text", envelope('{"text":"\\u0000","a":2,"b":3}'), 422),
    hostile("nul-in-label", envelope('{"a":1,"b":2,"label":"x\\u0000"}', '"classify_sum"'), 422),
    hostile("lone-high-surrogate", '{"text":"\\ud800","a":2,"b":3}', 422),
    hostile("lone-low-surrogate", '{"text":"x\\udc00y","a":2,"b":3}', 422),
    hostile("reversed-surrogates", '{"text":"\\udc00\\ud800","a":2,"b":3}', 422),
    hostile("envelope-lone-surrogate", envelope('{"text":"\\ud800","a":2,"b":3}'), 422),
    hostile("nul-in-input-key", '{"text":"hello","a":2,"b":3,"t\\u0000":1}', 422),
    hostile("surrogate-input-key", '{"text":"hello","a":2,"b":3,"\\ud800":1}', 422),
    hostile(
        "envelope-surrogate-input-key", envelope('{"text":"hello","a":2,"b":3,"\\ud800":1}'), 422
    ),
    hostile(
        "envelope-surrogate-extra-key",
        '{"flow":"echo_add","input":{"text":"hello","a":2,"b":3},"\\ud800":1}',
        422,
    ),
    # size
    hostile("over-1-mib", BIG, 413),
    hostile(
        "validate-over-1-mib", b"name: x\n#" + b"x" * (MIB + MIB // 2), 413, url="/flows/validate"
    ),
    hostile(
        "validate-file-name-too-long", b"name: x\n", 422, url="/flows/validate?file=" + "f" * 257
    ),
    # tasks by id
    hostile("task-id-malformed", None, 422, method="GET", url="/tasks/not-a-uuid"),
    hostile("task-id-number", None, 422, method="GET", url="/tasks/123"),
    hostile("task-id-nul", None, 422, method="GET", url="/tasks/%00"),
    hostile("task-id-too-long", None, 422, method="GET", url=f"/tasks/{RANDOM_ID}0"),
    hostile("task-id-traversal", None, 404, method="GET", url="/tasks/..%2F..%2Fetc%2Fpasswd"),
    hostile("task-id-unknown", None, 404, method="GET", url=f"/tasks/{RANDOM_ID}"),
    hostile("task-id-nil", None, 404, method="GET", url=f"/tasks/{uuid.UUID(int=0)}"),
    # listing
    hostile("limit-0", None, 422, method="GET", url="/tasks?limit=0"),
    hostile("limit-501", None, 422, method="GET", url="/tasks?limit=501"),
    hostile("limit-negative", None, 422, method="GET", url="/tasks?limit=-1"),
    hostile("limit-abc", None, 422, method="GET", url="/tasks?limit=abc"),
    hostile("limit-fraction", None, 422, method="GET", url="/tasks?limit=1.5"),
    hostile("limit-huge", None, 422, method="GET", url="/tasks?limit=" + "9" * 5000),
    hostile("status-nope", None, 422, method="GET", url="/tasks?status=nope"),
    hostile("status-upper-case", None, 422, method="GET", url="/tasks?status=SUCCEEDED"),
    hostile("flow-filter-too-long", None, 422, method="GET", url="/tasks?flow=" + "f" * 65),
    hostile("cursor-garbage", None, 422, method="GET", url="/tasks?cursor=garbage"),
    hostile("cursor-padding", None, 422, method="GET", url="/tasks?cursor====="),
    hostile("cursor-too-long", None, 422, method="GET", url="/tasks?cursor=" + "A" * 257),
    hostile("cursor-emoji", None, 422, method="GET", url="/tasks?cursor=%F0%9F%98%80"),
    hostile(
        "cursor-naive-time",
        None,
        422,
        method="GET",
        url="/tasks?cursor=" + cursor_of(f"2024-01-01T00:00:00|{RANDOM_ID}"),
    ),
    hostile(
        "cursor-three-parts",
        None,
        422,
        method="GET",
        url="/tasks?cursor=" + cursor_of(f"2024-01-01T00:00:00+00:00|{RANDOM_ID}|x"),
    ),
    hostile(
        "cursor-bad-uuid",
        None,
        422,
        method="GET",
        url="/tasks?cursor=" + cursor_of("2024-01-01T00:00:00+00:00|nope"),
    ),
    hostile(
        "cursor-not-utf-8",
        None,
        422,
        method="GET",
        url="/tasks?cursor=" + base64.urlsafe_b64encode(b"\xff\xfe|\x00").decode(),
    ),
    # routes and methods
    hostile("unknown-route", None, 404, method="GET", url="/nope"),
    hostile("unknown-route-post", b"{}", 404, url="/nope"),
    hostile("delete-tasks", None, 405, method="DELETE", url="/tasks"),
    hostile("put-task", b"{}", 405, method="PUT", url=f"/tasks/{RANDOM_ID}"),
    hostile("delete-task", None, 405, method="DELETE", url=f"/tasks/{RANDOM_ID}"),
    hostile("post-flow", b"{}", 405, url="/flows/echo_add"),
    hostile("patch-healthz", b"{}", 405, method="PATCH", url="/healthz"),
    hostile("unknown-flow-get", None, 404, method="GET", url="/flows/nope"),
    hostile("flow-get-traversal", None, 404, method="GET", url="/flows/../../etc/passwd"),
    hostile("flow-get-encoded", None, 404, method="GET", url="/flows/%2e%2e%2f%2e%2e%2fetc"),
    hostile("flow-get-dots", None, 404, method="GET", url="/flows/%2e%2e"),
    hostile("flow-get-nul", None, 404, method="GET", url="/flows/echo_add%00"),
    hostile("flow-get-yaml", None, 404, method="GET", url="/flows/echo_add.yaml"),
]


@pytest.mark.parametrize(("method", "url", "body", "expected"), HOSTILE)
def test_hostile_request_gets_a_problem(
    client: TestClient,
    quiet: TestClient,
    method: str,
    url: str,
    body: bytes | None,
    expected: tuple[int, ...],
) -> None:
    headers = dict(JSON_HEADERS) if body is not None else {}
    response = quiet.request(method, url, content=body, headers=headers)
    assert_problem(response, *expected)
    if response.status_code == 405:
        assert response.headers.get("allow"), response.headers
    no_tasks(client)


@pytest.mark.parametrize(
    ("body", "where"),
    [
        pytest.param({"text": "a\x00b", "a": 2, "b": 3}, "/text", id="nul"),
        pytest.param({"text": "\ud800", "a": 2, "b": 3}, "/text", id="surrogate"),
    ],
)
def test_unstorable_text_names_where_and_stores_nothing(
    client: TestClient, body: dict[str, Any], where: str
) -> None:
    raw = json.dumps(body).encode()  # ensure_ascii: the JSON escapes \u0000 and \ud800
    response = client.post("/tasks", content=raw, headers=JSON_HEADERS)
    problem = assert_problem(response, 422)
    assert where in problem["detail"]
    assert "cannot store" in problem["detail"]
    no_tasks(client)


@pytest.mark.parametrize(
    "body",
    [
        pytest.param('{"text":"hello","a":2,"b":3,"\\ud800":1}', id="flat"),
        pytest.param(envelope('{"text":"hello","a":2,"b":3,"\\ud800":1}'), id="envelope"),
    ],
)
def test_an_unstorable_key_is_named_as_such(
    client: TestClient, quiet: TestClient, body: str
) -> None:
    """A key the database cannot store is refused as that key, not as the whole input."""
    response = quiet.post("/tasks", content=body.encode(), headers=JSON_HEADERS)
    problem = assert_problem(response, 422)
    detail = problem["detail"]
    assert "cannot store" in detail or "not an input of this flow" in detail, detail
    no_tasks(client)


@pytest.mark.parametrize(
    ("body", "phrase"),
    [
        pytest.param(b'{"text":"hello","a":NaN,"b":3}', "NaN", id="nan"),
        pytest.param(b"[" * 10_000 + b"]" * 10_000, "deep", id="deep"),
        pytest.param(b"{text: hello}", "JSON", id="malformed"),
        pytest.param(b'{"flow":"nope","input":{}}', "nope", id="unknown-flow"),
        pytest.param(b'{"flow":"echo_add","input":{}}', "text", id="missing"),
        pytest.param(b'{"text":"hello","a":"2","b":3}', "a: ", id="wrong-type"),
        pytest.param(b'{"text":"hello","a":2,"b":3,"c":1}', "c: not an input", id="extra"),
        pytest.param(b'{"text":"hello","a":1e400,"b":3}', "finite", id="overflow"),
    ],
)
def test_problem_details_say_what_is_wrong(client: TestClient, body: bytes, phrase: str) -> None:
    response = client.post("/tasks", content=body, headers=JSON_HEADERS)
    problem = assert_problem(response, 400, 404, 422)
    assert phrase in problem["detail"], problem


def test_a_long_flow_name_is_not_echoed_whole(client: TestClient) -> None:
    response = client.post("/tasks", json={"flow": "x" * 100_000, "input": {}})
    problem = assert_problem(response, 404)
    assert len(problem["detail"]) < 1000


def test_a_chunked_body_over_the_limit_is_refused(client: TestClient) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"text":"'
        for _ in range(24):
            yield b"x" * 65_536
        yield b'","a":1,"b":2}'

    response = client.post("/tasks", content=chunks(), headers=JSON_HEADERS)
    assert "content-length" not in response.request.headers
    assert response.request.headers.get("transfer-encoding") == "chunked"
    assert_problem(response, 413)
    no_tasks(client)


def test_a_chunked_yaml_body_over_the_limit_is_refused(client: TestClient) -> None:
    def chunks() -> Iterator[bytes]:
        yield b"name: x\n"
        for _ in range(24):
            yield b"#" + b"x" * 65_535

    response = client.post("/flows/validate", content=chunks())
    assert "content-length" not in response.request.headers
    assert_problem(response, 413)


def test_a_streamed_body_is_refused_before_it_is_all_read(client: TestClient) -> None:
    """Raw ASGI, chunk by chunk with no Content-Length: the server stops reading soon after
    the limit instead of taking the whole (endless) body into memory."""
    chunk = b"x" * 65_536
    received = 0
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        nonlocal received
        received += 1
        if received > 1000:
            return {"type": "http.disconnect"}
        return {"type": "http.request", "body": chunk, "more_body": True}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/tasks",
        "raw_path": b"/tasks",
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"testserver"), (b"content-type", b"application/json")],
        "client": ("testclient", 50000),
        "server": ("testserver", 80),
        "state": {},
    }

    async def call() -> None:
        await client.app(scope, receive, send)

    assert client.portal is not None
    client.portal.call(call)
    start_message = next(m for m in sent if m["type"] == "http.response.start")
    assert start_message["status"] == 413
    headers = {k.decode().lower(): v.decode() for k, v in start_message["headers"]}
    assert headers["content-type"].startswith(PROBLEM)
    body = json.loads(
        b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    )
    assert body["status"] == 413
    assert body["detail"]
    # Past the limit, the rest is read and dropped (so that a client sending it all before
    # reading can read the 413), but no more than MAX_DRAIN_BYTES of it.
    most = (MIB + MAX_DRAIN_BYTES) // len(chunk) + 2
    assert received <= most, f"read {received} chunks of 64 KiB"
    no_tasks(client)


@pytest.mark.parametrize(
    "flow",
    [
        pytest.param("\x00", id="nul"),
        pytest.param("echo_add\x00", id="trailing-nul"),
        pytest.param("../../etc/passwd", id="traversal"),
        pytest.param("\ufffd", id="replacement-char"),
        pytest.param("' OR 1=1 --", id="sql"),
    ],
)
def test_a_strange_flow_filter_is_never_a_server_error(
    client: TestClient, quiet: TestClient, flow: str
) -> None:
    """No flow has such a name: the list is empty (200), or the filter is refused (422); the
    two backends must not differ by crashing."""
    start(client, HELLO)
    response = quiet.get("/tasks", params={"flow": flow})
    assert response.status_code in (200, 422), (response.status_code, response.text[:300])
    if response.status_code == 200:
        assert response.json() == {"items": [], "next_cursor": None}
    else:
        assert_problem(response, 422)


def test_no_hostile_request_creates_a_task(client: TestClient, quiet: TestClient) -> None:
    """The whole battery on one database, then the list is still empty."""
    unexpected = []
    for param in HOSTILE:
        method, url, body, expected = param.values
        headers = dict(JSON_HEADERS) if body is not None else {}
        response = quiet.request(method, url, content=body, headers=headers)
        if response.status_code not in expected:
            unexpected.append((param.id, response.status_code, response.text[:200]))
    no_tasks(client)
    assert unexpected == []


@pytest.mark.parametrize(
    ("size", "status"), [(MIB - 1, 201), (MIB, 201), (MIB + 1, 413)], ids=["under", "at", "over"]
)
def test_the_body_limit_is_exactly_one_mib(client: TestClient, size: int, status: int) -> None:
    head, tail = b'{"text":"', b'","a":2,"b":3}'
    body = head + b"x" * (size - len(head) - len(tail)) + tail
    assert len(body) == size
    response = client.post("/tasks", content=body, headers=JSON_HEADERS)
    if status == 201:
        # Read whole and run; the echo of a megabyte is past the output limit.
        assert response.status_code == 201, response.text[:300]
        task = response.json()
        assert len(task["input"]["text"]) == size - len(head) - len(tail)
        assert (task["status"], task["error"]["kind"]) == ("failed", "OutputTooLarge")
    else:
        assert_problem(response, status)
        no_tasks(client)


# -- content ------------------------------------------------------------------------------


def test_duplicate_posts_create_distinct_tasks(client: TestClient) -> None:
    first = client.post("/tasks", json=HELLO)
    second = client.post("/tasks", json=HELLO)
    assert (first.status_code, second.status_code) == (201, 201)
    one, two = first.json(), second.json()
    assert one["id"] != two["id"]
    assert first.headers["location"] != second.headers["location"]
    assert (one["input"], one["output"]) == (two["input"], two["output"])
    listed = [item["id"] for item in client.get("/tasks").json()["items"]]
    assert listed == [two["id"], one["id"]]
    assert client.get(f"/tasks/{one['id']}").json() == one
    assert client.get(f"/tasks/{two['id']}").json() == two


UNICODE: Final = [
    pytest.param("h\u00e9llo w\u00f6rld", id="latin"),
    pytest.param("\U0001f44b\U0001f3fd \U0001f468\u200d\U0001f469\u200d\U0001f467", id="emoji"),
    pytest.param("\U0001f1eb\U0001f1f7\U0001f3f3\ufe0f\u200d\U0001f308", id="flags"),
    pytest.param("\u05e9\u05dc\u05d5\u05dd \u05e2\u05d5\u05dc\u05dd", id="hebrew"),
    pytest.param("\u0645\u0631\u062d\u0628\u0627 123 \u200f!", id="arabic-rlm"),
    pytest.param("abc\u202edcba\u202c \u2067x\u2069", id="bidi-overrides"),
    pytest.param("e\u0301 \u00e9 n\u0303 a\u0308\u0304\u0301", id="combining"),
    pytest.param("Z\u0351\u036b\u0343\u036a\u0302\u036b\u033d\u034f\u0334\u0319", id="zalgo"),
    pytest.param("\U0001d54f \U00010348 \U0010fffd", id="astral"),
    pytest.param("line\u2028sep\u2029para\r\n\ttab", id="separators"),
    pytest.param("\ufeffbom \u200b zero-width \u00ad soft", id="invisible"),
    pytest.param('\\u0000 \\ud800 "quoted" </script>', id="escapes-as-text"),
    pytest.param("\x01\x1f\x7f\u0085", id="control"),
    pytest.param("\u65e5\u672c\u8a9e\u306e\u30c6\u30ad\u30b9\u30c8", id="cjk"),
]


@pytest.mark.parametrize("text", UNICODE)
def test_unicode_text_round_trips_exactly(client: TestClient, text: str) -> None:
    posted = client.post("/tasks", json={"flow": "echo_add", "input": {**HELLO, "text": text}})
    assert posted.status_code == 201, posted.text
    task = posted.json()
    assert task["input"]["text"] == text
    assert task["output"]["text"] == text
    assert task["steps"][0]["output"] == {"text": text}
    fetched = client.get(posted.headers["location"]).json()
    assert fetched["input"]["text"] == text
    assert fetched["output"]["text"] == text
    assert fetched["steps"][0]["input"] == {"text": text}
    assert fetched == task


@pytest.mark.parametrize(
    "number",
    [
        pytest.param("0.1", id="tenth"),
        pytest.param("2.0", id="two-point-zero"),
        pytest.param("1e20", id="1e20"),
        pytest.param("1.5e300", id="1.5e300"),
        pytest.param("5e-324", id="smallest-float"),
        pytest.param("9007199254740993", id="2-53-plus-1"),
        pytest.param("123456789012345678901234567890", id="big-integer"),
    ],
)
def test_numbers_round_trip_exactly(client: TestClient, number: str) -> None:
    raw = '{"text":"n","a":' + number + ',"b":0}'
    posted = client.post("/tasks", content=raw.encode(), headers=JSON_HEADERS)
    assert posted.status_code == 201, posted.text
    task = posted.json()
    assert canonical(task["input"]["a"]) == canonical(json.loads(number))
    fetched = client.get(posted.headers["location"])
    assert fetched.status_code == 200, fetched.text
    again = fetched.json()
    assert canonical(again["input"]) == canonical(task["input"])
    assert canonical(again["output"]) == canonical(task["output"])
    assert canonical(again) == canonical(task)


def test_minus_zero_is_read_as_zero_on_every_backend(client: TestClient) -> None:
    # PostgreSQL's JSONB has no negative zero, so the API reads -0.0 as 0.0 everywhere:
    # what a task says when it starts is what it says when read back.
    raw = b'{"text":"n","a":-0.0,"b":0}'
    posted = client.post("/tasks", content=raw, headers=JSON_HEADERS)
    assert posted.status_code == 201, posted.text
    assert '"a":0.0' in posted.text
    fetched = client.get(posted.headers["location"])
    assert canonical(fetched.json()) == canonical(posted.json())


WARNED_FLOW: Final = """\
name: warned
start: divide
states:
  divide:
    type: task
    tool: divide
    args: {dividend: 1, divisor: 0}
    catch:
      - errors: [DivisionByZer]
        next: failed
    next: done
  done: {type: succeed}
  failed: {type: fail, error: DivisionFailed}
"""


def test_validate_a_flow_with_only_warnings(client: TestClient) -> None:
    response = client.post(
        "/flows/validate",
        content=WARNED_FLOW.encode(),
        headers={"content-type": "application/yaml"},
    )
    assert response.status_code == 200, response.text
    report = response.json()
    assert (report["valid"], report["problems"], report["omitted"]) == (True, [], 0)
    [warning] = report["warnings"]
    assert set(warning) == PROBLEM_KEYS
    assert (warning["code"], warning["severity"], warning["line"]) == (
        "error.unknown-kind",
        "warning",
        9,
    )
    assert warning["hint"] == "did you mean `DivisionByZero`?"


def test_validate_knows_the_loaded_flows_for_a_flow_state(client: TestClient) -> None:
    caller = (
        "name: caller\nstart: call\nstates:\n  call:\n    type: flow\n    flow: echo_add\n"
        "    input: {text: hi, a: 1, b: 2}\n    next: done\n"
        "  done:\n    type: succeed\n    output: {sum: $states.call.sum}\n"
    )
    response = client.post("/flows/validate", content=caller.encode())
    assert response.status_code == 200, response.text
    assert response.json()["valid"] is True, response.text
    wrong = caller.replace("b: 2", "c: 2")
    problems = client.post("/flows/validate", content=wrong.encode()).json()["problems"]
    assert [(item["code"], item["line"]) for item in problems] == [
        ("flow.input", 7),
        ("flow.input", 7),
    ]
    assert [item["message"] for item in problems] == [
        "the flow `echo_add` needs the input field `b`, which this input lacks",
        "the flow `echo_add` declares no input field `c`",
    ]

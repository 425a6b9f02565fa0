"""Diagrams through their doors, on both backends: `GET /flows/{name}/graph`,
`GET /tasks/{id}/graph`, the `diagram` of `POST /flows/validate`, and `taskrunner graph`.
Each answers exactly the golden file of `tests/golden/diagrams/` (the renderer itself is
tested in `tests/unit/test_diagram_rendering.py`); errors are 4xx problems and clear CLI
messages with their exit status; the endpoints need the `read` scope."""

from __future__ import annotations

import dataclasses
import shutil
import sys
import uuid
from pathlib import Path
from typing import Final

import pytest
from click.testing import Result
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from taskrunner.api import create_app
from taskrunner.apikeys import ApiKeyring, new_key
from taskrunner.cli import app, main
from taskrunner.settings import Settings

ROOT: Final = Path(__file__).resolve().parents[2]
FLOWS: Final = ROOT / "taskrunner" / "flows"
GOLDEN: Final = ROOT / "tests" / "golden" / "diagrams"
PROBLEM: Final = "application/problem+json"
MERMAID: Final = "text/plain; charset=utf-8"
DOT: Final = "text/vnd.graphviz; charset=utf-8"
BIG: Final = {"flow": "classify_sum", "input": {"a": 50, "b": 60}}
BROKEN: Final = (
    "name: broken\nstart: a\nstates:\n  a: {type: task, tool: echo, args: {text: x}, next: b}\n"
)

runner = CliRunner()


def golden(name: str) -> str:
    return (GOLDEN / name).read_text(encoding="utf-8")


def started(client: TestClient, body: dict[str, object]) -> str:
    response = client.post("/tasks", json=body)
    assert response.status_code == 201, response.text
    task_id: str = response.json()["id"]
    return task_id


def assert_problem(response: object, status: int, problem: str) -> None:
    assert response.status_code == status, response.text  # type: ignore[attr-defined]
    assert response.headers["content-type"] == PROBLEM  # type: ignore[attr-defined]
    assert response.json()["type"] == f"urn:taskrunner:problem:{problem}"  # type: ignore[attr-defined]


# -- the API ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["classify_sum", "halve_all", "safe_divide"])
def test_a_flow_graph_is_its_golden_diagram_in_either_format(client: TestClient, name: str) -> None:
    mermaid = client.get(f"/flows/{name}/graph")
    assert mermaid.status_code == 200
    assert mermaid.headers["content-type"] == MERMAID
    assert mermaid.text == golden(f"{name}.mmd")
    dot = client.get(f"/flows/{name}/graph", params={"format": "dot"})
    assert dot.headers["content-type"] == DOT
    assert dot.text == golden(f"{name}.dot")


def test_a_task_graph_shows_the_path_it_took(client: TestClient) -> None:
    task_id = started(client, BIG)
    mermaid = client.get(f"/tasks/{task_id}/graph")
    assert mermaid.status_code == 200
    assert mermaid.headers["content-type"] == MERMAID
    assert mermaid.text == golden("classify_sum.big.mmd")
    dot = client.get(f"/tasks/{task_id}/graph", params={"format": "dot"})
    assert dot.headers["content-type"] == DOT
    assert dot.text == golden("classify_sum.big.dot")


def test_a_pending_task_is_drawn_at_its_start(client: TestClient) -> None:
    response = client.post("/tasks", json=BIG, headers={"Prefer": "respond-async"})
    assert response.status_code == 202, response.text
    drawn = client.get(f"/tasks/{response.json()['id']}/graph").text
    assert '"add · pending<br/>task: add"' in drawn
    assert "linkStyle 0 " in drawn  # the start marker's arrow, and no other


def test_a_task_is_drawn_on_the_flow_version_it_pinned(settings: Settings, tmp_path: Path) -> None:
    flows = tmp_path / "flows"
    shutil.copytree(FLOWS, flows)
    with TestClient(create_app(dataclasses.replace(settings, flows_dir=flows))) as client:
        task_id = started(client, BIG)
        source = flows / "classify_sum.yaml"
        source.write_text(
            source.read_text()
            .replace("next: report", "next: finish")
            .replace("  report:", "  finish:")
        )
        assert client.post("/flows/reload").status_code == 200
        assert '"finish<br/>succeed"' in client.get("/flows/classify_sum/graph").text
        assert client.get(f"/tasks/{task_id}/graph").text == golden("classify_sum.big.mmd")


def test_unknown_flows_and_tasks_are_404_problems(client: TestClient) -> None:
    assert_problem(client.get("/flows/nope/graph"), 404, "unknown-flow")
    assert_problem(client.get(f"/tasks/{uuid.uuid4()}/graph"), 404, "unknown-task")


@pytest.mark.parametrize("path", ["/flows/echo_add/graph", "/tasks/{task}/graph"])
@pytest.mark.parametrize("format", ["svg", "", "MERMAID"])
def test_an_unknown_format_is_a_422_problem(client: TestClient, path: str, format: str) -> None:
    url = path.format(task=started(client, BIG))
    assert_problem(client.get(url, params={"format": format}), 422, "invalid-request")


def test_a_task_id_that_is_not_a_uuid_is_a_422_problem(client: TestClient) -> None:
    assert_problem(client.get("/tasks/not-a-uuid/graph"), 422, "invalid-request")


@pytest.mark.parametrize(("format", "suffix"), [("mermaid", ".mmd"), ("dot", ".dot")])
def test_validate_returns_the_diagram_of_a_valid_document(
    client: TestClient, format: str, suffix: str
) -> None:
    response = client.post(
        "/flows/validate",
        content=(FLOWS / "divide_or_explain.yaml").read_bytes(),
        params={"format": format},
    )
    assert response.status_code == 200
    body = response.json()
    assert body["valid"] is True
    assert body["diagram"] == golden("divide_or_explain" + suffix)


def test_validate_returns_no_diagram_for_an_invalid_document(client: TestClient) -> None:
    body = client.post("/flows/validate", content=BROKEN).json()
    assert body["valid"] is False
    assert body["diagram"] is None
    assert [problem["code"] for problem in body["problems"]] == ["flow.unknown-state"]
    bad = client.post("/flows/validate", content=BROKEN, params={"format": "png"})
    assert_problem(bad, 422, "invalid-request")


def test_the_graph_endpoints_need_the_read_scope(settings: Settings) -> None:
    reader, stranger = new_key("reader", "read"), new_key("stranger", "read")
    secured = dataclasses.replace(settings, api_keys=ApiKeyring((reader.key,)))
    with TestClient(create_app(secured)) as client:
        read = {"Authorization": f"Bearer {reader.token}"}
        for path in ("/flows/echo_add/graph", f"/tasks/{uuid.uuid4()}/graph"):
            assert_problem(client.get(path), 401, "unauthenticated")
            denied = client.get(path, headers={"Authorization": f"Bearer {stranger.token}"})
            assert_problem(denied, 401, "invalid-api-key")
        assert client.get("/flows/echo_add/graph", headers=read).status_code == 200
        assert_problem(
            client.get(f"/tasks/{uuid.uuid4()}/graph", headers=read), 404, "unknown-task"
        )


# -- the CLI ------------------------------------------------------------------------------


@pytest.fixture
def environment(database_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("TASKRUNNER_FLOWS_DIR", str(FLOWS))
    monkeypatch.delenv("TASKRUNNER_AUTO_MIGRATE", raising=False)
    monkeypatch.delenv("TASKRUNNER_DEBUG", raising=False)
    return database_url


def cli(*args: str) -> Result:
    return runner.invoke(app, list(args), catch_exceptions=False)


def run_main(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str
) -> tuple[int, str, str]:
    """The real entry point `main()`: (exit status, stdout, stderr)."""
    monkeypatch.setattr(sys, "argv", ["taskrunner", *args])
    capsys.readouterr()
    with pytest.raises(SystemExit) as exited:
        main()
    out, err = capsys.readouterr()
    code = exited.value.code
    return (code if isinstance(code, int) else (0 if code is None else 1)), out, err


@pytest.mark.parametrize(("format", "suffix"), [("mermaid", ".mmd"), ("dot", ".dot")])
def test_graph_prints_a_flows_golden_diagram_by_name_or_file(
    environment: str, format: str, suffix: str
) -> None:
    by_name = cli("graph", "echo_and_add", "--format", format)
    assert by_name.exit_code == 0, by_name.output
    assert by_name.stdout == golden("echo_and_add" + suffix)
    by_file = cli("graph", str(FLOWS / "greet_and_sum.yaml"), "--format", format)
    assert by_file.exit_code == 0, by_file.output
    assert by_file.stdout == golden("greet_and_sum" + suffix)


def test_graph_of_an_invalid_file_prints_its_problems_and_exits_1(
    environment: str, tmp_path: Path
) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text(BROKEN)
    result = cli("graph", str(broken))
    assert result.exit_code == 1
    assert result.stdout == ""
    assert f"{broken}:4:54: flow.unknown-state transition to `b`" in result.stderr
    missing = cli("graph", str(tmp_path / "missing.yaml"))
    assert missing.exit_code == 2
    assert "No such file" in missing.stderr


def test_graph_with_task_draws_its_path_and_refuses_another_flows_task(
    environment: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    ran = cli("run-flow", "--flow", "classify_sum", "--a", "50", "--b", "60", "--json")
    assert ran.exit_code == 0, ran.output
    task_id = ran.stdout.split('"id": "', 1)[1].split('"', 1)[0]
    drawn = cli("graph", "classify_sum", "--task", task_id)
    assert drawn.exit_code == 0, drawn.output
    assert drawn.stdout == golden("classify_sum.big.mmd")
    as_dot = cli("graph", str(FLOWS / "classify_sum.yaml"), "--task", task_id, "--format", "dot")
    assert as_dot.stdout == golden("classify_sum.big.dot")
    other = cli("graph", "echo_add", "--task", task_id)
    assert other.exit_code == 2
    assert other.stdout == ""
    assert "is a task of the flow 'classify_sum', not of 'echo_add'" in other.stderr
    status, out, err = run_main(
        monkeypatch, capsys, "graph", "echo_add", "--task", str(uuid.uuid4())
    )
    assert (status, out) == (1, "")
    assert "error: no task with id" in err
    assert "Traceback" not in err


def test_graph_errors_are_clear_and_never_a_traceback(
    environment: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, err = run_main(monkeypatch, capsys, "graph", "nope")
    assert (status, out) == (2, "")  # as `run-flow --flow nope` says it
    assert err.startswith("error: no flow named 'nope'; flows: classify_sum")
    status, out, err = run_main(monkeypatch, capsys, "graph", "echo_add", "--format", "svg")
    assert (status, out) == (2, "")
    assert "'svg' is not one of 'mermaid', 'dot'" in err
    status, out, err = run_main(monkeypatch, capsys, "graph", "echo_add", "--task", "nope")
    assert (status, out) == (2, "")
    assert "'nope' is not a task id" in err
    assert "Traceback" not in err

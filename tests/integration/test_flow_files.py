"""Flows load per file, through the API on both backends: a bad flow file is listed with
its problems and skipped, the other flows serve; the flows directory is read again on
`POST /flows/reload` and when a file changes; a task queued or running on a version that
changes or goes still finishes on that version."""

from __future__ import annotations

import dataclasses
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import pytest
from fastapi.testclient import TestClient

from taskrunner.api import create_app
from taskrunner.engine.validate import FlowChecker
from taskrunner.flowfile import check_source
from taskrunner.runtime import Runtime
from taskrunner.service import TaskService
from taskrunner.settings import Settings
from taskrunner.store.sql import SqlTaskRepository

ROOT: Final = Path(__file__).resolve().parents[2]
FLOWS: Final = ROOT / "taskrunner" / "flows"
HELLO: Final = {"text": "hello", "a": 2, "b": 3}
QUEUE: Final = {"prefer": "respond-async"}
BROKEN: Final = """\
name: broken
start: echo
states:
  echo:
    type: task
    tool: echo
    args: {text: hi}
    next: ad
  done: {type: succeed}
"""


@pytest.fixture
def flows(tmp_path: Path) -> Path:
    directory = tmp_path / "flows"
    directory.mkdir()
    shutil.copyfile(FLOWS / "echo_add.yaml", directory / "echo_add.yaml")
    (directory / "broken.yaml").write_text(BROKEN)
    return directory


@pytest.fixture
def flow_settings(database_url: str, flows: Path) -> Settings:
    return Settings(
        database_url=database_url,
        auto_migrate=False,
        flows_dir=flows,
        worker_concurrency=0,
        flows_reload_seconds=0,
    )


@pytest.fixture
def flow_client(flow_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(flow_settings)) as client:
        yield client


def _runtime(client: TestClient) -> Runtime:
    runtime: Runtime = client.app.state.runtime  # type: ignore[attr-defined]
    return runtime


def test_a_bad_file_is_listed_with_its_problems_and_the_others_serve(
    flow_client: TestClient, checker: FlowChecker
) -> None:
    listed = flow_client.get("/flows")
    assert listed.status_code == 200, listed.text
    good, bad = listed.json()
    assert (good["valid"], good["name"], good["file"]) == (True, "echo_add", "echo_add.yaml")
    assert bad["valid"] is False
    assert (bad["file"], bad["name"], bad["error"]) == ("broken.yaml", "broken", "has 2 problems")
    assert [problem["code"] for problem in bad["problems"]] == [
        "flow.unknown-state",
        "flow.unreachable",
    ]
    validated = check_source(BROKEN.encode(), "broken.yaml", checker).problems
    assert bad["problems"] == [problem.as_json() for problem in validated]

    started = flow_client.post("/tasks", json=HELLO)
    assert started.status_code == 201, started.text
    for response in (
        flow_client.get("/flows/broken"),
        flow_client.post("/tasks", json={"flow": "broken", "input": {}}),
    ):
        assert response.status_code == 404, response.text
        assert response.headers["content-type"] == "application/problem+json"
        problem = response.json()
        assert problem["type"] == "urn:taskrunner:problem:invalid-flow-file"
        assert "its file broken.yaml in the flows directory has 2 problems" in problem["detail"]
    unknown = flow_client.get("/flows/nothing").json()
    assert unknown["type"] == "urn:taskrunner:problem:unknown-flow"


def test_the_openapi_document_describes_both_kinds_of_entry(flow_client: TestClient) -> None:
    document = flow_client.get("/openapi.json").json()
    schemas = document["components"]["schemas"]
    assert {"FlowSummary", "SkippedFlowFile"} <= set(schemas)
    assert set(schemas["SkippedFlowFile"]["required"]) == {"file", "name", "error", "problems"}
    listed = document["paths"]["/flows"]["get"]["responses"]["200"]["content"]
    items = listed["application/json"]["schema"]["items"]
    assert {ref["$ref"].rsplit("/", 1)[1] for ref in items["anyOf"]} == {
        "FlowSummary",
        "SkippedFlowFile",
    }
    assert "404" in document["paths"]["/flows/{name}"]["get"]["responses"]
    assert "409" in document["paths"]["/flows/reload"]["post"]["responses"]


def test_a_reload_picks_up_a_new_file_a_fixed_file_and_a_changed_file(
    flow_client: TestClient, flows: Path
) -> None:
    shutil.copyfile(FLOWS / "safe_divide.yaml", flows / "safe_divide.yaml")
    (flows / "broken.yaml").write_text(BROKEN.replace("next: ad", "next: done"))
    echo_add = flows / "echo_add.yaml"
    echo_add.write_text(
        echo_add.read_text().replace("sum: $states.add.sum", "total: $states.add.sum")
    )
    before = flow_client.get("/flows").json()
    assert [item["valid"] for item in before] == [True, False]  # not re-read yet

    reloaded = flow_client.post("/flows/reload")
    assert reloaded.status_code == 200, reloaded.text
    assert reloaded.json() == flow_client.get("/flows").json()
    assert [(item["name"], item["valid"]) for item in reloaded.json()] == [
        ("broken", True),
        ("echo_add", True),
        ("safe_divide", True),
    ]
    task = flow_client.post("/tasks", json=HELLO).json()
    assert task["output"] == {"text": "hello", "total": 5}
    assert task["flow_version"] != before[0]["version"]
    divided = flow_client.post(
        "/tasks", json={"flow": "safe_divide", "input": {"dividend": 6, "divisor": 3}}
    )
    assert divided.status_code == 201, divided.text


def test_a_vanished_flows_directory_is_a_409_and_the_flows_stay(
    flow_client: TestClient, flows: Path
) -> None:
    shutil.rmtree(flows)
    response = flow_client.post("/flows/reload")
    assert response.status_code == 409, response.text
    assert response.json()["type"] == "urn:taskrunner:problem:invalid-flows"
    assert flow_client.post("/tasks", json=HELLO).status_code == 201


def test_changed_files_are_seen_without_asking(flow_settings: Settings, flows: Path) -> None:
    polled = dataclasses.replace(flow_settings, flows_reload_seconds=0.1)
    with TestClient(create_app(polled)) as client:
        shutil.copyfile(FLOWS / "safe_divide.yaml", flows / "safe_divide.yaml")
        deadline = time.monotonic() + 10
        while "safe_divide" not in [item["name"] for item in client.get("/flows").json()]:
            assert time.monotonic() < deadline, "the new flow file was not picked up"
            time.sleep(0.05)


def test_tasks_keep_the_version_they_pinned_when_their_flow_changes_or_goes(
    flow_client: TestClient, flows: Path
) -> None:
    running = flow_client.post("/tasks", json=HELLO, headers=QUEUE).json()
    runtime = _runtime(flow_client)
    [held] = runtime.service.claim(10)  # running here, from now on
    assert str(held.id) == running["id"]
    queued = flow_client.post("/tasks", json=HELLO, headers=QUEUE).json()

    echo_add = flows / "echo_add.yaml"
    echo_add.write_text(
        echo_add.read_text().replace("sum: $states.add.sum", "total: $states.add.sum")
    )
    assert flow_client.post("/flows/reload").status_code == 200
    echo_add.unlink()
    names = [item["name"] for item in flow_client.post("/flows/reload").json()]
    assert "echo_add" not in names
    assert flow_client.post("/tasks", json=HELLO).json()["type"].endswith("unknown-flow")

    # The task this process holds finishes on its version; the queued one is run by a
    # worker that never saw that version: it reads it back from the store.
    runtime.service.resume(held)
    elsewhere = TaskService(
        SqlTaskRepository(runtime.database), runtime.catalog, wait=lambda _event, _seconds: False
    )
    try:
        [claimed] = elsewhere.claim(10)
        elsewhere.resume(claimed)
    finally:
        elsewhere.close()
    for task in (queued, running):
        done = flow_client.get(f"/tasks/{task['id']}").json()
        assert (done["status"], done["output"]) == ("succeeded", {"text": "hello", "sum": 5})
        assert done["flow_version"] == task["flow_version"]

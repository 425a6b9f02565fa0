"""A long history is read a page at a time, on both backends: `GET /tasks/{id}` holds the
first 100 steps with `steps_total` and `steps_next_after`, `GET /tasks/{id}/steps` pages
through them all, and `taskrunner get-task` shows the first ones or, asked, every one."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from taskrunner.cli import app
from taskrunner.engine.steps import Step
from taskrunner.store.database import Database
from taskrunner.store.records import Progress, StepRecord
from taskrunner.store.sql import SqlTaskRepository

STEPS: Final = 250
OWNER: Final = "test-writer"


@pytest.fixture
def long_task(client: TestClient, database_url: str) -> str:
    """A finished task of 250 steps, written straight to the store."""
    queued = client.post(
        "/tasks",
        json={"flow": "echo_add", "input": {"text": "x", "a": 1, "b": 2}},
        headers={"Prefer": "respond-async"},
    )
    assert queued.status_code == 202, queued.text
    task_id = uuid.UUID(queued.json()["id"])
    database = Database(database_url)
    try:
        repository = SqlTaskRepository(database)
        now = datetime.now(UTC)
        (claimed,) = repository.claim(OWNER, 1, now + timedelta(seconds=1), now + timedelta(60))
        assert claimed.id == task_id
        for seq in range(1, STEPS + 1):
            step = Step(seq, "echo", "echo", seq, {"text": "x"}, "succeeded", {"text": "x"})
            done = seq == STEPS
            progress = Progress(
                "succeeded" if done else "running",
                "done" if done else "echo",
                now,
                output={"text": "x", "sum": 3} if done else None,
                finished_at=now if done else None,
            )
            repository.record_step(OWNER, StepRecord.of(task_id, step, now, now), progress)
    finally:
        database.dispose()
    return str(task_id)


def test_a_task_holds_its_first_steps_and_says_where_the_rest_are(
    client: TestClient, long_task: str
) -> None:
    task = client.get(f"/tasks/{long_task}").json()
    assert [step["seq"] for step in task["steps"]] == list(range(1, 101))
    assert (task["steps_total"], task["steps_next_after"]) == (STEPS, 100)


def test_the_steps_are_paged_in_order_to_the_end(client: TestClient, long_task: str) -> None:
    seen: list[int] = []
    after: int | None = 0
    pages = 0
    while after is not None:
        response = client.get(f"/tasks/{long_task}/steps", params={"after": after, "limit": 60})
        assert response.status_code == 200, response.text
        page: dict[str, Any] = response.json()
        seen += [step["seq"] for step in page["items"]]
        after = page["next_after"]
        pages += 1
    assert seen == list(range(1, STEPS + 1))
    assert pages == 5
    default = client.get(f"/tasks/{long_task}/steps").json()
    assert [step["seq"] for step in default["items"]] == list(range(1, 101))
    assert default["next_after"] == 100
    whole = client.get(f"/tasks/{long_task}/steps", params={"limit": 1000}).json()
    assert (len(whole["items"]), whole["next_after"]) == (STEPS, None)
    assert client.get(f"/tasks/{long_task}/steps", params={"after": STEPS}).json() == {
        "items": [],
        "next_after": None,
    }


def test_a_short_task_is_whole_in_its_document(client: TestClient) -> None:
    task = client.post("/tasks", json={"flow": "echo_add", "input": {"text": "x", "a": 1, "b": 2}})
    body = task.json()
    assert (len(body["steps"]), body["steps_total"], body["steps_next_after"]) == (2, 2, None)
    page = client.get(f"/tasks/{body['id']}/steps").json()
    assert page["items"] == body["steps"]
    assert page["next_after"] is None


@pytest.mark.parametrize(
    ("query", "status"),
    [
        ({"limit": 0}, 422),
        ({"limit": 1001}, 422),
        ({"after": -1}, 422),
        ({"after": "x"}, 422),
        ({"after": 10**20}, 422),
    ],
)
def test_a_bad_page_is_refused(
    client: TestClient, long_task: str, query: dict[str, Any], status: int
) -> None:
    response = client.get(f"/tasks/{long_task}/steps", params=query)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")


def test_the_steps_of_an_unknown_task_are_not_found(client: TestClient) -> None:
    response = client.get(f"/tasks/{uuid.uuid4()}/steps")
    assert response.status_code == 404, response.text
    assert response.headers["content-type"].startswith("application/problem+json")


def test_get_task_shows_the_first_steps_or_every_one(
    long_task: str, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", database_url)
    runner = CliRunner()
    shown = runner.invoke(app, ["get-task", long_task])
    assert shown.exit_code == 0, shown.output
    assert f"steps     {STEPS} (the first 100)" in shown.output
    assert f"more: taskrunner get-task {long_task} --all-steps" in shown.output
    assert " 100  echo" in shown.output
    assert " 101  echo" not in shown.output
    every = runner.invoke(app, ["get-task", long_task, "--all-steps", "--json"])
    assert every.exit_code == 0, every.output
    assert '"steps_total": 250' in every.output
    assert '"steps_next_after": null' in every.output
    assert '"seq": 250' in every.output

"""Retention on a real database (both backends): `taskrunner purge` deletes old finished
tasks with their steps and nothing else, `--dry-run` deletes nothing, bad options exit 2
with one line; and a worker (the API's in-process one) applies `TASKRUNNER_RETENTION` in
the background while it runs tasks."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from test_cli import FLOWS, assert_clean_failure, cli, run_main

from taskrunner.api import create_app
from taskrunner.catalog import FlowCatalog
from taskrunner.errors import TaskNotFoundError
from taskrunner.service import TaskService
from taskrunner.settings import Settings
from taskrunner.store.database import Database
from taskrunner.store.sql import SqlTaskRepository

HELLO = {"text": "hello", "a": 2, "b": 3}
NOW = datetime.now(UTC)
OLD = NOW - timedelta(days=40)


@dataclass
class Seeded:
    """Tasks of every kind, 40 days old unless said otherwise."""

    succeeded: list[uuid.UUID]  # echo_add: 2 steps each
    failed: uuid.UUID  # safe_divide by zero: 3 attempts, then caught
    cancelled: uuid.UUID  # cancelled while queued: no step
    pending: uuid.UUID  # queued 40 days ago, never run
    running: uuid.UUID  # claimed 40 days ago, not finished
    recent: uuid.UUID  # succeeded a minute ago

    @property
    def old_finished(self) -> list[uuid.UUID]:
        return [*self.succeeded, self.failed, self.cancelled]


def service_at(database: Database, catalog: FlowCatalog, when: datetime) -> TaskService:
    return TaskService(
        SqlTaskRepository(database),
        catalog,
        clock=lambda: when,
        wait=lambda _event, _seconds: False,
    )


def seed(database: Database, catalog: FlowCatalog) -> Seeded:
    old = service_at(database, catalog, OLD)
    succeeded = [old.run_task("echo_add", HELLO).task.id for _ in range(3)]
    failed = old.run_task("safe_divide", {"dividend": 1, "divisor": 0}).task
    assert (failed.status, len(failed.steps)) == ("failed", 3)
    cancelled = old.enqueue_task("echo_add", HELLO).task.id
    old.cancel_task(cancelled)
    running = old.enqueue_task("echo_add", HELLO).task.id
    [claimed] = old.claim(1)
    assert claimed.id == running
    old.leases.drop(running)
    pending = old.enqueue_task("echo_add", HELLO).task.id
    recent = service_at(database, catalog, NOW - timedelta(minutes=1))
    return Seeded(
        succeeded,
        failed.id,
        cancelled,
        pending,
        running,
        recent.run_task("echo_add", HELLO).task.id,
    )


@pytest.fixture
def seeded(database: Database, catalog: FlowCatalog) -> Seeded:
    return seed(database, catalog)


def status_of(service: TaskService, task_id: uuid.UUID) -> str | None:
    try:
        return service.get_task(task_id).status
    except TaskNotFoundError:
        return None


# -- taskrunner purge ---------------------------------------------------------------------


def test_purge_deletes_old_finished_tasks_with_their_steps_and_nothing_else(
    database_url: str, seeded: Seeded, service: TaskService
) -> None:
    dry = cli(database_url, "purge", "--older-than", "30d", "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert dry.stdout.startswith("would delete 5 task(s) and 9 step(s): ")
    assert all(status_of(service, task_id) for task_id in seeded.old_finished)

    only_succeeded = cli(database_url, "purge", "--older-than", "30d", "--status", "succeeded")
    assert only_succeeded.exit_code == 0, only_succeeded.output
    assert only_succeeded.stdout.startswith("deleted 3 task(s) and 6 step(s): succeeded, ")
    assert [status_of(service, task_id) for task_id in seeded.succeeded] == [None] * 3
    assert status_of(service, seeded.failed) == "failed"

    rest = cli(database_url, "purge", "--older-than", "30d", "--json", "--batch-size", "1")
    assert rest.exit_code == 0, rest.output
    document = json.loads(rest.stdout)
    assert (document["tasks"], document["steps"], document["dry_run"]) == (2, 3, False)
    assert document["statuses"] == ["succeeded", "failed", "cancelled"]
    assert datetime.fromisoformat(document["finished_before"]) < NOW - timedelta(days=29)

    assert all(status_of(service, task_id) is None for task_id in seeded.old_finished)
    assert status_of(service, seeded.pending) == "pending"
    assert status_of(service, seeded.running) == "running"
    recent = service.get_task(seeded.recent)
    assert (recent.status, len(recent.steps)) == ("succeeded", 2)
    again = cli(database_url, "purge", "--older-than", "30d")
    assert again.stdout.startswith("deleted 0 task(s) and 0 step(s)")


def test_purge_dry_run_leaves_everything(
    database_url: str, seeded: Seeded, service: TaskService
) -> None:
    before = {task_id: service.get_task(task_id) for task_id in seeded.old_finished}
    result = cli(database_url, "purge", "--older-than", "1m", "--dry-run", "--json")
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert (document["tasks"], document["steps"], document["dry_run"]) == (6, 11, True)
    assert {task_id: service.get_task(task_id) for task_id in before} == before
    assert service.get_task(seeded.recent).status == "succeeded"


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(["--older-than", "30"], id="no-unit"),
        pytest.param(["--older-than", "30 days"], id="words"),
        pytest.param(["--older-than", "-5d"], id="negative"),
        pytest.param(["--older-than", "0h"], id="zero"),
        pytest.param(["--older-than", "1.5d"], id="fraction"),
        pytest.param(["--older-than", "99999999d"], id="too-long"),
        pytest.param(["--older-than", "30d", "--status", "pending"], id="pending"),
        pytest.param(["--older-than", "30d", "--status", "succeeded,running"], id="running"),
        pytest.param(["--older-than", "30d", "--status", "finished"], id="unknown-status"),
        pytest.param(["--older-than", "30d", "--status", ","], id="no-status"),
    ],
)
def test_bad_purge_options_exit_2_with_one_line_and_delete_nothing(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    database_url: str,
    seeded: Seeded,
    service: TaskService,
    args: list[str],
) -> None:
    code, out, err = run_main(monkeypatch, capsys, database_url, "purge", *args)
    assert code == 2, err
    assert_clean_failure(err, out)
    if "--status" in args:
        assert "pending and running tasks are never purged" in err
    else:
        assert "duration" in err
    assert all(status_of(service, task_id) for task_id in seeded.old_finished)


# -- the background retention of a worker ------------------------------------------------


def wait_for(condition: Callable[[], bool], seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.fixture
def retaining_client(database_url: str, seeded: Seeded) -> Iterator[TestClient]:
    """The API, with its in-process worker and a retention of 30 days, checked often."""
    settings = Settings(
        database_url=database_url,
        auto_migrate=False,
        flows_dir=FLOWS,
        worker_concurrency=2,
        poll_seconds=0.1,
        retention=timedelta(days=30),
        retention_interval=0.2,
    )
    with TestClient(create_app(settings)) as client:
        yield client


def test_the_apis_worker_applies_the_retention_setting_while_running_tasks(
    retaining_client: TestClient, seeded: Seeded, service: TaskService
) -> None:
    wait_for(lambda: all(status_of(service, t) is None for t in seeded.old_finished))
    # Tasks keep running meanwhile: a queued one, and the old queued one, run to their end
    # (now, so they are kept); the old running one is taken over once its lease ran out.
    queued = retaining_client.post(
        "/tasks",
        json={"flow": "echo_add", "input": HELLO},
        headers={"Prefer": "respond-async"},
    )
    assert queued.status_code == 202, queued.text
    new = uuid.UUID(queued.json()["id"])
    for task_id in (new, seeded.pending, seeded.running):
        wait_for(lambda task_id=task_id: status_of(service, task_id) == "succeeded")  # type: ignore[misc]
    time.sleep(0.5)  # a few more rounds of the retention: they keep what is recent
    for task_id in (new, seeded.pending, seeded.running, seeded.recent):
        assert len(service.get_task(task_id).steps) == 2

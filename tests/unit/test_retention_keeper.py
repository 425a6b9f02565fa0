"""Retention without a database: durations, the batch loop, and the background keeper on
the in-memory twin, whose store faults are logged once, retried, and never raised."""

from __future__ import annotations

import inspect
import logging
import threading
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from taskrunner.cli.tasks import purge
from taskrunner.durations import format_duration, parse_duration
from taskrunner.errors import InvalidDurationError, SettingsError, StoreUnavailableError
from taskrunner.retention import RetentionKeeper, purge_finished
from taskrunner.settings import Settings
from taskrunner.store.memory import InMemoryTaskRepository
from taskrunner.store.records import FINISHED, FlowVersion, Purged, TaskRecord, TaskStatus

NOW = datetime(2026, 6, 1, tzinfo=UTC)


def finished(repository: InMemoryTaskRepository, age: timedelta, status: TaskStatus) -> None:
    at = NOW - age
    task = TaskRecord(
        id=uuid.uuid4(),
        flow_name="echo",
        flow_digest="sha256:echo",
        status=status,
        current_state="done",
        error_kind=None,
        error_message=None,
        cancel_requested=False,
        created_at=at,
        updated_at=at,
        started_at=at,
        finished_at=None if status in ("pending", "running") else at,
        input={},
        output=None,
        idempotency_key=None,
        run_after=at if status == "pending" else None,
        lease_owner=None,
        lease_expires_at=None,
        step_count=0,
        checkpoint=None,
    )
    version = FlowVersion("sha256:echo", "echo", {}, at)
    assert repository.create_task(task, version) is None


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("45s", 45), ("90m", 5400), ("12h", 43_200), ("30d", 2_592_000), (" 7D ", 604_800)],
)
def test_durations_read_as_people_write_them(text: str, seconds: int) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)
    assert parse_duration(format_duration(parse_duration(text))) == parse_duration(text)


@pytest.mark.parametrize("text", ["", "30", "d", "0s", "-1d", "1.5h", "2w", "1d2h", "40000d"])
def test_anything_else_is_not_a_duration(text: str) -> None:
    with pytest.raises(InvalidDurationError):
        parse_duration(text)


def test_the_retention_setting_is_a_duration_or_off() -> None:
    assert Settings.from_env({}).retention is None
    assert Settings.from_env({"TASKRUNNER_RETENTION": "off"}).retention is None
    assert Settings.from_env({"TASKRUNNER_RETENTION": "30d"}).retention == timedelta(days=30)
    with pytest.raises(SettingsError, match="TASKRUNNER_RETENTION"):
        Settings.from_env({"TASKRUNNER_RETENTION": "a month"})


def test_purge_by_default_takes_every_finished_status_of_the_store() -> None:
    default = inspect.signature(purge).parameters["status"].default
    assert default.split(",") == list(FINISHED)


def test_a_purge_goes_batch_by_batch_until_a_short_one() -> None:
    repository = InMemoryTaskRepository()
    for n in range(7):
        finished(repository, timedelta(days=40 + n), "succeeded")
    finished(repository, timedelta(days=1), "succeeded")
    finished(repository, timedelta(days=90), "pending")
    repository.commits = 0

    assert purge_finished(repository, NOW - timedelta(days=30), batch_size=3) == Purged(7, 0)
    assert repository.commits == 3  # 3 + 3 + 1, each its own transaction
    assert repository.count_purgeable(NOW, ["succeeded", "pending"]) == Purged(1, 0)


def test_a_purge_stops_between_batches_when_asked() -> None:
    repository = InMemoryTaskRepository()
    for n in range(7):
        finished(repository, timedelta(days=40 + n), "failed")
    assert purge_finished(repository, NOW, batch_size=2, between=lambda: False) == Purged(2, 0)


class FailingStore(InMemoryTaskRepository):
    """The twin, whose purges fail while `failing` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.failing = True
        self.attempts = 0

    def purge(self, *args: object, **kwargs: object) -> Purged:
        self.attempts += 1
        if self.failing:
            raise StoreUnavailableError("the database failed: connection refused")
        return super().purge(*args, **kwargs)  # type: ignore[arg-type]


def test_the_keeper_logs_a_failing_store_once_and_tries_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    repository = FailingStore()
    finished(repository, timedelta(days=40), "succeeded")
    keeper = RetentionKeeper(repository, timedelta(days=30), clock=lambda: NOW, pause=0)
    stop = threading.Event()
    caplog.set_level(logging.INFO, logger="taskrunner.retention")

    for _ in range(3):
        assert keeper.apply(stop) == Purged()
    assert repository.attempts == 3
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "connection refused" in warnings[0]

    repository.failing = False
    assert keeper.apply(stop) == Purged(1, 0)
    messages = [record.getMessage() for record in caplog.records]
    assert "retention: deleting old tasks works again" in messages
    assert any("deleted 1 task(s)" in message and "30d" in message for message in messages)
    assert all(record.exc_info is None for record in caplog.records)


def test_the_keeper_survives_a_bug_and_runs_until_stopped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    repository = FailingStore()
    repository.purge = lambda *args: 1 / 0  # type: ignore[assignment,method-assign]
    keeper = RetentionKeeper(repository, timedelta(days=30), interval=0.01, clock=lambda: NOW)
    stop = threading.Event()
    thread = threading.Thread(target=keeper.run, args=(stop,))
    thread.start()
    try:
        deadline = datetime.now(UTC) + timedelta(seconds=5)
        while len(caplog.records) < 2 and datetime.now(UTC) < deadline:
            stop.wait(0.01)
    finally:
        stop.set()
        thread.join(5)
    assert not thread.is_alive()
    assert len(caplog.records) >= 2  # one round after another, each logged
    assert all("deleting old tasks failed" in record.getMessage() for record in caplog.records)

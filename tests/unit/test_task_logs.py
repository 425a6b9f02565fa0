"""The log of tasks: one line per transition and per step, as JSON with stable keys or as
readable text, and never a task's input or output."""

from __future__ import annotations

import io
import json
import logging
import re
import subprocess
import sys
from collections.abc import Iterator
from typing import Any, Final

import pytest

from taskrunner.catalog import FlowCatalog
from taskrunner.logs import configure_logging, reset_logging
from taskrunner.service import TaskService
from taskrunner.settings import LogSettings
from taskrunner.store.memory import InMemoryTaskRepository
from taskrunner.tasklog import TaskLog

PRIVATE_TEXT: Final = "s3cret-Input-4f1c"
ENTRY: Final = [sys.executable, "-c", "from taskrunner.cli import main; main()"]


class Captured:
    def __init__(self) -> None:
        self.stream = io.StringIO()

    def lines(self) -> list[str]:
        return self.stream.getvalue().splitlines()

    def records(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.lines()]


@pytest.fixture
def captured() -> Iterator[Captured]:
    """The log, as configure_logging sets it, written to a string; undone afterwards."""
    yield Captured()
    reset_logging()


def logged(captured: Captured, **settings: Any) -> None:
    configure_logging(LogSettings(**settings), default_level="INFO", stream=captured.stream)


def service(catalog: FlowCatalog) -> TaskService:
    return TaskService(
        InMemoryTaskRepository(),
        catalog,
        observer=TaskLog(),
        wait=lambda _event, _seconds: False,
    )


def test_json_lines_carry_each_step_retry_and_the_failure(
    catalog: FlowCatalog, captured: Captured
) -> None:
    logged(captured, format="json")
    task = service(catalog).run_task("safe_divide", {"dividend": 1, "divisor": 0}).task
    records = [record for record in captured.records() if record["logger"] == "taskrunner.tasks"]
    assert [record["event"] for record in records] == [
        "task.created",
        "step.failed",
        "task.retry_scheduled",
        "step.failed",
        "task.retry_scheduled",
        "step.failed",
        "task.failed",
    ]
    for record in records:
        assert {"ts", "level", "logger", "event", "task_id", "flow", "state"} <= set(record)
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00", record["ts"])
        assert record["level"] == "info"
        assert record["task_id"] == str(task.id)
        assert record["flow"] == "safe_divide"
    steps = [record for record in records if record["event"] == "step.failed"]
    assert [step["attempt"] for step in steps] == [1, 2, 3]
    assert [step["seq"] for step in steps] == [1, 2, 3]
    for step in steps:
        assert (step["state"], step["tool"], step["status"]) == ("divide", "divide", "failed")
        assert step["error_kind"] == "DivisionByZero"
        assert isinstance(step["duration_ms"], float)
        assert step["duration_ms"] >= 0
    retries = [record for record in records if record["event"] == "task.retry_scheduled"]
    assert [(retry["attempt"], retry["delay_seconds"]) for retry in retries] == [(2, 0.5), (3, 1.0)]
    assert records[-1]["status"] == "failed"
    assert records[-1]["error_kind"] == "UndefinedQuotient"
    assert records[-1]["steps"] == 3


def test_a_queued_task_is_logged_as_it_is_claimed_and_ends(
    catalog: FlowCatalog, captured: Captured
) -> None:
    logged(captured, format="json")
    runner = service(catalog)
    runner.enqueue_task("echo_add", {"text": "hi", "a": 1, "b": 2})
    [claimed] = runner.claim(1)
    runner.resume(claimed)
    events = [record["event"] for record in captured.records()]
    assert events == [
        "task.queued",
        "task.claimed",
        "step.succeeded",
        "step.succeeded",
        "task.succeeded",
    ]


def test_text_lines_read_as_time_level_logger_event_and_fields(
    catalog: FlowCatalog, captured: Captured
) -> None:
    logged(captured, format="text")
    service(catalog).run_task("echo_add", {"text": "hello world", "a": 2, "b": 3})
    lines = captured.lines()
    assert len(lines) == 4
    pattern = (
        r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00 INFO taskrunner\.tasks step\.succeeded "
        r"task_id=[0-9a-f-]{36} flow=echo_add state=echo tool=echo seq=1 attempt=1 "
        r"status=succeeded duration_ms=[0-9.]+"
    )
    assert re.fullmatch(pattern, lines[1]), lines[1]
    assert " task.succeeded " in lines[-1]
    assert "error_kind" not in lines[-1]  # no value: not said


@pytest.mark.parametrize("level", ["INFO", "DEBUG"])
def test_a_secret_input_never_appears_in_the_log(
    catalog: FlowCatalog, captured: Captured, level: str
) -> None:
    logged(captured, format="json", level=level)
    service(catalog).run_task("echo_add", {"text": PRIVATE_TEXT, "a": 2, "b": 3})
    text = captured.stream.getvalue()
    assert "step.succeeded" in text
    assert PRIVATE_TEXT not in text
    if level == "DEBUG":
        assert all("input_bytes" in record for record in captured.records() if "tool" in record)


def test_the_level_leaves_out_what_is_below_it(catalog: FlowCatalog, captured: Captured) -> None:
    logged(captured, level="WARNING")
    service(catalog).run_task("echo_add", {"text": "hi", "a": 2, "b": 3})
    logging.getLogger("taskrunner.worker").warning("a warning of the worker")
    [line] = captured.lines()
    assert line.endswith(" WARNING taskrunner.worker a warning of the worker")


def test_configuring_again_replaces_the_handler(captured: Captured) -> None:
    logged(captured)
    logged(captured, format="json")
    logging.getLogger("taskrunner.flows").warning("once")
    [line] = captured.lines()
    assert json.loads(line)["event"] == "once"


@pytest.mark.parametrize(
    ("name", "value", "said"),
    [
        ("TASKRUNNER_LOG_FORMAT", "xml", "TASKRUNNER_LOG_FORMAT='xml': use text or json"),
        ("TASKRUNNER_LOG_LEVEL", "loud", "TASKRUNNER_LOG_LEVEL='LOUD': use one of DEBUG"),
    ],
)
def test_a_bad_log_setting_exits_2_with_a_message(name: str, value: str, said: str) -> None:
    done = subprocess.run(
        [*ENTRY, "schema"],
        env={"PATH": "/usr/bin:/bin", name: value},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.startswith(f"error: {said}")
    assert "Traceback" not in done.stderr

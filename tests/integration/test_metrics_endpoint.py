"""`GET /metrics`: the counters move as tasks run, fail and retry; the queue's gauges say
what the database holds; requests are counted by route template; and a database that is
down or hung never keeps a scrape from answering."""

from __future__ import annotations

import dataclasses
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any, Final

import pytest
from fastapi.testclient import TestClient
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.parser import text_string_to_metric_families

from taskrunner.api import create_app
from taskrunner.apikeys import ApiKeyring, new_key
from taskrunner.errors import StoreUnavailableError
from taskrunner.metrics import QUEUE_READ_SECONDS
from taskrunner.settings import Settings
from taskrunner.store.records import QueueStats

HELLO: Final = {"flow": "echo_add", "input": {"text": "hello", "a": 2, "b": 3}}
BY_ZERO: Final = {"flow": "safe_divide", "input": {"dividend": 1, "divisor": 0}}
QUEUED: Final = {"Prefer": "respond-async"}

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(client: TestClient, headers: dict[str, str] | None = None) -> Samples:
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == CONTENT_TYPE_LATEST
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def test_the_counters_move_across_a_run_a_failure_and_a_retry(client: TestClient) -> None:
    before = scrape(client)
    assert client.post("/tasks", json=HELLO).json()["status"] == "succeeded"
    assert client.post("/tasks", json=BY_ZERO).json()["status"] == "failed"
    after = scrape(client)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("taskrunner_tasks_started_total", flow="echo_add") == 1
    assert moved("taskrunner_tasks_started_total", flow="safe_divide") == 1
    assert moved("taskrunner_tasks_finished_total", flow="echo_add", status="succeeded") == 1
    assert moved("taskrunner_tasks_finished_total", flow="safe_divide", status="failed") == 1
    assert moved("taskrunner_tasks_finished_total", flow="echo_add", status="failed") == 0
    # safe_divide tries its division three times: two retries, then the catch.
    retried = {"flow": "safe_divide", "state": "divide", "error_kind": "DivisionByZero"}
    assert moved("taskrunner_retries_total", **retried) == 2
    step = {"flow": "safe_divide", "state": "divide", "tool": "divide"}
    assert moved("taskrunner_step_duration_seconds_count", **step) == 3
    assert moved("taskrunner_step_duration_seconds_bucket", **step, le="60.0") == 3
    assert moved("taskrunner_step_duration_seconds_count", flow="echo_add", state="add", tool="add")
    assert value(after, "taskrunner_sync_runs_in_flight") == 0
    assert value(after, "taskrunner_lease_losses_total") == 0
    assert value(after, "taskrunner_takeovers_total") == 0
    assert value(after, "taskrunner_database_up") == 1


def test_every_metric_says_what_it_means(client: TestClient) -> None:
    client.post("/tasks", json=HELLO)
    text = client.get("/metrics").text
    families = list(text_string_to_metric_families(text))
    assert len(families) >= 12
    for family in families:
        assert family.name.startswith("taskrunner_"), family.name
        assert len(family.documentation) > 20, family.name


def test_requests_are_counted_by_route_template_not_path(client: TestClient) -> None:
    task_id = client.post("/tasks", json=HELLO).json()["id"]
    assert client.get(f"/tasks/{task_id}").status_code == 200
    assert client.get(f"/tasks/{uuid.uuid4()}").status_code == 404
    assert client.get("/no/such/page").status_code == 404
    response = client.get("/metrics")
    samples = scrape(client)
    assert task_id not in response.text
    total = "taskrunner_http_requests_total"
    assert value(samples, total, method="POST", route="/tasks", status="201") == 1
    assert value(samples, total, method="GET", route="/tasks/{task_id}", status="200") == 1
    assert value(samples, total, method="GET", route="/tasks/{task_id}", status="404") == 1
    assert value(samples, total, method="GET", route="unmatched", status="404") == 1
    timed = {"method": "GET", "route": "/tasks/{task_id}"}
    assert value(samples, "taskrunner_http_request_duration_seconds_count", **timed) == 2


def test_the_queue_gauges_count_queued_tasks(client: TestClient) -> None:
    empty = scrape(client)
    assert value(empty, "taskrunner_queued_tasks", due="now") == 0
    assert value(empty, "taskrunner_queue_oldest_age_seconds") == 0
    for _ in range(3):
        assert client.post("/tasks", json=HELLO, headers=QUEUED).status_code == 202
    time.sleep(0.05)
    samples = scrape(client)
    assert value(samples, "taskrunner_queued_tasks", due="now") == 3
    assert value(samples, "taskrunner_queued_tasks", due="later") == 0
    assert value(samples, "taskrunner_queue_oldest_age_seconds") > 0
    assert value(samples, "taskrunner_database_up") == 1


def _runtime(client: TestClient) -> Any:
    return client.app.state.runtime  # type: ignore[attr-defined]


def test_a_scrape_answers_while_the_database_is_down(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    def down(now: object) -> QueueStats:
        raise StoreUnavailableError("the database failed: connection refused")

    monkeypatch.setattr(_runtime(client).service.repository, "queue_stats", down)
    samples = scrape(client)
    assert value(samples, "taskrunner_database_up") == 0
    assert not any(name == "taskrunner_queued_tasks" for name, _ in samples)
    assert not any(name == "taskrunner_queue_oldest_age_seconds" for name, _ in samples)


@pytest.fixture
def hung(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> Iterator[threading.Event]:
    """A database that does not answer the queue's read until the event is set."""
    answer = threading.Event()
    repository = _runtime(client).service.repository
    read = repository.queue_stats

    def hanging(now: Any) -> QueueStats:
        answer.wait(30)
        return read(now)

    monkeypatch.setattr(repository, "queue_stats", hanging)
    yield answer
    answer.set()


def test_a_scrape_answers_in_bounded_time_while_the_database_hangs(
    client: TestClient, hung: threading.Event
) -> None:
    started = time.monotonic()
    samples = scrape(client)
    assert time.monotonic() - started < QUEUE_READ_SECONDS + 1.5
    assert value(samples, "taskrunner_database_up") == 0
    # A second scrape waits on the same read, not on a second one piled on the first.
    assert value(scrape(client), "taskrunner_database_up") == 0
    hung.set()
    time.sleep(0.1)
    assert value(scrape(client), "taskrunner_database_up") == 1


def test_with_api_keys_a_scrape_needs_a_read_key(settings: Settings) -> None:
    reader = new_key("prometheus", "read")
    chosen = dataclasses.replace(settings, api_keys=ApiKeyring((reader.key,)))
    with TestClient(create_app(chosen)) as secured:
        refused = secured.get("/metrics")
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"].startswith("Bearer")
        samples = scrape(secured, {"Authorization": f"Bearer {reader.token}"})
    assert value(samples, "taskrunner_database_up") == 1

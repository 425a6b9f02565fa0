"""The metrics of tasks, as the service reports them, on the in-memory store: a lease
lost by one runner is a takeover by another, and a cancelled queued task is finished."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from prometheus_client.parser import text_string_to_metric_families

from taskrunner.catalog import FlowCatalog
from taskrunner.metrics import Metrics
from taskrunner.service import TaskService
from taskrunner.store.memory import InMemoryTaskRepository

HELLO = {"text": "hello", "a": 2, "b": 3}


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def samples(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = metrics.render().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_a_lost_lease_is_counted_by_its_loser_and_the_takeover_by_the_taker(
    catalog: FlowCatalog,
) -> None:
    repository, clock = InMemoryTaskRepository(), Clock()
    first, second = Metrics(), Metrics()
    loser = TaskService(repository, catalog, clock=clock, owner="a", observer=first)
    taker = TaskService(repository, catalog, clock=clock, owner="b", observer=second)
    try:
        loser.enqueue_task("echo_add", HELLO)
        [claimed] = loser.claim(1)
        clock.now += timedelta(minutes=5)  # the loser's lease runs out unrenewed
        [taken] = taker.claim_abandoned(1)
        loser.resume(claimed)
        taker.resume(taken)
    finally:
        loser.close()
        taker.close()
    lost, won = samples(first), samples(second)
    assert lost[("taskrunner_lease_losses_total", ())] == 1
    assert lost[("taskrunner_takeovers_total", ())] == 0
    assert lost[("taskrunner_tasks_started_total", (("flow", "echo_add"),))] == 1
    assert (
        "taskrunner_tasks_finished_total",
        (("flow", "echo_add"), ("status", "succeeded")),
    ) not in lost
    assert won[("taskrunner_takeovers_total", ())] == 1
    assert won[("taskrunner_lease_losses_total", ())] == 0
    finished = ("taskrunner_tasks_finished_total", (("flow", "echo_add"), ("status", "succeeded")))
    assert won[finished] == 1


def test_a_queued_task_cancelled_is_finished_cancelled(catalog: FlowCatalog) -> None:
    metrics = Metrics()
    service = TaskService(InMemoryTaskRepository(), catalog, observer=metrics)
    task = service.enqueue_task("echo_add", HELLO).task
    service.cancel_task(task.id)
    cancelled = ("taskrunner_tasks_finished_total", (("flow", "echo_add"), ("status", "cancelled")))
    assert samples(metrics)[cancelled] == 1


def test_two_runtimes_in_one_process_count_apart(catalog: FlowCatalog) -> None:
    counted, other = Metrics(), Metrics()
    TaskService(InMemoryTaskRepository(), catalog, observer=counted).run_task("echo_add", HELLO)
    started = ("taskrunner_tasks_started_total", (("flow", "echo_add"),))
    assert samples(counted)[started] == 1
    assert started not in samples(other)

"""Prometheus metrics of one process, on a registry of its own (never the process-global
default one: two runtimes in one process, as in tests, keep their counts apart).

`Metrics` is an observer of tasks (`observe.py`): counters and histograms moved in the
thread that reports the event, with no lock of its own beyond prometheus-client's. The
queue's gauges are not kept up to date by events, which a crash or another worker would
make wrong: `QueueCollector` reads them from the store when scraped, with one bounded
query, in bounded time. The HTTP metrics are moved by `api/metrics.py`'s middleware.

Tasks are counted when requests start them; a fan-out's children (branches, map items,
sub-flow runs) are part of their parent's task there, but their steps are timed like any.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from datetime import datetime
from typing import Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from taskrunner.errors import StoreError
from taskrunner.store.records import QueueStats, StepRecord, TaskRecord
from taskrunner.store.repository import TaskRepository

STEP_BUCKETS: Final = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60,
)  # fmt: skip
"""Seconds, from a pure tool's millisecond to a slow call's minute."""
HTTP_BUCKETS: Final = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
QUEUE_READ_SECONDS: Final = 2.0
"""The longest a scrape waits for the queue's numbers; past it, they are left out."""


class Metrics:
    """The metrics of tasks and requests in this process, and the registry that serves
    them (`render`)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        registry = self.registry
        self.tasks_started = Counter(
            "taskrunner_tasks_started",
            "Tasks started by requests (run at once or queued), by flow.",
            ["flow"],
            registry=registry,
        )
        self.tasks_finished = Counter(
            "taskrunner_tasks_finished",
            "Tasks that ended, by flow and status (succeeded, failed, cancelled).",
            ["flow", "status"],
            registry=registry,
        )
        self.step_seconds = Histogram(
            "taskrunner_step_duration_seconds",
            "How long each recorded step took, from its call to its result, by flow, "
            "state and tool (a fan-out's step lasts as long as its children).",
            ["flow", "state", "tool"],
            buckets=STEP_BUCKETS,
            registry=registry,
        )
        self.retries = Counter(
            "taskrunner_retries",
            "Failed steps scheduled to be tried again by a retry rule, by flow, state "
            "and the error kind that failed them.",
            ["flow", "state", "error_kind"],
            registry=registry,
        )
        self.lease_losses = Counter(
            "taskrunner_lease_losses",
            "Tasks this process stopped running because it lost their lease (it could "
            "not renew it in time, and another runner took the task over).",
            registry=registry,
        )
        self.takeovers = Counter(
            "taskrunner_takeovers",
            "Tasks this process took over from a runner whose lease ran out (it died, "
            "or lost the database).",
            registry=registry,
        )
        self.sync_runs = Gauge(
            "taskrunner_sync_runs_in_flight",
            "Synchronous runs (POST /tasks without respond-async, run-flow) under way.",
            registry=registry,
        )
        self.http_requests = Counter(
            "taskrunner_http_requests",
            "HTTP requests answered, by method, route template and status.",
            ["method", "route", "status"],
            registry=registry,
        )
        self.http_seconds = Histogram(
            "taskrunner_http_request_duration_seconds",
            "How long HTTP requests took to answer, by method and route template.",
            ["method", "route"],
            buckets=HTTP_BUCKETS,
            registry=registry,
        )

    def watch_queue(self, repository: TaskRepository, clock: Callable[[], datetime]) -> None:
        """Serve the queue's gauges, read from `repository` when scraped."""
        self.registry.register(QueueCollector(repository, clock))

    def render(self) -> bytes:
        """Every metric, in the Prometheus text format."""
        return generate_latest(self.registry)

    # -- the events of tasks (`observe.Observer`) -------------------------------------------

    def task_started(self, task: TaskRecord) -> None:
        if task.parent_id is None:
            self.tasks_started.labels(task.flow_name).inc()

    def task_claimed(self, task: TaskRecord, *, taken_over: bool) -> None:
        if taken_over:
            self.takeovers.inc()

    def step_recorded(self, task: TaskRecord, step: StepRecord) -> None:
        seconds = (step.finished_at - step.started_at).total_seconds()
        self.step_seconds.labels(task.flow_name, step.state, step.tool).observe(seconds)

    def retry_scheduled(self, task: TaskRecord, step: StepRecord, delay_seconds: float) -> None:
        self.retries.labels(task.flow_name, step.state, step.error_kind or "").inc()

    def task_waiting(self, task: TaskRecord) -> None:
        pass  # the queue's gauges see it when scraped

    def task_finished(self, task: TaskRecord) -> None:
        if task.parent_id is None:
            self.tasks_finished.labels(task.flow_name, task.status).inc()

    def lease_lost(self, task: TaskRecord) -> None:
        self.lease_losses.inc()

    def sync_run(self, delta: int) -> None:
        self.sync_runs.inc(delta)

    # -- HTTP -----------------------------------------------------------------------------

    def http_request(self, method: str, route: str, status: int, seconds: float) -> None:
        self.http_requests.labels(method, route, str(status)).inc()
        self.http_seconds.labels(method, route).observe(seconds)


class QueueCollector(Collector):
    """The queue's gauges, read from the store at each scrape.

    The read runs in a thread of its own and is waited for `QUEUE_READ_SECONDS` at most,
    so that a database that is down or hung never holds a scrape longer: the queue's
    gauges are then left out and `taskrunner_database_up` is 0. A read still under way
    is not started again: a scrape meanwhile waits for the same one."""

    def __init__(self, repository: TaskRepository, clock: Callable[[], datetime]) -> None:
        self._repository = repository
        self._clock = clock
        self._reading: Future[QueueStats] | None = None
        self._lock = threading.Lock()

    def collect(self) -> Iterable[Metric]:
        now = self._clock()
        stats = self._stats(now)
        yield GaugeMetricFamily(
            "taskrunner_database_up",
            "1 when the last scrape read the queue from the database in time, else 0.",
            value=0 if stats is None else 1,
        )
        if stats is None:
            return
        depth = GaugeMetricFamily(
            "taskrunner_queued_tasks",
            "Pending tasks a worker may claim: due now (due=now), or after a retry's delay "
            "or a wait (due=later).",
            labels=["due"],
        )
        depth.add_metric(["now"], stats.ready)
        depth.add_metric(["later"], stats.waiting)
        yield depth
        since = stats.oldest_ready_since
        age = 0.0 if since is None else max((now - since).total_seconds(), 0.0)
        yield GaugeMetricFamily(
            "taskrunner_queue_oldest_age_seconds",
            "How long the longest-waiting due task has been claimable and not claimed "
            "(0 when none is due): how far the workers lag behind.",
            value=age,
        )

    def _stats(self, now: datetime) -> QueueStats | None:
        with self._lock:
            reading = self._reading
            if reading is None or reading.done():
                reading = self._reading = self._start(now)
        try:
            return reading.result(QUEUE_READ_SECONDS)
        except (FutureTimeout, StoreError):
            return None

    def _start(self, now: datetime) -> Future[QueueStats]:
        reading: Future[QueueStats] = Future()

        def read() -> None:
            try:
                reading.set_result(self._repository.queue_stats(now))
            except BaseException as exc:  # noqa: BLE001 - the scrape waiting for it raises it
                reading.set_exception(exc)

        # A daemon thread: a database that hangs must not keep the process from exiting.
        threading.Thread(target=read, name="taskrunner-metrics-queue", daemon=True).start()
        return reading

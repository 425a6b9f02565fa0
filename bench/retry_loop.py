"""How a claim's cost grows with a task's history: `uv run python -m bench.retry_loop
[--steps 1200] [--window 100] [--replay]`.

One task of `flows/retry_loop.yaml` on a fresh PostgreSQL database (as the benchmark's
other scenarios): every step is a failed attempt whose retry goes back to the queue, so
every step costs a claim and a resume. It prints the steps per second of the first and of
the last `--window` steps. `--replay` resumes as before checkpoints did, by replaying the
whole history at each claim, to compare in the same conditions.
"""

from __future__ import annotations

import argparse
import time

from bench.harness import FLOWS, fresh_database
from taskrunner.catalog import FlowCatalog
from taskrunner.engine.interpreter import Execution, replay
from taskrunner.engine.plan import FlowPlan
from taskrunner.engine.validate import FlowChecker
from taskrunner.flowfile import check_file
from taskrunner.service import TaskService
from taskrunner.store.database import Database
from taskrunner.store.records import TaskRecord
from taskrunner.store.sql import SqlTaskRepository
from taskrunner.tools import builtin_registry


class ReplayingService(TaskService):
    """The service as it resumed before checkpoints: the whole history, every claim."""

    def _position(self, plan: FlowPlan, claimed: TaskRecord) -> Execution:
        recorded = self.repository.steps_of(claimed.id) if claimed.step_count else []
        return replay(plan, claimed.input, [step.step() for step in recorded])


def measure(url: str, steps: int, window: int, replaying: bool) -> tuple[float, float]:
    checker = FlowChecker(builtin_registry())
    flow = check_file(FLOWS / "retry_loop.yaml", checker).flow
    assert flow is not None
    database = Database(url)
    kind = ReplayingService if replaying else TaskService
    service = kind(SqlTaskRepository(database), FlowCatalog.of([flow], checker))
    try:
        task_id = service.enqueue_task("retry_loop", {"divisor": 0}).task.id
        # When each claim came, by how many steps the task had recorded before it.
        reached: dict[int, float] = {0: time.perf_counter()}
        while max(reached) < steps:
            for claimed in service.claim(1):
                reached.setdefault(claimed.step_count, time.perf_counter())
                service.resume(claimed)
        service.cancel_task(task_id)
    finally:
        service.close()
        database.dispose()
    return _rate(reached, 0, window), _rate(reached, steps - window, steps)


def _rate(reached: dict[int, float], start: int, end: int) -> float:
    """Steps per second between the claims nearest to `start` and `end` steps."""
    first = min(reached, key=lambda count: abs(count - start))
    last = min(reached, key=lambda count: abs(count - end))
    return (last - first) / (reached[last] - reached[first])


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.retry_loop", description=__doc__)
    parser.add_argument("--steps", type=int, default=1_200)
    parser.add_argument("--window", type=int, default=100)
    parser.add_argument("--replay", action="store_true", help="resume by replaying, as before")
    args = parser.parse_args()
    with fresh_database("retry_loop") as url:
        first, last = measure(url, args.steps, args.window, args.replay)
    how = "replaying the history" if args.replay else "from the checkpoint"
    print(
        f"resuming {how}: steps 1-{args.window}: {first:.0f} steps/s; "
        f"steps {args.steps - args.window + 1}-{args.steps}: {last:.0f} steps/s"
    )


if __name__ == "__main__":
    main()

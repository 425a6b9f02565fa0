"""What a fan-out costs per child: `uv run python -m bench.fanout [--items 1000]
[--parents 50] [--workers 2] [--concurrency 4]`.

On a fresh PostgreSQL database, with `--workers` worker processes (`tests/spread_worker.py`,
`--concurrency` runners each), in one run:

- the single-step path: `--items` tasks of a one-step flow (`add`), queued at once;
- a map over `--items` items, one task whose every item is a child task of one `add` step;
- `--parents` tasks that each run a parallel of 8 branches, one `add` step each.

Each is timed from the first enqueue to the last success, and each child's cost is
compared with a one-step task's. The fan-outs are written with the test-only `spread`
kind (`tests/fanout_kind.py`), which makes the very `Fanout` call a `map` or `parallel`
state makes: the children, their rows and their runs are the same.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bench.harness import ROOT, fresh_database, python

sys.path.insert(0, str(ROOT / "tests"))

from fanout_kind import spread_checker

from taskrunner.catalog import FlowCatalog
from taskrunner.service import TaskService
from taskrunner.store.database import Database
from taskrunner.store.sql import SqlTaskRepository
from taskrunner.tools import builtin_registry

ONE_STEP = """
name: one_step
input:
  n: {type: integer}
start: add
states:
  add: {type: task, tool: add, args: {a: $input.n, b: 1}, next: done}
  done: {type: succeed, output: {sum: $states.add.sum}}
"""
FAN = """
name: NAME
input:
  numbers: {type: array}
start: fan
states:
  fan:
    type: spread
    flow: NAME
    items: $input.numbers
    chart:
      start: add
      states:
        add: {type: task, tool: add, args: {a: $input.item, b: 1}, next: done}
        done: {type: succeed, output: {sum: $states.add.sum}}
    next: done
  done:
    type: succeed
    output: {sums: $states.fan.items}
"""


def flows(directory: Path) -> Path:
    (directory / "one_step.yaml").write_text(ONE_STEP)
    (directory / "map_add.yaml").write_text(FAN.replace("NAME", "map_add"))
    (directory / "parallel_add.yaml").write_text(FAN.replace("NAME", "parallel_add"))
    return directory


@contextmanager
def worker_processes(url: str, directory: Path, count: int, concurrency: int) -> Iterator[None]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("TASKRUNNER_")}
    env["PYTHONPATH"] = str(ROOT / "tests")
    processes = [
        subprocess.Popen(
            [
                python(),
                str(ROOT / "tests" / "spread_worker.py"),
                url,
                str(directory),
                str(concurrency),
                "30",
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(count)
    ]
    try:
        for process in processes:
            assert process.stdout is not None
            if b"running" not in process.stdout.readline():
                raise RuntimeError("a worker did not start")
        yield
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=60)


def run_until_done(service: TaskService, flow: str, inputs: list[dict[str, object]]) -> float:
    """Queue a task per input, then wait until all have succeeded; the seconds it took."""
    started = time.perf_counter()
    ids: list[uuid.UUID] = [service.enqueue_task(flow, data).task.id for data in inputs]
    for task_id in ids:
        while True:
            task = service.get_task(task_id)
            if task.finished_at is not None:
                if task.status != "succeeded":
                    raise RuntimeError(f"{flow} task {task_id} {task.status}: {task.error}")
                break
            time.sleep(0.02)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.fanout", description=__doc__)
    parser.add_argument("--items", type=int, default=1_000)
    parser.add_argument("--parents", type=int, default=50)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory(prefix="taskrunner-bench-fanout-") as scratch,
        fresh_database("fanout") as url,
    ):
        directory = flows(Path(scratch))
        checker = spread_checker(builtin_registry())
        database = Database(url)
        service = TaskService(SqlTaskRepository(database), FlowCatalog.load(directory, checker))
        try:
            with worker_processes(url, directory, args.workers, args.concurrency):
                single = run_until_done(service, "one_step", [{"n": n} for n in range(args.items)])
                mapped = run_until_done(service, "map_add", [{"numbers": list(range(args.items))}])
                branches = run_until_done(
                    service, "parallel_add", [{"numbers": list(range(8))}] * args.parents
                )
        finally:
            service.close()
            database.dispose()
    per_task = single / args.items * 1000
    per_item = mapped / args.items * 1000
    per_branch = branches / (8 * args.parents) * 1000
    print(f"{args.workers} workers x {args.concurrency} runners, PostgreSQL")
    print(
        f"single-step path: {args.items} one-step tasks in {single:.2f} s: "
        f"{per_task:.2f} ms per task"
    )
    print(
        f"map over {args.items} items: {mapped:.2f} s: {per_item:.2f} ms per item "
        f"({per_item / per_task:.2f}x a one-step task)"
    )
    print(
        f"parallel of 8 branches x {args.parents} tasks: {branches:.2f} s: "
        f"{per_branch:.2f} ms per branch ({per_branch / per_task:.2f}x a one-step task)"
    )


if __name__ == "__main__":
    main()

"""What a fan-out costs per child: `uv run python -m bench.fanout [--items 1000]
[--parents 50] [--workers 2] [--concurrency 4] [--submitters 8]`.

On a fresh PostgreSQL database, with `--workers` worker processes (`taskrunner worker
--concurrency N`, as deployed), in one run:

- the single-step path: `--items` tasks of a one-step flow (`add`), queued by
  `--submitters` threads at once (each enqueues its share, one after another), as many
  callers submitting together would;
- a `map` over `--items` items, one task whose every item is a child task of one `add` step;
- `--parents` tasks that each run a `parallel` of 8 branches, one `add` step each.

Each is timed from the first enqueue to the last success, and each child's cost is
compared with a one-step task's.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

from bench.harness import ROOT, fresh_database, python
from taskrunner.catalog import FlowCatalog
from taskrunner.engine.validate import FlowChecker
from taskrunner.service import TaskService
from taskrunner.store.database import Database
from taskrunner.store.sql import SqlTaskRepository
from taskrunner.tools import builtin_registry

SUBMITTERS = 8
"""Threads that enqueue tasks together by default: the strongest plain way to submit 1,000
tasks (one by one from one thread leaves the workers waiting on the submitter)."""

BRANCHES = 8

ONE_STEP = """
name: one_step
input:
  n: {type: integer}
start: add
states:
  add: {type: task, tool: add, args: {a: $input.n, b: 1}, next: done}
  done: {type: succeed, output: {sum: $states.add.sum}}
"""
MAP = """
name: map_add
input:
  numbers: {type: array, items: {type: integer}}
start: each
states:
  each:
    type: map
    items: $input.numbers
    each:
      start: add
      states:
        add: {type: task, tool: add, args: {a: $input.item, b: 1}, next: done}
        done: {type: succeed, output: {sum: $states.add.sum}}
    next: done
  done:
    type: succeed
    output: {sums: $states.each}
"""
BRANCH = """
      bINDEX:
        start: add
        states:
          add: {type: task, tool: add, args: {a: $input.n, b: INDEX}, next: done}
          done: {type: succeed, output: {sum: $states.add.sum}}"""
PARALLEL = """
name: parallel_add
input:
  n: {type: integer}
start: all
states:
  all:
    type: parallel
    branches:BRANCHES
    next: done
  done:
    type: succeed
    output: {sums: $states.all}
"""


def flows(directory: Path) -> Path:
    directory.mkdir()
    branches = "".join(BRANCH.replace("INDEX", str(index)) for index in range(BRANCHES))
    (directory / "one_step.yaml").write_text(ONE_STEP)
    (directory / "map_add.yaml").write_text(MAP)
    (directory / "parallel_add.yaml").write_text(PARALLEL.replace("BRANCHES", branches))
    return directory


@contextmanager
def worker_processes(url: str, directory: Path, count: int, concurrency: int) -> Iterator[None]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("TASKRUNNER_")}
    env |= {"DATABASE_URL": url, "TASKRUNNER_FLOWS_DIR": str(directory)}
    env["TASKRUNNER_AUTO_MIGRATE"] = "false"
    command = [python(), "-c", "from taskrunner.cli import main; main()", "worker"]
    # Beside the flows, in the run's scratch directory; a file, not a pipe nobody drains.
    logs = [directory.parent / f"worker-{index}.log" for index in range(count)]
    processes = []
    for log in logs:
        with log.open("wb") as handle:
            processes.append(
                subprocess.Popen(
                    [*command, "--concurrency", str(concurrency)],
                    cwd=ROOT,
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=handle,
                )
            )
    try:
        for process, log in zip(processes, logs, strict=True):
            while b"running" not in log.read_bytes():
                if process.poll() is not None:
                    raise RuntimeError(f"a worker did not start: {log.read_text()}")
                time.sleep(0.05)
        yield
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=60)


def run_until_done(
    service: TaskService, flow: str, inputs: Sequence[Mapping[str, object]], submitters: int
) -> float:
    """Queue a task per input (from `submitters` threads), then wait until all have
    succeeded; the seconds it took."""
    started = time.perf_counter()
    with ThreadPoolExecutor(submitters) as pool:
        ids: list[uuid.UUID] = list(
            pool.map(lambda data: service.enqueue_task(flow, data).task.id, inputs)
        )
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
    parser.add_argument("--submitters", type=int, default=SUBMITTERS)
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory(prefix="taskrunner-bench-fanout-") as scratch,
        fresh_database("fanout") as url,
    ):
        directory = flows(Path(scratch) / "flows")
        checker = FlowChecker(builtin_registry())
        database = Database(url)
        service = TaskService(SqlTaskRepository(database), FlowCatalog.load(directory, checker))
        try:
            with worker_processes(url, directory, args.workers, args.concurrency):
                tasks = [{"n": n} for n in range(args.items)]
                single = run_until_done(service, "one_step", tasks, args.submitters)
                items = [{"numbers": list(range(args.items))}]
                mapped = run_until_done(service, "map_add", items, 1)
                parents = [{"n": n} for n in range(args.parents)]
                branches = run_until_done(service, "parallel_add", parents, args.submitters)
        finally:
            service.close()
            database.dispose()
    per_task = single / args.items * 1000
    per_item = mapped / args.items * 1000
    per_branch = branches / (BRANCHES * args.parents) * 1000
    print(
        f"{args.workers} workers x {args.concurrency} runners, PostgreSQL, "
        f"{args.submitters} submitting threads"
    )
    print(
        f"single-step path: {args.items} one-step tasks in {single:.2f} s: "
        f"{per_task:.2f} ms per task"
    )
    print(
        f"map over {args.items} items: {mapped:.2f} s: {per_item:.2f} ms per item "
        f"({per_item / per_task:.2f}x a one-step task)"
    )
    print(
        f"parallel of {BRANCHES} branches x {args.parents} tasks: {branches:.2f} s: "
        f"{per_branch:.2f} ms per branch ({per_branch / per_task:.2f}x a one-step task)"
    )


if __name__ == "__main__":
    main()

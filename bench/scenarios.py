"""The scenarios. Each one measures taskrunner and, where there is one, its baseline in the
same run, so that ratios hold on a noisy machine."""

from __future__ import annotations

import json
import os
import re
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import event

from bench.harness import (
    CLI,
    FLOWS,
    ROOT,
    Result,
    commits_of,
    environment,
    free_port,
    have,
    latencies,
    libpq,
    python,
    stop,
    wait_for_stats,
    wait_until_up,
)

HELLO = {"text": "hello", "a": 2, "b": 3}
BARE_DIGEST = "sha256:bench"

# The rows of a durable echo_add task, for the raw baselines.
RAW_INSERT_TASK = (
    "INSERT INTO tasks (id, flow_name, flow_digest, status, input, current_state,"
    " created_at, updated_at, started_at, lease_owner, lease_expires_at,"
    " cancel_requested, step_count)"
    " VALUES (%s, 'echo_add', %s, 'running', %s, 'echo', %s, %s, %s, 'raw', %s, false, 0)"
)
RAW_INPUT = json.dumps(HELLO)
RAW_STEPS = [
    ("echo", json.dumps({"text": "hello"}), json.dumps({"text": "hello"})),
    ("add", json.dumps({"a": 2, "b": 3}), json.dumps({"sum": 5})),
]
RAW_OUTPUT = json.dumps({"text": "hello", "sum": 5})


def _in_threads(
    clients: int, seconds: float, work: Callable[[], None]
) -> tuple[float, list[float]]:
    """Run `work` from `clients` threads for `seconds`; (per second, latencies)."""
    samples: list[list[float]] = [[] for _ in range(clients)]
    failures: list[BaseException] = []
    deadline = time.perf_counter() + seconds

    def loop(mine: list[float]) -> None:
        try:
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                work()
                mine.append(time.perf_counter() - started)
        except BaseException as exc:  # noqa: BLE001 - reported below
            failures.append(exc)

    threads = [threading.Thread(target=loop, args=(mine,)) for mine in samples]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    if failures:
        raise failures[0]
    merged = [sample for mine in samples for sample in mine]
    return len(merged) / elapsed, merged


# -- raw limit ------------------------------------------------------------------------------


def raw_limit(url: str, clients: int, seconds: float) -> Result:
    """The rows of a durable echo_add task (the task, two steps, the final update), written by
    plain psycopg with taskrunner's three commits per task."""
    _store_bare_version(url)
    local = threading.local()
    data, steps, output = RAW_INPUT, RAW_STEPS, RAW_OUTPUT

    def one_task() -> None:
        db = getattr(local, "db", None)
        if db is None:
            db = local.db = psycopg.connect(libpq(url))
        task_id = uuid.uuid4()
        now = datetime.now(UTC)
        with db.transaction():
            db.execute(
                RAW_INSERT_TASK,
                (task_id, BARE_DIGEST, data, now, now, now, now),
            )
        for seq, (state, given, result) in enumerate(steps, start=1):
            last = seq == len(steps)
            with db.transaction():
                db.execute(
                    "UPDATE tasks SET status = %s, current_state = %s, updated_at = %s,"
                    " output = %s, finished_at = %s, step_count = %s"
                    " WHERE id = %s AND lease_owner = 'raw' AND status = 'running'"
                    " RETURNING cancel_requested",
                    (
                        "succeeded" if last else "running",
                        "done" if last else "add",
                        now,
                        output if last else None,
                        now if last else None,
                        seq,
                        task_id,
                    ),
                )
                db.execute(
                    "INSERT INTO task_steps (task_id, seq, state, tool, attempt, status, input,"
                    " output, started_at, finished_at)"
                    " VALUES (%s, %s, %s, %s, 1, 'succeeded', %s, %s, %s, %s)",
                    (task_id, seq, state, state, given, result, now, now),
                )

    rate, samples = _in_threads(clients, seconds, one_task)
    p50, p99 = latencies(samples)
    # By construction: INSERT task; then UPDATE task + INSERT step, twice; three commits.
    return Result(
        "durable echo_add",
        f"raw psycopg, {clients} clients",
        rate,
        "tasks/s",
        p50,
        p99,
        statements=5,
        commits=3,
    )


def raw_single_statements(url: str, clients: int, seconds: float) -> Result:
    """The same rows and commits, each commit one statement in autocommit mode (data-
    modifying CTEs on PostgreSQL): the fewest round trips these writes can take."""
    _store_bare_version(url)
    local = threading.local()
    data, steps, output = RAW_INPUT, RAW_STEPS, RAW_OUTPUT
    step_sql = (
        "WITH progressed AS ("
        " UPDATE tasks SET status = %s, current_state = %s, updated_at = %s, output = %s,"
        " finished_at = %s, step_count = %s"
        " WHERE id = %s AND lease_owner = 'raw' AND status = 'running'"
        " RETURNING cancel_requested),"
        " recorded AS (INSERT INTO task_steps (task_id, seq, state, tool, attempt, status,"
        " input, output, started_at, finished_at)"
        " SELECT %s, %s, %s, %s, 1, 'succeeded', %s, %s, %s, %s FROM progressed)"
        " SELECT cancel_requested FROM progressed"
    )

    def one_task() -> None:
        db = getattr(local, "db", None)
        if db is None:
            db = local.db = psycopg.connect(libpq(url), autocommit=True)
        task_id = uuid.uuid4()
        now = datetime.now(UTC)
        db.execute(
            RAW_INSERT_TASK,
            (task_id, BARE_DIGEST, data, now, now, now, now),
        )
        for seq, (state, given, result) in enumerate(steps, start=1):
            last = seq == len(steps)
            db.execute(
                step_sql,
                (
                    "succeeded" if last else "running",
                    "done" if last else "add",
                    now,
                    output if last else None,
                    now if last else None,
                    seq,
                    task_id,
                    task_id,
                    seq,
                    state,
                    state,
                    given,
                    result,
                    now,
                    now,
                ),
            )

    rate, samples = _in_threads(clients, seconds, one_task)
    p50, p99 = latencies(samples)
    return Result(
        "durable echo_add",
        f"raw psycopg one-statement, {clients} clients",
        rate,
        "tasks/s",
        p50,
        p99,
        statements=3,
        commits=3,
    )


def _store_bare_version(url: str) -> None:
    with psycopg.connect(libpq(url), autocommit=True) as db:
        db.execute(
            "INSERT INTO flow_versions (digest, name, definition, created_at)"
            " VALUES (%s, 'echo_add', '{}', now()) ON CONFLICT DO NOTHING",
            (BARE_DIGEST,),
        )


# -- in-process -----------------------------------------------------------------------------


def in_process(
    url: str, clients: int, seconds: float, flow: str = "echo_add", data: dict[str, Any] = HELLO
) -> Result:
    """taskrunner's service, in this process, from `clients` threads."""
    from taskrunner.runtime import open_runtime
    from taskrunner.settings import Settings

    runtime = open_runtime(
        Settings.from_env({"DATABASE_URL": url, "TASKRUNNER_FLOWS_DIR": str(FLOWS)})
    )
    counted = {"statements": 0, "commits": 0}
    database = runtime.database

    def statement(connection: Any, *_: object) -> None:
        counted["statements"] += 1

    def single(connection: Any, *_: object) -> None:
        counted["commits"] += 1  # in autocommit mode, a statement is a transaction

    def commit(*_: object) -> None:
        counted["commits"] += 1

    try:
        runtime.service.run_task(flow, data)  # the flow version is stored once, first
        for engine in {database.engine, database.autocommit}:
            event.listen(engine, "before_cursor_execute", statement)
        event.listen(database.autocommit, "before_cursor_execute", single)
        event.listen(database.engine, "commit", commit)
        rate, samples = _in_threads(clients, seconds, lambda: runtime.service.run_task(flow, data))
    finally:
        runtime.close()
    tasks = max(1, len(samples))
    p50, p99 = latencies(samples)
    return Result(
        "durable " + flow,
        f"taskrunner in-process, {clients} clients",
        rate,
        "tasks/s",
        p50,
        p99,
        statements=round(counted["statements"] / tasks, 2),
        commits=round(counted["commits"] / tasks, 2),
    )


# -- HTTP -----------------------------------------------------------------------------------


def http(url: str, app: str, workers: int, seconds: float, method: str) -> Result:
    """POST /tasks (synchronous) or GET /tasks/{id} through uvicorn with `workers`
    processes, driven by wrk (or bench.loadgen) in another process.

    Commits are read from pg_stat_database, which a backend updates when it exits (or
    lazily before): so the server is stopped after the warm-up and after the run, and
    the tasks that a POST run created are counted in the table itself."""
    if app == "bare":
        _store_bare_version(url)
        target = "bench.bare_app:app"
        env = environment(url, BENCH_DATABASE_URL=libpq(url))
    else:
        target = "main:app"
        env = environment(url, TASKRUNNER_WORKER_CONCURRENCY="0")
    command = [python(), "-m", "uvicorn", target, "--workers", str(workers)]
    command += ["--no-access-log", "--log-level", "warning"]
    task_id = None
    with _server(command, env) as port:
        if method == "GET":
            task_id = _post_one(port)
        _drive(f"http://127.0.0.1:{port}{_path(method, task_id)}", method, 1.0)  # warm-up
    wait_for_stats()
    before, tasks_before = commits_of(url), _count_tasks(url)
    with _server(command, env) as port:
        outcome = _drive(f"http://127.0.0.1:{port}{_path(method, task_id)}", method, seconds)
    wait_for_stats()
    served = _count_tasks(url) - tasks_before if method == "POST" else outcome["requests"]
    commits = (commits_of(url) - before) / max(1, served)
    name = "taskrunner" if app == "taskrunner" else "bare FastAPI+psycopg"
    return Result(
        f"HTTP {method} /tasks" + ("/{id}" if method == "GET" else ""),
        f"{name}, {workers} uvicorn worker(s)",
        outcome["rps"],
        "req/s",
        outcome["p50_ms"],
        outcome["p99_ms"],
        commits=round(commits, 2),
        extra={"load": outcome["tool"], "errors": outcome["errors"]},
    )


def _path(method: str, task_id: str | None) -> str:
    return f"/tasks/{task_id}" if method == "GET" else "/tasks"


@contextmanager
def _server(command: list[str], env: dict[str, str]) -> Iterator[int]:
    port = free_port()
    server = subprocess.Popen(
        [*command, "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until_up(port, server)
        yield port
    finally:
        stop(server)


def _count_tasks(url: str) -> int:
    with psycopg.connect(libpq(url)) as db:
        found = db.execute("SELECT count(*) FROM tasks").fetchone()
    return int(found[0]) if found else 0


def _post_one(port: int) -> str:
    import http.client

    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.request("POST", "/tasks", json.dumps(HELLO), {"Content-Type": "application/json"})
    created = json.loads(connection.getresponse().read())
    return str(created["id"])


def _drive(url: str, method: str, seconds: float, connections: int = 16) -> dict[str, Any]:
    if have("wrk") and os.environ.get("BENCH_LOADGEN") != "python":
        command = ["wrk", "-t2", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency"]
        if method == "POST":
            command += ["-s", str(Path(__file__).with_name("post_task.lua"))]
        printed = subprocess.run([*command, url], capture_output=True, text=True, check=True).stdout
        return _parse_wrk(printed)
    body = json.dumps(HELLO) if method == "POST" else None
    command = [
        python(),
        "-m",
        "bench.loadgen",
        "--url",
        url,
        "--method",
        method,
        "--connections",
        str(connections),
        "--seconds",
        str(seconds),
    ]
    if body:
        command += ["--body", body]
    printed = subprocess.run(command, capture_output=True, text=True, check=True, cwd=ROOT)
    outcome: dict[str, Any] = json.loads(printed.stdout)
    outcome["tool"] = "bench.loadgen"
    return outcome


def _parse_wrk(printed: str) -> dict[str, Any]:
    def milliseconds(text: str) -> float:
        number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()  # type: ignore[union-attr]
        scale = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]
        return float(number) * scale

    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", printed).group(1))  # type: ignore[union-attr]
    requests = int(re.search(r"(\d+) requests in", printed).group(1))  # type: ignore[union-attr]
    p50 = milliseconds(re.search(r"\s50%\s+(\S+)", printed).group(1))  # type: ignore[union-attr]
    p99 = milliseconds(re.search(r"\s99%\s+(\S+)", printed).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", printed)
    return {
        "rps": rps,
        "requests": requests,
        "p50_ms": p50,
        "p99_ms": p99,
        "errors": int(errors.group(1)) if errors else 0,
        "tool": "wrk",
    }


# -- queued ---------------------------------------------------------------------------------


def queued(url: str, workers: int, tasks: int, concurrency: int = 8) -> Result:
    """Submit `tasks` echo_add tasks to the queue while `workers` worker processes run them;
    from the first submission to the last success."""
    from sqlalchemy import func, select

    from taskrunner.runtime import open_runtime
    from taskrunner.settings import Settings
    from taskrunner.store.tables import TaskRow

    env = environment(url, TASKRUNNER_POLL_SECONDS="0.05")
    processes = [
        subprocess.Popen(
            [python(), "-c", CLI, "worker", "--concurrency", str(concurrency)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for _ in range(workers)
    ]
    runtime = open_runtime(
        Settings.from_env({"DATABASE_URL": url, "TASKRUNNER_FLOWS_DIR": str(FLOWS)})
    )
    try:
        for process in processes:  # wait until each worker says it runs
            assert process.stderr is not None
            while b"running" not in process.stderr.readline():
                if process.poll() is not None:
                    raise RuntimeError("a worker did not start")
        before = commits_of(url)
        submitted = iter(range(tasks))
        lock = threading.Lock()

        def submit() -> None:
            while True:
                with lock:
                    if next(submitted, None) is None:
                        return
                runtime.service.enqueue_task("echo_add", HELLO)

        started = time.perf_counter()
        submitters = [threading.Thread(target=submit) for _ in range(4)]
        for thread in submitters:
            thread.start()
        for thread in submitters:
            thread.join()
        submit_seconds = time.perf_counter() - started
        engine = runtime.database.engine
        while True:
            with engine.connect() as connection:
                done = connection.execute(
                    select(func.count()).where(TaskRow.status == "succeeded")
                ).scalar_one()
            if done >= tasks:
                break
            time.sleep(0.02)
        elapsed = time.perf_counter() - started
        with engine.connect() as connection:
            rows = connection.execute(select(TaskRow.created_at, TaskRow.finished_at)).all()
    finally:
        runtime.close()
        for process in processes:
            stop(process)  # type: ignore[arg-type]
    wait_for_stats()  # backends that exited have reported their commits
    commits = (commits_of(url) - before) / tasks
    samples = [(finished - created).total_seconds() for created, finished in rows]
    p50, p99 = latencies(samples)
    return Result(
        "queued echo_add",
        f"{workers} worker process(es) x {concurrency}",
        tasks / elapsed,
        "tasks/s",
        p50,
        p99,
        commits=round(commits, 2),
        extra={"tasks": tasks, "submit_seconds": round(submit_seconds, 3)},
    )


# -- listing at scale -----------------------------------------------------------------------


def listing(url: str, rows: int, requests: int) -> list[Result]:
    """GET /tasks?limit=50 on a table of `rows` tasks: first and deep pages, filtered and not."""
    from taskrunner.cursors import encode_cursor

    bulk_load(url, rows)
    with psycopg.connect(libpq(url)) as db:
        deep = rows * 9 // 10

        def cursor_at(where: str, offset: int) -> str:
            # Deep, yet with a whole page after it.
            count = db.execute(f"SELECT count(*) FROM tasks {where}").fetchone()
            offset = max(0, min(offset, (count[0] if count else 0) - 51))
            found = db.execute(
                f"SELECT created_at, id FROM tasks {where} "
                "ORDER BY created_at DESC, id DESC OFFSET %s LIMIT 1",
                (offset,),
            ).fetchone()
            assert found is not None
            return encode_cursor((found[0], found[1]))

        pages = {
            "first page": "/tasks?limit=50",
            "deep page (90%)": f"/tasks?limit=50&cursor={cursor_at('', deep)}",
            "status=failed, first": "/tasks?limit=50&status=failed",
            "status=failed, deep": "/tasks?limit=50&status=failed&cursor="
            + cursor_at("WHERE status = 'failed'", rows // 20 * 9 // 10),
            "flow=safe_divide, first": "/tasks?limit=50&flow=safe_divide",
            "flow=safe_divide, deep": "/tasks?limit=50&flow=safe_divide&cursor="
            + cursor_at("WHERE flow_name = 'safe_divide'", rows * 3 // 10 * 9 // 10),
        }
    port = free_port()
    server = subprocess.Popen(
        [
            python(),
            "-m",
            "uvicorn",
            "main:app",
            "--port",
            str(port),
            "--no-access-log",
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=environment(url, TASKRUNNER_WORKER_CONCURRENCY="0"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    results = []
    try:
        wait_until_up(port, server)
        import http.client

        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        for name, path in pages.items():
            samples = []
            for index in range(requests + 5):
                started = time.perf_counter()
                connection.request("GET", path)
                response = connection.getresponse()
                body = response.read()
                if index >= 5:  # the first few warm the caches
                    samples.append(time.perf_counter() - started)
                if response.status != 200 or len(json.loads(body)["items"]) != 50:
                    raise RuntimeError(f"{path}: {response.status} {body[:200]!r}")
            p50, p99 = latencies(samples)
            results.append(
                Result(
                    f"GET /tasks at {rows:,} rows",
                    name,
                    len(samples) / sum(samples),
                    "req/s",
                    p50,
                    p99,
                    target="p99 <= 20 ms",
                    met=p99 <= 20,
                )
            )
    finally:
        stop(server)
    return results


BULK_START = datetime(2026, 1, 1, tzinfo=UTC)
"""The first bulk task finished then, and one more every millisecond after it."""
BULK_VERSIONS = (("sha256:echo", "echo_add"), ("sha256:divide", "safe_divide"))
BULK_COLUMNS = (
    "id, flow_name, flow_digest, status, input, output, current_state, created_at,"
    " updated_at, started_at, finished_at, cancel_requested, step_count"
)


def bulk_finished_at(index: int) -> datetime:
    return BULK_START + timedelta(milliseconds=index)


def bulk_task_row(index: int) -> tuple[Any, ...]:
    """The bulk task `index`, in `BULK_COLUMNS`' order: 70% echo_add, 30% safe_divide; 5%
    failed; two steps (their rows are the caller's)."""
    at = bulk_finished_at(index)
    divide = index % 10 >= 7
    failed = index % 20 == 0
    return (
        uuid.uuid4(),
        "safe_divide" if divide else "echo_add",
        "sha256:divide" if divide else "sha256:echo",
        "failed" if failed else "succeeded",
        '{"text": "hello", "a": 2, "b": 3}',
        None if failed else '{"text": "hello", "sum": 5}',
        "done",
        at,
        at,
        at,
        at,
        False,
        2,
    )


def bulk_load(url: str, rows: int) -> None:
    """`rows` finished tasks (`bulk_task_row`), by COPY; then VACUUM ANALYZE, as a table
    that has lived a while would be."""
    with psycopg.connect(libpq(url), autocommit=True) as db:
        for digest, name in BULK_VERSIONS:
            db.execute(
                "INSERT INTO flow_versions (digest, name, definition, created_at)"
                " VALUES (%s, %s, '{}', now()) ON CONFLICT DO NOTHING",
                (digest, name),
            )
        with db.cursor().copy(f"COPY tasks ({BULK_COLUMNS}) FROM STDIN") as copy:
            for index in range(rows):
                copy.write_row(bulk_task_row(index))
        db.execute("VACUUM ANALYZE tasks")


# -- interpreter ----------------------------------------------------------------------------


def interpreter(tasks: int) -> Result:
    """The pure interpreter with the in-memory runner, tool validation included."""
    from taskrunner.engine.runner import InMemoryRunner
    from taskrunner.engine.validate import FlowChecker
    from taskrunner.flowfile import check_file
    from taskrunner.settings import DEFAULT_FLOWS_DIR
    from taskrunner.tools import builtin_registry

    registry = builtin_registry()
    flow = check_file(DEFAULT_FLOWS_DIR / "echo_add.yaml", FlowChecker(registry)).flow
    assert flow is not None
    runner = InMemoryRunner(registry)
    for _ in range(min(1000, tasks)):
        runner.run(flow, HELLO)
    samples = []
    for _ in range(tasks):
        started = time.perf_counter_ns()
        runner.run(flow, HELLO)
        samples.append((time.perf_counter_ns() - started) / 1e9)
    mean_us = sum(samples) / len(samples) * 1e6
    p50, p99 = latencies(samples)
    return Result(
        "interpreter alone (echo_add)",
        "in-memory runner",
        len(samples) / sum(samples),
        "tasks/s",
        p50,
        p99,
        target="<= 40 us/task",
        met=mean_us <= 40,
        extra={"mean_us": round(mean_us, 2)},
    )


# -- CLI start-up ---------------------------------------------------------------------------


def cli_startup(runs: int) -> list[Result]:
    """Wall time of whole commands, against starting Python and doing nothing."""
    taskrunner = str(Path(python()).with_name("taskrunner"))
    commands = {
        "python -c pass": [python(), "-c", "pass"],
        "taskrunner validate-flow taskrunner/flows/echo_add.yaml": [
            taskrunner,
            "validate-flow",
            "taskrunner/flows/echo_add.yaml",
        ],
        "taskrunner --help": [taskrunner, "--help"],
    }
    timings: dict[str, list[float]] = {}
    for name, command in commands.items():
        subprocess.run(command, cwd=ROOT, capture_output=True, check=False)  # warm the cache
        samples = []
        for _ in range(runs):
            started = time.perf_counter()
            subprocess.run(command, cwd=ROOT, capture_output=True, check=True)
            samples.append(time.perf_counter() - started)
        timings[name] = samples
    base = sum(timings["python -c pass"]) / runs
    results = []
    for name, samples in timings.items():
        mean = sum(samples) / runs
        p50, p99 = latencies(samples)
        over_ms = (mean - base) * 1000
        target = None if name.startswith("python") else "<= python + 250 ms"
        results.append(
            Result(
                "CLI start-up",
                name,
                None,
                "",
                p50,
                p99,
                baseline=None if name.startswith("python") else "python -c pass",
                ratio=round(mean / base, 2),
                target=target,
                met=None if target is None else over_ms <= 250,
                extra={
                    "mean_ms": round(mean * 1000, 1),
                    "over_python_ms": round(over_ms, 1),
                    "heavy_imports": _heavy_imports(command_args(name, commands)),
                },
            )
        )
    return results


def command_args(name: str, commands: dict[str, list[str]]) -> list[str]:
    return commands[name][1:] if not name.startswith("python") else []


def _heavy_imports(args: list[str]) -> list[str]:
    """The modules of FastAPI, SQLAlchemy or uvicorn that the command loads."""
    if not args:
        return []
    probe = (
        "import sys\nfrom taskrunner.cli import main\n"
        f"sys.argv = ['taskrunner', *{args!r}]\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "heavy = sorted({m.split('.')[0] for m in sys.modules} & "
        "{'fastapi', 'sqlalchemy', 'uvicorn', 'starlette'})\n"
        "print('HEAVY=' + ','.join(heavy), file=sys.stderr)\n"
    )
    printed = subprocess.run(
        [python(), "-c", probe], cwd=ROOT, capture_output=True, text=True, check=False
    ).stderr
    found = re.search(r"HEAVY=(.*)", printed)
    return [name for name in (found.group(1).split(",") if found else []) if name]

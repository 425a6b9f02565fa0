"""The ceiling for this stack: a bare FastAPI app that writes the same rows as a durable
`echo_add` task (the task, its two steps, the final update, in three commits), with plain
psycopg and no taskrunner at all. `uvicorn bench.bare_app:app`, with BENCH_DATABASE_URL."""

from __future__ import annotations

import json
import os
import queue
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import psycopg
from fastapi import FastAPI, HTTPException
from pydantic import BaseModel

DIGEST = "sha256:bench"
"""The flow version the bare rows point at; the benchmark stores it before starting."""
_pool: queue.LifoQueue[psycopg.Connection[Any]] = queue.LifoQueue()


@contextmanager
def connection() -> Iterator[psycopg.Connection[Any]]:
    try:
        found = _pool.get_nowait()
    except queue.Empty:
        found = psycopg.connect(os.environ["BENCH_DATABASE_URL"])
    try:
        yield found
    finally:
        _pool.put(found)


class Body(BaseModel):
    text: str
    a: int | float
    b: int | float


app = FastAPI()


@app.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@app.post("/tasks", status_code=201)
def start(body: Body) -> dict[str, Any]:
    task_id = uuid.uuid4()
    now = datetime.now(UTC)
    data = body.model_dump()
    steps = [
        ("echo", {"text": body.text}, {"text": body.text}),
        ("add", {"a": body.a, "b": body.b}, {"sum": body.a + body.b}),
    ]
    with connection() as db:
        with db.transaction():
            db.execute(
                "INSERT INTO tasks (id, flow_name, flow_digest, status, input, current_state,"
                " created_at, updated_at, started_at, lease_owner, lease_expires_at,"
                " cancel_requested, step_count)"
                " VALUES (%s, 'echo_add', %s, 'running', %s, 'echo', %s, %s, %s, 'bare', %s,"
                " false, 0)",
                (task_id, DIGEST, json.dumps(data), now, now, now, now),
            )
        for seq, (state, given, output) in enumerate(steps, start=1):
            last = seq == len(steps)
            with db.transaction():
                db.execute(
                    "UPDATE tasks SET status = %s, current_state = %s, updated_at = %s,"
                    " output = %s, finished_at = %s, step_count = %s"
                    " WHERE id = %s AND lease_owner = 'bare' AND status = 'running'"
                    " RETURNING cancel_requested",
                    (
                        "succeeded" if last else "running",
                        "done" if last else steps[seq][0],
                        now,
                        json.dumps({"text": body.text, "sum": body.a + body.b}) if last else None,
                        now if last else None,
                        seq,
                        task_id,
                    ),
                )
                db.execute(
                    "INSERT INTO task_steps (task_id, seq, state, tool, attempt, status, input,"
                    " output, started_at, finished_at)"
                    " VALUES (%s, %s, %s, %s, 1, 'succeeded', %s, %s, %s, %s)",
                    (task_id, seq, state, state, json.dumps(given), json.dumps(output), now, now),
                )
    return {"id": str(task_id), "status": "succeeded", "input": data, "output": steps[-1][2]}


@app.get("/tasks/{task_id}")
def read(task_id: uuid.UUID) -> dict[str, Any]:
    with connection() as db:
        task = db.execute(
            "SELECT id, flow_name, status, input, output, created_at FROM tasks WHERE id = %s",
            (task_id,),
        ).fetchone()
        if task is None:
            raise HTTPException(404)
        steps = db.execute(
            "SELECT seq, state, tool, status, input, output FROM task_steps"
            " WHERE task_id = %s ORDER BY seq",
            (task_id,),
        ).fetchall()
    return {
        "id": str(task[0]),
        "flow": task[1],
        "status": task[2],
        "input": task[3],
        "output": task[4],
        "created_at": task[5].isoformat(),
        "steps": [
            {
                "seq": s[0],
                "state": s[1],
                "tool": s[2],
                "status": s[3],
                "input": s[4],
                "output": s[5],
            }
            for s in steps
        ],
    }

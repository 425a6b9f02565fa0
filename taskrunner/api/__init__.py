"""The HTTP API (FastAPI): thin; the service does the work.

`create_app(settings)` builds the application; the database, the flows, the service and
the in-process worker (which runs queued tasks unless `worker_concurrency` is 0) are set
up when it starts (its lifespan), not when it is imported or created. Starting it changes
nothing process-wide: a real server says what to do once it has started (`on_started`).
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI

from taskrunner.api import openapi, problems
from taskrunner.api.limits import BodyLimit
from taskrunner.api.routes import router
from taskrunner.runtime import open_runtime
from taskrunner.settings import MAX_BODY_BYTES, Settings
from taskrunner.worker import BackgroundWorker


def _to_stderr(line: str) -> None:
    sys.stderr.write(line + "\n")


def create_app(
    settings: Settings | None = None, *, on_started: Callable[[], None] | None = None
) -> FastAPI:
    """The application; it reads `Settings.from_env()` when it starts, unless given some.

    `on_started` runs once the runtime is open, before the first request: the server
    processes pass `settle_memory` there; an application in a test or embedded in another
    program leaves the garbage collector as it found it.
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        chosen = settings or Settings.from_env()
        runtime = open_runtime(chosen, announce=_to_stderr)
        app.state.runtime = runtime
        if on_started is not None:
            on_started()
        worker = None
        if chosen.worker_concurrency:
            worker = BackgroundWorker(runtime.worker(chosen.worker_concurrency))
            worker.start()
        try:
            yield
        finally:
            if worker is not None:
                worker.stop()
            runtime.close()

    app = FastAPI(
        title="taskrunner",
        summary="A deterministic task runner: YAML state charts calling typed tools.",
        version="0.1.0",
        lifespan=lifespan,
    )
    problems.install(app)
    openapi.install(app)
    app.include_router(router)
    app.add_middleware(
        BodyLimit,
        limit=settings.max_body_bytes if settings else MAX_BODY_BYTES,
        timeout=settings.body_timeout_seconds if settings else None,
    )
    return app

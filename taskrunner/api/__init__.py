"""The HTTP API (FastAPI): thin; the service does the work.

`create_app(settings)` builds the application; the database, the flows, the service and
the in-process worker (which runs queued tasks unless `worker_concurrency` is 0) are set
up when it starts (its lifespan), not when it is imported or created. Starting it changes
nothing process-wide: a real server says what to do once it has started (`on_started`).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager, nullcontext

from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from taskrunner.api import docs_pages, flows, graphs, metrics, openapi, problems
from taskrunner.api.limits import BodyLimit
from taskrunner.api.metrics import RequestMetrics
from taskrunner.api.offload import Offload
from taskrunner.api.routes import health_router, router
from taskrunner.errors import TaskrunnerError
from taskrunner.flowwatch import FlowWatcher
from taskrunner.runtime import open_runtime
from taskrunner.settings import MAX_BODY_BYTES, Settings
from taskrunner.ui import pages
from taskrunner.worker import BackgroundWorker


def _to_stderr(line: str) -> None:
    sys.stderr.write(line + "\n")


log = logging.getLogger("taskrunner.api")


@contextmanager
def _reloading_on_sighup(watcher: FlowWatcher) -> Iterator[None]:
    """`SIGHUP` reloads the flows while the app runs. The handler is the event loop's
    (it runs as an ordinary callback, not inside a signal handler); uvicorn handles
    only SIGINT and SIGTERM, so nothing of the server's is replaced."""
    loop = asyncio.get_running_loop()
    try:
        loop.add_signal_handler(signal.SIGHUP, watcher.wake)
    except (ValueError, RuntimeError, NotImplementedError, AttributeError) as exc:
        # Not the main thread, or no SIGHUP here: the poll and POST /flows/reload remain.
        log.warning("SIGHUP cannot reload the flows in this process: %s", exc)
        yield
        return
    try:
        yield
    finally:
        loop.remove_signal_handler(signal.SIGHUP)


def create_app(
    settings: Settings | None = None,
    *,
    on_started: Callable[[], None] | None = None,
    reload_on_sighup: bool = False,
) -> FastAPI:
    """The application; it reads `Settings.from_env()` when it starts, unless given some.

    `on_started` runs once the runtime is open, before the first request: the server
    processes pass `settle_memory` there; an application in a test or embedded in another
    program leaves the garbage collector as it found it. Likewise, only a server asks
    for `reload_on_sighup`: the flows are then reloaded on `SIGHUP`, as well as when
    their files change (`flows_reload_seconds`) and on `POST /flows/reload`.
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            chosen = settings or Settings.from_env()
            runtime = open_runtime(chosen, announce=_to_stderr)
        except TaskrunnerError as exc:
            app.state.startup_error = exc  # said in one line by `StartupErrors`
            raise
        _to_stderr(_describe_keys(chosen))
        app.state.runtime = runtime
        app.state.offload = Offload(chosen)
        if on_started is not None:
            on_started()
        watcher = runtime.flow_watcher()
        watcher.start()
        worker = None
        if chosen.worker_concurrency:
            worker = BackgroundWorker(runtime.worker(chosen.worker_concurrency))
            worker.start()
        try:
            with _reloading_on_sighup(watcher) if reload_on_sighup else nullcontext():
                yield
        finally:
            if worker is not None:
                worker.stop()
            watcher.stop()
            runtime.close()

    app = FastAPI(
        title="taskrunner",
        summary="A deterministic task runner: YAML state charts calling typed tools.",
        version="0.1.0",
        lifespan=lifespan,
        docs_url=None,  # `docs_pages` serves /docs and /redoc from local files
        redoc_url=None,
    )
    problems.install(app)
    openapi.install(app)
    docs_pages.install(app)
    app.include_router(router)
    app.include_router(flows.router)
    app.include_router(graphs.router)
    app.include_router(pages.router)
    app.include_router(health_router)
    app.include_router(metrics.router)
    app.add_middleware(
        BodyLimit,
        limit=settings.max_body_bytes if settings else MAX_BODY_BYTES,
        timeout=settings.body_timeout_seconds if settings else None,
    )
    app.add_middleware(RequestMetrics)
    app.add_middleware(StartupErrors)
    return app


class StartupErrors:
    """A start-up that fails for a reason of taskrunner's (a database that cannot be
    reached, bad settings, no flows directory) is said in one line, `error: …`, instead
    of the traceback that the server would print: the lifespan protocol's failure
    message is that line."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return
        state = scope["app"].state

        async def sending(message: Message) -> None:
            error = getattr(state, "startup_error", None)
            if message["type"] == "lifespan.startup.failed" and error is not None:
                message = {**message, "message": f"error: {error.message}"}
            await send(message)

        await self.app(scope, receive, sending)


def _describe_keys(settings: Settings) -> str:
    keys = settings.api_keys
    if keys is None:
        return (
            "taskrunner: no API keys configured: the API is open to whoever can reach it "
            "(listen on loopback only)"
        )
    active = sum(not key.revoked for key in keys.keys)
    return f"taskrunner: API keys required ({active} active, {len(keys.keys) - active} revoked)"

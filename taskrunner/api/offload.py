"""Blocking work off the event loop: in bounded time, and in pools of its own.

The service is synchronous: it talks to the database through blocking drivers. Each call
runs in a worker thread, and the request waits for it at most a set time: past it, the
answer is `503` with `Retry-After` (the thread is let go of, and finishes on its own once
the database answers: a task it runs is not lost, its lease keeps it). The threads come
from three pools, so that one kind of work cannot starve the others:

- `store`: reads, cancels and queued starts, each a few statements;
- `runs`: synchronous starts, which run their task for up to `sync_wait_seconds`; when
  every one of these threads is busy, a synchronous start is queued instead (`202`);
- `checks`: flow validation, which needs no database.

Endpoints that need neither (`/healthz`, `/flows`, the schema) answer on the event loop
itself, so they answer whatever the database does.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from functools import partial
from typing import Final

import anyio
from anyio import CapacityLimiter, to_thread

from taskrunner.errors import StoreTimeoutError
from taskrunner.settings import Settings

STORE_THREADS: Final = 32
"""Below the connections the pools may open (40 on PostgreSQL), so that a thread waits
for a connection only when the database is slow."""
RUN_THREADS: Final = 64
CHECK_THREADS: Final = 4


class Offload:
    def __init__(self, settings: Settings) -> None:
        # Made in the application's lifespan: a limiter belongs to its event loop.
        self.store = CapacityLimiter(STORE_THREADS)
        self.runs = CapacityLimiter(RUN_THREADS)
        self.checks = CapacityLimiter(CHECK_THREADS)
        self.request_timeout = settings.request_timeout_seconds
        self.sync_wait = settings.sync_wait_seconds

    async def call[R](
        self,
        function: Callable[..., R],
        *args: object,
        task_id: uuid.UUID | None = None,
        **kwargs: object,
    ) -> R:
        """`function(*args, **kwargs)` in a thread of `store`, within the request timeout.

        `task_id`, when given, is the id of the task `function` starts: it is passed on
        as `task_id=`, and a timeout names it (the task may be stored by then)."""
        return await self._bounded(
            _with_task_id(function, args, kwargs, task_id),
            self.store,
            self.request_timeout,
            task_id,
        )

    def runs_busy(self) -> bool:
        """Whether every thread for synchronous runs is taken."""
        return self.runs.available_tokens < 1

    async def run[R](
        self, function: Callable[..., R], *args: object, task_id: uuid.UUID, **kwargs: object
    ) -> R:
        """A synchronous run in a thread of `runs`, of the task `task_id` (passed on as
        `task_id=`): it takes `sync_wait_seconds` at most, and then its writes have the
        request timeout."""
        timeout = self.sync_wait + self.request_timeout
        call = _with_task_id(function, args, kwargs, task_id)
        return await self._bounded(call, self.runs, timeout, task_id)

    async def check[R](self, function: Callable[..., R], *args: object) -> R:
        """CPU-bound work that needs no database, in a thread of `checks`."""
        return await to_thread.run_sync(partial(function, *args), limiter=self.checks)

    async def _bounded[R](
        self,
        call: Callable[[], R],
        limiter: CapacityLimiter,
        timeout: float,
        task_id: uuid.UUID | None,
    ) -> R:
        try:
            with anyio.fail_after(timeout):
                return await to_thread.run_sync(call, limiter=limiter, abandon_on_cancel=True)
        except TimeoutError:
            error = StoreTimeoutError(
                f"the database did not answer within {timeout:g} seconds; try again shortly"
            )
            error.task_id = task_id
            raise error from None


def _with_task_id[R](
    function: Callable[..., R],
    args: tuple[object, ...],
    kwargs: dict[str, object],
    task_id: uuid.UUID | None,
) -> Callable[[], R]:
    # The id a timeout names must be the id the task is stored under: without it, the
    # service would make up another, and the `Location` of the 503 would lead nowhere.
    if task_id is not None:
        kwargs = {**kwargs, "task_id": task_id}
    return partial(function, *args, **kwargs)

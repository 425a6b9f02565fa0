"""The API's offloading: blocking calls in bounded time, and a timeout that names the task
the call was storing, under the id the call really stores it with."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable

import anyio
import pytest

from taskrunner.api.offload import Offload
from taskrunner.errors import StoreTimeoutError
from taskrunner.settings import Settings


def slow_start(release: threading.Event, seen: list[uuid.UUID | None]) -> Callable[..., str]:
    """A start that records the id it is given, and waits for `release`."""

    def start(flow: str, *, task_id: uuid.UUID | None = None) -> str:
        seen.append(task_id)
        release.wait(5)
        return flow

    return start


@pytest.mark.parametrize("way", ["call", "run"])
def test_a_timeout_names_the_task_the_call_stores(way: str) -> None:
    settings = Settings(
        database_url="sqlite://", request_timeout_seconds=0.1, sync_wait_seconds=0.1
    )
    release, seen = threading.Event(), list[uuid.UUID | None]()
    task_id = uuid.uuid4()

    async def main() -> None:
        offload = Offload(settings)
        bounded = offload.call if way == "call" else offload.run
        with pytest.raises(StoreTimeoutError) as raised:
            await bounded(slow_start(release, seen), "echo_add", task_id=task_id)
        assert raised.value.task_id == task_id

    try:
        anyio.run(main)
    finally:
        release.set()
    assert seen == [task_id]


def test_a_call_in_time_returns_its_result_and_passes_no_id_unless_given() -> None:
    settings = Settings(database_url="sqlite://")
    release, seen = threading.Event(), list[uuid.UUID | None]()
    release.set()

    async def main() -> str:
        return await Offload(settings).call(slow_start(release, seen), "echo_add")

    assert anyio.run(main) == "echo_add"
    assert seen == [None]

"""Running calls at once, outside the engine (which starts no thread: see
`engine/runner.py`): `on_threads` is the `Concurrency` that runs a fan-out's children on a
thread pool, for an `InMemoryRunner` that should run them as the service's workers do."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor


def on_threads[T](calls: Sequence[Callable[[], T]], width: int) -> list[T]:
    """Each call's result, in the order of `calls`, with at most `width` running at once."""
    if not calls:
        return []
    with ThreadPoolExecutor(max_workers=max(1, min(width, len(calls)))) as pool:
        return list(pool.map(lambda call: call(), calls))

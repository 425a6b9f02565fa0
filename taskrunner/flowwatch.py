"""Reloading the flows without a restart.

`FlowReloader` re-reads the flows directory into a new catalog and hands it to the
service whole (`TaskService.use_catalog`); `FlowWatcher` is the thread that does so when
the directory changes (a poll of the files' sizes and times every few seconds, which
reads no file) or when woken (`SIGHUP`). `POST /flows/reload` reloads at once.

A reload never stops a task: each task runs the flow version it pinned when it started,
which stays known to the service or is read back from the store by its digest.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

from taskrunner.catalog import FlowCatalog, directory_fingerprint
from taskrunner.errors import FlowCatalogError
from taskrunner.service import TaskService

log = logging.getLogger("taskrunner.flows")


def report_flow_files(
    catalog: FlowCatalog, warn: Callable[[str], None], previous: FlowCatalog | None = None
) -> None:
    """Say, once, each file that `catalog` skipped and `previous` did not (or not so), and
    each validator warning of a loaded flow that `previous` did not have."""
    known = set(previous.skipped) if previous is not None else set()
    for skipped in catalog.skipped:
        if skipped not in known:
            warn(skipped.warning())
    said = {line for entry in previous or () for line in entry.warning_lines()}
    for entry in catalog:
        for line in entry.warning_lines():
            if line not in said:
                warn(line)


class FlowReloader:
    """Re-reads one flows directory for one service; one reload at a time."""

    def __init__(
        self, directory: Path, service: TaskService, *, warn: Callable[[str], None] = log.warning
    ) -> None:
        self.directory = directory
        self.service = service
        self._warn = warn
        self._lock = threading.Lock()

    def reload(self, *, force: bool = True) -> FlowCatalog:
        """The catalog in use once the directory has been read again (unless `force` is
        off and the directory has not changed since the catalog in use was read).

        Raises `FlowCatalogError` when the directory cannot be listed: the flows loaded
        before are kept.
        """
        with self._lock:
            current = self.service.catalog
            unchanged = current.fingerprint == directory_fingerprint(self.directory)
            if unchanged and not force:
                return current
            catalog = FlowCatalog.load(self.directory, current.checker)
            report_flow_files(catalog, self._warn, current)
            self.service.use_catalog(catalog)
        log.info(
            "flows reloaded from %s: %d flow(s), %d file(s) skipped",
            self.directory,
            len(catalog.names()),
            len(catalog.skipped),
        )
        return catalog


class FlowWatcher:
    """A thread that reloads the flows when the directory changes, polled every `every`
    seconds (0: never), and whenever it is woken."""

    def __init__(self, reloader: FlowReloader, every: float) -> None:
        self.reloader = reloader
        self.every = every
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._failure: str | None = None
        self._thread = threading.Thread(target=self._run, name="taskrunner-flows", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        """Reload now (for `SIGHUP`), whether or not the directory seems to have changed."""
        self._wake.set()

    def stop(self, timeout: float = 10) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            woken = self._wake.wait(self.every or None)
            if self._stop.is_set():
                return
            self._wake.clear()
            self._reload(force=woken)

    def _reload(self, *, force: bool) -> None:
        try:
            self.reloader.reload(force=force)
        except FlowCatalogError as exc:
            # Polled every few seconds: say it when it starts, not on every poll.
            if exc.message != self._failure:
                log.error("%s; the flows loaded before are kept", exc.message)
            self._failure = exc.message
            return
        except Exception:  # a bug: say it, and keep watching with the flows in hand
            log.exception("reloading the flows failed; the flows loaded before are kept")
            return
        self._failure = None

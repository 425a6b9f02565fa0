"""Saying that the database is away once, not at every try.

While the database restarts, the background loops (claiming, listening, renewing leases)
fail at each try; logging each failure, with its traceback, would flood the log. An
`Outage` logs one line when a loop's calls start failing, and one when they work again.
"""

from __future__ import annotations

import logging
import threading

from taskrunner.errors import StoreError


class Outage:
    def __init__(self, log: logging.Logger, what: str) -> None:
        self._log = log
        self._what = what
        self._down = False
        self._lock = threading.Lock()

    def failed(self, error: StoreError) -> None:
        with self._lock:
            if self._down:
                return
            self._down = True
        self._log.warning("%s failed: %s; trying again until it works", self._what, error)

    def worked(self) -> None:
        if not self._down:
            return
        with self._lock:
            self._down = False
        self._log.warning("%s works again", self._what)

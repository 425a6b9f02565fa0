"""Limits on request bodies: a size cap (413) and a time limit (408).

A body larger than the cap gets 413 before it is read into memory. Many clients send the
whole body before they read an answer; if the server closed the connection with their
body unread, the kernel would reset it and they would never see the 413. So the rest of
the body is read and dropped first, up to `MAX_DRAIN_BYTES` and within the time limit
(a client that announces `Expect: 100-continue` waits for the answer instead, and gets
it at once). A client that sends its body too slowly (slowloris) gets 408 once the time
limit has passed since the body was first asked for. Either way the connection is then
closed. A client that goes away mid-body is noted in one log line.
"""

from __future__ import annotations

import logging
import math
from typing import Final

import anyio
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from taskrunner.api.problems import error_problem
from taskrunner.errors import BodyTimeoutError, BodyTooLargeError, ClientGoneError
from taskrunner.settings import BODY_TIMEOUT_SECONDS

MAX_DRAIN_BYTES: Final = 8 * 1024 * 1024
"""How much of a refused body is read and dropped so that the client can read the 413."""
log = logging.getLogger("taskrunner.api")


def _too_large(limit: int) -> BodyTooLargeError:
    return BodyTooLargeError(f"the request body is larger than {limit:,} bytes")


class BodyLimit:
    """Refuses a body over `limit` bytes: at once when Content-Length says so, else as soon
    as the bytes received pass the limit (chunked uploads); and a body not received within
    `timeout` seconds (by default the runtime's `body_timeout_seconds`)."""

    def __init__(self, app: ASGIApp, limit: int, timeout: float | None = None) -> None:
        self.app = app
        self.limit = limit
        self.timeout = timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        body = _Body(receive, self.limit, self._timeout(scope))
        declared = _declared_length(scope)
        if declared is not None and not 0 <= declared <= self.limit:
            body.refused = True
            if 0 <= declared <= MAX_DRAIN_BYTES and not _expects_continue(scope):
                await body.drain()
            await error_problem(_too_large(self.limit))(scope, receive, body.closing(send))
            return
        await self.app(scope, body.receive, body.closing(send))

    def _timeout(self, scope: Scope) -> float:
        if self.timeout is not None:
            return self.timeout
        runtime = getattr(getattr(scope.get("app"), "state", None), "runtime", None)
        return runtime.settings.body_timeout_seconds if runtime else BODY_TIMEOUT_SECONDS


class _Body:
    """One request's body, received within the size and time limits."""

    def __init__(self, receive: Receive, limit: int, timeout: float) -> None:
        self._receive = receive
        self.limit = limit
        self.timeout = timeout
        self.received = 0
        self.complete = False
        self.refused = False
        self._deadline = math.inf

    async def receive(self) -> Message:
        if self.complete:  # the body is in: what follows is waiting for a disconnect
            return await self._receive()
        message = await self._next()
        if message["type"] == "http.request":
            self.received += len(message.get("body", b""))
            self.complete = not message.get("more_body", False)
            if self.received > self.limit:
                self.refused = True
                await self.drain()
                raise _too_large(self.limit)
        elif message["type"] == "http.disconnect":
            log.info("the client went away after %d bytes of the request body", self.received)
            raise ClientGoneError
        return message

    async def drain(self) -> None:
        """Read and drop the rest of the body, within the bounds."""
        self.refused = True
        drained = 0
        while not self.complete and drained <= MAX_DRAIN_BYTES:
            try:
                message = await self._next()
            except BodyTimeoutError:
                return
            if message["type"] != "http.request":
                return
            drained += len(message.get("body", b""))
            self.complete = not message.get("more_body", False)

    async def _next(self) -> Message:
        if self._deadline == math.inf:
            self._deadline = anyio.current_time() + self.timeout
        try:
            with anyio.fail_after(max(self._deadline - anyio.current_time(), 0)):
                return await self._receive()
        except TimeoutError:
            self.refused = True
            raise BodyTimeoutError(
                f"the request body did not arrive within {self.timeout:g} seconds"
            ) from None

    def closing(self, send: Send) -> Send:
        """`send`, closing the connection after an answer to a refused body (its rest, if
        any, is not read)."""

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start" and self.refused:
                headers = [*message.get("headers", ()), (b"connection", b"close")]
                message = {**message, "headers": headers}
            await send(message)

        return sending


def _declared_length(scope: Scope) -> int | None:
    """The Content-Length, if given; -1 for one that is not a number (refused)."""
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            return int(value) if value.isdigit() else -1
    return None


def _expects_continue(scope: Scope) -> bool:
    return any(
        name == b"expect" and value.lower() == b"100-continue"
        for name, value in scope.get("headers", ())
    )

"""`taskrunner serve`: the API on uvicorn, with the HTTP edge made strict.

- A request whose line or headers h11 refuses is answered `400 application/problem+json`,
  as every other error is, not uvicorn's `text/plain`.
- A client gets `header_timeout_seconds` to send a request's line and headers from its
  first byte (or from connecting); one that trickles them (slowloris) is answered 408 and
  its connection closed. uvicorn's own keep-alive timer does not catch it: any byte
  restarts it. A connection that sends nothing at all is closed without an answer.
- An idle connection is kept `keep_alive_seconds` for the client's next request.
- The address is bound before the application starts, so a port in use or out of range is
  one line and an exit status, not a traceback after the database was opened.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import h11
import uvicorn
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from uvicorn.protocols.http.h11_impl import H11Protocol

from taskrunner.api.problems import problem
from taskrunner.errors import ListenAddressError, ListenError
from taskrunner.settings import Settings


class ProblemH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, answering its own rejections as problems, with a time limit
    on request heads."""

    header_timeout_seconds: float = 10.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._head_timer is None and self.conn.their_state is h11.IDLE:
            self._arm_head_timer()  # the first bytes of the next request on this connection
        super().data_received(data)
        if self.conn.their_state is not h11.IDLE:
            self._disarm_head_timer()  # the head is in (or the request refused)

    def send_400_response(self, msg: str) -> None:
        # uvicorn has logged it (one line)
        self._answer_and_close(
            problem(400, "malformed-request", "the request is not well-formed HTTP/1.1")
        )

    def _arm_head_timer(self) -> None:
        self._head_timer = self.loop.call_later(self.header_timeout_seconds, self._head_late)

    def _disarm_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_late(self) -> None:
        self._head_timer = None
        if self.transport.is_closing() or self.conn.their_state is not h11.IDLE:
            return
        started, _ = self.conn.trailing_data
        if not started:
            self.transport.close()
            return
        self.logger.info("the request line and headers did not arrive in time")
        detail = (
            f"the request line and headers did not arrive within "
            f"{self.header_timeout_seconds:g} seconds"
        )
        self._answer_and_close(problem(408, "header-timeout", detail))

    def _answer_and_close(self, response: JSONResponse) -> None:
        """Write `response` as the connection's last, unless another answer is under way,
        and close it. Written directly: h11 will not send an answer to a request it has
        not read."""
        if self.cycle is None or self.cycle.response_complete:
            head = [f"HTTP/1.1 {response.status_code} {_reason(response.status_code)}"]
            head += [f"{name}: {value}" for name, value in response.headers.items()]
            head.append("connection: close")
            self.transport.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1"))
            self.transport.write(bytes(response.body))
        self.transport.close()


def _reason(status: int) -> str:
    return {400: "Bad Request", 408: "Request Timeout"}.get(status, "Error")


def listening_socket(host: str, port: int) -> socket.socket:
    """A socket bound to (`host`, `port`). Raises `ListenAddressError` for a port out of
    range, `ListenError` when the address cannot be had."""
    if not 0 <= port <= 65_535:
        raise ListenAddressError(f"--port {port}: a port is a number from 0 to 65535")
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        sock = socket.socket(family, socket.SOCK_STREAM)
    except OSError as exc:
        raise ListenError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ListenError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return sock


def serve(app: FastAPI, settings: Settings, host: str, port: int) -> None:
    """Serve `app` on (`host`, `port`) until stopped."""
    sock = listening_socket(host, port)

    class Protocol(ProblemH11Protocol):
        header_timeout_seconds = settings.header_timeout_seconds

    config = uvicorn.Config(
        app,
        http=Protocol,
        # uvicorn declares an int, and hands it to `call_later`, which takes any number.
        timeout_keep_alive=settings.keep_alive_seconds,  # type: ignore[arg-type]
    )
    try:
        uvicorn.Server(config).run(sockets=[sock])
    except SystemExit:
        # The app could not start, and has said why in one line (`StartupErrors`): exit
        # with the status its error says, as every command does (else uvicorn's own).
        error = getattr(app.state, "startup_error", None)
        if error is None:
            raise
        raise SystemExit(error.exit_status) from None
    finally:
        sock.close()

"""Hostile input at the HTTP edge: a real `taskrunner serve` on a free port, spoken to
over raw sockets. Malformed requests, slow headers, slow bodies, idle connections, a 413
for a client that sends its whole body first, clients that go away mid-body, and addresses
a server cannot have. Every exchange must end within `BOUND` seconds (asserted). The rest
of the hostile-input suite is `test_hostile.py`."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import pytest

from taskrunner.errors import SettingsError
from taskrunner.settings import HEADER_TIMEOUT_SECONDS, KEEP_ALIVE_SECONDS, Settings

ENTRY: Final = [sys.executable, "-c", "from taskrunner.cli import main; main()"]
PROBLEM: Final = "application/problem+json"
BOUND: Final = 10.0
"""Seconds within which every exchange must end (a loaded two-core machine)."""
EDGE_TIMEOUT: Final = 1.0
"""The body, header and keep-alive timeouts of the server under test, in seconds."""


# -- the HTTP edge: a real server ------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, list[str]]]:
    """`taskrunner serve` on SQLite with one-second body, header and keep-alive timeouts:
    its port, and the lines it has printed so far."""
    port = free_port()
    database = tmp_path_factory.mktemp("edge") / "taskrunner.sqlite3"
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{database}",
        "TASKRUNNER_BODY_TIMEOUT_SECONDS": str(EDGE_TIMEOUT),
        "TASKRUNNER_HEADER_TIMEOUT_SECONDS": str(EDGE_TIMEOUT),
        "TASKRUNNER_KEEP_ALIVE_SECONDS": str(EDGE_TIMEOUT),
    }
    process = subprocess.Popen(
        [*ENTRY, "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output: list[str] = []
    reader = threading.Thread(target=lambda: output.extend(process.stdout or ()), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 30
        while exchange(port, [b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"], wait=0)[0] != 200:
            assert process.poll() is None, output
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.1)
        yield port, output
    finally:
        process.terminate()
        process.wait(timeout=10)
        reader.join(timeout=10)


def exchange(
    port: int, chunks: list[bytes], wait: float = 0.0
) -> tuple[int, dict[str, str], bytes]:
    """Send `chunks` (`wait` seconds apart), then read the answer until the server closes
    or has sent its whole body: (status, headers, body); status 0 when nothing came."""
    try:
        connection = socket.create_connection(("127.0.0.1", port), timeout=BOUND)
    except OSError:
        return 0, {}, b""
    started = time.monotonic()
    with connection:
        for index, chunk in enumerate(chunks):
            if index and wait:
                time.sleep(wait)
            connection.sendall(chunk)
        received = b""
        while b"\r\n\r\n" not in received or not _whole(received):
            piece = connection.recv(65_536)
            if not piece:
                break
            received += piece
    assert time.monotonic() - started < BOUND
    if not received:
        return 0, {}, b""
    head, _, body = received.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in header_lines)}
    return int(status_line.split()[1]), headers, body


def _whole(received: bytes) -> bool:
    head, _, body = received.partition(b"\r\n\r\n")
    for line in head.decode("latin-1").split("\r\n"):
        name, _, value = line.partition(":")
        if name.lower() == "content-length":
            return len(body) >= int(value)
    return False


def edge_problem(answer: tuple[int, dict[str, str], bytes], status: int, code: str) -> None:
    found, headers, body = answer
    assert found == status, body
    assert headers["content-type"].startswith(PROBLEM)
    assert json.loads(body)["type"] == f"urn:taskrunner:problem:{code}"


@pytest.mark.parametrize(
    "request_bytes",
    [
        pytest.param(b"GARBAGE\r\n\r\n", id="request-line"),
        pytest.param(b"GET /healthz HTTP/1.1\r\nHost: x\r\nBad Header: 1\r\n\r\n", id="header"),
        pytest.param(b"GET /healthz HTTP/1.1\r\n\r\n", id="no-host"),
    ],
)
def test_h11_rejections_are_problems(server: tuple[int, list[str]], request_bytes: bytes) -> None:
    edge_problem(exchange(server[0], [request_bytes]), 400, "malformed-request")


def test_slow_headers_get_408(server: tuple[int, list[str]]) -> None:
    started = time.monotonic()
    answer = exchange(server[0], [b"GET /healthz HTTP/1.1\r\n", b"Host: x\r\n"], wait=0.3)
    edge_problem(answer, 408, "header-timeout")
    assert EDGE_TIMEOUT <= time.monotonic() - started < EDGE_TIMEOUT + 3


def test_a_silent_connection_is_closed(server: tuple[int, list[str]]) -> None:
    started = time.monotonic()
    assert exchange(server[0], [b""])[0] == 0
    assert time.monotonic() - started < EDGE_TIMEOUT + 3


def test_an_idle_connection_is_closed_after_the_keep_alive_time(
    server: tuple[int, list[str]],
) -> None:
    with socket.create_connection(("127.0.0.1", server[0]), timeout=BOUND) as connection:
        connection.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        answered = b""
        while not _whole(answered):
            answered += connection.recv(65_536)
        assert answered.startswith(b"HTTP/1.1 200")
        idle = time.monotonic()
        assert connection.recv(65_536) == b""  # closed by the server
        assert EDGE_TIMEOUT * 0.5 < time.monotonic() - idle < EDGE_TIMEOUT + 3


def test_the_edge_settings_are_read_and_checked() -> None:
    settings = Settings.from_env({"TASKRUNNER_BODY_TIMEOUT_SECONDS": "2.5"})
    assert settings.body_timeout_seconds == 2.5
    assert settings.header_timeout_seconds == HEADER_TIMEOUT_SECONDS
    assert settings.keep_alive_seconds == KEEP_ALIVE_SECONDS
    for name in (
        "TASKRUNNER_BODY_TIMEOUT_SECONDS",
        "TASKRUNNER_HEADER_TIMEOUT_SECONDS",
        "TASKRUNNER_KEEP_ALIVE_SECONDS",
    ):
        with pytest.raises(SettingsError, match=name):
            Settings.from_env({name: "forever"})


def test_a_slow_body_gets_408(server: tuple[int, list[str]]) -> None:
    head = b"POST /tasks HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    head += b"Content-Length: 100\r\n\r\n"
    started = time.monotonic()
    answer = exchange(server[0], [head, b"{", b'"text"'], wait=0.3)
    edge_problem(answer, 408, "body-timeout")
    assert answer[1]["connection"] == "close"
    assert time.monotonic() - started < EDGE_TIMEOUT + 3


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_413_is_read_by_a_client_that_sends_it_all_first(
    server: tuple[int, list[str]], chunked: bool
) -> None:
    payload = b"x" * (3 * 1024 * 1024)
    head = b"POST /tasks HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    if chunked:
        pieces = [payload[i : i + 65_536] for i in range(0, len(payload), 65_536)]
        body = b"".join(b"%x\r\n%s\r\n" % (len(piece), piece) for piece in pieces) + b"0\r\n\r\n"
        head += b"Transfer-Encoding: chunked\r\n\r\n"
    else:
        body = payload
        head += b"Content-Length: %d\r\n\r\n" % len(payload)
    for _ in range(3):  # a reset would show as no answer, now and then
        answer = exchange(server[0], [head + body])
        edge_problem(answer, 413, "too-large")


def test_a_client_gone_mid_body_leaves_no_traceback(server: tuple[int, list[str]]) -> None:
    port, output = server
    head = b"POST /tasks HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n"
    before = len(output)
    for _ in range(3):
        with socket.create_connection(("127.0.0.1", port)) as connection:
            connection.sendall(head + b'{"text": "')
        time.sleep(0.2)
    assert exchange(port, [b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"])[0] == 200
    time.sleep(0.2)
    said = output[before:]
    assert not any("Traceback" in line or "ERROR" in line for line in said), said
    assert len(said) <= 3 + 1  # at most a line each (and the health check's access line)


def test_the_server_printed_no_traceback(server: tuple[int, list[str]]) -> None:
    _, output = server
    assert output
    assert not any("Traceback" in line for line in output), output


@pytest.mark.parametrize(
    ("port", "status", "says"),
    [("99999", 2, "a port is a number from 0 to 65535"), ("in-use", 1, "Address already in use")],
)
def test_serve_on_an_address_it_cannot_have_is_one_line(
    tmp_path: Path, port: str, status: int, says: str
) -> None:
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}"}
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        chosen = str(taken.getsockname()[1]) if port == "in-use" else port
        result = subprocess.run(
            [*ENTRY, "serve", "--port", chosen], env=env, capture_output=True, text=True, timeout=60
        )
    assert result.returncode == status
    [line] = result.stderr.splitlines()
    assert line.startswith("error: ")
    assert says in line
    assert result.stdout == ""

"""Hostile input: what a stranger may send, and what taskrunner answers. Every request must
answer within `BOUND` seconds (asserted), with a 2xx or a 4xx problem, never a 5xx or a
traceback.

- JSON nested too deeply, huge strings, huge arrays, thousands of keys: on each backend
  (the `client` fixture), through the service (a tool's too-deep output), and the CLI;
- flow documents that would make validation amplify (`POST /flows/validate`);
- the HTTP edge, against a real `taskrunner serve` on a free port, over raw sockets:
  malformed requests, slow headers, slow bodies, a 413 for a client that sends its whole
  body first, a client that goes away mid-body, and addresses a server cannot have.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Final

import pytest
from fastapi.testclient import TestClient

from taskrunner.catalog import FlowCatalog
from taskrunner.engine.validate import FlowChecker
from taskrunner.errors import SettingsError
from taskrunner.flowfile import MAX_PROBLEMS
from taskrunner.jsontext import MAX_DEPTH
from taskrunner.service import TaskService
from taskrunner.settings import HEADER_TIMEOUT_SECONDS, KEEP_ALIVE_SECONDS, Settings
from taskrunner.store.database import Database
from taskrunner.store.sql import SqlTaskRepository
from taskrunner.tools import INVALID_OUTPUT, load_registry

ROOT: Final = Path(__file__).resolve().parents[2]
PLUGINS: Final = ROOT / "tests" / "plugins"
ENTRY: Final = [sys.executable, "-c", "from taskrunner.cli import main; main()"]
PROBLEM: Final = "application/problem+json"
BOUND: Final = 10.0
"""Seconds within which every request must be answered (a loaded two-core machine)."""
EDGE_TIMEOUT: Final = 1.0
"""The body and header timeouts of the server under test, in seconds."""


def timed_post(client: TestClient, path: str, body: str | bytes) -> Any:
    started = time.monotonic()
    response = client.post(path, content=body, headers={"content-type": "application/json"})
    assert time.monotonic() - started < BOUND, f"{path} took longer than {BOUND} s"
    assert response.status_code < 500, response.text
    return response


def nested(depth: int, inner: str = "0") -> str:
    return "[" * depth + inner + "]" * depth


def assert_problem(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body: dict[str, Any] = response.json()
    assert body["type"] == f"urn:taskrunner:problem:{code}"
    return body


def no_tasks(client: TestClient) -> None:
    assert client.get("/tasks").json()["items"] == []


# -- deep and huge JSON, on each backend ------------------------------------------------------


@pytest.mark.parametrize("depth", [MAX_DEPTH, 1_000, 1_480, 5_000, 300_000])
def test_json_nested_past_the_limit_is_a_400(client: TestClient, depth: int) -> None:
    # the body object is one level: its field `text` nests the rest
    body = assert_problem(
        timed_post(client, "/tasks", f'{{"text": {nested(depth)}, "a": 1, "b": 2}}'),
        400,
        "malformed-body",
    )
    assert f"deeper than {MAX_DEPTH} levels" in body["detail"]
    assert len(body["detail"]) < 400
    no_tasks(client)


def test_json_at_the_limit_is_read(client: TestClient) -> None:
    response = timed_post(client, "/tasks", f'{{"text": {nested(MAX_DEPTH - 1)}, "a": 1, "b": 2}}')
    body = assert_problem(response, 422, "invalid-input")  # read, then refused: not a string
    assert body["errors"] == ["text: Input should be a valid string"]


def test_a_huge_string_within_the_cap_runs(client: TestClient) -> None:
    text = "x" * 1_000_000
    response = timed_post(client, "/tasks", json.dumps({"text": text, "a": 1, "b": 2}))
    assert response.status_code == 201
    assert response.json()["output"] == {"text": text, "sum": 3}


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(json.dumps({"text": [0] * 300_000, "a": 1, "b": 2}), id="huge-array"),
        pytest.param(json.dumps({"text": [[[[0]]]] * 70_000, "a": 1, "b": 2}), id="many-arrays"),
        pytest.param(json.dumps({"text": [{}] * 250_000, "a": 1, "b": 2}), id="many-objects"),
    ],
)
def test_a_huge_array_within_the_cap_is_refused_in_bounded_time(
    client: TestClient, body: str
) -> None:
    assert len(body) < 1024 * 1024
    assert_problem(timed_post(client, "/tasks", body), 422, "invalid-input")
    no_tasks(client)


def test_thousands_of_unknown_keys_get_a_short_answer(client: TestClient) -> None:
    data = {f"k{index}": 0 for index in range(70_000)}
    response = timed_post(client, "/tasks", json.dumps({"flow": "echo_add", "input": data}))
    body = assert_problem(response, 422, "invalid-input")
    assert len(response.content) < 5_000
    assert len(body["errors"]) == 21
    assert body["errors"][-1].startswith("... and ")


def test_thousands_of_unexpected_members_are_counted_not_listed(client: TestClient) -> None:
    extra = {f"k{index}": 0 for index in range(60_000)}
    response = timed_post(client, "/tasks", json.dumps({"flow": "echo_add", "input": {}, **extra}))
    body = assert_problem(response, 422, "invalid-request")
    assert body["detail"].endswith("(59,990 more)")
    assert len(response.content) < 1_000


def test_a_megabyte_key_is_not_echoed_whole(client: TestClient) -> None:
    response = timed_post(
        client, "/tasks", json.dumps({"text": "hi", "a": 1, "b": 2, "k" * 10**6: 0})
    )
    assert_problem(response, 422, "invalid-input")
    assert len(response.content) < 5_000


def test_a_tool_output_nested_too_deeply_is_a_failed_step(
    database: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(PLUGINS))
    (tmp_path / "deep_output.yaml").write_text(
        "name: deep_output\ninput: {depth: {type: integer}}\nstart: nest\nstates:\n"
        "  nest: {type: task, tool: test.nest, args: {depth: $input.depth}, next: done}\n"
        "  done: {type: succeed}\n"
    )
    catalog = FlowCatalog.load(tmp_path, FlowChecker(load_registry()))
    service = TaskService(SqlTaskRepository(database), catalog, sleep=lambda _: None)
    try:
        for depth, status in [
            (MAX_DEPTH - 1, "succeeded"),
            (MAX_DEPTH, "failed"),
            (5_000, "failed"),
        ]:
            started = time.monotonic()
            task = service.run_task("deep_output", {"depth": depth}).task
            assert time.monotonic() - started < BOUND
            assert task.status == status, depth
            stored = service.get_task(task.id)
            [step] = stored.steps
            if status == "failed":
                assert step.error is not None
                assert step.error.kind == INVALID_OUTPUT
                # too deep for our check, or (far deeper) for Pydantic's serializer first
                assert (
                    f"nests deeper than {MAX_DEPTH} levels" in step.error.message
                    if depth == MAX_DEPTH
                    else "cannot be serialized" in step.error.message
                )
                assert step.output is None
    finally:
        service.close()


def test_the_cli_refuses_deep_input_in_one_line(database_url: str, tmp_path: Path) -> None:
    path = tmp_path / "deep.json"
    path.write_text(f'{{"text": {nested(1_200)}, "a": 1, "b": 2}}')
    env = {**os.environ, "DATABASE_URL": database_url}
    started = time.monotonic()
    result = subprocess.run(
        [*ENTRY, "run-flow", "--input", f"@{path}"], env=env, capture_output=True, text=True
    )
    assert time.monotonic() - started < BOUND + 10  # a fresh interpreter starts too
    assert result.returncode == 2, result.stderr
    [line] = result.stderr.splitlines()
    assert line.startswith("error: --input: the JSON nests deeper than 64 levels")


# -- flow documents that would amplify --------------------------------------------------------


def test_validating_a_large_document_answers_briefly(
    client: TestClient, chained_flow: Callable[..., bytes]
) -> None:
    raw = chained_flow(499, 10)
    assert 300_000 < len(raw) < 1024 * 1024
    response = timed_post(client, "/flows/validate", raw)
    assert response.status_code == 200
    report = response.json()
    assert report["valid"] is False
    assert len(report["problems"]) == MAX_PROBLEMS
    assert report["omitted"] > 4_000
    assert len(response.content) < 100_000


def test_validate_flow_counts_what_it_leaves_out(
    tmp_path: Path, chained_flow: Callable[..., bytes]
) -> None:
    path = tmp_path / "big.yaml"
    path.write_bytes(chained_flow(300, 5))
    text = subprocess.run([*ENTRY, "validate-flow", str(path)], capture_output=True, text=True)
    assert text.returncode == 1
    lines = text.stdout.splitlines()
    assert len(lines) == MAX_PROBLEMS + 1
    assert lines[-1].startswith(f"{path}: ... and ")
    listed = subprocess.run(
        [*ENTRY, "validate-flow", "--json", str(path)], capture_output=True, text=True
    )
    problems = json.loads(listed.stdout)
    assert len(problems) == MAX_PROBLEMS + 1
    assert problems[-1]["code"] == "report.omitted"


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

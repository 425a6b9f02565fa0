"""The `taskrunner` command line on a real database (both backends): run-flow, get-task and
list-tasks print what the API returns, refuse bad input with exit status 2 before anything is
stored, migrate a new database on start, and never show a traceback.

Success paths run in-process through `CliRunner` on `app`; error paths run through the real
entry point `main()` (in-process, and in subprocesses for the exit status as a shell sees it).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from taskrunner.cli import app, main
from taskrunner.service import TaskService
from taskrunner.settings import normalize_database_url
from taskrunner.store.database import Database
from taskrunner.store.migrate import is_current

ROOT = Path(__file__).resolve().parents[2]
FLOWS = ROOT / "taskrunner" / "flows"
POSTGRES_URL = normalize_database_url(
    os.environ.get("TASKRUNNER_TEST_POSTGRES_URL")
    or "postgresql://postgres@127.0.0.1:5432/postgres"
)
ENTRY = [sys.executable, "-c", "from taskrunner.cli import main; main()"]
HELLO = ["--text", "hello", "--a", "2", "--b", "3"]
STEP_LINE = re.compile(r"^\s+(?P<seq>\d+)\s+(?P<state>\w+) \((?P<tool>\w+)(, attempt \d+)?\)")
TASK_LINE = re.compile(r"^(?P<id>[0-9a-f-]{36})\s+(?P<status>\w+)\s+(?P<flow>\w+)\s")
MORE_LINE = re.compile(r"^more: --cursor (?P<cursor>\S+)$")

runner = CliRunner()


# -- helpers ------------------------------------------------------------------------------


def cli(database_url: str, *args: str, **env: str | None) -> Result:
    """`taskrunner ARGS` in-process on `database_url`, with the repository's flows."""
    environment: dict[str, str | None] = {
        "DATABASE_URL": database_url,
        "TASKRUNNER_FLOWS_DIR": str(FLOWS),
        "TASKRUNNER_AUTO_MIGRATE": None,
        "TASKRUNNER_DEBUG": None,
    }
    environment.update(env)
    return runner.invoke(app, list(args), env=environment, catch_exceptions=False)


def run_main(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    database_url: str,
    *args: str,
) -> tuple[int, str, str]:
    """The real entry point `main()` in-process: (exit status, stdout, stderr)."""
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("TASKRUNNER_FLOWS_DIR", str(FLOWS))
    monkeypatch.delenv("TASKRUNNER_AUTO_MIGRATE", raising=False)
    monkeypatch.delenv("TASKRUNNER_DEBUG", raising=False)
    monkeypatch.setattr(sys, "argv", ["taskrunner", *args])
    capsys.readouterr()
    with pytest.raises(SystemExit) as exited:
        main()
    out, err = capsys.readouterr()
    code = exited.value.code
    return (code if isinstance(code, int) else (0 if code is None else 1)), out, err


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without any taskrunner setting, plus `extra`."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key != "DATABASE_URL" and not key.startswith("TASKRUNNER_")
    }
    env.update(extra)
    return env


def popen(args: list[str], cwd: Path, env: Mapping[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*ENTRY, *args],
        cwd=cwd,
        env=dict(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def run_entry(
    args: list[str], cwd: Path, env: Mapping[str, str]
) -> subprocess.CompletedProcess[str]:
    """`taskrunner ARGS` as a shell runs it: a process of its own."""
    return subprocess.run(
        [*ENTRY, *args], cwd=cwd, env=dict(env), capture_output=True, text=True, timeout=60
    )


def run_entries(
    runs: list[list[str]], cwd: Path, env: Mapping[str, str]
) -> list[subprocess.CompletedProcess[str]]:
    """Several `taskrunner` processes started together; their results in order."""
    processes = [popen(args, cwd, env) for args in runs]
    done = []
    for args, process in zip(runs, processes, strict=True):
        out, err = process.communicate(timeout=60)
        done.append(subprocess.CompletedProcess(args, process.returncode, out, err))
    return done


def subprocess_env(database_url: str, **extra: str) -> dict[str, str]:
    return clean_env(DATABASE_URL=database_url, TASKRUNNER_FLOWS_DIR=str(FLOWS), **extra)


def assert_clean_failure(stderr: str, stdout: str = "") -> None:
    """No traceback anywhere, and exactly one `error: ...` line."""
    assert "Traceback" not in stderr + stdout
    assert "internal error" not in stderr
    errors = [line for line in stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, stderr


def task_json(result: Result) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(result.stdout)
    return document


def listed(result: Result) -> list[tuple[str, str, str]]:
    """(id, status, flow) of each task line of `list-tasks` text output."""
    found = []
    for line in result.stdout.splitlines():
        match = TASK_LINE.match(line)
        if match:
            found.append((match["id"], match["status"], match["flow"]))
    return found


def shown_field(stdout: str, name: str) -> Any:
    """The JSON value on the `  NAME  ...` line of a task shown as text (jsonb on PostgreSQL
    keeps no key order, so the value is compared, not its spelling)."""
    for line in stdout.splitlines():
        label, _, value = line.strip().partition(" ")
        if label == name:
            return json.loads(value)
    raise AssertionError(f"no {name} line in {stdout!r}")


def step_states(stdout: str) -> list[tuple[int, str, str]]:
    found = []
    for line in stdout.splitlines():
        match = STEP_LINE.match(line)
        if match:
            found.append((int(match["seq"]), match["state"], match["tool"]))
    return found


def postgres_execute(*statements: str) -> None:
    engine = create_engine(make_url(POSTGRES_URL), isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            for statement in statements:
                connection.execute(text(statement))
    finally:
        engine.dispose()


def table_names(database_url: str) -> set[str]:
    database = Database(database_url)
    try:
        return set(inspect(database.engine).get_table_names())
    finally:
        database.dispose()


def migrated(database_url: str) -> bool:
    database = Database(database_url)
    try:
        return is_current(database)
    finally:
        database.dispose()


# -- run-flow -----------------------------------------------------------------------------


def test_run_flow_prints_a_readable_task(database_url: str) -> None:
    result = cli(database_url, "run-flow", *HELLO)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert re.match(r"^task [0-9a-f-]{36}  succeeded$", lines[0])
    assert any(line.split() == ["flow", "echo_add", *line.split()[2:]] for line in lines)
    assert shown_field(result.stdout, "output") == {"text": "hello", "sum": 5}
    assert step_states(result.stdout) == [(1, "echo", "echo"), (2, "add", "add")]
    assert "Traceback" not in result.output
    # stderr says once which database is in use; stdout holds the task alone.
    announced = [line for line in result.stderr.splitlines() if "using" in line]
    assert len(announced) == 1, result.stderr
    where = make_url(database_url).database
    assert where is not None
    assert where in announced[0]
    assert "using" not in result.stdout


def test_run_flow_json_is_the_api_document(database_url: str, client: TestClient) -> None:
    result = cli(database_url, "run-flow", *HELLO, "--json")
    assert result.exit_code == 0, result.output
    task = task_json(result)
    assert task["status"] == "succeeded"
    assert task["flow"] == "echo_add"
    assert task["input"] == {"text": "hello", "a": 2, "b": 3}
    assert task["output"] == {"text": "hello", "sum": 5}
    assert [step["state"] for step in task["steps"]] == ["echo", "add"]
    assert [step["tool"] for step in task["steps"]] == ["echo", "add"]
    response = client.get(f"/tasks/{task['id']}")
    assert response.status_code == 200
    api = response.json()
    assert set(task) == set(api)
    assert [set(step) for step in task["steps"]] == [set(step) for step in api["steps"]]
    assert task == api


def test_run_flow_takes_the_whole_input_as_json(database_url: str) -> None:
    result = cli(database_url, "run-flow", "--input", '{"text":"hi","a":1,"b":2}', "--json")
    assert result.exit_code == 0, result.output
    task = task_json(result)
    assert (task["status"], task["output"]) == ("succeeded", {"text": "hi", "sum": 3})


def test_run_flow_reads_the_input_from_a_file(database_url: str, tmp_path: Path) -> None:
    path = tmp_path / "input.json"
    path.write_text('{"text": "from a file", "a": 10, "b": -4}', encoding="utf-8")
    result = cli(database_url, "run-flow", "--input", f"@{path}", "--json")
    assert result.exit_code == 0, result.output
    task = task_json(result)
    assert (task["status"], task["output"]) == ("succeeded", {"text": "from a file", "sum": 6})


def test_options_override_fields_of_the_input(database_url: str) -> None:
    result = cli(
        database_url,
        "run-flow",
        "--input",
        '{"text":"hi","a":1,"b":2}',
        "--a",
        "10",
        "--text=yo",
        "--json",
    )
    assert result.exit_code == 0, result.output
    task = task_json(result)
    assert task["input"] == {"text": "yo", "a": 10, "b": 2}
    assert task["output"] == {"text": "yo", "sum": 12}


def test_integer_fields_are_integers(database_url: str) -> None:
    result = cli(database_url, "run-flow", "--flow", "classify_sum", "--a", "60", "--b", "40")
    assert result.exit_code == 0, result.output
    assert step_states(result.stdout) == [
        (1, "add", "add"),
        (2, "size", "choice"),
        (3, "big", "echo"),
    ]
    [decision] = [line for line in result.stdout.splitlines() if "(choice)" in line]
    shown, _, read = decision.partition("  rule 2 matched -> big  ")
    assert shown == "      2  size (choice)"
    assert json.loads(read) == {"$states.add.sum": 100, "$input.label": "sum"}
    result = cli(
        database_url, "run-flow", "--flow", "classify_sum", "--a", "60", "--b", "40", "--json"
    )
    task = task_json(result)
    assert task["status"] == "succeeded"
    assert task["input"] == {"a": 60, "b": 40, "label": "sum"}
    assert all(type(task["input"][name]) is int for name in ("a", "b"))
    assert task["output"] == {"label": "sum", "sum": 100}
    assert type(task["output"]["sum"]) is int


def test_a_failed_task_exits_1_and_shows_its_error(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # safe_divide waits 0.5 s then 1 s between its attempts; the CLI need not wait here.
    assert TaskService.__init__.__kwdefaults__ is not None
    monkeypatch.setitem(TaskService.__init__.__kwdefaults__, "sleep", lambda _: None)
    result = cli(
        database_url, "run-flow", "--flow", "safe_divide", "--dividend", "1", "--divisor", "0"
    )
    assert result.exit_code == 1, result.output
    assert re.match(r"^task [0-9a-f-]{36}  failed$", result.stdout.splitlines()[0])
    assert "UndefinedQuotient" in result.stdout
    assert "the divisor is zero" in result.stdout
    assert [state for _, state, _ in step_states(result.stdout)] == ["divide"] * 3
    assert result.stdout.count("DivisionByZero") == 3  # each failed attempt is shown
    assert "Traceback" not in result.output


REFUSED = [
    (["--a", "x", "--text", "t", "--b", "1"], "--a 'x': not a number"),
    (["--flow", "classify_sum", "--a", "2.5", "--b", "1"], "--a '2.5': not an integer"),
    ([*HELLO, "--c", "1"], "no such option --c"),
    (["--text", "t", "--b", "1", "--a"], "--a needs a value"),
    (["--text", "t", "--a", "1"], "b: field required"),
    (["--input", "{not json"], "--input: not valid JSON"),
    (["--input", "[1, 2]"], "--input must be a JSON object"),
    (["--input", "@no-such-input.json"], "--input @no-such-input.json: no such file"),
]


def test_refused_input_exits_2_and_stores_nothing(
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    monkeypatch.chdir(tmp_path)
    for args, message in REFUSED:
        status, out, err = run_main(monkeypatch, capsys, database_url, "run-flow", *args)
        assert status == 2, (args, err)
        assert out == "", args
        assert_clean_failure(err)
        error = next(line for line in err.splitlines() if line.startswith("error: "))
        assert message.lower() in error.lower(), (args, error)
        listing = cli(database_url, "list-tasks", "--json")
        assert listing.exit_code == 0, listing.output
        assert task_json(listing)["items"] == [], args

    # The same, as a shell sees it: a process of its own, its exit status, its stderr.
    bad_integer, missing_file = run_entries(
        [
            ["run-flow", "--flow", "classify_sum", "--a", "2.5", "--b", "1"],
            ["run-flow", "--input", "@missing.json"],
        ],
        tmp_path,
        subprocess_env(database_url),
    )
    for done in (bad_integer, missing_file):
        assert done.returncode == 2, done.stderr
        assert done.stdout == ""
        assert_clean_failure(done.stderr)
    assert "--a '2.5': not an integer" in bad_integer.stderr
    assert "--input @missing.json: No such file" in missing_file.stderr
    assert cli(database_url, "list-tasks").stdout.strip() == "no tasks"


def test_run_flow_help_lists_the_flows_fields(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'help.sqlite3'}"
    result = cli(url, "run-flow", "--flow", "echo_add", "--help")
    assert result.exit_code == 0, result.output
    assert "--input" in result.stdout
    assert "Input of the flow echo_add" in result.stdout
    listed = result.stdout.split("Input of the flow", 1)[1]
    fields = re.findall(r"^\s+(--\w+) (\w+)\s", listed, flags=re.MULTILINE)
    assert fields == [("--text", "STRING"), ("--a", "NUMBER"), ("--b", "NUMBER")]
    assert "The text to echo." in result.stdout

    result = cli(url, "run-flow", "--flow", "classify_sum", "--help")
    assert result.exit_code == 0, result.output
    listed = result.stdout.split("Input of the flow", 1)[1]
    fields = re.findall(r"^\s+(--\w+) (\w+)\s", listed, flags=re.MULTILINE)
    assert fields == [("--a", "INTEGER"), ("--b", "INTEGER"), ("--label", "STRING")]
    label = next(line for line in result.stdout.splitlines() if "--label" in line)
    assert 'Default: "sum"' in label
    assert not (tmp_path / "help.sqlite3").exists()  # help opens no database


def test_an_unknown_flow_exits_2_naming_the_known_flows(
    database_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, err = run_main(monkeypatch, capsys, database_url, "run-flow", "--flow", "nope")
    assert status == 2, err
    assert out == ""
    assert_clean_failure(err)
    assert "nope" in err
    for known in ("classify_sum", "echo_add", "safe_divide"):
        assert known in err
    assert task_json(cli(database_url, "list-tasks", "--json"))["items"] == []


# -- get-task -----------------------------------------------------------------------------


def test_get_task_shows_the_steps_in_order(database_url: str, client: TestClient) -> None:
    task_id = task_json(cli(database_url, "run-flow", *HELLO, "--json"))["id"]

    result = cli(database_url, "get-task", task_id)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"task {task_id}  succeeded")
    assert shown_field(result.stdout, "output") == {"text": "hello", "sum": 5}
    assert shown_field(result.stdout, "input") == {"text": "hello", "a": 2, "b": 3}
    assert step_states(result.stdout) == [(1, "echo", "echo"), (2, "add", "add")]

    result = cli(database_url, "get-task", task_id, "--json")
    assert result.exit_code == 0, result.output
    task = task_json(result)
    assert task["id"] == task_id
    assert task["output"] == {"text": "hello", "sum": 5}
    assert [(step["seq"], step["state"]) for step in task["steps"]] == [(1, "echo"), (2, "add")]
    assert task == client.get(f"/tasks/{task_id}").json()


def test_get_task_of_an_unknown_id_exits_1(
    database_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    unknown = str(uuid.uuid4())
    status, out, err = run_main(monkeypatch, capsys, database_url, "get-task", unknown)
    assert status == 1, err
    assert out == ""
    assert_clean_failure(err)
    assert f"error: no task with id {unknown}" in err


def test_get_task_of_a_malformed_id_exits_2(
    database_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, err = run_main(monkeypatch, capsys, database_url, "get-task", "not-a-uuid")
    assert status == 2, err
    assert out == ""
    assert_clean_failure(err)
    assert "'not-a-uuid' is not a task id" in err


# -- list-tasks ---------------------------------------------------------------------------


def test_list_tasks_filters_and_pages(database_url: str) -> None:
    first = task_json(cli(database_url, "run-flow", *HELLO, "--json"))
    negative = cli(
        database_url, "run-flow", "--flow", "classify_sum", "--a", "-5", "--b", "2", "--json"
    )
    assert negative.exit_code == 1, negative.output
    failed = task_json(negative)
    assert failed["status"] == "failed"
    last = task_json(cli(database_url, "run-flow", "--input", '{"text":"x","a":0,"b":0}', "--json"))
    newest_first = [
        (last["id"], "succeeded", "echo_add"),
        (failed["id"], "failed", "classify_sum"),
        (first["id"], "succeeded", "echo_add"),
    ]

    result = cli(database_url, "list-tasks")
    assert result.exit_code == 0, result.output
    assert listed(result) == newest_first
    assert "more:" not in result.stdout

    result = cli(database_url, "list-tasks", "--status", "failed")
    assert result.exit_code == 0, result.output
    assert listed(result) == [newest_first[1]]

    result = cli(database_url, "list-tasks", "--flow", "echo_add")
    assert listed(result) == [newest_first[0], newest_first[2]]

    result = cli(database_url, "list-tasks", "--flow", "safe_divide")
    assert (result.exit_code, result.stdout.strip()) == (0, "no tasks")

    seen: list[tuple[str, str, str]] = []
    page = cli(database_url, "list-tasks", "--limit", "1")
    for _ in range(5):
        assert page.exit_code == 0, page.output
        seen.extend(listed(page))
        more = [MORE_LINE.match(line) for line in page.stdout.splitlines()]
        cursors = [match["cursor"] for match in more if match]
        if not cursors:
            break
        page = cli(database_url, "list-tasks", "--limit", "1", "--cursor", cursors[0])
    assert seen == newest_first

    result = cli(database_url, "list-tasks", "--json", "--limit", "2")
    assert result.exit_code == 0, result.output
    document = task_json(result)
    assert set(document) == {"items", "next_cursor"}
    assert [item["id"] for item in document["items"]] == [last["id"], failed["id"]]
    assert document["items"][1]["error"]["kind"] == "NegativeSum"
    assert "steps" not in document["items"][0]
    result = cli(
        database_url, "list-tasks", "--json", "--limit", "2", "--cursor", document["next_cursor"]
    )
    document = task_json(result)
    assert [item["id"] for item in document["items"]] == [first["id"]]
    assert document["next_cursor"] is None


def test_list_tasks_has_a_header_zoned_iso_times_and_error_kinds(database_url: str) -> None:
    from datetime import datetime

    ok = task_json(cli(database_url, "run-flow", *HELLO, "--json"))
    failed = task_json(
        cli(database_url, "run-flow", "--flow", "classify_sum", "--a", "-5", "--b", "2", "--json")
    )
    result = cli(database_url, "list-tasks")
    assert result.exit_code == 0, result.output
    header, *rows = result.stdout.splitlines()
    assert header.split() == ["ID", "STATUS", "FLOW", "CREATED", "ERROR"]
    cells = [row.split() for row in rows]
    assert header.index("CREATED") == rows[0].index(cells[0][3])  # the columns line up
    assert [(cell[0], cell[4]) for cell in cells] == [
        (failed["id"], "NegativeSum"),
        (ok["id"], "-"),
    ]
    for cell, task in zip(cells, (failed, ok), strict=True):
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00", cell[3]), cell
        shown = datetime.fromisoformat(cell[3])
        created = datetime.fromisoformat(task["created_at"])
        assert shown.tzinfo is not None
        assert abs((created - shown).total_seconds()) < 0.001


def test_list_tasks_refuses_an_unknown_status(
    database_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, err = run_main(monkeypatch, capsys, database_url, "list-tasks", "--status", "nope")
    assert status == 2, err
    assert out == ""
    assert_clean_failure(err)
    assert "'nope'" in err
    assert "succeeded" in err
    assert "failed" in err


# -- configuration and databases ----------------------------------------------------------


def test_an_unreachable_postgres_is_a_one_line_error(tmp_path: Path) -> None:
    env = subprocess_env("postgresql://postgres@127.0.0.1:1/x")
    done = run_entry(["run-flow", *HELLO], tmp_path, env)
    assert done.returncode != 0
    assert done.returncode == 1, done.stderr
    assert done.stdout == ""
    assert_clean_failure(done.stderr)
    lines = done.stderr.splitlines()
    assert len(lines) == 2, done.stderr  # which database, then why it failed
    assert "127.0.0.1" in lines[0]
    assert lines[1].startswith("error: ")
    assert "127.0.0.1" in lines[1]


def test_a_bad_database_url_exits_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    for args in (["run-flow", *HELLO], ["list-tasks"], ["get-task", str(uuid.uuid4())]):
        status, out, err = run_main(monkeypatch, capsys, "mysql://x", *args)
        assert status == 2, (args, err)
        assert out == ""
        assert_clean_failure(err)
        assert "DATABASE_URL" in err
        assert "'mysql'" in err
        assert "postgresql://" in err
    done = run_entry(["list-tasks"], tmp_path, subprocess_env("mysql://x"))
    assert done.returncode == 2, done.stderr
    assert_clean_failure(done.stderr, done.stdout)
    assert "DATABASE_URL" in done.stderr


def test_zero_setup_as_a_new_user(tmp_path: Path) -> None:
    """From an empty directory: the shipped flows, an embedded database created there."""
    project = tmp_path / "project"
    home = tmp_path / "home"
    project.mkdir()
    home.mkdir()
    env = clean_env(HOME=str(home))

    done = run_entry(["run-flow", *HELLO, "--json"], project, env)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    task = json.loads(done.stdout)
    assert (task["status"], task["output"]) == ("succeeded", {"text": "hello", "sum": 5})
    assert (project / "var" / "taskrunner.sqlite3").is_file()
    announced = [line for line in done.stderr.splitlines() if "using" in line]
    assert len(announced) == 1, done.stderr
    assert "var/taskrunner.sqlite3" in announced[0]
    assert not any(home.iterdir())

    done = run_entry(["get-task", task["id"], "--json"], project, env)
    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout)
    assert shown["id"] == task["id"]
    assert [step["state"] for step in shown["steps"]] == ["echo", "add"]
    assert shown["output"] == {"text": "hello", "sum": 5}


def test_the_first_run_migrates_a_new_database(empty_database_url: str) -> None:
    result = cli(empty_database_url, "run-flow", *HELLO, "--json")
    assert result.exit_code == 0, result.output
    assert task_json(result)["status"] == "succeeded"
    assert migrated(empty_database_url)
    assert {"tasks", "task_steps", "flow_versions"} <= table_names(empty_database_url)
    result = cli(empty_database_url, "list-tasks", "--json")
    assert len(task_json(result)["items"]) == 1


def test_no_auto_migrate_on_an_empty_database_is_a_clear_error(
    empty_database_url: str, tmp_path: Path
) -> None:
    env = subprocess_env(empty_database_url, TASKRUNNER_AUTO_MIGRATE="0")
    done = run_entry(["run-flow", *HELLO], tmp_path, env)
    assert done.returncode != 0, done.stdout
    assert done.stdout == ""
    assert_clean_failure(done.stderr)
    error = next(line for line in done.stderr.splitlines() if line.startswith("error: "))
    # The message says what is wrong and what to do: migrate, or let taskrunner migrate.
    assert "migrat" in error.lower(), error
    assert "TASKRUNNER_AUTO_MIGRATE" in error or "alembic upgrade head" in error, error
    assert not {"tasks", "task_steps", "flow_versions", "alembic_version"} & table_names(
        empty_database_url
    )


def test_processes_starting_together_migrate_a_new_postgres_once(tmp_path: Path) -> None:
    name = f"taskrunner_test_{uuid.uuid4().hex[:16]}"
    postgres_execute(f'CREATE DATABASE "{name}"')
    try:
        url = make_url(POSTGRES_URL).set(database=name).render_as_string(False)
        runs = [["run-flow", "--text", f"run {n}", "--a", str(n), "--b", "1"] for n in range(4)]
        results = run_entries(runs, tmp_path, subprocess_env(url))
        for done in results:
            assert done.returncode == 0, done.stderr
            assert "Traceback" not in done.stderr
        assert migrated(url)
        listing = task_json(cli(url, "list-tasks", "--json"))
        assert len(listing["items"]) == 4
        assert {item["status"] for item in listing["items"]} == {"succeeded"}
    finally:
        postgres_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

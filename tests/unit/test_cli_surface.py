"""The command line's own surface, with no database: `--version`, `-h`, shell completion,
what every command's help shows, the discovery commands (`list-flows`, `show-flow`,
`list-tools`, `show-tool`), and flow inputs given as options (boolean flags, a field
given twice)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any, get_args

import pytest
from typer.main import get_command
from typer.testing import CliRunner

from taskrunner.catalog import load_catalog
from taskrunner.cli import app, main
from taskrunner.cli.inputs import options_help, read_input
from taskrunner.errors import InputOptionError
from taskrunner.store.records import TaskStatus
from taskrunner.tools import load_registry

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "taskrunner" / "flows"
SIBLINGS = ROOT / "tests" / "flows" / "siblings"
MAIN = "from taskrunner.cli import main; main()"

runner = CliRunner()


def invoke(*args: str, flows: Path = SHIPPED) -> tuple[int, str, str]:
    """`taskrunner ARGS` in-process through the entry point: (exit status, out, err)."""
    result = runner.invoke(
        app,
        list(args),
        env={"TASKRUNNER_FLOWS_DIR": str(flows), "TASKRUNNER_DEBUG": None},
        catch_exceptions=False,
    )
    return result.exit_code, result.stdout, result.stderr


def run_main(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str
) -> tuple[int, str, str]:
    """The real entry point `main()`, which turns taskrunner's errors into exit statuses."""
    monkeypatch.setenv("TASKRUNNER_FLOWS_DIR", str(SIBLINGS))
    monkeypatch.setenv("DATABASE_URL", "sqlite:////nonexistent/never-opened.db")
    monkeypatch.setattr(sys, "argv", ["taskrunner", *args])
    capsys.readouterr()
    with pytest.raises(SystemExit) as exited:
        main()
    out, err = capsys.readouterr()
    code = exited.value.code
    return (code if isinstance(code, int) else 0), out, err


def subprocess_env() -> dict[str, str]:
    return {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("TYPER_", "TASKRUNNER_", "_TASKRUNNER"))
    } | {"TASKRUNNER_FLOWS_DIR": str(SHIPPED)}


def every_command() -> list[list[str]]:
    """The path of every command and group, from the root's: [], ["run-flow"], …"""
    found: list[list[str]] = []

    def walk(command: Any, path: list[str]) -> None:
        found.append(path)
        for name, sub in getattr(command, "commands", {}).items():
            walk(sub, [*path, name])

    walk(get_command(app), [])
    return found


COMMANDS = every_command()


# -- the program ----------------------------------------------------------------------------


def test_version_is_the_package_version() -> None:
    status, out, _ = invoke("--version")
    assert (status, out) == (0, f"taskrunner {version('taskrunner')}\n")


@pytest.mark.parametrize("path", COMMANDS, ids=[" ".join(path) or "-" for path in COMMANDS])
def test_every_help_takes_h_and_names_its_values_plainly(path: list[str]) -> None:
    status, short, _ = invoke(*path, "-h")
    assert status == 0, short
    assert short.startswith(f"Usage: taskrunner {' '.join(path)}".rstrip())
    assert invoke(*path, "--help")[1] == short
    for typed in ("<list[", "{", "[str]", "<str>", "<int"):
        assert typed not in short.split("\n\n", 1)[0], (typed, short)
        for line in short.splitlines():
            if line.startswith("  ") and not line.startswith("   "):
                assert typed not in line.split("  ")[1], (typed, line)


def test_validate_flow_help_says_file_dots() -> None:
    _, out, _ = invoke("validate-flow", "-h")
    assert out.startswith("Usage: taskrunner validate-flow [OPTIONS] FILE...\n")
    assert "\n  FILE...  Flow files to check." in out


def test_status_help_lists_every_status() -> None:
    _, out, _ = invoke("list-tasks", "-h")
    flat = " ".join(out.split())
    assert f"Only tasks in this status: {', '.join(get_args(TaskStatus))}." in flat


def test_help_starts_fast_without_rich_or_the_database() -> None:
    probe = (
        "import sys, time\nstarted = time.perf_counter()\nfrom taskrunner.cli import main\n"
        "for argv in (['--help'], ['--version'], ['completion', 'bash'], ['list-tools']):\n"
        "    sys.argv = ['taskrunner', *argv]\n"
        "    try:\n        main()\n    except SystemExit:\n        pass\n"
        "heavy = sorted({m.split('.')[0] for m in sys.modules} & "
        "{'rich', 'fastapi', 'sqlalchemy', 'uvicorn', 'psycopg'})\n"
        "print('HEAVY=' + ','.join(heavy), file=sys.stderr)\n"
    )
    started = time.perf_counter()
    loaded = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=subprocess_env(),
        check=False,
    )
    elapsed = time.perf_counter() - started
    assert "HEAVY=\n" in loaded.stderr, loaded.stderr[-2000:]
    assert elapsed < 5, f"four commands took {elapsed:.1f} s"


# -- completion -----------------------------------------------------------------------------


def test_the_bash_completion_script_completes_taskrunner() -> None:
    status, out, _ = invoke("completion", "bash")
    assert status == 0
    assert "complete -o default -F _taskrunner_completion taskrunner" in out
    assert "_TASKRUNNER_COMPLETE=complete_bash" in out


@pytest.mark.parametrize("shell", ["zsh", "fish"])
def test_zsh_and_fish_have_a_script_too(shell: str) -> None:
    status, out, _ = invoke("completion", shell)
    assert status == 0
    assert "taskrunner" in out
    assert f"complete_{shell}" in out


def test_completion_for_another_shell_is_a_usage_error() -> None:
    status, _, err = invoke("completion", "tcsh")
    assert status == 2
    assert "error: no completion for 'tcsh'; shells: bash, zsh, fish" in err


def test_the_script_completes_command_names() -> None:
    """What the bash script asks taskrunner when Tab is pressed after `taskrunner list-`."""
    env = subprocess_env() | {
        "_TASKRUNNER_COMPLETE": "complete_bash",
        "COMP_WORDS": "taskrunner list-",
        "COMP_CWORD": "1",
    }
    done = subprocess.run(
        [sys.executable, "-c", MAIN], capture_output=True, text=True, env=env, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["list-flows", "list-tools", "list-tasks"]


# -- flows and tools ------------------------------------------------------------------------


def test_list_flows_is_a_table_of_the_shipped_flows() -> None:
    status, out, _ = invoke("list-flows")
    assert status == 0
    lines = out.splitlines()
    assert lines[0].split() == ["NAME", "VERSION", "STATES", "DESCRIPTION"]
    catalog = load_catalog(SHIPPED)
    assert [line.split()[0] for line in lines[1:]] == catalog.names()
    echo_add = catalog.get("echo_add").flow
    row = next(line for line in lines if line.startswith("echo_add "))
    assert row.split()[1:4] == [echo_add.digest[:19], "3", "Echo"]
    assert all(len(line) <= 120 for line in lines)


def test_list_flows_json_is_what_get_flows_lists_with_the_state_counts() -> None:
    status, out, _ = invoke("list-flows", "--json")
    assert status == 0
    listed = json.loads(out)
    catalog = load_catalog(SHIPPED)
    assert [item["name"] for item in listed] == catalog.names()
    first = catalog.get(listed[0]["name"])
    assert listed[0] == {
        "valid": True,
        "name": first.flow.name,
        "description": first.flow.description,
        "version": first.flow.digest,
        "file": first.path.name,
        "states": len(first.flow.states),
    }


def test_list_flows_names_a_skipped_file(tmp_path: Path) -> None:
    (tmp_path / "echo_add.yaml").write_bytes((SHIPPED / "echo_add.yaml").read_bytes())
    (tmp_path / "broken.yaml").write_text("name: broken\nstart: nowhere\n")
    status, out, err = invoke("list-flows", flows=tmp_path)
    assert status == 0
    assert [line.split()[0] for line in out.splitlines()] == ["NAME", "echo_add"]
    assert "broken.yaml has 1 problem; skipped" in err
    listed = json.loads(invoke("list-flows", "--json", flows=tmp_path)[1])
    assert [(item["valid"], item["file"]) for item in listed] == [
        (True, "echo_add.yaml"),
        (False, "broken.yaml"),
    ]
    assert listed[1]["problems"]


def test_show_flow_shows_its_input_states_digest_and_file() -> None:
    status, out, _ = invoke("show-flow", "classify_sum")
    assert status == 0
    flow = load_catalog(SHIPPED).get("classify_sum").flow
    assert out.startswith("flow classify_sum\n  Add two numbers, then branch on the sum.\n")
    assert f"  version  {flow.digest}\n" in out
    assert f"  file     {SHIPPED / 'classify_sum.yaml'}\n" in out
    assert '    --label  string   default "sum"\n' in out
    assert "    --a      integer  required\n" in out
    assert "  states   (start: add)\n" in out
    assert "    add       task add  -> size\n" in out
    assert "    size      choice  -> negative, big, small\n" in out
    assert "    report    succeed\n" in out


def test_show_flow_json_is_the_api_document() -> None:
    status, out, _ = invoke("show-flow", "echo_add", "--json")
    assert status == 0
    document = json.loads(out)
    entry = load_catalog(SHIPPED).get("echo_add")
    assert set(document) == {
        "valid",
        "name",
        "description",
        "version",
        "file",
        "input_schema",
        "definition",
    }
    assert document["input_schema"] == entry.plan.input_model.model_json_schema()
    assert document["input_schema"]["required"] == ["text", "a", "b"]
    assert document["definition"] == json.loads(entry.flow.canonical)
    assert document["version"] == entry.flow.digest


def test_list_tools_is_a_table_of_the_registry() -> None:
    status, out, _ = invoke("list-tools")
    assert status == 0
    lines = out.splitlines()
    assert lines[0].split() == ["NAME", "DESCRIPTION"]
    assert [line.split()[0] for line in lines[1:]] == load_registry().names()
    assert "add     Add two numbers." in lines
    listed = json.loads(invoke("list-tools", "--json")[1])
    assert {"name": "add", "description": "Add two numbers.", "errors": ["NumberOverflow"]} in (
        listed
    )


def test_show_tool_prints_its_contract() -> None:
    status, out, _ = invoke("show-tool", "divide")
    assert status == 0
    assert out.startswith("tool divide\n  Divide two numbers;")
    assert "  errors  DivisionByZero, NumberOverflow\n" in out
    schemas = out.split("  input schema\n", 1)[1].split("  output schema\n")
    divide = load_registry().get("divide")
    assert json.loads(schemas[0]) == divide.input_model.model_json_schema()
    assert json.loads(schemas[1]) == divide.output_model.model_json_schema()
    assert '\n    {\n      "additionalProperties": false,' in out  # pretty, indented


def test_show_tool_json() -> None:
    status, out, _ = invoke("show-tool", "add", "--json")
    assert status == 0
    document = json.loads(out)
    assert document["name"] == "add"
    assert document["errors"] == ["NumberOverflow"]
    assert document["input_schema"]["required"] == ["a", "b"]
    assert document["output_schema"]["properties"]["sum"]["type"] == "number"


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["show-flow", "echo_ad"], "error: no flow named 'echo_ad'; did you mean 'echo_add'?"),
        (["show-flow", "ECHO_ADD"], "did you mean 'echo_add'?"),
        (["show-tool", "dvide"], "error: no tool named 'dvide'; did you mean 'divide'?"),
    ],
)
def test_an_unknown_name_exits_1_with_the_closest_name(args: list[str], said: str) -> None:
    status, out, err = invoke(*args)
    assert (status, out) == (1, "")
    assert said in err
    assert len(err.splitlines()) == 1


def test_an_unknown_name_with_nothing_close_lists_the_known_ones() -> None:
    status, _, err = invoke("show-tool", "zzzzzz")
    assert status == 1
    assert "did you mean" not in err
    assert "(tools: add, divide, echo," in err


def test_show_flow_of_a_skipped_file_exits_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "broken.yaml").write_text("name: broken\nstart: nowhere\n")
    monkeypatch.setenv("TASKRUNNER_FLOWS_DIR", str(tmp_path))
    monkeypatch.setattr(sys, "argv", ["taskrunner", "show-flow", "broken"])
    with pytest.raises(SystemExit) as exited:
        main()
    assert exited.value.code == 1
    err = capsys.readouterr().err
    assert "the flow 'broken' is not loaded" in err
    assert "Traceback" not in err


# -- flow inputs as options -----------------------------------------------------------------


@pytest.fixture(scope="module")
def shout() -> Any:
    return load_catalog(SIBLINGS).get("shout").flow


@pytest.mark.parametrize(
    ("words", "loud"),
    [(["--loud"], True), (["--no-loud"], False), (["--loud=false"], False), ([], None)],
)
def test_a_boolean_input_is_a_flag(shout: Any, words: list[str], loud: bool | None) -> None:
    data = read_input(shout, None, ["--text", "hi", *words])
    assert data.get("loud") is loud
    assert data["text"] == "hi"


def test_the_flag_overrides_the_whole_input(shout: Any) -> None:
    assert read_input(shout, '{"text": "a", "loud": true}', ["--no-loud"])["loud"] is False


@pytest.mark.parametrize(
    ("words", "said"),
    [
        (["--text", "a", "--text", "b"], "the field text is given twice (--text a, then --text b)"),
        (["--text=a", "--text", "b"], "the field text is given twice (--text=a, then --text b)"),
        (["--text", "a", "--loud", "--no-loud"], "the field loud is given twice"),
        (["--text", "a", "--loud", "true"], "unexpected argument 'true' after --loud: a boolean"),
        (["--text", "a", "--no-loud=true"], "--no-loud takes no value"),
        (["--text", "a", "--no-text"], "no such option --no-text; the flow shout takes --text, "),
    ],
)
def test_refused_options(shout: Any, words: list[str], said: str) -> None:
    with pytest.raises(InputOptionError) as refused:
        read_input(shout, None, words)
    assert said in refused.value.message


def test_a_repeated_array_option_says_how_to_give_an_array() -> None:
    halve_all = load_catalog(SHIPPED).get("halve_all").flow
    with pytest.raises(InputOptionError) as refused:
        read_input(halve_all, None, ["--numbers", "[1]", "--numbers", "[2]"])
    assert "one JSON value: --numbers '[1, 2]'" in refused.value.message
    assert read_input(halve_all, None, ["--numbers", "[1, 2]", "--divisor", "2"]) == {
        "numbers": [1, 2],
        "divisor": 2,
    }


def test_a_repeated_option_exits_2_before_the_database_is_opened(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["run-flow", "--flow", "shout", "--text", "a", "--text", "b"]
    status, out, err = run_main(monkeypatch, capsys, *args)
    assert (status, out) == (2, "")
    assert err == "error: the field text is given twice (--text a, then --text b): give it once\n"


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["run-flow", "--flow", "echo_add", "--flow", "shout"], "--flow is given twice"),
        (["list-tasks", "--status", "failed", "--status=succeeded"], "--status is given twice"),
        (["graph", "shout", "--format", "dot", "--format", "mermaid"], "--format is given twice"),
        (["api-key", "new", "--name", "a", "--name", "b"], "--name is given twice"),
    ],
)
def test_a_command_option_given_twice_exits_2_rather_than_keeping_the_last(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    said: str,
) -> None:
    status, out, err = run_main(monkeypatch, capsys, *args)
    assert (status, out) == (2, "")
    assert f"Error: {said}: give it once" in err


def test_run_flow_help_shows_the_flag(shout: Any) -> None:
    assert "  --loud/--no-loud  Default: false." in options_help(shout)


def test_run_flow_of_an_unknown_flow_exits_2_with_the_closest_name(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, err = run_main(monkeypatch, capsys, "run-flow", "--flow", "shuot", "--text", "a")
    assert (status, out) == (2, "")
    assert err.startswith("error: no flow named 'shuot'; did you mean 'shout'? (flows: ")

"""The command line contract of `taskrunner validate-flow`, `taskrunner schema` and `--help`."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from taskrunner.cli import app
from taskrunner.flowfile.reader import MAX_BYTES

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "taskrunner" / "flows"
FLOWS = sorted(SHIPPED.glob("*.yaml"))
COMMITTED_SCHEMA = ROOT / "schema" / "flow.schema.json"

PROBLEM_LINE = re.compile(
    r"^(?P<file>.+):(?P<line>[1-9][0-9]*):(?P<column>[1-9][0-9]*): "
    r"(?P<code>[a-z]+\.[a-z]+(?:-[a-z]+)*) (?P<message>\S.*)$"
)
JSON_KEYS = {"file", "line", "column", "code", "path", "message", "hint", "severity"}

BROKEN = """\
name: broken
input:
  text: {type: string}
start: echo
states:
  echo:
    type: task
    tool: echo
    args:
      text: $input.text
    next: ad
  add:
    type: task
    tool: add
    args:
      a: $states.echo.text
      b: 1
    next: done
  done:
    type: succeed
    output:
      sum: $states.add.sum
"""

BROKEN_OUTPUT = [
    "broken.yaml:11:11: flow.unknown-state transition to `ad`, which is not a state "
    "(hint: did you mean `add`?)",
    "broken.yaml:16:10: type.mismatch `add.a` takes number, but `$states.echo.text` is string",
]

runner = CliRunner()


MAIN = "from taskrunner.cli import main; main()"


def validate(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["validate-flow", *args])
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    return result.exit_code, result.stdout, result.stderr


def run_main(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """The console script's entry point, in a fresh interpreter without test plugins."""
    env = {key: value for key, value in os.environ.items() if key != "TASKRUNNER_DEBUG"}
    env.pop("PYTHONPATH", None)
    return subprocess.run(
        [sys.executable, "-c", "from taskrunner.cli import main; main()", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def problem_lines(stdout: str) -> list[re.Match[str]]:
    lines = stdout.splitlines()
    matches = [PROBLEM_LINE.match(line) for line in lines]
    assert all(matches), [line for line, match in zip(lines, matches, strict=True) if not match]
    return [match for match in matches if match]


def codes(stdout: str) -> list[str]:
    return [match["code"] for match in problem_lines(stdout)]


@pytest.fixture
def broken(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "broken.yaml"
    path.write_text(BROKEN)
    return path


def alias_bomb() -> str:
    lines = ["l0: &l0 [" + ", ".join(["lol"] * 9) + "]"]
    for level in range(1, 10):
        lines.append(f"l{level}: &l{level} [" + ", ".join([f"*l{level - 1}"] * 9) + "]")
    return "\n".join(lines) + "\n"


# --- valid flows ---------------------------------------------------------------------------


def test_the_reference_flow_is_valid() -> None:
    status, stdout, stderr = validate(str(SHIPPED / "echo_add.yaml"))
    assert status == 0
    assert stdout == ""
    assert "all valid" in stderr


@pytest.mark.parametrize("path", FLOWS, ids=[path.name for path in FLOWS])
def test_every_shipped_flow_is_valid(path: Path) -> None:
    assert validate(str(path))[0] == 0


def test_all_shipped_flows_at_once() -> None:
    assert len(FLOWS) >= 3
    status, stdout, stderr = validate(*(str(path) for path in FLOWS))
    assert status == 0
    assert stdout == ""
    assert f"{len(FLOWS)} file(s) checked: all valid" in stderr


def test_json_output_of_a_valid_flow_is_an_empty_list() -> None:
    status, stdout, _ = validate("--json", str(SHIPPED / "echo_add.yaml"))
    assert status == 0
    assert json.loads(stdout) == []


# --- invalid flows -------------------------------------------------------------------------


@pytest.mark.usefixtures("broken")
def test_the_documented_broken_flow_prints_exactly_the_documented_lines() -> None:
    status, stdout, stderr = validate("broken.yaml")
    assert status == 1
    assert stdout.splitlines() == BROKEN_OUTPUT
    for match in problem_lines(stdout):
        assert match["file"] == "broken.yaml"
    assert "1 file(s) checked: 2 problem(s) in 1 file(s)" in stderr


@pytest.mark.usefixtures("broken")
def test_json_output_is_a_list_of_problem_objects() -> None:
    status, stdout, _ = validate("--json", "broken.yaml")
    assert status == 1
    problems = json.loads(stdout)
    assert isinstance(problems, list)
    assert len(problems) == 2
    for item in problems:
        assert isinstance(item, dict)
        assert set(item) == JSON_KEYS
        assert item["file"] == "broken.yaml"
        assert isinstance(item["line"], int)
        assert isinstance(item["column"], int)
        assert isinstance(item["code"], str)
        assert isinstance(item["path"], str)
        assert item["path"] == "" or item["path"].startswith("/")
        assert isinstance(item["message"], str)
        assert item["hint"] is None or isinstance(item["hint"], str)
    first, second = problems
    assert (first["line"], first["column"], first["code"]) == (11, 11, "flow.unknown-state")
    assert first["path"] == "/states/echo/next"
    assert first["hint"] == "did you mean `add`?"
    assert (second["line"], second["column"], second["code"]) == (16, 10, "type.mismatch")
    assert second["hint"] is None


def test_json_output_of_a_read_error(tmp_path: Path) -> None:
    path = tmp_path / "dup.yaml"
    path.write_text("name: a\nname: b\n")
    status, stdout, _ = validate("--json", str(path))
    assert status == 1
    [problem] = json.loads(stdout)
    assert set(problem) == JSON_KEYS
    assert problem["code"] == "yaml.duplicate-key"
    assert (problem["line"], problem["column"]) == (2, 1)
    assert problem["file"] == str(path)


@pytest.mark.usefixtures("broken")
def test_valid_and_invalid_files_together_exit_1() -> None:
    status, stdout, stderr = validate(str(SHIPPED / "echo_add.yaml"), "broken.yaml")
    assert status == 1
    assert stdout.splitlines() == BROKEN_OUTPUT
    assert "2 file(s) checked: 2 problem(s) in 1 file(s)" in stderr


@pytest.mark.usefixtures("broken")
def test_a_missing_file_and_an_invalid_one_exit_2_and_still_report_problems() -> None:
    status, stdout, stderr = validate("does-not-exist.yaml", "broken.yaml")
    assert status == 2
    assert stdout.splitlines() == BROKEN_OUTPUT
    assert "does-not-exist.yaml" in stderr


@pytest.mark.usefixtures("broken")
def test_an_invalid_file_then_a_missing_one_exit_2() -> None:
    status, stdout, _ = validate("broken.yaml", "does-not-exist.yaml")
    assert status == 2
    assert stdout.splitlines() == BROKEN_OUTPUT


def test_a_valid_file_and_a_missing_one_exit_2() -> None:
    status, stdout, stderr = validate(str(SHIPPED / "echo_add.yaml"), "nope.yaml")
    assert status == 2
    assert stdout == ""
    assert "nope.yaml" in stderr


@pytest.mark.usefixtures("broken")
def test_json_with_a_missing_file_still_lists_the_problems() -> None:
    status, stdout, stderr = validate("--json", "missing.yaml", "broken.yaml")
    assert status == 2
    assert [item["code"] for item in json.loads(stdout)] == [
        "flow.unknown-state",
        "type.mismatch",
    ]
    assert "missing.yaml" in stderr


# --- paths that are not readable regular files ---------------------------------------------


def test_a_missing_path_exits_2(tmp_path: Path) -> None:
    status, stdout, stderr = validate(str(tmp_path / "missing.yaml"))
    assert status == 2
    assert stdout == ""
    assert "missing.yaml" in stderr


def test_a_directory_exits_2(tmp_path: Path) -> None:
    status, _, stderr = validate(str(tmp_path))
    assert status == 2
    assert "directory" in stderr


@pytest.mark.skipif(not Path("/dev/null").exists(), reason="no /dev/null")
def test_a_character_device_exits_2() -> None:
    status, _, stderr = validate("/dev/null")
    assert status == 2
    assert "not a regular file" in stderr


def test_a_fifo_exits_2_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.yaml"
    os.mkfifo(fifo)
    result = run_main("validate-flow", str(fifo), timeout=20)
    assert result.returncode == 2
    assert "not a regular file" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_symlink_to_a_valid_file_is_followed(tmp_path: Path) -> None:
    link = tmp_path / "link.yaml"
    link.symlink_to(SHIPPED / "echo_add.yaml")
    assert validate(str(link))[0] == 0


def test_a_dangling_symlink_exits_2(tmp_path: Path) -> None:
    link = tmp_path / "dangling.yaml"
    link.symlink_to(tmp_path / "nowhere.yaml")
    status, _, stderr = validate(str(link))
    assert status == 2
    assert "dangling.yaml" in stderr


def test_an_unreadable_file_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "secret.yaml"
    path.write_text("name: x\n")
    path.chmod(0)
    # Root reads any file; without the capabilities that let it, it reads like anyone.
    drop = ["setpriv", "--bounding-set=-dac_override,-dac_read_search"]
    prefix = drop if os.geteuid() == 0 else []
    result = subprocess.run(
        [*prefix, sys.executable, "-c", MAIN, "validate-flow", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 2, result.stderr
    assert "secret.yaml: Permission denied" in result.stderr
    assert "Traceback" not in result.stderr


# --- hostile contents ----------------------------------------------------------------------


def hostile_files() -> dict[str, tuple[bytes, str | None]]:
    """Name: (contents, the one code expected, or None when any yaml.* code will do)."""
    return {
        "too-large": (b"name: x\n#" + b"x" * MAX_BYTES, "yaml.too-large"),
        "binary": (bytes(range(255, -1, -1)) * 16, "yaml.encoding"),
        "alias-bomb": (alias_bomb().encode(), "yaml.alias"),
        "deep-brackets": (b"[" * 10_000, None),
        "empty": (b"", "yaml.empty"),
        "nul-bytes": (b"name: x\x00y\nstart: a\n", "yaml.syntax"),
        "only-nul": (b"\x00" * 64, "yaml.syntax"),
        "huge-decimal": (b"name: " + b"9" * 5000 + b"\n", "yaml.syntax"),
        "huge-float": (b"name: 1e999\n", "yaml.syntax"),
        "huge-hex-name": (b"name: 0x" + b"f" * 5000 + b"\n", "yaml.syntax"),
        "python-tag": (b"name: !!python/object/apply:os.system ['echo hi']\n", "yaml.tag"),
        "list-root": (b"- 1\n- 2\n", "yaml.not-mapping"),
    }


HOSTILE = hostile_files()


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_contents_are_one_located_problem_each(tmp_path: Path, name: str) -> None:
    contents, expected = HOSTILE[name]
    path = tmp_path / f"{name}.yaml"
    path.write_bytes(contents)
    status, stdout, _ = validate(str(path))
    assert status == 1
    found = codes(stdout)
    assert found
    if expected is None:
        assert all(code.startswith("yaml.") for code in found), found
    else:
        assert expected in found


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_contents_never_show_a_traceback(tmp_path: Path, name: str) -> None:
    contents, _ = HOSTILE[name]
    path = tmp_path / f"{name}.yaml"
    path.write_bytes(contents)
    result = run_main("validate-flow", str(path))
    assert "Traceback" not in result.stderr
    assert "internal error" not in result.stderr, result.stderr
    assert result.returncode == 1, result.stderr


def test_an_oversized_file_is_located_at_its_start(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    path.write_bytes(b"name: x\n#" + b"x" * MAX_BYTES)
    status, stdout, _ = validate("--json", str(path))
    assert status == 1
    [problem] = json.loads(stdout)
    assert problem["code"] == "yaml.too-large"
    assert (problem["line"], problem["column"]) == (1, 1)


def test_invalid_utf8_is_located(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes("name: café\n".encode("latin-1"))
    status, stdout, _ = validate(str(path))
    assert status == 1
    [match] = problem_lines(stdout)
    assert (match["line"], match["column"], match["code"]) == ("1", "10", "yaml.encoding")


# --- schema and help -----------------------------------------------------------------------


def test_schema_prints_the_committed_schema_byte_for_byte() -> None:
    result = run_main("schema")
    assert result.returncode == 0, result.stderr
    assert result.stdout.encode("utf-8") == COMMITTED_SCHEMA.read_bytes()


def test_schema_output_is_draft_2020_12_json() -> None:
    result = run_main("schema")
    schema = json.loads(result.stdout)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["title"] == "taskrunner flow"


def test_schema_through_the_cli_runner_is_valid_json() -> None:
    result = runner.invoke(app, ["schema"])
    assert result.exit_code == 0
    assert json.loads(result.stdout)["$schema"] == "https://json-schema.org/draft/2020-12/schema"


def test_help_lists_the_commands() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    assert "validate-flow" in result.stdout
    assert "schema" in result.stdout


def test_help_through_the_entry_point() -> None:
    result = run_main("--help")
    assert result.returncode == 0
    assert "validate-flow" in result.stdout
    assert "Traceback" not in result.stderr


def test_validate_flow_without_files_is_a_usage_error() -> None:
    result = run_main("validate-flow")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr


# --- warnings ------------------------------------------------------------------------------

WARNED = ROOT / "tests" / "flows" / "warnings" / "catch-kind-misspelt.yaml"


def test_a_flow_with_only_warnings_is_valid_and_its_warnings_are_printed() -> None:
    status, stdout, stderr = validate(str(WARNED))
    assert status == 0
    [line] = stdout.splitlines()
    assert line.startswith(f"{WARNED}:12:18: warning error.unknown-kind ")
    assert "(hint: did you mean `DivisionByZero`?)" in line
    assert "1 file(s) checked: all valid; 1 warning(s)" in stderr


def test_json_output_says_the_severity_of_each_problem() -> None:
    status, stdout, _ = validate("--json", str(WARNED))
    assert status == 0
    [item] = json.loads(stdout)
    assert set(item) == JSON_KEYS
    assert (item["code"], item["severity"]) == ("error.unknown-kind", "warning")


@pytest.mark.usefixtures("broken")
def test_errors_keep_their_form_and_a_warning_does_not_make_a_file_invalid() -> None:
    status, stdout, stderr = validate("--json", "broken.yaml", str(WARNED))
    assert status == 1
    severities = {(item["file"], item["severity"]) for item in json.loads(stdout)}
    assert severities == {("broken.yaml", "error"), (str(WARNED), "warning")}
    status, _, stderr = validate("broken.yaml", str(WARNED))
    assert "2 file(s) checked: 2 problem(s) in 1 file(s); 1 warning(s)" in stderr

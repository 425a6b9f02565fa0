"""Other packages add tools through the `taskrunner.tools` entry points, with no change to
taskrunner. `tests/plugins/` holds such a package, with its installed metadata
(`*.dist-info/entry_points.txt`); putting the directory on the path installs it, as far as
`importlib.metadata` is concerned."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from taskrunner.engine.runner import InMemoryRunner
from taskrunner.engine.schema import flow_json_schema
from taskrunner.engine.validate import FlowChecker
from taskrunner.errors import ToolRegistryError
from taskrunner.flowfile import check_source
from taskrunner.tools import load_registry

PLUGINS = Path(__file__).resolve().parent.parent / "plugins"

SHOUT_FLOW = b"""
name: shout
input:
  text: {type: string}
start: shout
states:
  shout:
    type: task
    tool: test.shout
    args: {text: $input.text, times: 2}
    next: done
  done:
    type: succeed
    output: {text: $states.shout.text}
"""


@pytest.fixture
def plugin_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(PLUGINS))


@pytest.mark.usefixtures("plugin_path")
def test_a_tool_from_another_package_is_registered() -> None:
    registry = load_registry()
    assert registry.names() == [
        "add",
        "divide",
        "echo",
        "greet",
        "join",
        "repeat",
        "sum",
        "test.cstring",
        "test.jitter",
        "test.nap",
        "test.nest",
        "test.shout",
    ]
    assert registry.get("test.shout").invoke({"text": "hi"}) == {"text": "HI!"}


@pytest.mark.usefixtures("plugin_path")
def test_the_plugin_tool_is_in_the_schema_and_runs_in_a_flow() -> None:
    registry = load_registry()
    schema = flow_json_schema(registry)
    assert "TestShoutTask" in schema["$defs"]
    report = check_source(SHOUT_FLOW, "shout.yaml", FlowChecker(registry))
    assert report.problems == []
    assert report.flow is not None
    result = InMemoryRunner(registry).run(report.flow, {"text": "hey"})
    assert result.output == {"text": "HEY!!"}


@pytest.mark.usefixtures("plugin_path")
def test_the_plugin_tools_arguments_are_type_checked() -> None:
    flow = SHOUT_FLOW.replace(b"times: 2", b'times: "2"')
    report = check_source(flow, "shout.yaml", FlowChecker(load_registry()))
    assert [(p.code, p.line, p.path) for p in report.problems] == [
        ("schema.type", 10, "/states/shout/args/times")
    ]


@pytest.mark.usefixtures("plugin_path")
def test_a_catch_of_the_plugin_tools_declared_kind_is_checked_against_it() -> None:
    caught = SHOUT_FLOW.replace(
        b"    next: done\n  done:",
        b"    catch: [{errors: [NegativeTimes, NegativeTime], next: failed}]\n"
        b"    next: done\n  failed: {type: fail, error: Refused}\n  done:",
    )
    report = check_source(caught, "shout.yaml", FlowChecker(load_registry()))
    assert report.flow is not None
    assert [(p.code, p.severity, p.path, p.hint) for p in report.problems] == [
        (
            "error.unknown-kind",
            "warning",
            "/states/shout/catch/0/errors/1",
            "did you mean `NegativeTimes`?",
        )
    ]


def test_without_the_plugin_the_tool_is_unknown() -> None:
    report = check_source(SHOUT_FLOW, "shout.yaml", FlowChecker(load_registry()))
    assert [(p.code, p.line) for p in report.problems] == [("tool.unknown", 9)]


def test_the_cli_sees_plugin_tools(tmp_path: Path) -> None:
    flow = tmp_path / "shout.yaml"
    flow.write_bytes(SHOUT_FLOW)
    env = {"PYTHONPATH": str(PLUGINS), "PATH": "/usr/bin:/bin"}
    command = [sys.executable, "-c", "from taskrunner.cli import main; main()"]
    checked = subprocess.run(
        [*command, "validate-flow", str(flow)], capture_output=True, text=True, env=env
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    printed = subprocess.run([*command, "schema"], capture_output=True, text=True, env=env)
    assert "TestShoutTask" in json.loads(printed.stdout)["$defs"]


def _write_plugin(root: Path, name: str, entry_points: str, module: str) -> None:
    (root / f"{name}.py").write_text(textwrap.dedent(module))
    info = root / f"{name}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(textwrap.dedent(entry_points))


@pytest.mark.parametrize(
    ("entry_points", "module", "message"),
    [
        (
            "[taskrunner.tools]\nbroken = broken_plugin:missing\n",
            "",
            "entry point 'broken' (broken_plugin:missing, from broken_plugin) failed to load",
        ),
        (
            "[taskrunner.tools]\nbroken = broken_plugin_two:thing\n",
            "thing = 42\n",
            "is a int, not a taskrunner Tool",
        ),
        (
            "[taskrunner.tools]\nbroken = broken_plugin_three:echo\n",
            "from taskrunner.tools.builtin import add as echo\n",
            "provides the tool 'add': names must match",
        ),
    ],
    ids=["import-fails", "not-a-tool", "name-mismatch"],
)
def test_a_broken_plugin_is_named_in_a_clear_error(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    entry_points: str,
    module: str,
    message: str,
) -> None:
    # Each case has its own module name: a module once imported stays in sys.modules.
    module_name = entry_points.split("= ")[1].split(":", maxsplit=1)[0]
    _write_plugin(tmp_path, module_name, entry_points, module)
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ToolRegistryError, match="broken") as caught:
        load_registry()
    assert message in caught.value.message

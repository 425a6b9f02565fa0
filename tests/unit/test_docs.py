"""The documentation is true: its flows are the shipped files, its invalid example prints
what it says, its code table is the code catalogue, and its plugin example is the test
plugin's own code."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from taskrunner.engine.diagnostics import CODES
from taskrunner.engine.validate import FlowChecker
from taskrunner.flowfile import check_source
from taskrunner.linking import Source, link

ROOT = Path(__file__).resolve().parents[2]
GUIDE = (ROOT / "docs" / "flow-language.md").read_text()
BLOCK = re.compile(r"```(\w+)\n(.*?)```", re.DOTALL)


def _blocks(language: str) -> list[str]:
    return [body for lang, body in BLOCK.findall(GUIDE) if lang == language]


@pytest.mark.parametrize(
    "path", sorted((ROOT / "taskrunner" / "flows").glob("*.yaml")), ids=lambda p: p.name
)
def test_every_shipped_flow_is_quoted_whole_in_the_guide(path: Path) -> None:
    assert path.read_text() in _blocks("yaml")


def test_every_yaml_example_is_valid_yaml_and_every_whole_flow_validates(
    checker: FlowChecker,
) -> None:
    """Whole flows are checked together, as a flows directory is: one may call another."""
    invalid = set(re.findall(r"<!-- invalid: (\S+) -->", GUIDE))
    sources = []
    for body in _blocks("yaml"):
        document = yaml.safe_load(body)
        assert isinstance(document, dict)
        if {"name", "start", "states"} <= document.keys() and document["name"] not in {
            name.removesuffix(".yaml") for name in invalid
        }:
            sources.append(Source(f"{document['name']}.yaml", body.encode()))
    for linked in link(sources, checker).linked:
        assert linked.report.problems == [], linked.source.raw.decode()
        assert linked.flow is not None
    assert len(sources) >= 3
    assert any(b"type: flow" in source.raw for source in sources)


def test_the_invalid_example_prints_exactly_what_the_guide_says(checker: FlowChecker) -> None:
    match = re.search(
        r"<!-- invalid: (\S+) -->\n```yaml\n(.*?)```.*?```text\n(.*?)```", GUIDE, re.DOTALL
    )
    assert match is not None
    name, body, expected = match.groups()
    report = check_source(body.encode(), name, checker)
    assert "\n".join(str(problem) for problem in report.problems) + "\n" == expected


def test_the_code_table_is_the_code_catalogue() -> None:
    rows = dict(re.findall(r"^\| `([a-z]+\.[a-z-]+)` \| (.+) \|$", GUIDE, re.MULTILINE))
    assert rows == CODES


def test_the_plugin_example_is_the_test_plugins_code() -> None:
    [example] = _blocks("python")
    plugin = (ROOT / "tests" / "plugins" / "taskrunner_testtools" / "__init__.py").read_text()
    assert example in plugin
    [toml] = _blocks("toml")
    entry = (
        ROOT / "tests" / "plugins" / "taskrunner_testtools-0.1.0.dist-info" / "entry_points.txt"
    ).read_text()
    assert toml.splitlines()[1].replace('"', "") in entry


def test_the_readme_shows_the_guides_diagnostics() -> None:
    readme = (ROOT / "README.md").read_text()
    shown = [line for line in readme.splitlines() if line.startswith("broken.yaml:")]
    assert len(shown) == 2
    assert all(line in GUIDE for line in shown)


def test_the_module_map_names_every_module_and_only_those() -> None:
    text = (ROOT / "docs" / "architecture.md").read_text()
    named = set(re.findall(r"`(taskrunner/[\w/.]+)`", text))
    missing = sorted(path for path in named if not (ROOT / path).exists())
    assert missing == []
    package = ROOT / "taskrunner"
    unmapped = sorted(
        str(path.relative_to(ROOT))
        for path in package.rglob("*.py")
        if path.name != "__init__.py" or path.stat().st_size > 400
        if not any(
            str(path.relative_to(ROOT)) == entry
            or (entry.endswith("/") and str(path.relative_to(ROOT)).startswith(entry))
            for entry in named
        )
    )
    assert unmapped == []

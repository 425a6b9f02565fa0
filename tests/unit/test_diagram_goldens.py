"""Golden diagrams: every shipped flow, `taskrunner/flows/NAME.yaml`, drawn in Mermaid and
in DOT must equal `tests/golden/diagrams/NAME.mmd` and `NAME.dot`, byte for byte; and the
paths of a few runs, drawn on their flow, must equal `FLOW.CASE.mmd` and `FLOW.CASE.dot`.
Every DOT file is rendered by Graphviz itself (`dot -Tsvg`), which fails on invalid DOT.

After a deliberate change of the drawings, `TASKRUNNER_UPDATE_GOLDEN=1 uv run pytest
tests/unit/test_diagram_goldens.py` writes the files again; review them with `git diff`."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from taskrunner.diagrams import DIAGRAM_FORMATS, DiagramFormat, draw, path_of
from taskrunner.engine.flow import Flow
from taskrunner.engine.runner import InMemoryRunner
from taskrunner.engine.validate import FlowChecker
from taskrunner.linking import Source, link
from taskrunner.tools import load_registry

ROOT = Path(__file__).resolve().parents[2]
DIAGRAMS = ROOT / "tests" / "golden" / "diagrams"
FLOW_FILES = sorted((ROOT / "taskrunner" / "flows").glob("*.yaml"))
SUFFIXES: dict[DiagramFormat, str] = {"mermaid": ".mmd", "dot": ".dot"}
UPDATE = os.environ.get("TASKRUNNER_UPDATE_GOLDEN") == "1"
RUNS: dict[str, tuple[str, dict[str, Any]]] = {
    "classify_sum.big": ("classify_sum", {"a": 50, "b": 60}),
    "classify_sum.negative": ("classify_sum", {"a": -5, "b": 1}),
    "safe_divide.by_zero": ("safe_divide", {"dividend": 1, "divisor": 0}),
    "count_to.three": ("count_to", {"n": 3}),
}
"""The runs whose paths are golden: a choice rule taken, a task that ends in a fail state,
retries then a catch, and a loop."""


def _flows() -> dict[str, Flow]:
    """The shipped flows as the flows directory loads them (`greet_and_sum` pinned to the
    version of `echo_add` it calls)."""
    checker = FlowChecker(load_registry())
    linkage = link([Source(path.name, path.read_bytes()) for path in FLOW_FILES], checker)
    flows = {}
    for linked in linkage.linked:
        assert linked.flow is not None, linked.source.file
        flows[linked.flow.name] = linked.flow
    return flows


FLOWS = _flows()


def _drawn(name: str, format: DiagramFormat) -> str:
    if name in FLOWS:
        return draw(FLOWS[name], format)
    flow_name, data = RUNS[name]
    runner = InMemoryRunner(load_registry(), sleep=lambda seconds: None)
    flow = FLOWS[flow_name]
    result = runner.run(flow, data)
    plan = runner.plan(flow)
    path = path_of(plan, plan.validate_input(data), result.steps, result.status, result.state)
    return draw(flow, format, path)


GOLDEN_NAMES = [*sorted(FLOWS), *RUNS]


def test_every_shipped_flow_has_golden_diagrams_and_no_golden_is_stale() -> None:
    assert len(FLOWS) == len(FLOW_FILES) >= 10
    expected = {name + SUFFIXES[format] for name in GOLDEN_NAMES for format in DIAGRAM_FORMATS}
    found = {path.name for path in DIAGRAMS.iterdir()}
    assert found == expected


@pytest.mark.parametrize("format", DIAGRAM_FORMATS)
@pytest.mark.parametrize("name", GOLDEN_NAMES)
def test_the_diagram_equals_its_golden_file(name: str, format: DiagramFormat) -> None:
    golden = DIAGRAMS / (name + SUFFIXES[format])
    drawn = _drawn(name, format)
    if UPDATE:
        golden.write_text(drawn, encoding="utf-8")
    assert drawn == golden.read_text(encoding="utf-8")


@pytest.mark.parametrize("name", GOLDEN_NAMES)
def test_graphviz_renders_the_golden_dot_file(name: str) -> None:
    dot = shutil.which("dot")
    assert dot is not None, "Graphviz is not installed: apt-get install graphviz"
    rendered = subprocess.run(
        [dot, "-Tsvg", str(DIAGRAMS / f"{name}.dot")], capture_output=True, check=False
    )
    assert rendered.returncode == 0, rendered.stderr.decode()
    assert rendered.stderr == b""
    assert b"<svg" in rendered.stdout

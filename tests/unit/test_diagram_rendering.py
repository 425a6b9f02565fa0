"""The diagram renderer (`taskrunner.diagrams`): a shape per state kind, readable labels
(conditions, `default`, retries, catches), names and literals that would break the
syntax kept inside their labels, and a task's path drawn and said in words."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from html import unescape
from typing import Any

import pytest

from taskrunner.diagrams import DIAGRAM_FORMATS, DiagramFormat, draw, path_of
from taskrunner.diagrams.mermaid import text as mermaid_text
from taskrunner.engine.flow import Flow, builtin_language
from taskrunner.engine.runner import InMemoryRunner
from taskrunner.engine.states import ChoiceState, FailState
from taskrunner.engine.steps import Step
from taskrunner.tools import load_registry

HOSTILE = 'a "quote" <b>|pipe|</b> #hash [x] {y} (z) `tick` ; & \\ end ünï ✓ 漢字'

EVERY_KIND: dict[str, Any] = {
    "name": "every_kind",
    "start": "work",
    "states": {
        "work": {
            "type": "task",
            "tool": "add",
            "args": {"a": 1, "b": 2},
            "retry": {"max_attempts": 3, "errors": ["Timeout"]},
            "catch": [{"errors": ["*"], "next": "broken"}],
            "next": "decide",
        },
        "decide": {
            "type": "choice",
            "rules": [
                {"when": {"value": "$states.work.sum", "lt": 0}, "next": "broken"},
                {
                    "when": {
                        "any": [
                            {"value": "$states.work.sum", "eq": 3},
                            {"not": {"value": "$input.tag", "eq": "x"}},
                        ]
                    },
                    "next": "shape",
                },
            ],
            "default": "nap",
        },
        "shape": {"type": "pass", "value": {"s": "$states.work.sum"}, "next": "nap"},
        "nap": {"type": "wait", "seconds": 5, "next": "both"},
        "both": {
            "type": "parallel",
            "branches": {
                "left": {"start": "l", "states": {"l": {"type": "succeed"}}},
                "right": {"start": "r", "states": {"r": {"type": "succeed"}}},
            },
            "next": "each",
        },
        "each": {
            "type": "map",
            "items": "$input.list",
            "each": {"start": "one", "states": {"one": {"type": "succeed"}}},
            "next": "call",
        },
        "call": {"type": "flow", "flow": "echo_add", "next": "done"},
        "done": {"type": "succeed"},
        "broken": {"type": "fail", "error": "Broken", "message": "it broke"},
    },
}


def _every_kind() -> Flow:
    return builtin_language().parse(EVERY_KIND)


def _line_of(diagram: str, name: str) -> str:
    """The line that declares the box of state `name` (its label starts with the name)."""
    [line] = [line for line in diagram.splitlines() if re.search(rf'"{name}( ·|<br/>|\\n)', line)]
    return line.strip()


@pytest.mark.parametrize(
    ("name", "opening", "closing", "kind"),
    [
        ("work", "[", "]", "task: add"),
        ("decide", "{", "}", "choice"),
        ("shape", "[/", "/]", "pass"),
        ("nap", "{{", "}}", "wait 5 s"),
        ("both", "[/", "\\]", "parallel: 2 branches"),
        ("each", "[\\", "/]", "map over $input.list"),
        ("call", "[[", "]]", "flow: echo_add"),
        ("done", "([", "])", "succeed"),
        ("broken", "(((", ")))", "fail: Broken"),
    ],
)
def test_each_kind_has_its_own_mermaid_shape_and_says_its_kind_in_words(
    name: str, opening: str, closing: str, kind: str
) -> None:
    line = _line_of(draw(_every_kind()), name)
    assert re.fullmatch(
        rf's_\d+{re.escape(opening)}"{name}<br/>{re.escape(kind)}"'
        rf"{re.escape(closing)}",
        line,
    ), line


@pytest.mark.parametrize(
    ("name", "shape"),
    [
        ("work", 'shape="box"'),
        ("decide", 'shape="diamond"'),
        ("shape", 'shape="parallelogram"'),
        ("nap", 'shape="hexagon"'),
        ("both", 'shape="trapezium"'),
        ("each", 'shape="invtrapezium"'),
        ("call", 'peripheries="2"'),
        ("done", 'style="rounded"'),
        ("broken", 'shape="doubleoctagon"'),
    ],
)
def test_each_kind_has_its_own_dot_shape(name: str, shape: str) -> None:
    assert shape in _line_of(draw(_every_kind(), "dot"), name)


def test_a_fail_state_is_red_and_says_fail_in_words() -> None:
    mermaid = draw(_every_kind())
    broken = _line_of(mermaid, "broken").split("(")[0]
    assert f"class {broken} failState" in mermaid
    assert "classDef failState fill:#ffebe9" in mermaid
    assert 'fillcolor="#ffebe9"' in _line_of(draw(_every_kind(), "dot"), "broken")


def test_choice_edges_carry_their_conditions_and_the_default_is_labelled() -> None:
    mermaid = draw(_every_kind())
    assert '|"$states.work.sum #60; 0"|' in mermaid
    assert '|"any($states.work.sum == 3, not($input.tag == #34;x#34;))"|' in mermaid
    assert '|"default"|' in mermaid
    dot = draw(_every_kind(), "dot")
    assert 'label="any($states.work.sum == 3, not($input.tag == \\"x\\"))"' in dot


def test_a_retry_is_a_dashed_self_loop_and_a_catch_a_dashed_labelled_edge() -> None:
    mermaid = draw(_every_kind())
    work = _line_of(mermaid, "work").split("[")[0]
    broken = _line_of(mermaid, "broken").split("(")[0]
    assert f'{work} -.->|"retry up to 3 attempts on Timeout"| {work}' in mermaid
    assert f'{work} -.->|"catch any error"| {broken}' in mermaid
    dot = draw(_every_kind(), "dot")
    assert f'{work} -> {broken} [label="catch any error", style="dashed"];' in dot


def test_fan_outs_are_subgraphs_and_clusters_with_a_start_marker_on_top() -> None:
    mermaid = draw(_every_kind())
    assert mermaid.startswith('flowchart TD\n  s_start(("start"))\n')
    for title in ("branch left", "branch right", "each item of each"):
        assert f'["{title}"]' in mermaid
    assert mermaid.count("subgraph ") == mermaid.count("\n  end\n") == 3
    dot = draw(_every_kind(), "dot")
    assert dot.count("subgraph cluster_") == 3
    assert 'label="branch left";' in dot


def _hostile_flow() -> Flow:
    """A flow whose names and literals are full of syntax: names cannot be so in a flow
    file, but the renderer does not rely on it."""
    language = builtin_language()
    states = {
        HOSTILE: ChoiceState.model_validate(
            {
                "type": "choice",
                "rules": [{"when": {"value": "$input.t", "eq": HOSTILE}, "next": "end"}],
                "default": "end",
            }
        ),
        "end": FailState.model_validate(
            {"type": "fail", "error": "{$input.t} " + HOSTILE, "message": "m"}
        ),
    }
    return language.flow_model.model_construct(name="hostile", start=HOSTILE, states=states)


def test_hostile_names_and_literals_stay_inside_mermaid_labels() -> None:
    mermaid = draw(_hostile_flow())
    for line in mermaid.splitlines()[1:]:
        assert line.count('"') % 2 == 0  # quotes only delimit labels
        for label in re.findall(r'"([^"]*)"', line):
            bare = re.sub(r"#\d+;", "", label.replace("<br/>", ""))
            assert not set(bare) & set("#<>|&`;\\"), label
    decoded = re.sub(r"#(\d+);", lambda match: chr(int(match.group(1))), mermaid)
    assert f'"{HOSTILE}<br/>choice"' in decoded
    assert f'|"$input.t == {json.dumps(HOSTILE, ensure_ascii=False)[:30]}' in decoded
    assert mermaid_text('a"b') == "a#34;b"


def test_hostile_names_and_literals_render_with_graphviz_as_written() -> None:
    dot_program = shutil.which("dot")
    assert dot_program is not None, "Graphviz is not installed: apt-get install graphviz"
    rendered = subprocess.run(
        [dot_program, "-Tsvg"],
        input=draw(_hostile_flow(), "dot").encode(),
        capture_output=True,
        check=False,
    )
    assert rendered.returncode == 0, rendered.stderr.decode()
    svg_text = unescape(rendered.stdout.decode())
    assert HOSTILE in svg_text


@pytest.mark.parametrize("format", DIAGRAM_FORMATS)
def test_the_same_flow_gives_the_same_bytes(format: DiagramFormat) -> None:
    assert draw(_every_kind(), format) == draw(_every_kind(), format)


CLASSIFY_SUM: dict[str, Any] = {
    "name": "classify",
    "input": {"a": {"type": "integer"}},
    "start": "add",
    "states": {
        "add": {"type": "task", "tool": "add", "args": {"a": "$input.a", "b": 1}, "next": "size"},
        "size": {
            "type": "choice",
            "rules": [{"when": {"value": "$states.add.sum", "lt": 0}, "next": "negative"}],
            "default": "report",
        },
        "negative": {"type": "fail", "error": "NegativeSum", "message": "below zero"},
        "report": {"type": "succeed", "output": {"sum": "$states.add.sum"}},
    },
}


def _run_path(a: int) -> tuple[Flow, Any]:
    flow = builtin_language().parse(CLASSIFY_SUM)
    runner = InMemoryRunner(load_registry())
    result = runner.run(flow, {"a": a})
    plan = runner.plan(flow)
    return flow, path_of(plan, {"a": a}, result.steps, result.status, result.state)


def test_a_path_is_found_by_replay_through_the_choice_it_passed() -> None:
    _, path = _run_path(2)
    assert list(path.visits) == ["add", "size", "report"]
    assert {name: visit.words() for name, visit in path.visits.items()} == {
        "add": "1 step · succeeded",
        "size": "passed through",
        "report": "succeeded",
    }
    assert path.moves == {("add", "size"), ("size", "report")}
    assert path.failed_state is None


def test_the_path_is_highlighted_and_said_in_words_in_mermaid() -> None:
    flow, path = _run_path(2)
    mermaid = draw(flow, "mermaid", path)
    assert '"add · 1 step · succeeded<br/>task: add"' in mermaid
    assert '"size · passed through<br/>choice"' in mermaid
    assert '"negative<br/>fail: NegativeSum"' in mermaid  # not visited: no words
    ids = {
        name: _line_of(mermaid, name).split('"')[0].rstrip("[{(") for name in CLASSIFY_SUM["states"]
    }
    assert f"class {ids['add']},{ids['size']},{ids['report']} taken" in mermaid
    arrows = [line.strip() for line in mermaid.splitlines() if "-->" in line or "-.->" in line]
    # Every arrow but the one to `negative`: start, add -> size, size -> report (default).
    taken = [index for index, arrow in enumerate(arrows) if not arrow.endswith(ids["negative"])]
    assert len(taken) == 3
    assert f"linkStyle {','.join(map(str, taken))} stroke:#0969da" in mermaid
    assert "failedHere" not in mermaid


def test_the_state_a_task_failed_in_is_marked_failed_in_both_formats() -> None:
    flow, path = _run_path(-5)
    assert path.failed_state == "negative"
    mermaid = draw(flow, "mermaid", path)
    negative = _line_of(mermaid, "negative")
    assert '"negative · failed<br/>fail: NegativeSum"' in negative
    assert f"class {negative.split('(')[0]} failedHere" in mermaid
    dot = draw(flow, "dot", path)
    assert 'label="negative · failed\\nfail: NegativeSum"' in dot
    assert 'penwidth="4"' in _line_of(dot, "negative")
    assert 'label="report\\nsucceed"' in dot  # not taken: no words, no highlight


def test_a_history_the_flow_does_not_lead_to_is_followed_as_far_as_it_agrees() -> None:
    flow = builtin_language().parse(CLASSIFY_SUM)
    plan = InMemoryRunner(load_registry()).plan(flow)
    wrong = Step(1, "add", "echo", 1, {"text": "x"}, "succeeded", {"text": "x"})
    path = path_of(plan, {"a": 1}, [wrong], "failed", "add")
    assert list(path.visits) == ["add"]
    assert path.visits["add"].words() == "1 step · failed"
    assert path.failed_state == "add"


@pytest.mark.parametrize("format", DIAGRAM_FORMATS)
def test_a_stored_version_with_its_keys_sorted_gives_the_same_bytes(format: DiagramFormat) -> None:
    """A task is drawn on its stored flow version, whose states come back sorted by name."""
    flow = _every_kind()
    stored = builtin_language().parse(json.loads(flow.canonical))
    assert list(stored.states) != list(flow.states)
    assert stored.digest == flow.digest
    assert draw(stored, format) == draw(flow, format)
    assert _line_of(draw(flow, format), "work").startswith("s_0")

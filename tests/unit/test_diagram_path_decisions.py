"""A task's path is drawn from the decisions its choices recorded: a choice on the path says
its decision in words, and exactly the edges the task took are highlighted, where a rule
and the default (or a catch and `next`) lead to the same state, and across the passes of a
loop. A history from before decisions were steps still draws, each decision made again."""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import pytest

from taskrunner.diagrams import DIAGRAM_FORMATS, DiagramFormat, StateVisit, TaskPath, draw, path_of
from taskrunner.engine.flow import Flow, builtin_language
from taskrunner.engine.runner import InMemoryRunner
from taskrunner.engine.states.choice import CHOICE_TOOL
from taskrunner.engine.steps import Step
from taskrunner.tools import load_registry

SAME_TARGET: dict[str, Any] = {
    "name": "same_target",
    "input": {"a": {"type": "integer"}},
    "start": "add",
    "states": {
        "add": {"type": "task", "tool": "add", "args": {"a": "$input.a", "b": 0}, "next": "size"},
        "size": {
            "type": "choice",
            "rules": [
                {"when": {"value": "$states.add.sum", "lt": 0}, "next": "done"},
                {"when": {"value": "$states.add.sum", "gt": 10}, "next": "done"},
            ],
            "default": "done",
        },
        "done": {"type": "succeed"},
    },
}
"""Two rules and the default, all to `done`: only the one that held is taken."""

LOOP: dict[str, Any] = {
    "name": "loop",
    "input": {"n": {"type": "integer"}},
    "start": "check",
    "states": {
        "check": {
            "type": "choice",
            "rules": [{"when": {"value": "$states.count.sum", "lt": "$input.n"}, "next": "count"}],
            "default": "done",
        },
        "count": {
            "type": "task",
            "tool": "add",
            "args": {"a": "$states.count.sum", "b": 1},
            "initial": {"sum": 0},
            "next": "check",
        },
        "done": {"type": "succeed"},
    },
}

CAUGHT_OR_NOT: dict[str, Any] = {
    "name": "caught_or_not",
    "input": {"divisor": {"type": "number"}},
    "start": "divide",
    "states": {
        "divide": {
            "type": "task",
            "tool": "divide",
            "args": {"dividend": 1, "divisor": "$input.divisor"},
            "catch": [{"errors": ["DivisionByZero"], "next": "done"}],
            "next": "done",
        },
        "done": {"type": "succeed"},
    },
}
"""A catch and `next` to the same state: the failed step's move is the catch's."""


def _run(definition: dict[str, Any], data: dict[str, Any]) -> tuple[Flow, list[Step], TaskPath]:
    flow = builtin_language().parse(definition)
    runner = InMemoryRunner(load_registry())
    result = runner.run(flow, data)
    assert result.status == "succeeded"
    path = path_of(runner.plan(flow), data, result.steps, result.status, result.state)
    return flow, list(result.steps), path


def _taken_arrows(mermaid: str) -> list[str]:
    """The arrows that `linkStyle` highlights, as written."""
    arrows = [line.strip() for line in mermaid.splitlines() if "-->" in line or "-.->" in line]
    [styled] = re.findall(r"linkStyle ([\d,]+) ", mermaid)
    return [arrows[int(index)] for index in styled.split(",")]


def _taken_dot_arrows(dot: str) -> list[str]:
    return [line.strip() for line in dot.splitlines() if "->" in line and "#0969da" in line]


@pytest.mark.parametrize(
    ("a", "words", "label"),
    [
        (-5, "rule 1 matched", "$states.add.sum #60; 0"),
        (20, "rule 2 matched", "$states.add.sum #62; 10"),
        (5, "no rule matched: default", "default"),
    ],
)
def test_of_rules_and_a_default_to_the_same_state_only_the_one_taken_is_highlighted(
    a: int, words: str, label: str
) -> None:
    flow, _, path = _run(SAME_TARGET, {"a": a})
    assert path.visits["size"].words() == words
    mermaid = draw(flow, "mermaid", path)
    assert f'"size · {words}<br/>choice"' in mermaid
    to_done = [arrow for arrow in _taken_arrows(mermaid) if arrow.startswith("s_1 ")]
    assert to_done == [f's_1 -->|"{label}"| s_2']
    dot_label = label.replace("#60;", "<").replace("#62;", ">")
    to_done_dot = [
        arrow for arrow in _taken_dot_arrows(draw(flow, "dot", path)) if "s_1 ->" in arrow
    ]
    assert len(to_done_dot) == 1
    assert f'label="{dot_label}"' in to_done_dot[0]


@pytest.mark.parametrize(
    ("divisor", "taken", "not_taken"),
    [
        (0, 's_0 -.->|"catch DivisionByZero"| s_1', "s_0 --> s_1"),
        (2, "s_0 --> s_1", 's_0 -.->|"catch DivisionByZero"| s_1'),
    ],
)
def test_a_failed_step_moves_along_its_catch_and_a_succeeded_one_along_next(
    divisor: int, taken: str, not_taken: str
) -> None:
    flow, _, path = _run(CAUGHT_OR_NOT, {"divisor": divisor})
    arrows = _taken_arrows(draw(flow, "mermaid", path))
    assert taken in arrows
    assert not_taken not in arrows


def test_a_loop_highlights_every_edge_it_took_and_counts_its_decisions() -> None:
    flow, _, path = _run(LOOP, {"n": 2})
    assert path.visits["check"].words() == "3 decisions · last: default"
    assert path.visits["count"].words() == "2 steps · succeeded"
    assert path.taken == {
        ("check", ("rules", 0, "next")),
        ("count", ("next",)),
        ("check", ("default",)),
    }
    mermaid = draw(flow, "mermaid", path)
    assert '"check · 3 decisions · last: default<br/>choice"' in mermaid
    assert len(_taken_arrows(mermaid)) == 4  # the start, both of check's, count's back


def test_a_loop_not_entered_highlights_only_the_default() -> None:
    flow, _, path = _run(LOOP, {"n": 0})
    assert path.visits["check"].words() == "no rule matched: default"
    assert "count" not in path.visits
    assert _taken_arrows(draw(flow, "mermaid", path)) == [
        "s_start --> s_0",
        's_0 -->|"default"| s_2',
    ]


def _without_decisions(steps: list[Step]) -> list[Step]:
    """The history as recorded before a choice's decision was a step: the others, numbered
    from 1 again."""
    kept = [step for step in steps if step.tool != CHOICE_TOOL]
    return [dataclasses.replace(step, seq=seq) for seq, step in enumerate(kept, start=1)]


@pytest.mark.parametrize(
    ("definition", "data"),
    [(SAME_TARGET, {"a": 20}), (LOOP, {"n": 3}), (LOOP, {"n": 0})],
)
@pytest.mark.parametrize("format", DIAGRAM_FORMATS)
def test_a_history_without_decision_steps_draws_the_same_path(
    definition: dict[str, Any], data: dict[str, Any], format: DiagramFormat
) -> None:
    flow, steps, path = _run(definition, data)
    old = _without_decisions(steps)
    assert len(old) < len(steps)
    plan = InMemoryRunner(load_registry()).plan(flow)
    old_path = path_of(plan, data, old, "succeeded", "done")
    assert old_path == path
    assert draw(flow, format, old_path) == draw(flow, format, path)


def test_a_history_without_decisions_that_disagrees_is_drawn_as_far_as_it_agrees() -> None:
    flow, steps, _ = _run(LOOP, {"n": 3})
    old = _without_decisions(steps)
    wrong = dataclasses.replace(old[1], input={"a": 7, "b": 1})  # not what the flow asks
    plan = InMemoryRunner(load_registry()).plan(flow)
    path = path_of(plan, {"n": 3}, [old[0], wrong, old[2]], "succeeded", "done")
    assert path.visits["check"].words() == "2 decisions · last: rule 1"
    assert path.visits["count"].words() == "3 steps · succeeded"
    assert path.taken == {("check", ("rules", 0, "next")), ("count", ("next",))}
    assert list(path.visits) == ["check", "count", "done"]


def test_a_choice_the_task_ended_in_says_its_decisions_and_the_status() -> None:
    assert StateVisit(2, "cancelled", (1, 1)).words() == "2 decisions · cancelled"
    assert StateVisit(1, "failed", ("default",)).words() == "1 decision · failed"
    assert StateVisit(0, "failed").words() == "failed"
    assert StateVisit(0, "passed through").words() == "passed through"


def test_a_pass_state_still_says_passed_through_and_its_next_is_taken() -> None:
    definition: dict[str, Any] = {
        "name": "shaped",
        "input": {"a": {"type": "integer"}},
        "start": "shape",
        "states": {
            "shape": {"type": "pass", "value": {"n": "$input.a"}, "next": "done"},
            "done": {"type": "succeed", "output": {"n": "$states.shape.n"}},
        },
    }
    _, steps, path = _run(definition, {"a": 1})
    assert steps == []
    assert path.visits["shape"].words() == "passed through"
    assert path.taken == {("shape", ("next",))}

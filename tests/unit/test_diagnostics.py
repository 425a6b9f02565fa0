"""Diagnostics that the corpus of `tests/flows/` cannot hold: a limit that takes a large
file to pass, what is *not* reported (false positives), and the pieces other checks
reuse (the error kinds, the `$`-string test)."""

from __future__ import annotations

from pathlib import Path

import pytest

from taskrunner.engine.diagnostics import Diagnostic
from taskrunner.engine.errorkinds import (
    SYSTEM_KINDS,
    UNCATCHABLE_KINDS,
    RaisableKinds,
    check_kinds,
)
from taskrunner.engine.literals import literal_reference
from taskrunner.engine.model import MAX_STATES
from taskrunner.engine.plan import FlowPlan
from taskrunner.engine.validate import FlowChecker
from taskrunner.flowfile import check_source
from taskrunner.tools import builtin_registry

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def checker() -> FlowChecker:
    return FlowChecker(builtin_registry())


def states(count: int) -> bytes:
    lines = ["name: big", "start: s0", "states:"]
    lines += [f"  s{index}: {{type: succeed}}" for index in range(count)]
    return ("\n".join(lines) + "\n").encode()


def test_a_flow_over_the_state_limit_gets_one_short_line(checker: FlowChecker) -> None:
    assert MAX_STATES == 1_000
    report = check_source(states(1_001), "big.yaml", checker)
    [problem] = report.problems
    assert (problem.code, problem.line) == ("schema.range", 4)
    assert problem.message == "at most 1,000 states; this flow has 1,001"


def test_a_flow_at_the_state_limit_is_within_it(checker: FlowChecker) -> None:
    report = check_source(states(1_000), "big.yaml", checker)
    assert "schema.range" not in {problem.code for problem in report.problems}


def test_an_empty_list_of_rules_says_how_many_it_needs(checker: FlowChecker) -> None:
    flow = b"""\
name: no_rules
start: check
states:
  check: {type: choice, rules: [], default: done}
  done: {type: succeed}
"""
    [problem] = check_source(flow, "rules.yaml", checker).problems
    assert problem.message == "at least 1 rule; this has none"


VALID_WITH_ODD_TEXT = """\
name: odd_text
description: |
  a block scalar may hold a tab
  \tafter its indentation, and a\u00a0no-break space inside a line
input:
  price: {type: string, default: $$5, description: costs $5 a call}
start: echo
states:
  echo:
    type: task
    tool: echo
    args: {text: $input.price}
    next: done
  done: {type: succeed, output: {text: $states.echo.text}}
"""


def test_tabs_in_a_block_scalar_and_escaped_dollars_are_not_reported(
    checker: FlowChecker,
) -> None:
    report = check_source(VALID_WITH_ODD_TEXT.encode(), "odd.yaml", checker)
    assert report.problems == []
    assert report.flow is not None


def test_a_dollar_escaped_in_a_default_is_one_literal_dollar(checker: FlowChecker) -> None:
    report = check_source(VALID_WITH_ODD_TEXT.encode(), "odd.yaml", checker)
    assert report.flow is not None
    plan = FlowPlan(report.flow, checker.registry)
    assert plan.validate_input({}) == {"price": "$5"}


def test_the_uncatchable_kinds_are_those_that_end_a_task_regardless() -> None:
    assert {
        "UnresolvedReference",
        "StepLimitExceeded",
        "TaskTimeout",
        "TooManyItems",
        "InvalidItems",
        "InvalidBranchInput",
    } == UNCATCHABLE_KINDS
    assert not UNCATCHABLE_KINDS & set(SYSTEM_KINDS)


def test_timeout_is_raisable_only_with_a_timeout() -> None:
    assert "Timeout" not in RaisableKinds.of("add", ["NumberOverflow"], timeout=False)
    assert "Timeout" in RaisableKinds.of("add", ["NumberOverflow"], timeout=True)
    # A tool that calls a service may time out on its own, and declare it.
    assert "Timeout" in RaisableKinds.of("fetch", ["Timeout"], timeout=False)


def test_the_kind_check_applies_to_any_list_of_kinds_at_any_path() -> None:
    raisable = RaisableKinds.of("divide", ["DivisionByZero"], timeout=False)
    path = "/states/divide/retry/non_retryable"
    found = list(check_kinds(["*", "DivisionByZero", "StepLimitExceeded", "Nope"], path, raisable))
    assert [(item.code, item.path, item.severity) for item in found] == [
        ("error.uncatchable", path + "/2", "error"),
        ("error.unknown-kind", path + "/3", "warning"),
    ]
    unknown_tool = list(check_kinds(["Nope", "TaskTimeout"], path, None))
    assert [item.code for item in unknown_tool] == ["error.uncatchable"]


def test_literal_reference_finds_dollar_strings_at_any_depth() -> None:
    found = list(literal_reference({"a": ["$input.x", "$$ok", 5]}, "/input/e/enum", "`e`"))
    assert found == [
        Diagnostic(
            "ref.literal",
            "`e` is a literal value, not a reference: `$input.x` would be kept as this text",
            "/input/e/enum/a/0",
            "write $$ for a literal $",
        )
    ]

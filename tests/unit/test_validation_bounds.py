"""Validation is bounded: a report lists at most `MAX_PROBLEMS` problems and counts the
rest, each message and hint is at most `MAX_MESSAGE_CHARS` long, and the work grows with
the document, not with its square (large charts, long reference chains, thousands of
unknown names)."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from taskrunner.engine.checks import MAX_ROUTE_SHOWN
from taskrunner.engine.diagnostics import MAX_LISTED_NAMES
from taskrunner.engine.validate import FlowChecker
from taskrunner.flowfile import MAX_MESSAGE_CHARS, MAX_PROBLEMS, FlowReport, check_source
from taskrunner.flowfile.reader import MAX_BYTES

# A generous bound for a megabyte of YAML on a loaded two-core machine; the quadratic
# checker took 10 s and more on documents of a third of that size.
SECONDS = 8.0


def unknown_targets(states: int) -> bytes:
    """Every state goes to a state that does not exist."""
    lines = ["name: big", "start: s0", "states:"]
    lines += [
        f"  s{i}: {{type: task, tool: echo, args: {{text: hi}}, next: nowhere{i}}}"
        for i in range(states)
    ]
    return "\n".join(lines).encode()


def timed(raw: bytes, checker: FlowChecker) -> tuple[FlowReport, float]:
    assert len(raw) <= MAX_BYTES
    started = time.perf_counter()
    report = check_source(raw, "big.yaml", checker)
    return report, time.perf_counter() - started


def assert_bounded(report: FlowReport) -> None:
    assert len(report.problems) <= MAX_PROBLEMS
    for problem in report.problems:
        assert len(problem.message) <= MAX_MESSAGE_CHARS
        assert problem.hint is None or len(problem.hint) <= MAX_MESSAGE_CHARS


@pytest.mark.parametrize(
    ("document", "at_least"),
    [
        pytest.param("chained", 4_000, id="long-reference-chains"),
        pytest.param("unknown", 1_000, id="thousand-unknown-targets"),
    ],
)
def test_a_large_invalid_document_lists_the_first_problems_and_counts_the_rest(
    checker: FlowChecker, chained_flow: Callable[..., bytes], document: str, at_least: int
) -> None:
    raw = chained_flow(499, 10) if document == "chained" else unknown_targets(1_000)
    report, seconds = timed(raw, checker)
    assert seconds < SECONDS
    assert len(report.problems) == MAX_PROBLEMS
    assert report.omitted + MAX_PROBLEMS >= at_least
    assert_bounded(report)
    assert report.problems == sorted(report.problems, key=lambda p: (p.line, p.column, p.code))
    marker = report.omitted_marker()
    assert marker is not None
    assert marker.code == "report.omitted"
    assert f"{report.omitted:,} more problem(s)" in marker.message


def test_a_long_path_without_an_output_is_shown_by_its_ends(
    checker: FlowChecker, chained_flow: Callable[..., bytes]
) -> None:
    # Late states read the outputs of early tasks, which paths of hundreds of states skip.
    report, seconds = timed(chained_flow(499, 1), checker)
    assert seconds < SECONDS
    hints = [p.hint for p in report.problems if p.code == "ref.not-run" and p.hint]
    longest = max(hints, key=len)
    assert "more) ->" in longest
    assert longest.count(" -> ") == MAX_ROUTE_SHOWN
    assert len(longest) < 300


def test_a_thousand_and_one_states_is_one_short_problem(
    checker: FlowChecker, chained_flow: Callable[..., bytes]
) -> None:
    report, _ = timed(chained_flow(500), checker)
    [problem] = report.problems
    assert problem.code == "schema.range"
    assert problem.message == "at most 1,000 states; this flow has 1,001"


def test_hints_list_a_few_names_and_count_the_rest(checker: FlowChecker) -> None:
    report, _ = timed(unknown_targets(1_000), checker)
    listings = [p.hint for p in report.problems if p.hint and p.hint.startswith("states: ")]
    assert listings
    for hint in listings:
        assert hint.count(",") == MAX_LISTED_NAMES
        assert hint.endswith(f"({1_000 - MAX_LISTED_NAMES:,} more)")


def test_a_small_document_is_reported_whole(checker: FlowChecker) -> None:
    report, _ = timed(unknown_targets(30), checker)
    # 30 unknown targets, and every state but the start unreachable
    assert len(report.problems) == 30 + 29
    assert report.omitted == 0
    assert report.omitted_marker() is None

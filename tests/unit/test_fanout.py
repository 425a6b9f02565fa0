"""Joining a fan-out's children: the output follows the children's positions, never the
order they ended in, and the failure policy decides how failures end the call."""

from __future__ import annotations

import pytest

from taskrunner.engine.fanout import (
    TOLERATED_FAILURES_EXCEEDED,
    Child,
    ChildResult,
    Fanout,
)
from taskrunner.engine.steps import CallTool


def children(*keys: str) -> tuple[Child, ...]:
    return tuple(Child(key, "sha256:x", {}, {"n": index}) for index, key in enumerate(keys))


def call(fanout: Fanout) -> CallTool:
    return CallTool(4, "fan", "map", 1, {"children": len(fanout.children)}, fanout=fanout)


def ok(key: str, output: object) -> ChildResult:
    return ChildResult(key, "succeeded", output)  # type: ignore[arg-type]


def failed(key: str, kind: str = "Boom") -> ChildResult:
    return ChildResult(key, "failed", None, kind, f"{key} broke")


def test_branches_join_into_an_object_whatever_order_they_ended_in() -> None:
    fanout = Fanout(children("branch:b", "branch:a"), "object")
    step = fanout.join(call(fanout), [ok("branch:a", {"x": 1}), ok("branch:b", {"y": 2})])
    assert step.status == "succeeded"
    assert step.output == {"b": {"y": 2}, "a": {"x": 1}}
    assert list(step.output) == ["b", "a"]


def test_items_join_in_input_order() -> None:
    keys = [f"item:{index}" for index in range(5)]
    fanout = Fanout(children(*keys), "array")
    results = [ok(key, {"i": int(key[5:])}) for key in reversed(keys)]
    step = fanout.join(call(fanout), results)
    assert step.output == {"items": [{"i": index} for index in range(5)]}


def test_fail_fast_takes_the_first_failure_by_position_not_by_time() -> None:
    fanout = Fanout(children("item:0", "item:1", "item:2"), "array")
    results = [failed("item:2", "Late"), failed("item:1", "Early"), ok("item:0", {})]
    step = fanout.join(call(fanout), results)
    assert step.status == "failed"
    assert step.error is not None
    assert step.error.kind == "Early"
    assert step.error.message == "item 1 failed: item:1 broke"


def test_cancelled_siblings_of_a_failure_do_not_matter() -> None:
    fanout = Fanout(children("branch:a", "branch:b"), "object")
    results = [failed("branch:a"), ChildResult("branch:b", "cancelled")]
    step = fanout.join(call(fanout), results)
    assert step.error is not None
    assert step.error.kind == "Boom"


def test_tolerated_failures_leave_nulls_and_too_many_fail_the_call() -> None:
    keys = [f"item:{index}" for index in range(4)]
    tolerant = Fanout(children(*keys), "array", tolerated_failures=1)
    one_failed = [ok("item:0", {}), failed("item:1"), ok("item:2", {}), ok("item:3", {})]
    assert tolerant.join(call(tolerant), one_failed).output == {"items": [{}, None, {}, {}]}
    two_failed = [*one_failed[:3], failed("item:3")]
    step = tolerant.join(call(tolerant), two_failed)
    assert step.error is not None
    assert step.error.kind == TOLERATED_FAILURES_EXCEEDED
    assert step.error.message.startswith("2 of 4 items failed")


def test_a_tolerated_percentage_counts_against_all_items() -> None:
    keys = [f"item:{index}" for index in range(4)]
    fanout = Fanout(children(*keys), "array", tolerated_percentage=50)
    results = [failed("item:0"), failed("item:1"), ok("item:2", {}), ok("item:3", {})]
    assert fanout.join(call(fanout), results).status == "succeeded"
    results[2] = failed("item:2")
    assert fanout.join(call(fanout), results).status == "failed"


def test_a_sub_flow_passes_its_output_through() -> None:
    fanout = Fanout(children("flow"), "single")
    assert fanout.join(call(fanout), [ok("flow", {"sum": 3})]).output == {"sum": 3}


def test_a_missing_result_is_a_bug_not_a_silent_gap() -> None:
    fanout = Fanout(children("item:0", "item:1"), "array")
    with pytest.raises(ValueError, match="item:1"):
        fanout.join(call(fanout), [ok("item:0", {})])


def test_a_joined_output_too_large_to_store_fails_the_call() -> None:
    keys = [f"item:{index}" for index in range(300)]
    fanout = Fanout(children(*keys), "array")
    step = fanout.join(call(fanout), [ok(key, {"text": "x" * 1024}) for key in keys])
    assert step.error is not None
    assert step.error.kind == "OutputTooLarge"


def test_a_state_out_of_time_fails_with_timeout_whatever_the_policy() -> None:
    keys = [f"item:{index}" for index in range(4)]
    tolerant = Fanout(children(*keys), "array", tolerated_percentage=100)
    late = ChildResult("item:2", "timed_out", None, "Timeout", "did not end within 1 s")
    results = [ok("item:0", {}), failed("item:1"), late, ok("item:3", {})]
    step = tolerant.join(call(tolerant), results)
    assert step.error is not None
    assert step.error.kind == "Timeout"
    assert step.error.message == "item 2 failed: did not end within 1 s"

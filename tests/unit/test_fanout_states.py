"""The `parallel` and `map` state kinds: how the checker types them end to end, where it
points inside their sub-charts, and how the in-memory runner runs their children
(concurrency bound, fail-fast cancellation, deadlines, the item bound)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
import yaml

from taskrunner.concurrency import on_threads
from taskrunner.engine.flow import Flow
from taskrunner.engine.interpreter import Execution, replay
from taskrunner.engine.runner import InMemoryRunner
from taskrunner.engine.schema import flow_json_schema
from taskrunner.engine.shape import make_validator
from taskrunner.engine.states import map as map_kind
from taskrunner.engine.validate import FlowChecker
from taskrunner.tools import ToolError, ToolModel, ToolRegistry, builtin_registry, tool


class ProbeInput(ToolModel):
    value: int
    fail: bool = False
    ms: int = 0


class ProbeOutput(ToolModel):
    value: int


class Probe:
    """Counts the calls of the `probe` tool, and how many ran at once at most."""

    def __init__(self) -> None:
        self.calls: list[int] = []
        self.running = 0
        self.most = 0
        self._lock = threading.Lock()

    def __call__(self, args: ProbeInput) -> ProbeOutput:
        with self._lock:
            self.calls.append(args.value)
            self.running += 1
            self.most = max(self.most, self.running)
        time.sleep(args.ms / 1000)
        with self._lock:
            self.running -= 1
        if args.fail:
            raise ToolError(f"value {args.value} failed", kind="Probed")
        return ProbeOutput(value=args.value)


@pytest.fixture
def probe() -> Probe:
    return Probe()


@pytest.fixture
def probe_registry(probe: Probe) -> ToolRegistry:
    def call(args: ProbeInput) -> ProbeOutput:
        return probe(args)

    call.__doc__ = "Return the value, after `ms` milliseconds, or fail with `Probed`."
    return ToolRegistry([*builtin_registry(), tool("probe", errors=("Probed",))(call)])


@pytest.fixture
def probe_checker(probe_registry: ToolRegistry) -> FlowChecker:
    return FlowChecker(probe_registry)


@pytest.fixture
def make_flow(probe_checker: FlowChecker) -> Callable[[str], Flow]:
    def make(text: str) -> Flow:
        result = probe_checker.check(yaml.safe_load(text))
        assert result.flow is not None, result.diagnostics
        return result.flow

    return make


@pytest.fixture
def problems(probe_checker: FlowChecker) -> Callable[[str], list[tuple[str, str]]]:
    def check(text: str) -> list[tuple[str, str]]:
        found = probe_checker.check(yaml.safe_load(text)).diagnostics
        return [(item.code, item.path) for item in found]

    return check


MAP_OF_PROBES = """
name: probes
input:
  values: {type: array, items: {type: integer}}
  fail_at: {type: integer}
  ms: {type: integer}
start: each
states:
  each:
    type: map
    items: $input.values
    input: {fail_at: $input.fail_at, ms: $input.ms}
    max_concurrency: %(width)s
    each:
      start: decide
      states:
        decide:
          type: choice
          rules:
            - when: {value: $input.index, eq: $input.fail_at}
              next: failing
          default: working
        failing:
          type: task
          tool: probe
          args: {value: $input.item, fail: true}
          next: done
        working:
          type: task
          tool: probe
          args: {value: $input.item, ms: $input.ms}
          next: done
        done:
          type: succeed
          output: {index: $input.index}
    next: done
  done:
    type: succeed
    output: {items: $states.each}
"""


# -- the checker -----------------------------------------------------------------------


def test_a_branch_output_is_typed_by_its_end(problems: Callable[..., Any]) -> None:
    found = problems("""
name: typed_branches
start: both
states:
  both:
    type: parallel
    branches:
      add:
        start: add
        states:
          add: {type: task, tool: add, args: {a: 1, b: 2}, next: done}
          done: {type: succeed, output: {sum: $states.add.sum}}
    next: echo
  echo:
    type: task
    tool: echo
    args: {text: $states.both.add.sum}
    next: done
  done: {type: succeed}
""")
    assert found == [("type.mismatch", "/states/echo/args/text")]


def test_a_map_output_is_an_array_of_the_item_charts_end(problems: Callable[..., Any]) -> None:
    flow = """
name: typed_items
input:
  numbers: {type: array, items: {type: integer}}
start: each
states:
  each:
    type: map
    items: $input.numbers
    %(tolerance)s
    each:
      start: add
      states:
        add: {type: task, tool: add, args: {a: $input.item, b: $input.index}, next: done}
        done: {type: succeed, output: {sum: $states.add.sum}}
    next: total
  total:
    type: task
    tool: add
    args: {a: 1, b: $states.each.0.sum}
    next: done
  done: {type: succeed}
"""
    assert problems(flow % {"tolerance": ""}) == []
    # With a failure tolerance, a failed item's place is null.
    assert problems(flow % {"tolerance": "tolerated_failures: 1"}) == [
        ("ref.nullable", "/states/total/args/b")
    ]


def test_problems_inside_a_sub_chart_point_into_the_parent_document(
    problems: Callable[..., Any],
) -> None:
    found = problems("""
name: nested
start: each
states:
  each:
    type: map
    items: [a, b]
    each:
      start: both
      states:
        both:
          type: parallel
          branches:
            inner:
              start: add
              states:
                add: {type: task, tool: add, args: {a: $input.item, b: 1}, next: done}
                done: {type: succeed}
                lost: {type: succeed}
          next: done
        done: {type: succeed}
    next: done
  done: {type: succeed}
""")
    inner = "/states/each/each/states/both/branches/inner/states"
    # The map item's `$input` is the branch's default `input`: `item` is a string.
    assert sorted(found) == [
        ("flow.unreachable", inner + "/lost"),
        ("type.mismatch", inner + "/add/args/a"),
    ]


def test_a_sub_chart_cannot_see_the_states_around_it(problems: Callable[..., Any]) -> None:
    found = problems("""
name: scoped
start: first
states:
  first: {type: task, tool: echo, args: {text: hi}, next: each}
  each:
    type: map
    items: [1]
    input: {text: $states.first.text}
    each:
      start: done
      states:
        done: {type: succeed, output: {a: $input.text, b: $states.first.text}}
    next: done
  done: {type: succeed}
""")
    assert found == [("ref.outer-state", "/states/each/each/states/done/output/b")]


def test_the_published_schema_checks_sub_chart_states_as_states(
    probe_registry: ToolRegistry,
) -> None:
    schema = flow_json_schema(probe_registry)
    assert schema["properties"]["states"]["additionalProperties"] == {"$ref": "#/$defs/State"}
    validator = make_validator(schema)
    document = yaml.safe_load("""
name: deep
start: both
states:
  both:
    type: parallel
    branches:
      one:
        start: go
        states:
          go: {type: task, tool: echo, args: {text: 5}, next: done}
          done: {type: succeed}
    next: done
  done: {type: succeed}
""")
    errors = [list(error.absolute_path) for error in validator.iter_errors(document)]
    assert ["states", "both", "branches", "one", "states", "go", "args", "text"] in errors


# -- running ---------------------------------------------------------------------------


def test_map_items_run_at_most_max_concurrency_at_once(
    make_flow: Callable[[str], Flow], probe_registry: ToolRegistry, probe: Probe
) -> None:
    flow = make_flow(MAP_OF_PROBES % {"width": 2})
    result = InMemoryRunner(probe_registry, concurrency=on_threads).run(
        flow, {"values": list(range(8)), "fail_at": -1, "ms": 20}
    )
    assert result.status == "succeeded"
    assert result.output == {"items": [{"index": index} for index in range(8)]}
    assert sorted(probe.calls) == list(range(8))
    assert probe.most == 2
    assert sorted(result.children) == sorted(f"1/item:{index}" for index in range(8))


def test_fail_fast_cancels_the_items_after_the_failure_that_have_not_started(
    make_flow: Callable[[str], Flow], probe_registry: ToolRegistry, probe: Probe
) -> None:
    flow = make_flow(MAP_OF_PROBES % {"width": 1})
    result = InMemoryRunner(probe_registry, concurrency=on_threads).run(
        flow, {"values": list(range(10)), "fail_at": 2, "ms": 0}
    )
    assert result.status == "failed"
    assert result.error is not None
    assert (result.error.kind, result.error.message) == ("Probed", "item 2 failed: value 2 failed")
    assert probe.calls == [0, 1, 2]
    assert sorted(result.children) == ["1/item:0", "1/item:1", "1/item:2"]


def test_fail_fast_reports_the_first_failure_by_position_not_in_time(
    make_flow: Callable[[str], Flow], probe_registry: ToolRegistry
) -> None:
    # Item 0 fails only after a slow call; item 3 fails at once, long before.
    flow = make_flow("""
name: first_by_position
input:
  values: {type: array, items: {type: integer}}
start: each
states:
  each:
    type: map
    items: $input.values
    max_concurrency: 4
    each:
      start: call
      states:
        call:
          type: task
          tool: probe
          args: {value: $input.item, ms: 0}
          next: slow
        slow:
          type: choice
          rules:
            - when: {value: $input.index, eq: 0}
              next: slow_fail
            - when: {value: $input.index, eq: 3}
              next: fast_fail
          default: done
        slow_fail: {type: task, tool: probe, args: {value: 0, ms: 60, fail: true}, next: done}
        fast_fail: {type: task, tool: probe, args: {value: 3, fail: true}, next: done}
        done: {type: succeed}
    next: done
  done: {type: succeed}
""")
    result = InMemoryRunner(probe_registry, concurrency=on_threads).run(
        flow, {"values": [0, 1, 2, 3]}
    )
    assert result.error is not None
    assert result.error.message == "item 0 failed: value 0 failed"


def test_a_map_past_the_item_bound_fails_with_too_many_items(
    make_flow: Callable[[str], Flow],
    probe_registry: ToolRegistry,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(map_kind, "MAX_ITEMS", 3)
    flow = make_flow(MAP_OF_PROBES % {"width": 4})
    result = InMemoryRunner(probe_registry, concurrency=on_threads).run(
        flow, {"values": [1, 2, 3, 4], "fail_at": -1, "ms": 0}
    )
    assert result.status == "failed"
    assert result.error is not None
    assert result.error.kind == "TooManyItems"
    assert result.error.message == "at most 3 items; `items` has 4"


WAITING_BRANCH = """
name: waiting
%(deadline)s
start: both
states:
  both:
    type: parallel
    %(timeout)s
    branches:
      slow:
        start: pause
        states:
          pause: {type: wait, seconds: 100, next: done}
          done: {type: succeed}
    catch:
      - errors: [Timeout]
        next: late
    next: done
  late: {type: succeed, output: {kind: $error.kind}}
  done: {type: succeed}
"""


def test_a_fanout_state_timeout_fails_its_children_with_a_catchable_timeout(
    make_flow: Callable[[str], Flow], probe_registry: ToolRegistry
) -> None:
    flow = make_flow(WAITING_BRANCH % {"deadline": "", "timeout": "timeout_seconds: 10"})
    result = InMemoryRunner(probe_registry, concurrency=on_threads).run(flow, {})
    assert (result.status, result.state, result.output) == (
        "succeeded",
        "late",
        {"kind": "Timeout"},
    )


def test_children_inherit_the_time_left_before_the_tasks_deadline(
    make_flow: Callable[[str], Flow], probe_registry: ToolRegistry
) -> None:
    flow = make_flow(WAITING_BRANCH % {"deadline": "timeout_seconds: 10", "timeout": ""})
    result = InMemoryRunner(probe_registry, concurrency=on_threads).run(flow, {})
    assert result.status == "failed"
    assert result.error is not None
    assert (result.state, result.error.kind) == ("both", "TaskTimeout")


def test_map_items_see_item_index_and_the_input_fields(
    make_flow: Callable[[str], Flow], probe_registry: ToolRegistry
) -> None:
    flow = make_flow("""
name: item_input
input:
  greeting: {type: string}
start: each
states:
  each:
    type: map
    items: [ann, bob]
    input: {greeting: $input.greeting}
    each:
      start: done
      states:
        done:
          type: succeed
          output: {text: "{$input.greeting} {$input.item} #{$input.index}"}
    next: done
  done: {type: succeed, output: {all: $states.each, second: $states.each.1.text}}
""")
    result = InMemoryRunner(probe_registry, concurrency=on_threads).run(flow, {"greeting": "hi"})
    assert result.output == {
        "all": [{"text": "hi ann #0"}, {"text": "hi bob #1"}],
        "second": "hi bob #1",
    }
    # The step records `{"items": [...]}`; `$states.each` is the array, on replay too.
    [step] = result.steps
    assert step.tool == "map"
    assert step.input == {"items": 2}
    assert step.output == {"items": result.output["all"]}
    runner = InMemoryRunner(probe_registry, concurrency=on_threads)
    plan = runner.plan(flow)
    replayed = replay(plan, plan.validate_input({"greeting": "hi"}), result.steps)
    assert replayed.outputs["each"] == result.output["all"]
    resumed = Execution.resume(plan, {"greeting": "hi"}, replayed.checkpoint())
    assert resumed is not None
    assert resumed.decide() == replayed.decide()


def test_a_branch_gets_the_tasks_input_unless_given_one(
    make_flow: Callable[[str], Flow], probe_registry: ToolRegistry
) -> None:
    flow = make_flow("""
name: branch_input
input:
  text: {type: string}
start: both
states:
  both:
    type: parallel
    branches:
      same:
        start: done
        states:
          done: {type: succeed, output: {text: $input.text}}
    next: other
  other:
    type: parallel
    input: {words: ["{$input.text}!"]}
    branches:
      given:
        start: done
        states:
          done: {type: succeed, output: {first: $input.words.0}}
    next: done
  done:
    type: succeed
    output: {a: $states.both.same.text, b: $states.other.given.first}
""")
    result = InMemoryRunner(probe_registry, concurrency=on_threads).run(flow, {"text": "hey"})
    assert result.output == {"a": "hey", "b": "hey!"}


def test_a_child_that_ends_with_an_uncatchable_kind_ends_the_task(
    make_flow: Callable[[str], Flow], probe_registry: ToolRegistry
) -> None:
    # `$input.item.x` is `any` (the items are untyped), and finds no data in a number.
    flow = make_flow("""
name: uncatchable_child
input:
  values: {type: array}
start: each
states:
  each:
    type: map
    items: $input.values
    each:
      start: done
      states:
        done: {type: succeed, output: {x: $input.item.x}}
    catch:
      - errors: ["*"]
        next: caught
    next: done
  caught: {type: succeed, output: {caught: true}}
  done: {type: succeed}
""")
    result = InMemoryRunner(probe_registry).run(flow, {"values": [5]})
    assert result.status == "failed"
    assert result.error is not None
    assert (result.state, result.error.kind) == ("each", "UnresolvedReference")

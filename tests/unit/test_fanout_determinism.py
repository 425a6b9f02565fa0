"""Determinism under random completion order: the branches of a parallel state and the
items of a map state call `test.jitter` (tests/plugins), which sleeps a random 0-20 ms,
so their children end in a different order on every run. The trace, parent and children,
must be the same every time, and the order the calls ended in must have changed."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest
import yaml

from taskrunner.concurrency import on_threads
from taskrunner.engine.runner import InMemoryRunner, RunResult
from taskrunner.engine.validate import FlowChecker
from taskrunner.tools import JsonObject, Tool, ToolRegistry, load_registry

PLUGINS = Path(__file__).resolve().parents[1] / "plugins"
RUNS = 12

PARALLEL = """
name: jitter_parallel
start: all
states:
  all:
    type: parallel
    branches:
%s
    next: done
  done: {type: succeed, output: {all: $states.all}}
"""
BRANCH = """      b%(n)d:
        start: call
        states:
          call: {type: task, tool: test.jitter, args: {value: %(n)d}, next: done}
          done: {type: succeed, output: {value: $states.call.value}}
"""

MAP = """
name: jitter_map
input:
  values: {type: array, items: {type: integer}}
start: each
states:
  each:
    type: map
    items: $input.values
    max_concurrency: 6
    tolerated_percentage: 50
    each:
      start: first
      states:
        first:
          type: task
          tool: test.jitter
          args: {value: $input.item, fail: false}
          next: odd
        odd:
          type: choice
          rules:
            - when:
                any:
                  - {value: $input.index, eq: 3}
                  - {value: $input.index, eq: 7}
                  - {value: $input.index, eq: 11}
              next: failing
          default: again
        failing:
          type: task
          tool: test.jitter
          args: {value: $input.index, fail: true}
          next: done
        again: {type: task, tool: test.jitter, args: {value: $input.index}, next: done}
        done: {type: succeed, output: {value: $states.first.value}}
    next: done
  done: {type: succeed, output: {items: $states.each}}
"""


class Ended:
    """Wraps the jitter tool to note the order in which its calls ended."""

    def __init__(self, inner: Tool) -> None:
        self.inner = inner
        self.name = inner.name
        self.order: list[int] = []
        self._lock = threading.Lock()

    def invoke(self, arguments: JsonObject, *, timeout: float | None = None) -> JsonObject:
        try:
            return self.inner.invoke(arguments, timeout=timeout)
        finally:
            with self._lock:
                value = arguments["value"]
                assert isinstance(value, int)
                self.order.append(value)


@pytest.fixture(scope="module")
def registry() -> Iterator[ToolRegistry]:
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(PLUGINS))
        yield load_registry()


def _trace(result: RunResult) -> dict[str, Any]:
    return {
        "status": result.status,
        "output": result.output,
        "error": asdict(result.error) if result.error else None,
        "steps": [asdict(step) for step in result.steps],
        "children": {key: _trace(child) for key, child in result.children.items()},
    }


def _looking_up(look_up: Callable[[str], Tool], ended: Ended) -> Callable[[str], object]:
    return lambda name: ended if name == ended.name else look_up(name)


def _runs(registry: ToolRegistry, text: str, data: dict[str, Any]) -> tuple[set[str], set[str]]:
    """The distinct traces of RUNS runs, and the distinct orders their calls ended in."""
    checked = FlowChecker(registry).check(yaml.safe_load(text))
    flow = checked.flow
    assert flow is not None, checked.diagnostics
    traces: set[str] = set()
    orders: set[str] = set()
    look_up = registry.get
    jitter = look_up("test.jitter")
    for _ in range(RUNS):
        ended = Ended(jitter)
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(registry, "get", _looking_up(look_up, ended))
            result = InMemoryRunner(registry, concurrency=on_threads).run(flow, data)
        traces.add(json.dumps(_trace(result), sort_keys=True))
        orders.add(json.dumps(ended.order))
    return traces, orders


def test_a_parallel_trace_is_the_same_whatever_order_the_branches_end_in(
    registry: ToolRegistry,
) -> None:
    text = PARALLEL % "".join(BRANCH % {"n": n} for n in range(8))
    traces, orders = _runs(registry, text, {})
    assert len(orders) > 1, "the branches always ended in the same order: nothing was shown"
    assert len(traces) == 1
    [trace] = traces
    assert json.loads(trace)["output"] == {"all": {f"b{n}": {"value": n} for n in range(8)}}


def test_a_map_trace_is_the_same_whatever_order_the_items_end_in(
    registry: ToolRegistry,
) -> None:
    values = [10 * n for n in range(12)]
    traces, orders = _runs(registry, MAP, {"values": values})
    assert len(orders) > 1, "the items always ended in the same order: nothing was shown"
    assert len(traces) == 1
    [trace] = traces
    ended = json.loads(trace)
    expected = [None if n in (3, 7, 11) else {"value": 10 * n} for n in range(12)]
    assert ended["output"] == {"items": expected}
    assert sorted(ended["children"]) == sorted(f"1/item:{n}" for n in range(12))

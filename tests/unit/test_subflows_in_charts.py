"""Sub-flows run by the in-memory runner: a `flow` state in a parallel branch or a map
item's chart is checked against the called flow and runs its pinned version (the chart's
document carries the pins, so its digest covers them); a failed sub-flow is caught with
the calling state's name, a retry starts a new child, and a chain of three flows runs the
versions its top flow locked.

And one run through the service on SQLite: the stored child re-parses its definition, pins
included, and finds the same digest."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

import pytest

from taskrunner.catalog import FlowCatalog
from taskrunner.engine.flow import Flow
from taskrunner.engine.runner import InMemoryRunner
from taskrunner.engine.states.charts import compile_chart
from taskrunner.engine.states.map import MapPlan
from taskrunner.engine.states.parallel import ParallelPlan
from taskrunner.engine.steps import StepError
from taskrunner.engine.validate import FlowChecker
from taskrunner.service import TaskService
from taskrunner.store.database import Database
from taskrunner.store.sql import SqlTaskRepository

SIBLINGS = Path(__file__).resolve().parents[1] / "flows" / "siblings"

FAN = """\
name: fan
input:
  ns: {type: array, items: {type: integer}}
start: each
states:
  each:
    type: map
    items: $input.ns
    each:
      start: call
      states:
        call:
          type: flow
          flow: double
          input: {n: $input.item}
          next: done
        done:
          type: succeed
          output: {v: $states.call.value}
    next: both
  both:
    type: parallel
    branches:
      relayed:
        start: call
        states:
          call:
            type: flow
            flow: relay
            input: {n: 7}
            next: done
          done:
            type: succeed
            output: {n: $states.call.n}
      plain:
        start: done
        states:
          done: {type: succeed, output: {x: 1}}
    next: done
  done:
    type: succeed
    output: {items: $states.each, both: $states.both}
"""

GUARDED = """\
name: guarded
input:
  n: {type: integer}
start: call
states:
  call:
    type: flow
    flow: halve
    input: {n: $input.n}
    retry: {max_attempts: 2, interval_seconds: 0}
    catch:
      - errors: ["*"]
        next: failed
    next: done
  done:
    type: succeed
    output: {half: $states.call.half}
  failed:
    type: fail
    error: Failed
    message: "{$error.state}: {$error.message}"
"""

HALVE = """\
name: halve
input:
  n: {type: integer}
start: divide
states:
  divide:
    type: task
    tool: divide
    args: {dividend: 12, divisor: $input.n}
    next: done
  done:
    type: succeed
    output: {half: $states.divide.quotient}
"""

CHAIN = """\
name: chain
input:
  n: {type: integer}
start: call
states:
  call:
    type: flow
    flow: relay
    input: {n: $input.n}
    next: done
  done:
    type: succeed
    output: {n: $states.call.n}
"""


@pytest.fixture
def flows(tmp_path: Path) -> Path:
    """The corpus's siblings (`double`, `pong`, `relay`, `shout`) and this file's flows."""
    directory = tmp_path / "flows"
    shutil.copytree(SIBLINGS, directory)
    for name, text in {"fan": FAN, "guarded": GUARDED, "halve": HALVE, "chain": CHAIN}.items():
        (directory / f"{name}.yaml").write_text(text)
    return directory


def _flow(flows: Path, checker: FlowChecker, name: str) -> Flow:
    catalog = FlowCatalog.load(flows, checker)
    assert not catalog.skipped, [
        (item.path.name, [problem.message for problem in item.problems]) for item in catalog.skipped
    ]
    return catalog.get(name).flow


def _problems(flows: Path, checker: FlowChecker, file: str) -> list[tuple[str, int]]:
    catalog = FlowCatalog.load(flows, checker)
    [skipped] = [item for item in catalog.skipped if item.path.name == file]
    return sorted((item.code, item.line) for item in skipped.problems)


# -- checking -------------------------------------------------------------------------


def test_a_flow_state_in_a_chart_is_checked_against_the_called_flow(
    flows: Path, checker: FlowChecker
) -> None:
    bad = (
        FAN.replace("name: fan", "name: bad")
        .replace("flow: double", "flow: doubel")
        .replace("input: {n: 7}", "input: {m: 7}")
        .replace("$states.call.n}", "$states.call.m}")
    )
    (flows / "bad.yaml").write_text(bad)
    assert _problems(flows, checker, "bad.yaml") == [
        ("flow.input", 30),  # `m` is not `relay`'s input…
        ("flow.input", 30),  # …and `n` is missing
        ("flow.unknown", 14),
        ("ref.unknown-field", 34),  # `relay`'s output has `n`, not `m`
    ]


def test_a_chart_that_calls_its_own_flow_closes_a_cycle(flows: Path, checker: FlowChecker) -> None:
    (flows / "loop.yaml").write_text(
        FAN.replace("name: fan", "name: loop").replace("flow: relay", "flow: loop")
    )
    assert ("flow.cycle", 29) in _problems(flows, checker, "loop.yaml")


# -- running --------------------------------------------------------------------------


def test_branches_and_items_run_the_sub_flows_their_version_pins(
    flows: Path, checker: FlowChecker
) -> None:
    fan = _flow(flows, checker, "fan")
    result = InMemoryRunner(checker.registry).run(fan, {"ns": [1, 2]})
    assert (result.status, result.output) == (
        "succeeded",
        {"items": [{"v": 2}, {"v": 4}], "both": {"relayed": {"n": 7}, "plain": {"x": 1}}},
    )
    assert sorted(result.children) == ["1/item:0", "1/item:1", "2/branch:plain", "2/branch:relayed"]
    # Each item ran `double` as a child of its own; the branch ran `relay`, which ran `pong`.
    item = result.children["1/item:0"]
    assert [(step.tool, step.output) for step in item.steps] == [("flow", {"value": 2})]
    assert list(item.children) == ["1/flow"]
    relayed = result.children["2/branch:relayed"].children["1/flow"]
    assert relayed.output == {"n": 7}
    assert list(relayed.children) == ["1/flow"]


def test_a_charts_digest_covers_the_flows_it_calls_and_only_those(
    flows: Path, checker: FlowChecker
) -> None:
    fan = _flow(flows, checker, "fan")
    plan = InMemoryRunner(checker.registry).plan(fan).states["each"]
    assert isinstance(plan, MapPlan)
    unpinned = compile_chart(plan.state.each)
    assert plan.chart.digest != unpinned.digest
    definition = plan.chart.definition
    assert definition["pins"] == {"double": fan.pins["double"]}
    locked = definition["locked"]
    assert isinstance(locked, dict)
    assert list(locked) == [fan.pins["double"]]
    reread = checker.language.parse(definition)
    assert reread.digest == plan.chart.digest
    # A new version of `double` is a new version of the chart, and of `fan`.
    (flows / "double.yaml").write_text(
        (SIBLINGS / "double.yaml").read_text().replace("Twice", "Two times")
    )
    newer = _flow(flows, checker, "fan")
    newer_plan = InMemoryRunner(checker.registry).plan(newer).states["each"]
    assert isinstance(newer_plan, MapPlan)
    assert newer_plan.chart.digest != plan.chart.digest
    assert newer.digest != fan.digest
    # A chart that calls no flow keeps the digest it had without pins.
    both = InMemoryRunner(checker.registry).plan(fan).states["both"]
    assert isinstance(both, ParallelPlan)
    charts = dict(both.charts)
    assert "pins" not in charts["plain"].definition
    assert charts["plain"].digest == compile_chart(both.state.branches["plain"]).digest
    assert charts["relayed"].definition["pins"] == {
        "relay": fan.pins["relay"],
        "pong": fan.pins["pong"],
    }


def test_a_chart_of_a_flow_parsed_without_the_catalog_fails_unpinned(
    checker: FlowChecker,
) -> None:
    import yaml

    fan = checker.language.parse(yaml.safe_load(FAN))
    result = InMemoryRunner(checker.registry).run(fan, {"ns": [1]})
    assert result.status == "failed"
    assert result.error is not None
    assert result.error.kind == "UnpinnedFlow"


def test_a_failed_sub_flow_is_caught_with_the_flow_states_name(
    flows: Path, checker: FlowChecker
) -> None:
    result = InMemoryRunner(checker.registry).run(_flow(flows, checker, "guarded"), {"n": 0})
    # `$error.state` is the flow state, not the sub-flow's failed state (`divide`).
    assert (result.status, result.error) == (
        "failed",
        StepError("Failed", "call: the sub-flow failed: cannot divide by zero"),
    )
    # Each attempt failed with the sub-flow's own kind, which `retry` and `catch` see.
    assert [(step.state, step.tool, step.attempt, step.error) for step in result.steps] == [
        (
            "call",
            "flow",
            attempt,
            StepError("DivisionByZero", "the sub-flow failed: cannot divide by zero"),
        )
        for attempt in (1, 2)
    ]
    first = result.children["1/flow"]
    assert (first.status, first.state, first.error) == (
        "failed",
        "divide",
        StepError("DivisionByZero", "cannot divide by zero"),
    )


def test_a_retry_starts_a_new_child(flows: Path, checker: FlowChecker) -> None:
    result = InMemoryRunner(checker.registry).run(_flow(flows, checker, "guarded"), {"n": 0})
    # One child per attempt, each keyed by the step that recorded it, each run from the start.
    assert sorted(result.children) == ["1/flow", "2/flow"]
    for child in result.children.values():
        assert [step.seq for step in child.steps] == [1]
        assert child.steps[0].input == {"dividend": 12, "divisor": 0}
    succeeded = InMemoryRunner(checker.registry).run(_flow(flows, checker, "guarded"), {"n": 4})
    assert (succeeded.status, succeeded.output) == ("succeeded", {"half": 3.0})


def test_a_chain_of_three_flows_runs_the_versions_it_locked(
    flows: Path, checker: FlowChecker
) -> None:
    chain = _flow(flows, checker, "chain")
    catalog = FlowCatalog.load(flows, checker)
    assert chain.pins == {
        "relay": catalog.get("relay").flow.digest,
        "pong": catalog.get("pong").flow.digest,
    }
    # The files change after the version was made: the task still runs the locked ones.
    (flows / "pong.yaml").write_text(
        (SIBLINGS / "pong.yaml").read_text().replace("n: $input.n", "n: 0")
    )
    assert FlowCatalog.load(flows, checker).get("chain").flow.digest != chain.digest
    stored = checker.language.parse(chain.stored_definition())
    result = InMemoryRunner(checker.registry).run(stored, {"n": 5})
    assert (result.status, result.output) == ("succeeded", {"n": 5})
    relay = result.children["1/flow"]
    pong = relay.children["1/flow"]
    assert (relay.output, pong.output) == ({"n": 5}, {"n": 5})


# -- through the service --------------------------------------------------------------


def test_the_service_runs_a_sub_flow_inside_a_map_item_as_a_stored_child(
    flows: Path,
    checker: FlowChecker,
    clean_database: Callable[[str], AbstractContextManager[str]],
) -> None:
    with clean_database("sqlite") as url:
        database = Database(url)
        repository = SqlTaskRepository(database)
        service = TaskService(repository, FlowCatalog.load(flows, checker))
        try:
            task = service.run_task("fan", {"ns": [3]}).task
            assert task.status == "succeeded", task.error
            assert task.output == {
                "items": [{"v": 6}],
                "both": {"relayed": {"n": 7}, "plain": {"x": 1}},
            }
            [item] = repository.children_of(task.id, 1, 1)
            assert (item.child_key, item.status) == ("item:0", "succeeded")
            [double] = repository.children_of(item.id, 1, 1)
            assert (double.child_key, double.flow_name, double.output) == (
                "flow",
                "double",
                {"value": 6},
            )
            assert double.flow_digest == service.catalog.get("double").flow.digest
        finally:
            service.close()
            database.dispose()

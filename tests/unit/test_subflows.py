"""Flows that call flows: the `flow` state is checked against the called flow's signature
(typed input and output), unknown names and cycles are reported, and a caller is pinned
to its sub-flows' versions, through its digest and its stored version, across reloads.

Running a sub-flow end to end needs the runners' `run_children`; here the parent's
execution is driven by hand: its one call is decided, and the child's result joined."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from taskrunner.catalog import FlowCatalog
from taskrunner.engine.fanout import ChildResult
from taskrunner.engine.interpreter import Execution
from taskrunner.engine.plan import FlowPlan
from taskrunner.engine.steps import CallTool, Fail, Finish
from taskrunner.engine.subflows import cyclic_groups, is_cyclic, version_digest
from taskrunner.engine.validate import FlowChecker
from taskrunner.flowwatch import FlowReloader
from taskrunner.service import TaskService
from taskrunner.store.memory import InMemoryTaskRepository
from taskrunner.versions import FlowVersions

SIBLINGS = Path(__file__).resolve().parents[1] / "flows" / "siblings"

CALLER = """\
name: caller
input:
  n: {type: integer}
start: call
states:
  call:
    type: flow
    flow: double
    input: {n: $input.n}
    retry: {max_attempts: 2, interval_seconds: 0}
    catch:
      - errors: ["*"]
        next: failed
    next: add
  add:
    type: task
    tool: add
    args: {a: $states.call.value, b: 1}
    next: done
  done:
    type: succeed
    output: {total: $states.add.sum}
  failed:
    type: fail
    error: Failed
    message: "{$error.state}: {$error.message}"
"""

DOUBLE_V2 = (SIBLINGS / "double.yaml").read_text().replace("Twice a whole", "Two times a")


@pytest.fixture
def flows(tmp_path: Path) -> Path:
    """A flows directory: the corpus's siblings (`double`, `shout`, `pong`, `relay`) and
    `caller`, which calls `double`."""
    directory = tmp_path / "flows"
    shutil.copytree(SIBLINGS, directory)
    (directory / "caller.yaml").write_text(CALLER)
    return directory


def codes(catalog: FlowCatalog, file: str) -> list[tuple[str, int, str]]:
    [skipped] = [item for item in catalog.skipped if item.path.name == file]
    return [(item.code, item.line, item.message) for item in skipped.problems]


# -- checking against the called flow --------------------------------------------------


def test_a_caller_loads_typed_by_the_flow_it_calls(flows: Path, checker: FlowChecker) -> None:
    catalog = FlowCatalog.load(flows, checker)
    assert catalog.skipped == ()
    signature = catalog.checker.flows["caller"]
    assert signature is not None
    assert signature.calls == {"double"}
    assert signature.output.describe() == "object {total: integer}"
    # `double`'s output is an integer, so `add` of it and 1 is too.


def test_the_input_is_checked_field_by_field(flows: Path, checker: FlowChecker) -> None:
    (flows / "caller.yaml").write_text(
        CALLER.replace("input: {n: $input.n}", 'input: {n: "two", m: 1}')
    )
    catalog = FlowCatalog.load(flows, checker)
    assert [(code, line) for code, line, _ in codes(catalog, "caller.yaml")] == [
        ("type.mismatch", 9),
        ("flow.input", 9),
    ]


def test_a_defaulted_field_may_be_left_out_and_an_unknown_one_may_not(
    flows: Path, checker: FlowChecker
) -> None:
    catalog = FlowCatalog.load(flows, checker)
    text = CALLER.replace("flow: double", "flow: shout").replace(
        "input: {n: $input.n}", "input: {text: hi}"
    )
    text = text.replace("$states.call.value", "1")
    assert _check(catalog.checker, text) == []
    assert _check(catalog.checker, text.replace("{text: hi}", "{txt: hi}")) == [
        ("flow.input", "the flow `shout` declares no input field `txt`", "did you mean `text`?"),
        (
            "flow.input",
            "the flow `shout` needs the input field `text`, which this input lacks",
            "give every input field the flow declares without a default or `optional`",
        ),
    ]


def test_the_output_is_the_union_of_the_succeed_states(checker: FlowChecker) -> None:
    branching = """\
name: either
input:
  a: {type: integer}
start: pick
states:
  pick:
    type: choice
    rules:
      - when: {value: $input.a, gt: 0}
        next: positive
    default: other
  positive:
    type: succeed
    output: {sign: plus, size: $input.a}
  other:
    type: succeed
    output: {sign: minus}
"""
    flow = checker.check(_yaml(branching)).flow
    assert flow is not None
    output = checker.signature(flow).output
    assert output.kinds == {"object"}
    caller = checker.with_flows({"either": checker.signature(flow)})
    use = CALLER.replace("flow: double", "flow: either").replace("{n: $input.n}", "{a: 1}")
    assert _check(caller, use.replace("$states.call.value", "$states.call.size")) == []
    problems = _check(caller, use.replace("$states.call.value", "$states.call.sign"))
    assert [code for code, _, _ in problems] == ["type.mismatch"]
    problems = _check(caller, use.replace("$states.call.value", "$states.call.value"))
    assert [code for code, _, _ in problems] == ["ref.unknown-field"]


def test_an_unknown_flow_gets_a_did_you_mean(checker: FlowChecker, flows: Path) -> None:
    catalog = FlowCatalog.load(flows, checker)
    problems = _check(catalog.checker, CALLER.replace("flow: double", "flow: doubel"))
    assert problems[0] == ("flow.unknown", "there is no flow `doubel`", "did you mean `double`?")


def test_a_flow_that_does_not_load_is_not_called_unknown(flows: Path, checker: FlowChecker) -> None:
    (flows / "double.yaml").write_text(DOUBLE_V2.replace("tool: add", "tool: nope"))
    catalog = FlowCatalog.load(flows, checker)
    assert {item.path.name for item in catalog.skipped} == {"double.yaml", "caller.yaml"}
    assert codes(catalog, "caller.yaml")[0][:2] == ("flow.unknown", 8)
    assert "does not load" in codes(catalog, "caller.yaml")[0][2]


# -- cycles ---------------------------------------------------------------------------


def test_flows_in_a_cycle_do_not_load_and_each_names_it(flows: Path, checker: FlowChecker) -> None:
    # `relay` calls `pong`; now `pong` calls `relay` back.
    pong = (flows / "pong.yaml").read_text()
    (flows / "pong.yaml").write_text(
        pong.replace(
            "start: done\nstates:\n",
            "start: back\nstates:\n  back:\n    type: flow\n    flow: relay\n"
            "    input: {n: $input.n}\n    next: done\n",
        )
    )
    catalog = FlowCatalog.load(flows, checker)
    assert "pong" not in catalog.names()
    assert "relay" not in catalog.names()
    assert "caller" in catalog.names()
    assert codes(catalog, "pong.yaml") == [
        ("flow.cycle", 10, "flows call each other in a cycle: `pong` -> `relay` -> `pong`")
    ]
    assert codes(catalog, "relay.yaml") == [
        ("flow.cycle", 10, "flows call each other in a cycle: `relay` -> `pong` -> `relay`")
    ]


def test_a_flow_that_calls_itself_does_not_load(flows: Path, checker: FlowChecker) -> None:
    (flows / "caller.yaml").write_text(CALLER.replace("flow: double", "flow: caller"))
    catalog = FlowCatalog.load(flows, checker)
    assert codes(catalog, "caller.yaml")[0] == (
        "flow.cycle",
        8,
        "flows call each other in a cycle: `caller` -> `caller`",
    )


def test_one_document_closes_a_cycle_through_the_catalog(flows: Path, checker: FlowChecker) -> None:
    """What `POST /flows/validate` sees: the catalog's checker, and one new document."""
    catalog = FlowCatalog.load(flows, checker)
    new_double = DOUBLE_V2.replace("    next: done\n  done:", "    next: loop\n  done:")
    new_double += "  loop:\n    type: flow\n    flow: caller\n    input: {n: 1}\n    next: done\n"
    problems = _check(catalog.checker, new_double)
    assert problems[0][:2] == (
        "flow.cycle",
        "flows call each other in a cycle: `double` -> `caller` -> `double`",
    )


def test_the_call_graph_is_grouped_callees_first() -> None:
    calls = {"a": {"b"}, "b": {"c"}, "c": set(), "x": {"y"}, "y": {"x", "c"}, "s": {"s"}}
    groups = list(cyclic_groups(calls))
    assert sorted(map(tuple, groups)) == [("a",), ("b",), ("c",), ("s",), ("x", "y")]
    position = {name: index for index, group in enumerate(groups) for name in group}
    assert position["c"] < position["b"] < position["a"]
    assert position["c"] < position["x"]
    assert is_cyclic(["x", "y"], calls)
    assert is_cyclic(["s"], calls)
    assert not is_cyclic(["a"], calls)


def test_a_long_chain_of_flows_needs_no_deep_recursion() -> None:
    calls = {f"f{index}": {f"f{index + 1}"} for index in range(5_000)}
    groups = list(cyclic_groups(calls))
    assert (groups[0], groups[-1], len(groups)) == (["f4999"], ["f0"], 5_000)


# -- pins -----------------------------------------------------------------------------


def test_the_callers_digest_covers_the_sub_flows(flows: Path, checker: FlowChecker) -> None:
    before = FlowCatalog.load(flows, checker)
    (flows / "double.yaml").write_text(DOUBLE_V2)
    after = FlowCatalog.load(flows, checker)
    assert before.get("double").flow.digest != after.get("double").flow.digest
    assert before.get("caller").flow.digest != after.get("caller").flow.digest
    assert before.get("shout").flow.digest == after.get("shout").flow.digest
    caller = after.get("caller").flow
    assert caller.pins == {"double": after.get("double").flow.digest}
    assert "pins" in caller.canonical
    assert "locked" not in caller.canonical


def test_pins_are_transitive_and_a_flow_calling_none_has_none(
    flows: Path, checker: FlowChecker
) -> None:
    (flows / "outer.yaml").write_text(
        CALLER.replace("name: caller", "name: outer")
        .replace("flow: double", "flow: relay")
        .replace("$states.call.value", "$states.call.n")
    )
    catalog = FlowCatalog.load(flows, checker)
    outer = catalog.get("outer").flow
    assert set(outer.pins) == {"relay", "pong"}
    assert catalog.get("pong").flow.pins == {}
    assert '"pins"' not in catalog.get("pong").flow.canonical


def test_a_flow_file_may_not_write_pins(checker: FlowChecker) -> None:
    document = _yaml(CALLER)
    document["pins"] = {"double": "sha256:0"}
    result = checker.check(document)
    assert result.flow is None
    refused = [item for item in result.diagnostics if item.code == "schema.unknown-key"]
    assert [item.path for item in refused] == ["/pins"]


def test_the_flow_state_runs_the_pinned_version(flows: Path, checker: FlowChecker) -> None:
    catalog = FlowCatalog.load(flows, checker)
    double = catalog.get("double").flow
    execution = Execution(catalog.get("caller").plan, {"n": 4})
    call = execution.decide()
    assert isinstance(call, CallTool)
    assert call.fanout is not None
    assert (call.tool, call.state, call.arguments) == ("flow", "call", {"n": 4})
    [child] = call.fanout.children
    assert (child.key, child.digest, child.input, child.validate_input) == (
        "flow",
        double.digest,
        {"n": 4},
        True,
    )
    assert child.definition == double.stored_definition()
    assert checker.language.parse(child.definition).digest == child.digest
    execution.record(call.fanout.join(call, [ChildResult("flow", "succeeded", {"value": 8})]))
    add = execution.decide()
    assert isinstance(add, CallTool)
    assert add.arguments == {"a": 8, "b": 1}


def test_a_child_carries_the_versions_it_pins_itself(flows: Path, checker: FlowChecker) -> None:
    (flows / "outer.yaml").write_text(
        CALLER.replace("name: caller", "name: outer")
        .replace("flow: double", "flow: relay")
        .replace("$states.call.value", "$states.call.n")
    )
    catalog = FlowCatalog.load(flows, checker)
    call = Execution(catalog.get("outer").plan, {"n": 1}).decide()
    assert isinstance(call, CallTool)
    assert call.fanout is not None
    [child] = call.fanout.children
    relay = checker.language.parse(child.definition)
    assert relay.digest == catalog.get("relay").flow.digest
    grandchild = Execution(FlowPlan(relay, checker.registry), {"n": 1}).decide()
    assert isinstance(grandchild, CallTool)
    assert grandchild.fanout is not None
    assert grandchild.fanout.children[0].digest == catalog.get("pong").flow.digest


def test_a_failed_sub_flow_is_retried_then_caught(flows: Path, checker: FlowChecker) -> None:
    execution = Execution(FlowCatalog.load(flows, checker).get("caller").plan, {"n": 4})
    for attempt in (1, 2):
        call = execution.decide()
        assert isinstance(call, CallTool)
        assert call.fanout is not None
        assert call.attempt == attempt
        failed = ChildResult("flow", "failed", error_kind="Boom", error_message="no")
        execution.record(call.fanout.join(call, [failed]))
    ended = execution.decide()
    assert isinstance(ended, Fail)
    assert (ended.error.kind, ended.error.message) == ("Failed", "call: the sub-flow failed: no")


def test_an_unpinned_version_fails_the_state_instead_of_running_another(
    checker: FlowChecker,
) -> None:
    flow = checker.language.parse(_yaml(CALLER))  # parsed without the catalog: no pins
    decided = Execution(FlowPlan(flow, checker.registry), {"n": 1}).decide()
    assert isinstance(decided, Fail)
    assert decided.error.kind == "UnpinnedFlow"


def test_an_altered_locked_version_is_refused(flows: Path, checker: FlowChecker) -> None:
    caller = FlowCatalog.load(flows, checker).get("caller").flow
    definition = caller.stored_definition()
    locked = definition["locked"]
    assert isinstance(locked, dict)
    [digest] = locked
    assert version_digest(locked[digest]) == digest  # type: ignore[arg-type]
    locked[digest] = {**locked[digest], "description": "tampered"}  # type: ignore[dict-item]
    tampered = checker.language.parse(definition)
    assert tampered.digest == caller.digest  # the lock is outside the digest…
    decided = Execution(FlowPlan(tampered, checker.registry), {"n": 1}).decide()
    assert isinstance(decided, Fail)
    assert decided.error.kind == "UnpinnedFlow"


def test_a_reload_keeps_a_queued_task_on_the_versions_it_started_with(
    flows: Path, checker: FlowChecker
) -> None:
    repository = InMemoryTaskRepository()
    service = TaskService(repository, FlowCatalog.load(flows, checker))
    old_double = service.catalog.get("double").flow.digest
    started = service.enqueue_task("caller", {"n": 2})
    (flows / "double.yaml").write_text(DOUBLE_V2)
    FlowReloader(flows, service, warn=lambda line: None).reload()
    assert service.catalog.get("double").flow.digest != old_double
    task = repository.get_task(started.task.id)
    assert task is not None
    # Another process, which never saw the old files, reads the version back from the store.
    fresh = FlowVersions(repository, service.catalog)
    plan = fresh.plan(task.flow_digest, service.catalog.checker)
    call = Execution(plan, {"n": 2}).decide()
    assert isinstance(call, CallTool)
    assert call.fanout is not None
    assert call.fanout.children[0].digest == old_double
    # A task started now runs the new version.
    new_call = Execution(service.catalog.get("caller").plan, {"n": 2}).decide()
    assert isinstance(new_call, CallTool)
    assert new_call.fanout is not None
    assert new_call.fanout.children[0].digest == service.catalog.get("double").flow.digest


def test_a_catalog_of_flows_in_hand_pins_them_too(flows: Path, checker: FlowChecker) -> None:
    loaded = FlowCatalog.load(flows, checker)
    unpinned = [
        checker.language.parse(_yaml(path.read_text())) for path in sorted(flows.glob("*.yaml"))
    ]
    in_hand = FlowCatalog.of(unpinned, checker)
    assert {entry.flow.name: entry.flow.digest for entry in in_hand} == {
        entry.flow.name: entry.flow.digest for entry in loaded
    }
    with pytest.raises(ValueError, match="cycle"):
        FlowCatalog.of(
            [checker.language.parse(_yaml(CALLER.replace("flow: double", "flow: caller")))],
            checker,
        )


def test_nothing_is_finished_by_the_join_alone(flows: Path, checker: FlowChecker) -> None:
    execution = Execution(FlowCatalog.load(flows, checker).get("caller").plan, {"n": 4})
    call = execution.decide()
    assert isinstance(call, CallTool)
    assert call.fanout is not None
    execution.record(call.fanout.join(call, [ChildResult("flow", "succeeded", {"value": 8})]))
    add = execution.decide()
    assert isinstance(add, CallTool)
    execution.record(add.succeeded({"sum": 9}))
    assert execution.decide() == Finish("done", {"total": 9})


def _yaml(text: str) -> dict[str, object]:
    import yaml

    loaded = yaml.safe_load(text)
    assert isinstance(loaded, dict)
    return loaded


def _check(checker: FlowChecker, text: str) -> list[tuple[str, str, str | None]]:
    return [
        (item.code, item.message, item.hint)
        for item in checker.check(_yaml(text)).diagnostics
        if item.severity == "error"
    ]


# -- validate-flow over several files ---------------------------------------------------


def test_validate_flow_checks_the_files_given_together_and_beside_the_directory(
    flows: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from taskrunner.cli import app

    monkeypatch.setenv("TASKRUNNER_FLOWS_DIR", str(flows))
    alone = tmp_path / "alone.yaml"
    alone.write_text(CALLER.replace("name: caller", "name: alone").replace("double", "triple"))
    triple = tmp_path / "triple.yaml"
    triple.write_text(DOUBLE_V2.replace("name: double", "name: triple"))
    runner = CliRunner()
    # `triple` is known only when its file is given too; `double` from the directory.
    first = runner.invoke(app, ["validate-flow", str(alone)])
    assert first.exit_code == 1
    assert "flow.unknown there is no flow `triple`" in first.output
    both = runner.invoke(app, ["validate-flow", str(alone), str(triple)])
    assert both.exit_code == 0, both.output
    beside = tmp_path / "beside.yaml"
    beside.write_text(CALLER.replace("name: caller", "name: beside"))
    assert runner.invoke(app, ["validate-flow", str(beside)]).exit_code == 0
    # A file given replaces the directory's flow of its name: here, to close a cycle.
    looping = tmp_path / "double.yaml"
    looping.write_text(
        DOUBLE_V2.replace("    next: done\n  done:", "    next: loop\n  done:")
        + "  loop:\n    type: flow\n    flow: caller\n    input: {n: 1}\n    next: done\n"
    )
    cycle = runner.invoke(app, ["validate-flow", str(looping)])
    assert cycle.exit_code == 1
    assert "flow.cycle flows call each other in a cycle: `double` -> `caller` -> `double`" in (
        cycle.output
    )

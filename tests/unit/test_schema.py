"""The published JSON Schema: generated from the models, committed, and precise."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from taskrunner.engine.schema import flow_schema_text
from taskrunner.engine.shape import check_shape, make_validator
from taskrunner.engine.validate import FlowChecker
from taskrunner.tools import ToolRegistry

COMMITTED = Path(__file__).resolve().parents[2] / "schema" / "flow.schema.json"


def test_the_committed_schema_is_the_generated_one(registry: ToolRegistry) -> None:
    assert COMMITTED.read_text() == flow_schema_text(registry), (
        "schema/flow.schema.json drifted from the models: "
        "run `uv run taskrunner schema > schema/flow.schema.json`"
    )


def test_the_schema_is_a_valid_draft_2020_12_schema(checker: FlowChecker) -> None:
    Draft202012Validator.check_schema(checker.schema)
    assert checker.schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"


def test_no_opaque_one_of_remains(checker: FlowChecker) -> None:
    assert '"oneOf"' not in json.dumps(checker.schema)


def _flow(state: dict[str, object]) -> dict[str, object]:
    return {
        "name": "f",
        "start": "s",
        "states": {"s": {"type": "task", "next": "done", **state}, "done": {"type": "succeed"}},
    }


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        (
            {"tool": "add", "args": {"a": "x", "b": 1}},
            [("schema.type", "/states/s/args/a")],
        ),
        (
            {"tool": "add", "args": {"a": True, "b": 1}},
            [("schema.type", "/states/s/args/a")],
        ),
        (
            {"tool": "add", "args": {"a": 1}},
            [("schema.required", "/states/s/args")],
        ),
        (
            {"tool": "add", "args": {"a": 1, "b": 2, "c": 3}},
            [("schema.unknown-key", "/states/s/args/c")],
        ),
        (
            {"tool": "echo", "args": {"text": 5}},
            [("schema.type", "/states/s/args/text")],
        ),
        (
            {"tool": "ad", "args": {}},
            [("tool.unknown", "/states/s/tool")],
        ),
    ],
    ids=["string-for-number", "bool-for-number", "missing", "extra", "int-for-string", "tool"],
)
def test_errors_name_the_tool_field_not_a_union(
    checker: FlowChecker, state: dict[str, object], expected: list[tuple[str, str]]
) -> None:
    found = check_shape(_flow(state), make_validator(checker.schema))  # type: ignore[arg-type]
    assert [(item.code, item.path) for item in found] == expected
    assert all("valid under" not in item.message for item in found)


def test_an_unknown_tool_is_named_with_a_suggestion(checker: FlowChecker) -> None:
    [found] = check_shape(_flow({"tool": "ad"}), make_validator(checker.schema))  # type: ignore[arg-type]
    assert found.message == "unknown tool `ad`"
    assert found.hint == "did you mean `add`?"


def test_a_wrong_argument_type_says_what_was_expected(checker: FlowChecker) -> None:
    state = {"tool": "add", "args": {"a": "2", "b": 1}}
    [found] = check_shape(_flow(state), make_validator(checker.schema))  # type: ignore[arg-type]
    assert found.message == (
        "expected number (or a reference such as `$input.NAME`), got string '2'"
    )


def test_integers_are_whole_numbers_without_a_fraction(checker: FlowChecker) -> None:
    validator = make_validator({"type": "integer"})
    assert validator.is_valid(2)
    assert not validator.is_valid(2.0)
    assert not validator.is_valid(True)

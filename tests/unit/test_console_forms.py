"""The console's form generated from a flow's input, read back into a task's input, and
how its pages show times, durations, data and a choice's decision."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from pydantic import JsonValue

from taskrunner.engine.model import InputField
from taskrunner.ui.forms import blank_form, control_of, place_problems, read_form
from taskrunner.ui.present import choice_decision, duration, iso_time, pretty, timeline
from taskrunner.views import StepView

DECLARED = {
    "text": InputField(type="string"),
    "count": InputField(type="integer", minimum=1, maximum=9, default=3),
    "ratio": InputField(type="number", optional=True),
    "loud": InputField(type="boolean", default=True),
    "size": InputField(type="string", enum=["s", "m", "l"], default="m"),
    "level": InputField(type="integer", enum=[1, 2]),
    "tags": InputField(type="array", items=InputField(type="string"), optional=True),
    "note": InputField(type="string", nullable=True, optional=True),
}


def test_each_kind_of_field_gets_the_control_that_fits() -> None:
    assert {name: control_of(spec) for name, spec in DECLARED.items()} == {
        "text": "text",
        "count": "integer",
        "ratio": "number",
        "loud": "checkbox",
        "size": "select",
        "level": "select",
        "tags": "json",
        "note": "json",
    }


def test_the_blank_form_shows_defaults_and_documents_each_field() -> None:
    fields = {field.name: field for field in blank_form(DECLARED)}
    assert fields["count"].value == "3"
    assert fields["count"].constraints == ["≥ 1", "≤ 9"]
    assert fields["count"].step == "1"
    assert fields["ratio"].step == "any"
    assert fields["loud"].checked
    assert fields["size"].value == "m"
    assert fields["level"].options == [("1", "1"), ("2", "2")]
    assert fields["tags"].type_text == "array of string"
    assert fields["note"].type_text == "string or null"
    assert fields["count"].default_text == "3"
    assert fields["text"].default_text == ""


def sent(**values: str) -> dict[str, str]:
    return {f"input.{name}": value for name, value in values.items()}


def test_a_sent_form_becomes_json_values_and_empty_boxes_are_left_out() -> None:
    read = read_form(
        DECLARED,
        sent(text="", count="4", ratio="", loud="", size="l", level="2", tags='["a"]', note=""),
    )
    assert read.problems == 0
    expected: dict[str, JsonValue] = {
        "text": "",
        "count": 4,
        "loud": False,
        "size": "l",
        "level": 2,
        "tags": ["a"],
    }
    assert read.data == expected
    assert read_form(DECLARED, sent(note="null", ratio="2.5")).data["note"] is None
    assert read_form(DECLARED, sent(ratio="2.5")).data["ratio"] == 2.5


@pytest.mark.parametrize(
    ("name", "text", "problem"),
    [
        ("count", "2.5", "'2.5' is not a whole number"),
        ("count", "ten", "'ten' is not a whole number"),
        ("ratio", "inf", "'inf' is not a number"),
        ("ratio", "1e999", "'1e999' is not a number"),
        ("level", "3", "not one of the choices offered"),
        ("tags", "[1,", "not valid JSON"),
        ("note", "NaN", "not valid JSON"),
    ],
)
def test_text_that_is_no_value_of_its_field_is_a_problem_of_that_field(
    name: str, text: str, problem: str
) -> None:
    read = read_form(DECLARED, sent(**{name: text}))
    assert read.problems == 1
    (field,) = [field for field in read.fields if field.name == name]
    assert field.value == text
    assert problem in field.problems[0]
    assert name not in read.data


def test_the_flow_s_problems_go_next_to_their_fields() -> None:
    fields = blank_form(DECLARED)
    general = place_problems(
        fields,
        ["count: Input should be a valid integer", "tags.0: bad", "zz: not an input", "whole"],
    )
    by_name = {field.name: field for field in fields}
    assert by_name["count"].problems == ["Input should be a valid integer"]
    assert by_name["tags"].problems == ["bad"]
    assert general == ["zz: not an input", "whole"]


def test_times_carry_their_zone_and_durations_read_as_words() -> None:
    moment = datetime(2026, 1, 2, 4, 4, 5, 678, tzinfo=timezone(timedelta(hours=1)))
    assert iso_time(moment) == "2026-01-02T03:04:05Z"
    assert iso_time(None) == ""
    assert [duration(s) for s in (0.0123, 3.44, 125, 3720)] == [
        "12 ms",
        "3.4 s",
        "2 min 5 s",
        "1 h 2 min",
    ]


def test_large_data_is_cut_with_a_count_of_what_was_left_out() -> None:
    small = pretty({"a": 1})
    assert small.text == '{\n  "a": 1\n}'
    assert small.cut == 0
    large = pretty({"text": "x" * 50}, limit=20)
    assert len(large.text) == 20
    assert large.cut == len(pretty({"text": "x" * 50}).text) - 20


def step(
    seq: int, tool: str, output: dict[str, JsonValue] | None, start: float, end: float
) -> StepView:
    base = datetime(2026, 1, 1, tzinfo=UTC)
    return StepView(
        seq=seq,
        state="s",
        tool=tool,
        attempt=1,
        status="succeeded",
        input={},
        output=output,
        started_at=base + timedelta(seconds=start),
        finished_at=base + timedelta(seconds=end),
    )


def test_a_choice_s_decision_reads_as_words() -> None:
    assert choice_decision(step(1, "choice", {"rule": 2, "next": "big"}, 0, 0)) == (
        "rule 2 matched → big"
    )
    assert choice_decision(step(1, "choice", {"rule": "default", "next": "small"}, 0, 0)) == (
        "no rule matched → default → small"
    )
    assert choice_decision(step(1, "echo", {"text": "hi"}, 0, 0)) is None


def test_the_timeline_places_each_step_by_its_start_and_length() -> None:
    bars = timeline([step(1, "a", None, 0, 1), step(2, "b", None, 3, 4)])
    assert [(bar.offset, bar.width) for bar in bars] == [(0.0, 25.0), (75.0, 25.0)]
    assert timeline([]) == []

"""A task's input from the command line: `--input JSON` or `--input @file.json`, then one
option per field the flow declares (`--text hello --a 2`), typed as the flow says."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import JsonValue

from taskrunner.engine.flow import Flow
from taskrunner.engine.inputs import INPUT_KINDS, InputTextError
from taskrunner.engine.literals import unescape_literal
from taskrunner.engine.model import InputField
from taskrunner.errors import InputOptionError, JsonTextError, clipped
from taskrunner.jsontext import parse_json

MAX_INPUT_BYTES = 1024 * 1024


def read_input(flow: Flow, given: str | None, extra: list[str]) -> dict[str, JsonValue]:
    data = _base(given)
    fields = _field_options(flow, extra)
    for name, text in fields.items():
        data[name] = _convert(name, flow.input[name], text)
    return data


def options_help(flow: Flow) -> str:
    """The flow's input options, for `run-flow --flow NAME --help`."""
    if not flow.input:
        return f"The flow {flow.name} declares no input."
    lines = [f"Input of the flow {flow.name} (or give it whole with --input):"]
    options = {
        name: f"--{name}/--no-{name}" if spec.type == "boolean" else f"--{name} {spec.type.upper()}"
        for name, spec in flow.input.items()
    }
    width = max(len(option) for option in options.values())
    for name, spec in flow.input.items():
        need = (
            f"Default: {json.dumps(unescape_literal(spec.default))}."
            if spec.has_default
            else "Optional."
            if spec.optional
            else "Required."
        )
        about = f" {spec.description}" if spec.description else ""
        lines.append(f"  {options[name]:<{width}}  {need}{about}")
    return "\n".join(lines)


def _base(given: str | None) -> dict[str, JsonValue]:
    if given is None:
        return {}
    text = given
    if given.startswith("@"):
        path = Path(given[1:])
        try:
            with open(path, "rb") as handle:
                raw = handle.read(MAX_INPUT_BYTES + 1)
        except OSError as exc:
            raise InputOptionError(f"--input {given}: {exc.strerror or exc}") from None
        if len(raw) > MAX_INPUT_BYTES:
            raise InputOptionError(f"--input {given}: larger than {MAX_INPUT_BYTES:,} bytes")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise InputOptionError(f"--input {given}: not UTF-8") from None
    try:
        data = parse_json(text)
    except JsonTextError as exc:
        raise InputOptionError(f"--input: {exc.message}") from None
    if not isinstance(data, dict):
        raise InputOptionError('--input must be a JSON object, such as \'{"text": "hi"}\'')
    return data


def _field_options(flow: Flow, extra: list[str]) -> dict[str, str]:
    """Each field's text, by name. A boolean field is a flag: `--loud` says true and
    `--no-loud` false (`--loud=false` too); any other field takes a value, `--a 2` or
    `--a=2`. A field given twice is refused rather than one of the two silently kept."""
    found: dict[str, str] = {}
    spelt: dict[str, str] = {}  # how each field was given, to quote it back
    flags = {name for name, spec in flow.input.items() if spec.type == "boolean"}
    last: str | None = None
    rest = list(extra)
    while rest:
        word = rest.pop(0)
        if not word.startswith("--"):
            after = ""
            if last is not None and last in flags:
                after = f" after {spelt[last]}: a boolean is a flag"
            raise InputOptionError(f"unexpected argument {word!r}{after}")
        option, equals, value = word.partition("=")
        name = option[2:]
        negated = name.startswith("no-") and name[3:] in flags
        if negated:
            name = name[3:]
            if equals:
                raise InputOptionError(f"{option} takes no value; it says {name} is false")
            value = "false"
        elif name not in flow.input:
            known = ", ".join(_option_names(flow)) or "none"
            raise InputOptionError(f"no such option {option}; the flow {flow.name} takes {known}")
        elif not equals:
            if name in flags:
                value = "true"
            elif not rest:
                raise InputOptionError(f"{option} needs a value")
            else:
                value = rest.pop(0)
        given = word if equals or name in flags else f"{word} {value}"
        if name in found:
            whole = " (an array or an object is one JSON value: --{name} '[1, 2]')"
            raise InputOptionError(
                f"the field {name} is given twice ({spelt[name]}, then {given}): give it once"
                + (whole.format(name=name) if flow.input[name].type in ("array", "object") else "")
            )
        found[name] = value
        spelt[name] = given
        last = name
    return found


def _option_names(flow: Flow) -> list[str]:
    return [
        f"--{name}/--no-{name}" if spec.type == "boolean" else f"--{name}"
        for name, spec in flow.input.items()
    ]


def _convert(name: str, spec: InputField, text: str) -> JsonValue:
    kind = INPUT_KINDS[spec.type]
    try:
        return kind.from_text(text)
    except InputTextError:
        raise InputOptionError(f"--{name} {clipped(text, 80)!r}: not {kind.article}") from None

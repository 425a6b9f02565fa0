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
    options = {name: f"--{name} {spec.type.upper()}" for name, spec in flow.input.items()}
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
    found: dict[str, str] = {}
    rest = list(extra)
    while rest:
        word = rest.pop(0)
        if not word.startswith("--"):
            raise InputOptionError(f"unexpected argument {word!r}")
        name, equals, value = word[2:].partition("=")
        if name not in flow.input:
            known = ", ".join(f"--{field}" for field in flow.input) or "none"
            raise InputOptionError(f"no such option --{name}; the flow {flow.name} takes {known}")
        if not equals:
            if not rest:
                raise InputOptionError(f"--{name} needs a value")
            value = rest.pop(0)
        found[name] = value
    return found


def _convert(name: str, spec: InputField, text: str) -> JsonValue:
    kind = INPUT_KINDS[spec.type]
    try:
        return kind.from_text(text)
    except InputTextError:
        raise InputOptionError(f"--{name} {clipped(text, 80)!r}: not {kind.article}") from None

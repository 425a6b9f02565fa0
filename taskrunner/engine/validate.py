"""One validation engine for flow documents: shape (JSON Schema), then meaning.

The CLI's `validate-flow`, the API's `POST /flows/validate` and flow loading at start-up
all come through `FlowChecker.check`, so they report exactly the same problems.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from taskrunner.engine import types
from taskrunner.engine.checks import MeaningChecker
from taskrunner.engine.diagnostics import Diagnostic, pointer
from taskrunner.engine.flow import Flow, Language, builtin_language
from taskrunner.engine.input_checks import input_type
from taskrunner.engine.literals import check_literal_text
from taskrunner.engine.schema import flow_json_schema
from taskrunner.engine.shape import check_shape, make_validator
from taskrunner.engine.subflows import FlowSignature, called_flows
from taskrunner.engine.types import ValueType
from taskrunner.tools import ToolRegistry


@dataclass(frozen=True)
class FlowCheck:
    """The result of checking a document: the flow if it is valid (it has no error, only
    warnings if anything), and every problem, warnings included."""

    flow: Flow | None
    diagnostics: list[Diagnostic]


class FlowChecker:
    """Checks flow documents against the tools of one registry, the state kinds of one
    language (the built-in kinds unless told otherwise), and the other flows that `flow`
    states may call (by name: their signatures, or None for a flow that does not load)."""

    def __init__(
        self,
        registry: ToolRegistry,
        language: Language | None = None,
        flows: Mapping[str, FlowSignature | None] | None = None,
    ) -> None:
        self.registry = registry
        self.language = language or builtin_language()
        self.flows: Mapping[str, FlowSignature | None] = dict(flows or {})
        self.schema: dict[str, Any] = flow_json_schema(registry, self.language)
        self._validator = make_validator(self.schema)
        self._meaning = MeaningChecker(registry, self.language, self.flows)

    def with_flows(self, flows: Mapping[str, FlowSignature | None]) -> FlowChecker:
        """This checker, knowing `flows` (instead of those it knew): the schema and the
        tools' types, costly to build, are shared."""
        checker = copy.copy(self)
        checker.flows = dict(flows)
        checker._meaning = self._meaning.with_flows(checker.flows)
        return checker

    def signature(self, flow: Flow) -> FlowSignature:
        """What callers of `flow` (valid) may know of it."""
        document = flow.model_dump(mode="json", by_alias=True, exclude_unset=True)
        output = self._meaning.output_type(document)
        return FlowSignature(
            flow.name,
            _given_input(flow),
            output,
            frozenset(called_flows(document)),
            self._meaning.raises(document),
        )

    def check(self, document: object) -> FlowCheck:
        if not isinstance(document, dict):
            found = Diagnostic("yaml.not-mapping", "a flow is a mapping of keys to values")
            return FlowCheck(None, [found])
        diagnostics = check_shape(document, self._validator)
        literal = list(check_literal_text(document))
        # `default: $input.a` for an integer is one mistake, not also a type mismatch.
        taken = {item.path for item in literal}
        meaning = self._meaning.check(document)
        diagnostics += [item for item in meaning if item.path not in taken] + literal
        if any(item.severity == "error" for item in diagnostics):
            return FlowCheck(None, diagnostics)
        try:
            flow = self.language.parse(document)
        except ValidationError as exc:  # the schema should have caught it; never lose it
            return FlowCheck(None, [_from_pydantic(item) for item in exc.errors()])
        return FlowCheck(flow, diagnostics)


def _given_input(flow: Flow) -> ValueType:
    """The type of the input a caller gives: `$input`'s, but a field with a default may
    be left out (inside the flow, it is always there)."""
    declared = flow.model_dump(mode="json", by_alias=True, exclude_unset=True).get("input")
    _, inside = input_type(declared)
    schema = dict(inside.schema or {})
    defaulted = {name for name, spec in flow.input.items() if spec.has_default}
    required = schema.get("required")
    if isinstance(required, list):
        schema["required"] = [name for name in required if name not in defaulted]
    return types.of_schema(schema, inside.defs)


def _from_pydantic(error: ErrorDetails) -> Diagnostic:
    return Diagnostic("schema.invalid", str(error["msg"]), pointer(*error["loc"]))

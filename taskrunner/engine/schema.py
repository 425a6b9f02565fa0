"""The published JSON Schema of flow documents, generated from the Pydantic models.

Each state kind says what it is in the schema (`State.schema_variant`): the task state
becomes one model per registered tool, whose `args` are the tool's `Input` fields, each of
which also accepts a reference, discriminated on `tool`. The union of kinds is
discriminated on `type`. Discriminated unions are rendered as `if`/`then`
branches rather than `oneOf`, so that any JSON Schema validator (ours, an editor's) reports
the real culprit, say `args.a: expected number`, instead of "not valid under any of the
given schemas".
"""

from __future__ import annotations

import json
from typing import Any, Final

from pydantic import JsonValue
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue
from pydantic_core import core_schema

from taskrunner.engine.flow import Flow, Language, builtin_language, flow_model
from taskrunner.engine.states.charts import CHART_STATE_MARK
from taskrunner.tools import ToolRegistry

DIALECT: Final = "https://json-schema.org/draft/2020-12/schema"
STATE_DEFINITION: Final = "State"
"""The name, in `$defs`, of the union of state kinds."""


class _FlowSchemaGenerator(GenerateJsonSchema):
    def tagged_union_schema(self, schema: core_schema.TaggedUnionSchema) -> JsonSchemaValue:
        key = schema["discriminator"]
        if not isinstance(key, str):
            return super().tagged_union_schema(schema)
        choices = schema["choices"].items()
        branches = {str(tag): self.generate_inner(choice) for tag, choice in choices}
        return {
            "type": "object",
            "required": [key],
            "properties": {key: {"enum": list(branches)}},
            "allOf": [
                {
                    "if": {"properties": {key: {"const": tag}}, "required": [key]},
                    "then": branch,
                }
                for tag, branch in branches.items()
            ],
        }

    def dict_schema(self, schema: core_schema.DictSchema) -> JsonSchemaValue:
        # Pydantic renders constrained keys as `patternProperties`, which lets a key that
        # breaks the pattern through; `propertyNames` rejects it, as the model does.
        generated = super().dict_schema(schema)
        patterns = generated.pop("patternProperties", None)
        if isinstance(patterns, dict) and len(patterns) == 1:
            [(pattern, values)] = patterns.items()
            generated["propertyNames"] = {"pattern": pattern}
            generated["additionalProperties"] = values
        elif patterns is not None:
            generated["patternProperties"] = patterns
        return generated


def flow_json_schema(
    registry: ToolRegistry, language: Language | None = None
) -> dict[str, JsonValue]:
    """The JSON Schema (Draft 2020-12) of flow documents that use the tools of `registry`
    and the state kinds of `language` (the built-in ones by default)."""
    kinds = language or builtin_language()
    document = flow_model([kind.schema_variant(registry) for kind in kinds], Flow)
    generated = document.model_json_schema(schema_generator=_FlowSchemaGenerator)
    return {"$schema": DIALECT, **_with_recursive_charts(generated), "title": "taskrunner flow"}


def _with_recursive_charts(generated: dict[str, Any]) -> dict[str, Any]:
    """The schema with the union of state kinds under `$defs/State`, which the flow's
    `states` and every sub-chart's `states` (a branch's, a map's `each`) refer to."""
    reference = {"$ref": f"#/$defs/{STATE_DEFINITION}"}
    states = generated["properties"]["states"]
    union = states["additionalProperties"]
    states["additionalProperties"] = reference

    def linked(node: Any) -> Any:
        if isinstance(node, dict):
            if node.get(CHART_STATE_MARK) is True:
                return dict(reference)
            return {key: linked(value) for key, value in node.items()}
        if isinstance(node, list):
            return [linked(value) for value in node]
        return node

    defs = {**generated.get("$defs", {}), STATE_DEFINITION: union}
    found: dict[str, Any] = linked({**generated, "$defs": defs})
    return found


def flow_schema_text(registry: ToolRegistry, language: Language | None = None) -> str:
    """The schema as committed in `schema/flow.schema.json` and printed by `taskrunner schema`."""
    return json.dumps(flow_json_schema(registry, language), indent=2, ensure_ascii=False) + "\n"

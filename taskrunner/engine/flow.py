"""The flow: a state chart, and the language of state kinds it is written in.

`Flow` is what the interpreter reads: frozen, with its canonical form and digest. Which
kinds of state a flow may hold is a `Language`: the built-in kinds, or those and more (a
package's, a test's). Each language has its own model of flow documents, whose `states`
are the union of its kinds, discriminated on `type`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping
from functools import cache, cached_property
from typing import Annotated, Union

from pydantic import Field, JsonValue, create_model
from pydantic.json_schema import SkipJsonSchema

from taskrunner.engine.model import (
    MAX_STATES,
    FieldName,
    FlowName,
    InputField,
    Node,
    StateName,
)
from taskrunner.engine.states import BUILTIN_KINDS, State
from taskrunner.engine.subflows import called_flows
from taskrunner.engine.timers import MAX_WAIT_SECONDS


class Flow(Node):
    """A flow: a state chart that starts at `start` and ends in a succeed or fail state."""

    name: FlowName = Field(description="The flow's name, used to start tasks.")
    description: str | None = None
    input: dict[FieldName, InputField] = Field(
        default_factory=dict, description="The fields a task's input must have."
    )
    timeout_seconds: float | None = Field(
        default=None,
        gt=0,
        le=MAX_WAIT_SECONDS,
        description=(
            "A task that has not ended this many seconds after it was created fails with "
            "the error kind `TaskTimeout`, whatever its retries and catches."
        ),
    )
    start: StateName = Field(description="The first state.")
    states: dict[StateName, State] = Field(
        min_length=1, max_length=MAX_STATES, description="The states, by name."
    )
    """In `Flow` itself, the base of every kind; a `Language`'s model narrows it to the
    union of its kinds, so flows are read through a language (`Language.parse`)."""
    pins: SkipJsonSchema[dict[FlowName, str]] = Field(
        default_factory=dict,
        description="The digest of every flow this version calls, directly or not: written "
        "by the catalog (`Language.pin`), never in a flow file, and part of the digest.",
    )
    locked: SkipJsonSchema[dict[str, dict[str, JsonValue]]] = Field(
        default_factory=dict,
        exclude=True,
        description="The stored definitions of the pinned versions, by digest: carried "
        "with the version so that it runs without the catalog, outside the digest (each "
        "is checked against its pin when used).",
    )

    @cached_property
    def canonical(self) -> str:
        """The definition as canonical JSON: sorted keys, no insignificant whitespace."""
        document = self.model_dump(mode="json", by_alias=True, exclude_unset=True)
        return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)

    def stored_definition(self) -> dict[str, JsonValue]:
        """What the store keeps of this version: the canonical definition, and the
        versions it pins, which the language reads back as this very flow."""
        definition: dict[str, JsonValue] = json.loads(self.canonical)
        if self.locked:
            definition["locked"] = dict(self.locked)
        return definition

    @cached_property
    def digest(self) -> str:
        """The flow version: SHA-256 of the canonical definition."""
        return "sha256:" + hashlib.sha256(self.canonical.encode()).hexdigest()


class LanguageError(ValueError):
    """The state kinds do not make a language: a kind without a `type`, or two alike."""


class Language:
    """The state kinds that flows may use, and the model of flow documents made of them."""

    def __init__(self, kinds: Iterable[type[State]] = BUILTIN_KINDS) -> None:
        self._kinds: dict[str, type[State]] = {}
        for kind in kinds:
            if not kind.kind:
                raise LanguageError(f"{kind.__name__} declares no `type: Literal[...]`")
            if kind.kind in self._kinds:
                raise LanguageError(f"two state kinds have the type {kind.kind!r}")
            self._kinds[kind.kind] = kind
        self.flow_model = flow_model(self._kinds.values(), Flow)

    def parse(self, document: Mapping[str, object]) -> Flow:
        """The flow of a document (raises Pydantic's `ValidationError`)."""
        return self.flow_model.model_validate(document)

    def pin(self, flow: Flow, callees: Mapping[str, Flow]) -> Flow:
        """`flow` pinned to the versions of the flows it calls (`callees`, by name, each
        pinned already): their digests and those they pin, with their definitions. A
        flow that calls none is itself."""
        called = called_flows(flow.model_dump(mode="json", by_alias=True))
        pins: dict[str, str] = {}
        locked: dict[str, dict[str, JsonValue]] = {}
        for name in sorted(called):
            callee = callees[name]
            pins[name] = callee.digest
            locked[callee.digest] = json.loads(callee.canonical)
            pins.update(callee.pins)
            locked.update(callee.locked)
        if not pins:
            return flow
        document = flow.model_dump(mode="json", by_alias=True, exclude_unset=True)
        return self.parse({**document, "pins": pins, "locked": locked})

    def kind(self, name: object) -> type[State] | None:
        """The kind whose `type` is `name`, if any."""
        return self._kinds.get(name) if isinstance(name, str) else None

    def __iter__(self) -> Iterator[type[State]]:
        return iter(self._kinds.values())


def flow_model(variants: Iterable[object], base: type[Flow]) -> type[Flow]:
    """A subclass of `base` whose states are one of `variants`, chosen by `type`."""
    choices = tuple(variants)
    state: object = choices[0]
    if len(choices) > 1:
        state = Annotated[Union[choices], Field(discriminator="type")]  # noqa: UP007
    described = Flow.model_fields["states"].description
    return create_model(
        "Flow",
        __base__=base,
        __doc__=Flow.__doc__,
        states=(
            dict[StateName, state],  # type: ignore[valid-type]
            Field(min_length=1, max_length=MAX_STATES, description=described),
        ),
    )


@cache
def builtin_language() -> Language:
    """The language of the built-in state kinds."""
    return Language()

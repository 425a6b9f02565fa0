"""Whether every value of one schema is a value of another: the structural comparison
behind `types.accepts`, and, when it fails, where inside the value it fails and why.

What a source does not declare, it does not guarantee: an unconstrained integer does not
fit a field `ge=0`, a string without the field's `pattern` does not fit it, an object
whose field is optional does not fit a model that requires it. What the checker cannot
read (on either side) it lets through, as before: the tool's own validation has the last
word at run time.

Two readings follow Pydantic, whose models produce the schemas: an object schema with
`properties` and no `additionalProperties` is closed (a model dumps its declared fields
only), and an `object` without `properties` or an `array` without `items` is untyped, so
its insides are not compared.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from functools import cache

from jsonschema.protocols import Validator
from pydantic import JsonValue

from taskrunner.engine import schemas
from taskrunner.engine.schemas import MAX_DEPTH, Schema
from taskrunner.engine.shape import make_validator


@dataclass(frozen=True, slots=True)
class Mismatch:
    """Why a source does not fit a target."""

    inside: tuple[str, ...]
    """Where in the value, outermost first: `field \\`a\\``, `item`."""
    expected: str
    """What the target takes there."""
    problem: str
    """What is wrong with the source there: `is string`, `may lack the field \\`a\\``."""
    needs: str | None = None
    """A declaration that would make the source fit: `minimum: 0`."""

    def subject(self, outer: str) -> str:
        """The part of the value that does not fit, named from `outer` (`\\`$input.p\\``)."""
        return " of ".join([*reversed(self.inside), outer])

    def within(self, part: str) -> Mismatch:
        return replace(self, inside=(part, *self.inside))


def mismatch(
    target: Schema, target_defs: Schema | None, source: Schema, source_defs: Schema | None
) -> Mismatch | None:
    """Why a value of `source` may not be a value of `target`; None when it surely is."""
    return _Comparison(target_defs, source_defs).compare(target, source, 0)


def valid(schema: Schema, defs: Schema | None, value: JsonValue) -> bool:
    """Whether a literal value is a value of the schema (read as the published schema is
    read: `2.0` is not an integer)."""
    whole = dict(schema)
    if defs is not None:
        whole.setdefault("$defs", dict(defs))
    return _validator(json.dumps(whole, sort_keys=True)).is_valid(value)


@cache
def _validator(text: str) -> Validator:
    return make_validator(json.loads(text))


class _Comparison:
    def __init__(self, target_defs: Schema | None, source_defs: Schema | None) -> None:
        self.tdefs = target_defs
        self.sdefs = source_defs

    def compare(self, target: Schema, source: Schema, depth: int) -> Mismatch | None:
        if depth > MAX_DEPTH:
            return None
        target = schemas.resolve(target, self.tdefs)
        source = schemas.resolve(source, self.sdefs)
        targets = schemas.branches(target, self.tdefs)
        sources = schemas.branches(source, self.sdefs)
        if targets is None or sources is None:
            return None
        expected = schemas.describe(target, self.tdefs)
        for branch in sources:
            values = schemas.literals(branch)
            if values is not None:
                for value in values:
                    if not valid(target, self.tdefs, value):
                        return Mismatch((), expected, f"may be {json.dumps(value)}")
                continue
            problem = self._branch(targets, branch, expected, depth)
            if problem is not None:
                if len(sources) > 1 and not problem.inside and problem.needs is None:
                    found = schemas.describe(source, self.sdefs)
                    return replace(problem, problem=f"is {found}")
                return problem
        return None

    def _branch(
        self, targets: list[Schema], source: Schema, expected: str, depth: int
    ) -> Mismatch | None:
        kind = schemas.kind(source)
        found = schemas.describe(source, self.sdefs)
        first: Mismatch | None = None
        for target in targets:
            tkind = schemas.kind(target)
            if not (tkind == kind or (tkind == "number" and kind == "integer")):
                continue
            problem = self._same_kind(target, source, kind, expected, found, depth)
            if problem is None:
                return None
            first = first or problem
        return first or Mismatch((), expected, f"is {found}")

    def _same_kind(
        self, target: Schema, source: Schema, kind: str, expected: str, found: str, depth: int
    ) -> Mismatch | None:
        values = schemas.literals(target)
        if values is not None:
            shown = ", ".join(json.dumps(value) for value in values)
            return Mismatch((), expected, f"is {found}", f"enum: [{shown}]")
        if kind in ("integer", "number"):
            return _numbers(target, source, kind, expected, found)
        if kind == "string":
            return _strings(target, source, expected, found)
        if kind == "array":
            return self._arrays(target, source, expected, found, depth)
        if kind == "object":
            return self._objects(target, source, expected, depth)
        return None

    def _arrays(
        self, target: Schema, source: Schema, expected: str, found: str, depth: int
    ) -> Mismatch | None:
        problem = _sizes(target, source, "minItems", "maxItems", expected, found)
        if problem is not None:
            return problem
        titems, sitems = target.get("items"), source.get("items")
        if not isinstance(titems, Mapping) or not isinstance(sitems, Mapping):
            return None
        inner = self.compare(titems, sitems, depth + 1)
        return inner.within("item") if inner else None

    def _objects(
        self, target: Schema, source: Schema, expected: str, depth: int
    ) -> Mismatch | None:
        tprops = _properties(target)
        sprops = _properties(source)
        textra = target.get("additionalProperties", not tprops)
        sextra = source.get("additionalProperties", not sprops)
        if not sprops and sextra in (True, {}):
            return None  # untyped: nothing to compare
        for name in sorted(_required(target) - _required(source)):
            return Mismatch((), expected, f"may lack the field `{name}`")
        return self._fields(tprops, textra, sprops, sextra, expected, depth)

    def _fields(
        self,
        tprops: Mapping[str, JsonValue],
        textra: JsonValue,
        sprops: Mapping[str, JsonValue],
        sextra: JsonValue,
        expected: str,
        depth: int,
    ) -> Mismatch | None:
        for name, tsub in tprops.items():
            ssub = sprops.get(name, sextra if name not in sprops else None)
            if isinstance(tsub, Mapping) and isinstance(ssub, Mapping):
                inner = self.compare(tsub, ssub, depth + 1)
                if inner is not None:
                    return inner.within(f"field `{name}`")
        for name, ssub in sprops.items():
            if name in tprops:
                continue
            if textra is False:
                return Mismatch((), expected, f"has a field `{name}` that it does not take")
            if isinstance(textra, Mapping) and isinstance(ssub, Mapping):
                inner = self.compare(textra, ssub, depth + 1)
                if inner is not None:
                    return inner.within(f"field `{name}`")
        if sextra is not False and textra is False:
            return Mismatch((), expected, "may have other fields")
        if isinstance(sextra, Mapping) and isinstance(textra, Mapping):
            inner = self.compare(textra, sextra, depth + 1)
            if inner is not None:
                return inner.within("each field")
        return None


def _properties(schema: Schema) -> Mapping[str, JsonValue]:
    found = schema.get("properties")
    return found if isinstance(found, Mapping) else {}


def _required(schema: Schema) -> set[str]:
    found = schema.get("required")
    return {name for name in found if isinstance(name, str)} if isinstance(found, list) else set()


def _numbers(
    target: Schema, source: Schema, kind: str, expected: str, found: str
) -> Mismatch | None:
    if schemas.kind(target) == "integer" and kind == "number":
        return Mismatch((), expected, f"is {found}")
    integer = kind == "integer"
    tlow, slow = schemas.lower_bound(target, integer), schemas.lower_bound(source, integer)
    if tlow is not None and not _within_lower(tlow, slow):
        word = "exclusiveMinimum" if tlow[1] else "minimum"
        return Mismatch((), expected, f"is {found}", f"{word}: {_plain(tlow[0])}")
    thigh, shigh = schemas.upper_bound(target, integer), schemas.upper_bound(source, integer)
    if thigh is not None and not _within_upper(thigh, shigh):
        word = "exclusiveMaximum" if thigh[1] else "maximum"
        return Mismatch((), expected, f"is {found}", f"{word}: {_plain(thigh[0])}")
    step = target.get("multipleOf")
    if isinstance(step, int | float) and not isinstance(step, bool):
        own = source.get("multipleOf")
        divides = isinstance(own, int | float) and own != 0 and (own / step).is_integer()
        if not divides and not (integer and float(step) == 1.0):
            return Mismatch((), expected, f"is {found}", f"multipleOf: {_plain(step)}")
    return None


def _within_lower(target: schemas.Bound, source: schemas.Bound | None) -> bool:
    if source is None:
        return False
    return source[0] > target[0] or (source[0] == target[0] and (source[1] or not target[1]))


def _within_upper(target: schemas.Bound, source: schemas.Bound | None) -> bool:
    if source is None:
        return False
    return source[0] < target[0] or (source[0] == target[0] and (source[1] or not target[1]))


def _strings(target: Schema, source: Schema, expected: str, found: str) -> Mismatch | None:
    pattern = target.get("pattern")
    if isinstance(pattern, str) and source.get("pattern") != pattern:
        return Mismatch((), expected, f"is {found}", f"pattern: {json.dumps(pattern)}")
    return _sizes(target, source, "minLength", "maxLength", expected, found)


def _sizes(
    target: Schema, source: Schema, low: str, high: str, expected: str, found: str
) -> Mismatch | None:
    tlow, slow = target.get(low), source.get(low)
    if isinstance(tlow, int) and tlow > 0 and not (isinstance(slow, int) and slow >= tlow):
        return Mismatch((), expected, f"is {found}", f"{low}: {tlow}")
    thigh, shigh = target.get(high), source.get(high)
    if isinstance(thigh, int) and not (isinstance(shigh, int) and shigh <= thigh):
        return Mismatch((), expected, f"is {found}", f"{high}: {thigh}")
    return None


def _plain(value: JsonValue) -> str:
    return json.dumps(value)

"""The tool registry: the built-in tools plus those other packages register.

A package adds tools without any change to taskrunner by declaring entry points in the
group `taskrunner.tools`, one per tool, named as the tool and pointing at a `Tool`:

    [project.entry-points."taskrunner.tools"]
    upper = "mypackage.tools:upper"
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from importlib.metadata import EntryPoint, entry_points
from typing import Final

from taskrunner.errors import ToolRegistryError, UnknownToolError
from taskrunner.tools.base import Tool
from taskrunner.tools.builtin import BUILTIN_TOOLS

ENTRY_POINT_GROUP: Final = "taskrunner.tools"
RESERVED_NAMES: Final = frozenset({"wait", "choice", "parallel", "map", "flow"})
"""Tool names that a task's history uses for steps of its own (a wait state's, a choice
state's decision, and the joined step of a fan-out: `engine.fanout.FANOUT_TOOLS`)."""


class ToolRegistry:
    """An immutable set of tools, looked up by name."""

    def __init__(self, tools: Iterable[Tool]) -> None:
        by_name: dict[str, Tool] = {}
        for item in tools:
            if item.name in RESERVED_NAMES:
                raise ToolRegistryError(f"the tool name {item.name!r} is reserved for engine steps")
            if item.name in by_name:
                raise ToolRegistryError(f"two tools are named {item.name!r}")
            by_name[item.name] = item
        self._tools = by_name

    def get(self, name: str) -> Tool:
        try:
            return self._tools[name]
        except KeyError:
            raise UnknownToolError(name, self.names()) from None

    def names(self) -> list[str]:
        return sorted(self._tools)

    def __contains__(self, name: object) -> bool:
        return name in self._tools

    def __iter__(self) -> Iterator[Tool]:
        return iter(sorted(self._tools.values(), key=lambda item: item.name))

    def __len__(self) -> int:
        return len(self._tools)


def builtin_registry() -> ToolRegistry:
    """The tools that ship with taskrunner, and no others."""
    return ToolRegistry(BUILTIN_TOOLS)


def load_registry() -> ToolRegistry:
    """The built-in tools plus every tool registered in the `taskrunner.tools` entry points."""
    plugins = [_load(point) for point in entry_points(group=ENTRY_POINT_GROUP)]
    return ToolRegistry([*BUILTIN_TOOLS, *plugins])


def _load(point: EntryPoint) -> Tool:
    origin = f"entry point {point.name!r} ({point.value}"
    origin += f", from {point.dist.name})" if point.dist is not None else ")"
    try:
        loaded = point.load()
    except Exception as exc:  # a broken plugin must be named, not crash start-up blindly
        raise ToolRegistryError(f"{origin} failed to load: {exc}") from exc
    if not isinstance(loaded, Tool):
        raise ToolRegistryError(f"{origin} is a {type(loaded).__name__}, not a taskrunner Tool")
    if loaded.name != point.name:
        raise ToolRegistryError(f"{origin} provides the tool {loaded.name!r}: names must match")
    return loaded

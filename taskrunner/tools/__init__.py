"""Tool contracts: typed, pure functions that flows call by name."""

from taskrunner.tools.base import (
    GENERIC_ERROR,
    INVALID_INPUT,
    INVALID_OUTPUT,
    TIMEOUT,
    JsonObject,
    Number,
    Tool,
    ToolCallError,
    ToolError,
    ToolModel,
    tool,
)
from taskrunner.tools.registry import ToolRegistry, builtin_registry, load_registry

__all__ = [
    "GENERIC_ERROR",
    "INVALID_INPUT",
    "INVALID_OUTPUT",
    "TIMEOUT",
    "JsonObject",
    "Number",
    "Tool",
    "ToolCallError",
    "ToolError",
    "ToolModel",
    "ToolRegistry",
    "builtin_registry",
    "load_registry",
    "tool",
]

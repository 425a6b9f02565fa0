"""A separate package that adds tools to taskrunner through the `taskrunner.tools` entry
points, as any third party would. Tests put this directory on `sys.path` (or PYTHONPATH)
so that `importlib.metadata` finds the distribution below."""

from __future__ import annotations

from taskrunner.tools import ToolError, ToolModel, tool


class ShoutInput(ToolModel):
    text: str
    times: int = 1


class ShoutOutput(ToolModel):
    text: str


@tool("test.shout")
def shout(args: ShoutInput) -> ShoutOutput:
    """Upper-case the text and append `times` exclamation marks."""
    if args.times < 0:
        raise ToolError("times must not be negative", kind="NegativeTimes")
    return ShoutOutput(text=args.text.upper() + "!" * args.times)

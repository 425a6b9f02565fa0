"""A separate package that adds tools to taskrunner through the `taskrunner.tools` entry
points, as any third party would. Tests put this directory on `sys.path` (or PYTHONPATH)
so that `importlib.metadata` finds the distribution below."""

from __future__ import annotations

from pydantic import JsonValue

from taskrunner.tools import ToolError, ToolModel, tool


class ShoutInput(ToolModel):
    text: str
    times: int = 1


class ShoutOutput(ToolModel):
    text: str


@tool("test.shout", errors=("NegativeTimes",))
def shout(args: ShoutInput) -> ShoutOutput:
    """Upper-case the text and append `times` exclamation marks."""
    if args.times < 0:
        raise ToolError("times must not be negative", kind="NegativeTimes")
    return ShoutOutput(text=args.text.upper() + "!" * args.times)


class NapInput(ToolModel):
    ms: int
    token: str


class NapOutput(ToolModel):
    token: str


@tool("test.nap")
def nap(args: NapInput) -> NapOutput:
    """Sleep `ms` milliseconds, then return the token: a slow tool, so that tests can find
    tasks mid-flight. With TASKRUNNER_TEST_NAP_LOG set, append `token pid start end` (wall
    clock) to that file for each call, so that tests can see who ran what, and when."""
    import os
    import time

    started = time.time()
    log = os.environ.get("TASKRUNNER_TEST_NAP_LOG")
    if log:
        with open(log, "a") as handle:
            handle.write(f"start {args.token} {os.getpid()} {started:.6f}\n")
    time.sleep(args.ms / 1000)
    if log:
        with open(log, "a") as handle:
            handle.write(f"end {args.token} {os.getpid()} {started:.6f} {time.time():.6f}\n")
    return NapOutput(token=args.token)


class CStringInput(ToolModel):
    text: str


class CStringOutput(ToolModel):
    text: str


@tool("test.cstring")
def cstring(args: CStringInput) -> CStringOutput:
    """End the text with a NUL character, as C strings end: an output that no database
    can store, so that tests can see what becomes of one."""
    return CStringOutput(text=args.text + "\x00")


class NestInput(ToolModel):
    depth: int


class NestOutput(ToolModel):
    value: JsonValue


@tool("test.nest")
def nest(args: NestInput) -> NestOutput:
    """A value nested `depth` levels deep (`{"in": {"in": ...}}`): an output too deep to
    store once `depth` passes the JSON depth limit."""
    value: JsonValue = "bottom"
    for _ in range(args.depth):
        value = {"in": value}
    return NestOutput.model_construct(value=value)  # as built: no validation on the way


class JitterInput(ToolModel):
    value: int
    fail: bool = False


class JitterOutput(ToolModel):
    value: int


@tool("test.jitter", errors=("Jittered",))
def jitter(args: JitterInput) -> JitterOutput:
    """Sleep a random 0 to 20 ms, then return the value (or fail with `Jittered`): calls
    made at once end in a random order, so that tests can show that it changes nothing."""
    import random
    import time

    time.sleep(random.uniform(0, 0.02))  # noqa: S311 - an order to shuffle, not a secret
    if args.fail:
        raise ToolError(f"item {args.value} failed", kind="Jittered")
    return JitterOutput(value=args.value)

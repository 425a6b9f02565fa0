"""The state kinds: each module is one kind, owning its model, transitions, checks and
meaning (see `base`). `BUILTIN_KINDS` are those every flow may use."""

from __future__ import annotations

from typing import Final

from taskrunner.engine.states.base import State
from taskrunner.engine.states.choice import ChoiceState
from taskrunner.engine.states.fail import FailState
from taskrunner.engine.states.flow_ import FlowState
from taskrunner.engine.states.map import MapState
from taskrunner.engine.states.parallel import ParallelState
from taskrunner.engine.states.pass_ import PassState
from taskrunner.engine.states.succeed import SucceedState
from taskrunner.engine.states.task import TaskState
from taskrunner.engine.states.wait import WaitState

BUILTIN_KINDS: Final[tuple[type[State], ...]] = (
    TaskState,
    ChoiceState,
    PassState,
    WaitState,
    FlowState,
    ParallelState,
    MapState,
    SucceedState,
    FailState,
)

__all__ = [
    "BUILTIN_KINDS",
    "ChoiceState",
    "FailState",
    "FlowState",
    "MapState",
    "ParallelState",
    "PassState",
    "State",
    "SucceedState",
    "TaskState",
    "WaitState",
]

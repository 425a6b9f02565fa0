"""Shared fixtures: the built-in tool registry, a checker over it, and the flows shipped in
`flows/`, loaded through the same reader and validator as the CLI."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from taskrunner.engine.model import Flow
from taskrunner.engine.validate import FlowChecker
from taskrunner.flowfile import check_file
from taskrunner.tools import ToolRegistry, builtin_registry

ROOT = Path(__file__).resolve().parent.parent
FLOWS = ROOT / "flows"
PLUGINS = Path(__file__).resolve().parent / "plugins"


@pytest.fixture(scope="session")
def registry() -> ToolRegistry:
    return builtin_registry()


@pytest.fixture(scope="session")
def checker(registry: ToolRegistry) -> FlowChecker:
    return FlowChecker(registry)


@pytest.fixture(scope="session")
def load_flow(checker: FlowChecker) -> Callable[[str], Flow]:
    """Load `flows/NAME.yaml`, failing the test if it is not valid."""

    def load(name: str) -> Flow:
        report = check_file(FLOWS / f"{name}.yaml", checker)
        assert report.flow is not None, [str(problem) for problem in report.problems]
        return report.flow

    return load


@pytest.fixture(scope="session")
def echo_add(load_flow: Callable[[str], Flow]) -> Flow:
    return load_flow("echo_add")

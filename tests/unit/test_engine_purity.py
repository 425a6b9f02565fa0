"""`taskrunner/engine` is pure: no I/O library, no clock, no randomness. Checked on the
source (every import statement) and at run time (importing the engine loads none of them).

`datetime` is the one exception, for its values only (a wait's wake time, a deadline):
the engine may name its types and compute with them, but never ask them for the time,
which is checked on every call in the source."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

ENGINE = Path(__file__).resolve().parents[2] / "taskrunner" / "engine"
FORBIDDEN = (
    "sqlalchemy",
    "fastapi",
    "starlette",
    "typer",
    "click",
    "yaml",
    "psycopg",
    "alembic",
    "uvicorn",
    "httpx",
    "requests",
    "socket",
    "random",
    "secrets",
    "uuid",
    "time",
    "os",
    "subprocess",
    "threading",
    "asyncio",
    "taskrunner.flowfile",
    "taskrunner.cli",
    "taskrunner.store",
    "taskrunner.api",
    "taskrunner.service",
)


def _imports(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.append(node.module)
    return found


@pytest.mark.parametrize(
    "path", sorted(ENGINE.rglob("*.py")), ids=lambda p: str(p.relative_to(ENGINE))
)
def test_engine_modules_import_no_io_clock_or_randomness(path: Path) -> None:
    bad = [
        name
        for name in _imports(path)
        if any(name == banned or name.startswith(banned + ".") for banned in FORBIDDEN)
    ]
    assert bad == [], f"{path.name} imports {bad}"


CLOCK_READINGS = frozenset({"now", "utcnow", "today"})
DATE_TYPES = frozenset({"datetime", "date"})


@pytest.mark.parametrize(
    "path", sorted(ENGINE.rglob("*.py")), ids=lambda p: str(p.relative_to(ENGINE))
)
def test_engine_modules_read_no_clock(path: Path) -> None:
    """Dates are values in the engine: the time comes from whoever drives it (a journal's
    own `now()` is its driver's clock, passed in)."""
    readings = [
        f"line {node.lineno}: {ast.unparse(node.func)}()"
        for node in ast.walk(ast.parse(path.read_text(), str(path)))
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in CLOCK_READINGS
        and ast.unparse(node.func.value).rsplit(".", 1)[-1] in DATE_TYPES
    ]
    assert readings == [], f"{path.name} reads the clock: {readings}"


def test_importing_the_engine_loads_no_io_library() -> None:
    probe = (
        "import sys, taskrunner.engine.runner, taskrunner.engine.validate;"
        "print(','.join(sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'sqlalchemy','fastapi','typer','yaml','psycopg','uvicorn'})))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=False
    )
    assert loaded.returncode == 0, loaded.stderr
    assert loaded.stdout.strip() == ""


@pytest.mark.parametrize(
    "argv",
    [
        ["--help"],
        ["validate-flow", "taskrunner/flows/echo_add.yaml"],
        ["schema"],
        ["run-flow", "--help"],
        ["validate-flow", "--no-such-option"],
    ],
    ids=["help", "validate-flow", "schema", "run-flow-help", "usage-error"],
)
def test_the_cli_loads_no_web_or_database_library_it_does_not_need(argv: list[str]) -> None:
    probe = (
        "import sys\nfrom taskrunner.cli import main\n"
        f"sys.argv = ['taskrunner', *{argv!r}]\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "heavy = sorted({m.split('.')[0] for m in sys.modules} & "
        "{'fastapi', 'starlette', 'sqlalchemy', 'uvicorn', 'psycopg', 'rich'})\n"
        "print('HEAVY=' + ','.join(heavy), file=sys.stderr)\n"
    )
    root = Path(__file__).resolve().parents[2]
    loaded = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        check=False,
        cwd=root,
        env=_without_typer_settings(),
    )
    assert "HEAVY=\n" in loaded.stderr, loaded.stderr[-2000:]


def test_importing_the_cli_changes_no_environment_variable() -> None:
    probe = (
        "import os\nbefore = dict(os.environ)\nimport taskrunner.cli\n"
        "changed = sorted(set(os.environ.items()) ^ set(before.items()))\n"
        "print('CHANGED=' + repr(changed))\n"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        check=True,
        env=_without_typer_settings(),
    )
    assert loaded.stdout.strip() == "CHANGED=[]", loaded.stdout


def _without_typer_settings() -> dict[str, str]:
    """This environment without Typer's own variables, so the CLI shows what it does alone."""
    return {key: value for key, value in os.environ.items() if not key.startswith("TYPER_")}

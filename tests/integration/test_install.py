"""The package installs and works from anywhere: the wheel built from this checkout,
installed with exactly the locked dependencies into a fresh virtual environment outside
the checkout, runs a flow, checks flow files, prints the schema and migrates a database
through Alembic, from an empty directory, on SQLite and on PostgreSQL.

Each command runs in an environment made from nothing: no DATABASE_URL or TASKRUNNER_*
of the caller's, no virtual environment, no Python path; only the new environment's
`bin` on PATH. So whatever works here works for someone who installed the wheel."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory

from taskrunner.store.migrate import alembic_config

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
SHIPPED_FLOWS = ROOT / "taskrunner" / "flows"
PACKAGE_DATA = (
    ROOT / "taskrunner" / "store" / "migrations",
    SHIPPED_FLOWS,
    ROOT / "taskrunner" / "ui" / "static",
)
HI = ["--flow", "echo_add", "--text", "hi", "--a", "1", "--b", "2", "--json"]
ALEMBIC_INI = "[alembic]\nscript_location = taskrunner.store:migrations\n"
BROKEN_FLOW = "name: broken\nstart: missing\nstates:\n  done: {type: succeed}\n"
HEAD = ScriptDirectory.from_config(alembic_config()).get_current_head()


@dataclass(frozen=True)
class Installed:
    wheel: Path
    venv: Path

    def run(
        self, command: str, *args: str, cwd: Path, **env: str
    ) -> subprocess.CompletedProcess[str]:
        """The environment's `command` in `cwd`, with `env` and nothing else of ours."""
        home = cwd.parent / "home"
        home.mkdir(exist_ok=True)
        environment = {
            "PATH": os.pathsep.join([str(self.venv / "bin"), os.defpath]),
            "HOME": str(home),
            **env,
        }
        return subprocess.run(
            [str(self.venv / "bin" / command), *args],
            cwd=cwd,
            env=environment,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )


def uv(*args: str) -> None:
    # From the checkout, which holds the project to build (and the .python-version that a
    # pyenv shim of uv may need); every other path is given in full.
    found = os.environ.get("UV") or shutil.which("uv")
    assert found is not None, "uv is not on PATH"
    done = subprocess.run(
        [found, *args], cwd=ROOT, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, f"uv {' '.join(args)}: {done.stderr}"


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    base = tmp_path_factory.mktemp("install")
    assert not base.is_relative_to(ROOT)
    uv("build", "--wheel", "--out-dir", str(base / "dist"))
    [wheel] = (base / "dist").glob("taskrunner-*.whl")
    locked = base / "requirements.txt"
    uv("export", "--frozen", "--no-dev", "--no-emit-project", "--output-file", str(locked))
    venv = base / "venv"
    uv("venv", "--python", "3.12", str(venv))
    uv("pip", "install", "--python", str(venv / "bin" / "python"), "-r", str(locked), str(wheel))
    return Installed(wheel, venv)


@pytest.fixture
def empty(tmp_path: Path) -> Path:
    """The directory the commands run in; each test checks they leave nothing there."""
    directory = tmp_path / "empty"
    directory.mkdir()
    return directory


def succeeded_with_hi(done: subprocess.CompletedProcess[str]) -> None:
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    task = json.loads(done.stdout)
    assert (task["status"], task["output"]) == ("succeeded", {"text": "hi", "sum": 3})


def test_the_wheel_holds_the_migrations_and_the_flows(installed: Installed) -> None:
    shipped = {
        path.relative_to(ROOT).as_posix()
        for folder in PACKAGE_DATA
        for path in folder.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }
    assert {
        "taskrunner/store/migrations/env.py",
        "taskrunner/store/migrations/script.py.mako",
        "taskrunner/flows/echo_add.yaml",
        "taskrunner/ui/static/vendor/MANIFEST.json",
        "taskrunner/ui/static/vendor/mermaid/mermaid.min.js",
    } <= shipped
    assert any(name.startswith("taskrunner/store/migrations/versions/") for name in shipped)
    with zipfile.ZipFile(installed.wheel) as wheel:
        assert shipped <= set(wheel.namelist())


def test_the_installed_taskrunner_is_the_environments_own(
    installed: Installed, empty: Path
) -> None:
    done = installed.run("python", "-c", "import taskrunner; print(taskrunner.__file__)", cwd=empty)
    assert done.returncode == 0, done.stderr
    location = Path(done.stdout.strip()).resolve()
    assert location.is_relative_to(installed.venv.resolve()), location
    assert not location.is_relative_to(ROOT), location


def test_run_flow_from_an_empty_directory(
    installed: Installed, empty: Path, empty_database_url: str
) -> None:
    """The shipped flows, and a new database migrated on start through the package."""
    succeeded_with_hi(
        installed.run("taskrunner", "run-flow", *HI, cwd=empty, DATABASE_URL=empty_database_url)
    )
    (empty / "alembic.ini").write_text(ALEMBIC_INI)
    current = installed.run("alembic", "current", cwd=empty, DATABASE_URL=empty_database_url)
    assert current.returncode == 0, current.stderr
    assert current.stdout.split() == [HEAD, "(head)"]
    assert [path.name for path in empty.iterdir()] == ["alembic.ini"]


def test_run_flow_with_a_flows_directory_given(installed: Installed, empty: Path) -> None:
    flows = empty.parent / "my-flows"
    flows.mkdir()
    shutil.copy(SHIPPED_FLOWS / "echo_add.yaml", flows)
    env = {
        "DATABASE_URL": f"sqlite:///{empty.parent / 'tasks.sqlite3'}",
        "TASKRUNNER_FLOWS_DIR": str(flows),
    }
    succeeded_with_hi(installed.run("taskrunner", "run-flow", *HI, cwd=empty, **env))
    elsewhere = installed.run(
        "taskrunner", "run-flow", "--flow", "safe_divide", "--a", "1", "--b", "2", cwd=empty, **env
    )
    assert elsewhere.returncode != 0
    assert "echo_add" in elsewhere.stderr
    assert "classify_sum" not in elsewhere.stderr  # only the given directory's flows
    assert list(empty.iterdir()) == []


def test_validate_flow_and_schema(installed: Installed, empty: Path) -> None:
    files = empty.parent / "files"
    files.mkdir()
    valid = Path(shutil.copy(SHIPPED_FLOWS / "echo_add.yaml", files))
    broken = files / "broken.yaml"
    broken.write_text(BROKEN_FLOW)

    done = installed.run("taskrunner", "validate-flow", str(valid), cwd=empty)
    assert done.returncode == 0, done.stdout + done.stderr
    done = installed.run("taskrunner", "validate-flow", str(broken), cwd=empty)
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stdout.startswith(f"{broken}:"), done.stdout

    done = installed.run("taskrunner", "schema", cwd=empty)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == json.loads((ROOT / "schema" / "flow.schema.json").read_text())
    assert list(empty.iterdir()) == []


def test_alembic_migrates_through_the_installed_package(
    installed: Installed, empty: Path, empty_database_url: str
) -> None:
    """A two-line alembic.ini beside an installed taskrunner migrates a new database, to
    the revision taskrunner itself requires."""
    (empty / "alembic.ini").write_text(ALEMBIC_INI)
    env = {"DATABASE_URL": empty_database_url}
    upgrade = installed.run("alembic", "upgrade", "head", cwd=empty, **env)
    assert upgrade.returncode == 0, upgrade.stderr
    current = installed.run("alembic", "current", cwd=empty, **env)
    assert current.returncode == 0, current.stderr
    assert current.stdout.split() == [HEAD, "(head)"]
    succeeded_with_hi(
        installed.run("taskrunner", "run-flow", *HI, cwd=empty, TASKRUNNER_AUTO_MIGRATE="0", **env)
    )
    assert [path.name for path in empty.iterdir()] == ["alembic.ini"]

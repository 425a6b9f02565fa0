"""The front-end files that the app serves itself are the pinned ones: each file under
`taskrunner/ui/static/vendor/` is named in `MANIFEST.json` with the sha256 it must have,
every package pinned in `scripts/vendor_assets.py` is there at its version with its
licence, and nothing else is. (No network: re-fetching is `vendor_assets.py --check`.)"""

from __future__ import annotations

import hashlib
import importlib.util
import json
from pathlib import Path
from types import ModuleType

import pytest

from taskrunner.ui import STATIC, VENDOR

ROOT = Path(__file__).resolve().parents[2]


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "vendor_assets", ROOT / "scripts" / "vendor_assets.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


MANIFEST: list[dict[str, str]] = json.loads((VENDOR / "MANIFEST.json").read_text())["files"]


def test_the_vendor_folder_is_inside_the_static_files() -> None:
    assert VENDOR.parent == STATIC
    assert VENDOR.is_dir()


@pytest.mark.parametrize("entry", MANIFEST, ids=lambda entry: entry["file"])
def test_each_vendored_file_has_the_sha256_of_the_manifest(entry: dict[str, str]) -> None:
    data = (VENDOR / entry["file"]).read_bytes()
    assert hashlib.sha256(data).hexdigest() == entry["sha256"]


def test_nothing_is_vendored_that_the_manifest_does_not_name() -> None:
    present = {path.relative_to(VENDOR).as_posix() for path in VENDOR.rglob("*") if path.is_file()}
    assert present - {"MANIFEST.json"} == {entry["file"] for entry in MANIFEST}


def test_the_manifest_lists_what_the_script_pins_each_with_its_licence() -> None:
    pins = _script().PINS
    expected = sorted(
        (pin.package, pin.version, f"{pin.package}/{Path(inner).name}")
        for pin in pins
        for inner in pin.files
    )
    found = sorted((entry["package"], entry["version"], entry["file"]) for entry in MANIFEST)
    assert found == expected
    for pin in pins:
        assert f"{pin.package}/LICENSE" in {entry["file"] for entry in MANIFEST}


def test_a_file_is_changed_only_by_a_patch_of_the_script_and_says_so() -> None:
    script = _script()
    patched = {entry["file"] for entry in MANIFEST if "patched" in entry}
    assert patched == {patch.file for patch in script.PATCHES}
    for patch in script.PATCHES:
        data = (VENDOR / patch.file).read_bytes()
        assert patch.old not in data
        assert data.count(patch.new) == 1

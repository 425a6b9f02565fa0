"""Re-create the front-end assets that the app serves itself, under
`taskrunner/ui/static/vendor/`, from pinned npm packages.

    uv run python scripts/vendor_assets.py           # write the files and MANIFEST.json
    uv run python scripts/vendor_assets.py --check   # compare, write nothing

The console, `/docs` and `/redoc` load nothing from a CDN: every script, stylesheet and
icon they use is a file of the package, committed to git, so a fresh clone (and the
wheel) works offline. Each package is fetched with `npm pack NAME@VERSION`, which checks
the tarball against the registry's integrity hash; the chosen files and the package's
licence are copied out, and `MANIFEST.json` records the package, version, file and sha256
of each, which a unit test checks. To upgrade, change a version in `PINS` and run this.
Only the Python standard library and `npm` are needed.

One file is changed on the way, by an exact substitution listed in `PATCHES` (and in the
manifest, with the sha256 of the file as published): Redoc's sidebar shows Redocly's logo
from their CDN, with no option to turn it off; its address becomes an empty `data:` URL,
so the image fails without a request and Redoc hides it, as it does when offline.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import NamedTuple

VENDOR = Path(__file__).resolve().parent.parent / "taskrunner" / "ui" / "static" / "vendor"
MANIFEST = "MANIFEST.json"


class Pin(NamedTuple):
    """One npm package at one version, and the files taken from it: the path inside the
    package, each copied under the package's own folder by its base name."""

    package: str
    version: str
    files: tuple[str, ...]


PINS = (
    # The UMD build: one file that defines `mermaid`, with every diagram type inside,
    # so that rendering never loads a chunk.
    Pin("mermaid", "11.17.2", ("dist/mermaid.min.js", "LICENSE")),
    Pin("htmx.org", "2.0.11", ("dist/htmx.min.js", "LICENSE")),
    Pin(
        "swagger-ui-dist",
        "5.35.0",
        ("swagger-ui-bundle.js", "swagger-ui.css", "favicon-32x32.png", "LICENSE", "NOTICE"),
    ),
    # The standalone bundle carries its own styles and makes no font or CDN request.
    Pin("redoc", "2.5.4", ("bundles/redoc.standalone.js", "LICENSE")),
)


class Patch(NamedTuple):
    """An exact substitution in one vendored file, which must match exactly once."""

    file: str
    old: bytes
    new: bytes
    why: str


PATCHES = (
    Patch(
        "redoc/redoc.standalone.js",
        b'src:"https://cdn.redoc.ly/redoc/logo-mini.svg"',
        b'src:"data:,"',
        "Redocly's logo was loaded from their CDN; an empty data: URL hides it offline",
    ),
)


def _patched(path: str, data: bytes) -> tuple[bytes, Patch | None]:
    for patch in PATCHES:
        if patch.file == path:
            if data.count(patch.old) != 1:
                raise SystemExit(f"{path}: the patch does not fit: {patch.old!r} is not there once")
            return data.replace(patch.old, patch.new), patch
    return data, None


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _unpack(pin: Pin, workdir: Path) -> dict[str, bytes]:
    """The pinned files of one package, by their path under `vendor/`."""
    done = subprocess.run(  # noqa: S603 - a fixed command, the pins are ours
        ["npm", "pack", f"{pin.package}@{pin.version}", "--json", "--silent"],  # noqa: S607
        cwd=workdir,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"npm pack {pin.package}@{pin.version} failed:\n{done.stderr}")
    [packed] = json.loads(done.stdout)
    files: dict[str, bytes] = {}
    with tarfile.open(workdir / packed["filename"]) as tarball:
        for inner in pin.files:
            member = tarball.extractfile(f"package/{inner}")
            if member is None:
                raise SystemExit(f"{pin.package}@{pin.version} has no file {inner}")
            files[f"{pin.package}/{Path(inner).name}"] = member.read()
    return files


def vendored() -> dict[str, bytes]:
    """Every vendored file, by its path under `vendor/`, fetched afresh, with the
    manifest that describes them."""
    files: dict[str, bytes] = {}
    entries = []
    with tempfile.TemporaryDirectory(prefix="taskrunner-vendor-") as workdir:
        for pin in PINS:
            for path, published in _unpack(pin, Path(workdir)).items():
                data, patch = _patched(path, published)
                files[path] = data
                entry = {
                    "package": pin.package,
                    "version": pin.version,
                    "file": path,
                    "sha256": _sha256(data),
                }
                if patch is not None:
                    entry |= {"patched": patch.why, "published_sha256": _sha256(published)}
                entries.append(entry)
    files[MANIFEST] = (json.dumps({"files": entries}, indent=2) + "\n").encode()
    return files


def _present() -> set[str]:
    return {path.relative_to(VENDOR).as_posix() for path in VENDOR.rglob("*") if path.is_file()}


def write(files: dict[str, bytes]) -> None:
    for stale in _present() - files.keys():
        (VENDOR / stale).unlink()
    for path, data in files.items():
        target = VENDOR / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    for folder in sorted(VENDOR.iterdir()):
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()


def differences(files: dict[str, bytes]) -> list[str]:
    """What differs between the committed files and freshly vendored ones."""
    present = _present() if VENDOR.is_dir() else set()
    found = [f"missing: {path}" for path in sorted(files.keys() - present)]
    found += [f"not pinned: {path}" for path in sorted(present - files.keys())]
    found += [
        f"differs: {path}"
        for path in sorted(files.keys() & present)
        if (VENDOR / path).read_bytes() != files[path]
    ]
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--check", action="store_true", help="compare with the committed files; write nothing"
    )
    arguments = parser.parse_args()
    files = vendored()
    if arguments.check:
        found = differences(files)
        sys.stdout.write("".join(line + "\n" for line in found) or "vendored assets match\n")
        return 1 if found else 0
    write(files)
    sys.stdout.write(f"vendored {len(files) - 1} files into {VENDOR}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

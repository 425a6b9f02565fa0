"""API keys without a server: the key file's parser and its errors (each naming its file
and line), the keys of the file and of the environment together, new keys, and the
examples of the documentation (the key file and the key shown, the loopback-only
PostgreSQL of docker-compose). The API's side is `tests/integration/test_auth.py`."""

from __future__ import annotations

from pathlib import Path
from typing import Final

import pytest
import yaml

from taskrunner.apikeys import ApiKeyring, new_key, parse_keys
from taskrunner.errors import SettingsError
from taskrunner.settings import Settings

ROOT: Final = Path(__file__).resolve().parents[2]
EVERYWHERE: Final = "0.0.0.0"  # noqa: S104 - the address no document may show unprotected
RUN: Final = new_key("run-key", "run")
READ: Final = new_key("read-key", "read")
REVOKED: Final = new_key("old-key", "admin")

# -- the key file ----------------------------------------------------------------------------

DIGEST: Final = "sha256:" + "ab" * 32


@pytest.mark.parametrize(
    ("lines", "line", "says"),
    [
        ([f"ci run {DIGEST}", "ci"], 2, "expected `NAME SCOPE sha256:HEX [revoked]`"),
        ([f"ci write {DIGEST}"], 1, "the scope 'write' is not one of read, run, admin"),
        ([f"c/i run {DIGEST}"], 1, "is not a key name"),
        (["ci run trk_0123456789"], 1, "sha256: and 64 hexadecimal digits"),
        (["ci run sha256:abc"], 1, "sha256: and 64 hexadecimal digits"),
        ([f"ci run {DIGEST} expired"], 1, "the fourth field may only be `revoked`"),
        ([f"ci run {DIGEST} revoked now"], 1, "found 5 field(s)"),
        (["# keys", "", f"ci run {DIGEST}", f"ci read {'sha256:' + 'cd' * 32}"], 4, "ci"),
        ([f"a run {DIGEST}", f"b read {DIGEST}"], 2, "the same key is already listed"),
    ],
)
def test_a_malformed_key_file_names_its_file_and_line(
    tmp_path: Path, lines: list[str], line: int, says: str
) -> None:
    path = tmp_path / "keys"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(SettingsError) as raised:
        Settings.from_env({"TASKRUNNER_API_KEYS_FILE": str(path)})
    assert raised.value.message.startswith(f"{path}:{line}: ")
    assert says in raised.value.message
    assert raised.value.exit_status == 2


@pytest.mark.parametrize(
    ("text", "says"),
    [
        (None, "not a regular file"),
        ("# only a comment\n\n", "lists no API key"),
        (b"ci run \xff\n", ":1: not UTF-8 text"),
    ],
)
def test_a_key_file_that_cannot_be_used_is_a_settings_error(
    tmp_path: Path, text: str | bytes | None, says: str
) -> None:
    path = tmp_path / "keys"
    if isinstance(text, str):
        path.write_text(text)
    elif isinstance(text, bytes):
        path.write_bytes(text)
    with pytest.raises(SettingsError, match=says):
        Settings.from_env({"TASKRUNNER_API_KEYS_FILE": str(path)})


def test_keys_from_the_file_and_the_environment_are_one_keyring(tmp_path: Path) -> None:
    path = tmp_path / "keys"
    path.write_text(f"# the CI's key\n{RUN.key.line()}\n")
    inline = f"{READ.key.line()};{REVOKED.key.line()} revoked"
    settings = Settings.from_env(
        {"TASKRUNNER_API_KEYS_FILE": str(path), "TASKRUNNER_API_KEYS": inline}
    )
    assert settings.api_keys is not None
    assert [(key.name, key.scope, key.revoked) for key in settings.api_keys.keys] == [
        ("run-key", "run", False),
        ("read-key", "read", False),
        ("old-key", "admin", True),
    ]
    assert Settings.from_env({"TASKRUNNER_API_KEYS": "  "}).api_keys is None
    with pytest.raises(SettingsError, match="TASKRUNNER_API_KEYS entry 2: "):
        Settings.from_env({"TASKRUNNER_API_KEYS": f"{RUN.key.line()};oops"})


def test_each_new_key_is_new() -> None:
    made = [new_key("same", "read") for _ in range(3)]
    assert len({item.token for item in made}) == 3
    assert len({item.key.digest for item in made}) == 3


def test_the_key_file_shown_in_the_operations_guide_is_valid() -> None:
    guide = (ROOT / "docs" / "operations.md").read_text()
    section = guide.split("## Authentication", 1)[1]
    example = section.split("```text\n", 1)[1].split("```", 1)[0]
    lines = [(f"operations.md:{number}", line) for number, line in enumerate(example.splitlines())]
    keys = parse_keys(lines)
    assert [(key.name, key.scope, key.revoked) for key in keys] == [
        ("ci", "run", False),
        ("ops", "admin", False),
        ("old-ci", "run", True),
    ]


def test_the_key_shown_in_the_operations_guide_matches_its_line() -> None:
    guide = (ROOT / "docs" / "operations.md").read_text()
    # As `api-key new` prints them: a label, two spaces or more, the value.
    rows = dict(
        line.split(maxsplit=1)
        for line in guide.splitlines()
        if line.startswith(("key  ", "line  "))
    )
    [key] = parse_keys([("operations.md", rows["line"])])
    assert ApiKeyring((key,)).find(rows["key"]) == key


def test_nothing_published_or_documented_listens_everywhere_without_keys() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    for service in compose["services"].values():
        for published in service.get("ports", []):
            assert published.startswith("127.0.0.1:"), published
    documents = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    for document in documents:
        assert f"--host {EVERYWHERE}" not in document.read_text(), document

"""API keys: who may call the HTTP API, and what each caller may do.

A key is a random token that the client sends as `Authorization: Bearer <token>`. The
server keeps only its SHA-256 digest, beside a name and a scope, one key per line:

    NAME SCOPE sha256:HEX [revoked]

Tokens are 256 random bits, so a plain SHA-256 is the right hash (a slow password hash
protects guessable secrets; these are not guessable), and a digest that leaks does not
let anyone call the API. Digests are compared in constant time.

Scopes are ordered: `read` < `run` < `admin`, and each includes those below it.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final, Literal, get_args

from taskrunner.errors import SettingsError

Scope = Literal["read", "run", "admin"]
SCOPES: Final[tuple[Scope, ...]] = get_args(Scope)
"""The scopes, each including the ones before it."""

NAME_PATTERN: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
TOKEN_PREFIX: Final = "trk_"  # noqa: S105 - a marker that says what a token is, no secret
_DIGEST: Final = re.compile(r"^sha256:([0-9a-fA-F]{64})$")
_REVOKED: Final = "revoked"


def parse_scope(text: str) -> Scope:
    """The scope named `text`."""
    for scope in SCOPES:
        if scope == text:
            return scope
    raise SettingsError(f"the scope {text[:80]!r} is not one of {', '.join(SCOPES)}")


def scope_includes(held: Scope, needed: Scope) -> bool:
    """Whether a key of scope `held` may do what needs `needed`."""
    return SCOPES.index(held) >= SCOPES.index(needed)


def digest_of(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).digest()


@dataclass(frozen=True)
class ApiKey:
    """One configured key: its name (which names the caller in logs and scopes its
    idempotency keys), its scope, the SHA-256 digest of its token, and whether it is
    revoked."""

    name: str
    scope: Scope
    digest: bytes
    revoked: bool = False

    def line(self) -> str:
        """The key as a line of the key file."""
        revoked = f" {_REVOKED}" if self.revoked else ""
        return f"{self.name} {self.scope} sha256:{self.digest.hex()}{revoked}"


@dataclass(frozen=True)
class ApiKeyring:
    """The configured keys. Without a keyring (`Settings.api_keys` is None) the API is
    open; with one, every protected endpoint needs a key from it."""

    keys: tuple[ApiKey, ...]

    def find(self, token: str) -> ApiKey | None:
        """The key whose token this is, revoked or not; None when there is none.

        Every digest is compared, in constant time, whichever matches: how long this takes
        says nothing about which key, or how much of one, a token resembles."""
        digest = digest_of(token)
        found = None
        for key in self.keys:
            if hmac.compare_digest(key.digest, digest):
                found = key
        return found


@dataclass(frozen=True)
class NewKey:
    """A key just made: the token, shown once, and its line for the configuration."""

    token: str
    key: ApiKey


def new_key(name: str, scope: Scope) -> NewKey:
    """A new random key named `name` with `scope`."""
    check_name(name)
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    return NewKey(token, ApiKey(name, scope, digest_of(token)))


def check_name(name: str) -> None:
    if not NAME_PATTERN.match(name):
        raise SettingsError(
            f"{name[:80]!r} is not a key name: use 1 to 64 letters, digits, '_', '.' or '-', "
            "starting with a letter or a digit"
        )


def parse_keys(entries: Iterable[tuple[str, str]]) -> tuple[ApiKey, ...]:
    """Keys from `(where, text)` entries, `where` naming each for errors (`FILE:LINE`).

    Blank entries and `#` comments are skipped. Names and digests must be unique: a name
    scopes idempotency keys, so two keys under one name would share them.
    """
    keys: list[ApiKey] = []
    names: dict[str, str] = {}
    digests: dict[bytes, str] = {}
    for where, text in entries:
        line = text.strip()
        if not line or line.startswith("#"):
            continue
        key = _parse_line(where, line)
        if key.name in names:
            raise SettingsError(
                f"{where}: the key name {key.name!r} is already used at {names[key.name]}"
            )
        if key.digest in digests:
            raise SettingsError(f"{where}: the same key is already listed at {digests[key.digest]}")
        names[key.name] = digests[key.digest] = where
        keys.append(key)
    return tuple(keys)


def _parse_line(where: str, line: str) -> ApiKey:
    fields = line.split()
    if len(fields) not in (3, 4):
        raise SettingsError(
            f"{where}: expected `NAME SCOPE sha256:HEX [revoked]`, found {len(fields)} field(s)"
        )
    name, scope_name, digest = fields[:3]
    try:
        check_name(name)
        scope = parse_scope(scope_name)
    except SettingsError as exc:
        raise SettingsError(f"{where}: {exc.message}") from None
    match = _DIGEST.match(digest)
    if match is None:
        raise SettingsError(
            f"{where}: the key must be given as sha256: and 64 hexadecimal digits "
            "(its digest, never the key itself; `taskrunner api-key new` prints the line)"
        )
    if len(fields) == 4 and fields[3] != _REVOKED:
        raise SettingsError(
            f"{where}: the fourth field may only be `{_REVOKED}`, not {fields[3][:80]!r}"
        )
    return ApiKey(name, scope, bytes.fromhex(match.group(1)), revoked=len(fields) == 4)

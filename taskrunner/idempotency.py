"""Idempotency keys: the keys a client may send, and each as stored for its caller.

A key (`Idempotency-Key`, `--idempotency-key`) starts at most one task. On an API with
keys, each caller has keys of its own: the stored key is scoped by the API key's name.
"""

from __future__ import annotations

import hashlib
import re
from typing import Final

from taskrunner.errors import InvalidRequestError

MAX_IDEMPOTENCY_KEY: Final = 255
IDEMPOTENCY_KEY_PATTERN: Final = re.compile(r"^[\x21-\x7e]{1,255}$")


def scoped_idempotency_key(caller: str | None, key: str | None) -> str | None:
    """The idempotency key as stored for `caller` (an API key's name; None when the API has
    no keys, and so one scope): `CALLER/KEY`, or `CALLER#SHA256(KEY)` when that would pass
    255 characters. A name holds neither `/` nor `#`, so one caller's keys never meet
    another's, and both forms stay within the stored key's length and pattern."""
    if key is None or caller is None:
        return key
    check_idempotency_key(key)
    scoped = f"{caller}/{key}"
    if len(scoped) <= MAX_IDEMPOTENCY_KEY:
        return scoped
    return f"{caller}#{hashlib.sha256(key.encode()).hexdigest()}"


def check_idempotency_key(key: str) -> None:
    if not IDEMPOTENCY_KEY_PATTERN.match(key):
        raise InvalidRequestError(
            "an idempotency key is 1 to 255 visible ASCII characters, without spaces"
        )

"""Page cursors: opaque to clients, they hold where the previous page ended."""

from __future__ import annotations

import base64
import binascii
import uuid
from datetime import datetime

from taskrunner.errors import InvalidRequestError
from taskrunner.store.records import Position


def encode_cursor(position: Position) -> str:
    created_at, task_id = position
    raw = f"{created_at.isoformat()}|{task_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> Position:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        created, task_id = raw.split("|")
        created_at = datetime.fromisoformat(created)
        if created_at.tzinfo is None:
            raise ValueError("naive time")
        return created_at, uuid.UUID(task_id)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidRequestError(
            "the cursor is not one that this API returned; start again without it"
        ) from None

"""Run ids, video ids and folder names that become parts of storage paths."""

from __future__ import annotations

import datetime as _dt
import hashlib
import os
import re
from collections.abc import Callable, Sequence

from core.errors import InvalidIdError, LanepaintError

_ALLOWED = re.compile(r"^[A-Za-z0-9._-]+$")
_MAX_LEN = 200


def new_run_id(now: _dt.datetime | None = None) -> str:
    """A fresh run id ``run_YYYYMMDD_HHMMSS`` (local time)."""
    now = now or _dt.datetime.now()
    return now.strftime("run_%Y%m%d_%H%M%S")


def validate_id(value: object, what: str = "run id") -> str:
    """Return ``value`` if it is safe as one path part, else raise ``InvalidIdError``.

    Rejected: empty, ``/`` or ``\\``, ``..`` anywhere, whitespace, a leading ``-`` (reads as a
    flag), anything outside ``[A-Za-z0-9._-]``, and more than 200 characters.
    """
    if not isinstance(value, str) or value == "":
        raise InvalidIdError(f"invalid {what} {value!r}: must not be empty")
    reason = None
    if "/" in value or "\\" in value:
        reason = "must not contain '/' or '\\'"
    elif ".." in value:
        reason = "must not contain '..'"
    elif any(ch.isspace() for ch in value):
        reason = "must not contain whitespace"
    elif value == ".":
        reason = "must not be '.'"
    elif value.startswith("-"):
        reason = "must not start with '-'"
    elif not _ALLOWED.match(value):
        reason = "only letters, digits, '.', '_' and '-' are allowed"
    elif len(value) > _MAX_LEN:
        reason = f"longer than {_MAX_LEN} characters"
    if reason:
        raise InvalidIdError(f"invalid {what} {value!r}: {reason}")
    return value


def slugify(text: str, max_len: int = 80) -> str:
    """A readable, valid folder name for free text (e.g. an instruction).

    Lower-cases, maps runs of other characters to ``_`` and trims; falls back to ``item`` when
    nothing is left. The result always passes ``validate_id``.
    """
    slug = re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_.-")
    slug = slug[:max_len].rstrip("_.-") or "item"
    return validate_id(slug, "folder name")


def video_ids_of(uris: Sequence[str], check: Callable[[str], None] | None = None
                 ) -> list[tuple[str, str | None, str | None]]:
    """``(uri, video id, error)`` per input video: the id is the file stem (validated, then ``check``ed);
    a bad name, or a second video with the same id (its outputs would collide), has id None and a
    one-line error (the URI is the item then: reports name it)."""
    out: list[tuple[str, str | None, str | None]] = []
    seen: dict[str, str] = {}
    for uri in uris:
        stem = os.path.splitext(uri.rstrip("/").rsplit("/", 1)[-1])[0]
        try:
            video_id = validate_id(stem, "video id")
            if check is not None:
                check(video_id)
        except LanepaintError as exc:
            out.append((uri, None, str(exc)))
            continue
        if video_id in seen:
            out.append((uri, None, f"duplicate video id {video_id!r} (also {seen[video_id]})"))
            continue
        seen[video_id] = uri
        out.append((uri, video_id, None))
    return out


def item_file_name(item_id: str) -> str:
    """A file name for an item id (readable, path-safe, unique by a hash suffix)."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", item_id).strip("._-")[:80] or "item"
    return f"{safe}-{hashlib.sha1(item_id.encode()).hexdigest()[:8]}.json"

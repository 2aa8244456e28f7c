"""``chunks://`` URIs: pick videos from a bucket organised in ``chunk_NNNN/`` folders.

``chunks://<bucket>/<prefix>?start=N&end=M&per_chunk=K&limit=L&fs=gs``

- ``start``, ``end``: first and last chunk number, inclusive (default: from 0 to the last chunk).
- ``per_chunk``: at most K ``.mp4`` files from each chunk, in name order (default: all).
- ``limit``: stop once L videos are found in total (default: no limit).
- ``fs``: where the bucket lives: ``gs`` (default), ``memory``, or ``file`` (``<bucket>/<prefix>``
  is then a local path; use ``chunks:///abs/path?fs=file`` for absolute paths).

Chunk folders are visited in number order and listing stops as soon as enough videos are found.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, replace
from urllib.parse import parse_qsl, urlsplit

from core import storage
from core.errors import StorageError, UsageError

log = logging.getLogger(__name__)

_CHUNK_DIR = re.compile(r"^chunk_(\d+)$")
_KEYS = {"start", "end", "per_chunk", "limit", "fs"}


@dataclass(frozen=True)
class ChunkQuery:
    base: str
    start: int = 0
    end: int | None = None
    per_chunk: int | None = None
    limit: int | None = None


def is_chunks_uri(uri: str) -> bool:
    return isinstance(uri, str) and uri.lower().startswith("chunks://")


def _int(uri: str, key: str, value: str, minimum: int) -> int:
    try:
        number = int(value)
    except ValueError:
        raise UsageError(f"bad chunks URI {uri!r}: {key}={value!r} is not an integer") from None
    if number < minimum:
        raise UsageError(f"bad chunks URI {uri!r}: {key} must be >= {minimum}")
    return number


def parse_chunks_uri(uri: str) -> ChunkQuery:
    """Parse and validate a ``chunks://`` URI; a bad query raises a one-line ``UsageError``."""
    if not is_chunks_uri(uri):
        raise UsageError(f"not a chunks URI: {uri!r}")
    parts = urlsplit(uri)
    try:
        pairs = parse_qsl(parts.query, keep_blank_values=True, strict_parsing=bool(parts.query))
    except ValueError:
        raise UsageError(f"bad chunks URI {uri!r}: malformed query {parts.query!r}") from None
    query: dict[str, str] = {}
    for key, value in pairs:
        if key not in _KEYS:
            raise UsageError(f"bad chunks URI {uri!r}: unknown key {key!r} (known: {', '.join(sorted(_KEYS))})")
        if key in query:
            raise UsageError(f"bad chunks URI {uri!r}: {key} given twice")
        query[key] = value
    fs = query.get("fs", "gs")
    if fs not in ("gs", "memory", "file"):
        raise UsageError(f"bad chunks URI {uri!r}: fs must be gs, memory or file")
    bucket, prefix = parts.netloc, parts.path.strip("/")
    if fs == "file":
        path = f"{bucket}/{prefix}" if bucket else "/" + prefix
        if not path.strip("/"):
            raise UsageError(f"bad chunks URI {uri!r}: missing path")
        base = path.rstrip("/")
    else:
        if not bucket:
            raise UsageError(f"bad chunks URI {uri!r}: missing bucket")
        base = f"{fs}://{bucket}" + (f"/{prefix}" if prefix else "")
    start = _int(uri, "start", query["start"], 0) if "start" in query else 0
    end = _int(uri, "end", query["end"], 0) if "end" in query else None
    per_chunk = _int(uri, "per_chunk", query["per_chunk"], 1) if "per_chunk" in query else None
    limit = _int(uri, "limit", query["limit"], 1) if "limit" in query else None
    if end is not None and end < start:
        raise UsageError(f"bad chunks URI {uri!r}: end ({end}) < start ({start})")
    return ChunkQuery(base=base, start=start, end=end, per_chunk=per_chunk, limit=limit)


def resolve_chunks(uri: str, limit: int | None = None) -> list[str]:
    """Concrete video URIs for a ``chunks://`` URI (may be empty; callers decide if that is bad).

    ``limit`` caps the count further (the smaller of it and the URI's own ``limit`` applies), so a
    caller that needs N videos stops the listing there too.
    """
    query = parse_chunks_uri(uri)
    if limit is not None:
        if limit < 1:
            raise UsageError(f"chunks limit must be >= 1, got {limit}")
        query = replace(query, limit=limit if query.limit is None else min(limit, query.limit))
    chunk_dirs = []
    for entry in storage.ls(query.base, files=False):
        match = _CHUNK_DIR.match(storage.basename(entry))
        if not match:
            continue
        number = int(match.group(1))
        if number < query.start or (query.end is not None and number > query.end):
            continue
        chunk_dirs.append((number, entry))
    chunk_dirs.sort()
    found: list[str] = []
    for number, entry in chunk_dirs:
        videos = [u for u in storage.ls(entry, dirs=False) if u.lower().endswith(".mp4")]
        take = videos if query.per_chunk is None else videos[: query.per_chunk]
        if query.limit is not None:
            take = take[: query.limit - len(found)]
        found.extend(take)
        log.debug("chunk_%04d: %d of %d videos taken", number, len(take), len(videos))
        if query.limit is not None and len(found) >= query.limit:
            break
    return found


def expand_inputs(uris: list[str]) -> tuple[list[str], dict[str, str]]:
    """Expand ``chunks://`` entries of an input list; other URIs pass through unchanged.

    Returns (video URIs, {input entry: one-line error}) so that one bad entry (an empty or
    unreachable chunks:// result, a bad query) is reported while the others go on.
    """
    out: list[str] = []
    errors: dict[str, str] = {}
    for uri in uris:
        if not is_chunks_uri(uri):
            out.append(uri)
            continue
        try:
            videos = resolve_chunks(uri)
        except (StorageError, UsageError) as exc:
            errors[uri] = str(exc).removeprefix(f"{uri}: ")     # the entry names itself in the report
            continue
        if not videos:
            errors[uri] = "no .mp4 videos found in its chunk folders"
        out.extend(videos)
    return out, errors

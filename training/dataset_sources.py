"""Which videos a dataset run reads, and how they are split across devices. No torch at import.

- ``discover_videos(sources, start_index, limit)``: ``chunks://`` URIs (listing stops once
  ``start_index + limit`` videos are found), video URIs, folders and ``.txt`` lists, in the order
  given; a source that yields nothing or cannot be read is reported by itself and the others go on.
- ``plan_jobs(videos)``: one ``VideoJob`` per video (id = file stem, chunk = its ``chunk_NNNN``
  folder); a bad id or a second video with the same id is a failed job (its samples would collide).
- ``plan_devices(devices, profile)``: one worker per device (``core.runner.split_items`` gives each its
  share of the videos).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass

from core import storage
from core.chunks import is_chunks_uri, resolve_chunks
from core.errors import StorageError, UsageError
from core.ids import video_ids_of
from training.dataset_config import parse_devices

log = logging.getLogger(__name__)
_CHUNK = re.compile(r"^chunk_\d+$")
NO_CHUNK = "(no chunk)"


@dataclass(frozen=True)
class VideoJob:
    uri: str
    video_id: str | None
    chunk: str = NO_CHUNK
    error: str | None = None     # known before running (bad id, duplicate)

    @property
    def item_id(self) -> str:
        return self.video_id or self.uri


def _list_file(source: str) -> list[str]:
    lines = storage.read_text(source).splitlines()
    return [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]


def _expand(source: str, need: int | None, nested: bool = False) -> list[str]:
    """Video URIs of one source (at most ``need`` when it can stop early)."""
    if is_chunks_uri(source):
        return resolve_chunks(source, limit=need)
    lower = source.lower()
    if lower.endswith(".mp4"):
        return [source]
    if lower.endswith(".txt") and not nested:
        found: list[str] = []
        for entry in _list_file(source):
            if need is not None and len(found) >= need:
                break
            found += _expand(entry, None if need is None else need - len(found), nested=True)
        return found
    if storage.isdir(source):
        return [u for u in storage.walk_files(source) if u.lower().endswith(".mp4")]
    if not storage.exists(source):
        raise StorageError(f"{source}: not found")
    raise UsageError(f"{source}: not a video (.mp4), a folder, a .txt list or a chunks:// URI")


def discover_videos(sources: Sequence[str], start_index: int = 0,
                    limit: int | None = None) -> tuple[list[str], dict[str, str]]:
    """(videos start_index .. start_index+limit-1 of all sources in order, {source: one-line error})."""
    need = None if limit is None else start_index + limit
    found: list[str] = []
    errors: dict[str, str] = {}
    for source in sources:
        if need is not None and len(found) >= need:
            break
        try:
            videos = _expand(source, None if need is None else need - len(found))
        except (StorageError, UsageError) as exc:
            errors[source] = str(exc)
            continue
        if not videos:
            errors[source] = f"{source}: no .mp4 videos found"
        found += videos
    chosen = found[start_index:need]
    log.info("dataset sources: %d video(s) found, %d taken (start index %d, limit %s)", len(found), len(chosen),
             start_index, limit if limit is not None else "none")
    return chosen, errors


def chunk_of(uri: str) -> str:
    """The ``chunk_NNNN`` folder a video sits in, or ``NO_CHUNK``."""
    parent = uri.rstrip("/").replace("\\", "/").rsplit("/", 2)
    name = parent[-2] if len(parent) >= 2 else ""
    return name if _CHUNK.match(name) else NO_CHUNK


def plan_jobs(videos: Sequence[str]) -> list[VideoJob]:
    return [VideoJob(uri, vid, chunk_of(uri), error) for uri, vid, error in video_ids_of(videos)]


def plan_devices(devices: str, profile: str, gpu_count: int | None = None) -> list[str]:
    """The devices to run one worker each on. ``auto``: every GPU for the full profile, else CPU."""
    items = parse_devices(devices)
    if items != ("auto",):
        return list(items)
    if profile == "tiny":
        return ["cpu"]
    if gpu_count is None:
        import torch

        gpu_count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    return [f"cuda:{i}" for i in range(gpu_count)] or ["cpu"]

"""Find stage 2's edited clips and read the frames stage 3 plans on.

Stage 2 writes ``vp/<run_id>/<instruction_folder>/<video_id>/<video_id>_vp_edit_sample0.mp4`` (and a
``..._generated.mp4`` that is not an edit of the input, skipped here). The URI given may be the
``vp/<run_id>`` root, one instruction folder, a video folder or the mp4 itself: the instruction
folder is always the folder two levels above the file.
"""

from __future__ import annotations

import collections
import json
import logging
from dataclasses import dataclass

import numpy as np

from core import storage, videoio
from core.errors import LanepaintError, StorageError, UsageError
from core.layout import EDIT_SUFFIX
from vla.cameras import parse_video_id

log = logging.getLogger(__name__)

EDIT_FILE_SUFFIX = f"{EDIT_SUFFIX}.mp4"
NUM_FRAMES = 4          # frames per camera the model sees (t0 - 3 steps .. t0)


@dataclass(frozen=True)
class EditedVideo:
    uri: str
    folder: str          # instruction folder
    video_id: str        # <clip_id>.<camera_name> (unchecked until parse())

    @property
    def item_id(self) -> str:
        return f"{self.folder}/{self.video_id}"

    @property
    def file_name(self) -> str:
        return storage.basename(self.uri)

    @property
    def sidecar_uri(self) -> str:
        return self.uri[: -len(".mp4")] + ".json"

    @property
    def clip_guess(self) -> str:
        return self.video_id.split(".", 1)[0]

    def parse(self) -> tuple[str, str]:
        """(clip id, camera name), or a one-line error naming the file."""
        try:
            return parse_video_id(self.video_id)
        except LanepaintError as exc:
            raise LanepaintError(f"{self.file_name}: {exc}") from None


def _parts(uri: str) -> list[str]:
    body = storage.local_path(uri) if storage.is_local(uri) else uri.split("://", 1)[1]
    return [p for p in body.replace("\\", "/").split("/") if p]


def _edited(uri: str) -> EditedVideo:
    parts = _parts(uri)
    folder = parts[-3] if len(parts) >= 3 else "default"
    return EditedVideo(uri, folder, parts[-1][: -len(EDIT_FILE_SUFFIX)])


def find_edited_videos(video_data: str) -> list[EditedVideo]:
    """Every ``*_vp_edit_sample0.mp4`` under ``video_data`` (or that one file), sorted.

    A missing location or one without edited clips is a usage error (nothing has been written).
    """
    try:
        if video_data.endswith(".mp4"):
            if not storage.exists(video_data):
                raise UsageError(f"--video-data {video_data}: not found")
            if not video_data.endswith(EDIT_FILE_SUFFIX):
                raise UsageError(f"--video-data {video_data}: not an edited clip (*{EDIT_FILE_SUFFIX})")
            return [_edited(video_data)]
        if not storage.isdir(video_data):
            raise UsageError(f"--video-data {video_data}: not found (expected stage 2's vp/<run_id> "
                             "folder or one instruction folder under it)")
        files = [u for u in storage.walk_files(video_data) if u.endswith(EDIT_FILE_SUFFIX)]
    except StorageError as exc:
        raise UsageError(f"--video-data: {exc}") from None
    if not files:
        raise UsageError(f"--video-data {video_data}: no *{EDIT_FILE_SUFFIX} files found")
    videos = sorted((_edited(u) for u in files), key=lambda v: (v.folder, v.video_id, v.uri))
    log.info("found %d edited clip(s) in %d instruction folder(s) under %s", len(videos),
             len({v.folder for v in videos}), video_data)
    return videos


def read_instruction(video: EditedVideo) -> str | None:
    """The instruction stage 2 recorded in the clip's ``.json`` sidecar, if any."""
    try:
        if not storage.exists(video.sidecar_uri):
            return None
        value = json.loads(storage.read_text(video.sidecar_uri)).get("instruction")
    except (StorageError, ValueError, AttributeError) as exc:
        log.warning("%s: unreadable sidecar (%s)", video.item_id, exc)
        return None
    return str(value) if value else None


@dataclass(frozen=True)
class EditedFrames:
    frames: np.ndarray      # [NUM_FRAMES, H, W, 3] uint8, the last frames of the clip
    fps: float
    frame_count: int        # decodable frames in the clip

    @property
    def last_frame_seconds(self) -> float:
        """Time of the last frame after the clip's first frame."""
        return (self.frame_count - 1) / self.fps


def read_last_frames(video: EditedVideo, cache_dir: str, count: int = NUM_FRAMES) -> EditedFrames:
    """Decode every frame at the clip's own rate and keep the last ``count``."""
    local = storage.fetch(video.uri, cache_dir)
    fps = videoio.probe(local).fps
    tail: collections.deque[np.ndarray] = collections.deque(maxlen=count)
    total = 0
    for frame in videoio.iter_frames(local, fps=None):
        tail.append(frame)
        total += 1
    if total < count:
        raise LanepaintError(f"{video.file_name}: only {total} decodable frame(s), needs at least {count}")
    return EditedFrames(np.stack(tail), fps, total)

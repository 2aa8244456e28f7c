"""The stage 2 -> stage 3 hand-off: how an edited clip is named, found and described.

Stage 2 writes, per instruction folder and video,
``vp/<run_id>/<instruction_folder>/<video_id>/<video_id>_vp_edit_sample0.mp4`` (the edit, composited
into the original), ``..._generated.mp4`` (the raw model output, not an edit of the input) and the
sidecar ``..._vp_edit_sample0.json``, written last: its presence marks the item done. The video id of a
driving clip is ``<clip_id>.<camera_name>`` (the camera a known PhysicalAI-AV camera), which is how
stage 3 finds the clip's ego motion and other cameras. Stage 3 reads the sidecar keys in
``SIDECAR_KEYS``; stage 2 must write them.

A URI given to stage 3 may be the ``vp/<run_id>`` root, one instruction folder, a video folder or the
mp4 itself: the instruction folder is always the folder two levels above the file.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from core import storage
from core.driving_dataset import camera_index
from core.errors import LanepaintError, StorageError, UsageError
from core.moment import Moment

log = logging.getLogger(__name__)

EDIT_SUFFIX = "_vp_edit_sample0"
EDIT_FILE_SUFFIX = f"{EDIT_SUFFIX}.mp4"
GENERATED_FILE_SUFFIX = f"{EDIT_SUFFIX}_generated.mp4"
SIDECAR_FILE_SUFFIX = f"{EDIT_SUFFIX}.json"
# what stage 3 (and the reports) read from a sidecar
SIDECAR_KEYS = ("video_id", "instruction", "instruction_folder", "profile", "moment")


def edit_file_name(video_id: str) -> str:
    return f"{video_id}{EDIT_FILE_SUFFIX}"


def generated_file_name(video_id: str) -> str:
    return f"{video_id}{GENERATED_FILE_SUFFIX}"


def sidecar_file_name(video_id: str) -> str:
    return f"{video_id}{SIDECAR_FILE_SUFFIX}"


def parse_video_id(video_id: str) -> tuple[str, str]:
    """``<clip_id>.<camera_name>`` -> (clip id, camera name). The camera must be a known one."""
    if video_id.count(".") != 1:
        raise LanepaintError(f"{video_id!r}: name does not parse as <clip_id>.<camera_name>")
    clip_id, camera = video_id.split(".")
    if not clip_id or not camera:
        raise LanepaintError(f"{video_id!r}: name does not parse as <clip_id>.<camera_name>")
    camera_index(camera)
    return clip_id, camera


def sidecar_text(sidecar: Mapping[str, Any]) -> str:
    """The sidecar as stage 2 writes it; a missing hand-off key is a programming error."""
    missing = [k for k in SIDECAR_KEYS if k not in sidecar]
    if missing:
        raise ValueError(f"sidecar lacks {', '.join(missing)}")
    return json.dumps(dict(sidecar), indent=2, default=str)


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
        return self.uri[: -len(EDIT_FILE_SUFFIX)] + SIDECAR_FILE_SUFFIX

    @property
    def clip_guess(self) -> str:
        return self.video_id.split(".", 1)[0]

    def parse(self) -> tuple[str, str]:
        """(clip id, camera name), or a one-line error naming the file."""
        try:
            return parse_video_id(self.video_id)
        except LanepaintError as exc:
            raise LanepaintError(f"{self.file_name}: {exc}") from None

    def sidecar(self) -> dict[str, Any] | None:
        """The sidecar stage 2 wrote (None when there is none); an unreadable one is a one-line error."""
        try:
            if not storage.exists(self.sidecar_uri):
                return None
            value = json.loads(storage.read_text(self.sidecar_uri))
        except (StorageError, ValueError) as exc:
            raise LanepaintError(f"{self.file_name}: unreadable sidecar {self.sidecar_uri} ({exc})") from None
        if not isinstance(value, dict):
            raise LanepaintError(f"{self.file_name}: sidecar {self.sidecar_uri} is not a JSON object")
        return value

    def instruction(self) -> str | None:
        """The instruction stage 2 recorded in the sidecar, if any."""
        try:
            value = (self.sidecar() or {}).get("instruction")
        except LanepaintError as exc:
            log.warning("%s: %s", self.item_id, exc)
            return None
        return str(value) if value else None

    def moment(self) -> Moment | None:
        """The evaluated moment stage 1 planned, as the sidecar carries it (None: not planned, or a clip
        edited before moments were planned)."""
        value = (self.sidecar() or {}).get("moment")
        if value is None:
            return None
        try:
            return Moment.from_dict(value)
        except LanepaintError as exc:
            raise LanepaintError(f"{self.file_name}: sidecar: {exc}") from None


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
    return sorted((_edited(u) for u in files), key=lambda v: (v.folder, v.video_id, v.uri))

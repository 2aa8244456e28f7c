"""The frames stage 3 plans on from one edited clip (the clip itself is found through the stage 2 -> 3
hand-off, ``core.edited_clips``)."""

from __future__ import annotations

import collections
import logging
from dataclasses import dataclass

import numpy as np

from core import storage, videoio
from core.edited_clips import EditedVideo
from core.errors import LanepaintError

log = logging.getLogger(__name__)

NUM_FRAMES = 4          # frames per camera the model sees (t0 - 3 steps .. t0)


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

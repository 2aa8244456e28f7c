"""The frames stage 3 plans on from one edited clip, at the times the driving model sees (the clip itself is
found through the stage 2 -> 3 hand-off, ``core.edited_clips``).

The moment comes from stage 1's plan, carried in the sidecar (``core.moment``). A clip edited without one
(before moments were planned, or stage 1 run without ``--plan-moment``) puts t0 at its last frame, the
seed's rule. The model sees ``NUM_FRAMES`` frames per camera ending at t0: at the driving model's 0.1 s
spacing (``spacing="model"``, Alpamayo-R1's own loader) or at the edit's frame step (``"edit"``, 0.125 s at
8 fps, the seed's behaviour); each is the frame at or before its time, in the edit and in the dataset alike.
A 10 fps edit holds the model's times exactly; at 8 fps the frames used are up to 75 ms early
(``lateness_s`` records it).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from core import storage, videoio
from core.driving_dataset import TRAJ_STEP_S
from core.edited_clips import EditedVideo
from core.errors import LanepaintError
from core.moment import Moment, frames_at

log = logging.getLogger(__name__)

NUM_FRAMES = 4          # frames per camera the model sees (t0 - 3 steps .. t0)
Spacing = Literal["model", "edit"]


def frame_offsets(spacing: Spacing, fps: float, count: int = NUM_FRAMES) -> np.ndarray:
    """Seconds before t0 of the frames the model sees, oldest first (``[0.3, 0.2, 0.1, 0]`` for the model)."""
    step = TRAJ_STEP_S if spacing == "model" else 1.0 / fps
    return step * np.arange(count - 1, -1, -1, dtype=np.float64)


@dataclass(frozen=True)
class EditedFrames:
    frames: np.ndarray      # [NUM_FRAMES, H, W, 3] uint8: the edited camera at the model's times
    moment: Moment          # t0 and the edited clip's window, in seconds of stage 1's source video
    planned: bool           # the moment came from stage 1's plan (False: t0 at the clip's last frame)
    offsets_s: np.ndarray   # [NUM_FRAMES] seconds before t0 the model asks for, oldest first
    picked_s: np.ndarray    # [NUM_FRAMES] source times of the edited frames used (at or before each time)

    @property
    def frame_rate(self) -> float:
        """Frames per second of what the model sees (10 at the model's spacing)."""
        return float(1.0 / (self.offsets_s[-2] - self.offsets_s[-1])) if len(self.offsets_s) > 1 else self.moment.fps

    @property
    def lateness_s(self) -> float:
        """How much earlier than asked the edited frames are, at most (0 when the edit holds the times)."""
        return float(np.max(self.moment.t0_s - self.offsets_s - self.picked_s))

    def temporal(self) -> dict[str, Any]:
        """What the inference record says about the frames."""
        return {"moment": self.moment.as_dict(), "moment_source": "stage 1 plan" if self.planned else
                "last edited frame (no planned moment)", "frame_offsets_seconds": [round(float(v), 6) for v in
                                                                                   self.offsets_s],
                "edited_frame_times_seconds": [round(float(v), 6) for v in self.picked_s],
                "edited_frame_lateness_seconds": round(self.lateness_s, 6)}


def read_model_frames(video: EditedVideo, cache_dir: str, spacing: Spacing = "model",
                      count: int = NUM_FRAMES) -> EditedFrames:
    """The edited camera's ``count`` frames ending at t0, decoded by seeking (not the whole clip)."""
    local = storage.fetch(video.uri, cache_dir)
    info = videoio.probe(local)
    moment, planned = video.moment(), True
    if moment is None:
        frames = int(round(info.last_frame_s * info.fps)) + 1
        moment, planned = Moment((frames - 1) / info.fps, 0.0, info.fps, frames), False
    elif abs(info.fps - moment.fps) > 1e-3 * moment.fps:
        raise LanepaintError(f"{video.file_name}: the clip runs at {info.fps:g} fps, its planned moment at "
                             f"{moment.fps:g} fps")
    offsets = frame_offsets(spacing, moment.fps, count)
    wanted = moment.t0_s - offsets
    index = frames_at(moment.frame_times(), wanted)
    if index.min() < 0:
        raise LanepaintError(f"{video.file_name}: the edit starts at {moment.start_s:.2f} s, after the first frame "
                             f"the model needs ({wanted[0]:.2f} s: {count} frames ending at t0 = "
                             f"{moment.t0_s:.2f} s)")
    picked = moment.start_s + index / moment.fps
    try:
        decoded = videoio.decode_times(local, picked - moment.start_s)
    except LanepaintError as exc:
        raise LanepaintError(f"{video.file_name}: {exc}") from None
    return EditedFrames(decoded, moment, planned, offsets, picked)

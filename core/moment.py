"""The evaluated moment t0 of a driving clip, planned before any model runs, and the edit window ending at it.

Stage 3 asks the driving model to plan at t0: it needs 1.6 s of ego history before t0 and 6.4 s of
future after it, and the edited camera's frames just before t0. So stage 1 keeps only the frames stages
2 and 3 use: by default one VideoPainter window of ``frames`` frames at ``fps`` ending at t0 (49 at 10 fps:
4.8 s), and t0 is the latest moment of the source video that leaves 6.4 s after it. With ``frames`` 0 (a
whole-clip edit) the window runs from the video's start (at most ``max_frames`` frames) and t0 is the latest
edited moment that still has 6.4 s of future. The source video stands for the dataset clip (a PhysicalAI-AV
camera video covers its whole clip); stage 3 checks the ego motion itself.

Times are seconds after the source video's first frame. Frames sit at ``t0 - k / fps``; at 10 fps (or 20,
30) they include the driving model's frame times t0 - 0.1 k. The moment travels in the 1 -> 2 hand-off
(meta.csv) and the 2 -> 3 one (the sidecar); stage 3 reads it instead of re-deriving it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from core.driving_dataset import FUTURE_S, HISTORY_S, TRAJ_STEP_S
from core.errors import LanepaintError

EDIT_WINDOW_FRAMES = 49          # one CogVideoX / VideoPainter window
MOMENT_FPS = 10.0                # frames at the driving model's 0.1 s spacing
_EPS = 1e-6


@dataclass(frozen=True)
class Moment:
    t0_s: float          # the evaluated moment, seconds after the source video's first frame
    start_s: float       # the edit window's first frame
    fps: float           # frame rate of the window
    frames: int          # frames in the window (the last one at t0 unless the whole clip is edited)

    @property
    def end_s(self) -> float:
        return self.start_s + (self.frames - 1) / self.fps

    def frame_times(self) -> np.ndarray:
        """Source times of the window's frames."""
        return self.start_s + np.arange(self.frames) / self.fps

    def as_dict(self) -> dict[str, Any]:
        return {"t0_s": round(self.t0_s, 6), "start_s": round(self.start_s, 6), "fps": self.fps,
                "frames": self.frames}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Moment:
        try:
            moment = cls(float(values["t0_s"]), float(values["start_s"]), float(values["fps"]), int(values["frames"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise LanepaintError(f"bad evaluated moment {values!r} ({exc})") from None
        if not (math.isfinite(moment.t0_s) and math.isfinite(moment.start_s) and moment.fps > 0
                and moment.frames >= 1 and moment.start_s - _EPS <= moment.t0_s <= moment.end_s + _EPS):
            raise LanepaintError(f"bad evaluated moment {values!r}: t0 must lie in the window")
        return moment


def plan_moment(last_frame_s: float, fps: float, frames: int = EDIT_WINDOW_FRAMES,
                max_frames: int | None = None) -> Moment:
    """The moment and window for a source video whose last frame is at ``last_frame_s``; a video that
    cannot hold them is a one-line error giving the seconds it has and needs (the caller names the video)."""
    latest = math.floor((last_frame_s - FUTURE_S) * fps + _EPS) / fps     # on the window's frame grid
    if frames:
        span = (frames - 1) / fps
        earliest = max(span, HISTORY_S)
        if latest < earliest - _EPS:
            raise LanepaintError(
                f"{last_frame_s:.2f} s of video; the evaluated moment needs {earliest + FUTURE_S:.2f} s "
                f"({earliest:.2f} s before t0 for the {frames}-frame edit window at {fps:g} fps and the "
                f"{HISTORY_S:g} s history, {FUTURE_S:g} s after it)")
        return Moment(latest, latest - span, fps, frames)
    if latest < HISTORY_S - _EPS:
        raise LanepaintError(f"{last_frame_s:.2f} s of video; the evaluated moment needs "
                             f"{HISTORY_S + FUTURE_S:.2f} s ({HISTORY_S:g} s of history before t0, "
                             f"{FUTURE_S:g} s after it)")
    count = int(math.floor(last_frame_s * fps + _EPS)) + 1
    if max_frames:
        count = min(count, max_frames)
    t0 = min(latest, (count - 1) / fps)
    if t0 < HISTORY_S - _EPS:
        raise LanepaintError(f"the {count}-frame edit at {fps:g} fps ends at {t0:.2f} s; the evaluated "
                             f"moment needs {HISTORY_S:g} s of history before it (raise --max-frames)")
    return Moment(t0, 0.0, fps, count)


def model_frame_error_s(fps: float, frames: int = 4) -> float:
    """How early the frame at or before the driving model's times t0 - 0.1 k (k < ``frames``) can be in a
    window at ``fps`` ending at t0: 0 when the window holds those times (10, 20, 30 fps ...)."""
    times = -TRAJ_STEP_S * np.arange(frames)
    grid = np.floor(times * fps + _EPS) / fps
    return float(np.max(times - grid))


def shortest_video_s(frames: int = EDIT_WINDOW_FRAMES, fps: float = MOMENT_FPS) -> float:
    """The shortest source video (last frame time) that holds a ``frames`` window at ``fps`` ending at t0."""
    return max((frames - 1) / fps, HISTORY_S) + FUTURE_S


def frames_at(frame_times: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Index of the frame at or before each target time (the driving model's rule); -1 where none is."""
    return np.searchsorted(np.asarray(frame_times) - _EPS, np.asarray(targets), side="right") - 1

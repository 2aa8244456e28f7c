"""Prompts for the SAM2 video predictor: no human in the loop, the road is prompted by position.

One small interface, ``PromptStrategy.prompt_for(frame) -> Prompt``: a strategy looks at a frame
(RGB ``[H, W, 3]``) and returns points and/or a box in pixel coordinates. Built in:

- ``points6`` (default): positive points on the bottom half, where the ego road is;
- ``points9``: the same plus three points nearer the car and the centre of the lane;
- ``box``: a box over the lower part of the frame plus the reference point.

Which frames get a prompt, and in which direction the masks are propagated, is ``prompt_frames``:
the first frame of the direction, then every ``reprompt_every`` frames (stops drift). Long clips
are cut into overlapping windows by ``plan_windows`` (bounded memory, re-seeded by mask).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from core.errors import UsageError

# normalised (x, y); y grows downwards
POINTS6 = ((0.50, 0.85), (0.35, 0.75), (0.65, 0.75), (0.25, 0.80), (0.75, 0.80), (0.50, 0.65))
POINTS9 = POINTS6 + ((0.40, 0.92), (0.60, 0.92), (0.50, 0.75))
ROAD_BOX = (0.05, 0.60, 0.95, 1.00)  # x0, y0, x1, y1
REFERENCE_POINT = (0.50, 0.85)        # also the cleanup's "this component is the road" point


@dataclass(frozen=True)
class Prompt:
    """Pixel-space prompt for one frame: points ``[N, 2]`` (x, y) with labels (1 road, 0 not road)
    and/or a box ``(x0, y0, x1, y1)``."""

    points: np.ndarray | None = None
    labels: np.ndarray | None = None
    box: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.points is None and self.box is None:
            raise ValueError("a prompt needs points or a box")
        if (self.points is None) != (self.labels is None):
            raise ValueError("points and labels go together")
        if self.points is not None and (self.points.ndim != 2 or self.points.shape[1] != 2
                                        or len(self.labels) != len(self.points)):
            raise ValueError(f"points must be [N, 2] with N labels, got {self.points.shape}")


class PromptStrategy(Protocol):
    """Anything that turns a frame into a prompt (the one interface strategies implement)."""

    name: str

    def prompt_for(self, frame: np.ndarray) -> Prompt: ...


def _scale(norm: Sequence[Sequence[float]], width: int, height: int) -> np.ndarray:
    # pixel centres: x in [0, W-1], y in [0, H-1]
    arr = np.asarray(norm, dtype=np.float32).reshape(-1, 2)
    return arr * np.array([width - 1, height - 1], dtype=np.float32)


@dataclass(frozen=True)
class FixedPoints:
    """Positive points at fixed normalised positions."""

    name: str
    points: tuple[tuple[float, float], ...]

    def prompt_for(self, frame: np.ndarray) -> Prompt:
        h, w = frame.shape[:2]
        pts = _scale(self.points, w, h)
        return Prompt(points=pts, labels=np.ones(len(pts), dtype=np.int32))


@dataclass(frozen=True)
class RoadBox:
    """A box over the lower part of the frame, plus positive points (default: the reference point)."""

    name: str = "box"
    box: tuple[float, float, float, float] = ROAD_BOX
    points: tuple[tuple[float, float], ...] = field(default=(REFERENCE_POINT,))

    def prompt_for(self, frame: np.ndarray) -> Prompt:
        h, w = frame.shape[:2]
        box = _scale((self.box[:2], self.box[2:]), w, h).reshape(4)
        pts = _scale(self.points, w, h) if self.points else None
        labels = np.ones(len(pts), dtype=np.int32) if pts is not None else None
        return Prompt(points=pts, labels=labels, box=box)


STRATEGIES: dict[str, PromptStrategy] = {
    "points6": FixedPoints("points6", POINTS6),
    "points9": FixedPoints("points9", POINTS9),
    "box": RoadBox(),
}


def get_strategy(name: str) -> PromptStrategy:
    try:
        return STRATEGIES[name]
    except KeyError:
        raise UsageError(f"unknown prompt strategy {name!r}: use one of {', '.join(STRATEGIES)}") from None


def prompt_frames(num_frames: int, reprompt_every: int = 0, direction: str = "forward") -> list[int]:
    """Frame indices that get a prompt, in propagation order.

    Forward: 0, N, 2N, ...; backward: T-1, T-1-N, ... (N = ``reprompt_every``; 0 = first only).
    """
    if num_frames < 1:
        return []
    if direction not in ("forward", "backward"):
        raise UsageError(f"direction {direction!r}: use forward or backward")
    step = reprompt_every if reprompt_every > 0 else num_frames
    frames = list(range(0, num_frames, step))
    if direction == "backward":
        frames = [num_frames - 1 - f for f in frames]
    return frames


def plan_windows(num_frames: int, window: int = 0, direction: str = "forward") -> list[tuple[int, int]]:
    """``[start, end)`` frame windows in processing order, consecutive ones sharing one frame.

    The shared frame is where the next window is seeded with the previous window's mask: forward,
    it is the first frame of the next window; backward, its last. ``window`` 0 (or a clip that
    fits) gives one window.
    """
    if num_frames < 1:
        return []
    if window <= 0 or num_frames <= window:
        return [(0, num_frames)]
    if window < 2:
        raise UsageError(f"window must be >= 2 frames, got {window}")
    spans, start = [], 0
    while True:
        end = min(start + window, num_frames)
        spans.append((start, end))
        if end == num_frames:
            break
        start = end - 1
    if direction == "backward":
        spans = [(num_frames - e, num_frames - s) for s, e in spans]
    return spans

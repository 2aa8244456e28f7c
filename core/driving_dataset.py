"""PhysicalAI-AV facts shared by the synthetic dataset writer and stage 3 (standard library only).

The hub repository, the camera names with the camera index Alpamayo-R1 was trained with (see
UPSTREAM_NOTES), the default camera set, and the time window a driving model needs around the
evaluated moment t0: 16 history poses and 64 future poses at 0.1 s.
"""

from __future__ import annotations

import re

from core.errors import LanepaintError

REPO_ID = "nvidia/PhysicalAI-Autonomous-Vehicles"
REPO_FOLDER = "datasets--" + REPO_ID.replace("/", "--")     # its folder in a Hugging Face cache

CAMERA_INDEX: dict[str, int] = {
    "camera_cross_left_120fov": 0,
    "camera_front_wide_120fov": 1,
    "camera_cross_right_120fov": 2,
    "camera_rear_left_70fov": 3,
    "camera_rear_tele_30fov": 4,
    "camera_rear_right_70fov": 5,
    "camera_front_tele_30fov": 6,
}
FRONT_CAMERA = "camera_front_wide_120fov"
DEFAULT_CAMERAS = ("camera_cross_left_120fov", "camera_front_wide_120fov",
                   "camera_cross_right_120fov", "camera_front_tele_30fov")
CAMERA_NAME = re.compile(r"^camera_[a-z0-9_]+_(\d+)fov$")

CLIP_SECONDS = 20.0                        # a clip; every camera video covers all of it
CAMERA_FPS = 30.0                          # the cameras' frame rate
CAMERA_SIZE = (1920, 1080)                 # the front wide camera's frame (16:9)

NUM_HISTORY, NUM_FUTURE, TRAJ_STEP_S = 16, 64, 0.1
HISTORY_S = NUM_HISTORY * TRAJ_STEP_S      # 1.6 s of ego history before t0 (the upstream loader asserts it)
FUTURE_S = NUM_FUTURE * TRAJ_STEP_S        # 6.4 s of ego future after t0


def camera_index(name: str) -> int:
    """The model's index for a camera; an unknown name is a one-line error."""
    try:
        return CAMERA_INDEX[name]
    except KeyError:
        raise LanepaintError(f"unknown camera {name!r} (known: {', '.join(CAMERA_INDEX)})") from None


def camera_fov_deg(name: str) -> float:
    """Horizontal field of view from the camera name suffix (``..._120fov`` -> 120)."""
    match = CAMERA_NAME.match(name)
    if not match:
        raise LanepaintError(f"camera {name!r}: no field of view in its name (expected camera_..._<deg>fov)")
    return float(match.group(1))

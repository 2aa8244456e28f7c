"""Camera facts stage 3 needs: the model's camera index, field of view and nominal mounting.

The index map and names come from PhysicalAI-AV / Alpamayo-R1 (``core.synth_av.CAMERA_INDEX``).
Field of view comes from the name (120/70/30). Yaw and height are nominal (the dataset's own
extrinsics are not used): they are what the overlay projection needs to put a trajectory on the
right side of the picture.
"""

from __future__ import annotations

import re

from core.errors import LanepaintError
from core.synth_av import CAMERA_INDEX, DEFAULT_CAMERAS, FRONT_CAMERA

__all__ = ["CAMERA_INDEX", "DEFAULT_CAMERAS", "FRONT_CAMERA", "CAMERA_YAW_DEG", "CAMERA_HEIGHT_M",
           "camera_index", "camera_fov", "camera_yaw", "parse_video_id"]

# Nominal yaw of each camera's optical axis from the ego x axis, degrees, left positive.
CAMERA_YAW_DEG: dict[str, float] = {
    "camera_cross_left_120fov": 90.0,
    "camera_front_wide_120fov": 0.0,
    "camera_cross_right_120fov": -90.0,
    "camera_rear_left_70fov": 150.0,
    "camera_rear_tele_30fov": 180.0,
    "camera_rear_right_70fov": -150.0,
    "camera_front_tele_30fov": 0.0,
}
CAMERA_HEIGHT_M = 1.5          # nominal mounting height above the ego-frame origin (ground)

_FOV = re.compile(r"_(\d+)fov$")


def camera_index(name: str) -> int:
    """The model's index for a camera; an unknown name is a one-line error."""
    try:
        return CAMERA_INDEX[name]
    except KeyError:
        raise LanepaintError(f"unknown camera {name!r} (known: {', '.join(CAMERA_INDEX)})") from None


def camera_fov(name: str) -> float:
    """Horizontal field of view in degrees from the name: 120, 70 or 30."""
    match = _FOV.search(name)
    if not match:
        raise LanepaintError(f"camera {name!r}: no field of view in its name")
    return float(match.group(1))


def camera_yaw(name: str) -> float:
    camera_index(name)
    return CAMERA_YAW_DEG[name]


def parse_video_id(video_id: str) -> tuple[str, str]:
    """``<clip_id>.<camera_name>`` -> (clip id, camera name). The camera must be a known one."""
    if video_id.count(".") != 1:
        raise LanepaintError(f"{video_id!r}: name does not parse as <clip_id>.<camera_name>")
    clip_id, camera = video_id.split(".")
    if not clip_id or not camera:
        raise LanepaintError(f"{video_id!r}: name does not parse as <clip_id>.<camera_name>")
    camera_index(camera)
    return clip_id, camera

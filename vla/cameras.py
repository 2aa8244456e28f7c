"""Camera mounting stage 3's overlays need: nominal yaw and height of each PhysicalAI-AV camera.

The names, the model's camera index and the field of view live in ``core.driving_dataset``. Yaw and
height are nominal (the dataset's own extrinsics are not used): they are what the overlay projection
needs to put a trajectory on the right side of the picture.
"""

from __future__ import annotations

from core.driving_dataset import camera_index

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


def camera_yaw(name: str) -> float:
    camera_index(name)          # an unknown camera is a one-line error
    return CAMERA_YAW_DEG[name]

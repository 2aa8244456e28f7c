"""Constant-velocity / constant-yaw-rate (CTRV) baseline: the standard planning baseline of AV papers.

It looks only at the ego history (in the t0 frame): speed = mean step length over the last
``fit_steps`` steps, yaw rate = least-squares slope of the unwrapped yaw over the same window. It
then drives on at that speed and yaw rate from the t0 pose, on the exact arc (a line when the yaw
rate is ~0). It ignores the cameras, so an edit cannot change its plan: its delta is 0 by design,
which makes it the reference any image-conditioned model is compared with.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from vla.model_io import HORIZON, ModelInput, Prediction

STEP_S = 0.1


def yaw_of(rot: np.ndarray) -> np.ndarray:
    """Yaw (rad, about z) of rotation matrices ``[..., 3, 3]``."""
    return np.arctan2(rot[..., 1, 0], rot[..., 0, 0])


def yaw_matrices(yaw: np.ndarray) -> np.ndarray:
    c, s = np.cos(yaw), np.sin(yaw)
    out = np.zeros((*np.shape(yaw), 3, 3))
    out[..., 0, 0], out[..., 0, 1], out[..., 1, 0], out[..., 1, 1], out[..., 2, 2] = c, -s, s, c, 1.0
    return out


def ctrv_rollout(history_xyz: np.ndarray, history_rot: np.ndarray, steps: int = HORIZON,
                 dt: float = STEP_S, fit_steps: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """Future ``xyz [steps, 3]`` and ``rot [steps, 3, 3]`` continuing the history's speed and yaw rate."""
    k = max(1, min(fit_steps, len(history_xyz) - 1))
    seg = np.linalg.norm(np.diff(history_xyz[-(k + 1):, :2], axis=0), axis=1)
    speed = float(seg.mean() / dt)
    yaw = np.unwrap(yaw_of(history_rot[-(k + 1):]))
    t = np.arange(k + 1) * dt
    yaw_rate = float(np.polyfit(t, yaw, 1)[0])
    x0, y0, z0 = (float(v) for v in history_xyz[-1])
    yaw0 = float(yaw[-1])
    tau = np.arange(1, steps + 1) * dt
    heading = yaw0 + yaw_rate * tau
    if abs(yaw_rate) < 1e-9:
        x = x0 + speed * tau * math.cos(yaw0)
        y = y0 + speed * tau * math.sin(yaw0)
    else:
        radius = speed / yaw_rate
        x = x0 + radius * (np.sin(heading) - math.sin(yaw0))
        y = y0 - radius * (np.cos(heading) - math.cos(yaw0))
    xyz = np.stack([x, y, np.full_like(tau, z0)], axis=-1)
    return xyz, yaw_matrices(heading)


class ConstantVelocityModel:
    """The CTRV baseline behind the trajectory-model interface (runs anywhere, no torch)."""

    name = "constant-velocity"
    device: str | None = None

    def __init__(self, fit_steps: int = 5) -> None:
        self.fit_steps = fit_steps

    def describe(self) -> dict[str, Any]:
        return {"model": self.name, "kind": "constant speed and yaw rate from the ego history",
                "fit_steps": self.fit_steps, "samples": 1, "uses_images": False}

    def predict(self, inputs: Sequence[ModelInput], seed: int = 0) -> list[Prediction]:
        out = []
        for item in inputs:
            start = time.perf_counter()
            xyz, rot = ctrv_rollout(item.ego_history_xyz, item.ego_history_rot, fit_steps=self.fit_steps)
            out.append(Prediction(xyz[None], rot[None], (), time.perf_counter() - start))
        return out

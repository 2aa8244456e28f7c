"""What every trajectory model takes (``ModelInput``) and returns (``Prediction``).

A model gets the frames of every camera (``[N, T, H, W, 3]`` uint8, sorted by camera index), the
camera indices and the ego history in the t0 frame, and returns ``S`` trajectories of 64 waypoints
at 0.1 s (``xyz [S, 64, 3]``, ``rot [S, 64, 3, 3]``) plus any reasoning text. Models take a batch of
inputs (the original and the edited input of a clip) and a seed: sample ``k`` of every input of one
call starts from the same noise, so the inputs' predictions are paired sample by sample.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

HORIZON = 64


@dataclass(frozen=True)
class ModelInput:
    frames: np.ndarray            # [N, T, H, W, 3] uint8
    camera_indices: np.ndarray    # [N] int64
    ego_history_xyz: np.ndarray   # [16, 3]
    ego_history_rot: np.ndarray   # [16, 3, 3]


@dataclass(frozen=True)
class Prediction:
    xyz: np.ndarray                     # [S, 64, 3]
    rot: np.ndarray                     # [S, 64, 3, 3]
    reasoning: tuple[str, ...] = ()     # one text per sample when the model gives one
    seconds: float = 0.0
    memory: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.xyz.ndim != 3 or self.xyz.shape[1:] != (HORIZON, 3):
            raise ValueError(f"pred xyz must be [S, {HORIZON}, 3], got {self.xyz.shape}")
        if self.rot.shape != (*self.xyz.shape[:2], 3, 3):
            raise ValueError(f"pred rot must be [S, {HORIZON}, 3, 3], got {self.rot.shape}")

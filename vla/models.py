"""The one small interface every trajectory model implements, and the factory that loads one.

A model gets the frames of every camera (``[N, T, H, W, 3]`` uint8, sorted by camera index), the
camera indices and the ego history in the t0 frame, and returns ``S`` trajectories of 64 waypoints
at 0.1 s (``xyz [S, 64, 3]``, ``rot [S, 64, 3, 3]``) plus any reasoning text. Models are loaded once
per stage call. The Alpamayo-R1 adapter (and torch with it) is imported only when selected.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from core.errors import UsageError

log = logging.getLogger(__name__)

HORIZON = 64
ALPAMAYO_INSTALL_HINT = ("pip install 'alpamayo_r1 @ git+https://github.com/NVlabs/alpamayo' "
                         "(Python 3.12, torch 2.8, flash-attn; it belongs in the VLA stage image)")


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


class TrajectoryModel(Protocol):
    name: str
    device: str | None           # a CUDA device when GPU memory should be reported

    def describe(self) -> dict[str, Any]: ...

    def predict(self, inputs: ModelInput) -> Prediction: ...


def load_model(kind: str, *, profile: str, model_path: str, num_traj_samples: int, device: str = "auto",
               seed: int = 42) -> TrajectoryModel:
    """Load the model named ``kind`` once (``alpamayo`` or ``constant-velocity``)."""
    if kind == "constant-velocity":
        from vla.baseline import ConstantVelocityModel

        if num_traj_samples > 1:
            log.info("constant-velocity baseline is deterministic: it returns one trajectory, "
                     "not %d samples", num_traj_samples)
        return ConstantVelocityModel()
    if kind == "alpamayo":
        if profile == "tiny":
            raise UsageError("--model alpamayo has no tiny profile (its package and 10B checkpoint need a GPU "
                             "image); use --model constant-velocity with --profile tiny")
        try:
            import alpamayo_r1  # noqa: F401 - only to give the install hint early
        except ImportError:
            raise UsageError(f"--model alpamayo needs the alpamayo_r1 package: {ALPAMAYO_INSTALL_HINT}") from None
        from vla.alpamayo import AlpamayoModel

        return AlpamayoModel.load(model_path, num_traj_samples=num_traj_samples, device=device, seed=seed)
    raise UsageError(f"--model {kind!r}: use alpamayo or constant-velocity")

"""The one small interface every trajectory model implements (inputs and outputs in ``vla.model_io``),
and the factory that loads one. Models are loaded once per stage call; Alpamayo-R1 (and torch with it) is
imported only when selected.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Protocol

from core.errors import UsageError
from vla.model_io import ModelInput, Prediction

log = logging.getLogger(__name__)


class TrajectoryModel(Protocol):
    name: str
    device: str | None           # a CUDA device when GPU memory should be reported

    def describe(self) -> dict[str, Any]: ...

    def predict(self, inputs: Sequence[ModelInput], seed: int = 0) -> list[Prediction]: ...


def load_model(kind: str, *, profile: str, model_path: str, num_traj_samples: int, device: str = "auto",
               max_new_tokens: int = 256, processor_path: str | None = None, offline: bool = True,
               cache_dir: str | None = None) -> TrajectoryModel:
    """Load the model named ``kind`` once (``alpamayo`` or ``constant-velocity``)."""
    if kind == "constant-velocity":
        from vla.baseline import ConstantVelocityModel

        return ConstantVelocityModel()
    if kind == "alpamayo":
        from core.device import resolve_device
        from vla.alpamayo.loader import load_alpamayo
        from vla.alpamayo.predictor import AlpamayoPredictor

        policy = resolve_device(device, profile)
        loaded = load_alpamayo(profile, model_path, policy, local_only=offline, processor_source=processor_path,
                               cache_dir=cache_dir)
        return AlpamayoPredictor(loaded, policy, num_samples=num_traj_samples, max_new_tokens=max_new_tokens)
    raise UsageError(f"--model {kind!r}: use alpamayo or constant-velocity")

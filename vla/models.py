"""The one small interface every trajectory model implements (inputs and outputs in ``vla.model_io``),
and the factory that loads one. Models are loaded once per stage call. The Alpamayo-R1 adapter (and torch with it) is imported only when selected.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

from core.errors import UsageError
from vla.model_io import ModelInput, Prediction

log = logging.getLogger(__name__)

ALPAMAYO_INSTALL_HINT = ("pip install 'alpamayo_r1 @ git+https://github.com/NVlabs/alpamayo' "
                         "(Python 3.12, torch 2.8, flash-attn; it belongs in the VLA stage image)")


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

"""Configuration of ``lanepaint train-lora`` (FluxFill LoRA fine-tuning on a lane dataset): stdlib only.

Priority: defaults < environment (``core.config.ENV_TABLE``, section ``train-lora``) < command line.
Fields left ``None`` take the profile's value (``PROFILE_DEFAULTS``) in ``__post_init__`` so the
run's ``training_state.json`` and ``manifest.json`` record the values that ran.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

from core.config import require
from core.errors import UsageError
from core.ids import validate_id

SECTION = "train-lora"
DEFAULT_TARGETS = ("to_k", "to_q", "to_v", "to_out.0")
LATEST = "latest"

# Values that differ between FLUX.1-Fill-dev and the tiny random-weight FluxFill.
PROFILE_DEFAULTS: dict[str, dict[str, Any]] = {
    "full": {"resolution": 1024, "max_sequence_length": 512},
    "tiny": {"resolution": 64, "max_sequence_length": 32},
}


@dataclass(frozen=True)
class LoraTrainConfig:
    """Everything ``training.lora_train.run_train_lora`` needs.

    ``data``: a lane dataset folder URI (``training.lane_dataset`` format). ``output``: the folder
    URI under which the run folder ``fluxfill_<dataset>_<YYYYMMDD_HHMMSS>`` (or ``run_name``) is made.
    ``resolution``: images are resized, aspect ratio kept, to at most ``resolution``² pixels with sides
    that are multiples of 16 (what stage 2's FluxFill does with its own area cap).
    ``resume_from_checkpoint``: ``latest`` (the newest complete checkpoint of the newest run of this
    dataset under ``output``, or of ``run_name``; a fresh run when there is none) or a checkpoint or
    run folder URI.
    """

    data: str = ""
    output: str = ""
    profile: Literal["full", "tiny"] = "full"
    model: str = "black-forest-labs/FLUX.1-Fill-dev"
    run_name: str | None = None
    # schedule
    max_train_steps: int | None = None          # None: epochs x steps per epoch
    epochs: int = 5
    resolution: int | None = None
    batch_size: int = 1
    gradient_accumulation: int = 4
    learning_rate: float = 1e-5
    lr_scheduler: Literal["cosine", "constant", "linear"] = "cosine"
    lr_warmup_steps: int = 50
    weight_decay: float = 1e-2
    max_grad_norm: float = 1.0
    seed: int = 42
    # the adapter
    rank: int = 128
    alpha: float | None = None                  # None: equal to rank (scale 1)
    dropout: float = 0.0
    target_modules: tuple[str, ...] = DEFAULT_TARGETS
    # conditioning (as stage 2 feeds FluxFill)
    guidance_scale: float = 30.0
    dilate_size: int = 24
    max_sequence_length: int | None = None
    shift_timesteps: bool = True                # sample sigmas on the inference schedule's resolution shift
    # checkpoints and runtime
    checkpointing_steps: int = 100
    checkpoints_total_limit: int = 4
    resume_from_checkpoint: str | None = None
    gradient_checkpointing: bool = False
    device: Literal["auto", "cpu", "cuda"] = "auto"
    mixed_precision: Literal["auto", "no", "bf16", "fp16"] = "auto"
    workers: int = 8
    cache_dir: str | None = None

    def __post_init__(self) -> None:
        if self.profile not in PROFILE_DEFAULTS:
            raise UsageError(f"--profile {self.profile!r}: expected full or tiny")
        for name, value in PROFILE_DEFAULTS[self.profile].items():
            if getattr(self, name) is None:
                object.__setattr__(self, name, value)
        if self.alpha is None:
            object.__setattr__(self, "alpha", float(self.rank))
        for flag, value in (("--data", self.data), ("--output", self.output)):
            if not isinstance(value, str) or not value.strip():
                raise UsageError(f"{flag} is required (a folder path or gs:// URI)")
        if self.run_name is not None:
            validate_id(self.run_name, "run name")
        if not self.target_modules:
            raise UsageError("--target-modules must name at least one module (e.g. to_q,to_k,to_v,to_out.0)")
        for name in self.target_modules:
            if not re.fullmatch(r"[A-Za-z0-9_.]+", name):
                raise UsageError(f"--target-modules entry {name!r}: a module name such as to_q or to_out.0")
        self._check_numbers()

    def _check_numbers(self) -> None:
        checks = (
            (self.max_train_steps is None or self.max_train_steps >= 1, "--max-train-steps must be >= 1"),
            (self.epochs >= 1, "--epochs must be >= 1"),
            (self.resolution >= 16, "--resolution must be >= 16 pixels"),
            (self.batch_size >= 1, "--batch-size must be >= 1"),
            (self.gradient_accumulation >= 1, "--gradient-accumulation must be >= 1"),
            (self.learning_rate > 0, "--learning-rate must be > 0"),
            (self.lr_warmup_steps >= 0, "--lr-warmup-steps must be >= 0"),
            (self.weight_decay >= 0, "--weight-decay must be >= 0"),
            (self.max_grad_norm > 0, "--max-grad-norm must be > 0"),
            (self.rank >= 1, "--rank must be >= 1"),
            (self.alpha > 0, "--alpha must be > 0"),
            (0.0 <= self.dropout < 1.0, "--dropout must be in [0, 1)"),
            (self.guidance_scale >= 0, "--guidance-scale must be >= 0"),
            (self.dilate_size >= 0, "--dilate-size must be >= 0"),
            (self.max_sequence_length >= 1, "--max-sequence-length must be >= 1"),
            (self.checkpointing_steps >= 1, "--checkpointing-steps must be >= 1"),
            (self.checkpoints_total_limit >= 1, "--checkpoints-total-limit must be >= 1"),
            (self.workers >= 1, "--workers must be >= 1"),
        )
        require(checks)

    @property
    def max_area(self) -> int:
        return int(self.resolution) ** 2

    def adapter_settings(self) -> dict[str, Any]:
        """What shapes the adapter's tensors: a resumed run must match these."""
        return {"rank": self.rank, "alpha": self.alpha, "target_modules": list(self.target_modules)}

    def plan_settings(self) -> dict[str, Any]:
        """What decides the order of samples and the learning rate per step (exact resume needs them equal)."""
        return {"batch_size": self.batch_size, "gradient_accumulation": self.gradient_accumulation,
                "seed": self.seed, "epochs": self.epochs, "max_train_steps": self.max_train_steps,
                "learning_rate": self.learning_rate, "lr_scheduler": self.lr_scheduler,
                "lr_warmup_steps": self.lr_warmup_steps, "resolution": self.resolution}

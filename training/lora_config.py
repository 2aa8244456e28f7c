"""Configuration of ``lanepaint train-lora`` (FluxFill LoRA fine-tuning on a lane dataset): stdlib only.

Priority: defaults < config file < environment < command line (``core.config``). Fields left ``None``
take the profile's value (``PROFILE_DEFAULTS``) in ``validate`` so the
run's ``training_state.json`` and ``manifest.json`` record the values that ran.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from core.config import (
    Profile,
    Settings,
    cache_dir_setting,
    check_seed,
    profile_setting,
    require,
    setting,
    setting_group,
)
from core.errors import UsageError
from core.ids import validate_id

DEFAULT_TARGETS = ("to_k", "to_q", "to_v", "to_out.0")
LATEST = "latest"

# Values that differ between FLUX.1-Fill-dev and the tiny random-weight FluxFill.
PROFILE_DEFAULTS: dict[str, dict[str, Any]] = {
    "full": {"resolution": 1024, "max_sequence_length": 512},
    "tiny": {"resolution": 64, "max_sequence_length": 32},
}


_schedule = setting_group("schedule")
_adapter = setting_group("adapter and conditioning")
_runtime = setting_group("checkpoints and runtime")


@dataclass(frozen=True)
class LoraTrainConfig(Settings):
    """Everything ``training.lora_train.run_train_lora`` needs (``lanepaint train-lora``).

    ``data``: a lane dataset folder URI (``training.lane_dataset`` format). ``output``: the folder
    URI under which the run folder ``fluxfill_<dataset>_<YYYYMMDD_HHMMSS>`` (or ``run_name``) is made.
    ``resolution``: images are resized, aspect ratio kept, to at most ``resolution``² pixels with sides
    that are multiples of 16 (what stage 2's FluxFill does with its own area cap).
    ``resume_from_checkpoint``: ``latest`` (the newest complete checkpoint of the newest run of this
    dataset under ``output``, or of ``run_name``; a fresh run when there is none) or a checkpoint or
    run folder URI.
    """

    SECTION: ClassVar[str] = "train-lora"

    data: str = setting("", help="lane dataset folder URI holding train.csv", aliases=("LORA_DATA",),
                        default_text="required")
    output: str = setting("", help="folder URI (path or gs://) where the run folder fluxfill_<dataset>_<time>/ "
                          "is made", aliases=("LORA_OUTPUT",), default_text="required")
    profile: Profile = profile_setting()
    model: str = setting("black-forest-labs/FLUX.1-Fill-dev", help="FluxFill checkpoint, hub id or folder",
                         aliases=("LORA_FLUX_MODEL",))
    run_name: str | None = setting(None, help="run folder name", default_text="fluxfill_<dataset>_<YYYYMMDD_HHMMSS>",
                                   env=None)
    # schedule
    max_train_steps: int | None = _schedule(None, help="optimizer steps", default_text="epochs x steps per epoch",
                                            aliases=("LORA_MAX_TRAIN_STEPS",))
    epochs: int = _schedule(5, help="passes over the dataset")
    resolution: int | None = _schedule(None, help="train at most resolution^2 pixels, aspect kept, sides multiples "
                                       "of 16", default_text="full 1024, tiny 64", aliases=("LORA_RESOLUTION",))
    batch_size: int = _schedule(1, help="images per process per micro-batch")
    gradient_accumulation: int = _schedule(4, help="micro-batches per optimizer step")
    learning_rate: float = _schedule(1e-5, help="AdamW learning rate", aliases=("LORA_LEARNING_RATE",))
    lr_scheduler: Literal["cosine", "constant", "linear"] = _schedule("cosine", help="learning-rate schedule")
    lr_warmup_steps: int = _schedule(50, help="linear warm-up steps")
    weight_decay: float = _schedule(1e-2, help="AdamW weight decay")
    max_grad_norm: float = _schedule(1.0, help="gradient clipping norm")
    seed: int = _schedule(42, help="seed of data order, noise and adapter init", check=check_seed)
    # the adapter
    rank: int = _adapter(128, help="LoRA rank", aliases=("LORA_RANK",))
    alpha: float | None = _adapter(None, help="LoRA alpha", default_text="the rank (scale 1)")
    dropout: float = _adapter(0.0, help="LoRA dropout")
    target_modules: tuple[str, ...] = _adapter(DEFAULT_TARGETS, help="comma-separated modules the adapter wraps")
    # conditioning (as stage 2 feeds FluxFill)
    guidance_scale: float = _adapter(30.0, help="guidance embedding value (as stage 2)")
    dilate_size: int = _adapter(24, help="mask dilation kernel in pixels (as stage 2)")
    max_sequence_length: int | None = _adapter(None, help="T5 tokens", default_text="full 512, tiny 32")
    shift_timesteps: bool = _adapter(True, help="sample noise levels with the inference schedule's resolution shift")
    # checkpoints and runtime
    checkpointing_steps: int = _runtime(100, help="save a checkpoint every N steps")
    checkpoints_total_limit: int = _runtime(4, help="keep the newest N checkpoints")
    resume_from_checkpoint: str | None = _runtime(None, help="continue from the newest checkpoint (latest) or from a "
                                                  "checkpoint/run folder", aliases=("LORA_RESUME_FROM_CHECKPOINT",),
                                                  metavar="latest|URI")
    gradient_checkpointing: bool = _runtime(False, help="recompute activations in the backward pass (less memory, "
                                            "slower)")
    device: Literal["auto", "cpu", "cuda"] = _runtime("auto", help="auto: CUDA for full, CPU for tiny")
    mixed_precision: Literal["auto", "no", "bf16", "fp16"] = _runtime(
        "auto", help="auto: bf16 on Ampere+ GPUs, fp16 on older ones, none on CPU")
    workers: int = _runtime(8, help="threads reading the dataset")
    cache_dir: str | None = cache_dir_setting(group="checkpoints and runtime")

    def validate(self) -> None:
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

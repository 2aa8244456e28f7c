"""Configuration of stage 1 (``lanepaint segment``): one frozen dataclass, stdlib only.

Values come from defaults < environment (``core.config.ENV_TABLE``, section ``segment``) <
command line, through ``core.config.build_config(SegmentConfig, "segment", cli_values)``.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import Literal

from core.errors import UsageError
from core.ids import validate_id

SECTION = "segment"

# --model sizes -> Hugging Face hub ids of the SAM2.1 checkpoints (full profile)
MODEL_HUB_IDS = {
    "tiny": "facebook/sam2.1-hiera-tiny",
    "small": "facebook/sam2.1-hiera-small",
    "base_plus": "facebook/sam2.1-hiera-base-plus",
    "large": "facebook/sam2.1-hiera-large",
}
# the packaged sam2 configs of those sizes (used with a local --checkpoint)
MODEL_CONFIGS = {
    "tiny": "configs/sam2.1/sam2.1_hiera_t.yaml",
    "small": "configs/sam2.1/sam2.1_hiera_s.yaml",
    "base_plus": "configs/sam2.1/sam2.1_hiera_b+.yaml",
    "large": "configs/sam2.1/sam2.1_hiera_l.yaml",
}
TINY_SEED = 4
PROMPTS = ("points6", "points9", "box")
DIRECTIONS = ("forward", "backward")


@dataclass(frozen=True)
class SegmentConfig:
    """Everything one ``run_segment`` call needs.

    ``inputs``: local paths, ``file://``, ``gs://``, ``memory://`` or ``chunks://`` URIs of videos.
    ``run_id``: None means a fresh ``run_YYYYMMDD_HHMMSS`` (the CLI fills it before starting).
    ``window``: frames per SAM2 inference state; longer clips are cut into windows that overlap by
    one frame, each seeded with the previous window's mask, so memory stays bounded (0: no limit).
    ``reprompt_every``: also prompt every N frames (0: only the first frame of the direction).
    ``tiny_seed``: torch seed for the random weights of the tiny profile. The default 4 is a seed
    whose random object-score head does not answer "no object" on every frame: with seeds 0, 1, 3,
    6, 8, 9, 14, 15 every tiny mask is empty (see README, Stage 1). Its masks are still meaningless.
    ``workers``: threads for image resizing, mask cleanup and PNG writing (0: one per CPU, max 8).
    """

    inputs: tuple[str, ...] = ()
    run_id: str | None = None
    output_root: str = "outputs"
    profile: Literal["full", "tiny"] = "full"
    model: Literal["tiny", "small", "base_plus", "large"] = "large"
    checkpoint: str | None = None
    model_config: str | None = None
    max_frames: int = 150
    fps: float = 8.0
    prompt: Literal["points6", "points9", "box"] = "points6"
    reprompt_every: int = 0
    direction: Literal["forward", "backward"] = "forward"
    window: int = 160
    overwrite: bool = False
    cache_dir: str | None = None
    device: str | None = None
    vos_optimized: bool = False
    offload_video_to_cpu: bool = True
    offload_state_to_cpu: bool = False
    tiny_seed: int = TINY_SEED
    workers: int = 0
    caption: str = ""

    def __post_init__(self) -> None:
        if self.run_id is not None:
            validate_id(self.run_id, "run id")
        if not isinstance(self.output_root, str) or not self.output_root.strip():
            raise UsageError("output root must not be empty")
        if self.profile not in ("full", "tiny"):
            raise UsageError(f"profile {self.profile!r}: use full or tiny")
        if self.model not in MODEL_HUB_IDS:
            raise UsageError(f"model {self.model!r}: use one of {', '.join(MODEL_HUB_IDS)}")
        if self.model_config is not None and self.checkpoint is None:
            raise UsageError("--model-config needs --checkpoint (a local checkpoint file)")
        if self.max_frames < 1:
            raise UsageError(f"max_frames must be >= 1, got {self.max_frames}")
        if not self.fps > 0:
            raise UsageError(f"fps must be > 0, got {self.fps}")
        if self.prompt not in PROMPTS:
            raise UsageError(f"prompt {self.prompt!r}: use one of {', '.join(PROMPTS)}")
        if self.direction not in DIRECTIONS:
            raise UsageError(f"direction {self.direction!r}: use forward or backward")
        if self.reprompt_every < 0:
            raise UsageError(f"reprompt_every must be >= 0, got {self.reprompt_every}")
        if self.window != 0 and self.window < 2:
            raise UsageError(f"window must be 0 (no limit) or >= 2 frames, got {self.window}")
        if self.workers < 0:
            raise UsageError(f"workers must be >= 0, got {self.workers}")
        if self.vos_optimized and self.profile == "tiny":
            raise UsageError("vos_optimized (torch.compile) is for the full profile on a GPU")
        if self.device is not None and self.device.strip().lower() not in ("auto", "cpu") \
                and not self.device.strip().lower().startswith("cuda"):
            raise UsageError(f"device {self.device!r}: use auto, cpu, cuda or cuda:N")


def edit_command(run_id: str, output_root: str, profile: str) -> str:
    """The command that runs stage 2 on this run's VideoPainter hand-off."""
    return " ".join(["lanepaint", "edit", "--data-run-id", shlex.quote(run_id),
                     "--output-root", shlex.quote(output_root), "--profile", shlex.quote(profile)])

"""Configuration of stage 2 (``lanepaint edit``): one frozen dataclass, stdlib + core only.

Priority: defaults < environment (``core.config.ENV_TABLE``, section ``edit``) < command line.
Fields left ``None`` take the profile's value (``PROFILE_DEFAULTS``) in ``__post_init__``, so the
manifest records the values that ran.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Literal

from core.config import require
from core.errors import UsageError
from core.ids import new_run_id, validate_id

# Values that differ between the real checkpoints and the tiny random-weight models.
PROFILE_DEFAULTS: dict[str, dict[str, Any]] = {
    "full": {
        "num_inference_steps": 70,          # upstream VideoPainter uses 50; our full run uses 70
        "flux_num_inference_steps": 50,
        "model_width": 720,                 # CogVideoX-5b-I2V's learned positional embeddings: 720x480
        "model_height": 480,
        "flux_max_area": 1920 * 1088,       # FluxFill runs at the clip's resolution up to about 2 MP
        "flux_max_sequence_length": 512,
    },
    "tiny": {
        "num_inference_steps": 2,
        "flux_num_inference_steps": 2,
        "model_width": 96,                  # the tiny transformer's sample size (latent 12x8)
        "model_height": 64,
        "flux_max_area": 96 * 64,
        "flux_max_sequence_length": 32,
    },
}

DEVICE_HELP = "auto, cpu, cuda or cuda:N"

# Qwen2.5-VL judge checkpoints by size (LLM_MODEL_SIZE); a hub id or a local folder works too.
QWEN_SIZES = {"3B": "Qwen/Qwen2.5-VL-3B-Instruct", "7B": "Qwen/Qwen2.5-VL-7B-Instruct",
              "32B": "Qwen/Qwen2.5-VL-32B-Instruct", "72B": "Qwen/Qwen2.5-VL-72B-Instruct"}
DEFAULT_QWEN = "7B"
# CLIP checkpoints of the quality metrics (upstream's choice): CLIP score and temporal consistency.
CLIP_SCORE_MODEL = "openai/clip-vit-large-patch14"
CLIP_TEMPORAL_MODEL = "openai/clip-vit-base-patch32"


def qwen_source(model: str | None) -> str:
    """Hub id or local folder for ``model``: a size (7B, 72B, also 3B/32B), a hub id, or a folder."""
    value = (model or DEFAULT_QWEN).strip()
    if value.upper() in QWEN_SIZES:
        return QWEN_SIZES[value.upper()]
    if os.path.isdir(value):
        return value
    if value.count("/") == 1 and all(value.split("/")):
        return value  # a hub id such as Qwen/Qwen2.5-VL-7B-Instruct
    raise UsageError(f"Qwen model {value!r}: use {', '.join(QWEN_SIZES)}, a hub id (org/name) "
                     "or an existing local folder")


@dataclass(frozen=True)
class EditConfig:
    """Everything ``generation.stage.run_edit`` needs."""

    data_run_id: str = ""                      # stage-1 run whose VP data is read
    run_id: str = ""                           # this run (default run_YYYYMMDD_HHMMSS)
    output_root: str = "outputs"
    instructions: str | None = None            # "a||b" or lines; None = the five defaults
    profile: Literal["full", "tiny"] = "full"
    video_ids: tuple[str, ...] = ()            # only these videos (empty = all); shards use it
    overwrite: bool = False
    cache_dir: str | None = None
    # video pass (CogVideoX-5b-I2V + VideoPainter branch)
    num_inference_steps: int | None = None
    guidance_scale: float = 6.0
    use_dynamic_cfg: bool = True
    strength: float = 1.0
    seed: int = 42
    num_frames: int = 49                       # frames per window (4k+1)
    fps: float = 8.0
    window_stride: int = 41                    # long clips: windows of num_frames every stride frames
    max_frames: int = 0                        # 0 = the whole clip
    conditioning_scale: float = 1.0
    mask_add: bool = True
    replace_gt: bool = True
    model_width: int | None = None
    model_height: int | None = None
    # masks
    dilate_size: int = 24
    mask_feather: int = 8
    keep_masked_pixels: bool = True
    # first frame (FluxFill)
    flux_guidance_scale: float = 30.0
    flux_num_inference_steps: int | None = None
    flux_max_area: int | None = None
    flux_max_sequence_length: int | None = None
    img_inpainting_lora_path: str | None = None
    img_inpainting_lora_scale: float = 0.0
    # models and placement
    cog_model: str = "THUDM/CogVideoX-5b-I2V"
    branch_model: str = "TencentARC/VideoPainter"
    branch_subfolder: str = "checkpoints/branch"
    id_lora_path: str | None = None            # VideoPainterID LoRA folder: ID resampling for long clips
    id_lora_alpha: float = 128.0
    flux_model: str = "black-forest-labs/FLUX.1-Fill-dev"
    cog_device: str = "auto"
    flux_device: str = "auto"
    qwen_device: str = "auto"                  # Qwen2.5-VL judge
    offload: Literal["auto", "never", "always"] = "auto"
    reserve_gb: float = 20.0                   # GPU memory kept free for activations in the plan
    # quality: Qwen2.5-VL judge loop and per-video metrics
    judge: bool = True                         # False: caption = instruction, one FluxFill attempt, "not judged"
    qwen_model: str = DEFAULT_QWEN             # 7B, 72B (also 3B, 32B), a hub id or a local folder
    qwen_vram_reserve_gib: float = 0.0         # GiB of free GPU memory Qwen leaves to the others (0: all on device)
    unload_qwen_after_use: bool = False        # free Qwen before each video pass (small GPUs; reloads per item)
    caption_refine_iters: int = 10             # most FluxFill attempts the judge sees per item
    caption_refine_temperature: float = 0.1    # Qwen sampling temperature (0: greedy)
    compliance_frames: int = 4                 # edited-clip frames the judge checks (0: no check)
    metrics: bool = True                       # eval_<video_id>.txt/.json per item
    clip_score_model: str = CLIP_SCORE_MODEL
    clip_temporal_model: str = CLIP_TEMPORAL_MODEL

    def __post_init__(self) -> None:
        if self.profile not in PROFILE_DEFAULTS:
            raise UsageError(f"--profile {self.profile!r}: expected full or tiny")
        for name, value in PROFILE_DEFAULTS[self.profile].items():
            if getattr(self, name) is None:
                object.__setattr__(self, name, value)
        if not self.data_run_id:
            raise UsageError("--data-run-id is required (the segmentation run to edit)")
        validate_id(self.data_run_id, "data run id")
        if not self.run_id:
            object.__setattr__(self, "run_id", new_run_id())
        validate_id(self.run_id, "run id")
        if not self.output_root:
            raise UsageError("--output-root must not be empty")
        for vid in self.video_ids:
            validate_id(vid, "video id")
        self._check_numbers()
        if self.judge and self.profile == "full":
            try:
                qwen_source(self.qwen_model)
            except UsageError as exc:
                raise UsageError(f"--qwen-model (LLM_MODEL_SIZE): {exc}") from None
        from generation.instructions import parse_instructions

        parse_instructions(self.instructions)   # one-line UsageError before anything runs

    def _check_numbers(self) -> None:
        checks = (
            (self.num_inference_steps >= 1, "--num-inference-steps must be >= 1"),
            (self.flux_num_inference_steps >= 1, "--flux-num-inference-steps must be >= 1"),
            (self.guidance_scale >= 0, "--guidance-scale must be >= 0"),
            (self.flux_guidance_scale >= 0, "--flux-guidance-scale must be >= 0"),
            (0.0 < self.strength <= 1.0, "--strength must be in (0, 1]"),
            (self.num_frames >= 5 and (self.num_frames - 1) % 4 == 0, "--num-frames must be 4k+1 (e.g. 49)"),
            (self.fps > 0, "--fps must be > 0"),
            (1 <= self.window_stride < self.num_frames, "--window-stride must be in [1, num_frames)"),
            (self.max_frames == 0 or self.max_frames >= self.num_frames,
             "--max-frames must be 0 (whole clip) or >= num_frames"),
            (self.dilate_size >= 0, "--dilate-size must be >= 0"),
            (self.mask_feather >= 0, "--mask-feather must be >= 0"),
            (self.img_inpainting_lora_scale >= 0, "--img-inpainting-lora-scale must be >= 0"),
            (self.model_width % 16 == 0 and self.model_height % 16 == 0,
             "model width and height must be multiples of 16"),
            (self.flux_max_area >= 256, "flux max area must be >= 256 pixels"),
            (self.reserve_gb >= 0, "--reserve-gb must be >= 0"),
            (self.id_lora_alpha > 0, "--id-lora-alpha must be > 0"),
            (self.caption_refine_iters >= 1, "--caption-refine-iters must be >= 1"),
            (self.caption_refine_temperature >= 0, "--caption-refine-temperature must be >= 0"),
            (self.compliance_frames >= 0, "--compliance-frames must be >= 0 (0 = no check)"),
            (self.qwen_vram_reserve_gib >= 0, "--qwen-vram-reserve-gib must be >= 0"),
        )
        require(checks)

    @property
    def model_size(self) -> tuple[int, int]:
        """(width, height) of the video model's working resolution."""
        return int(self.model_width), int(self.model_height)  # type: ignore[arg-type]

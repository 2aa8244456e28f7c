"""Configuration of stage 2 (``lanepaint edit``): one frozen dataclass, stdlib + core only.

Priority: defaults < config file < environment < command line (``core.config``). Fields left ``None``
take the profile's value (``PROFILE_DEFAULTS``) in ``validate``, so the manifest records the values
that ran.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from core.config import StageSettings, check_seed, require, setting, setting_group
from core.device import DEVICE_HELP, check_device
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


_video = setting_group("video pass (CogVideoX-5b-I2V + VideoPainter)")
_first = setting_group("masks and first frame (FluxFill)")
_quality = setting_group("quality: Qwen2.5-VL judge and metrics")
_models = setting_group("models and devices")
_speed = setting_group("speed levers (generation/speed_levers.py; figures in docs/benchmarks.md)")


@dataclass(frozen=True)
class EditConfig(StageSettings):
    """Everything ``generation.stage.run_edit`` needs (``lanepaint edit``)."""

    SECTION: ClassVar[str] = "edit"
    RETIRED_ENV: ClassVar[Mapping[str, str]] = {
        "LANEPAINT_EDIT_FPS": "the edit is written at its clip's frame rate (stage 1's --fps)"}

    data_run_id: str = setting("", help="the segmentation run to edit (stage 1's --run-id)", env=None,
                               default_text="required", pipeline=False)
    instructions: str | None = setting(
        None, help="instructions separated by '||' or new lines; 'lane <count> <color> <pattern>' "
        "(single|double, white|yellow, solid|dashed) expands to a full instruction",
        default_text="five built-in lane edits", aliases=("VP_INSTRUCTIONS", "VIDEO_EDITING_INSTRUCTIONS"),
        blank_is_default=False)
    video_ids: tuple[str, ...] = setting((), help="comma-separated video ids to edit", default_text="all",
                                         aliases=("VP_VIDEO_IDS",))
    seed: int = setting(42, help="seed of both FluxFill and the video pass", aliases=("VP_SEED",),
                         check=check_seed)
    # video pass (CogVideoX-5b-I2V + VideoPainter)
    num_inference_steps: int | None = _video(None, help="video diffusion steps", default_text="full 70, tiny 2",
                                             aliases=("VP_NUM_INFERENCE_STEPS",))
    guidance_scale: float = _video(6.0, help="classifier-free guidance of the video pass",
                                   aliases=("VP_GUIDANCE_SCALE",))
    use_dynamic_cfg: bool = _video(True, help="CogVideoX's dynamic classifier-free guidance schedule")
    strength: float = _video(1.0, help="denoising strength in (0, 1]", aliases=("VP_STRENGTH",))
    num_frames: int = _video(49, help="frames per window (4k+1; CogVideoX-5b-I2V: 49)")
    window_stride: int = _video(41, help="clips longer than one window: frames between window starts",
                                aliases=("VP_WINDOW_STRIDE",))
    max_frames: int = _video(0, help="edit at most this many frames per clip (0: all)", aliases=("VP_MAX_FRAMES",))
    conditioning_scale: float = _video(1.0, help="weight of the VideoPainter branch's residuals")
    mask_add: bool = _video(True, help="add the branch residuals to background tokens only (VideoPainter)")
    replace_gt: bool = _video(True, help="re-impose the noised original latents outside the mask after each step")
    model_width: int | None = _video(None, help="working width of the video model in pixels",
                                     default_text="full 720, tiny 96")
    model_height: int | None = _video(None, help="working height of the video model in pixels",
                                      default_text="full 480, tiny 64")
    id_lora_path: str | None = _video(None, help="VideoPainterID LoRA folder: ID resampling across windows of "
                                      "long clips", aliases=("VP_ID_LORA_PATH",))
    id_lora_alpha: float = _video(128.0, help="alpha of the VideoPainterID LoRA (its scale is alpha / rank: 128 on "
                                  "rank 256 is training's 0.5; 256 gives 1.0, as the fork's inference loads it)")
    id_resampling_mode: Literal["fork", "masked"] = _video(
        "fork", help="ID resampling: fork (TencentARC's formula, which the released LoRA was trained with: every "
        "position appended, masked, previous window weighted) or masked (only the masked tokens, unweighted)")
    id_prev_clip_weight: float = _video(0.5, help="fork mode: weight of the previous window's keys/values "
                                        "(prev_clip_weight; 0: each window resamples its own tokens)")
    # masks and first frame (FluxFill)
    dilate_size: int = _first(24, help="mask dilation kernel in pixels", aliases=("VP_DILATE_SIZE",))
    mask_feather: int = _first(8, help="feathering width inside the mask in pixels", aliases=("VP_MASK_FEATHER",))
    keep_masked_pixels: bool = _first(True, help="paste back only the masked region of FluxFill's frame",
                                      aliases=("VP_KEEP_MASKED_PIXELS",))
    flux_guidance_scale: float = _first(30.0, help="FluxFill guidance", aliases=("VP_FLUX_GUIDANCE_SCALE",))
    flux_num_inference_steps: int | None = _first(None, help="FluxFill steps", default_text="full 50, tiny 2",
                                                  aliases=("VP_FLUX_NUM_INFERENCE_STEPS",))
    flux_max_area: int | None = _first(None, help="FluxFill works at the clip's resolution up to this many pixels",
                                       default_text="full 1920x1088, tiny 96x64")
    flux_max_sequence_length: int | None = _first(None, help="T5 tokens of the FluxFill prompt",
                                                  default_text="full 512, tiny 32")
    img_inpainting_lora_path: str | None = _first(
        None, help="FluxFill LoRA: a weights file, a checkpoint folder or a train-lora run folder",
        aliases=("VP_IMG_INPAINTING_LORA_PATH", "TRAINED_FLUXFILL_GCS_PATH"))
    img_inpainting_lora_scale: float = _first(0.0, help="FluxFill LoRA scale (0: off)",
                                              aliases=("VP_IMG_INPAINTING_LORA_SCALE",))
    # quality: Qwen2.5-VL judge loop and per-video metrics
    judge: bool = _quality(True, help="check FluxFill's first frame with the Qwen2.5-VL judge and refine the "
                           "caption (off: the instruction is the caption, one attempt, verdict 'not judged')",
                           aliases=("VP_JUDGE",))
    qwen_model: str = _quality(DEFAULT_QWEN, help="judge model: 7B or 72B (also 3B, 32B), a hub id or a local folder",
                               aliases=("LLM_MODEL_SIZE",), flag_aliases=("--llm-model-size",))
    qwen_vram_reserve_gib: float = _quality(0.0, help="GiB of free GPU memory Qwen leaves for the other models "
                                            "when it loads (0: whole model on its device)",
                                            aliases=("QWEN_VRAM_RESERVE_GIB",))
    unload_qwen_after_use: bool = _quality(False, help="free Qwen before each video pass (small GPUs; it reloads "
                                           "once per video)", aliases=("VP_UNLOAD_QWEN_AFTER_USE",))
    caption_refine_iters: int = _quality(10, help="most FluxFill attempts the judge sees per video",
                                         aliases=("VP_CAPTION_REFINE_ITERS",))
    caption_refine_temperature: float = _quality(0.1, help="Qwen sampling temperature for captions and verdicts "
                                                 "(0: greedy)", aliases=("VP_CAPTION_REFINE_TEMPERATURE",))
    compliance_frames: int = _quality(4, help="frames of the edited clip the judge checks (0: no check)",
                                      aliases=("VP_COMPLIANCE_FRAMES",))
    metrics: bool = _quality(True, help="quality metrics and eval_<video_id>.txt/.json per item",
                             aliases=("VP_METRICS",))
    metrics_protocol: Literal["lanepaint", "videopainter"] = _quality(
        "lanepaint", help="lanepaint: our metrics (docs/metrics.md); videopainter: also every metric exactly as "
        "VideoPainter's evaluation computes it, in a 'videopainter' block of eval_<video_id>.json and vp_* "
        "columns of the results table")
    clip_score_model: str = _quality(CLIP_SCORE_MODEL, help="CLIP checkpoint of the CLIP score (hub id or folder)",
                                     aliases=("VP_CLIP_SCORE_MODEL",))
    clip_temporal_model: str = _quality(CLIP_TEMPORAL_MODEL, help="CLIP checkpoint of the temporal consistency",
                                        aliases=("VP_CLIP_TEMPORAL_MODEL",))
    # models and placement
    cog_model: str = _models("THUDM/CogVideoX-5b-I2V", help="CogVideoX I2V checkpoint (hub id or folder)",
                             aliases=("VP_COG_MODEL",))
    branch_model: str = _models("TencentARC/VideoPainter", help="VideoPainter branch checkpoint (hub id or folder)",
                                aliases=("VP_BRANCH_MODEL",))
    branch_subfolder: str = _models("checkpoints/branch", help="subfolder of the branch checkpoint",
                                    aliases=("VP_BRANCH_SUBFOLDER",))
    flux_model: str = _models("black-forest-labs/FLUX.1-Fill-dev", help="FluxFill checkpoint (hub id or folder)",
                              aliases=("VP_FLUX_MODEL",))
    cog_device: str = _models("auto", help=f"device of the video models: {DEVICE_HELP}", aliases=("VP_COG_DEVICE",))
    flux_device: str = _models("auto", help=f"device of FluxFill: {DEVICE_HELP}", aliases=("VP_FLUX_DEVICE",))
    qwen_device: str = _models("auto", help=f"device of the Qwen2.5-VL judge: {DEVICE_HELP}",
                               aliases=("VP_QWEN_DEVICE",))
    offload: Literal["auto", "never", "always"] = _models(
        "auto", help="CPU offload: auto = only when the GPU cannot hold the models", aliases=("VP_OFFLOAD",))
    reserve_gb: float = _models(20.0, help="GPU memory (GB) the placement plan keeps free for activations")

    # speed levers
    step_cache_threshold: float = _speed(
        0.0, help="video model: First Block Cache; skip the other blocks at a step whose first-block residual moved "
        "by less than this (relative) since the last computed step (0: off; try 0.05-0.1)")
    flux_step_cache_threshold: float = _speed(0.0, help="FluxFill: the same cache (0: off; try 0.08-0.12)")
    storage_dtype: Literal["compute", "float8"] = _speed(
        "compute", help="weights of both diffusion transformers and the branch: compute (as loaded) or float8 "
        "(float8_e4m3fn storage, cast per layer to the compute dtype: half the weight memory of bf16)")
    instruction_batch: int = _speed(
        1, help="video pass: denoise up to this many instructions of a clip as one batch (one transformer call per "
        "step for all; each keeps --seed, so the videos equal one by one up to float rounding, except that a step "
        "cache decides its skips for the whole batch). About N times the activation and frame memory; a batch that "
        "runs out of GPU memory is redone one by one. --item-timeout then counts N items' time")
    compile: Literal["none", "regional"] = _speed(
        "none", help="regional: torch.compile each transformer block of both diffusion models (GPU; the first "
        "video and the first FluxFill call compile, then every block reuses the code)")

    def validate(self) -> None:
        for name, value in PROFILE_DEFAULTS[self.profile].items():
            if getattr(self, name) is None:
                object.__setattr__(self, name, value)
        if not self.data_run_id:
            raise UsageError("--data-run-id is required (the segmentation run to edit)")
        validate_id(self.data_run_id, "data run id")
        if not self.run_id:
            object.__setattr__(self, "run_id", new_run_id())
        for vid in self.video_ids:
            validate_id(vid, "video id")
        self._check_numbers()
        for flag, device in (("--cog-device", self.cog_device), ("--flux-device", self.flux_device),
                             ("--qwen-device", self.qwen_device)):
            check_device(device, flag)
        if self.judge and self.profile == "full":
            try:
                qwen_source(self.qwen_model)
            except UsageError as exc:
                raise UsageError(f"--qwen-model: {exc}") from None
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
            (1 <= self.window_stride < self.num_frames, "--window-stride must be in [1, --num-frames)"),
            (self.max_frames == 0 or self.max_frames >= self.num_frames,
             "--max-frames must be 0 (whole clip) or >= --num-frames"),
            (self.dilate_size >= 0, "--dilate-size must be >= 0"),
            (self.mask_feather >= 0, "--mask-feather must be >= 0"),
            (self.img_inpainting_lora_scale >= 0, "--img-inpainting-lora-scale must be >= 0"),
            (self.model_width % 16 == 0 and self.model_height % 16 == 0,
             "--model-width and --model-height must be multiples of 16"),
            (self.flux_max_area >= 256, "--flux-max-area must be >= 256 pixels"),
            (self.reserve_gb >= 0, "--reserve-gb must be >= 0"),
            (self.id_lora_alpha > 0, "--id-lora-alpha must be > 0"),
            (0 <= self.id_prev_clip_weight <= 1, "--id-prev-clip-weight must be in [0, 1]"),
            (self.caption_refine_iters >= 1, "--caption-refine-iters must be >= 1"),
            (self.caption_refine_temperature >= 0, "--caption-refine-temperature must be >= 0"),
            (self.compliance_frames >= 0, "--compliance-frames must be >= 0 (0 = no check)"),
            (self.qwen_vram_reserve_gib >= 0, "--qwen-vram-reserve-gib must be >= 0"),
            (self.instruction_batch >= 1, "--instruction-batch must be >= 1"),
            (self.step_cache_threshold >= 0, "--step-cache-threshold must be >= 0 (0: off)"),
            (self.flux_step_cache_threshold >= 0, "--flux-step-cache-threshold must be >= 0 (0: off)"),
            (self.flux_max_sequence_length >= 1, "--flux-max-sequence-length must be >= 1"),
        )
        require(checks)

    @property
    def model_size(self) -> tuple[int, int]:
        """(width, height) of the video model's working resolution."""
        return int(self.model_width), int(self.model_height)  # type: ignore[arg-type]

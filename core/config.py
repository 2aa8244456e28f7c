"""Configuration: frozen dataclasses filled from defaults < environment < command line.

Every environment variable the project reads is listed once, in ``ENV_TABLE``. Stage code never
reads ``os.environ``; it calls ``build_config(MyConfig, "section", cli_values)`` and gets a frozen
dataclass. A variable applies to the sections it names (``"*"``: any section whose dataclass has
that field).
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeVar, get_args, get_origin

from core.errors import UsageError

T = TypeVar("T")

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}
_SECRET_MARKERS = ("token", "secret", "password", "credential", "api_key")


@dataclass(frozen=True)
class EnvVar:
    name: str
    sections: tuple[str, ...]
    field: str
    help: str = ""


def _v(name: str, sections: str, field: str, help: str = "") -> EnvVar:
    return EnvVar(name, tuple(s.strip() for s in sections.split(",")), field, help)


# The one table of environment variables (seed names kept so existing job scripts keep working).
ENV_TABLE: tuple[EnvVar, ...] = (
    # whole pipeline
    _v("LANEPAINT_PROFILE", "*", "profile", "model profile: full (real checkpoints) or tiny (random weights)"),
    _v("LANEPAINT_LOG_LEVEL", "runtime", "log_level", "DEBUG, INFO, WARNING"),
    _v("LANEPAINT_CACHE_DIR", "*", "cache_dir", "local cache for downloaded inputs"),
    _v("OUTPUT_ROOT", "*", "output_root", "output root URI (local path or gs://)"),
    _v("RUN_ID", "*", "run_id", "run id of this stage run"),
    _v("DATA_RUN_ID", "edit,run", "data_run_id", "segmentation run id that stage 2 reads"),
    # stage 1: SAM2 segmentation
    _v("SAM2_MAX_FRAMES", "segment", "max_frames", "frames per video after resampling"),
    _v("SAM2_FPS", "segment", "fps", "resampling frame rate"),
    _v("SAM2_MODEL", "segment", "model", "tiny|small|base_plus|large"),
    _v("SAM2_CHECKPOINT", "segment", "checkpoint", "local SAM2 checkpoint (path or URI) instead of the hub"),
    _v("SAM2_CONFIG", "segment", "model_config", "packaged sam2 config for SAM2_CHECKPOINT"),
    _v("SAM2_PROMPT", "segment", "prompt", "prompt strategy: points6|points9|box"),
    _v("SAM2_REPROMPT_EVERY", "segment", "reprompt_every", "prompt again every N frames (0: first only)"),
    _v("SAM2_DIRECTION", "segment", "direction", "propagation direction: forward|backward"),
    _v("SAM2_WINDOW", "segment", "window", "frames per SAM2 state (longer clips are windowed; 0: no limit)"),
    _v("SAM2_DEVICE", "segment", "device", "auto, cpu, cuda or cuda:N"),
    _v("SAM2_VOS_OPTIMIZED", "segment", "vos_optimized", "torch.compile SAM2 (GPU only)"),
    _v("SAM2_OFFLOAD_VIDEO", "segment", "offload_video_to_cpu", "keep resized frames in CPU memory"),
    _v("SAM2_OFFLOAD_STATE", "segment", "offload_state_to_cpu", "keep SAM2's memory bank in CPU memory"),
    # stage 2: editing
    _v("VP_STRENGTH", "edit", "strength", "denoising strength of the video pass"),
    _v("VP_NUM_INFERENCE_STEPS", "edit", "num_inference_steps", "video diffusion steps"),
    _v("VP_GUIDANCE_SCALE", "edit", "guidance_scale", "video classifier-free guidance"),
    _v("VP_SEED", "edit", "seed", "generation seed"),
    _v("VP_INSTRUCTIONS", "edit", "instructions", "edit instructions separated by '||' or new lines (unset: 5 defaults)"),
    _v("VP_VIDEO_IDS", "edit", "video_ids", "comma-separated video ids to edit (unset: all)"),
    _v("VP_DILATE_SIZE", "edit", "dilate_size", "mask dilation kernel in pixels"),
    _v("VP_MASK_FEATHER", "edit", "mask_feather", "mask feathering width in pixels for compositing"),
    _v("VP_KEEP_MASKED_PIXELS", "edit", "keep_masked_pixels", "paste back only the masked region of the first frame"),
    _v("VP_IMG_INPAINTING_LORA_PATH", "edit", "img_inpainting_lora_path", "FluxFill LoRA file or folder"),
    _v("VP_IMG_INPAINTING_LORA_SCALE", "edit", "img_inpainting_lora_scale", "FluxFill LoRA scale (0 = off)"),
    _v("VP_FLUX_GUIDANCE_SCALE", "edit", "flux_guidance_scale", "FluxFill guidance"),
    _v("VP_FLUX_NUM_INFERENCE_STEPS", "edit", "flux_num_inference_steps", "FluxFill steps"),
    _v("VP_WINDOW_STRIDE", "edit", "window_stride", "long clips: frames between window starts"),
    _v("VP_MAX_FRAMES", "edit", "max_frames", "edit at most this many frames per clip (0 = all)"),
    _v("VP_COG_MODEL", "edit", "cog_model", "CogVideoX I2V checkpoint (hub id or folder)"),
    _v("VP_BRANCH_MODEL", "edit", "branch_model", "VideoPainter branch checkpoint (hub id or folder)"),
    _v("VP_BRANCH_SUBFOLDER", "edit", "branch_subfolder", "subfolder of the branch checkpoint"),
    _v("VP_ID_LORA_PATH", "edit", "id_lora_path", "VideoPainterID LoRA folder (ID resampling for long clips)"),
    _v("VP_FLUX_MODEL", "edit", "flux_model", "FluxFill checkpoint (hub id or folder)"),
    _v("VP_COG_DEVICE", "edit", "cog_device", "device of the video models: auto, cpu, cuda, cuda:N"),
    _v("VP_FLUX_DEVICE", "edit", "flux_device", "device of FluxFill: auto, cpu, cuda, cuda:N"),
    _v("VP_QWEN_DEVICE", "edit", "qwen_device", "device of the Qwen2.5-VL judge: auto, cpu, cuda, cuda:N"),
    _v("VP_OFFLOAD", "edit", "offload", "CPU offload: auto (only if the GPU is too small), never, always"),
    # stage 2 quality: VLM judge and metrics
    _v("LLM_MODEL_SIZE", "edit", "qwen_model", "Qwen2.5-VL judge: 7B or 72B (also 3B, 32B), a hub id or a local folder"),
    _v("VP_UNLOAD_QWEN_AFTER_USE", "edit", "unload_qwen_after_use",
       "1: free Qwen2.5-VL after each use (before the video model, for small GPUs); it reloads when needed"),
    _v("QWEN_VRAM_RESERVE_GIB", "edit", "qwen_vram_reserve_gib",
       "GiB of free GPU memory Qwen leaves for other models when it loads (0: whole model on its device)"),
    _v("VP_CAPTION_REFINE_ITERS", "edit", "caption_refine_iters", "most FluxFill attempts the judge sees per video"),
    _v("VP_CAPTION_REFINE_TEMPERATURE", "edit", "caption_refine_temperature",
       "Qwen sampling temperature for captions and verdicts (0: greedy)"),
    _v("VP_COMPLIANCE_FRAMES", "edit", "compliance_frames", "edited-clip frames the judge checks (0: no check)"),
    _v("VP_JUDGE", "edit", "judge", "0: no judge (caption = instruction, one FluxFill attempt, verdict 'not judged')"),
    _v("VP_METRICS", "edit", "metrics", "0: no quality metrics (no eval_<video_id>.txt/.json)"),
    _v("VP_CLIP_SCORE_MODEL", "edit", "clip_score_model", "CLIP checkpoint of the CLIP score (hub id or folder)"),
    _v("VP_CLIP_TEMPORAL_MODEL", "edit", "clip_temporal_model",
       "CLIP checkpoint of the temporal consistency (hub id or folder)"),
    # stage 3: driving VLA
    _v("ALPAMAYO_NUM_TRAJ_SAMPLES", "evaluate", "num_traj_samples", "trajectory samples per inference"),
    _v("ALPAMAYO_MODEL", "evaluate", "model", "trajectory model: auto, alpamayo or constant-velocity"),
    _v("ALPAMAYO_MODEL_PATH", "evaluate", "model_path", "Alpamayo-R1 checkpoint (hub id or local folder)"),
    _v("PAI_DATASET_DIR", "evaluate", "dataset_dir", "Hugging Face cache folder holding PhysicalAI-AV"),
    _v("PAI_DATASET_REVISION", "evaluate", "dataset_revision", "PhysicalAI-AV commit (default: refs/main of the cache)"),
    _v("HF_HUB_OFFLINE", "evaluate", "dataset_offline", "read PhysicalAI-AV from the local cache only (default 1)"),
    # lane datasets
    _v("DATASET_FRAMES", "dataset", "frames", "0-based frame numbers taken from each video, e.g. 1,100,200,300,400,500"),
    _v("DATASET_DEVICES", "dataset", "devices", "auto, cpu, cuda or cuda:0,cuda:1 (one dataset worker per device)"),
    _v("DATASET_VLM_MODEL", "dataset", "vlm_model", "Qwen2.5-VL lane captioner: 7B, 72B, a hub id or a local folder"),
    # LoRA training
    _v("LORA_DATA", "train-lora", "data", "lane dataset folder URI that train-lora trains on"),
    _v("LORA_OUTPUT", "train-lora", "output", "folder URI under which train-lora makes its run folder"),
    _v("LORA_FLUX_MODEL", "train-lora", "model", "FluxFill checkpoint to train a LoRA for (hub id or folder)"),
    _v("LORA_MAX_TRAIN_STEPS", "train-lora", "max_train_steps", "optimizer steps (unset: epochs x steps per epoch)"),
    _v("LORA_RESOLUTION", "train-lora", "resolution", "training area: at most resolution^2 pixels per image"),
    _v("LORA_RANK", "train-lora", "rank", "LoRA rank"),
    _v("LORA_LEARNING_RATE", "train-lora", "learning_rate", "AdamW learning rate"),
    _v("LORA_RESUME_FROM_CHECKPOINT", "train-lora", "resume_from_checkpoint",
       "latest, or a checkpoint/run folder URI to continue from"),
    # orchestration: `lanepaint run`, the Flyte DAG (workflow_master.py) and its images
    _v("LANEPAINT_CONCURRENCY", "run", "concurrency", "shards of a stage that run at the same time (Flyte map)"),
    _v("LANEPAINT_VIDEOS_PER_SHARD", "run", "videos_per_shard",
       "videos per shard task (0: split each stage into `concurrency` equal shards)"),
    _v("LANEPAINT_REGISTRY", "deploy", "registry", "registry prefix of the stage images, e.g. europe-docker.pkg.dev/p/lanepaint"),
    _v("LANEPAINT_IMAGE_TAG", "deploy", "image_tag", "tag of the stage images (default latest; build_and_run.sh: <RUN_ID>_<YYYYMMDD_HHMMSS>)"),
    _v("LANEPAINT_ORCHESTRATOR_IMAGE", "deploy", "orchestrator_image", "full name of the driver image (overrides registry + tag)"),
    _v("LANEPAINT_SEGMENTATION_IMAGE", "deploy", "segmentation_image", "full name of the stage-1 image"),
    _v("LANEPAINT_GENERATION_IMAGE", "deploy", "generation_image", "full name of the stage-2 image"),
    _v("LANEPAINT_VLA_IMAGE", "deploy", "vla_image", "full name of the stage-3 image"),
    _v("LANEPAINT_GPU", "deploy", "gpu", "GPU request of each stage task, e.g. A100_80G:1, H100:1 (none: CPU only)"),
    _v("LANEPAINT_STAGE_CPU", "deploy", "cpu", "CPU request of each stage task (default: per stage)"),
    _v("LANEPAINT_STAGE_MEMORY", "deploy", "memory", "memory request of each stage task, e.g. 96Gi (default: per stage)"),
    _v("LANEPAINT_RETRIES", "deploy", "retries", "retries of a stage task after a transient error (OOM, preemption, storage)"),
    _v("LANEPAINT_CACHE_VERSION", "deploy", "cache_version", "Flyte cache version of the stage tasks (bump to recompute)"),
    # storage
    _v("STORAGE_EMULATOR_HOST", "storage", "emulator_host", "GCS emulator endpoint (tests, local runs)"),
    _v("LANEPAINT_GCS_TOKEN", "storage", "gcs_token", "gcsfs token: google_default, anon, cloud, or a JSON key path"),
    _v("GOOGLE_CLOUD_PROJECT", "storage", "gcs_project", "GCP project for gs:// access"),
)


def require(checks: Iterable[tuple[bool, str]]) -> None:
    """Config validation: raise ``UsageError`` with the message of the first ``(ok, message)`` not ok."""
    for ok, message in checks:
        if not ok:
            raise UsageError(message)


def read_env(name: str, environ: Mapping[str, str] | None = None) -> str | None:
    """The value of a registered environment variable, or None when unset.

    Reading an unregistered name is a programming error: add it to ``ENV_TABLE`` first.
    """
    if not any(var.name == name for var in ENV_TABLE):
        raise KeyError(f"{name} is not in core.config.ENV_TABLE")
    env = os.environ if environ is None else environ
    return env.get(name)


def _strip_optional(tp: Any) -> tuple[Any, bool]:
    origin = get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return tp, False


def coerce(value: Any, tp: Any, name: str) -> Any:
    """Convert ``value`` (often a string from the environment) to the annotated field type."""
    inner, optional = _strip_optional(tp)
    if value is None:
        if optional:
            return None
        raise UsageError(f"{name}: a value is required")
    if optional and isinstance(value, str) and value.strip().lower() in ("", "none", "null"):
        return None
    origin = get_origin(inner)
    try:
        if inner is bool:
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in _TRUE:
                return True
            if text in _FALSE:
                return False
            raise ValueError("expected true/false (1/0, yes/no)")
        if inner is int:
            if isinstance(value, bool):
                raise ValueError("expected an integer")
            return int(str(value).strip()) if isinstance(value, str) else int(value)
        if inner is float:
            return float(str(value).strip()) if isinstance(value, str) else float(value)
        if inner is str:
            return str(value)
        if origin is Literal:
            choices = get_args(inner)
            if value not in choices:
                raise ValueError(f"expected one of {', '.join(map(str, choices))}")
            return value
        if origin is tuple:
            item_tp = get_args(inner)[0] if get_args(inner) else str
            if isinstance(value, str):
                parts = [p.strip() for p in value.split(",")]
                items = [p for p in parts if p]
            else:
                items = list(value)
            return tuple(coerce(item, item_tp, name) for item in items)
    except (TypeError, ValueError) as exc:
        reason = str(exc) if "expected" in str(exc) else f"expected {getattr(inner, '__name__', inner)}"
        raise UsageError(f"{name}={value!r}: {reason}") from None
    return value


def env_values(cls: type, section: str, environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Field values for ``cls`` taken from the environment variables that apply to ``section``."""
    env = os.environ if environ is None else environ
    names = {f.name for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    for var in ENV_TABLE:
        if var.field not in names or var.name not in env:
            continue
        if section not in var.sections and "*" not in var.sections:
            continue
        values[var.field] = coerce(env[var.name], hints[var.field], var.name)
    return values


def build_config(
    cls: type[T],
    section: str,
    cli: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> T:
    """Build ``cls`` with priority defaults < environment < ``cli`` (``None`` means not given)."""
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls!r} is not a dataclass")
    names = {f.name for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    values = env_values(cls, section, environ)
    for key, value in (cli or {}).items():
        if key not in names:
            raise TypeError(f"{cls.__name__} has no field {key!r}")
        if value is not None:
            values[key] = coerce(value, hints[key], "--" + key.replace("_", "-"))
    return cls(**values)


def config_to_dict(cfg: Any) -> dict[str, Any]:
    """A JSON-friendly dict of a config with secret-looking fields redacted."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if any(marker in f.name.lower() for marker in _SECRET_MARKERS) and value:
            value = "<redacted>"
        elif dataclasses.is_dataclass(value):
            value = config_to_dict(value)
        elif isinstance(value, tuple):
            value = list(value)
        out[f.name] = value
    return out


def env_table_rows() -> list[tuple[str, str, str, str]]:
    """(variable, sections, field, help) for documentation and ``lanepaint env``."""
    return [(v.name, ",".join(v.sections), v.field, v.help) for v in ENV_TABLE]

"""The stage-2 models, loaded once per ``run_edit`` call and kept resident across videos/instructions.

- video: ``VideoPainterPipeline`` (CogVideoX-5b-I2V + TencentARC branch; optional VideoPainterID
  LoRA with ID resampling), on ``VP_COG_DEVICE``;
- first frame: ``FluxFillInpainter`` (FLUX.1-Fill-dev, optional LoRA), on ``VP_FLUX_DEVICE``;
- the Qwen2.5-VL judge (``VP_QWEN_DEVICE``) and the metrics' CLIP models are loaded before these by
  ``generation.quality.checks.load_quality``; their lines lead the memory plan.

Both pipelines are first built on the CPU, then placed by ``plan_placement``: every pipeline whose
GPU can hold all weights plus ``reserve_gb`` for activations stays resident; otherwise pipelines
fall back to diffusers' model CPU offload, largest first, until the rest fits. The plan is logged
at start and recorded in the manifest.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from core.device import DevicePolicy, resolve_device
from core.errors import LanepaintError, brief
from core.logs import progress_enabled
from generation.config import EditConfig
from generation.first_frame import FluxFillInpainter, apply_lora, build_fluxfill
from generation.speed_levers import apply_speed_levers
from generation.videopainter.branch import VideoPainterBranch
from generation.videopainter.id_resampling import load_id_lora
from generation.videopainter.pipeline import VideoPainterPipeline

log = logging.getLogger(__name__)

GB = 1024 ** 3
# Pipelines whose tiny-profile warnings (prompt truncation by the tiny tokenizers) are noise.
_TINY_QUIET = ("diffusers.pipelines.cogvideo.pipeline_cogvideox_image2video",
               "diffusers.pipelines.flux.pipeline_flux_fill", "transformers.tokenization_utils_base")


# the components speed_levers stores in float8 (the branch as an extra module of the video transformer)
FLOAT8_COMPONENTS = ("transformer", "branch")


@dataclass(frozen=True)
class PipelineNeed:
    name: str
    device: str
    total_bytes: int
    largest_bytes: int     # largest single component: what offload keeps on the GPU at once


@dataclass
class EditModels:
    video: VideoPainterPipeline
    first_frame: FluxFillInpainter
    cog_policy: DevicePolicy
    flux_policy: DevicePolicy
    descriptions: dict[str, Any] = field(default_factory=dict)
    plan: list[str] = field(default_factory=list)
    load_seconds: float = 0.0


def module_bytes(module: nn.Module, float8: bool = False) -> int:
    """Bytes of the module's parameters and buffers; ``float8``: as they will be stored under float8 layerwise
    casting (about: every weight matrix or kernel at one byte, the rest as loaded)."""
    tensors = list(module.parameters()) + list(module.buffers())
    return sum(t.numel() * (1 if float8 and t.ndim >= 2 and t.is_floating_point() else t.element_size())
               for t in tensors)


def pipeline_need(name: str, pipe: Any, device: str, float8: tuple[str, ...] = ()) -> PipelineNeed:
    """What the pipeline's components need on ``device``; the components named in ``float8`` as float8 storage."""
    sizes = [module_bytes(m, key in float8) for key, m in pipe.components.items() if isinstance(m, nn.Module)]
    return PipelineNeed(name, device, sum(sizes), max(sizes, default=0))


def size_text(n: int) -> str:
    return f"{n / GB:.2f} GB" if n >= GB // 10 else f"{n / 2**20:.1f} MB"


def plan_placement(needs: list[PipelineNeed], free_bytes: dict[str, int], reserve_bytes: int,
                   mode: str = "auto") -> tuple[dict[str, bool], list[str]]:
    """Which pipelines use CPU offload (``{name: True}``), and the plan as log lines.

    ``free_bytes``: free memory per CUDA device. ``mode``: auto (offload only what does not fit),
    never, always. CPU pipelines are always resident.
    """
    offload = {n.name: False for n in needs}
    lines = []
    for device in sorted({n.device for n in needs}):
        group = [n for n in needs if n.device == device]
        listed = " + ".join(f"{n.name} {size_text(n.total_bytes)}" for n in group)
        if not device.startswith("cuda"):
            lines.append(f"{device}: {listed}: resident")
            continue
        free = free_bytes.get(device, 0)

        def need_now(group: list[PipelineNeed] = group) -> int:
            return sum(n.largest_bytes if offload[n.name] else n.total_bytes for n in group) + reserve_bytes

        if mode == "always":
            for n in group:
                offload[n.name] = True
        elif mode == "auto":
            for n in sorted(group, key=lambda n: n.total_bytes, reverse=True):
                if need_now() <= free:
                    break
                offload[n.name] = True
        placed = ", ".join(f"{n.name} {'CPU offload' if offload[n.name] else 'resident'}" for n in group)
        verdict = "fits" if need_now() <= free else "MAY NOT FIT"
        lines.append(f"{device}: {listed} + reserve {size_text(reserve_bytes)} vs free {size_text(free)}: "
                     f"{placed} (peak weights {size_text(need_now() - reserve_bytes)}, {verdict})")
    return offload, lines


def _quiet_tiny_warnings() -> None:
    for name in _TINY_QUIET:
        logging.getLogger(name).setLevel(logging.ERROR)


def _build_video(cfg: EditConfig, policy: DevicePolicy) -> tuple[VideoPainterPipeline, dict[str, Any]]:
    if cfg.profile == "tiny":
        from generation.tiny_models import tiny_cogvideox_components

        pipe = VideoPainterPipeline(**tiny_cogvideox_components(0))
        desc: dict[str, Any] = {"model": "tiny CogVideoX I2V + tiny VideoPainter branch (random weights)"}
    else:
        from diffusers import CogVideoXDPMScheduler

        try:
            from core.model_lock import pinned_revision

            branch = VideoPainterBranch.from_pretrained(cfg.branch_model, subfolder=cfg.branch_subfolder or None,
                                                        dtype=policy.dtype, revision=pinned_revision(cfg.branch_model))
            pipe = VideoPainterPipeline.from_pretrained(cfg.cog_model, branch=branch, dtype=policy.dtype,
                                                        revision=pinned_revision(cfg.cog_model))
        except (OSError, ValueError) as exc:
            raise LanepaintError(f"cannot load the video models ({cfg.cog_model}, {cfg.branch_model}/"
                                 f"{cfg.branch_subfolder}): {brief(exc)}") from None
        pipe.scheduler = CogVideoXDPMScheduler.from_config(pipe.scheduler.config, timestep_spacing="trailing")
        desc = {"model": cfg.cog_model, "branch": f"{cfg.branch_model}/{cfg.branch_subfolder}"}
    if cfg.id_lora_path:
        desc["id_lora"] = load_id_lora(pipe, cfg.id_lora_path, cfg.id_lora_alpha)
        pipe.enable_id_resampling(cfg.id_resampling_mode, cfg.id_prev_clip_weight)
        desc["id_lora"] |= {"resampling": cfg.id_resampling_mode, "prev_clip_weight": cfg.id_prev_clip_weight}
    desc["parameters"] = {name: sum(p.numel() for p in m.parameters())
                          for name, m in pipe.components.items() if isinstance(m, nn.Module)}
    return pipe, desc


def _free_bytes(device: str) -> int:
    free, _total = torch.cuda.mem_get_info(torch.device(device))
    return int(free)


def load_edit_models(cfg: EditConfig, loaded_first: list[str] | tuple[str, ...] = ()) -> EditModels:
    """Build both pipelines, place them by the memory plan, and log the plan.

    ``loaded_first``: plan lines of models already placed (the judge, the metrics), logged first; the
    free GPU memory measured here already excludes what they hold.
    """
    start = time.perf_counter()
    if not progress_enabled():   # no loading bars in logs that are not a terminal
        import diffusers.utils.logging
        import transformers.utils.logging

        diffusers.utils.logging.disable_progress_bar()
        transformers.utils.logging.disable_progress_bar()
    cog_policy = resolve_device(cfg.cog_device, cfg.profile)
    flux_policy = resolve_device(cfg.flux_device, cfg.profile)
    if cfg.profile == "tiny":
        _quiet_tiny_warnings()
    video, video_desc = _build_video(cfg, cog_policy)
    flux_pipe = build_fluxfill(cfg.profile, cfg.flux_model, flux_policy)
    flux_desc = {"model": cfg.flux_model if cfg.profile == "full" else "tiny FluxFill (random weights)",
                 "lora": apply_lora(flux_pipe, cfg.img_inpainting_lora_path, cfg.img_inpainting_lora_scale,
                                   cfg.cache_dir)}
    for pipe in (video, flux_pipe):
        pipe.set_progress_bar_config(disable=True)   # our own progress bars (core.logs) show the steps

    float8 = FLOAT8_COMPONENTS if cfg.storage_dtype == "float8" else ()
    needs = [pipeline_need("video", video, cog_policy.device, float8),
             pipeline_need("first-frame", flux_pipe, flux_policy.device, float8)]
    free = {n.device: _free_bytes(n.device) for n in needs if n.device.startswith("cuda")}
    offload, lines = plan_placement(needs, free, int(cfg.reserve_gb * GB), cfg.offload)
    lines = [*loaded_first, *lines]
    for line in lines:
        log.info("memory plan: %s", line)
    for name, pipe, policy in (("video", video, cog_policy), ("first-frame", flux_pipe, flux_policy)):
        if offload[name]:
            pipe.enable_model_cpu_offload(device=policy.device)
            if name == "video":
                pipe.vae.enable_tiling()   # the 49-frame decode is the activation peak
        elif pipe.dtype != policy.dtype:   # e.g. tiny (float32) models asked onto a bf16 GPU
            pipe.to(policy.device, policy.dtype)
        else:
            pipe.to(policy.device)
    # after placement: a dtype change there would undo float8 storage
    video_desc["speed"] = apply_speed_levers(
        video.transformer, cache_threshold=cfg.step_cache_threshold, storage=cfg.storage_dtype, compile=cfg.compile,
        compute_dtype=cog_policy.dtype, extra_modules=(video.branch,))
    flux_desc["speed"] = apply_speed_levers(
        flux_pipe.transformer, cache_threshold=cfg.flux_step_cache_threshold, storage=cfg.storage_dtype,
        compile=cfg.compile, compute_dtype=flux_policy.dtype)
    inpainter = FluxFillInpainter(
        flux_pipe, guidance_scale=cfg.flux_guidance_scale, num_inference_steps=int(cfg.flux_num_inference_steps),
        max_area=int(cfg.flux_max_area), max_sequence_length=int(cfg.flux_max_sequence_length),
        keep_masked_pixels=cfg.keep_masked_pixels, mask_feather=cfg.mask_feather, lora=flux_desc["lora"])
    for desc, policy, name in ((video_desc, cog_policy, "video"), (flux_desc, flux_policy, "first-frame")):
        desc.update(device=policy.describe(), placement="CPU offload" if offload[name] else "resident")
    seconds = time.perf_counter() - start
    log.info("models loaded in %.1fs (video on %s, first frame on %s)", seconds, cog_policy.describe(),
             flux_policy.describe())
    return EditModels(video, inpainter, cog_policy, flux_policy,
                      {"video": video_desc, "first_frame": flux_desc}, lines, seconds)

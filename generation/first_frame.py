"""The first frame of an edit: FluxFill (FLUX.1-Fill-dev) inpaints the road of frame 0.

``FluxFillInpainter`` is a plain callable ``(frame, mask, caption, seed) -> image`` (uint8 arrays),
so the judge loop (issue 5) can call it repeatedly with revised captions. It runs at the clip's
resolution (rounded to multiples of 16, capped at ``max_area`` pixels), guidance 30 and 50 steps by
default, and with ``keep_masked_pixels`` pastes back only the masked region (feathered inside the
mask): nothing outside the road changes. An optional LoRA (``--img-inpainting-lora-path``) is
applied at ``--img-inpainting-lora-scale`` (0 = off).
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from diffusers import FluxFillPipeline
from PIL import Image

from core.device import DevicePolicy
from core.errors import LanepaintError, brief
from generation.lora_weights import local_lora_weights
from generation.masking import composite, feather_alpha, fit_to_area, resize_frames, resize_masks
from generation.speed_levers import cache_enabled, reset_step_cache

log = logging.getLogger(__name__)

LORA_ADAPTER = "lanes"


@dataclass
class FluxFillInpainter:
    """``(frame [H,W,3] uint8, mask [H,W] bool, caption, seed) -> edited frame [H,W,3] uint8``."""

    pipe: Any
    guidance_scale: float = 30.0
    num_inference_steps: int = 50
    max_area: int = 1920 * 1088
    max_sequence_length: int = 512
    keep_masked_pixels: bool = True
    mask_feather: int = 8
    lora: dict[str, Any] = field(default_factory=dict)

    def working_size(self, width: int, height: int) -> tuple[int, int]:
        return fit_to_area(width, height, self.max_area, multiple=16)

    def __call__(self, frame: np.ndarray, mask: np.ndarray, caption: str, seed: int) -> np.ndarray:
        frame = np.asarray(frame)
        mask = np.asarray(mask).astype(bool)
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            raise ValueError(f"frame must be uint8 [H, W, 3], got {frame.dtype} {frame.shape}")
        if mask.shape != frame.shape[:2]:
            raise ValueError(f"mask {mask.shape} does not match frame {frame.shape[:2]}")
        height, width = frame.shape[:2]
        w, h = self.working_size(width, height)
        image = Image.fromarray(resize_frames(frame[None], (w, h))[0])
        mask_image = Image.fromarray(resize_masks(mask, (w, h)).astype(np.uint8) * 255)
        transformer = self.pipe.transformer
        # diffusers' FluxFill pipeline sets no cache context; with step caching on (speed_levers) we do
        context = transformer.cache_context("cond") if cache_enabled(transformer) else contextlib.nullcontext()
        reset_step_cache(transformer)   # each attempt starts from noise
        with context:
            result = self.pipe(
                prompt=caption, image=image, mask_image=mask_image, height=h, width=w,
                guidance_scale=self.guidance_scale, num_inference_steps=self.num_inference_steps,
                max_sequence_length=self.max_sequence_length,
                generator=torch.Generator("cpu").manual_seed(int(seed)), output_type="np",
            ).images[0]
        out = np.clip(np.rint(np.asarray(result, np.float32) * 255.0), 0, 255).astype(np.uint8)
        out = resize_frames(out[None], (width, height))[0]
        if self.keep_masked_pixels:
            out = composite(frame, out, feather_alpha(mask, self.mask_feather))
        return out


def apply_lora(pipe: Any, path: str | None, scale: float, cache_dir: str | None = None) -> dict[str, Any]:
    """Load the FluxFill LoRA at ``scale``; scale 0 (the default) leaves the LoRA off. ``path``: a
    weights file, a folder holding pytorch_lora_weights.safetensors, or a ``lanepaint train-lora`` run
    folder (newest checkpoint); local, gs:// or memory://."""
    if not path or scale <= 0:
        if path:
            log.info("FluxFill LoRA %s not loaded: --img-inpainting-lora-scale is 0 (off)", path)
        return {"path": path, "scale": 0.0, "loaded": False}
    folder, weight_name = local_lora_weights(path, cache_dir)   # remote weights downloaded once
    pipe.load_lora_weights(folder, weight_name=weight_name, adapter_name=LORA_ADAPTER)
    pipe.set_adapters([LORA_ADAPTER], [float(scale)])
    log.info("FluxFill LoRA %s loaded at scale %g", path, scale)
    return {"path": path, "scale": float(scale), "loaded": True}


def build_fluxfill(profile: str, model: str, policy: DevicePolicy, seed: int = 0) -> FluxFillPipeline:
    """The FluxFill pipeline on CPU (the caller places it): tiny random weights or the checkpoint."""
    if profile == "tiny":
        from generation.tiny_models import tiny_fluxfill_components

        return FluxFillPipeline(**tiny_fluxfill_components(seed))
    try:
        from core.model_lock import pinned_revision

        return FluxFillPipeline.from_pretrained(model, dtype=policy.dtype, revision=pinned_revision(model))
    except (OSError, ValueError) as exc:
        raise LanepaintError(f"cannot load FluxFill from {model}: {brief(exc)}") from None

"""One stage-2 item: a (video, instruction) pair, from the stage-1 hand-off to the edited clip.

``load_clip_inputs`` reads and checks a video's VP data once (the stage reuses it for every
instruction of that video); ``edit_item`` runs the first frame and the video pass with the resident
models and writes, under ``vp/<run_id>/<instruction_folder>/<video_id>/``:

- ``<video_id>_vp_edit_sample0.mp4``: the composite at the clip's resolution and fps (generated
  pixels inside the feathered, dilated mask, original pixels everywhere else);
- ``<video_id>_vp_edit_sample0_generated.mp4``: the raw generation at the model resolution;
- ``<video_id>_vp_edit_sample0_flux_{i_img,i_mask,o_img}.png``: FluxFill input, mask and output;
- ``<video_id>_vp_edit_sample0.json``: the sidecar, written last (its presence = item done).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

from core import storage, videoio
from core.errors import LanepaintError
from core.layout import EDIT_SUFFIX, Layout
from core.manifest import TINY_NOTE
from core.runner import Timings
from core.vp_data import VPClip, load_masks, read_vp_clip
from generation.config import EditConfig
from generation.instructions import Instruction
from generation.masking import composite, dilate_masks, feather_alpha, resize_frames, resize_masks

log = logging.getLogger(__name__)

NOT_JUDGED = "not judged"


@dataclass
class ClipInputs:
    clip: VPClip
    frames: np.ndarray        # [T, H, W, 3] uint8 at the clip's resolution
    masks: np.ndarray         # [T, H, W] bool, as segmented
    dilated: np.ndarray       # [T, H, W] bool, what the models inpaint
    alpha: np.ndarray         # [T, H, W] float32, compositing weight (0 outside ``dilated``)


@dataclass
class FirstFrameResult:
    """What the first-frame step returns; the judge loop (issue 5) fills the last three fields."""

    image: np.ndarray
    caption_used: str
    iterations: int = 1
    verdict: str = NOT_JUDGED
    details: dict[str, Any] = field(default_factory=dict)


FirstFrameStep = Callable[[np.ndarray, np.ndarray, str, int], FirstFrameResult]


def unjudged(inpainter: Callable[[np.ndarray, np.ndarray, str, int], np.ndarray]) -> FirstFrameStep:
    """The first-frame step without a judge: one FluxFill call with the instruction as caption."""

    def step(frame: np.ndarray, mask: np.ndarray, caption: str, seed: int) -> FirstFrameResult:
        return FirstFrameResult(inpainter(frame, mask, caption, seed), caption)

    return step


def load_clip_inputs(layout: Layout, cfg: EditConfig, video_id: str, cache_dir: str) -> ClipInputs:
    """Read one video's frames and masks and check them; a bad input is a one-line error."""
    clip = read_vp_clip(layout, cfg.data_run_id, video_id)
    masks = load_masks(clip)
    frames = videoio.decode(storage.fetch(clip.video_uri, cache_dir), fps=None)[clip.start_frame:clip.end_frame]
    if len(frames) != len(masks):
        raise LanepaintError(f"{video_id}: mask/video frame-count mismatch ({len(masks)} masks, "
                             f"{len(frames)} video frames)")
    if masks.shape[1:] != frames.shape[1:3]:
        raise LanepaintError(f"{video_id}: mask size {masks.shape[2]}x{masks.shape[1]} differs from video size "
                             f"{frames.shape[2]}x{frames.shape[1]}")
    if not masks.any():
        raise LanepaintError(f"{video_id}: all-zero mask (nothing to edit)")
    if len(frames) < cfg.num_frames:
        raise LanepaintError(f"{video_id}: clip shorter than {cfg.num_frames} frames ({len(frames)} frames at "
                             f"{clip.fps:g} fps)")
    if abs(clip.fps - cfg.fps) > 1e-3:
        log.warning("%s: clip is at %g fps, the edit is written at %g fps (stage 1 normally resamples to it)",
                    video_id, clip.fps, cfg.fps)
    if cfg.max_frames:
        frames, masks = frames[:cfg.max_frames], masks[:cfg.max_frames]
    dilated = dilate_masks(masks, cfg.dilate_size)
    return ClipInputs(clip, frames, masks, dilated, feather_alpha(dilated, cfg.mask_feather))


def _png(uri: str, array: np.ndarray) -> None:
    with storage.atomic_path(uri, suffix=".png") as tmp:
        Image.fromarray(array).save(tmp, format="PNG")


def _video(uri: str, frames: np.ndarray, fps: float) -> None:
    with storage.atomic_path(uri, suffix=".mp4") as tmp:
        videoio.encode(frames, tmp, fps=fps)


def item_outputs(layout: Layout, run_id: str, folder: str, video_id: str) -> dict[str, str]:
    base = layout.vp_item(run_id, folder, video_id)
    stem = f"{video_id}{EDIT_SUFFIX}"
    return {
        "edit": layout.vp_edit_video(run_id, folder, video_id),
        "generated": layout.vp_generated_video(run_id, folder, video_id),
        "flux_input": storage.join(base, f"{stem}_flux_i_img.png"),
        "flux_mask": storage.join(base, f"{stem}_flux_i_mask.png"),
        "flux_output": storage.join(base, f"{stem}_flux_o_img.png"),
        "sidecar": layout.vp_sidecar(run_id, folder, video_id),
    }


def parameters(cfg: EditConfig) -> dict[str, Any]:
    """Every generation parameter that shapes the pixels (recorded in each sidecar)."""
    names = ("num_inference_steps", "guidance_scale", "use_dynamic_cfg", "strength", "num_frames", "fps",
             "window_stride", "max_frames", "conditioning_scale", "mask_add", "replace_gt", "model_width",
             "model_height", "dilate_size", "mask_feather", "keep_masked_pixels", "flux_guidance_scale",
             "flux_num_inference_steps", "flux_max_area", "flux_max_sequence_length", "img_inpainting_lora_path",
             "img_inpainting_lora_scale", "id_lora_path", "id_lora_alpha", "cog_model", "branch_model",
             "branch_subfolder", "flux_model", "profile")
    return {name: getattr(cfg, name) for name in names}


def edit_item(cfg: EditConfig, layout: Layout, instruction: Instruction, inputs: ClipInputs, models: Any,
              first_frame: FirstFrameStep, timings: Timings) -> dict[str, Any]:
    """Edit one video with one instruction; returns details for the manifest."""
    import torch

    from core.device import memory_snapshot

    video_id = inputs.clip.video_id
    height, width = inputs.frames.shape[1:3]
    device = models.cog_policy.device
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats(device)
    with timings.phase("first_frame"):
        result = first_frame(inputs.frames[0], inputs.dilated[0], instruction.text, cfg.seed)
    size = cfg.model_size
    with timings.phase("video_generation"):
        out = models.video(
            resize_frames(inputs.frames, size), resize_masks(inputs.dilated, size), prompt=result.caption_used,
            first_frame=resize_frames(result.image[None], size)[0], num_frames=cfg.num_frames,
            window_stride=cfg.window_stride, num_inference_steps=int(cfg.num_inference_steps),
            guidance_scale=cfg.guidance_scale, use_dynamic_cfg=cfg.use_dynamic_cfg, strength=cfg.strength,
            generator=torch.Generator().manual_seed(cfg.seed), conditioning_scale=cfg.conditioning_scale,
            mask_add=cfg.mask_add, replace_gt=cfg.replace_gt)
        edited = composite(inputs.frames, resize_frames(out.frames, (width, height)), inputs.alpha)
    memory = memory_snapshot(device)
    uris = item_outputs(layout, cfg.run_id, instruction.folder, video_id)
    with timings.phase("upload"):
        _video(uris["edit"], edited, cfg.fps)
        _video(uris["generated"], out.frames, cfg.fps)
        _png(uris["flux_input"], inputs.frames[0])
        _png(uris["flux_mask"], inputs.dilated[0].astype(np.uint8) * 255)
        _png(uris["flux_output"], result.image)
    clip = inputs.clip
    sidecar = {
        "video_id": video_id,
        "instruction": instruction.text,
        "instruction_folder": instruction.folder,
        "instruction_source": instruction.source,
        "caption_used": result.caption_used,
        "video_prompt": result.caption_used,
        "iterations": result.iterations,
        "verdict": result.verdict,
        "judge": result.details,
        "parameters": parameters(cfg),
        "seeds": {"first_frame": cfg.seed, "video": cfg.seed},
        "input": {"data_run_id": cfg.data_run_id, "video": clip.video_uri, "masks": clip.masks_uri,
                  "frames": int(len(inputs.frames)), "width": int(width), "height": int(height), "fps": clip.fps,
                  "mask_coverage": round(float(inputs.masks.mean()), 6),
                  "dilated_coverage": round(float(inputs.dilated.mean()), 6)},
        "windows": [list(w) for w in out.windows],
        "id_resampling": out.id_resampling,
        "outputs": {k: v for k, v in uris.items() if k != "sidecar"},
        "timings": timings.as_dict(),
        "memory": memory,
        "devices": {"video": models.cog_policy.describe(), "first_frame": models.flux_policy.describe()},
        "profile": cfg.profile,
    }
    if cfg.profile == "tiny":
        sidecar["profile_note"] = TINY_NOTE
    storage.write_text(uris["sidecar"], json.dumps(sidecar, indent=2, default=str))
    return {"edit": uris["edit"], "verdict": result.verdict, "frames": int(len(inputs.frames)),
            "windows": len(out.windows), **{f"memory_{k}": v for k, v in memory.items()}}

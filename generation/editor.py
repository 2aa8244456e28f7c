"""One stage-2 item: a (video, instruction) pair, from the stage-1 hand-off to the edited clip.

``load_clip_inputs`` reads and checks a video's VP data once (the stage reuses it for every
instruction of that video); ``edit_item`` runs the first frame (the judge loop, ``quality``) and the
video pass with the resident models, checks and scores the edit, and writes, under
``vp/<run_id>/<instruction_folder>/<video_id>/``:

- ``<video_id>_vp_edit_sample0.mp4``: the composite at the clip's resolution and fps (generated
  pixels inside the feathered, dilated mask, original pixels everywhere else);
- ``<video_id>_vp_edit_sample0_generated.mp4``: the raw generation at the model resolution;
- ``<video_id>_vp_edit_sample0_flux_{i_img,i_mask,o_img}.png``: FluxFill input, mask and the chosen output;
- ``<video_id>_caption_refine/``: every judged attempt and clip frame (judge on);
- ``eval_<video_id>.txt`` and ``.json``: the quality metrics and label (metrics on);
- ``<video_id>_vp_edit_sample0.json``: the sidecar, written last (its presence = item done); it carries
  the evaluated moment stage 1 planned (``moment``) on to stage 3.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from core import storage, videoio
from core.edited_clips import EDIT_SUFFIX, sidecar_text
from core.errors import LanepaintError
from core.layout import Layout
from core.manifest import TINY_NOTE
from core.moment import Moment
from core.runner import Timings
from core.vp_data import VPClip, load_masks, read_vp_clip
from generation.config import EditConfig
from generation.instructions import Instruction
from generation.masking import composite, dilate_masks, feather_alpha, resize_frames, resize_masks
from generation.quality.checks import FirstFrameResult, Quality

log = logging.getLogger(__name__)

@dataclass
class ClipInputs:
    clip: VPClip
    frames: np.ndarray        # [T, H, W, 3] uint8 at the clip's resolution
    masks: np.ndarray         # [T, H, W] bool, as segmented
    dilated: np.ndarray       # [T, H, W] bool, what the models inpaint
    alpha: np.ndarray         # [T, H, W] float32, compositing weight (0 outside ``dilated``)


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
    if cfg.max_frames:
        frames, masks = frames[:cfg.max_frames], masks[:cfg.max_frames]
    moment = clip.moment
    if moment is not None and moment.t0_s > moment.start_s + (len(frames) - 1) / clip.fps + 1e-6:
        raise LanepaintError(f"{video_id}: the edit would end at {moment.start_s + (len(frames) - 1) / clip.fps:.2f} s, "
                             f"before the evaluated moment t0 = {moment.t0_s:.2f} s planned by stage 1 "
                             f"(--max-frames {cfg.max_frames} cuts it; 0 edits the whole clip)")
    dilated = dilate_masks(masks, cfg.dilate_size)
    return ClipInputs(clip, frames, masks, dilated, feather_alpha(dilated, cfg.mask_feather))


def edited_moment(moment: Moment | None, frames: int) -> dict[str, Any] | None:
    """The evaluated moment stage 1 planned, for the edited clip (its first ``frames`` frames): stage 3 reads it."""
    return None if moment is None else dataclasses.replace(moment, frames=frames).as_dict()


def _png(uri: str, array: np.ndarray) -> None:
    with storage.atomic_path(uri, suffix=".png") as tmp:
        Image.fromarray(array).save(tmp, format="PNG")


def _video(uri: str, frames: np.ndarray, fps: float, read_back: bool = False) -> np.ndarray | None:
    """Encode ``frames`` to ``uri``; with ``read_back`` the frames as written (after H.264), at the input size."""
    with storage.atomic_path(uri, suffix=".mp4") as tmp:
        videoio.encode(frames, tmp, fps=fps)
        if not read_back:
            return None
        height, width = frames.shape[1:3]
        return videoio.decode(tmp, fps=None)[:, :height, :width]   # the encoder pads odd sizes by one pixel


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


QUALITY_PARAMETERS = ("judge", "qwen_model", "caption_refine_iters", "caption_refine_temperature",
                      "compliance_frames", "metrics", "metrics_protocol", "clip_score_model", "clip_temporal_model")


def parameters(cfg: EditConfig) -> dict[str, Any]:
    """Every generation parameter that shapes the pixels, and the judge's settings (recorded in each sidecar)."""
    names = ("num_inference_steps", "guidance_scale", "use_dynamic_cfg", "strength", "num_frames",
             "window_stride", "max_frames", "conditioning_scale", "mask_add", "replace_gt", "model_width",
             "model_height", "dilate_size", "mask_feather", "keep_masked_pixels", "flux_guidance_scale",
             "flux_num_inference_steps", "flux_max_area", "flux_max_sequence_length", "img_inpainting_lora_path",
             "img_inpainting_lora_scale", "id_lora_path", "id_lora_alpha", "id_resampling_mode",
             "id_prev_clip_weight", "step_cache_threshold", "flux_step_cache_threshold", "storage_dtype", "compile", "instruction_batch",
             "cog_model", "branch_model",
             "branch_subfolder", "flux_model", "profile", *QUALITY_PARAMETERS)
    return {name: getattr(cfg, name) for name in names}


@dataclass
class FirstFramed:
    """An item's first frame, ready for the video pass."""
    instruction: Instruction
    writer: Any
    result: FirstFrameResult
    seconds: float


def first_frame_item(cfg: EditConfig, layout: Layout, instruction: Instruction, inputs: ClipInputs, models: Any,
                     quality: Quality) -> FirstFramed:
    """Clear the item's leftovers, then FluxFill's first frame through the judge loop."""
    start = time.perf_counter()
    writer = quality.start_item(layout, cfg.run_id, instruction.folder, inputs.clip.video_id)
    result = quality.first_frame(models.first_frame, inputs.frames[0], inputs.dilated[0], instruction.text,
                                 cfg.seed, writer, inputs.clip.video_id)
    return FirstFramed(instruction, writer, result, time.perf_counter() - start)


@dataclass
class VideoResult:
    frames: np.ndarray                 # [T, h, w, 3] uint8 at the model resolution
    windows: list[tuple[int, int]]
    id_resampling: bool
    batch: int                         # videos denoised together in this pass (--instruction-batch)


def video_pass(cfg: EditConfig, inputs: ClipInputs, firsts: list[FirstFramed], models: Any) -> list[VideoResult]:
    """The video model over the clip for each first frame: one call, the instructions as one batch. Each gets a
    generator seeded with ``--seed``, so a batch gives what one call per instruction gives."""
    import torch

    size = cfg.model_size
    batched = len(firsts) > 1
    captions = [f.result.caption_used for f in firsts]
    images = [resize_frames(f.result.image[None], size)[0] for f in firsts]
    out = models.video(
        resize_frames(inputs.frames, size), resize_masks(inputs.dilated, size),
        prompt=captions if batched else captions[0], first_frame=images if batched else images[0],
        num_frames=cfg.num_frames, window_stride=cfg.window_stride, num_inference_steps=int(cfg.num_inference_steps),
        guidance_scale=cfg.guidance_scale, use_dynamic_cfg=cfg.use_dynamic_cfg, strength=cfg.strength,
        generator=([torch.Generator().manual_seed(cfg.seed) for _ in firsts] if batched
                   else torch.Generator().manual_seed(cfg.seed)),
        conditioning_scale=cfg.conditioning_scale, mask_add=cfg.mask_add, replace_gt=cfg.replace_gt)
    frames = out.frames if batched else out.frames[None]
    return [VideoResult(frames[i], out.windows, out.id_resampling, len(firsts)) for i in range(len(firsts))]


def edit_item(cfg: EditConfig, layout: Layout, instruction: Instruction, inputs: ClipInputs, models: Any,
              quality: Quality, timings: Timings) -> dict[str, Any]:
    """Edit one video with one instruction, judge and score it; returns details for the manifest.

    Order: first frame (judge loop), video pass, videos and images, compliance check and metrics on
    the edit as written, then the sidecar last (its presence marks the item done).
    """
    start_peak_memory(models.cog_policy.device)
    with timings.phase("first_frame"):
        framed = first_frame_item(cfg, layout, instruction, inputs, models, quality)
    with timings.phase("video_generation"):
        (out,) = video_pass(cfg, inputs, [framed], models)
    return finish_item(cfg, layout, inputs, framed, out, models, quality, timings)


def start_peak_memory(device: str) -> None:
    """Reset the device's peak-memory counter: the sidecar's peak is then this item's (or batch's)."""
    if device.startswith("cuda"):
        import torch

        torch.cuda.reset_peak_memory_stats(device)


def finish_item(cfg: EditConfig, layout: Layout, inputs: ClipInputs, framed: FirstFramed, out: VideoResult,
                models: Any, quality: Quality, timings: Timings) -> dict[str, Any]:
    """Composite, write, check and score one edited video, then its sidecar (last)."""
    from core.device import memory_snapshot

    clip, instruction, result, writer = inputs.clip, framed.instruction, framed.result, framed.writer
    video_id, folder = clip.video_id, framed.instruction.folder
    height, width = inputs.frames.shape[1:3]
    with timings.phase("video_generation"):
        edited = composite(inputs.frames, resize_frames(out.frames, (width, height)), inputs.alpha)
    memory = memory_snapshot(models.cog_policy.device)
    uris = item_outputs(layout, cfg.run_id, folder, video_id)
    with timings.phase("upload"):
        written = _video(uris["edit"], edited, clip.fps, read_back=quality.judge is not None or
                         quality.scorer is not None)
        _video(uris["generated"], out.frames, clip.fps)
        _png(uris["flux_input"], inputs.frames[0])
        _png(uris["flux_mask"], inputs.dilated[0].astype(np.uint8) * 255)
        _png(uris["flux_output"], result.image)
    # the judge and the metrics see the edit as delivered (after H.264) and the mask that was repainted
    with timings.phase("compliance"):
        compliance = quality.compliance(instruction.text, inputs.frames, inputs.dilated, written, writer, video_id)
    with timings.phase("metrics"):
        info = {"original": inputs.clip.video_uri, "edited": uris["edit"], "masks": inputs.clip.masks_uri,
                "mask_dilate_px": cfg.dilate_size, "fps": clip.fps}
        scores = quality.evaluate(layout, cfg.run_id, folder, video_id, inputs.frames, written, inputs.dilated,
                                  instruction.text, info, caption=result.caption_used)
    quality.finish_item(writer, result, compliance)
    sidecar = _sidecar(cfg, instruction, inputs, result, compliance, scores, out, uris, timings, memory, models,
                       quality, writer)
    storage.write_text(uris["sidecar"], sidecar_text(sidecar))
    return {"edit": uris["edit"], "moment": sidecar["moment"], "verdict": result.verdict, "iterations": result.iterations,
            "compliance_fraction": sidecar["compliance_fraction"],
            "quality_label": scores["label"] if scores else None, "frames": int(len(inputs.frames)),
            "windows": len(out.windows), "video_batch": out.batch, **{f"memory_{k}": v for k, v in memory.items()}}


def _sidecar(cfg: EditConfig, instruction: Instruction, inputs: ClipInputs, result: FirstFrameResult,
             compliance: Any, scores: dict[str, Any] | None, out: Any, uris: dict[str, str], timings: Timings,
             memory: dict[str, float], models: Any, quality: Quality, writer: Any) -> dict[str, Any]:
    clip = inputs.clip
    height, width = inputs.frames.shape[1:3]
    history = result.details.get("history", [])
    outputs = {k: v for k, v in uris.items() if k != "sidecar"}
    if writer is not None:
        outputs["caption_refine"] = writer.folder
    if scores is not None:
        outputs.update(eval_txt=scores["eval_txt"], eval_json=scores["eval_json"])
    judge = ({**result.details, "compliance": compliance.to_dict() if compliance is not None else None}
             if quality.judge is not None else {"enabled": False})
    devices = {"video": models.cog_policy.describe(), "first_frame": models.flux_policy.describe()}
    policy = getattr(quality.vlm, "policy", None)
    if policy is not None:
        devices["judge"] = policy.describe()
    sidecar = {
        "video_id": clip.video_id,
        "instruction": instruction.text,
        "instruction_folder": instruction.folder,
        "instruction_source": instruction.source,
        "caption_used": result.caption_used,
        "video_prompt": result.caption_used,
        "iterations": result.iterations,
        "verdict": result.verdict,
        "verdict_history": [entry["verdict"] for entry in history],
        "compliance_fraction": compliance.fraction if compliance is not None else None,
        "quality_label": scores["label"] if scores else None,
        "judge": judge,
        "quality": scores,
        "parameters": parameters(cfg),
        "seeds": {"first_frame": result.seed, "video": cfg.seed},
        "input": {"data_run_id": cfg.data_run_id, "video": clip.video_uri, "masks": clip.masks_uri,
                  "frames": int(len(inputs.frames)), "width": int(width), "height": int(height), "fps": clip.fps,
                  "mask_coverage": round(float(inputs.masks.mean()), 6),
                  "dilated_coverage": round(float(inputs.dilated.mean()), 6)},
        "windows": [list(w) for w in out.windows],
        "id_resampling": out.id_resampling,
        "video_batch": out.batch,
        "moment": edited_moment(clip.moment, len(inputs.frames)),
        "outputs": outputs,
        "timings": timings.as_dict(),
        "memory": memory,
        "devices": devices,
        "profile": cfg.profile,
    }
    if quality.judge is not None:
        sidecar["seeds"]["first_frame_attempts"] = "seed + attempt - 1"
    if cfg.profile == "tiny":
        sidecar["profile_note"] = TINY_NOTE
    return sidecar

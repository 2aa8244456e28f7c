"""Stage 1 outputs of one video, and the check that they are complete.

Under ``sam2/<run_id>/<video_id>/`` (written into a local temp folder in a thread pool, then one
``storage.put``): ``masks/00000.png ...`` (0 keep, 255 inpaint), ``visualizations/`` (a few
frames with the road tinted green), ``<video_id>_segmented.mp4`` (every frame tinted) and
``<video_id>_stats.json`` (per-frame coverage, consecutive IoU, flagged frames, timings). Then the
VideoPainter hand-off through ``core.vp_data.write_vp_clip``, whose ``meta.csv`` is written last:
a video is complete when its ``meta.csv`` exists and its PNG masks are all there.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import cv2
import numpy as np

from core import storage, videoio
from core.errors import LanepaintError, StorageError
from core.layout import Layout
from core.vp_data import read_vp_clip

log = logging.getLogger(__name__)

TINT_RGB = np.array([0, 255, 0], dtype=np.float32)
TINT_ALPHA = 0.45
SAMPLE_FRAMES = 3          # visualisation PNGs: first, middle and last frame
# OpenCV's default PNG settings are the fast ones for binary masks (about 3x faster here than
# any explicit IMWRITE_PNG_COMPRESSION level, and smaller files); keep them.
VIS_CRF = 23


def tint_road(frame: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The frame with road pixels blended toward green (``TINT_ALPHA``); other pixels unchanged."""
    out = frame.copy()
    road = np.asarray(mask, bool)
    out[road] = (frame[road].astype(np.float32) * (1 - TINT_ALPHA) + TINT_RGB * TINT_ALPHA + 0.5).astype(np.uint8)
    return out


def sample_indices(total: int, count: int = SAMPLE_FRAMES) -> list[int]:
    return sorted({round(k * (total - 1) / max(1, count - 1)) for k in range(count)}) if total else []


def _imwrite(path: str, image: np.ndarray, params: list[int] | None = None) -> None:
    if not cv2.imwrite(path, image, params or []):
        raise LanepaintError(f"{path}: could not write image")


def write_mask_pngs(mask_dir: str, masks: np.ndarray, workers: int) -> list[str]:
    """``masks[t]`` as ``mask_dir/<t:05d>.png``, 0 keep / 255 inpaint, written in a thread pool."""
    os.makedirs(mask_dir, exist_ok=True)
    paths = [os.path.join(mask_dir, Layout.mask_png_name(t)) for t in range(len(masks))]

    def one(t: int) -> None:
        _imwrite(paths[t], masks[t].astype(np.uint8) * 255)

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        list(pool.map(one, range(len(masks))))
    return paths


def write_local(folder: str, video_id: str, frames: np.ndarray, masks: np.ndarray, fps: float,
                workers: int) -> dict[str, str]:
    """Write masks, tinted samples and the segmented video under ``folder`` (the video's sam2 tree)."""
    mask_dir = os.path.join(folder, "masks")
    vis_dir = os.path.join(folder, "visualizations")
    os.makedirs(vis_dir)
    write_mask_pngs(mask_dir, masks, workers)
    samples = set(sample_indices(len(frames)))
    tinted: list[np.ndarray | None] = [None] * len(frames)

    def one(t: int) -> None:
        tinted[t] = tint_road(frames[t], masks[t])
        if t in samples:
            _imwrite(os.path.join(vis_dir, Layout.mask_png_name(t)), cv2.cvtColor(tinted[t], cv2.COLOR_RGB2BGR))

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        list(pool.map(one, range(len(frames))))
    video = os.path.join(folder, Layout.segmented_video_name(video_id))
    videoio.encode(tinted, video, fps=fps, crf=VIS_CRF)
    return {"masks": mask_dir, "visualizations": vis_dir, "segmented_video": video}


def upload(layout: Layout, run_id: str, video_id: str, local_folder: str, stats: dict[str, Any]) -> None:
    """Replace the video's sam2 outputs with ``local_folder`` (one put), then write its stats JSON.

    The VP ``meta.csv`` (the completion marker) is removed first, so a crash from here on leaves
    the video incomplete (rerun) rather than looking done with mixed old and new files.
    """
    storage.rm(layout.vp_meta_csv(run_id, video_id))
    storage.rm(layout.sam2_masks_dir(run_id, video_id), recursive=True)         # no stale frames
    storage.rm(layout.sam2_visualizations_dir(run_id, video_id), recursive=True)
    storage.put(local_folder, layout.sam2_video(run_id, video_id))
    storage.write_text(layout.sam2_stats_json(run_id, video_id), json.dumps(stats, indent=2))


def temp_folder() -> tempfile.TemporaryDirectory[str]:
    return tempfile.TemporaryDirectory(prefix=storage.temp_prefix("seg"))


def is_complete(layout: Layout, run_id: str, video_id: str) -> bool:
    """meta.csv (written last), its video and npz, and one PNG mask per frame are all present."""
    if not storage.exists(layout.vp_meta_csv(run_id, video_id)):
        return False
    try:
        clip = read_vp_clip(layout, run_id, video_id)
    except (LanepaintError, StorageError) as exc:
        log.debug("%s: incomplete (%s)", video_id, exc)
        return False
    pngs = [u for u in storage.ls(layout.sam2_masks_dir(run_id, video_id), dirs=False) if u.endswith(".png")]
    return len(pngs) == clip.frames

"""The stage 1 -> stage 2 hand-off in VideoPainter's data format: write it and read it back.

Per video, under ``preprocessed_data_vp/<run_id>/<video_id>/``:

- ``raw_videos/<video_id[:-3]>/<video_id>.0.mp4``: the clip re-encoded at the working fps (8);
- ``mask_root/<video_id>/all_masks.npz``: ``arr_0``, uint8 label map ``[T, H, W]`` aligned with
  that clip; 1 = road to inpaint (``mask_id`` 1), 0 = keep;
- ``meta.csv``: VideoPainter's columns ``path,fps,mask_id,start_frame,end_frame,caption`` plus our
  stats and, when stage 1 planned it, the evaluated moment (``t0_s``, ``start_s``: seconds in the source
  video of t0 and of the clip's first frame; ``core.moment``). ``meta.csv`` is written last: its presence
  means the video's hand-off is complete.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import logging
import math
import zipfile
from dataclasses import dataclass

import numpy as np

from core import storage, videoio
from core.errors import LanepaintError, StorageError, VideoError, brief
from core.ids import validate_id
from core.layout import Layout
from core.moment import Moment

log = logging.getLogger(__name__)

VP_COLUMNS = ("path", "fps", "mask_id", "start_frame", "end_frame", "caption")
STAT_COLUMNS = ("frames", "width", "height", "coverage", "vp_ready", "note")
MOMENT_COLUMNS = ("t0_s", "start_s")
VP_MIN_FRAMES = 49  # one CogVideoX window at 8 fps
MASK_ID = 1


@dataclass(frozen=True)
class VPClip:
    """One row of meta.csv with the URIs of its files."""

    video_id: str
    video_uri: str
    masks_uri: str
    meta_uri: str
    fps: float
    mask_id: int
    start_frame: int
    end_frame: int
    caption: str
    frames: int
    width: int
    height: int
    coverage: float
    vp_ready: bool
    note: str = ""
    moment: Moment | None = None     # the evaluated moment stage 1 planned (None: not planned)


def write_vp_clip(layout: Layout, run_id: str, video_id: str, frames: np.ndarray, masks: np.ndarray,
                  fps: float, caption: str = "", crf: int = 18, moment: Moment | None = None,
                  source: str | None = None) -> VPClip:
    """Write one clip, its label map and its meta.csv (last). ``masks``: [T,H,W] bool or 0/1/255.
    ``moment``: the evaluated moment; the clip's frames are its window's. ``source``: a local H.264 file whose
    frames are exactly ``frames`` at ``fps``: its video stream is copied instead of encoding ``frames`` again
    (no generation loss, no encode)."""
    frames = np.asarray(frames)
    masks = np.asarray(masks)
    if frames.ndim != 4 or masks.ndim != 3 or frames.shape[:3] != masks.shape:
        raise LanepaintError(f"{video_id}: frames {frames.shape} and masks {masks.shape} do not align")
    if moment is not None and (moment.frames != len(frames) or abs(moment.fps - fps) > 1e-6):
        raise LanepaintError(f"{video_id}: {len(frames)} frames at {fps:g} fps do not match the planned window "
                             f"({moment.frames} at {moment.fps:g} fps)")
    labels = (masks > 0).astype(np.uint8) * MASK_ID
    t, h, w = labels.shape
    coverage = float(labels.mean()) if labels.size else 0.0
    ready = t >= VP_MIN_FRAMES
    note = "" if ready else f"too short for VideoPainter: {t} frames < {VP_MIN_FRAMES} at {fps:g} fps"

    video_uri = layout.vp_raw_video(run_id, video_id)
    with storage.atomic_path(video_uri) as tmp:
        copied = False
        if source is not None:
            try:
                copied = bool(videoio.remux_video(source, tmp))
            except VideoError as exc:    # another codec: encoded like any other clip
                log.debug("%s: not copied (%s)", video_id, exc)
        if not copied:
            videoio.encode(frames, tmp, fps=fps, crf=crf)
    masks_uri = layout.vp_masks_npz(run_id, video_id)
    with storage.atomic_path(masks_uri) as tmp:
        np.savez_compressed(tmp, arr_0=labels)
    row = {
        "path": layout.vp_video_filename(video_id), "fps": f"{fps:g}", "mask_id": MASK_ID,
        "start_frame": 0, "end_frame": t, "caption": caption, "frames": t, "width": w, "height": h,
        "coverage": f"{coverage:.6f}", "vp_ready": int(ready), "note": note,
        "t0_s": "" if moment is None else f"{moment.t0_s:.6f}",
        "start_s": "" if moment is None else f"{moment.start_s:.6f}",
    }
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=[*VP_COLUMNS, *STAT_COLUMNS, *MOMENT_COLUMNS], lineterminator="\n")
    writer.writeheader()
    writer.writerow(row)
    meta_uri = layout.vp_meta_csv(run_id, video_id)
    storage.write_text(meta_uri, buf.getvalue())
    if not ready:
        log.warning("%s: %s", video_id, note)
    return VPClip(video_id, video_uri, masks_uri, meta_uri, float(fps), MASK_ID, 0, t, caption, t, w, h,
                  coverage, ready, note, moment)


def read_vp_clip(layout: Layout, run_id: str, video_id: str) -> VPClip:
    """Read one video's meta.csv and check that its files exist (one-line error otherwise)."""
    meta_uri = layout.vp_meta_csv(run_id, video_id)
    if not storage.exists(meta_uri):
        raise LanepaintError(f"{video_id}: missing meta.csv ({meta_uri})")
    try:
        text = storage.read_text(meta_uri)
        rows = list(csv.DictReader(io.StringIO(text)))
    except (StorageError, csv.Error) as exc:
        raise LanepaintError(f"{video_id}: unreadable meta.csv ({exc})") from None
    missing = [c for c in VP_COLUMNS if rows and c not in rows[0]]
    if not rows or missing:
        why = "no rows" if not rows else f"missing columns {', '.join(missing)}"
        raise LanepaintError(f"{video_id}: bad meta.csv ({why})")
    row = rows[0]
    expected = layout.vp_video_filename(video_id)
    if row.get("path") != expected:     # the hand-off names its own file: never a path from elsewhere
        raise LanepaintError(f"{video_id}: bad meta.csv path {str(row.get('path'))[:80]!r} (expected {expected!r})")
    try:
        clip = VPClip(
            video_id=video_id,
            video_uri=layout.vp_raw_video(run_id, video_id),
            masks_uri=layout.vp_masks_npz(run_id, video_id),
            meta_uri=meta_uri,
            fps=float(row["fps"]),
            mask_id=int(row["mask_id"]),
            start_frame=int(row["start_frame"]),
            end_frame=int(row["end_frame"]),
            caption=row.get("caption") or "",
            frames=int(row.get("frames") or row["end_frame"]),
            width=int(row.get("width") or 0),
            height=int(row.get("height") or 0),
            coverage=float(row.get("coverage") or 0.0),
            vp_ready=bool(int(row.get("vp_ready") or 0)) if row.get("vp_ready") is not None
            else int(row["end_frame"]) - int(row["start_frame"]) >= VP_MIN_FRAMES,
            note=row.get("note") or "",
        )
        if row.get("t0_s"):
            clip = dataclasses.replace(clip, moment=Moment.from_dict(
                {"t0_s": row["t0_s"], "start_s": row.get("start_s"), "fps": clip.fps, "frames": clip.frames}))
    except (KeyError, ValueError, TypeError) as exc:
        raise LanepaintError(f"{video_id}: bad meta.csv value ({exc})") from None
    except LanepaintError as exc:
        raise LanepaintError(f"{video_id}: meta.csv: {exc}") from None
    if not (0 <= clip.start_frame < clip.end_frame) or not math.isfinite(clip.fps) or clip.fps <= 0:
        raise LanepaintError(f"{video_id}: bad meta.csv frame range start_frame={clip.start_frame} "
                             f"end_frame={clip.end_frame} fps={row.get('fps')} (need 0 <= start < end, fps > 0)")
    if not storage.exists(clip.video_uri):
        raise LanepaintError(f"{video_id}: missing video {clip.video_uri}")
    if not storage.exists(clip.masks_uri):
        raise LanepaintError(f"{video_id}: missing masks {clip.masks_uri}")
    return clip


def load_masks(clip: VPClip) -> np.ndarray:
    """Binary inpaint masks ``[T, H, W]`` bool for the clip's frame range (label == mask_id)."""
    try:
        raw = storage.read_bytes(clip.masks_uri)
    except StorageError as exc:
        raise LanepaintError(f"{clip.video_id}: unreadable masks ({exc})") from None
    if not raw.startswith(b"PK"):
        raise LanepaintError(f"{clip.video_id}: masks {clip.masks_uri} is not an .npz file (no zip header)")
    try:
        with np.load(io.BytesIO(raw), allow_pickle=False) as data:
            labels = data["arr_0"]
    except (KeyError, ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise LanepaintError(f"{clip.video_id}: unreadable masks {clip.masks_uri} ({brief(exc, 120)})") from None
    if labels.ndim != 3:
        raise LanepaintError(f"{clip.video_id}: masks must be [T, H, W], got shape {labels.shape}")
    if labels.dtype.kind not in "ub" and not (labels.dtype.kind == "i" and labels.min(initial=0) >= 0):
        raise LanepaintError(f"{clip.video_id}: masks must be integer labels (0 keep, {clip.mask_id} inpaint), "
                             f"got {labels.dtype}")
    if clip.end_frame > len(labels):
        raise LanepaintError(f"{clip.video_id}: meta.csv end_frame {clip.end_frame} is past the {len(labels)} "
                             "mask frames")
    return labels[clip.start_frame:clip.end_frame] == clip.mask_id


def list_vp_videos(layout: Layout, run_id: str) -> list[str]:
    """Video ids that have a folder under the run's VP data root (complete or not), sorted. A folder whose
    name is no valid video id (a stray folder someone made there) is skipped with a warning."""
    out = []
    for uri in storage.ls(layout.vp_data_run(run_id), files=False):
        name = storage.basename(uri)
        try:
            validate_id(name, "video id")
        except LanepaintError as exc:
            log.warning("skipping %s: %s", uri, exc)
            continue
        out.append(name)
    return out

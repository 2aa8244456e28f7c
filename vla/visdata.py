"""``<stem>_vis_data.npz``: everything needed to draw a video's predictions later, without pickle.

Keys (issue 6, item 5), for the edited run:
  pred_xyz [S,64,3], pred_rot [S,64,3,3], gt_future_xyz [64,3], gt_future_rot [64,3,3],
  ego_history_xyz [16,3], ego_history_rot [16,3,3], image_frames [N,T,3,H,W] uint8 (every camera the
  model saw, edited camera swapped in, upstream's layout), camera_indices [N].
Added for the side-by-side comparison and the HUD:
  original_pred_xyz [S',64,3], original_pred_rot, original_frames [T,3,H,W] uint8 (the edited
  camera's dataset frames), edited_camera_index, min_ade, original_min_ade, t0_us, frame_fps,
  clip_id, camera_name, video_id (0-d unicode arrays).
"""

from __future__ import annotations

import io
from dataclasses import dataclass, fields

import numpy as np

from core import storage
from core.errors import LanepaintError, StorageError, brief


@dataclass(frozen=True)
class VisData:
    pred_xyz: np.ndarray
    pred_rot: np.ndarray
    gt_future_xyz: np.ndarray
    gt_future_rot: np.ndarray
    ego_history_xyz: np.ndarray
    ego_history_rot: np.ndarray
    image_frames: np.ndarray
    camera_indices: np.ndarray
    original_pred_xyz: np.ndarray
    original_pred_rot: np.ndarray
    original_frames: np.ndarray
    edited_camera_index: int
    min_ade: float
    original_min_ade: float
    t0_us: int
    frame_fps: float
    clip_id: str
    camera_name: str
    video_id: str

    def edited_frames(self) -> np.ndarray:
        """The edited camera's frames as the model saw them, ``[T, H, W, 3]``."""
        hits = np.flatnonzero(self.camera_indices == self.edited_camera_index)
        if not len(hits):
            raise LanepaintError(f"{self.video_id}: camera index {self.edited_camera_index} not in the frames")
        return np.ascontiguousarray(self.image_frames[hits[0]].transpose(0, 2, 3, 1))

    def original_camera_frames(self) -> np.ndarray:
        return np.ascontiguousarray(self.original_frames.transpose(0, 2, 3, 1))


_SCALARS = {"edited_camera_index": int, "min_ade": float, "original_min_ade": float, "t0_us": int,
            "frame_fps": float, "clip_id": str, "camera_name": str, "video_id": str}


def to_bytes(vis: VisData) -> bytes:
    arrays = {}
    for f in fields(VisData):
        value = getattr(vis, f.name)
        arrays[f.name] = np.asarray(value) if f.name not in _SCALARS else np.array(_SCALARS[f.name](value))
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def save(vis: VisData, uri: str) -> None:
    storage.write_bytes(uri, to_bytes(vis))


def load(uri: str) -> VisData:
    """Read and check a vis-data npz (``allow_pickle=False``); a bad file is a one-line error."""
    name = storage.basename(uri)
    try:
        with np.load(io.BytesIO(storage.read_bytes(uri)), allow_pickle=False) as npz:
            missing = [f.name for f in fields(VisData) if f.name not in npz.files]
            if missing:
                raise LanepaintError(f"{name}: not a vis-data file (missing {', '.join(missing)})")
            values = {}
            for f in fields(VisData):
                array = npz[f.name]
                values[f.name] = _SCALARS[f.name](array.item()) if f.name in _SCALARS else array
    except (StorageError, LanepaintError):
        raise
    except (ValueError, OSError, KeyError) as exc:
        raise LanepaintError(f"{name}: unreadable npz ({brief(exc, 160)})") from None
    vis = VisData(**values)
    if vis.pred_xyz.ndim != 3 or vis.gt_future_xyz.shape != vis.pred_xyz.shape[1:]:
        raise LanepaintError(f"{name}: pred_xyz {vis.pred_xyz.shape} does not match gt {vis.gt_future_xyz.shape}")
    if vis.image_frames.ndim != 5 or vis.image_frames.dtype != np.uint8:
        raise LanepaintError(f"{name}: image_frames must be uint8 [N,T,3,H,W], got {vis.image_frames.shape}")
    return vis

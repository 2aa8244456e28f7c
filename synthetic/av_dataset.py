"""A synthetic PhysicalAI-AV dataset in the Hugging Face cache layout, readable offline by
``physical_ai_av``, plus the front-camera clips given to stage 1.

Each clip is a procedural road scene (``synthetic.scenes``) with an ego motion that matches it: constant
speed ``speed_mps`` along a circular arc whose curvature is the scene's bend (the renderer bends
the road by ``curve * depth**2`` to the right, i.e. curvature ``-2 * curve`` with y to the left),
or a straight line when ``curve`` is 0. The front wide camera is rendered; the other cameras are
views derived from it (centre crop for a tele camera, left/right half for the cross cameras,
mirrored for rear ones, scaled by ``side_scale``): synthetic frames, not exact geometry.

Shaped like the real dataset: each clip is ``clip_seconds`` long (20 s), every camera video covers the
whole clip at the camera frame rate (30 fps) in a 16:9 frame, and the egomotion covers the cameras::

    0 s      0.2 s                                                 0.2 s + clip_seconds   + 0.2 s
    |-- ego --|-- cameras (the whole clip) ----------------------------------|-- ego ---|
              ^ first camera frame

The front camera video is also written to ``inputs_dir`` as ``<clip_id>.camera_front_wide_120fov.mp4``
(the same bytes as the dataset's): what a user gives stage 1. Stage 1 then plans the evaluated moment t0
inside it (``core.moment``): 1.6 s of history before t0, 6.4 s of future after it. Written tree under
``cache_dir``::

    datasets--nvidia--PhysicalAI-Autonomous-Vehicles/refs/main           (40-hex revision, no newline)
    datasets--nvidia--PhysicalAI-Autonomous-Vehicles/snapshots/<rev>/features.csv
        clip_index.parquet, metadata/{feature_presence,data_collection}.parquet,
        camera/<cam>/<cam>.chunk_0000.zip        (<clip>.<cam>.mp4, <clip>.<cam>.timestamps.parquet)
        labels/egomotion/egomotion.chunk_0000.zip (<clip>.egomotion.parquet)

pandas/pyarrow (the ``vla`` extra) are imported inside the writer only.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import math
import os
import uuid
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from core.driving_dataset import (
    CAMERA_FPS,
    CAMERA_INDEX,
    CAMERA_SIZE,
    CLIP_SECONDS,
    DEFAULT_CAMERAS,
    FRONT_CAMERA,
    FUTURE_S,
    HISTORY_S,
    REPO_FOLDER,
    camera_fov_deg,
)
from core.errors import UsageError
from synthetic.scenes import LaneSpec, SceneSpec, iter_scene

log = logging.getLogger(__name__)

EGOMOTION = "egomotion"
ZIP_TIME = (1980, 1, 1, 0, 0, 0)      # the earliest zip date: the same dataset is the same bytes

CAMERA_START_S = 0.2      # cameras start a little after the egomotion
EGO_RATE_HZ = 20.0
START_XY = (120.0, -35.0)  # a world origin away from (0, 0) so the t0-frame transform matters
START_YAW = 0.35


def clip_id_for(seed: int) -> str:
    """A deterministic UUID-shaped clip id, like the dataset's."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"lanepaint-synthetic-clip-{seed}"))


@dataclass(frozen=True)
class EgoArc:
    """Constant speed along a circle (curvature ``kappa``, 1/m, left positive) or a line."""

    speed_mps: float
    kappa: float
    x0: float = START_XY[0]
    y0: float = START_XY[1]
    yaw0: float = START_YAW

    def pose(self, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """World positions ``[N, 3]`` and yaws ``[N]`` at times ``t`` (seconds)."""
        t = np.asarray(t, dtype=np.float64)
        s = self.speed_mps * t
        yaw = self.yaw0 + self.kappa * s
        if abs(self.kappa) < 1e-12:
            dx, dy = s * math.cos(self.yaw0), s * math.sin(self.yaw0)
        else:
            dx = (np.sin(yaw) - math.sin(self.yaw0)) / self.kappa
            dy = (math.cos(self.yaw0) - np.cos(yaw)) / self.kappa
        xyz = np.stack([self.x0 + dx, self.y0 + dy, np.zeros_like(t)], axis=-1)
        return xyz, yaw

    def in_frame_at(self, t0: float, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Positions ``[N, 3]`` and yaws ``[N]`` at ``t`` in the ego frame at ``t0`` (x fwd, y left)."""
        origin, yaw_origin = self.pose(np.array([t0]))
        xyz, yaw = self.pose(t)
        c, s = math.cos(-yaw_origin[0]), math.sin(-yaw_origin[0])
        d = xyz - origin
        local = np.stack([c * d[:, 0] - s * d[:, 1], s * d[:, 0] + c * d[:, 1], d[:, 2]], axis=-1)
        return local, yaw - yaw_origin[0]


SIZE = (CAMERA_SIZE[0] // 6, CAMERA_SIZE[1] // 6)    # 320x180: the real front camera's 16:9, scaled down


@dataclass(frozen=True)
class AVDatasetSpec:
    clips: int = 2
    cameras: tuple[str, ...] = DEFAULT_CAMERAS
    clip_seconds: float = CLIP_SECONDS   # every camera video covers the whole clip
    fps: float = CAMERA_FPS              # camera frame rate in the dataset
    width: int = SIZE[0]                 # front camera size; the others are scaled by side_scale
    height: int = SIZE[1]
    side_scale: float = 0.5
    seed: int = 0
    speed_mps: float = 14.0
    curves: tuple[float, ...] = (0.0006, 0.0)   # cycled over clips: gently curving, straight
    lanes: tuple[str, ...] = ("single white dashed",)   # cycled over clips
    clips_per_chunk: int = 100

    def __post_init__(self) -> None:
        if self.clips < 1:
            raise UsageError("synthetic AV dataset: clips must be >= 1")
        if not (self.clip_seconds > 0 and self.fps > 0):
            raise UsageError("synthetic AV dataset: clip seconds and fps must be > 0")
        unknown = [c for c in self.cameras if c not in CAMERA_INDEX]
        if unknown:
            raise UsageError(f"unknown camera(s) {', '.join(unknown)}: use {', '.join(CAMERA_INDEX)}")
        if FRONT_CAMERA not in self.cameras:
            raise UsageError(f"synthetic AV dataset: cameras must include {FRONT_CAMERA}")
        if not self.curves or not self.lanes:
            raise UsageError("synthetic AV dataset: curves and lanes must not be empty")
        for text in self.lanes:
            LaneSpec.parse(text)

    @property
    def duration_s(self) -> float:
        """Camera clip length."""
        return self.clip_seconds


@dataclass(frozen=True)
class AVClip:
    clip_id: str
    chunk: int
    input_video: str                 # <inputs>/<clip_id>.camera_front_wide_120fov.mp4: the dataset's front video
    camera_timestamps_us: tuple[int, int]   # first, last
    ego: EgoArc
    scene: SceneSpec


@dataclass(frozen=True)
class AVDataset:
    cache_dir: str
    revision: str
    snapshot_dir: str
    clips: tuple[AVClip, ...] = field(default_factory=tuple)

    @property
    def inputs(self) -> list[str]:
        return [c.input_video for c in self.clips]


def _revision(spec: AVDatasetSpec) -> str:
    return hashlib.sha1(repr(spec).encode("utf-8")).hexdigest()


def _even(value: float) -> int:
    return max(32, int(round(value / 2.0)) * 2)


def _camera_frames(front: list[np.ndarray], camera: str, spec: AVDatasetSpec) -> list[np.ndarray]:
    """Another camera's frames, derived from the front render (one render per clip keeps this fast).

    Not a geometrically exact view: a tele camera gets the centre crop its narrower field of view
    would see, cross cameras the left/right half, rear cameras the mirrored frame; then the size
    is scaled by ``side_scale``.
    """
    import cv2

    if camera == FRONT_CAMERA:
        return front
    h, w = front[0].shape[:2]
    if "tele" in camera and "rear" not in camera:
        frac = math.tan(math.radians(camera_fov_deg(camera)) / 2) / math.tan(math.radians(camera_fov_deg(FRONT_CAMERA)) / 2)
        cw, ch = max(8, int(w * frac)), max(8, int(h * frac))
        box = (slice((h - ch) // 2, (h + ch) // 2), slice((w - cw) // 2, (w + cw) // 2))
    elif "cross_left" in camera:
        box = (slice(0, h), slice(0, w // 2))
    elif "cross_right" in camera:
        box = (slice(0, h), slice(w - w // 2, w))
    else:
        box = (slice(0, h), slice(0, w))
    size = (_even(w * spec.side_scale), _even(h * spec.side_scale))
    flip = camera.startswith("camera_rear")
    out = []
    for frame in front:
        view = cv2.resize(np.ascontiguousarray(frame[box]), size, interpolation=cv2.INTER_AREA)
        out.append(np.ascontiguousarray(view[:, ::-1]) if flip else view)
    return out


def _parquet_bytes(frame) -> bytes:
    buf = io.BytesIO()
    frame.to_parquet(buf)
    return buf.getvalue()


def _encode_bytes(frames: Sequence[np.ndarray], fps: float) -> bytes:
    import tempfile

    from core import videoio
    from core.storage import temp_prefix

    fd, tmp = tempfile.mkstemp(prefix=temp_prefix("synth"), suffix=".mp4")
    os.close(fd)
    try:
        videoio.encode(frames, tmp, fps=fps, crf=20, preset="veryfast")
        with open(tmp, "rb") as fh:
            return fh.read()
    finally:
        os.unlink(tmp)


def _egomotion_frame(ego: EgoArc, end_s: float):
    import pandas as pd

    t = np.arange(0.0, end_s + 1e-9, 1.0 / EGO_RATE_HZ)
    xyz, yaw = ego.pose(t)
    v = ego.speed_mps
    a = v * v * ego.kappa   # centripetal, towards the left normal
    return pd.DataFrame({
        "timestamp": np.round(t * 1e6).astype(np.int64),
        "x": xyz[:, 0], "y": xyz[:, 1], "z": xyz[:, 2],
        "qx": np.zeros_like(t), "qy": np.zeros_like(t), "qz": np.sin(yaw / 2), "qw": np.cos(yaw / 2),
        "vx": v * np.cos(yaw), "vy": v * np.sin(yaw), "vz": np.zeros_like(t),
        "ax": -a * np.sin(yaw), "ay": a * np.cos(yaw), "az": np.zeros_like(t),
        "curvature": np.full_like(t, ego.kappa),
    })


def _write(path: str, data: bytes) -> None:
    from core import storage

    storage.write_bytes(path, data)


def write_av_dataset(spec: AVDatasetSpec, cache_dir: str, inputs_dir: str) -> AVDataset:
    """Write the dataset cache tree under ``cache_dir`` and the input clips into ``inputs_dir``."""
    import pandas as pd

    from core import storage

    revision = _revision(spec)
    if spec.clip_seconds < HISTORY_S + FUTURE_S:
        log.warning("clips of %.2f s: stage 3 needs %.1f s around t0 (%.1f s of history, %.1f s of future)",
                    spec.clip_seconds, HISTORY_S + FUTURE_S, HISTORY_S, FUTURE_S)
    repo = os.path.join(cache_dir, REPO_FOLDER)
    snap = os.path.join(repo, "snapshots", revision)
    os.makedirs(inputs_dir, exist_ok=True)
    n_frames = int(round(spec.duration_s * spec.fps))
    cam_start_us = int(round(CAMERA_START_S * 1e6))
    stamps = cam_start_us + np.round(np.arange(n_frames) * 1e6 / spec.fps).astype(np.int64)
    ego_end_s = CAMERA_START_S + spec.duration_s + 0.2

    zips: dict[tuple[str, int], dict[str, bytes]] = {}
    clips: list[AVClip] = []
    for k in range(spec.clips):
        seed = spec.seed + k
        clip_id = clip_id_for(seed)
        chunk = k // spec.clips_per_chunk
        curve = spec.curves[k % len(spec.curves)]
        lanes = LaneSpec.parse(spec.lanes[k % len(spec.lanes)])
        base = SceneSpec(width=spec.width, height=spec.height, fps=spec.fps, seconds=spec.duration_s,
                         lanes=lanes, seed=seed, speed_mps=spec.speed_mps, curve=curve,
                         hfov_deg=camera_fov_deg(FRONT_CAMERA))
        ego = EgoArc(spec.speed_mps, -2.0 * curve)
        input_video = os.path.join(inputs_dir, f"{clip_id}.{FRONT_CAMERA}.mp4")
        front = [frame for frame, _ in iter_scene(base)]
        for camera in spec.cameras:
            video = _encode_bytes(_camera_frames(front, camera, spec), spec.fps)
            if camera == FRONT_CAMERA:
                storage.write_bytes(input_video, video)
            members = zips.setdefault((camera, chunk), {})
            members[f"{clip_id}.{camera}.mp4"] = video
            members[f"{clip_id}.{camera}.timestamps.parquet"] = _parquet_bytes(
                pd.DataFrame({"timestamp": stamps}))
        zips.setdefault((EGOMOTION, chunk), {})[f"{clip_id}.egomotion.parquet"] = _parquet_bytes(
            _egomotion_frame(ego, ego_end_s))
        clips.append(AVClip(clip_id, chunk, input_video, (int(stamps[0]), int(stamps[-1])), ego, base))

    for (feature, chunk), members in zips.items():
        rel = (f"labels/egomotion/egomotion.chunk_{chunk:04d}.zip" if feature == EGOMOTION
               else f"camera/{feature}/{feature}.chunk_{chunk:04d}.zip")
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
            for name, data in sorted(members.items()):
                zf.writestr(zipfile.ZipInfo(name, date_time=ZIP_TIME), data)    # no clock in the bytes
        _write(os.path.join(snap, rel), buf.getvalue())

    rows = [{"feature": cam, "directory": "camera",
             "chunk_path": f"camera/{cam}/{cam}.chunk_{{chunk_id:04d}}.zip",
             "clip_files_in_zip": json.dumps({"video": f"{{clip_id}}.{cam}.mp4",
                                              "frame_timestamps": f"{{clip_id}}.{cam}.timestamps.parquet"})}
            for cam in spec.cameras]
    rows.append({"feature": EGOMOTION, "directory": "labels",
                 "chunk_path": "labels/egomotion/egomotion.chunk_{chunk_id:04d}.zip",
                 "clip_files_in_zip": json.dumps({"egomotion": "{clip_id}.egomotion.parquet"})})
    _write(os.path.join(snap, "features.csv"), pd.DataFrame(rows).to_csv(index=False).encode("utf-8"))
    index = pd.Index([c.clip_id for c in clips], name="clip_id")
    _write(os.path.join(snap, "clip_index.parquet"),
           _parquet_bytes(pd.DataFrame({"chunk": [c.chunk for c in clips]}, index=index)))
    presence = {feature: [True] * len(clips) for feature in (*spec.cameras, EGOMOTION)}
    _write(os.path.join(snap, "metadata", "feature_presence.parquet"),
           _parquet_bytes(pd.DataFrame(presence, index=index)))
    _write(os.path.join(snap, "metadata", "data_collection.parquet"),
           _parquet_bytes(pd.DataFrame({"country": ["synthetic"] * len(clips)}, index=index)))
    _write(os.path.join(repo, "refs", "main"), revision.encode("ascii"))   # last: the tree is complete
    log.info("wrote synthetic PhysicalAI-AV dataset: %d clip(s) x %d camera(s), %.1f s each, revision %s "
             "under %s", len(clips), len(spec.cameras), spec.duration_s, revision, cache_dir)
    return AVDataset(cache_dir, revision, snap, tuple(clips))

"""Procedural front-camera driving clips with exact ground-truth road masks.

A pinhole camera 1.5 m above a flat road looks toward a vanishing point. The road (ego lane plus
oncoming lane) is asphalt with a world-anchored texture; its centre marking is single or double,
white or yellow, solid or dashed; dashes move with the ego speed; the camera shakes mildly and the
light drifts. Everything is deterministic for a given seed. The mask is the road surface (markings
included) nearer than ``max_depth_m``: exactly what stage 1 should find.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field

import numpy as np

from core.errors import UsageError
from core.lanes import LaneSpec

log = logging.getLogger(__name__)

PAINT_RGB = {"white": (236, 236, 230), "yellow": (232, 186, 42)}


@dataclass(frozen=True)
class SceneSpec:
    width: int = 1280
    height: int = 720
    fps: float = 10.0
    seconds: float = 3.0
    lanes: LaneSpec = field(default_factory=LaneSpec)
    seed: int = 0
    speed_mps: float = 14.0
    shake_px: float = 2.0
    lighting: float = 0.08
    curve: float = 0.0006        # lateral offset per metre^2 of depth (gentle bend)
    hfov_deg: float = 100.0
    camera_height_m: float = 1.5
    max_depth_m: float = 90.0

    def __post_init__(self) -> None:
        if self.width < 32 or self.height < 32:
            raise UsageError(f"frame size {self.width}x{self.height} too small (min 32x32)")
        if self.fps <= 0 or self.seconds <= 0:
            raise UsageError("fps and seconds must be > 0")

    @property
    def num_frames(self) -> int:
        return max(1, int(round(self.seconds * self.fps)))


# Lateral layout (metres, +x to the right, ego lane centred at 0).
_CENTRE_LINE_X = -1.85
_ROAD_LEFT_X = -5.6
_ROAD_RIGHT_X = 2.1
_DASH_PERIOD_M, _DASH_LEN_M = 12.0, 3.0


class _Renderer:
    def __init__(self, spec: SceneSpec) -> None:
        self.spec = spec
        rng = np.random.default_rng(spec.seed)
        self.rng = rng
        self.f = (spec.width / 2) / math.tan(math.radians(spec.hfov_deg) / 2)
        self.tex = rng.normal(0.0, 1.0, size=(512, 512)).astype(np.float32)
        self.verge_tex = rng.normal(0.0, 1.0, size=(512, 512)).astype(np.float32)
        self.shake_phase = rng.uniform(0, 2 * math.pi, size=4)
        self.light_phase = rng.uniform(0, 2 * math.pi)
        self.xs = np.arange(spec.width, dtype=np.float32)[None, :]
        self.ys = np.arange(spec.height, dtype=np.float32)[:, None]

    def frame(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        s = self.spec
        t = index / s.fps
        ph = self.shake_phase
        horizon = s.height * 0.46 + s.shake_px * (math.sin(2 * math.pi * 1.3 * t + ph[0])
                                                  + 0.5 * math.sin(2 * math.pi * 3.1 * t + ph[1]))
        cx = s.width / 2 + s.shake_px * 0.7 * math.sin(2 * math.pi * 0.9 * t + ph[2])
        travelled = s.speed_mps * t

        dy = self.ys - horizon                       # [H, 1]
        below = dy > 0.5
        # rows above the horizon get a finite far depth; the `near` test excludes them anyway
        depth = np.where(below, self.f * s.camera_height_m / np.maximum(dy, 0.5), 1e4)  # [H, 1]
        lateral = (self.xs - cx) * depth / self.f                                       # [H, W]
        x_road = lateral - s.curve * depth ** 2
        near = below & (depth < s.max_depth_m)
        road = near & (x_road > _ROAD_LEFT_X) & (x_road < _ROAD_RIGHT_X)

        # sky and far haze
        img = np.empty((s.height, s.width, 3), dtype=np.float32)
        sky_t = np.clip(self.ys / max(horizon, 1.0), 0, 1)
        img[:] = (np.array([110, 160, 220], np.float32) * (1 - sky_t[..., None])
                  + np.array([200, 215, 230], np.float32) * sky_t[..., None])
        # verge (grass) below the horizon, world-anchored texture
        dz = np.where(near, depth + travelled, 0.0)
        lat = np.where(near, lateral + 50.0, 0.0)
        ground = below[..., None]
        vi, vj = (dz * 3.0).astype(np.int64) % 512, (lat * 3.0).astype(np.int64) % 512
        verge = np.array([78, 112, 52], np.float32) + 10.0 * self.verge_tex[vi, vj][..., None]
        img = np.where(ground, verge, img)
        # asphalt: finer grain than the verge
        ai, aj = (dz * 12.0).astype(np.int64) % 512, (lat * 12.0).astype(np.int64) % 512
        asphalt = np.array([92, 93, 96], np.float32) + 6.0 * self.tex[ai, aj][..., None]
        img = np.where(road[..., None], asphalt, img)
        # centre markings
        paint = self._paint_mask(x_road, depth + travelled) & road
        img = np.where(paint[..., None], np.array(PAINT_RGB[s.lanes.color], np.float32), img)
        # far haze toward the horizon
        haze = np.clip(1.0 - depth / (s.max_depth_m * 1.6), 0.0, 1.0)
        haze = np.where(below, haze, 1.0)[..., None]
        img = img * haze + np.array([190, 200, 210], np.float32) * (1 - haze)
        # slow lighting drift
        gain = 1.0 + s.lighting * math.sin(2 * math.pi * t / 3.0 + self.light_phase)
        img = np.clip(img * gain, 0, 255).astype(np.uint8)
        return img, road

    def _paint_mask(self, x_road: np.ndarray, z_world: np.ndarray) -> np.ndarray:
        lanes = self.spec.lanes
        if lanes.count == "single":
            lines = [(_CENTRE_LINE_X, 0.15)]
        else:
            lines = [(_CENTRE_LINE_X - 0.15, 0.12), (_CENTRE_LINE_X + 0.15, 0.12)]
        paint = np.zeros(x_road.shape, dtype=bool)
        for centre, width in lines:
            paint |= np.abs(x_road - centre) < width / 2
        if lanes.pattern == "dashed":
            paint &= np.mod(z_world, _DASH_PERIOD_M) < _DASH_LEN_M
        return paint


def iter_scene(spec: SceneSpec) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield ``(frame [H,W,3] uint8, road mask [H,W] bool)`` for each frame of the clip."""
    renderer = _Renderer(spec)
    for index in range(spec.num_frames):
        yield renderer.frame(index)


def render_scene(spec: SceneSpec) -> tuple[np.ndarray, np.ndarray]:
    """The whole clip: frames ``[T,H,W,3]`` uint8 and masks ``[T,H,W]`` bool."""
    frames, masks = zip(*iter_scene(spec), strict=True)
    return np.stack(frames), np.stack(masks)


@dataclass(frozen=True)
class SynthClip:
    video_path: str
    masks_path: str
    meta_path: str
    num_frames: int
    spec: SceneSpec


def default_name(spec: SceneSpec) -> str:
    lanes = spec.lanes
    return f"synth_{lanes.count}_{lanes.color}_{lanes.pattern}_s{spec.seed}"


def write_clip(spec: SceneSpec, out_dir: str, name: str | None = None, crf: int = 18) -> SynthClip:
    """Write ``<name>.mp4``, ``<name>_masks.npz`` (``arr_0`` uint8 [T,H,W], 1 = road) and
    ``<name>.json`` (the scene parameters) into a local folder, each atomically."""
    from core import storage, videoio
    from core.ids import validate_id

    name = validate_id(name or default_name(spec), "clip name")
    os.makedirs(out_dir, exist_ok=True)
    video_path = os.path.join(out_dir, f"{name}.mp4")
    masks: list[np.ndarray] = []

    def frames() -> Iterator[np.ndarray]:
        for frame, mask in iter_scene(spec):
            masks.append(mask)
            yield frame

    with storage.atomic_path(video_path) as tmp:
        videoio.encode(frames(), tmp, fps=spec.fps, crf=crf)
    masks_path = os.path.join(out_dir, f"{name}_masks.npz")
    with storage.atomic_path(masks_path) as tmp:
        np.savez_compressed(tmp, arr_0=np.stack(masks).astype(np.uint8))
    meta_path = os.path.join(out_dir, f"{name}.json")
    meta = asdict(spec) | {"num_frames": spec.num_frames, "lanes_text": spec.lanes.words()}
    storage.write_text(meta_path, json.dumps(meta, indent=2))
    log.info("wrote %s (%d frames, %dx%d, %g fps, lanes: %s)", video_path, spec.num_frames,
             spec.width, spec.height, spec.fps, spec.lanes.words())
    return SynthClip(video_path, masks_path, meta_path, spec.num_frames, spec)

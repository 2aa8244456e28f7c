"""``lanepaint synth``: write synthetic driving clips and their ground-truth road masks, or a synthetic
PhysicalAI-AV dataset with its front-camera clips."""

from __future__ import annotations

import argparse
import math
import os
from dataclasses import dataclass
from typing import ClassVar

from core.config import Settings, check_seed, setting
from core.config_cli import add_settings_arguments, config_from_args
from core.driving_dataset import CAMERA_FPS, CLIP_SECONDS, DEFAULT_CAMERAS
from core.errors import UsageError
from core.lanes import LaneSpec
from synthetic.av_dataset import SIZE as AV_SIZE

MAX_SIZE = (3840, 2160)
MAX_FRAMES = 36_000          # 20 minutes at 30 fps
CLIP_DEFAULTS = {"seconds": 3.0, "fps": 10.0, "width": 1280, "height": 720}
# shaped like a PhysicalAI-AV clip (synthetic.av_dataset), at a small 16:9 size
AV_DEFAULTS = {"seconds": CLIP_SECONDS, "fps": CAMERA_FPS, "width": AV_SIZE[0], "height": AV_SIZE[1]}


@dataclass(frozen=True)
class SynthConfig(Settings):
    SECTION: ClassVar[str] = "synth"

    out: str = setting("", help="output folder (local) for the clips", env=None, default_text="required")
    lanes: str = setting("single white solid", help="lane markings: count (single|double), colour "
                         "(white|yellow), pattern (solid|dashed)")
    seconds: float | None = setting(None, help="clip length in seconds", default_text="3; 20 with --av-dataset")
    fps: float | None = setting(None, help="frame rate of the written clip",
                                default_text="10; 30 with --av-dataset (the dataset's camera rate)")
    width: int | None = setting(None, help="frame width in pixels", default_text="1280; 320 with --av-dataset")
    height: int | None = setting(None, help="frame height in pixels", default_text="720; 180 with --av-dataset")
    seed: int = setting(0, help="scene seed (deterministic output)", check=check_seed)
    clips: int = setting(1, help="number of clips (seeds seed, seed+1, ...)")
    name: str | None = setting(None, help="file name stem (one clip only)",
                               default_text="synth_<count>_<colour>_<pattern>_s<seed>", env=None)
    speed: float = setting(14.0, help="ego speed in m/s (moves the dashes)")
    shake: float = setting(2.0, help="camera shake amplitude in pixels")
    av_dataset: str | None = setting(
        None, help="also write a synthetic PhysicalAI-AV dataset (Hugging Face cache layout) in this folder; --out "
        "then receives each clip's front-camera video <clip_id>.camera_front_wide_120fov.mp4, the dataset's own "
        "(it covers the whole clip)", env=None, metavar="DIR")
    cameras: tuple[str, ...] = setting(DEFAULT_CAMERAS, help="with --av-dataset: comma-separated cameras; the front "
                                       "wide camera is required")

    def validate(self) -> None:
        defaults = (AV_DEFAULTS if self.av_dataset else CLIP_DEFAULTS)
        for name, value in defaults.items():
            if getattr(self, name) is None:
                object.__setattr__(self, name, value)
        if not self.out:
            raise UsageError("--out is required (a local folder)")
        if os.path.exists(self.out) and not os.path.isdir(self.out):
            raise UsageError(f"--out {self.out}: is a file, not a folder")
        if self.clips < 1:
            raise UsageError("--clips must be >= 1")
        if self.name and self.clips > 1:
            raise UsageError("--name names one clip; drop it or use --clips 1")
        if self.name and self.av_dataset:
            raise UsageError("--name does not apply with --av-dataset (clips are named <clip_id>.<camera>)")
        for flag, value in (("--seconds", self.seconds), ("--fps", self.fps), ("--speed", self.speed)):
            if not math.isfinite(value) or value <= 0:
                raise UsageError(f"{flag} {value}: must be a positive number")
        if not (32 <= self.width <= MAX_SIZE[0] and 32 <= self.height <= MAX_SIZE[1]):
            raise UsageError(f"--width/--height {self.width}x{self.height}: from 32x32 to {MAX_SIZE[0]}x{MAX_SIZE[1]}")
        if self.seconds * self.fps > MAX_FRAMES or self.fps > 120:
            raise UsageError(f"--seconds {self.seconds:g} at --fps {self.fps:g}: at most {MAX_FRAMES} frames at up to "
                             "120 fps")
        LaneSpec.parse(self.lanes)


EXAMPLES = """\
examples:
  lanepaint synth --out clips --lanes "double yellow solid" --seconds 3 --fps 10
  lanepaint synth --out inputs --av-dataset pai_cache --clips 2      # 20 s clips at 30 fps, 320x180
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_settings_arguments(parser, SynthConfig)


def run(args: argparse.Namespace) -> int:
    cfg = config_from_args(SynthConfig, args)
    if cfg.av_dataset:
        return _write_av_dataset(cfg)
    from synthetic.scenes import SceneSpec, default_name, write_clip

    lanes = LaneSpec.parse(cfg.lanes)
    for k in range(cfg.clips):
        spec = SceneSpec(width=cfg.width, height=cfg.height, fps=cfg.fps, seconds=cfg.seconds,
                         lanes=lanes, seed=cfg.seed + k, speed_mps=cfg.speed, shake_px=cfg.shake)
        clip = write_clip(spec, cfg.out, cfg.name or default_name(spec))
        print(f"{clip.video_path}\t{clip.num_frames} frames\tmasks: {os.path.basename(clip.masks_path)}")
    return 0


def _write_av_dataset(cfg: SynthConfig) -> int:
    from synthetic.av_dataset import AVDatasetSpec, write_av_dataset

    spec = AVDatasetSpec(clips=cfg.clips, cameras=cfg.cameras, clip_seconds=cfg.seconds, fps=cfg.fps,
                         width=cfg.width, height=cfg.height, seed=cfg.seed, speed_mps=cfg.speed,
                         lanes=(cfg.lanes,))
    dataset = write_av_dataset(spec, cfg.av_dataset, cfg.out)
    for clip in dataset.clips:
        print(f"{clip.input_video}\tclip {clip.clip_id}")
    print(f"dataset: {dataset.cache_dir} (revision {dataset.revision}); "
          f"use: lanepaint evaluate --dataset-dir {dataset.cache_dir} ...")
    return 0

"""``lanepaint synth``: write synthetic driving clips and their ground-truth road masks."""

from __future__ import annotations

import argparse
import logging
import os

from synthetic.scenes import LaneSpec, SceneSpec, default_name, write_clip

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="output folder (local)")
    parser.add_argument("--lanes", default="single white solid",
                        help='lane markings: words count (single|double), colour (white|yellow), '
                             'pattern (solid|dashed), e.g. "double yellow solid"')
    parser.add_argument("--seconds", type=float, default=3.0, help="clip length in seconds")
    parser.add_argument("--fps", type=float, default=10.0, help="frame rate of the written clip")
    parser.add_argument("--width", type=int, default=1280, help="frame width in pixels")
    parser.add_argument("--height", type=int, default=720, help="frame height in pixels")
    parser.add_argument("--seed", type=int, default=0, help="scene seed (deterministic output)")
    parser.add_argument("--clips", type=int, default=1, help="number of clips (seeds seed, seed+1, ...)")
    parser.add_argument("--name", default=None,
                        help="file name stem (one clip only); default synth_<count>_<colour>_<pattern>_s<seed>")
    parser.add_argument("--speed", type=float, default=14.0, help="ego speed in m/s (moves the dashes)")
    parser.add_argument("--shake", type=float, default=2.0, help="camera shake amplitude in pixels")
    parser.add_argument("--av-dataset", default=None, metavar="DIR",
                        help="also write a synthetic PhysicalAI-AV dataset (Hugging Face cache layout) in DIR; "
                             "--out then receives the front-camera clips <clip_id>.camera_front_wide_120fov.mp4 "
                             "(the first --seconds of each dataset clip, which runs 6.9 s longer); use "
                             "--seconds >= 6.125 so stage 2 gets its 49 frames at 8 fps")
    parser.add_argument("--cameras", default=None,
                        help="with --av-dataset: comma-separated cameras (default cross left, front wide, "
                             "cross right, front tele); the front wide camera is required")


def run(args: argparse.Namespace) -> int:
    from core.errors import UsageError

    if args.clips < 1:
        raise UsageError("--clips must be >= 1")
    if args.name and args.clips > 1:
        raise UsageError("--name names one clip; drop it or use --clips 1")
    lanes = LaneSpec.parse(args.lanes)
    if args.av_dataset:
        return _write_av_dataset(args)
    if args.cameras:
        raise UsageError("--cameras needs --av-dataset")
    for k in range(args.clips):
        spec = SceneSpec(width=args.width, height=args.height, fps=args.fps, seconds=args.seconds,
                         lanes=lanes, seed=args.seed + k, speed_mps=args.speed, shake_px=args.shake)
        clip = write_clip(spec, args.out, args.name or default_name(spec))
        print(f"{clip.video_path}\t{clip.num_frames} frames\tmasks: {os.path.basename(clip.masks_path)}")
    return 0


def _write_av_dataset(args: argparse.Namespace) -> int:
    from core.errors import UsageError
    from synthetic.av_dataset import DEFAULT_CAMERAS, AVDatasetSpec, write_av_dataset

    if args.name:
        raise UsageError("--name does not apply with --av-dataset (clips are named <clip_id>.<camera>)")
    cameras = tuple(c.strip() for c in args.cameras.split(",") if c.strip()) if args.cameras else DEFAULT_CAMERAS
    spec = AVDatasetSpec(clips=args.clips, cameras=cameras, input_seconds=args.seconds, fps=args.fps,
                         width=args.width, height=args.height, seed=args.seed, speed_mps=args.speed,
                         lanes=(args.lanes,))
    dataset = write_av_dataset(spec, args.av_dataset, args.out)
    for clip in dataset.clips:
        print(f"{clip.input_video}\tclip {clip.clip_id}")
    print(f"dataset: {dataset.cache_dir} (revision {dataset.revision}); "
          f"use: lanepaint evaluate --dataset-dir {dataset.cache_dir} ...")
    return 0

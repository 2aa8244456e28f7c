"""``lanepaint synth``: write synthetic driving clips and their ground-truth road masks."""

from __future__ import annotations

import argparse
import logging
import os

from core.synth import LaneSpec, SceneSpec, default_name, write_clip

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


def run(args: argparse.Namespace) -> int:
    from core.errors import UsageError

    if args.clips < 1:
        raise UsageError("--clips must be >= 1")
    if args.name and args.clips > 1:
        raise UsageError("--name names one clip; drop it or use --clips 1")
    lanes = LaneSpec.parse(args.lanes)
    for k in range(args.clips):
        spec = SceneSpec(width=args.width, height=args.height, fps=args.fps, seconds=args.seconds,
                         lanes=lanes, seed=args.seed + k, speed_mps=args.speed, shake_px=args.shake)
        clip = write_clip(spec, args.out, args.name or default_name(spec))
        print(f"{clip.video_path}\t{clip.num_frames} frames\tmasks: {os.path.basename(clip.masks_path)}")
    return 0

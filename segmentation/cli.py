"""``lanepaint segment``: SAM2 road masks for driving videos, written in VideoPainter's input format."""

from __future__ import annotations

import argparse
import dataclasses
import logging

from core.stage_cli import add_common_arguments

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--input", dest="inputs", nargs="+", action="extend", required=True, metavar="URI",
                        help="videos: local paths, gs:// URIs or chunks://bucket/prefix?start=..&end=.. (repeatable)")
    add_common_arguments(parser, run_id_help="run id of this segmentation run (stage 2 reads it as --data-run-id)")
    parser.add_argument("--max-frames", type=int, default=None, help="frames per video after resampling (default 150, or SAM2_MAX_FRAMES)")
    parser.add_argument("--fps", type=float, default=None, help="resampling frame rate (default 8, VideoPainter's rate; or SAM2_FPS)")
    parser.add_argument("--model", choices=["tiny", "small", "base_plus", "large"], default=None,
                        help="SAM2.1 size for the full profile (default large, or SAM2_MODEL)")
    parser.add_argument("--checkpoint", default=None,
                        help="local SAM2 checkpoint (.pt path or URI) instead of the hub download (SAM2_CHECKPOINT)")
    parser.add_argument("--model-config", default=None,
                        help="packaged sam2 config for --checkpoint, e.g. configs/sam2.1/sam2.1_hiera_l.yaml "
                             "(default: the one of --model; or SAM2_CONFIG)")
    parser.add_argument("--prompt", choices=["points6", "points9", "box"], default=None,
                        help="prompt strategy: 6 or 9 positive points on the lower frame, or a box (default points6)")
    parser.add_argument("--reprompt-every", type=int, default=None,
                        help="prompt again every N frames to stop drift (default 0: first frame only)")
    parser.add_argument("--direction", choices=["forward", "backward"], default=None,
                        help="propagate from the first frame forward, or from the last frame backward")
    parser.add_argument("--window", type=int, default=None,
                        help="frames per SAM2 state; longer clips run in windows seeded by the previous mask "
                             "(default 160; 0: no limit)")
    parser.add_argument("--device", default=None, help="auto, cpu, cuda or cuda:N (default auto; SAM2_DEVICE)")
    parser.add_argument("--vos-optimized", action="store_true", default=None,
                        help="torch.compile SAM2 (GPU only; slow first video, faster after)")
    parser.add_argument("--offload-video-to-cpu", action=argparse.BooleanOptionalAction, default=None,
                        help="keep the resized frames in CPU memory (default on)")
    parser.add_argument("--offload-state-to-cpu", action=argparse.BooleanOptionalAction, default=None,
                        help="keep SAM2's memory bank in CPU memory (default off; saves GPU memory, a bit slower)")
    parser.add_argument("--workers", type=int, default=None, help="threads for resizing, cleanup and writing (default: CPUs, max 8)")
    parser.add_argument("--tiny-seed", type=int, default=None, help="seed of the tiny profile's random weights (default 4)")


def run(args: argparse.Namespace) -> int:
    from core.config import build_config
    from core.ids import new_run_id
    from core.stage_cli import report
    from segmentation.config import SECTION, SegmentConfig, edit_command

    fields = {f.name for f in dataclasses.fields(SegmentConfig)}
    values = {k: v for k, v in vars(args).items() if k in fields}
    values["inputs"] = tuple(args.inputs)
    cfg = build_config(SegmentConfig, SECTION, values)
    if cfg.run_id is None:
        cfg = dataclasses.replace(cfg, run_id=new_run_id())
    print(f"segment run id: {cfg.run_id} ({len(cfg.inputs)} input(s), profile {cfg.profile}) -> {cfg.output_root}")
    print(f"stage 2 will run with: {edit_command(cfg.run_id, cfg.output_root, cfg.profile)}", flush=True)

    from segmentation.stage import run_segment

    result = run_segment(cfg)
    print(f"segment run id: {result.run_id}")
    return report(result)

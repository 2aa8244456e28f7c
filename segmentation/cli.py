"""``lanepaint segment``: SAM2 road masks for driving videos, written in VideoPainter's input format."""

from __future__ import annotations

import argparse
import dataclasses

from core.config_cli import add_settings_arguments, config_from_args
from segmentation.config import SegmentConfig

EXAMPLES = """\
examples:
  lanepaint segment --input clips/*.mp4 --run-id seg_001 --output-root outputs
  lanepaint segment --input "chunks://bucket/videos?start=0&end=3&per_chunk=2" --run-id seg_002 \\
      --output-root gs://bucket/lanepaint --model base_plus --max-frames 49
  lanepaint segment --input clip.mp4 --profile tiny --config run.yaml   # settings from the file's segment: section
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_settings_arguments(parser, SegmentConfig)


def run(args: argparse.Namespace) -> int:
    from core.ids import new_run_id
    from core.stage_cli import report
    from segmentation.config import edit_command

    cfg = config_from_args(SegmentConfig, args)
    if cfg.run_id is None:
        cfg = dataclasses.replace(cfg, run_id=new_run_id())
    print(f"segment run id: {cfg.run_id} ({len(cfg.inputs)} input(s), profile {cfg.profile}) -> {cfg.output_root}")
    print(f"stage 2 will run with: {edit_command(cfg.run_id, cfg.output_root, cfg.profile)}", flush=True)

    from segmentation.stage import run_segment

    result = run_segment(cfg)
    print(f"segment run id: {result.run_id}")
    return report(result)

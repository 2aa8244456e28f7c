"""``lanepaint edit``: repaint the lanes of a segmentation run's clips (FluxFill + VideoPainter).

Imports no torch at module top; the stage is imported inside ``run``.
"""

from __future__ import annotations

import argparse

from core.config_cli import add_settings_arguments, config_from_args
from generation.config import EditConfig

EXAMPLES = """\
examples:
  lanepaint edit --data-run-id seg_001 --run-id edit_001 --output-root outputs
  lanepaint edit --data-run-id seg_001 --instructions "lane double yellow solid||lane single white dashed" \\
      --img-inpainting-lora-path gs://bucket/loras/fluxfill_lanes_20261101_120000 --img-inpainting-lora-scale 1.0
  lanepaint edit --data-run-id seg_001 --profile tiny --no-judge --no-metrics   # quick CPU check
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_settings_arguments(parser, EditConfig)


def run(args: argparse.Namespace) -> int:
    from core.stage_cli import report
    from generation.stage import run_edit

    return report(run_edit(config_from_args(EditConfig, args)))

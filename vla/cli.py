"""``lanepaint evaluate``: Alpamayo-R1 (or the constant-velocity baseline) on original vs edited clips."""

from __future__ import annotations

import argparse

from core.config_cli import add_settings_arguments, config_from_args
from vla.config import EvaluateConfig

EXAMPLES = """\
examples:
  lanepaint evaluate --video-data outputs/vp/edit_001 --run-id eval_001 --dataset-dir /cache/huggingface/hub
  lanepaint evaluate --video-data gs://bucket/lanepaint/vp/edit_001/lane_double_yellow_solid \\
      --output-root gs://bucket/lanepaint --num-traj-samples 6
  lanepaint evaluate --video-data outputs/vp/demo --profile tiny --model constant-velocity --no-render
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_settings_arguments(parser, EvaluateConfig)


def run(args: argparse.Namespace) -> int:
    from core.ids import new_run_id
    from core.stage_cli import report
    from vla.stage import run_evaluate

    cfg = config_from_args(EvaluateConfig, args)
    if not cfg.run_id:
        from dataclasses import replace

        cfg = replace(cfg, run_id=new_run_id())
    result = run_evaluate(cfg)
    code = report(result)
    print(f"report: {result.get('report_uri')}")
    return code

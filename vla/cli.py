"""``lanepaint evaluate``: Alpamayo-R1 (or the constant-velocity baseline) on original vs edited clips."""

from __future__ import annotations

import argparse

from core.stage_cli import add_common_arguments, report


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--video-data", default=None,
                        help="stage 2 output: <root>/vp/<run_id>, one instruction folder under it, or one "
                             "*_vp_edit_sample0.mp4 (local path, gs:// or memory://)")
    add_common_arguments(parser, run_id_help="run id of this evaluation (outputs go to alpamayo/<run_id>)")
    parser.add_argument("--model", choices=["auto", "alpamayo", "constant-velocity"], default=None,
                        help="trajectory model; auto = alpamayo for --profile full, constant-velocity for tiny "
                             "(default auto, or ALPAMAYO_MODEL)")
    parser.add_argument("--model-path", default=None,
                        help="Alpamayo-R1 checkpoint: hub id or local folder (default nvidia/Alpamayo-R1-10B)")
    parser.add_argument("--num-traj-samples", type=int, default=None,
                        help="trajectory samples per inference; minADE takes the best (default 1)")
    parser.add_argument("--video-name", default=None,
                        help="auto = every edited clip; else comma-separated video ids (<clip>.<camera>), "
                             "clip ids or file names")
    parser.add_argument("--dataset-dir", default=None,
                        help="Hugging Face cache folder holding the PhysicalAI-AV dataset "
                             "(default: the Hugging Face hub cache, or PAI_DATASET_DIR)")
    parser.add_argument("--dataset-revision", default=None,
                        help="dataset commit (40 hex); default: the cache's refs/main")
    parser.add_argument("--cameras", default=None,
                        help="comma-separated cameras the model sees (the edited one is always added); default "
                             "cross left, front wide, cross right, front tele")
    parser.add_argument("--t0-offset", type=float, default=None, dest="t0_offset_s",
                        help="seconds between the dataset camera's first frame and the edited clip's first frame")
    parser.add_argument("--no-render", action="store_const", const=False, default=None, dest="render",
                        help="skip the overlay and comparison videos")
    parser.add_argument("--device", default=None, help="auto, cpu, cuda or cuda:N (Alpamayo only)")
    parser.add_argument("--seed", type=int, default=None, help="sampling and bootstrap seed (default 42)")


def run(args: argparse.Namespace) -> int:
    from core.config import build_config
    from core.ids import new_run_id
    from vla.config import EvaluateConfig
    from vla.stage import run_evaluate

    fields = ("video_data", "run_id", "output_root", "profile", "overwrite", "cache_dir", "model", "model_path",
              "num_traj_samples", "video_name", "dataset_dir", "dataset_revision", "cameras", "t0_offset_s",
              "render", "device", "seed")
    values = {name: getattr(args, name) for name in fields}
    cfg = build_config(EvaluateConfig, "evaluate", values)
    if not cfg.run_id:
        from dataclasses import replace

        cfg = replace(cfg, run_id=new_run_id())
    result = run_evaluate(cfg)
    code = report(result)
    print(f"report: {result.get('report_uri')}")
    return code

"""``lanepaint render``: overlay and comparison videos from one ``*_vis_data.npz`` or every one under a folder."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", help="a *_vis_data.npz, or a folder searched recursively (local, gs://, memory://)")
    parser.add_argument("--out", default=None, dest="out_dir",
                        help="folder for the videos (default: next to each npz)")
    parser.add_argument("--fps", type=float, default=None, help="frame rate of the videos (default 10)")
    parser.add_argument("--overwrite", action="store_true", default=None, help="redo videos that exist")


def run(args: argparse.Namespace) -> int:
    from core.config import build_config
    from vla.config import RenderConfig
    from vla.render_files import render_all

    cfg = build_config(RenderConfig, "render", {"source": args.source, "out_dir": args.out_dir,
                                                "fps": args.fps, "overwrite": args.overwrite})
    summary = render_all(cfg)
    for line in summary.lines():
        print(line)
    return summary.exit_code

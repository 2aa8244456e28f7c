"""``lanepaint dataset generate|filter``: build a captioned lane inpainting dataset, or curate one.

No torch at import: the chosen subcommand imports its module inside ``run``.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
from typing import Any

log = logging.getLogger(__name__)


def _generate_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--source", dest="sources", nargs="+", action="extend", required=True, metavar="URI",
                        help="videos: chunks://bucket/prefix?start=..&end=.., .mp4 URIs, folders, or .txt lists "
                             "(one URI per line); repeatable, taken in order")
    parser.add_argument("--output", required=True, help="dataset folder URI (local path or gs://...)")
    parser.add_argument("--frames", default=None,
                        help="0-based frame numbers to take from each video, read by seeking "
                             "(default 1,100,200,300,400,500; or DATASET_FRAMES)")
    parser.add_argument("--start-index", type=int, default=None, help="skip this many videos first (default 0)")
    parser.add_argument("--limit", type=int, default=None, help="at most this many videos (listing stops there)")
    parser.add_argument("--profile", choices=["full", "tiny"], default=None,
                        help="full: SAM2.1 + Qwen2.5-VL checkpoints on GPU; tiny: random-weight models on CPU "
                             "(default full, or LANEPAINT_PROFILE)")
    parser.add_argument("--sam2-model", choices=["tiny", "small", "base_plus", "large"], default=None,
                        help="SAM2.1 size (default large)")
    parser.add_argument("--sam2-checkpoint", default=None, help="local SAM2 checkpoint (path or URI) instead of the hub")
    parser.add_argument("--sam2-config", default=None, help="packaged sam2 config for --sam2-checkpoint")
    parser.add_argument("--prompt", choices=["points6", "points9", "box"], default=None,
                        help="SAM2 prompt strategy, as in stage 1 (default points6)")
    parser.add_argument("--tiny-seed", type=int, default=None, help="seed of the tiny profile's SAM2 weights (default 4)")
    parser.add_argument("--min-coverage", type=float, default=None,
                        help="drop frames whose road mask covers less than this fraction (default 0.01)")
    parser.add_argument("--vlm-model", default=None,
                        help="Qwen2.5-VL captioner: 7B, 72B, a hub id or a local folder (default 7B; or DATASET_VLM_MODEL)")
    parser.add_argument("--caption-temperature", type=float, default=None, help="captioner temperature (default 0: greedy)")
    parser.add_argument("--caption-max-new-tokens", type=int, default=None, help="captioner answer length (default 64)")
    parser.add_argument("--caption-max-side", type=int, default=None,
                        help="longer side of the frames the captioner sees, in pixels (default 1024; 0: full size)")
    parser.add_argument("--batch-size", type=int, default=None, help="frames per SAM2 / Qwen batch (default 8)")
    parser.add_argument("--devices", default=None,
                        help="auto (every GPU; CPU for tiny), cpu, cuda or cuda:0,cuda:1: one worker per device "
                             "(default auto; or DATASET_DEVICES)")
    parser.add_argument("--io-workers", type=int, default=None, help="threads writing sample files (default 8)")
    parser.add_argument("--overwrite", action="store_true", default=None,
                        help="redo videos and samples already in the dataset (default: skip them)")
    parser.add_argument("--cache-dir", default=None,
                        help="local cache for downloaded videos and checkpoints (default ~/.cache/lanepaint)")


def _filter_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--input", required=True, help="dataset folder URI (holding train.csv)")
    parser.add_argument("--output", default=None,
                        help="new dataset folder (default <input>__<count>_<color>_<pattern>[_clearroad])")
    parser.add_argument("--count", choices=["single", "double", "unknown", "any"], default=None, help="default any")
    parser.add_argument("--color", choices=["white", "yellow", "mixed", "unknown", "any"], default=None, help="default any")
    parser.add_argument("--pattern", choices=["solid", "dashed", "mixed", "unknown", "any"], default=None,
                        help="default any")
    parser.add_argument("--require-clear-road", action="store_true", default=None,
                        help="drop rows with any unknown attribute")
    parser.add_argument("--copy-mode", choices=["copy", "hardlink", "symlink"], default=None,
                        help="how files reach the output (default copy; remote storage always copies)")
    parser.add_argument("--sort", choices=["prompt", "image"], default=None, help="output order (default: input order)")
    parser.add_argument("--limit", type=int, default=None, help="at most this many valid rows")
    parser.add_argument("--workers", type=int, default=None, help="threads reading and writing files (default 8)")
    parser.add_argument("--overwrite", action="store_true", default=None, help="replace an existing output dataset")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="dataset_command", metavar="<subcommand>", required=True)
    gen = sub.add_parser("generate", help="videos -> images, SAM2 road masks and VLM lane captions (train.csv)",
                         formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    _generate_arguments(gen)
    flt = sub.add_parser("filter", help="a new dataset with the rows matching lane attributes, validated",
                         formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    _filter_arguments(flt)


def _values(args: argparse.Namespace, cls: type) -> dict[str, Any]:
    fields = {f.name for f in dataclasses.fields(cls)}
    return {k: v for k, v in vars(args).items() if k in fields}


def run(args: argparse.Namespace) -> int:
    from core.config import build_config
    from training.dataset_config import SECTION, DatasetFilterConfig, DatasetGenerateConfig

    if args.dataset_command == "filter":
        from training.dataset_filter import filter_dataset

        result = filter_dataset(build_config(DatasetFilterConfig, SECTION, _values(args, DatasetFilterConfig)))
        for line in result.lines():
            print(line)
        return 0 if result.output_rows else 1

    from core.stage_cli import report

    values = _values(args, DatasetGenerateConfig)
    values["sources"] = tuple(args.sources)
    cfg = build_config(DatasetGenerateConfig, SECTION, values)
    print(f"dataset generate: {len(cfg.sources)} source(s), frames {','.join(map(str, cfg.frame_numbers))}, "
          f"profile {cfg.profile} -> {cfg.output}", flush=True)
    from training.dataset_generate import generate_dataset

    result = generate_dataset(cfg)
    print(f"samples: {result.get('samples')} in {result.get('train_csv')}")
    return report(result)

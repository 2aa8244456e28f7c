"""``lanepaint dataset generate``: videos -> images, SAM2 road masks and VLM lane captions (``train.csv``).

No torch at import: the generator is imported inside ``run``.
"""

from __future__ import annotations

import argparse

from core.config_cli import add_settings_arguments, config_from_args
from training.dataset_config import DatasetGenerateConfig

EXAMPLES = """\
examples:
  lanepaint dataset generate --source "chunks://bucket/videos?start=0&end=10" --output gs://bucket/datasets/lanes_v1
  lanepaint dataset generate --source clips/ list.txt --output datasets/lanes --frames 0,50,100 --devices cuda:0,cuda:1
  lanepaint dataset generate --source clip.mp4 --output /tmp/lanes --profile tiny --limit 1
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_settings_arguments(parser, DatasetGenerateConfig)


def run(args: argparse.Namespace) -> int:
    from core.stage_cli import report
    from training.dataset_generate import generate_dataset

    cfg = config_from_args(DatasetGenerateConfig, args)
    print(f"dataset generate: {len(cfg.sources)} source(s), frames {','.join(map(str, cfg.frame_numbers))}, "
          f"profile {cfg.profile} -> {cfg.output}", flush=True)
    result = generate_dataset(cfg)
    print(f"samples: {result.get('samples')} in {result.get('train_csv')}")
    return report(result)

"""``lanepaint dataset filter``: a new lane dataset with the rows matching lane attributes, validated."""

from __future__ import annotations

import argparse

from core.config_cli import add_settings_arguments, config_from_args
from training.dataset_config import DatasetFilterConfig

EXAMPLES = """\
examples:
  lanepaint dataset filter --input gs://bucket/datasets/lanes_v1 --count double --color yellow --require-clear-road
  lanepaint dataset filter --input datasets/lanes --pattern dashed --output datasets/dashed --copy-mode hardlink
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_settings_arguments(parser, DatasetFilterConfig)


def run(args: argparse.Namespace) -> int:
    from training.dataset_filter import filter_dataset

    result = filter_dataset(config_from_args(DatasetFilterConfig, args))
    for line in result.lines():
        print(line)
    return 0 if result.output_rows else 1

"""``lanepaint fetch-dataset``: download the PhysicalAI-AV files some clips need (``vla.dataset_fetch``)."""

from __future__ import annotations

import argparse

from core.config_cli import add_settings_arguments, config_from_args
from vla.config import FetchDatasetConfig

EXAMPLES = """\
examples:
  export HF_TOKEN=hf_...        # a read token of an account that accepted the dataset's terms
  lanepaint fetch-dataset --clip 25cd4769-5dcf-4b53-a351-bf2c5deb6124 --dataset-dir /data/pai --dry-run
  lanepaint fetch-dataset --clips-from clips.txt --dataset-dir /data/pai      # rerun to resume a cut download
  lanepaint fetch-dataset --clip 25cd4769-5dcf-4b53-a351-bf2c5deb6124.camera_front_wide_120fov \\
      --cameras camera_front_wide_120fov --revision <40-hex commit>
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_settings_arguments(parser, FetchDatasetConfig)


def run(args: argparse.Namespace) -> int:
    from vla.dataset_fetch import fetch_dataset

    result = fetch_dataset(config_from_args(FetchDatasetConfig, args))
    for line in result.lines():
        print(line)
    return result.exit_code

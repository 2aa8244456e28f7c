"""``lanepaint fetch-models``: the checkpoints of a full run into a hub cache, pinned (``orchestrator.fetch_models``)."""

from __future__ import annotations

import argparse

from core.config_cli import add_settings_arguments, config_from_args
from orchestrator.fetch_models import FetchModelsConfig

EXAMPLES = """\
examples:
  export HF_TOKEN=hf_...              # a read token of an account that accepted FLUX.1-Fill-dev's terms
  lanepaint fetch-models --dry-run                          # every checkpoint of stages 1-3, commits and sizes
  lanepaint fetch-models --cache-dir /models/hub            # download; pins written to its lock file
  lanepaint fetch-models --stages 2 --config run.yaml --cache-dir /models/hub    # what run.yaml's edit needs
  lanepaint fetch-models --revision THUDM/CogVideoX-5b-I2V=<commit>              # pin one checkpoint
then run the stages with HF_HOME=/models (the cache's parent) and HF_HUB_OFFLINE=1.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_settings_arguments(parser, FetchModelsConfig)


def run(args: argparse.Namespace) -> int:
    from orchestrator.fetch_models import fetch_models

    result = fetch_models(config_from_args(FetchModelsConfig, args), getattr(args, "config_file", None))
    for line in result.lines():
        print(line)
    return result.exit_code

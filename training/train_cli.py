"""``lanepaint train-lora``: fine-tune a FluxFill LoRA on a lane dataset (``lanepaint dataset generate``).

Imports no torch at module top; the trainer is imported inside ``run``. Every flag defaults to None so
the environment (``lanepaint env``, section ``train-lora``) can fill it. Several GPUs:
``accelerate launch --multi_gpu --num_processes N -m orchestrator.cli train-lora ...`` (one process per GPU).

Exit codes: 0 trained; 2 bad usage, including a dataset that cannot be trained on (missing train.csv
or columns, no row left after validation): the reason is one line and nothing is loaded or written;
1 a failure while training (model load, storage).
"""

from __future__ import annotations

import argparse
import sys

from core.config_cli import add_settings_arguments, config_from_args
from training.lora_config import LoraTrainConfig

EXAMPLES = """\
examples:
  lanepaint train-lora --data gs://bucket/datasets/lanes_v1 --output gs://bucket/loras --max-train-steps 2000
  accelerate launch --multi_gpu --num_processes 8 -m orchestrator.cli train-lora --data ... --output ...
  lanepaint train-lora --data gs://bucket/loras_data --output gs://bucket/loras --resume-from-checkpoint latest
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_settings_arguments(parser, LoraTrainConfig)


def run(args: argparse.Namespace) -> int:
    from training.lora_train import run_train_lora

    cfg = config_from_args(LoraTrainConfig, args)
    result = run_train_lora(cfg)
    if result.get("main_process") == "True":   # under accelerate launch, one summary
        for line in (f"train-lora {result.run_id}: {result.get('steps')} step(s), final loss "
                     f"{result.get('final_loss') or 'n/a'}, {result.get('seconds_per_step')} s/step -> {result.run_uri}",
                     f"checkpoint: {result.get('checkpoint_uri') or 'none'}", f"summary: {result.get('summary_uri')}",
                     f"manifest: {result.manifest_uri}", f"next: {result.next_command}"):
            print(line, file=sys.stdout)
    return 0

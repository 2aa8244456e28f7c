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

FIELDS = ("data", "output", "profile", "model", "run_name", "max_train_steps", "epochs", "resolution",
          "batch_size", "gradient_accumulation", "learning_rate", "lr_scheduler", "lr_warmup_steps",
          "weight_decay", "max_grad_norm", "seed", "rank", "alpha", "dropout", "target_modules",
          "guidance_scale", "dilate_size", "max_sequence_length", "shift_timesteps", "checkpointing_steps",
          "checkpoints_total_limit", "resume_from_checkpoint", "gradient_checkpointing", "device",
          "mixed_precision", "workers", "cache_dir")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", default=None, help="lane dataset folder URI holding train.csv (or LORA_DATA)")
    parser.add_argument("--output", default=None,
                        help="folder URI (path or gs://) where the run folder fluxfill_<dataset>_<time>/ is made "
                             "(or LORA_OUTPUT)")
    parser.add_argument("--profile", choices=["full", "tiny"], default=None,
                        help="full: FLUX.1-Fill-dev on GPU; tiny: random-weight FluxFill on CPU (default full)")
    parser.add_argument("--model", default=None, help="FluxFill checkpoint, hub id or folder (FLUX.1-Fill-dev)")
    parser.add_argument("--run-name", default=None, help="run folder name (default fluxfill_<dataset>_<YYYYMMDD_HHMMSS>)")
    s = parser.add_argument_group("schedule")
    s.add_argument("--max-train-steps", type=int, default=None, help="optimizer steps (default: epochs x steps per epoch)")
    s.add_argument("--epochs", type=int, default=None, help="passes over the dataset (5)")
    s.add_argument("--resolution", type=int, default=None,
                   help="train at most resolution^2 pixels, aspect kept, sides multiples of 16 (full 1024, tiny 64)")
    s.add_argument("--batch-size", type=int, default=None, help="images per process per micro-batch (1)")
    s.add_argument("--gradient-accumulation", type=int, default=None, help="micro-batches per optimizer step (4)")
    s.add_argument("--learning-rate", type=float, default=None, help="AdamW learning rate (1e-5)")
    s.add_argument("--lr-scheduler", choices=["cosine", "constant", "linear"], default=None, help="(cosine)")
    s.add_argument("--lr-warmup-steps", type=int, default=None, help="linear warm-up steps (50)")
    s.add_argument("--weight-decay", type=float, default=None, help="AdamW weight decay (1e-2)")
    s.add_argument("--max-grad-norm", type=float, default=None, help="gradient clipping norm (1.0)")
    s.add_argument("--seed", type=int, default=None, help="seed of data order, noise and adapter init (42)")
    a = parser.add_argument_group("adapter and conditioning")
    a.add_argument("--rank", type=int, default=None, help="LoRA rank (128)")
    a.add_argument("--alpha", type=float, default=None, help="LoRA alpha (default: the rank)")
    a.add_argument("--dropout", type=float, default=None, help="LoRA dropout (0)")
    a.add_argument("--target-modules", default=None, help="comma-separated modules (to_k,to_q,to_v,to_out.0)")
    a.add_argument("--guidance-scale", type=float, default=None, help="guidance embedding value (30, as stage 2)")
    a.add_argument("--dilate-size", type=int, default=None, help="mask dilation kernel in pixels (24, as stage 2)")
    a.add_argument("--max-sequence-length", type=int, default=None, help="T5 tokens (full 512, tiny 32)")
    a.add_argument("--shift-timesteps", default=None, metavar="BOOL",
                   help="sample noise levels with the inference schedule's resolution shift: true/false (true)")
    c = parser.add_argument_group("checkpoints and runtime")
    c.add_argument("--checkpointing-steps", type=int, default=None, help="save a checkpoint every N steps (100)")
    c.add_argument("--checkpoints-total-limit", type=int, default=None, help="keep the newest N checkpoints (4)")
    c.add_argument("--resume-from-checkpoint", default=None, metavar="latest|URI",
                   help="continue from the newest checkpoint (latest) or from a checkpoint/run folder")
    c.add_argument("--gradient-checkpointing", action="store_true", default=None,
                   help="recompute activations in the backward pass (less memory, slower)")
    c.add_argument("--device", choices=["auto", "cpu", "cuda"], default=None, help="(auto: CUDA for full, CPU for tiny)")
    c.add_argument("--mixed-precision", choices=["auto", "no", "bf16", "fp16"], default=None,
                   help="auto: bf16 on Ampere+ GPUs, fp16 on older ones, none on CPU")
    c.add_argument("--workers", type=int, default=None, help="threads reading the dataset (8)")
    c.add_argument("--cache-dir", default=None, help="local cache for remote datasets and checkpoints (~/.cache/lanepaint)")


def run(args: argparse.Namespace) -> int:
    from core.config import build_config
    from training.lora_config import SECTION, LoraTrainConfig
    from training.lora_train import run_train_lora

    cfg = build_config(LoraTrainConfig, SECTION, {name: getattr(args, name) for name in FIELDS})
    result = run_train_lora(cfg)
    if result.get("main_process") == "True":   # under accelerate launch, one summary
        for line in (f"train-lora {result.run_id}: {result.get('steps')} step(s), final loss "
                     f"{result.get('final_loss') or 'n/a'}, {result.get('seconds_per_step')} s/step -> {result.run_uri}",
                     f"checkpoint: {result.get('checkpoint_uri') or 'none'}", f"summary: {result.get('summary_uri')}",
                     f"manifest: {result.manifest_uri}", f"next: {result.next_command}"):
            print(line, file=sys.stdout)
    return 0

"""``run_train_lora(cfg) -> StageResult``: fine-tune a FluxFill LoRA on a lane dataset.

Order: the output root and the dataset are checked first (a bad dataset is a one-line ``UsageError``
before any model loads: missing train.csv or columns, no valid row; invalid rows are skipped and
counted); remote datasets are copied once into the cache. Then, under ``accelerate`` (one process,
or one per GPU with ``accelerate launch``): FluxFill is loaded with stage 2's loader, every distinct
prompt is embedded once and the text encoders are freed, the adapter is added
(``lora_model.add_lora``), and the steps run: each optimizer step accumulates
``gradient_accumulation`` micro-batches (``lora_data.BatchPlan``; DDP gradient sync only on the last),
clips the gradient norm, steps AdamW and the LR schedule. Every ``checkpointing_steps`` steps and at the
end a complete checkpoint is published (``lora_checkpoints``) and all but the newest
``checkpoints_total_limit`` are removed. ``resume_from_checkpoint`` restores adapter, optimizer,
scheduler, RNG states and loss history and continues at the saved step, so an interrupted run ends
with the same weights as an uninterrupted one.
"""

from __future__ import annotations

import json
import logging
import os
import time
from typing import Any

from core import storage
from core.device import memory_snapshot
from core.errors import UsageError
from core.logs import progress
from core.manifest import RunManifest
from core.runner import StageResult
from training import lora_checkpoints as ckpt
from training.lane_dataset import DatasetError, DatasetReport, local_copy, validate_dataset
from training.lora_config import LoraTrainConfig
from training.lora_run import LOGS_DIR, LOSS_HISTORY, STAGE, SUMMARY, RunPlace, place_run, read_resume_state

log = logging.getLogger(__name__)

def prepare_dataset(cfg: LoraTrainConfig, cache_dir: str) -> tuple[str, DatasetReport]:
    """(local dataset root, validation report); a dataset that cannot be trained on is a UsageError."""
    root = cfg.data
    try:
        root = local_copy(cfg.data, cache_dir, workers=cfg.workers)
        report = validate_dataset(root, workers=cfg.workers)
    except DatasetError as exc:   # messages name the dataset the user gave, not the cache copy
        raise UsageError(str(exc).replace(root, cfg.data) if root != cfg.data else str(exc)) from None
    for line in report.failure_lines():
        log.warning("skipped row: %s", line.strip())
    return root, report


def _summary_text(cfg: LoraTrainConfig, place: RunPlace, report: DatasetReport, info: dict[str, Any],
                  history: list[dict[str, float]]) -> str:
    last = [h["loss"] for h in history[-10:]]
    lines = [
        f"run: {place.name} ({place.uri})",
        f"dataset: {cfg.data}: {len(report.rows)} row(s) used, {len(report.failures)} skipped"
        + (f" ({', '.join(f'{n} {r}' for r, n in sorted(report.reason_counts.items()))})" if report.failures else ""),
        f"profile: {cfg.profile}, model: {info['model']}",
        f"device: {info['device']}, mixed precision {info['mixed_precision']}, {info['processes']} process(es)",
        f"adapter: rank {cfg.rank}, alpha {cfg.alpha:g}, targets {','.join(cfg.target_modules)}, "
        f"{info['trainable']} trainable parameters",
        f"plan: {info['plan']}",
        f"optimizer: AdamW lr {cfg.learning_rate:g} ({cfg.lr_scheduler}, {cfg.lr_warmup_steps} warm-up steps), "
        f"weight decay {cfg.weight_decay:g}, max grad norm {cfg.max_grad_norm:g}, seed {cfg.seed}",
        f"steps: {info['start_step']} -> {info['end_step']} of {info['total_steps']}"
        + (f" (resumed from {place.resume})" if place.resume else ""),
        f"duration: {info['seconds']:.1f} s this session ({info['load_seconds']:.1f} s loading, "
        f"{info['seconds_per_step']:.3f} s per step)",
        f"final loss: {history[-1]['loss']:.6f}" if history else "final loss: n/a",
        f"mean loss of the last {len(last)} step(s): {sum(last) / len(last):.6f}" if last else "",
        f"checkpoint: {info['checkpoint']}",
        f"memory: {json.dumps(info['memory'])}",
    ]
    if cfg.profile == "tiny":
        lines.append("note: tiny profile (random weights): the loss shows only that the training code ran")
    return "\n".join(line for line in lines if line) + "\n"


def _write_outputs(cfg: LoraTrainConfig, place: RunPlace, report: DatasetReport, info: dict[str, Any],
                   history: list[dict[str, float]]) -> str:
    """loss_history.json, training_summary.txt, TensorBoard logs (remote runs) and manifest.json."""
    storage.write_text(storage.join(place.uri, LOSS_HISTORY), json.dumps(history, indent=1))
    storage.write_text(storage.join(place.uri, SUMMARY), _summary_text(cfg, place, report, info, history))
    if not storage.is_local(place.uri) and os.path.isdir(os.path.join(place.staging, LOGS_DIR)):
        storage.put(os.path.join(place.staging, LOGS_DIR), storage.join(place.uri, LOGS_DIR))
    manifest = RunManifest(STAGE, place.uri, place.name, cfg, cfg.profile)
    for key in ("model", "device", "mixed_precision", "processes", "trainable"):
        manifest.set_model(key, info[key])
    manifest.set_model("dataset", {"uri": cfg.data, "rows": len(report.rows), "skipped": len(report.failures),
                                   "skipped_by_reason": dict(report.reason_counts)})
    manifest.set_model("training", {k: info[k] for k in ("start_step", "end_step", "total_steps", "checkpoint",
                                                         "seconds", "seconds_per_step", "memory")}
                       | {"final_loss": history[-1]["loss"] if history else None})
    return manifest.finalize()


def run_train_lora(cfg: LoraTrainConfig) -> StageResult:
    """Train (or continue training) a FluxFill LoRA; see the module docstring."""
    storage.check_output_root(cfg.output)
    cache_dir = cfg.cache_dir or storage.DEFAULT_CACHE_DIR
    place = place_run(cfg, cache_dir)
    resume_state = read_resume_state(cfg, place)
    root, report = prepare_dataset(cfg, cache_dir)
    log.info("dataset %s: %d row(s) to train on, %d distinct prompt(s)", cfg.data, len(report.rows),
             len({(r.prompt, r.text_2) for r in report.rows}))
    from training.lora_trainer import Trainer  # torch, diffusers, accelerate from here on

    start = time.perf_counter()
    trainer = Trainer(cfg, place, root, report.rows, resume_state)
    plan, first_step, checkpoint_uri = trainer.plan, trainer.start_step, ""
    loop_start = time.perf_counter()
    try:
        if trainer.is_main:
            if first_step == 0:
                ckpt.remove_stale_temps(place.uri)
            log.info("train-lora %s: %s", place.name, plan.describe())
        if first_step >= plan.total_steps:
            log.warning("%s is already at step %d of %d: nothing to train", place.resume, first_step, plan.total_steps)
            checkpoint_uri = place.resume or ""
        steps = range(first_step, plan.total_steps)
        for step in progress(steps, desc=STAGE, total=len(steps), unit="step"):
            trainer.train_step(step)
            if (step + 1) % cfg.checkpointing_steps == 0 or step + 1 == plan.total_steps:
                checkpoint_uri = trainer.save_checkpoint(step + 1) or checkpoint_uri
    finally:
        trainer.close()
    end = time.perf_counter()
    done_steps = max(0, plan.total_steps - first_step)
    info = trainer.describe() | {
        "start_step": first_step, "end_step": max(first_step, plan.total_steps), "total_steps": plan.total_steps,
        "seconds": round(end - start, 3), "load_seconds": round(loop_start - start, 3),
        "seconds_per_step": round((end - loop_start) / done_steps, 4) if done_steps else 0.0,
        "checkpoint": checkpoint_uri, "memory": memory_snapshot(trainer.device_name)}
    history = trainer.history
    final_loss = f"{history[-1]['loss']:.6f}" if history else ""
    manifest_uri = storage.join(place.uri, "manifest.json")
    if trainer.is_main:
        manifest_uri = _write_outputs(cfg, place, report, info, history)
        log.info("train-lora %s: %d step(s) in %.1f s (%.3f s/step), final loss %s -> %s", place.name, done_steps,
                 end - start, info["seconds_per_step"], final_loss or "n/a", place.uri)
    return StageResult(
        stage=STAGE, run_id=place.name, output_root=cfg.output, run_uri=place.uri, manifest_uri=manifest_uri,
        ok=(storage.basename(checkpoint_uri),) if checkpoint_uri else (),
        next_command=f"lanepaint edit --data-run-id <segmentation run> --img-inpainting-lora-path {place.uri} "
                     "--img-inpainting-lora-scale 1.0",
        extra=tuple(sorted({"checkpoint_uri": checkpoint_uri, "final_loss": final_loss, "steps": str(plan.total_steps),
                            "main_process": str(trainer.is_main), "summary_uri": storage.join(place.uri, SUMMARY),
                            "seconds_per_step": str(info["seconds_per_step"])}.items())))



"""Where a FluxFill LoRA training run lives and how it resumes: the run folder and its local staging
folder, the ``training_state.json`` of a checkpoint and the checks a resumed run must pass. Shared by the
driver (``lora_train``) and the training loop (``lora_trainer``); no torch here.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from typing import Any

from core import storage
from core.errors import StorageError, UsageError
from training import lora_checkpoints as ckpt
from training.lora_config import LoraTrainConfig

log = logging.getLogger(__name__)

STAGE = "train-lora"
LOSS_HISTORY = "loss_history.json"
SUMMARY = "training_summary.txt"
LOGS_DIR = "logs"


@dataclass
class RunPlace:
    name: str
    uri: str                          # the run folder
    staging: str                      # local folder: logs and checkpoints before upload
    resume: str | None = None         # checkpoint URI to continue from


def place_run(cfg: LoraTrainConfig, cache_dir: str) -> RunPlace:
    run_uri = checkpoint = None
    if cfg.resume_from_checkpoint:
        run_uri, checkpoint = ckpt.resolve_resume(cfg.resume_from_checkpoint, cfg.output, cfg.data, cfg.run_name)
    if run_uri is None:
        run_uri = storage.join(cfg.output, cfg.run_name or ckpt.new_run_name(cfg.data))
    name = storage.basename(run_uri)
    staging = storage.local_path(run_uri) if storage.is_local(run_uri) else os.path.join(cache_dir, STAGE, name)
    return RunPlace(name, run_uri, staging, checkpoint)


def fetch_checkpoint(uri: str, staging: str, download: bool = True) -> str:
    """A local folder with the checkpoint's files (a remote one is downloaded when ``download``)."""
    if storage.is_local(uri):
        return storage.local_path(uri)
    local = os.path.join(staging, ".resume", storage.basename(uri))
    if download:
        for file_uri in storage.walk_files(uri):
            storage.get(file_uri, os.path.join(local, file_uri[len(uri.rstrip("/")) + 1:]))
    return local


def read_resume_state(cfg: LoraTrainConfig, place: RunPlace) -> dict[str, Any] | None:
    """The checkpoint's ``training_state.json``, checked against this run (before any model loads)."""
    if not place.resume:
        return None
    try:
        state = json.loads(storage.read_text(storage.join(place.resume, ckpt.STATE_NAME)))
    except (StorageError, ValueError) as exc:
        raise UsageError(f"--resume-from-checkpoint {place.resume}: unreadable {ckpt.STATE_NAME} ({exc})") from None
    check_resume(state, cfg, place.resume)
    return state


def mixed_precision_for(cfg: LoraTrainConfig, dtype_name: str) -> str:
    if cfg.mixed_precision != "auto":
        return cfg.mixed_precision
    return {"bfloat16": "bf16", "float16": "fp16"}.get(dtype_name, "no")


def resume_marker(step: int, cfg: LoraTrainConfig, scheduler_state: dict[str, Any], history: list[dict[str, float]],
                  processes: int) -> str:
    """The ``training_state.json`` text of a checkpoint at ``step``."""
    return json.dumps({"step": step, "adapter": cfg.adapter_settings(), "plan": cfg.plan_settings(),
                       "processes": processes, "lr_scheduler": scheduler_state, "loss_history": history,
                       "profile": cfg.profile, "model": cfg.model, "data": cfg.data}, indent=1)


def check_resume(state: dict[str, Any], cfg: LoraTrainConfig, where: str) -> None:
    """A resumed run must have the adapter shape of its checkpoint; other differences are warned about."""
    if state.get("adapter") != cfg.adapter_settings():
        raise UsageError(f"--resume-from-checkpoint {where}: its adapter {state.get('adapter')} differs from this "
                         f"run's {cfg.adapter_settings()}")
    changed = {k: (v, cfg.plan_settings().get(k)) for k, v in state.get("plan", {}).items()
               if cfg.plan_settings().get(k) != v}
    if changed:
        log.warning("resuming %s with changed settings %s (checkpoint value, now): the continuation is not "
                    "the one the original run would have taken", where, changed)

"""The FluxFill LoRA training loop under ``accelerate`` (imported by ``lora_train.run_train_lora``).

Precision and devices: the device policy (``core.device``) picks CUDA (bf16 on Ampere or newer,
fp16 before) or CPU (float32); base weights are cast to that dtype, the adapter stays float32, and
``accelerate`` runs the forward pass under autocast. With ``accelerate launch`` there is one process
per GPU: the transformer is wrapped in DDP, every process takes its share of each global batch
(``lora_data.BatchPlan``) and has its own generator (seed + process index). Gradient accumulation
is explicit: micro-batches before the last of a step run under ``no_sync`` and each loss is weighted
by its share of the step's samples. The LR scheduler is stepped once per optimizer step by us (not
through ``accelerate.prepare``, which would step it once per process).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from concurrent.futures import Future
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.utils import ProjectConfiguration
from diffusers.optimization import get_scheduler

from core import storage
from core.device import resolve_device
from training import lora_checkpoints as ckpt
from training.lane_dataset import DatasetRow
from training.lora_config import LoraTrainConfig
from training.lora_data import Batch, BatchPlan, SampleLoader, working_sizes
from training.lora_model import (
    PromptEmbeddings,
    add_lora,
    fill_inputs,
    flow_matching_loss,
    free_text_encoders,
    load_training_pipeline,
)
from training.lora_run import (
    LOGS_DIR,
    LOSS_HISTORY,
    RunPlace,
    fetch_checkpoint,
    mixed_precision_for,
    resume_marker,
)
from training.lora_state import load_checkpoint_files, random_states, save_checkpoint_files

log = logging.getLogger(__name__)

_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "no": torch.float32}


class Trainer:
    """Everything one training session holds: models, optimizer, plan, data and the loss history."""

    def __init__(self, cfg: LoraTrainConfig, place: RunPlace, root: str, rows: list[DatasetRow],
                 resume_state: dict[str, Any] | None = None) -> None:
        self.cfg, self.place = cfg, place
        policy = resolve_device(None if cfg.device == "auto" else cfg.device, cfg.profile)
        self.mixed_precision = mixed_precision_for(cfg, policy.dtype_name if policy.is_cuda else "float32")
        self.accelerator = Accelerator(
            mixed_precision=self.mixed_precision, cpu=not policy.is_cuda, log_with="tensorboard",
            project_config=ProjectConfiguration(project_dir=place.staging, logging_dir=os.path.join(place.staging, LOGS_DIR)))
        acc = self.accelerator
        if acc.num_processes > 1:   # every process writes into the main process's run folder
            from accelerate.utils import broadcast_object_list

            shared = broadcast_object_list([place.name, place.uri, place.staging, place.resume], from_process=0)
            place.name, place.uri, place.staging, place.resume = shared
        self.device = acc.device
        self.device_name = str(self.device)
        self.is_main = acc.is_main_process
        self.weight_dtype = _DTYPES[self.mixed_precision]
        self.policy_text = policy.describe() if acc.num_processes == 1 else f"{acc.num_processes} x {policy.describe()}"

        sizes = working_sizes(root, rows, cfg.max_area, cfg.workers)
        self.plan = BatchPlan(sizes, cfg.batch_size, cfg.gradient_accumulation, cfg.seed, cfg.epochs,
                              cfg.max_train_steps, acc.num_processes, acc.process_index)
        self.loader = SampleLoader(root, rows, sizes, cfg.dilate_size, workers=min(cfg.workers, 4))
        self._pending: dict[int, list[Future[Batch]]] = {}

        pipe = load_training_pipeline(cfg.profile, cfg.model, policy)
        pipe.text_encoder.to(self.device)
        pipe.text_encoder_2.to(self.device)
        self.prompts = PromptEmbeddings(pipe, self.device, cfg.max_sequence_length)
        count = self.prompts.precompute((r.prompt, r.text_2) for r in rows)
        free_text_encoders(pipe)
        if self.is_main:
            log.info("%d distinct prompt(s) embedded once; text encoders freed", count)
        for module in (pipe.vae, pipe.transformer):
            module.to(self.device)
            if module.dtype != self.weight_dtype:   # e.g. tiny float32 weights trained in bf16 on a GPU
                module.to(dtype=self.weight_dtype)
        self.trainable = add_lora(pipe.transformer, cfg.rank, cfg.alpha, cfg.dropout, cfg.target_modules, cfg.seed)
        if cfg.gradient_checkpointing:
            pipe.transformer.enable_gradient_checkpointing()
        pipe.transformer.train()
        self.pipe = pipe
        self.params = [p for p in pipe.transformer.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(self.params, lr=cfg.learning_rate, betas=(0.9, 0.999), eps=1e-8,
                                      weight_decay=cfg.weight_decay)
        self.lr_scheduler = get_scheduler(cfg.lr_scheduler, optimizer, num_warmup_steps=cfg.lr_warmup_steps,
                                          num_training_steps=self.plan.total_steps)
        self.model, self.optimizer = acc.prepare(pipe.transformer, optimizer)
        self.generator = torch.Generator(device=self.device).manual_seed(cfg.seed + acc.process_index)
        self.history: list[dict[str, float]] = []
        self.start_step = 0
        if place.resume:
            self._resume(place.resume, resume_state or {})
        if self.is_main:
            hparams = {k: v for k, v in vars(cfg).items() if isinstance(v, int | float | str | bool)}
            acc.init_trackers(place.name, config=hparams)

    def _resume(self, uri: str, state: dict[str, Any]) -> None:
        acc = self.accelerator
        local = fetch_checkpoint(uri, self.place.staging, download=acc.is_local_main_process)
        acc.wait_for_everyone()
        exact = load_checkpoint_files(local, acc.unwrap_model(self.model), self.optimizer, self.generator,
                                      acc.process_index, acc.num_processes)
        self.lr_scheduler.load_state_dict(state["lr_scheduler"])
        self.start_step = int(state["step"])
        self.history = [h for h in state.get("loss_history", []) if h["step"] <= self.start_step]
        if not exact:
            self.generator.manual_seed(self.cfg.seed + acc.process_index + 7919 * self.start_step)
        if self.is_main:
            log.info("resumed from %s at step %d of %d", uri, self.start_step, self.plan.total_steps)

    def _batches(self, step: int) -> list[Batch]:
        """This step's micro-batches; the next step's are read in the background meanwhile."""
        pending = self._pending.pop(step, None) or [self.loader.submit(ix) for ix in self.plan.step_batches(step)]
        if step + 1 < self.plan.total_steps and step + 1 not in self._pending:
            self._pending[step + 1] = [self.loader.submit(ix) for ix in self.plan.step_batches(step + 1)]
        return [future.result() for future in pending]

    def train_step(self, step: int) -> float:
        """One optimizer step (0-based ``step``); returns its loss (mean over samples and processes)."""
        cfg, acc = self.cfg, self.accelerator
        batches = self._batches(step)
        total = sum(len(b.indices) for b in batches)
        step_loss = torch.zeros((), device=self.device)
        for i, batch in enumerate(batches):
            share = len(batch.indices) / total
            sync = contextlib.nullcontext() if i == len(batches) - 1 else acc.no_sync(self.model)
            with sync:
                embeds, pooled, text_ids = self.prompts.get(batch.prompts, batch.prompts_2)
                kwargs, target = fill_inputs(self.pipe, batch.images.to(self.device), batch.masks.to(self.device),
                                             embeds, pooled, text_ids, cfg.guidance_scale, self.generator,
                                             shift=cfg.shift_timesteps, dtype=self.weight_dtype)
                loss = flow_matching_loss(self.model, kwargs, target)
                acc.backward(loss * share)
            step_loss += loss.detach() * share
        grad_norm = acc.clip_grad_norm_(self.params, cfg.max_grad_norm)
        lr = float(self.lr_scheduler.get_last_lr()[0])
        self.optimizer.step()
        self.lr_scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        value = float(acc.reduce(step_loss, reduction="mean").item())
        self.history.append({"step": step + 1, "loss": value, "lr": lr})
        logged = {"loss": value, "lr": lr}
        if grad_norm is not None:
            logged["grad_norm"] = float(grad_norm)
        acc.log(logged, step=step + 1)
        return value

    def _states_per_process(self) -> list[dict[str, torch.Tensor]]:
        states = random_states(self.generator)
        if self.accelerator.num_processes == 1:
            return [states]
        out: list[dict[str, torch.Tensor]] = [{} for _ in range(self.accelerator.num_processes)]
        for key, tensor in states.items():
            gathered = self.accelerator.gather(tensor.to(self.device).unsqueeze(0)).cpu()
            for rank, row in enumerate(gathered):
                out[rank][key] = row
        return out

    def save_checkpoint(self, step: int) -> str | None:
        """Publish ``checkpoint-<step>`` (main process; every process must call it); its URI on main."""
        cfg, acc = self.cfg, self.accelerator
        states = self._states_per_process()
        uri = None
        if self.is_main:
            folder = ckpt.temp_folder(self.place.uri, self.place.staging, step)
            save_checkpoint_files(folder, acc.unwrap_model(self.model), self.optimizer, states)
            marker = resume_marker(step, cfg, self.lr_scheduler.state_dict(), self.history, acc.num_processes)
            uri = ckpt.publish(folder, self.place.uri, step, marker)
            removed = ckpt.prune(self.place.uri, cfg.checkpoints_total_limit)
            storage.write_text(storage.join(self.place.uri, LOSS_HISTORY), json.dumps(self.history, indent=1))
            if not storage.is_local(self.place.uri) and os.path.isdir(os.path.join(self.place.staging, LOGS_DIR)):
                storage.put(os.path.join(self.place.staging, LOGS_DIR), storage.join(self.place.uri, LOGS_DIR))
            last = self.history[-1] if self.history else {"loss": float("nan"), "lr": 0.0}
            log.info("%s saved: step %d/%d, loss %.6f, lr %.3g -> %s%s", ckpt.checkpoint_name(step), step,
                     self.plan.total_steps, last["loss"], last["lr"], uri,
                     f" (removed {', '.join(storage.basename(u) for u in removed)})" if removed else "")
        acc.wait_for_everyone()
        return uri

    def describe(self) -> dict[str, Any]:
        model = self.cfg.model if self.cfg.profile == "full" else "tiny FluxFill (random weights)"
        return {"model": model, "device": self.policy_text, "mixed_precision": self.mixed_precision,
                "processes": self.accelerator.num_processes, "trainable": self.trainable,
                "plan": self.plan.describe()}

    def close(self) -> None:
        self.loader.close()
        self.accelerator.end_training()

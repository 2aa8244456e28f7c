"""The files of one FluxFill LoRA checkpoint, written and read without pickle.

- ``pytorch_lora_weights.safetensors``: the adapter in the diffusers LoRA format
  (``FluxFillPipeline.save_lora_weights``: ``transformer.*`` keys plus the peft adapter config as
  metadata, so ``FluxFillPipeline.load_lora_weights`` restores rank and alpha);
- ``optimizer.safetensors`` + ``optimizer.json``: AdamW's per-parameter tensors and its param groups;
- ``random_states.safetensors``: per process, the training generator (noise, timesteps, VAE
  sampling) and torch's global CPU/CUDA states;
- the LR scheduler's state and the step go into ``training_state.json``, which the caller writes last
  (``lora_checkpoints.publish``).

``save_checkpoint_files`` / ``load_checkpoint_files`` are the two entry points; ``load_adapter``
restores only the adapter weights.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from core.errors import LanepaintError
from generation.lora_weights import WEIGHTS_NAME

log = logging.getLogger(__name__)

ADAPTER = "default"
OPTIMIZER_TENSORS = "optimizer.safetensors"
OPTIMIZER_JSON = "optimizer.json"
RANDOM_STATES = "random_states.safetensors"
_PREFIX = "transformer."


def adapter_state(transformer: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The adapter's tensors with peft's names (no ``transformer.`` prefix, no adapter name)."""
    from peft.utils import get_peft_model_state_dict

    return {k: v.detach().to("cpu", copy=True).contiguous()
            for k, v in get_peft_model_state_dict(transformer, adapter_name=ADAPTER).items()}


def save_adapter(folder: str, transformer: torch.nn.Module) -> str:
    from diffusers import FluxFillPipeline

    config = transformer.peft_config[ADAPTER].to_dict()
    FluxFillPipeline.save_lora_weights(folder, transformer_lora_layers=adapter_state(transformer),
                                       weight_name=WEIGHTS_NAME, transformer_lora_adapter_metadata=config)
    return os.path.join(folder, WEIGHTS_NAME)


def load_adapter(folder: str, transformer: torch.nn.Module) -> None:
    """Put a checkpoint's adapter weights into ``transformer`` (which already has the adapter)."""
    from peft.utils import set_peft_model_state_dict

    weights = load_file(os.path.join(folder, WEIGHTS_NAME))
    state = {k[len(_PREFIX):]: v for k, v in weights.items() if k.startswith(_PREFIX)}
    result = set_peft_model_state_dict(transformer, state, adapter_name=ADAPTER)
    missing = [k for k in getattr(result, "missing_keys", []) if "lora_" in k]
    unexpected = list(getattr(result, "unexpected_keys", []))
    if missing or unexpected or not state:
        raise LanepaintError(f"checkpoint {folder}: adapter does not match this run ({len(state)} tensors, "
                             f"{len(missing)} missing, {len(unexpected)} unexpected)")


def _save_optimizer(folder: str, optimizer: torch.optim.Optimizer) -> None:
    state = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    extras: dict[str, dict[str, Any]] = {}
    for index, values in state["state"].items():
        for name, value in values.items():
            if torch.is_tensor(value):
                tensors[f"{index}.{name}"] = value.detach().to("cpu", copy=True).contiguous()
            else:
                extras.setdefault(str(index), {})[name] = value
    save_file(tensors, os.path.join(folder, OPTIMIZER_TENSORS))
    groups = [{k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items()} for g in state["param_groups"]]
    with open(os.path.join(folder, OPTIMIZER_JSON), "w", encoding="utf-8") as fh:
        json.dump({"param_groups": groups, "extras": extras}, fh, indent=1)


def _load_optimizer(folder: str, optimizer: torch.optim.Optimizer) -> None:
    tensors = load_file(os.path.join(folder, OPTIMIZER_TENSORS))
    with open(os.path.join(folder, OPTIMIZER_JSON), encoding="utf-8") as fh:
        meta = json.load(fh)
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        index, name = key.split(".", 1)
        state.setdefault(int(index), {})[name] = value
    for index, values in meta.get("extras", {}).items():
        state.setdefault(int(index), {}).update(values)
    groups = [{k: (tuple(v) if k == "betas" else v) for k, v in g.items()} for g in meta["param_groups"]]
    optimizer.load_state_dict({"state": state, "param_groups": groups})


def random_states(generator: torch.Generator) -> dict[str, torch.Tensor]:
    """This process's RNG states: the training generator and torch's global CPU (and CUDA) states."""
    states = {"generator": generator.get_state(), "torch_cpu": torch.get_rng_state()}
    if generator.device.type == "cuda":
        states["torch_cuda"] = torch.cuda.get_rng_state(generator.device)
    return states


def set_random_states(states: dict[str, torch.Tensor], generator: torch.Generator) -> None:
    generator.set_state(states["generator"])
    torch.set_rng_state(states["torch_cpu"])
    if "torch_cuda" in states and generator.device.type == "cuda":
        torch.cuda.set_rng_state(states["torch_cuda"], generator.device)


def save_checkpoint_files(folder: str, transformer: torch.nn.Module, optimizer: torch.optim.Optimizer,
                          states_per_process: list[dict[str, torch.Tensor]]) -> None:
    """Adapter, optimizer and every process's RNG states into ``folder`` (main process only)."""
    save_adapter(folder, transformer)
    _save_optimizer(folder, optimizer)
    flat = {f"{name}.{rank}": tensor.to("cpu").contiguous()
            for rank, states in enumerate(states_per_process) for name, tensor in states.items()}
    save_file(flat, os.path.join(folder, RANDOM_STATES))


def load_checkpoint_files(folder: str, transformer: torch.nn.Module, optimizer: torch.optim.Optimizer,
                          generator: torch.Generator, process_index: int, num_processes: int) -> bool:
    """Restore adapter, optimizer and this process's RNG states; False when the checkpoint was written
    by a different number of processes (the RNG streams then restart from the seed and step)."""
    load_adapter(folder, transformer)
    _load_optimizer(folder, optimizer)
    flat = load_file(os.path.join(folder, RANDOM_STATES))
    ranks = {int(key.rsplit(".", 1)[1]) for key in flat}
    if len(ranks) != num_processes:
        log.warning("checkpoint %s was written by %d process(es), this run has %d: random streams are reseeded",
                    folder, len(ranks), num_processes)
        return False
    set_random_states({k.rsplit(".", 1)[0]: v for k, v in flat.items() if k.endswith(f".{process_index}")},
                      generator)
    return True

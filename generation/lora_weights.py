"""The LoRA hand-off between ``lanepaint train-lora`` and stage 2: file names, completion markers, and
how ``--img-inpainting-lora-path`` finds the weights (no torch here).

A training run folder holds ``checkpoint-<step>/`` folders; each holds ``pytorch_lora_weights.safetensors``
(the diffusers LoRA format, ``transformer.*`` keys) and ``training_state.json``, written last, which marks
the checkpoint complete. Stage 2 accepts a weights file, a folder holding that file (a checkpoint), or a
run folder (its newest complete checkpoint); ``local_lora_weights`` downloads a remote one into the cache.
The trainer (``training.lora_checkpoints``) writes this layout with the names defined here.
"""

from __future__ import annotations

import logging
import os
import re

from core import storage
from core.errors import LanepaintError, StorageError, UsageError

log = logging.getLogger(__name__)

WEIGHTS_NAME = "pytorch_lora_weights.safetensors"
STATE_NAME = "training_state.json"
CHECKPOINT_PREFIX = "checkpoint-"
_CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")


def checkpoint_name(step: int) -> str:
    return f"{CHECKPOINT_PREFIX}{int(step)}"


def checkpoint_step(uri: str) -> int | None:
    """N for a ``checkpoint-N`` folder URI, else None."""
    match = _CHECKPOINT_RE.match(storage.basename(uri))
    return int(match.group(1)) if match else None


def is_complete(checkpoint_uri: str) -> bool:
    return storage.exists(storage.join(checkpoint_uri, STATE_NAME))


def complete_checkpoints(run_uri: str) -> list[tuple[int, str]]:
    """(step, URI) of every complete checkpoint of a run folder, oldest first."""
    found = []
    for uri in storage.ls(run_uri, files=False):
        step = checkpoint_step(uri)
        if step is not None and is_complete(uri):
            found.append((step, uri))
    return sorted(found)


def latest_checkpoint(run_uri: str) -> str | None:
    checkpoints = complete_checkpoints(run_uri)
    return checkpoints[-1][1] if checkpoints else None


def lora_weights_uri(path: str) -> str:
    """The LoRA weights file for ``--img-inpainting-lora-path``: the file itself, ``<folder>/
    pytorch_lora_weights.safetensors``, or that of the newest complete ``checkpoint-N`` of a run folder.
    A one-line ``LanepaintError`` names the path when none is there."""
    try:
        if storage.isdir(path):
            direct = storage.join(path, WEIGHTS_NAME)
            if storage.exists(direct):
                return direct
            for _step, uri in reversed(complete_checkpoints(path)):
                if storage.exists(storage.join(uri, WEIGHTS_NAME)):
                    return storage.join(uri, WEIGHTS_NAME)
            raise LanepaintError(f"FluxFill LoRA folder {path} has no {WEIGHTS_NAME} and no complete "
                                 f"{CHECKPOINT_PREFIX}N folder holding one")
        if storage.exists(path):
            return path
    except StorageError as exc:
        raise LanepaintError(f"FluxFill LoRA {path}: {exc}") from None
    raise LanepaintError(f"FluxFill LoRA not found: {path}")


def local_lora_weights(path: str, cache_dir: str | None = None) -> tuple[str, str]:
    """(local folder, weight file name) of the LoRA at ``path``; remote weights are downloaded once
    into ``cache_dir`` (default ``~/.cache/lanepaint``)."""
    uri = lora_weights_uri(path)
    try:
        local = storage.fetch(uri, cache_dir or storage.DEFAULT_CACHE_DIR)
    except StorageError as exc:
        raise LanepaintError(f"FluxFill LoRA {path}: {exc}") from None
    return os.path.dirname(os.path.abspath(local)), os.path.basename(local)


def check_lora_path(path: str | None, flag: str = "--img-inpainting-lora-path") -> None:
    """A ``UsageError`` (before a run writes anything) when ``path`` holds no LoRA weights."""
    if path:
        try:
            lora_weights_uri(path)
        except LanepaintError as exc:
            raise UsageError(f"{flag}: {exc}") from None

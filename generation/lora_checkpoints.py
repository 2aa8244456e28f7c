"""Where FluxFill LoRA runs and checkpoints live, and how they are found again (no torch here).

A training run is a folder ``<output>/fluxfill_<dataset>_<YYYYMMDD_HHMMSS>/`` holding::

    checkpoint-<step>/pytorch_lora_weights.safetensors   diffusers LoRA format (transformer.* keys)
    checkpoint-<step>/optimizer.safetensors, optimizer.json, random_states.safetensors
    checkpoint-<step>/training_state.json                 written LAST: marks the checkpoint complete
    loss_history.json, training_summary.txt, logs/ (TensorBoard), manifest.json

A checkpoint is built in a local temp folder and then published: locally by one folder rename, on
gs:// or memory:// by uploading every file and then ``training_state.json``. A folder without that
marker (a crash half-way) is never taken for a checkpoint.

Stage 2 passes ``--img-inpainting-lora-path`` through ``lora_weights_uri``: a weights file, a folder
holding ``pytorch_lora_weights.safetensors`` (a checkpoint), or a run folder (its newest complete
checkpoint); ``local_lora_weights`` downloads a remote one into the cache.
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
import re
import shutil

from core import storage
from core.errors import LanepaintError, StorageError, UsageError
from core.ids import validate_id
from generation.lora_config import LATEST

log = logging.getLogger(__name__)

WEIGHTS_NAME = "pytorch_lora_weights.safetensors"
STATE_NAME = "training_state.json"
RUN_PREFIX = "fluxfill_"
CHECKPOINT_PREFIX = "checkpoint-"
_CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")
_TEMP_RE = re.compile(r"^\.checkpoint-\d+\.tmp")


def dataset_name(data_uri: str) -> str:
    """The dataset folder's name as a path part (other characters become ``_``)."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", storage.basename(data_uri.rstrip("/"))).strip("._-")
    return name[:120] or "dataset"


def new_run_name(data_uri: str, now: _dt.datetime | None = None) -> str:
    """``fluxfill_<dataset>_<YYYYMMDD_HHMMSS>`` (local time)."""
    stamp = (now or _dt.datetime.now()).strftime("%Y%m%d_%H%M%S")
    return validate_id(f"{RUN_PREFIX}{dataset_name(data_uri)}_{stamp}", "run name")


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


def find_latest_run(output: str, data_uri: str) -> str | None:
    """The newest ``fluxfill_<dataset>_*`` run folder under ``output`` that has a complete checkpoint."""
    prefix = f"{RUN_PREFIX}{dataset_name(data_uri)}_"
    runs = [u for u in storage.ls(output, files=False) if storage.basename(u).startswith(prefix)]
    for run in sorted(runs, key=storage.basename, reverse=True):
        if latest_checkpoint(run):
            return run
    return None


def _parent(uri: str) -> str:
    if storage.is_local(uri):
        return os.path.dirname(os.path.abspath(storage.local_path(uri)))
    return uri.rstrip("/").rsplit("/", 1)[0]


def resolve_resume(value: str, output: str, data_uri: str, run_name: str | None) -> tuple[str | None, str | None]:
    """(run folder URI, checkpoint URI) for ``--resume-from-checkpoint``; (None, None) for ``latest``
    when there is nothing to resume (a fresh run starts). A PATH that holds no complete checkpoint is a
    ``UsageError``."""
    if value == LATEST:
        run = storage.join(output, run_name) if run_name else find_latest_run(output, data_uri)
        checkpoint = latest_checkpoint(run) if run and storage.isdir(run) else None
        if checkpoint is None:
            log.warning("--resume-from-checkpoint latest: no complete checkpoint under %s; starting a new run",
                        run or output)
            return None, None
        return run, checkpoint
    try:
        if checkpoint_step(value) is not None and is_complete(value):
            return _parent(value), value
        if storage.isdir(value) and latest_checkpoint(value):
            return value, latest_checkpoint(value)
    except StorageError as exc:
        raise UsageError(f"--resume-from-checkpoint {value}: {exc}") from None
    raise UsageError(f"--resume-from-checkpoint {value}: not a complete checkpoint-N folder (no {STATE_NAME}) "
                     "nor a run folder holding one")


def remove_stale_temps(run_uri: str) -> None:
    """Remove temp checkpoint folders a crashed local run left behind."""
    if not storage.is_local(run_uri):
        return
    folder = storage.local_path(run_uri)
    if os.path.isdir(folder):
        for name in os.listdir(folder):
            if _TEMP_RE.match(name):
                shutil.rmtree(os.path.join(folder, name), ignore_errors=True)


def temp_folder(run_uri: str, staging: str, step: int) -> str:
    """The local folder a checkpoint is written into before ``publish``: beside the final folder for a
    local run (so publishing is one rename), else under the local ``staging`` folder."""
    base = storage.local_path(run_uri) if storage.is_local(run_uri) else staging
    path = os.path.join(base, f".{checkpoint_name(step)}.tmp")
    shutil.rmtree(path, ignore_errors=True)
    os.makedirs(path)
    return path


def publish(local_folder: str, run_uri: str, step: int, state_json: str) -> str:
    """Make ``local_folder`` the run's ``checkpoint-<step>``; the marker ``training_state.json`` is
    written last, so the checkpoint is complete at once or not at all. Returns its URI."""
    final = storage.join(run_uri, checkpoint_name(step))
    if storage.is_local(run_uri):
        with open(os.path.join(local_folder, STATE_NAME), "w", encoding="utf-8") as fh:
            fh.write(state_json)
        dest = storage.local_path(final)
        if os.path.exists(dest):                 # an older trajectory's checkpoint of the same step
            old = dest + ".old"
            os.replace(dest, old)
            shutil.rmtree(old, ignore_errors=True)
        os.replace(local_folder, dest)
        return final
    storage.rm(final, recursive=True)
    storage.put(local_folder, final)
    storage.write_text(storage.join(final, STATE_NAME), state_json)
    shutil.rmtree(local_folder, ignore_errors=True)
    return final


def prune(run_uri: str, keep: int) -> list[str]:
    """Remove all but the newest ``keep`` complete checkpoints (and incomplete ones older than the
    newest complete one); returns the removed URIs."""
    complete = complete_checkpoints(run_uri)
    newest = complete[-1][0] if complete else -1
    keep_steps = {step for step, _ in complete[-keep:]}
    removed = []
    for uri in storage.ls(run_uri, files=False):
        step = checkpoint_step(uri)
        if step is None or step in keep_steps or step > newest:
            continue
        storage.rm(uri, recursive=True)
        removed.append(uri)
    return removed


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

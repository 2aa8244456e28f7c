"""Where FluxFill LoRA runs and checkpoints live, and how they are found again (no torch here).

A training run is a folder ``<output>/fluxfill_<dataset>_<YYYYMMDD_HHMMSS>/`` holding::

    checkpoint-<step>/pytorch_lora_weights.safetensors   diffusers LoRA format (transformer.* keys)
    checkpoint-<step>/optimizer.safetensors, optimizer.json, random_states.safetensors
    checkpoint-<step>/training_state.json                 written LAST: marks the checkpoint complete
    loss_history.json, training_summary.txt, logs/ (TensorBoard), manifest.json

A checkpoint is built in a local temp folder and then published: locally by one folder rename, on
gs:// or memory:// by uploading every file and then ``training_state.json``. A folder without that
marker (a crash half-way) is never taken for a checkpoint.

The names and the completion rule are the hand-off to stage 2 (``generation.lora_weights``).
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
import re
import shutil

from core import storage
from core.errors import StorageError, UsageError
from core.ids import validate_id
from generation.lora_weights import (
    STATE_NAME,
    checkpoint_name,
    checkpoint_step,
    complete_checkpoints,
    is_complete,
    latest_checkpoint,
)
from training.lora_config import LATEST

log = logging.getLogger(__name__)

RUN_PREFIX = "fluxfill_"
_TEMP_RE = re.compile(r"^\.checkpoint-\d+\.tmp")


def dataset_name(data_uri: str) -> str:
    """The dataset folder's name as a path part (other characters become ``_``)."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", storage.basename(data_uri.rstrip("/"))).strip("._-")
    return name[:120] or "dataset"


def new_run_name(data_uri: str, now: _dt.datetime | None = None) -> str:
    """``fluxfill_<dataset>_<YYYYMMDD_HHMMSS>`` (local time)."""
    stamp = (now or _dt.datetime.now()).strftime("%Y%m%d_%H%M%S")
    return validate_id(f"{RUN_PREFIX}{dataset_name(data_uri)}_{stamp}", "run name")


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



"""One shard worker per GPU of this machine for a local run (``--devices``).

``worker_devices(spec) -> list[str]`` turns the setting into one device per worker:

- ``auto`` (default): every GPU this process may use (``CUDA_VISIBLE_DEVICES``, else ``nvidia-smi -L``); with
  none or one, the shards run in this process as before (an empty list);
- ``0,2,3``: those GPUs; ``4``: GPUs 0-3;
- ``cpu:N``: N CPU worker processes (a CPU node, and the benchmark that stands in for GPUs), each with its
  share of the cores for torch.

``run_workers(stage, configs, devices) -> list[StageReport]`` runs shard ``i`` in its own process
(``python -m orchestrator.shard_worker``) with ``CUDA_VISIBLE_DEVICES`` set to worker ``i % N``'s GPU, all at
the same time: each worker loads the models once for its shard, and the item claims of the run make sure
no video is computed twice even when shards overlap. A worker that dies without a report fails the stage
with one line naming its device; Ctrl-C or SIGTERM stops every worker's process group.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from core import storage
from core.errors import LanepaintError, UsageError
from core.runner import Terminated
from orchestrator.results import StageReport

log = logging.getLogger(__name__)

CPU = "cpu"


def visible_gpus() -> list[str]:
    """GPU ids this process may use, without importing torch."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [d.strip() for d in env.split(",") if d.strip() and d.strip() != "-1"]
    smi = shutil.which("nvidia-smi")
    if not smi:
        return []
    try:
        out = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=20, check=False).stdout
    except (OSError, subprocess.TimeoutExpired):
        return []
    return [str(i) for i, line in enumerate(out.splitlines()) if line.startswith("GPU ")]


def check_devices(spec: str) -> None:
    """A usage error unless ``spec`` is ``auto``, a GPU count, a GPU list or ``cpu:N``."""
    text = (spec or "auto").strip().lower()
    if text == "auto" or text.isdigit() and int(text) >= 1:
        return
    if text.startswith("cpu:") and text[4:].isdigit() and int(text[4:]) >= 1:
        return
    ids = [d.strip() for d in text.split(",")]
    if all(d.isdigit() for d in ids) and len(set(ids)) == len(ids):
        return
    raise UsageError(f"--devices {spec!r}: use auto, a GPU count (4), GPU ids (0,2,3) or cpu:N")


def worker_devices(spec: str) -> list[str]:
    """One device per worker (see the module docstring); empty: run in this process."""
    check_devices(spec)
    text = (spec or "auto").strip().lower()
    if text.startswith("cpu:"):
        return [CPU] * int(text[4:])
    if text == "auto":
        gpus = visible_gpus()
    elif text.isdigit():
        gpus = [str(i) for i in range(int(text))]
    else:
        gpus = [d.strip() for d in text.split(",")]
    return gpus if len(gpus) > 1 else []       # one GPU or none: this process, as without --devices


def _env(device: str, workers: int) -> dict[str, str]:
    env = dict(os.environ)
    if device == CPU:
        threads = str(max(1, (os.cpu_count() or 1) // workers))
        env.update(CUDA_VISIBLE_DEVICES="", OMP_NUM_THREADS=threads, MKL_NUM_THREADS=threads,
                   LANEPAINT_WORKER_THREADS=threads)
    else:
        env["CUDA_VISIBLE_DEVICES"] = device
    return env


def _stop(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + 30
    for proc in procs:
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def run_workers(stage: str, configs: list[str], devices: list[str]) -> list[StageReport]:
    """Every shard config in its own worker process at once (see the module docstring)."""
    log.info("stage %s: %d shard(s) on %d worker(s): %s", stage, len(configs), len(devices),
             ", ".join(f"GPU {d}" if d != CPU else "cpu" for d in devices[:len(configs)]))
    reports: list[StageReport] = []
    with tempfile.TemporaryDirectory(prefix=storage.temp_prefix("workers")) as tmp:
        procs, outs = [], []
        try:
            for index, config in enumerate(configs):
                device = devices[index % len(devices)]
                config_path, out = os.path.join(tmp, f"{index}.json"), os.path.join(tmp, f"{index}.report.json")
                with open(config_path, "w", encoding="utf-8") as fh:
                    fh.write(config)
                procs.append(subprocess.Popen([sys.executable, "-m", "orchestrator.shard_worker", stage, config_path,
                                               out, f"{device}#{index}"], env=_env(device, len(devices)),
                                              start_new_session=True))
                outs.append((device, out))
            codes = [proc.wait() for proc in procs]
        except (KeyboardInterrupt, Terminated):
            _stop(procs)
            raise
        finally:
            _stop(procs)
        for (device, out), code in zip(outs, codes, strict=True):
            if code in (130, 143):
                raise KeyboardInterrupt if code == 130 else Terminated
            if not os.path.exists(out):
                raise LanepaintError(f"stage {stage}: the worker on {'GPU ' + device if device != CPU else 'cpu'} "
                                     f"exited with {code} and no report (see its log above)")
            with open(out, encoding="utf-8") as fh:
                reports.append(StageReport(**json.load(fh)))
    return reports


def report_json(report: StageReport) -> str:
    return json.dumps(dataclasses.asdict(report))

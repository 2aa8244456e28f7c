"""One shard worker per GPU of this machine for a local run (``--devices``).

``orchestrator.devices.worker_devices(spec) -> list[str]`` turns the setting into one device per worker:

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

import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import time

from core import storage
from core.errors import LanepaintError
from core.runner import Terminated
from orchestrator.devices import CPU
from orchestrator.results import StageReport

log = logging.getLogger(__name__)


def _env(device: str, workers: int) -> dict[str, str]:
    env = dict(os.environ)
    if device == CPU:
        threads = str(max(1, (os.cpu_count() or 1) // workers))
        env.update(CUDA_VISIBLE_DEVICES="", OMP_NUM_THREADS=threads, MKL_NUM_THREADS=threads,
                   LANEPAINT_WORKER_THREADS=threads)
    else:
        env["CUDA_VISIBLE_DEVICES"] = device.replace("+", ",")     # a group: one worker, several GPUs
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
        finally:                # Ctrl-C, SIGTERM or an error here: no worker outlives the stage
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


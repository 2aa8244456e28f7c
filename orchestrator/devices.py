"""The ``--devices`` setting: which worker processes a local run starts (see ``orchestrator.workers``).

``check_devices(spec)`` (a usage error unless it parses) and ``worker_devices(spec) -> list[str]``: one entry
per worker, a GPU id, a group of GPU ids joined by ``+`` (one worker sees all of them, e.g. the video model
on the first and the judge on the second with ``--edit-qwen-device cuda:1``) or ``cpu``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess

from core.errors import UsageError

CPU = "cpu"
_GROUP = re.compile(r"\d+(\+\d+)*")


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


def check_devices(spec: str) -> str:
    """A usage error unless ``spec`` is ``auto``, a GPU count, a GPU list or ``cpu:N``; the spec normalised."""
    text = (spec or "auto").strip().lower()
    if text == "auto" or text.isdigit() and int(text) >= 1:
        return text
    if text.startswith("cpu:") and text[4:].isdigit() and int(text[4:]) >= 1:
        return text
    groups = [d.strip() for d in text.split(",")]
    ids = [i for g in groups for i in g.split("+")]
    if all(_GROUP.fullmatch(g) for g in groups) and len(set(ids)) == len(ids):
        return ",".join(groups)
    raise UsageError(f"--devices {spec!r}: use auto, a GPU count (4), GPU ids (0,2,3), groups (0+1,2+3) or cpu:N")


def worker_devices(spec: str) -> list[str]:
    """One device per worker (see the module docstring); empty: run in this process."""
    text = check_devices(spec)
    if text.startswith("cpu:"):
        return [CPU] * int(text[4:])
    if text == "auto":
        gpus = visible_gpus()
    elif text.isdigit():
        gpus = [str(i) for i in range(int(text))]
    else:
        gpus = text.split(",")
    return gpus if len(gpus) > 1 else []       # one GPU or none: this process, as without --devices



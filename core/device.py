"""Device policy, in one place: which device and dtype each model runs with.

- CUDA when present (or the device asked for); compute capability >= 8.0 (Ampere or newer):
  bfloat16 with TF32 matmuls enabled; older GPUs: float16.
- CPU: float32 (the tiny profile runs here).

torch is imported inside the functions, so importing this module stays light.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from core.errors import UsageError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DevicePolicy:
    device: str            # "cuda", "cuda:1", "cpu"
    dtype_name: str        # "bfloat16", "float16", "float32"
    tf32: bool
    capability: tuple[int, int] | None = None
    name: str = "cpu"

    @property
    def is_cuda(self) -> bool:
        return self.device.startswith("cuda")

    @property
    def dtype(self) -> Any:
        import torch

        return getattr(torch, self.dtype_name)

    def autocast(self) -> Any:
        """An autocast context for this policy (a no-op context on CPU/float32)."""
        import contextlib

        import torch

        if self.is_cuda and self.dtype_name != "float32":
            return torch.autocast("cuda", dtype=self.dtype)
        return contextlib.nullcontext()

    def describe(self) -> str:
        cap = f" sm_{self.capability[0]}{self.capability[1]}" if self.capability else ""
        return f"{self.device} ({self.name}{cap}) {self.dtype_name}{' +TF32' if self.tf32 else ''}"


def policy_for(capability: tuple[int, int] | None, device: str = "cuda", name: str = "cpu") -> DevicePolicy:
    """The dtype rule by itself (testable without a GPU)."""
    if capability is None or not device.startswith("cuda"):
        return DevicePolicy("cpu" if not device.startswith("cuda") else device, "float32", False, None, name)
    if capability >= (8, 0):
        return DevicePolicy(device, "bfloat16", True, capability, name)
    return DevicePolicy(device, "float16", False, capability, name)


_DEVICE = re.compile(r"auto|cpu|cuda(:\d+)?")
DEVICE_HELP = "auto, cpu, cuda or cuda:N"


def check_device(value: str | None, flag: str = "--device") -> None:
    """A usage error unless ``value`` is a device name ``resolve_device`` accepts (None means auto)."""
    if value is not None and not _DEVICE.fullmatch(value.strip().lower()):
        raise UsageError(f"{flag} {value!r}: use {DEVICE_HELP}")


def resolve_device(requested: str | None = None, profile: str = "full", apply: bool = True) -> DevicePolicy:
    """Pick the device for a model. ``requested``: "auto"/None, "cpu", "cuda" or "cuda:N".

    The tiny profile runs on CPU in float32 unless a device is asked for explicitly. With
    ``apply``, TF32 is switched on for matmuls and cuDNN when the policy says so.
    """
    import torch

    req = (requested or "auto").strip().lower()
    if req == "auto":
        req = "cuda" if (profile != "tiny" and torch.cuda.is_available()) else "cpu"
    if req == "cpu":
        return DevicePolicy("cpu", "float32", False)
    check_device(req, "device")
    if not torch.cuda.is_available():
        raise UsageError(f"device {requested!r} asked for, but CUDA is not available on this machine")
    index = int(req.split(":", 1)[1]) if ":" in req else torch.cuda.current_device()
    if index >= torch.cuda.device_count():
        raise UsageError(f"device {requested!r} asked for, but only {torch.cuda.device_count()} GPU(s) exist")
    cap = tuple(torch.cuda.get_device_capability(index))
    policy = policy_for(cap, f"cuda:{index}", torch.cuda.get_device_name(index))  # type: ignore[arg-type]
    if apply and policy.tf32:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    return policy


def memory_snapshot(device: str | None = None) -> dict[str, float]:
    """GPU memory current/peak (GB) for the device when CUDA is in use, and process RSS (MB)."""
    out: dict[str, float] = {}
    try:
        import resource

        out["ram_peak_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1)
    except (ImportError, OSError):
        pass
    try:
        with open("/proc/self/statm") as fh:
            import os

            out["ram_used_mb"] = round(int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20, 1)
    except (OSError, ValueError, IndexError):
        pass
    if device is not None and str(device).startswith("cuda"):
        import torch

        out["gpu_memory_used_gb"] = round(torch.cuda.memory_allocated(device) / 2**30, 3)
        out["gpu_memory_peak_gb"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 3)
    return out


# Intra-op threads for tiny models on the CPU (None: torch's default). They are far too small to gain
# from threads, and on a shared 2-core machine two threads spin against each other: the demo's edit
# step took 9 s with 1 thread against 31-76 s with 2 under load (bench/edit_quality.py).
TINY_CPU_THREADS: int | None = 1


@contextlib.contextmanager
def torch_threads(count: int | None) -> Iterator[None]:
    """Run the block with ``count`` torch intra-op threads, then restore; ``None`` changes nothing."""
    if count is None:
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def tiny_cpu_threads(profile: str, on_cpu: bool) -> int | None:
    """The thread count for ``torch_threads``: ``TINY_CPU_THREADS`` for a tiny run on the CPU, else None."""
    return TINY_CPU_THREADS if profile == "tiny" and on_cpu else None

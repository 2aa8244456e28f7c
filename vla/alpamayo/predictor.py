"""Alpamayo-R1 behind the trajectory-model interface: one call plans a batch (the original and the edited
input of a clip) with the same seed.

The seed fixes both random streams of a call: the reasoning tokens are sampled from torch's generator
seeded with it (top-p 0.98, temperature 0.6, as upstream runs the model), and the flow's start noise is
drawn from a separate generator seeded with it before anything else, ``[S, 64, 2]`` once and given to
every input, so sample ``k`` of the original and of the edited input start from the same noise whatever
the lengths of their reasoning.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from core.device import DevicePolicy, memory_snapshot
from vla.alpamayo.loader import LoadedAlpamayo
from vla.alpamayo.processor import tokenize
from vla.model_io import ModelInput, Prediction

TOP_P = 0.98
TEMPERATURE = 0.6


def start_noise(seed: int, samples: int, dims: tuple[int, int]) -> torch.Tensor:
    """The flow's noise at t=0 for ``samples`` trajectories, from ``seed`` alone."""
    return torch.randn(samples, *dims, generator=torch.Generator("cpu").manual_seed(int(seed)))


class AlpamayoPredictor:
    name = "alpamayo"

    def __init__(self, loaded: LoadedAlpamayo, policy: DevicePolicy, num_samples: int = 1,
                 max_new_tokens: int = 256, top_p: float = TOP_P, temperature: float = TEMPERATURE) -> None:
        self.model, self.processor = loaded.model, loaded.processor
        self.loaded = loaded
        self.policy = policy
        self.device = policy.device if policy.is_cuda else None
        self.num_samples, self.max_new_tokens = num_samples, max_new_tokens
        self.top_p, self.temperature = top_p, temperature

    def describe(self) -> dict[str, Any]:
        return {"model": self.name, **self.loaded.description, "num_traj_samples": self.num_samples,
                "top_p": self.top_p, "temperature": self.temperature, "max_generation_length": self.max_new_tokens,
                "diffusion_steps": self.model.diffusion_steps, "uses_images": True,
                "paired": "inputs of one call share the seed and the flow's start noise"}

    def predict(self, inputs: Sequence[ModelInput], seed: int = 0) -> list[Prediction]:
        device = self.policy.device
        noise = start_noise(seed, self.num_samples, self.model.action_space.dims).repeat(len(inputs), 1, 1)
        tokenized = {k: v.to(device) for k, v in tokenize(self.processor, [self._images(i) for i in inputs]).items()}
        history_xyz = torch.from_numpy(np.stack([i.ego_history_xyz for i in inputs])).float().to(device)
        history_rot = torch.from_numpy(np.stack([i.ego_history_rot for i in inputs])).float().to(device)
        if "pixel_values" in tokenized:
            tokenized["pixel_values"] = tokenized["pixel_values"].to(self.policy.dtype)
        autocast = (torch.autocast(device.split(":")[0], dtype=self.policy.dtype)
                    if self.policy.is_cuda and self.policy.dtype_name != "float32" else contextlib.nullcontext())
        torch.manual_seed(int(seed))
        if self.policy.is_cuda:
            torch.cuda.manual_seed_all(int(seed))
            torch.cuda.reset_peak_memory_stats(device)
        start = time.perf_counter()
        with torch.inference_mode(), autocast:
            out = self.model.sample(tokenized, history_xyz, history_rot, noise, tokenizer=self.processor.tokenizer,
                                    num_samples=self.num_samples, top_p=self.top_p, temperature=self.temperature,
                                    max_new_tokens=self.max_new_tokens)
        if self.policy.is_cuda:
            torch.cuda.synchronize(device)
        seconds = (time.perf_counter() - start) / len(inputs)
        memory = memory_snapshot(self.device)
        xyz = out.xyz.float().cpu().numpy().astype(np.float64)
        rot = out.rot.float().cpu().numpy().astype(np.float64)
        return [Prediction(xyz[b], rot[b], tuple(out.texts["cot"][b]), seconds, memory) for b in range(len(inputs))]

    @staticmethod
    def _images(item: ModelInput) -> np.ndarray:
        """Camera-major frames ``[N * T, H, W, 3]`` (the cameras already sorted by index)."""
        return item.frames.reshape(-1, *item.frames.shape[2:])

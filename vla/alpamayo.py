"""Alpamayo-R1 adapter (NVlabs/alpamayo, package ``alpamayo_r1``; VLA image only).

Loaded once per run in bf16: ``AlpamayoR1.from_pretrained(model_path, dtype=torch.bfloat16)`` and
the processor from ``alpamayo_r1.helper.get_processor``. Each prediction builds the chat message
from every camera's frames (sorted by camera index, as upstream's loader does), tokenises it, and
calls ``sample_trajectories_from_data_with_vlm_rollout`` with top_p 0.98, temperature 0.6,
max_generation_length 256 and ``num_traj_samples``, keeping the chain-of-causation text. The random
generators are reseeded before every call so the original and edited runs of a clip draw the same
sampling noise (a paired comparison). Stage code imports this module only when Alpamayo is selected.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np
import torch

from core.device import memory_snapshot, resolve_device
from vla.model_io import ModelInput, Prediction

log = logging.getLogger(__name__)

TOP_P = 0.98
TEMPERATURE = 0.6
MAX_GENERATION_LENGTH = 256


class AlpamayoModel:
    name = "alpamayo"

    def __init__(self, model: Any, processor: Any, helper: Any, device: str, model_path: str,
                 num_traj_samples: int, seed: int) -> None:
        self.model = model
        self.processor = processor
        self.helper = helper
        self.device = device
        self.model_path = model_path
        self.num_traj_samples = num_traj_samples
        self.seed = seed

    @classmethod
    def load(cls, model_path: str, *, num_traj_samples: int = 1, device: str = "auto",
             seed: int = 42) -> AlpamayoModel:
        from alpamayo_r1 import helper
        from alpamayo_r1.models.alpamayo_r1 import AlpamayoR1

        policy = resolve_device(device, "full")
        if not policy.is_cuda:
            log.warning("Alpamayo-R1 on %s: expect minutes per prediction (it needs a >= 24 GB GPU)",
                        policy.device)
        start = time.perf_counter()
        model = AlpamayoR1.from_pretrained(model_path, dtype=torch.bfloat16).to(policy.device)
        model.eval()
        processor = helper.get_processor(model.tokenizer)
        log.info("loaded Alpamayo-R1 %s on %s in %.1fs", model_path, policy.describe(),
                 time.perf_counter() - start)
        return cls(model, processor, helper, policy.device, model_path, num_traj_samples, seed)

    def describe(self) -> dict[str, Any]:
        return {"model": self.name, "checkpoint": self.model_path, "dtype": "bfloat16", "device": self.device,
                "num_traj_samples": self.num_traj_samples, "top_p": TOP_P, "temperature": TEMPERATURE,
                "max_generation_length": MAX_GENERATION_LENGTH, "seed": self.seed, "uses_images": True}

    def _inputs(self, inputs: ModelInput) -> dict[str, Any]:
        frames = torch.from_numpy(np.ascontiguousarray(inputs.frames)).permute(0, 1, 4, 2, 3)  # N,T,3,H,W
        messages = self.helper.create_message(frames.flatten(0, 1))
        tokenized = self.processor.apply_chat_template(
            messages, tokenize=True, add_generation_prompt=False, continue_final_message=True,
            return_dict=True, return_tensors="pt")
        data = {
            "tokenized_data": tokenized,
            "ego_history_xyz": torch.from_numpy(inputs.ego_history_xyz).float()[None, None],
            "ego_history_rot": torch.from_numpy(inputs.ego_history_rot).float()[None, None],
        }
        return self.helper.to_device(data, self.device)

    def predict(self, inputs: ModelInput) -> Prediction:
        data = self._inputs(inputs)
        cuda = self.device.startswith("cuda")
        torch.manual_seed(self.seed)
        if cuda:
            torch.cuda.manual_seed_all(self.seed)
            torch.cuda.reset_peak_memory_stats(self.device)
            torch.cuda.synchronize(self.device)
        start = time.perf_counter()
        with torch.inference_mode(), torch.autocast(self.device.split(":")[0], dtype=torch.bfloat16):
            pred_xyz, pred_rot, extra = self.model.sample_trajectories_from_data_with_vlm_rollout(
                data=data, top_p=TOP_P, temperature=TEMPERATURE, num_traj_samples=self.num_traj_samples,
                max_generation_length=MAX_GENERATION_LENGTH, return_extra=True)
        if cuda:
            torch.cuda.synchronize(self.device)
        seconds = time.perf_counter() - start
        xyz = pred_xyz[0, 0].float().cpu().numpy().astype(np.float64)      # [S, 64, 3]
        rot = pred_rot[0, 0].float().cpu().numpy().astype(np.float64)      # [S, 64, 3, 3]
        cot = extra.get("cot") if isinstance(extra, dict) else None
        reasoning = tuple(str(t) for t in np.asarray(cot)[0, 0].tolist()) if cot is not None else ()
        return Prediction(xyz, rot, reasoning, seconds, memory_snapshot(self.device if cuda else None))

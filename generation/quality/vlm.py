"""Qwen2.5-VL, loaded once: the caption writer and judge of stage 2.

Entry point: ``QwenVLM(profile, model, device, vram_reserve_gib, unload_after_use)``.

- ``caption(instruction) -> str``: the first FluxFill caption for an edit instruction.
- ``ask(image, prompt, temperature, max_new_tokens, seed) -> str``: one image (or None) + one prompt.
- ``ask_many(images, prompts, ...) -> list[str]``: a batch in one ``generate`` call (left padding).
- ``unload()`` drops the model and empties the CUDA cache; ``maybe_unload()`` does so only when
  ``unload_after_use`` (``VP_UNLOAD_QWEN_AFTER_USE=1``) is set. The next question reloads it.
- ``describe()`` for the run manifest.

Profiles: ``full`` loads ``Qwen/Qwen2.5-VL-7B-Instruct`` (``model="72B"`` the 72B one; a hub id or
a local folder works too) in the device policy's dtype; ``tiny`` builds random weights from a tiny
config (``generation.quality.tiny_vlm``) and generates at most 8 new tokens per answer (its answers are
noise either way). Both use the same processor class (image-only, so no torchvision is needed) and
the same generation code.

GPU budget (``QWEN_VRAM_RESERVE_GIB``, ``vram_reserve_gib``): 0 (default) puts the whole model on
its device. A positive value R caps Qwen's weights at ``free - R`` GiB, where ``free`` is the
device's free memory when Qwen loads (``torch.cuda.mem_get_info``): R GiB stay free for the models
loaded after it and for activations. Layers beyond the cap are kept in CPU memory by accelerate
(``device_map="auto"``) and streamed to the GPU when used: slower, but it fits.
"""

from __future__ import annotations

import contextlib
import gc
import logging
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch

from core.device import DevicePolicy, memory_snapshot, resolve_device
from core.errors import LanepaintError, UsageError, brief
from generation.config import DEFAULT_QWEN, QWEN_SIZES, qwen_source  # noqa: F401  (re-exported)
from generation.quality.judge_parse import clean_caption
from generation.quality.judge_prompts import caption_prompt
from generation.quality.tiny_vlm import TINY_SOURCE

log = logging.getLogger(__name__)

GIB = 2**30
TINY_MAX_NEW_TOKENS = 8   # random weights say nothing worth waiting for: a few tokens, instant


def memory_plan(policy: DevicePolicy, reserve_gib: float, free_bytes: int | None = None) -> dict[str, Any]:
    """``from_pretrained`` placement arguments for Qwen on ``policy.device`` (see module docstring)."""
    if not policy.is_cuda or reserve_gib <= 0:
        return {"device_map": {"": policy.device}}
    index = int(policy.device.split(":", 1)[1]) if ":" in policy.device else 0
    if free_bytes is None:
        free_bytes, _total = torch.cuda.mem_get_info(index)
    budget = max(int(free_bytes - reserve_gib * GIB), 0)
    if budget < GIB:
        log.warning("Qwen GPU budget %.2f GiB (free %.1f GiB - reserve %g GiB): almost all of Qwen runs from "
                    "CPU memory; lower QWEN_VRAM_RESERVE_GIB", budget / GIB, free_bytes / GIB, reserve_gib)
    return {"device_map": "auto", "max_memory": {index: budget, "cpu": 1024 * GIB}}


def _to_pil(image: Any) -> Any:
    from PIL import Image

    if isinstance(image, Image.Image):
        return image.convert("RGB")
    array = np.asarray(image)
    if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] != 3:
        raise ValueError(f"image must be uint8 [H,W,3], got {array.dtype} {list(array.shape)}")
    return Image.fromarray(array)


class QwenVLM:
    """Qwen2.5-VL for captions and verdicts; load once, reuse for every video and instruction."""

    def __init__(self, profile: str = "full", model: str | None = DEFAULT_QWEN, device: str | None = None,
                 vram_reserve_gib: float = 0.0, unload_after_use: bool = False,
                 cache_dir: str | None = None):
        if profile not in ("full", "tiny"):
            raise UsageError(f"profile {profile!r}: use full or tiny")
        if vram_reserve_gib < 0:
            raise UsageError(f"Qwen VRAM reserve {vram_reserve_gib} GiB: must be >= 0")
        self.profile = profile
        self.source = qwen_source(model) if profile == "full" else TINY_SOURCE
        self.requested_device = device
        self.vram_reserve_gib = float(vram_reserve_gib)
        self.unload_after_use = bool(unload_after_use)
        self.cache_dir = cache_dir
        self.load_count = 0
        self.policy: DevicePolicy | None = None
        self.plan: dict[str, Any] = {}
        self._model: Any = None
        self._processor: Any = None

    # ---- lifecycle -----------------------------------------------------------------------------
    @property
    def loaded(self) -> bool:
        return self._model is not None

    def load(self) -> QwenVLM:
        """Load the model and processor (no-op when loaded)."""
        if self._model is not None:
            return self
        self.policy = resolve_device(self.requested_device, self.profile)
        if self.profile == "tiny":
            from generation.quality.tiny_vlm import build_tiny_qwen

            self._model, self._processor = build_tiny_qwen(self.policy.device, self.policy.dtype)
            self.plan = {"device_map": {"": self.policy.device}}
        else:
            try:
                self._model, self._processor = self._load_full(self.policy)
            except (OSError, ValueError) as exc:   # no network / no cache / not a Qwen2.5-VL folder
                raise LanepaintError(f"cannot load Qwen2.5-VL from {self.source}: "
                                     f"{brief(exc)}") from None
        self.load_count += 1
        log.info("Qwen2.5-VL %s loaded on %s (load #%d, placement %s) %s", self.source, self.policy.describe(),
                 self.load_count, self._plan_text(), memory_snapshot(self.policy.device))
        return self

    def _load_full(self, policy: DevicePolicy) -> tuple[Any, Any]:
        from transformers import AutoTokenizer, Qwen2_5_VLForConditionalGeneration

        from core.model_lock import pinned_revision
        from core.tokenizers import qwen_image_processor_class
        from generation.quality.tiny_vlm import build_processor

        revision = pinned_revision(self.source, self.cache_dir)
        tokenizer = AutoTokenizer.from_pretrained(self.source, cache_dir=self.cache_dir, revision=revision)
        image_processor = qwen_image_processor_class().from_pretrained(self.source, cache_dir=self.cache_dir,
                                                                       revision=revision)
        processor = build_processor(image_processor, tokenizer)
        self.plan = memory_plan(policy, self.vram_reserve_gib)
        model = Qwen2_5_VLForConditionalGeneration.from_pretrained(
            self.source, dtype=policy.dtype, cache_dir=self.cache_dir, revision=revision, **self.plan)
        return model.eval(), processor

    def _plan_text(self) -> str:
        if self.plan.get("device_map") != "auto":
            return "whole model on its device"
        budget = next(v for k, v in self.plan["max_memory"].items() if k != "cpu")
        return f"weights capped at {budget / GIB:.1f} GiB on the GPU (reserve {self.vram_reserve_gib:g} GiB), rest on CPU"

    def unload(self) -> None:
        """Drop the model and processor and release their GPU memory (the next call reloads)."""
        if self._model is None:
            return
        device = self.policy.device if self.policy else None
        self._model = None
        self._processor = None
        gc.collect()
        if device and device.startswith("cuda"):
            torch.cuda.empty_cache()
        log.info("Qwen2.5-VL unloaded %s", memory_snapshot(device))

    def maybe_unload(self) -> bool:
        """Unload when configured to (``VP_UNLOAD_QWEN_AFTER_USE``); True when it did."""
        if self.unload_after_use and self.loaded:
            self.unload()
            return True
        return False

    def weight_bytes(self) -> int:
        """Bytes of the loaded weights and buffers (0 when not loaded), for the memory plan."""
        if self._model is None:
            return 0
        tensors = list(self._model.parameters()) + list(self._model.buffers())
        return int(sum(t.numel() * t.element_size() for t in tensors))

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": "Qwen2.5-VL", "source": self.source, "profile": self.profile,
                               "vram_reserve_gib": self.vram_reserve_gib, "unload_after_use": self.unload_after_use}
        if self.policy is not None:
            out.update(device=self.policy.device, dtype=self.policy.dtype_name)
        if self._model is not None:
            out["parameters"] = int(sum(p.numel() for p in self._model.parameters()))
            out["placement"] = self._plan_text()
        return out

    # ---- generation ----------------------------------------------------------------------------
    @contextlib.contextmanager
    def _seeded(self, seed: int | None) -> Iterator[None]:
        if seed is None:
            yield
            return
        assert self.policy is not None
        devices = [int(self.policy.device.split(":", 1)[1]) if ":" in self.policy.device
                   else torch.cuda.current_device()] if self.policy.is_cuda else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            yield

    def ask_many(self, images: Sequence[Any], prompts: Sequence[str], *, temperature: float = 0.1,
                 max_new_tokens: int = 512, seed: int | None = None, system: str | None = None) -> list[str]:
        """One answer per (image or None, prompt), generated together in one batch."""
        if len(images) != len(prompts):
            raise ValueError(f"{len(images)} images but {len(prompts)} prompts")
        if not prompts:
            return []
        self.load()
        if self.profile == "tiny":
            max_new_tokens = min(max_new_tokens, TINY_MAX_NEW_TOKENS)
        processor, model = self._processor, self._model
        texts, pil_images = [], []
        for image, prompt in zip(images, prompts, strict=True):
            content: list[dict[str, Any]] = [] if image is None else [{"type": "image"}]
            content.append({"type": "text", "text": prompt})
            messages = ([{"role": "system", "content": system}] if system else []) + [
                {"role": "user", "content": content}]
            texts.append(processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False))
            if image is not None:
                pil_images.append(_to_pil(image))
        inputs = processor(images=pil_images or None, text=texts, padding=True, return_tensors="pt")
        inputs = inputs.to(model.device)
        if "pixel_values" in inputs:
            inputs["pixel_values"] = inputs["pixel_values"].to(model.dtype)
        options: dict[str, Any] = {"max_new_tokens": int(max_new_tokens), "do_sample": temperature > 0}
        if temperature > 0:  # the temperature alone shapes sampling: checkpoint top-k/top-p off
            options.update(temperature=float(temperature), top_k=0, top_p=1.0)
        with torch.inference_mode(), self._seeded(seed):
            output = model.generate(**inputs, **options)
        new_tokens = output[:, inputs["input_ids"].shape[1]:]
        return [str(t) for t in processor.batch_decode(new_tokens, skip_special_tokens=True)]

    def ask(self, image: Any, prompt: str, temperature: float = 0.1, max_new_tokens: int = 512,
            seed: int | None = None) -> str:
        """The model's answer to ``prompt`` about ``image`` (uint8 [H,W,3], PIL, or None)."""
        return self.ask_many([image], [prompt], temperature=temperature, max_new_tokens=max_new_tokens,
                             seed=seed)[0]

    def caption(self, instruction: str, temperature: float = 0.1, max_new_tokens: int = 120,
                seed: int | None = None) -> str:
        """The first FluxFill caption for an edit instruction (the instruction itself if the answer is empty)."""
        raw = self.ask(None, caption_prompt(instruction), temperature=temperature,
                       max_new_tokens=max_new_tokens, seed=seed)
        caption = clean_caption(raw, fallback=instruction)
        log.debug("caption for %r: %r", instruction, caption)
        return caption

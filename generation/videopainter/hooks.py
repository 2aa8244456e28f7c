"""Inject the VideoPainter branch into an upstream ``CogVideoXTransformer3DModel`` without forking it.

VideoPainter's fork adds, after backbone block ``i``, the branch output ``i // ceil(L / n)`` (``L``
backbone blocks, ``n`` branch blocks: 42 and 2 in CogVideoX-5b-I2V, so ``i // 21``). With
``mask_add`` the residual goes only to video tokens whose 2x2-pooled latent mask is 0 (pure
background); tokens touching the inpainting region are left to the backbone.

Upstream diffusers has no such argument, so ``BranchInjection`` registers a forward hook on every
``CogVideoXBlock`` for the duration of one transformer call and removes them on exit: the model
object is never modified, and a call outside the ``with`` block is plain CogVideoX.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


def branch_index(block_index: int, num_blocks: int, num_samples: int) -> int:
    """Which branch output backbone block ``block_index`` receives (``i // ceil(L / n)``)."""
    interval = max(1, math.ceil(num_blocks / num_samples))
    return min(block_index // interval, num_samples - 1)


def pooled_token_mask(latent_mask: torch.Tensor, patch_size: int) -> torch.Tensor:
    """The latent mask averaged over each patch, in token order: ``[B, F * h/p * w/p]``.

    ``latent_mask``: ``[B, F, 1, h, w]`` (1 = inpaint) on the latent grid, the layout the patch
    embedding flattens (frame-major, then rows, then columns).
    """
    b, f, c, h, w = latent_mask.shape
    if c != 1:
        raise ValueError(f"latent mask must have one channel, got {c}")
    pooled = F.avg_pool2d(latent_mask.reshape(b * f, 1, h, w).float(), kernel_size=patch_size, stride=patch_size)
    return pooled.reshape(b, f * (h // patch_size) * (w // patch_size))


def background_tokens(latent_mask: torch.Tensor, patch_size: int) -> torch.Tensor:
    """``[B, N, 1]`` bool: True for tokens whose pooled mask is exactly 0 (mask_add targets)."""
    return (pooled_token_mask(latent_mask, patch_size) == 0)[..., None]


class BranchInjection:
    """``with BranchInjection(transformer, samples, keep): transformer(...)`` adds the branch residuals.

    ``samples``: the branch outputs, each ``[B, N, D]`` for the N video tokens; ``keep``: optional
    ``[B, N, 1]`` bool, True where a residual may be added (``background_tokens`` for mask_add).
    """

    def __init__(self, transformer: nn.Module, samples: Sequence[torch.Tensor],
                 keep: torch.Tensor | None = None) -> None:
        if not samples:
            raise ValueError("BranchInjection needs at least one branch output")
        self.blocks = list(transformer.transformer_blocks)
        self.samples = list(samples)
        self.keep = keep
        self._handles: list[Any] = []

    def _hook(self, block_index: int):
        sample_index = branch_index(block_index, len(self.blocks), len(self.samples))

        def add_residual(module: nn.Module, args: Any, output: tuple[torch.Tensor, torch.Tensor]):
            hidden_states, encoder_hidden_states = output
            residual = self.samples[sample_index].to(hidden_states.dtype)
            if residual.shape != hidden_states.shape:
                raise ValueError(f"branch output {tuple(residual.shape)} does not match block {block_index} "
                                 f"video tokens {tuple(hidden_states.shape)}")
            if self.keep is None:
                hidden_states = hidden_states + residual
            else:
                hidden_states = torch.where(self.keep, hidden_states + residual, hidden_states)
            return hidden_states, encoder_hidden_states

        return add_residual

    def __enter__(self) -> BranchInjection:
        try:
            for i, block in enumerate(self.blocks):
                self._handles.append(block.register_forward_hook(self._hook(i)))
        except Exception:
            self.remove()
            raise
        return self

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def __exit__(self, *exc: object) -> None:
        self.remove()

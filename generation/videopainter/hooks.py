"""Inject the VideoPainter branch into an upstream ``CogVideoXTransformer3DModel`` without forking it.

VideoPainter's fork adds, after backbone block ``i``, the branch output ``i // ceil(L / n)`` (``L``
backbone blocks, ``n`` branch blocks: 42 and 2 in CogVideoX-5b-I2V, so ``i // 21``). With
``mask_add`` the residual goes only to video tokens whose 2x2-pooled latent mask is 0 (pure
background); tokens touching the inpainting region are left to the backbone.

Upstream diffusers has no such argument, so every ``CogVideoXBlock`` gets a diffusers ``ModelHook``
(``install_branch_hooks``) that adds its residual after the block's own forward, and only while a
``with BranchInjection(...)`` block has set the residuals: a call outside it is plain CogVideoX. The
hook lives in the block's diffusers ``HookRegistry``, installed before any cache hook, so diffusers'
step caching (First Block Cache) sees block outputs that already carry the residual: a skipped block
adds nothing, and the cached residual of the skipped stack holds the branch's share once. (A torch
forward hook would run outside the registry and add the residual again on every skipped block.)
The hook also counts the block forwards it sees, which is how tests and benches measure what
caching skipped.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from diffusers.hooks import HookRegistry, ModelHook
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


HOOK_NAME = "videopainter_branch"


class InjectionSlot:
    """What the branch hooks of one transformer read: the residuals of the current call (or None) and
    a count of the block forwards computed since the last ``reset_count``."""

    def __init__(self, num_blocks: int) -> None:
        self.num_blocks = num_blocks
        self.samples: list[torch.Tensor] | None = None
        self.keep: torch.Tensor | None = None
        self.block_calls = 0

    def reset_count(self) -> None:
        self.block_calls = 0


class _BranchResidualHook(ModelHook):
    """Adds branch output ``branch_index(i)`` to block ``i``'s video tokens, after the block."""

    _is_stateful = False

    def __init__(self, slot: InjectionSlot, block_index: int) -> None:
        super().__init__()
        self.slot, self.block_index = slot, block_index

    def post_forward(self, module: nn.Module, output: tuple[torch.Tensor, torch.Tensor]) -> Any:
        slot = self.slot
        slot.block_calls += 1
        if slot.samples is None:
            return output
        hidden_states, encoder_hidden_states = output
        index = branch_index(self.block_index, slot.num_blocks, len(slot.samples))
        residual = slot.samples[index].to(hidden_states.dtype)
        if residual.shape != hidden_states.shape:
            raise ValueError(f"branch output {tuple(residual.shape)} does not match block {self.block_index} "
                             f"video tokens {tuple(hidden_states.shape)}")
        if slot.keep is None:
            hidden_states = hidden_states + residual
        else:
            hidden_states = torch.where(slot.keep, hidden_states + residual, hidden_states)
        return hidden_states, encoder_hidden_states


def install_branch_hooks(transformer: nn.Module) -> InjectionSlot:
    """The transformer's injection slot, installing the block hooks on first use.

    They must be the innermost hooks of each block: a block that already carries another diffusers
    hook (a cache enabled before the pipeline was built) is a clear error rather than a wrong sum.
    """
    blocks = list(transformer.transformer_blocks)
    existing = getattr(blocks[0], "_diffusers_hook", None)
    if existing is not None and existing.get_hook(HOOK_NAME) is not None:
        return existing.get_hook(HOOK_NAME).slot
    slot = InjectionSlot(len(blocks))
    for i, block in enumerate(blocks):
        registry = HookRegistry.check_if_exists_or_initialize(block)
        if registry._hook_order:
            raise ValueError(f"transformer block {i} already has diffusers hooks {registry._hook_order}: enable step "
                             "caching (and other block hooks) after building the VideoPainter pipeline")
        registry.register_hook(_BranchResidualHook(slot, i), HOOK_NAME)
    return slot


class BranchInjection:
    """``with BranchInjection(transformer, samples, keep): transformer(...)`` adds the branch residuals.

    ``samples``: the branch outputs, each ``[B, N, D]`` for the N video tokens; ``keep``: optional
    ``[B, N, 1]`` bool, True where a residual may be added (``background_tokens`` for mask_add).
    """

    def __init__(self, transformer: nn.Module, samples: Sequence[torch.Tensor],
                 keep: torch.Tensor | None = None) -> None:
        if not samples:
            raise ValueError("BranchInjection needs at least one branch output")
        self.slot = install_branch_hooks(transformer)
        self.samples = list(samples)
        self.keep = keep

    def __enter__(self) -> BranchInjection:
        self.slot.samples, self.slot.keep = self.samples, self.keep
        return self

    def __exit__(self, *exc: object) -> None:
        self.slot.samples, self.slot.keep = None, None

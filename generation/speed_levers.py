"""Speed levers of the two diffusion transformers (CogVideoX + VideoPainter branch, FluxFill).

``apply_speed_levers(transformer, ...)`` switches on, in this order and each optional:

- **float8 weight storage** (``storage="float8"``): diffusers' layerwise casting keeps every linear and
  convolution weight in ``float8_e4m3fn`` and casts it to the compute dtype just before its layer runs
  (norms and embeddings stay as loaded). Weight memory halves against bf16; the arithmetic stays in the
  compute dtype, so the change is the rounding of the weights (about 2^-4 relative).
- **step caching** (``cache_threshold > 0``): diffusers' First Block Cache. At every step the first
  transformer block runs; when its residual moved by less than ``threshold`` (relative mean absolute
  change) since the last fully computed step, the other blocks are skipped and their cached summed
  residual is added instead. The VideoPainter branch residuals are hooks inside each block's registry
  (``videopainter.hooks``), so the cached residual holds them exactly once.
- **regional compile** (``compile="regional"``): ``torch.compile`` of each transformer block (the
  blocks repeat, so one compilation serves them all); the first call compiles.

Why First Block Cache and not the other caches diffusers ships: it decides per step from the model's
own first-block output (no schedule to tune per model and step count), and it keeps a handful of
block-sized tensors per context (the head block's output and residual, the tail residuals), about 1 GB
for CogVideoX-5B at 49 frames with CFG ([2, 17550, 3072] in bf16 is 0.2 GB). TaylorSeer keeps
Taylor factors of every attention output of every block (42 blocks x 2 outputs x (order + 1) tensors
of [2, 17776, 3072], tens of GB at bf16), needs warm-up steps, and at the same share of block calls
skipped changed the tiny models' output about 4x more; Pyramid Attention Broadcast and
FasterCache skip attention on a fixed timestep schedule that was tuned for plain CogVideoX, not for a
backbone that receives the branch residual at every block. The figures are in docs/benchmarks.md
(``bench/stage2_levers.py``).
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from torch import nn

log = logging.getLogger(__name__)

STORAGE_CHOICES = ("compute", "float8")
COMPILE_CHOICES = ("none", "regional")
BLOCK_LISTS = ("transformer_blocks", "single_transformer_blocks")


def transformer_blocks(module: nn.Module) -> list[nn.Module]:
    """The repeated blocks of a diffusion transformer (CogVideoX, the branch, Flux's two lists)."""
    return [block for name in BLOCK_LISTS for block in getattr(module, name, ())]


def apply_speed_levers(transformer: nn.Module, *, cache_threshold: float = 0.0, storage: str = "compute",
                       compile: str = "none", compute_dtype: torch.dtype | None = None,
                       extra_modules: tuple[nn.Module, ...] = (), compile_backend: str = "inductor") -> dict[str, Any]:
    """Switch the levers on for ``transformer`` (and ``extra_modules``: storage and compile only, e.g. the
    VideoPainter branch); returns what was applied, for the manifest. See the module docstring."""
    if storage not in STORAGE_CHOICES:
        raise ValueError(f"storage must be one of {', '.join(STORAGE_CHOICES)}, got {storage!r}")
    if compile not in COMPILE_CHOICES:
        raise ValueError(f"compile must be one of {', '.join(COMPILE_CHOICES)}, got {compile!r}")
    if cache_threshold < 0:
        raise ValueError(f"cache threshold must be >= 0, got {cache_threshold}")
    applied: dict[str, Any] = {"step_cache": None, "storage": storage, "compile": compile}
    modules = (transformer, *extra_modules)
    if storage == "float8":
        dtype = compute_dtype or transformer.dtype
        for module in modules:
            module.enable_layerwise_casting(storage_dtype=torch.float8_e4m3fn, compute_dtype=dtype)
        applied["storage"] = f"float8_e4m3fn weights, {str(dtype).removeprefix('torch.')} compute"
    if cache_threshold > 0:
        from diffusers.hooks import FirstBlockCacheConfig

        transformer.enable_cache(FirstBlockCacheConfig(threshold=float(cache_threshold)))
        applied["step_cache"] = {"method": "first-block", "threshold": float(cache_threshold)}
    if compile == "regional":
        blocks = [block for module in modules for block in transformer_blocks(module)]
        for block in blocks:
            _compile_block_forward(block, compile_backend)
        applied["compile"] = f"regional ({len(blocks)} blocks, {compile_backend})"
    return applied


def _compile_block_forward(block: nn.Module, backend: str) -> None:
    """Compile the block's own forward, under any diffusers hooks (branch residual, cache).

    ``block.compile()`` would trace the hook wrappers too; they differ per block, so every block would be
    compiled on its own and past dynamo's recompile limit the rest would silently run eagerly. The
    block class's forward is one code object for all blocks: compiled once, reused by each.
    """
    registry = getattr(block, "_diffusers_hook", None)
    refs = getattr(registry, "_fn_refs", None)
    if not refs:
        block.forward = torch.compile(block.forward, backend=backend, dynamic=False)
        return
    inner = refs[0]   # the innermost hook holds the block's own forward
    if inner.original_forward is not None:   # a hook that replaces forward (a cache's) calls original_forward
        inner.original_forward = torch.compile(inner.original_forward, backend=backend, dynamic=False)
    else:                                    # a hook around forward (the branch residual's) calls forward
        inner.forward = torch.compile(inner.forward, backend=backend, dynamic=False)


def cache_enabled(transformer: nn.Module) -> bool:
    return bool(getattr(transformer, "is_cache_enabled", False))


def reset_step_cache(transformer: nn.Module) -> None:
    """Forget the cached residuals (a new window or image starts from pure noise)."""
    if cache_enabled(transformer):
        transformer._reset_stateful_cache()

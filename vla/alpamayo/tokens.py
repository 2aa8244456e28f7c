"""Alpamayo-R1's token vocabulary on top of the Qwen3-VL tokenizer, and its ego-history tokens.

The tokenizer gets ``<i0> .. <i{traj_vocab_size - 1}>`` (trajectory bins, plain tokens) and then the
special tokens: the six trajectory markers, or (``add_special_tokens``) the whole reasoning vocabulary
(``<|cot_start|>``, ``<|cot_end|>``, ...). The prompt carries 48 ``<|traj_history|>`` placeholders; the
model replaces them with the ego history's delta tokens: the 16 history positions as 16 x 3 deltas
(the first from the origin), each scaled from ``[xyz_min, xyz_max]`` to ``num_bins`` bins.
"""

from __future__ import annotations

from typing import Any

import torch

TRAJ_TOKENS = {
    "history": "<|traj_history|>", "future": "<|traj_future|>",
    "history_start": "<|traj_history_start|>", "future_start": "<|traj_future_start|>",
    "history_end": "<|traj_history_end|>", "future_end": "<|traj_future_end|>",
}
SPECIAL_TOKEN_NAMES = (
    "prompt_start", "prompt_end", "image_start", "image_pre_tkn", "image_end", "traj_history_start",
    "traj_history_pre_tkn", "traj_history_end", "cot_start", "cot_end", "meta_action_start", "meta_action_end",
    "traj_future_start", "traj_future_pre_tkn", "traj_future_end", "traj_history", "traj_future", "image_pad",
    "vectorized_wm", "vectorized_wm_start", "vectorized_wm_end", "vectorized_wm_pre_tkn", "route_start",
    "route_pad", "route_end", "question_start", "question_end", "answer_start", "answer_end",
)
TEXT_FIELDS = ("cot", "meta_action", "answer")      # what the reasoning returns, between <|x_start|>/<|x_end|>


def special(name: str) -> str:
    return f"<|{name}|>"


def extend_tokenizer(tokenizer: Any, traj_vocab_size: int, add_special_tokens: bool) -> Any:
    """Add the trajectory bins and the special tokens in the checkpoint's order (ids must match it)."""
    if traj_vocab_size:
        tokenizer.add_tokens([f"<i{v}>" for v in range(traj_vocab_size)])
    names = [special(n) for n in SPECIAL_TOKEN_NAMES] if add_special_tokens else list(TRAJ_TOKENS.values())
    tokenizer.add_tokens(names, special_tokens=True)
    return tokenizer


def history_tokens(history_xyz: torch.Tensor, num_bins: int, xyz_min: tuple[float, float, float],
                   xyz_max: tuple[float, float, float]) -> torch.Tensor:
    """``[B, T * 3]`` bin indices of the deltas of history positions ``[B, T, 3]`` (first delta from 0)."""
    padded = torch.nn.functional.pad(history_xyz, [0, 0, 1, 0])
    deltas = padded[:, 1:] - padded[:, :-1]
    low = torch.tensor(xyz_min, dtype=deltas.dtype, device=deltas.device)
    high = torch.tensor(xyz_max, dtype=deltas.dtype, device=deltas.device)
    bins = ((deltas - low) / (high - low) * (num_bins - 1)).round().long().clamp(0, num_bins - 1)
    return bins.flatten(1)


def first_index(tokens: torch.Tensor, token_id: int) -> torch.Tensor:
    """Per row of ``[B, L]``, the first position of ``token_id`` (the last position when it is absent)."""
    hits = tokens == token_id
    last = torch.full((tokens.shape[0],), tokens.shape[1] - 1, device=tokens.device)
    return torch.where(hits.any(1), hits.int().argmax(1), last)


def pad_after(tokens: torch.Tensor, stop_id: int, pad_id: int) -> torch.Tensor:
    """``tokens`` with every position after the first ``stop_id`` of a row set to ``pad_id``."""
    positions = torch.arange(tokens.shape[1], device=tokens.device)[None]
    stop = torch.where(tokens == stop_id, positions, tokens.shape[1]).min(1, keepdim=True).values
    return tokens.masked_fill(positions > stop, pad_id)


def between(text: str, name: str) -> str:
    """The text between the last ``<|name_start|>`` before the first ``<|name_end|>`` and that end marker."""
    head, found, _ = text.partition(special(f"{name}_end"))
    if not found:
        return ""
    start = head.rfind(special(f"{name}_start"))
    return (head[start + len(special(f"{name}_start")):] if start != -1 else head).strip()

"""VideoPainterID: the ID-resampling LoRA for clips longer than one window.

For clips split into several windows, VideoPainter keeps the inpainted region consistent across
windows by letting every backbone self-attention also attend to the masked tokens of the previous
window ("ID resampling"), with a LoRA (rank 256, alpha 128, on ``attn1.to_q/to_k/to_v/to_out.0``)
trained for it. Here:

- ``IDResampleAttnProcessor`` (one per backbone block, set with ``install_id_resampling``) computes
  CogVideoX attention like upstream ``CogVideoXAttnProcessor2_0`` and appends extra keys/values:
  in window 0 those of the window's own masked tokens (how the LoRA was trained), in window k>0
  those of the previous window's masked tokens, recorded at its last denoising step. Keys get the
  rotary embedding of the position they came from. Only masked tokens are appended (selected by
  index, never zero-padded).
- ``load_id_lora`` loads the LoRA through the pipeline's upstream LoRA loader and applies the
  checkpoint's alpha/rank scale when the file does not carry its own metadata.

What is recorded from the previous window is the normalised attention input of the same block
(the quantity the keys are projected from), not the block output VideoPainter's fork keeps.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import torch
import torch.nn.functional as F
from diffusers.models.attention_processor import CogVideoXAttnProcessor2_0
from diffusers.models.embeddings import apply_rotary_emb
from torch import nn

from core.errors import LanepaintError
from generation.lora_weights import WEIGHTS_NAME

log = logging.getLogger(__name__)

ID_ADAPTER = "videopainter_id"


class IDResampleState:
    """Shared by the processors of one transformer: which tokens are masked, what was recorded."""

    def __init__(self) -> None:
        self.active = False
        self.recording = False
        self.current_index: torch.Tensor | None = None     # masked video-token positions, this window
        self.previous_index: torch.Tensor | None = None
        self.previous: dict[int, torch.Tensor] = {}       # block -> [B, M, D] normalised inputs
        self._recorded: dict[int, torch.Tensor] = {}

    def start_window(self, masked_index: torch.Tensor) -> None:
        self.active = True
        self.recording = False
        self.current_index = masked_index
        self._recorded = {}

    def record(self, layer: int, tokens: torch.Tensor) -> None:
        self._recorded[layer] = tokens.detach()

    def finish_window(self) -> None:
        """What this window recorded becomes the next window's "previous"."""
        self.previous, self.previous_index = self._recorded, self.current_index
        self._recorded = {}
        self.recording = False

    def reset(self) -> None:
        self.__init__()


class IDResampleAttnProcessor(CogVideoXAttnProcessor2_0):
    """CogVideoX joint attention plus appended keys/values of masked tokens (see module doc)."""

    def __init__(self, state: IDResampleState, layer: int) -> None:
        super().__init__()
        self.state = state
        self.layer = layer

    def __call__(self, attn: Any, hidden_states: torch.Tensor, encoder_hidden_states: torch.Tensor,
                 attention_mask: torch.Tensor | None = None,
                 image_rotary_emb: tuple[torch.Tensor, torch.Tensor] | None = None) -> tuple[torch.Tensor, ...]:
        state = self.state
        if not state.active or state.current_index is None or attention_mask is not None:
            return super().__call__(attn, hidden_states, encoder_hidden_states, attention_mask, image_rotary_emb)
        current = hidden_states[:, state.current_index]
        if state.recording:
            state.record(self.layer, current)
        extra, extra_index = current, state.current_index
        previous = state.previous.get(self.layer)
        if previous is not None and previous.shape[0] == hidden_states.shape[0]:
            extra, extra_index = previous.to(hidden_states.dtype), state.previous_index

        text_len = encoder_hidden_states.size(1)
        tokens = torch.cat([encoder_hidden_states, hidden_states], dim=1)
        batch = tokens.shape[0]
        heads = attn.heads

        def split(x: torch.Tensor) -> torch.Tensor:
            return x.view(batch, -1, heads, x.shape[-1] // heads).transpose(1, 2)

        query, key, value = split(attn.to_q(tokens)), split(attn.to_k(tokens)), split(attn.to_v(tokens))
        extra_key, extra_value = split(attn.to_k(extra)), split(attn.to_v(extra))
        if attn.norm_q is not None:
            query = attn.norm_q(query)
        if attn.norm_k is not None:
            key = attn.norm_k(key)
            extra_key = attn.norm_k(extra_key)
        if image_rotary_emb is not None:
            query[:, :, text_len:] = apply_rotary_emb(query[:, :, text_len:], image_rotary_emb)
            key[:, :, text_len:] = apply_rotary_emb(key[:, :, text_len:], image_rotary_emb)
            cos, sin = image_rotary_emb
            extra_key = apply_rotary_emb(extra_key, (cos[extra_index], sin[extra_index]))
        key = torch.cat([key, extra_key], dim=2)
        value = torch.cat([value, extra_value], dim=2)
        out = F.scaled_dot_product_attention(query, key, value, dropout_p=0.0, is_causal=False)
        out = out.transpose(1, 2).reshape(batch, -1, heads * query.shape[-1])
        out = attn.to_out[1](attn.to_out[0](out))
        encoder_out, video_out = out.split([text_len, out.size(1) - text_len], dim=1)
        return video_out, encoder_out


def install_id_resampling(transformer: nn.Module) -> IDResampleState:
    """Give every backbone block an ``IDResampleAttnProcessor`` sharing one (inactive) state."""
    state = IDResampleState()
    for i, block in enumerate(transformer.transformer_blocks):
        block.attn1.set_processor(IDResampleAttnProcessor(state, i))
    return state


def load_id_lora(pipe: Any, path: str, alpha: float = 128.0) -> dict[str, Any]:
    """Load the VideoPainterID LoRA (folder with ``pytorch_lora_weights.safetensors``, or the file)
    into ``pipe.transformer`` as adapter ``videopainter_id``; returns a description for the manifest."""
    if os.path.isfile(path):
        folder, weight_name = os.path.dirname(path) or ".", os.path.basename(path)
    elif os.path.isdir(path):
        folder, weight_name = path, WEIGHTS_NAME
        if not os.path.exists(os.path.join(folder, weight_name)):
            raise LanepaintError(f"VideoPainterID LoRA folder {path} has no {WEIGHTS_NAME}")
    else:
        raise LanepaintError(f"VideoPainterID LoRA not found: {path}")
    from safetensors import safe_open

    with safe_open(os.path.join(folder, weight_name), framework="pt") as fh:
        has_metadata = "lora_adapter_metadata" in (fh.metadata() or {})
    pipe.load_lora_weights(folder, weight_name=weight_name, adapter_name=ID_ADAPTER)
    peft_config = pipe.transformer.peft_config[ID_ADAPTER]
    rank = int(peft_config.r)
    # Without metadata the loader assumes alpha == rank; the released LoRA has alpha 128, rank 256.
    weight = 1.0 if has_metadata else float(alpha) / float(rank)
    pipe.set_adapters([ID_ADAPTER], [weight])
    log.info("VideoPainterID LoRA %s: rank %d, scale %.3g", path, rank, weight)
    return {"path": path, "rank": rank, "alpha": "from metadata" if has_metadata else alpha, "scale": weight}

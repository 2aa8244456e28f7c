"""VideoPainterID: the ID-resampling LoRA for clips longer than one window.

For clips split into several windows, VideoPainter keeps the inpainted region consistent across
windows by letting every backbone self-attention also attend to the masked tokens of the previous
window ("ID resampling"), with a LoRA (rank 256, alpha 128, on ``attn1.to_q/to_k/to_v/to_out.0``)
trained for it. Here:

- ``IDResampleAttnProcessor`` (one per backbone block, set with ``install_id_resampling``) computes
  CogVideoX attention like upstream ``CogVideoXAttnProcessor2_0`` and appends extra keys/values, in one
  of two modes:

  - ``fork`` (default: what the released VideoPainterID LoRA was trained and run with, TencentARC's
    ``CogVideoXAttnProcessor2_0_resample``): keys/values over EVERY text and video position, multiplied
    by the resample mask (1 on masked video tokens, 0 elsewhere) before ``norm_k``, so unmasked positions
    become bias-valued keys with zero values. Window 0 appends its own tokens' keys/values; window k>0
    (with ``prev_clip_weight`` > 0) appends those of the previous window's block OUTPUT at its last
    denoising step, normalised by the block's ``norm1`` with the current timestep's embedding, scaled by
    ``prev_clip_weight``. The fork's mask quirk is kept: its pipeline passes the mask the transformer
    returned at the previous call, i.e. the previous window's mask at a window's first step and the
    window's own mask afterwards. RoPE is applied to the appended video positions as to the keys.
  - ``masked``: only the masked tokens are appended (selected by index, never zero-padded), unweighted;
    window k>0 uses the previous window's normalised attention input of the same block, recorded at its
    last step. Keys get the rotary embedding of the position they came from.
- ``load_id_lora`` loads the LoRA through the pipeline's upstream LoRA loader and applies the
  checkpoint's alpha/rank scale when the file does not carry its own metadata.

LoRA scale: training used alpha 128 on rank 256 (scale 0.5); the fork's inference loads the LoRA without
alpha, i.e. at scale 1.0. ``--id-lora-alpha`` sets it (128: training's 0.5; 256: the fork's inference 1.0).
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
FORK, MASKED = "fork", "masked"
MODES = (FORK, MASKED)


class IDResampleState:
    """Shared by the processors of one transformer: which tokens are masked, what was recorded."""

    def __init__(self, mode: str = FORK, prev_clip_weight: float = 0.5) -> None:
        if mode not in MODES:
            raise ValueError(f"ID resampling mode must be one of {', '.join(MODES)}, got {mode!r}")
        self.mode, self.weight = mode, float(prev_clip_weight)
        self.active = False
        self.recording = False
        self.window = -1
        self.current_index: torch.Tensor | None = None     # masked video-token positions, this window
        self.previous_index: torch.Tensor | None = None
        self.previous: dict[int, torch.Tensor] = {}       # block -> [B, M, D] (masked) or [B, S, D] (fork)
        self._recorded: dict[int, torch.Tensor] = {}
        self.token_mask: torch.Tensor | None = None        # fork: [V] bool, this window's masked video tokens
        self.call_mask: torch.Tensor | None = None         # fork: the mask the next call pairs with "previous"
        self.norm_previous: dict[int, torch.Tensor] = {}   # fork: block -> norm1(previous, this step's temb)

    def start_window(self, masked_index: torch.Tensor, token_mask: torch.Tensor | None = None) -> None:
        self.active = True
        self.recording = False
        self.window += 1
        self.current_index = masked_index
        self.token_mask = token_mask
        self._recorded = {}

    def after_call(self) -> None:
        """Fork mode: its pipeline replaces the mask it passes with the one each transformer call returns (this
        window's), so only a window's first call pairs the previous window's states with their own mask."""
        self.call_mask = self.token_mask
        self.norm_previous = {}

    def uses_previous(self) -> bool:
        return self.mode == FORK and self.window > 0 and self.weight > 0 and bool(self.previous)

    def record(self, layer: int, tokens: torch.Tensor) -> None:
        self._recorded[layer] = tokens.detach()

    def finish_window(self) -> None:
        """What this window recorded becomes the next window's "previous"."""
        self.previous, self.previous_index = self._recorded, self.current_index
        self.call_mask = self.token_mask
        self._recorded = {}
        self.recording = False

    def reset(self) -> None:
        self.__init__(self.mode, self.weight)


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
        if state.mode == FORK:
            return self._fork(attn, hidden_states, encoder_hidden_states, image_rotary_emb)
        current = hidden_states[:, state.current_index]
        if state.recording:
            state.record(self.layer, current)
        extra, extra_index = current, state.current_index
        previous = state.previous.get(self.layer)
        if previous is not None and previous.shape[0] == hidden_states.shape[0]:
            extra, extra_index = previous.to(hidden_states.dtype), state.previous_index

        text_len = encoder_hidden_states.size(1)
        tokens = torch.cat([encoder_hidden_states, hidden_states], dim=1)
        cos, sin = image_rotary_emb if image_rotary_emb is not None else (None, None)
        return _attend(attn, tokens, text_len, attn.to_k(tokens), attn.to_v(tokens), attn.to_k(extra),
                       attn.to_v(extra), image_rotary_emb,
                       lambda key: apply_rotary_emb(key, (cos[extra_index], sin[extra_index])))

    def _fork(self, attn: Any, hidden_states: torch.Tensor, encoder_hidden_states: torch.Tensor,
              image_rotary_emb: tuple[torch.Tensor, torch.Tensor] | None) -> tuple[torch.Tensor, ...]:
        """TencentARC's ``CogVideoXAttnProcessor2_0_resample`` (see the module docstring)."""
        state = self.state
        text_len = encoder_hidden_states.size(1)
        tokens = torch.cat([encoder_hidden_states, hidden_states], dim=1)

        def over_sequence(video_mask: torch.Tensor) -> torch.Tensor:      # [1, S, 1]: text never resampled
            full = torch.cat([video_mask.new_zeros(text_len), video_mask])
            return full.to(tokens.dtype)[None, :, None]

        key_in, value_in = attn.to_k(tokens), attn.to_v(tokens)
        previous = state.norm_previous.get(self.layer) if state.uses_previous() else None
        if previous is not None and previous.shape[0] == tokens.shape[0] and state.call_mask is not None:
            mask = over_sequence(state.call_mask) * state.weight
            previous = previous.to(tokens.dtype)
            key_mask, value_mask = attn.to_k(previous) * mask, attn.to_v(previous) * mask
        else:
            mask = over_sequence(state.token_mask)
            key_mask, value_mask = key_in * mask, value_in * mask

        def rotate_video(key: torch.Tensor) -> torch.Tensor:
            key[:, :, text_len:] = apply_rotary_emb(key[:, :, text_len:], image_rotary_emb)
            return key

        return _attend(attn, tokens, text_len, key_in, value_in, key_mask, value_mask, image_rotary_emb,
                       rotate_video)


def _attend(attn: Any, tokens: torch.Tensor, text_len: int, key_in: torch.Tensor, value_in: torch.Tensor,
            extra_key: torch.Tensor, extra_value: torch.Tensor,
            image_rotary_emb: tuple[torch.Tensor, torch.Tensor] | None,
            rotate_extra: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """CogVideoX joint attention over ``tokens`` (text, then video) with extra keys/values appended: every
    key/value comes as its linear projection (before the head split and ``norm_k``); ``rotate_extra(key)``
    applies the rotary embedding to the extra keys. Returns (video, text) outputs, as the upstream processor."""
    batch, heads = tokens.shape[0], attn.heads

    def split(x: torch.Tensor) -> torch.Tensor:
        return x.view(batch, -1, heads, x.shape[-1] // heads).transpose(1, 2)

    query, key, value = split(attn.to_q(tokens)), split(key_in), split(value_in)
    extra_key, extra_value = split(extra_key), split(extra_value)
    if attn.norm_q is not None:
        query = attn.norm_q(query)
    if attn.norm_k is not None:
        key = attn.norm_k(key)
        extra_key = attn.norm_k(extra_key)
    if image_rotary_emb is not None:
        query[:, :, text_len:] = apply_rotary_emb(query[:, :, text_len:], image_rotary_emb)
        key[:, :, text_len:] = apply_rotary_emb(key[:, :, text_len:], image_rotary_emb)
        extra_key = rotate_extra(extra_key)
    key = torch.cat([key, extra_key], dim=2)
    value = torch.cat([value, extra_value], dim=2)
    out = F.scaled_dot_product_attention(query, key, value, dropout_p=0.0, is_causal=False)
    out = out.transpose(1, 2).reshape(batch, -1, heads * query.shape[-1])
    out = attn.to_out[1](attn.to_out[0](out))
    encoder_out, video_out = out.split([text_len, out.size(1) - text_len], dim=1)
    return video_out, encoder_out


class IDHooks:
    """Fork mode, for one transformer call: before each block, the previous window's output of that block
    normalised by its ``norm1`` with this step's timestep embedding; after each block (registered after the
    branch injection, so with its residual), the block's output recorded at a window's last step."""

    def __init__(self, transformer: nn.Module, state: IDResampleState | None, enabled: bool) -> None:
        self.transformer, self.state = transformer, state
        self.enabled = enabled and state is not None and state.mode == FORK
        self.handles: list[Any] = []

    def __enter__(self) -> IDHooks:
        if not self.enabled:
            return self
        for i, block in enumerate(self.transformer.transformer_blocks):
            self.handles.append(block.register_forward_pre_hook(self._normalise(i), with_kwargs=True))
            self.handles.append(block.register_forward_hook(self._record(i)))
        return self

    def _normalise(self, layer: int):
        def hook(block: nn.Module, args: Any, kwargs: dict[str, Any]) -> None:
            state = self.state
            previous = state.previous.get(layer) if state.uses_previous() else None
            encoder = kwargs.get("encoder_hidden_states", args[1] if len(args) > 1 else None)
            if previous is None or encoder is None:
                return
            temb = kwargs.get("temb", args[2] if len(args) > 2 else None)
            text_len = encoder.shape[1]
            video, text, _, _ = block.norm1(previous[:, text_len:], previous[:, :text_len], temb)
            state.norm_previous[layer] = torch.cat([text, video], dim=1)
        return hook

    def _record(self, layer: int):
        def hook(block: nn.Module, args: Any, output: tuple[torch.Tensor, torch.Tensor]) -> None:
            if self.state.recording:
                hidden, encoder = output
                self.state.record(layer, torch.cat([encoder, hidden], dim=1))
        return hook

    def __exit__(self, *exc: object) -> None:
        for handle in self.handles:
            handle.remove()
        self.handles = []
        if self.enabled:
            self.state.after_call()


def install_id_resampling(transformer: nn.Module, mode: str = FORK, prev_clip_weight: float = 0.5) -> IDResampleState:
    """Give every backbone block an ``IDResampleAttnProcessor`` sharing one (inactive) state."""
    state = IDResampleState(mode, prev_clip_weight)
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

"""Alpamayo-R1 on upstream transformers: a Qwen3-VL backbone that reasons, and an expert that plans.

Parts (attribute names are the released checkpoint's key prefixes):

- ``vlm``: ``Qwen3VLForConditionalGeneration`` with the vocabulary extended by the trajectory bins and
  the special tokens (``tokens.extend_tokenizer``);
- ``expert``: a ``Qwen3VLTextModel`` built from a copy of the backbone's text config (with the
  checkpoint's ``expert_cfg`` overrides) and without token embeddings: it attends, non-causally, over the
  backbone's KV cache of the prompt and the reasoning;
- ``action_in_proj`` (per-waypoint Fourier features + MLP), ``action_out_proj`` (a Linear), and
  ``action_space`` (the unicycle acceleration/curvature model with its normalisation buffers).

``sample`` runs a batch (e.g. the original and the edited input of one clip): the backbone samples its
chain-of-causation text until ``<|traj_future_start|>``; then flow matching integrates the expert's
vector field with Euler steps from t=0 to 1, starting from ``start_noise`` given by the caller, so the
noise of a paired run does not depend on how many reasoning tokens were sampled before it.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from transformers import (
    GenerationConfig,
    LogitsProcessor,
    LogitsProcessorList,
    PreTrainedModel,
    Qwen3VLConfig,
    Qwen3VLForConditionalGeneration,
    StoppingCriteria,
    StoppingCriteriaList,
)
from transformers.models.qwen3_vl.modeling_qwen3_vl import Qwen3VLTextModel

from vla.alpamayo.action_proj import PerWaypointActionInProj
from vla.alpamayo.action_space import UnicycleAccelCurvature
from vla.alpamayo.config import AlpamayoR1Config, component
from vla.alpamayo.tokens import TEXT_FIELDS, between, first_index, history_tokens, pad_after


class MaskTrajectoryBins(LogitsProcessor):
    """The reasoning never samples trajectory bins (the expert plans the trajectory)."""

    def __init__(self, start: int, count: int) -> None:
        self.start, self.count = start, count

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        scores[:, self.start:self.start + self.count] = float("-inf")
        return scores


class StopAfterMarker(StoppingCriteria):
    """Stop once every row has produced ``marker`` and one token after it (so the marker is in the cache)."""

    def __init__(self, marker: int) -> None:
        self.marker = marker
        self.seen: torch.Tensor | None = None

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs: Any) -> bool:
        if self.seen is None:
            self.seen = torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
        if bool(self.seen.all()):
            return True
        self.seen = self.seen | (input_ids[:, -1] == self.marker)
        return False


@dataclass
class SampleOutput:
    xyz: torch.Tensor                     # [B, S, 64, 3] in the t0 ego frame
    rot: torch.Tensor                     # [B, S, 64, 3, 3]
    texts: dict[str, list[list[str]]]     # field (cot, meta_action, answer) -> [B][S]
    reasoning_tokens: list[list[int]]     # [B][S] tokens sampled up to <|traj_future_start|>
    start_noise: torch.Tensor             # [B * S, 64, 2] the flow's x at t=0


class AlpamayoR1(PreTrainedModel):
    config_class = AlpamayoR1Config
    _supports_sdpa = True
    _no_split_modules = ["Qwen3VLTextDecoderLayer", "Qwen3VLVisionBlock"]

    def __init__(self, config: AlpamayoR1Config, vlm_config: Qwen3VLConfig | None = None) -> None:
        super().__init__(config)
        if vlm_config is None:
            if not config.vlm_config:
                raise ValueError("AlpamayoR1 needs the backbone config (vlm_config); use vla.alpamayo.loader")
            vlm_config = Qwen3VLConfig(**config.vlm_config)
        vlm_config = copy.deepcopy(vlm_config)
        vlm_config.text_config.vocab_size = config.vocab_size
        self.vlm = Qwen3VLForConditionalGeneration(vlm_config)
        expert_config = copy.deepcopy(vlm_config.text_config)
        for key, value in (config.expert_cfg or {}).items():
            setattr(expert_config, key, value)
        self.expert = Qwen3VLTextModel(expert_config)
        del self.expert.embed_tokens                       # it only ever sees action embeddings
        self.action_space = UnicycleAccelCurvature(**component(config.action_space_cfg, "action_space_cfg"))
        dims = self.action_space.dims
        self.action_in_proj = PerWaypointActionInProj(
            in_dims=dims, out_dim=expert_config.hidden_size,
            **component(config.action_in_proj_cfg, "action_in_proj_cfg"))
        self.action_out_proj = nn.Linear(expert_config.hidden_size, dims[-1],
                                         **component(config.action_out_proj_cfg, "action_out_proj_cfg"))
        diffusion = component(config.diffusion_cfg, "diffusion_cfg")
        self.diffusion_steps = int(diffusion.get("num_inference_steps", 10))
        self.post_init()

    def get_input_embeddings(self) -> nn.Module:
        return self.vlm.get_input_embeddings()

    def get_output_embeddings(self) -> nn.Module:
        return self.vlm.get_output_embeddings()

    # ---- inference ------------------------------------------------------------------------------------
    def fuse_history(self, input_ids: torch.Tensor, history_xyz: torch.Tensor) -> torch.Tensor:
        """Replace the prompt's ``<|traj_history|>`` placeholders with the ego history's tokens."""
        hist = self.config.history_tokenizer()
        tokens = history_tokens(history_xyz.float(), hist["num_bins"], tuple(hist["ego_xyz_min"]),
                                tuple(hist["ego_xyz_max"])) + self.config.history_token_start
        placeholder = input_ids == self.config.token_id("history")
        if int(placeholder.sum()) != tokens.numel():
            raise ValueError(f"the prompt has {int(placeholder.sum())} history placeholders, the history gives "
                             f"{tokens.numel()} tokens")
        return input_ids.masked_scatter(placeholder, tokens.to(input_ids))

    @torch.no_grad()
    def sample(self, tokenized: dict[str, torch.Tensor], history_xyz: torch.Tensor, history_rot: torch.Tensor,
               start_noise: torch.Tensor, *, tokenizer: Any, num_samples: int = 1, top_p: float = 0.98,
               temperature: float = 0.6, max_new_tokens: int = 256, diffusion_steps: int | None = None,
               logits_processors: list[LogitsProcessor] | None = None) -> SampleOutput:
        """Trajectories for a batch of prompts ``tokenized`` (processor outputs, B rows) with ego histories
        ``[B, 16, 3]`` / ``[B, 16, 3, 3]``; ``start_noise`` is ``[B * num_samples, 64, 2]``."""
        batch = history_xyz.shape[0]
        rows = batch * num_samples
        n_steps, action_dim = self.action_space.dims
        if tuple(start_noise.shape) != (rows, n_steps, action_dim):
            raise ValueError(f"start_noise must be [{rows}, {n_steps}, {action_dim}], got {tuple(start_noise.shape)}")
        inputs = dict(tokenized)
        input_ids = self.fuse_history(inputs.pop("input_ids"), history_xyz)
        marker = self.config.token_id("future_start")
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else marker
        generation = GenerationConfig(do_sample=True, top_p=top_p, temperature=temperature, top_k=None,
                                      num_return_sequences=num_samples, max_new_tokens=max_new_tokens,
                                      return_dict_in_generate=True, pad_token_id=pad, eos_token_id=None)
        processors = LogitsProcessorList([MaskTrajectoryBins(int(self.config.traj_token_start_idx),
                                                             int(self.config.traj_vocab_size)),
                                          *(logits_processors or [])])
        out = self.vlm.generate(input_ids=input_ids, generation_config=generation, logits_processor=processors,
                                stopping_criteria=StoppingCriteriaList([StopAfterMarker(marker)]), **inputs)
        cache = out.past_key_values
        prefix = cache.get_seq_length()
        sequences = pad_after(out.sequences, marker, pad)
        offset = first_index(sequences, marker) + 1                               # first position after it
        deltas = self.vlm.model.rope_deltas
        deltas = deltas.repeat_interleave(rows // deltas.shape[0], dim=0)
        position_ids = torch.arange(n_steps, device=input_ids.device)[None, None, :] + (deltas + offset[:, None])[None]
        position_ids = position_ids.expand(3, rows, n_steps)
        mask = torch.zeros(rows, 1, n_steps, prefix + n_steps, device=input_ids.device)
        for i in range(rows):      # the tokens after the marker (padding, the one extra token) are invisible
            mask[i, :, :, int(offset[i]):prefix] = torch.finfo(mask.dtype).min
        extra = {"is_causal": False} if self.config.expert_non_causal_attention else {}

        def vector_field(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            embeds = self.action_in_proj(x, t)
            hidden = self.expert(inputs_embeds=embeds, position_ids=position_ids, past_key_values=cache,
                                 attention_mask=mask.to(embeds.dtype), use_cache=True, **extra).last_hidden_state
            cache.crop(-(cache.get_seq_length() - prefix))                           # forget the action tokens
            return self.action_out_proj(hidden[:, -n_steps:]).float().view(rows, n_steps, action_dim)

        x = start_noise.to(device=input_ids.device, dtype=torch.float32)
        steps = diffusion_steps or self.diffusion_steps
        times = torch.linspace(0.0, 1.0, steps + 1, device=x.device)
        for i in range(steps):
            x = x + (times[i + 1] - times[i]) * vector_field(x, times[i].expand(rows, 1, 1))
        hist_xyz = history_xyz[:, -16:].repeat_interleave(num_samples, dim=0)
        hist_rot = history_rot[:, -16:].repeat_interleave(num_samples, dim=0)
        xyz, rot = self.action_space.action_to_traj(x, hist_xyz, hist_rot)
        decoded = tokenizer.batch_decode(sequences, skip_special_tokens=False)
        texts = {f: [[between(decoded[b * num_samples + s], f) for s in range(num_samples)] for b in range(batch)]
                 for f in TEXT_FIELDS}
        generated = (offset - input_ids.shape[1]).tolist()
        return SampleOutput(xyz.view(batch, num_samples, n_steps, 3), rot.view(batch, num_samples, n_steps, 3, 3),
                            texts, [generated[b * num_samples:(b + 1) * num_samples] for b in range(batch)],
                            start_noise)

"""VideoPainter's context encoder ("branch") on upstream diffusers building blocks.

TencentARC released the branch for CogVideoX-5b-I2V as a diffusers folder (``config.json`` +
``diffusion_pytorch_model.safetensors``, written by their diffusers fork). This class rebuilds the
same module tree from upstream ``CogVideoXPatchEmbed`` and ``CogVideoXBlock``, so that checkpoint
loads with strict key matching through ``VideoPainterBranch.from_pretrained(folder)``:

``patch_embed.{pos_embedding, proj, text_proj}``, ``time_embedding.linear_{1,2}``,
``transformer_blocks.{0,1}.*``, ``branch_blocks.{0,1}`` (zero-initialised linears),
``branch_x_embedder``, ``norm_final``, ``norm_out.{linear,norm}``, ``proj_out``. The last four are
part of the released layout but unused at inference.

Input: noisy video latents (``in_channels // 2`` = 16 channels) concatenated with the condition
(masked-video latents, 16 channels, and the latent mask, 1 channel): 33 channels into the patch
embedding. Output: one tensor of video tokens per branch block (the block's output through its
zero linear) times ``conditioning_scale``; ``videopainter_hooks`` adds them to the backbone.
"""

from __future__ import annotations

import inspect
import logging
from typing import Any

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.embeddings import CogVideoXPatchEmbed, TimestepEmbedding, Timesteps
from diffusers.models.modeling_utils import ModelMixin
from diffusers.models.normalization import AdaLayerNorm
from diffusers.models.transformers.cogvideox_transformer_3d import CogVideoXBlock
from torch import nn

log = logging.getLogger(__name__)


def _zero(module: nn.Module) -> nn.Module:
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


class VideoPainterBranch(ModelMixin, ConfigMixin):
    """Two CogVideoX blocks over [noisy latents | masked-video latents | mask] that emit residuals."""

    _supports_gradient_checkpointing = True
    _no_split_modules = ["CogVideoXBlock", "CogVideoXPatchEmbed"]
    _skip_layerwise_casting_patterns = ["patch_embed", "norm"]

    @register_to_config
    def __init__(
        self,
        num_attention_heads: int = 48,
        attention_head_dim: int = 64,
        in_channels: int = 32,
        out_channels: int | None = 16,
        flip_sin_to_cos: bool = True,
        freq_shift: int = 0,
        time_embed_dim: int = 512,
        text_embed_dim: int = 4096,
        num_layers: int = 2,
        dropout: float = 0.0,
        attention_bias: bool = True,
        sample_width: int = 90,
        sample_height: int = 60,
        sample_frames: int = 49,
        patch_size: int = 2,
        temporal_compression_ratio: int = 4,
        max_text_seq_length: int = 226,
        activation_fn: str = "gelu-approximate",
        timestep_activation_fn: str = "silu",
        norm_elementwise_affine: bool = True,
        norm_eps: float = 1e-5,
        spatial_interpolation_scale: float = 1.875,
        temporal_interpolation_scale: float = 1.0,
        use_rotary_positional_embeddings: bool = True,
        use_learned_positional_embeddings: bool = True,
        # written by the released config; the variants they select are not used for inference
        wo_text: bool = False,
        id_pool_resample_learnable: bool = False,
    ):
        super().__init__()
        if wo_text:
            raise ValueError("VideoPainterBranch: the text-free branch variant (wo_text) is not supported")
        inner_dim = num_attention_heads * attention_head_dim
        # I2V backbones take 2 x 16 channels: the branch sees 16 noisy + 16 masked-video + 1 mask.
        cond_channels = in_channels * 2 + 1 if in_channels == 16 else in_channels + 1
        self.patch_embed = CogVideoXPatchEmbed(
            patch_size=patch_size,
            in_channels=cond_channels,
            embed_dim=inner_dim,
            text_embed_dim=text_embed_dim,
            bias=True,
            sample_width=sample_width,
            sample_height=sample_height,
            sample_frames=sample_frames,
            temporal_compression_ratio=temporal_compression_ratio,
            max_text_seq_length=max_text_seq_length,
            spatial_interpolation_scale=spatial_interpolation_scale,
            temporal_interpolation_scale=temporal_interpolation_scale,
            use_positional_embeddings=not use_rotary_positional_embeddings,
            use_learned_positional_embeddings=use_learned_positional_embeddings,
        )
        self.embedding_dropout = nn.Dropout(dropout)
        self.time_proj = Timesteps(inner_dim, flip_sin_to_cos, freq_shift)
        self.time_embedding = TimestepEmbedding(inner_dim, time_embed_dim, timestep_activation_fn)
        self.transformer_blocks = nn.ModuleList([
            CogVideoXBlock(
                dim=inner_dim,
                num_attention_heads=num_attention_heads,
                attention_head_dim=attention_head_dim,
                time_embed_dim=time_embed_dim,
                dropout=dropout,
                activation_fn=activation_fn,
                attention_bias=attention_bias,
                norm_elementwise_affine=norm_elementwise_affine,
                norm_eps=norm_eps,
            )
            for _ in range(num_layers)
        ])
        # Kept for key compatibility with the released checkpoint; not used by forward().
        self.norm_final = nn.LayerNorm(inner_dim, norm_eps, norm_elementwise_affine)
        self.norm_out = AdaLayerNorm(embedding_dim=time_embed_dim, output_dim=2 * inner_dim,
                                     norm_elementwise_affine=norm_elementwise_affine, norm_eps=norm_eps,
                                     chunk_dim=1)
        self.proj_out = nn.Linear(inner_dim, patch_size * patch_size * (out_channels or 16))
        self.branch_x_embedder = _zero(nn.Linear(in_channels, inner_dim))
        # One zero-initialised linear per block: a fresh branch changes nothing.
        self.branch_blocks = nn.ModuleList([_zero(nn.Linear(inner_dim, inner_dim)) for _ in range(num_layers)])
        self.gradient_checkpointing = False

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str, **kwargs: Any) -> Any:
        """``ModelMixin.from_pretrained`` with strict key matching: a checkpoint with missing,
        unexpected or differently shaped tensors is an error, not a warning."""
        want_info = kwargs.pop("output_loading_info", False)
        model, info = super().from_pretrained(pretrained_model_name_or_path, output_loading_info=True, **kwargs)
        problems = [f"{name.replace('_', ' ')}: {', '.join(map(str, sorted(info[name])[:6]))}"
                    + (" ..." if len(info[name]) > 6 else "")
                    for name in ("missing_keys", "unexpected_keys", "mismatched_keys") if info.get(name)]
        if problems:
            raise ValueError(f"{cls.__name__}: checkpoint {pretrained_model_name_or_path} does not match the "
                             f"branch layout ({'; '.join(problems)})")
        return (model, info) if want_info else model

    @classmethod
    def from_transformer(cls, transformer: nn.Module, num_layers: int = 2,
                         load_weights_from_transformer: bool = True) -> VideoPainterBranch:
        """A branch shaped like ``transformer`` (CogVideoXTransformer3DModel); with
        ``load_weights_from_transformer`` its blocks, time embedding and patch projection start from
        the backbone's (the noisy and the masked-video channels both get the backbone's video
        weights, the mask channel zero), the way VideoPainter initialises training."""
        keep = set(inspect.signature(cls.__init__).parameters) - {"self"}
        kwargs = {k: v for k, v in dict(transformer.config).items() if k in keep}
        kwargs["num_layers"] = num_layers
        branch = cls(**kwargs)
        if load_weights_from_transformer:
            with torch.no_grad():
                src = transformer.patch_embed.proj.weight
                half = transformer.config.out_channels or 16     # latent channels of one video
                weight = torch.zeros_like(branch.patch_embed.proj.weight)
                weight[:, :half] = src[:, :half]
                weight[:, half:2 * half] = src[:, :half]
                branch.patch_embed.proj.weight.copy_(weight)
                branch.patch_embed.proj.bias.copy_(transformer.patch_embed.proj.bias)
                branch.patch_embed.text_proj.load_state_dict(transformer.patch_embed.text_proj.state_dict())
                if getattr(transformer.patch_embed, "pos_embedding", None) is not None:
                    branch.patch_embed.pos_embedding.copy_(transformer.patch_embed.pos_embedding)
                branch.time_embedding.load_state_dict(transformer.time_embedding.state_dict())
                for mine, theirs in zip(branch.transformer_blocks, transformer.transformer_blocks, strict=False):
                    mine.load_state_dict(theirs.state_dict())
        return branch

    def forward(
        self,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor,
        branch_cond: torch.Tensor,
        timestep: torch.Tensor | float | int,
        image_rotary_emb: tuple[torch.Tensor, torch.Tensor] | None = None,
        conditioning_scale: float = 1.0,
        timestep_cond: torch.Tensor | None = None,
        attention_kwargs: dict[str, Any] | None = None,
    ) -> tuple[torch.Tensor, ...]:
        """Residuals for the backbone, one per branch block: ``[B, frames*h*w/p^2, inner_dim]``.

        ``hidden_states``: noisy latents ``[B, F, 16, h, w]``; ``branch_cond``: masked-video latents and
        the latent mask ``[B, F, 17, h, w]``; ``encoder_hidden_states``: text embeddings
        ``[B, max_text_seq_length, text_embed_dim]``.
        """
        t_emb = self.time_proj(timestep).to(dtype=hidden_states.dtype)
        emb = self.time_embedding(t_emb, timestep_cond)
        tokens = self.patch_embed(encoder_hidden_states, torch.cat([hidden_states, branch_cond], dim=2))
        tokens = self.embedding_dropout(tokens)
        text_len = encoder_hidden_states.shape[1]
        text, video = tokens[:, :text_len], tokens[:, text_len:]
        outputs = []
        for block, zero_linear in zip(self.transformer_blocks, self.branch_blocks, strict=True):
            if torch.is_grad_enabled() and self.gradient_checkpointing:
                video, text = self._gradient_checkpointing_func(block, video, text, emb, image_rotary_emb,
                                                                attention_kwargs)
            else:
                video, text = block(hidden_states=video, encoder_hidden_states=text, temb=emb,
                                    image_rotary_emb=image_rotary_emb, attention_kwargs=attention_kwargs)
            outputs.append((zero_linear(video) * conditioning_scale).to(hidden_states.dtype))
        return tuple(outputs)

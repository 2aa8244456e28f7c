"""Tiny random-weight versions of the stage-2 models (the ``tiny`` profile): same classes as the real
checkpoints, seeded, built offline on CPU in well under a second.

- CogVideoX I2V: ``CogVideoXTransformer3DModel`` with in_channels = 2 x 16 latent channels, rotary
  and learned positional embeddings like CogVideoX-5b-I2V (so the call's size must equal the sample
  size: 96x64 px, 49 frames), 4 blocks; ``AutoencoderKLCogVideoX`` with 4 blocks (8x spatial, 4x
  temporal compression); a tiny T5 encoder; DPM scheduler with the 5b-I2V settings.
- VideoPainter branch: 2 blocks shaped like the tiny backbone (block i gets output i // 2).
- FluxFill: the real channel layout (transformer in 384 / out 64, VAE 16 latent channels with 4
  down blocks), one double and one single block, CLIP + T5 encoders, flow-matching scheduler.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
from diffusers import (
    AutoencoderKL,
    AutoencoderKLCogVideoX,
    CogVideoXDPMScheduler,
    CogVideoXTransformer3DModel,
    FlowMatchEulerDiscreteScheduler,
    FluxTransformer2DModel,
)
from transformers import CLIPTextConfig, CLIPTextModel, T5Config, T5EncoderModel

from core.tokenizers import tiny_clip_tokenizer, tiny_t5_tokenizer
from generation.videopainter.branch import VideoPainterBranch

TINY_SIZE = (96, 64)           # (width, height) in pixels: latent 12 x 8, 6 x 4 tokens per frame
TINY_TEXT_LEN = 16             # max_text_seq_length of the tiny CogVideoX
TINY_BACKBONE_LAYERS = 4
TINY_BRANCH_LAYERS = 2

# CogVideoX-5b-I2V's scheduler settings (scheduler_config.json), with VideoPainter's trailing spacing.
COGVIDEOX_SCHEDULER = {
    "beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear", "clip_sample": False,
    "num_train_timesteps": 1000, "prediction_type": "v_prediction", "rescale_betas_zero_snr": True,
    "set_alpha_to_one": True, "snr_shift_scale": 1.0, "steps_offset": 0, "timestep_spacing": "trailing",
}


@contextlib.contextmanager
def _seeded(seed: int) -> Iterator[None]:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def _t5(tokenizer: Any, seed: int) -> T5EncoderModel:
    with _seeded(seed):
        config = T5Config(vocab_size=len(tokenizer), d_model=32, d_kv=8, d_ff=64, num_layers=1, num_heads=4,
                          relative_attention_num_buckets=8, dropout_rate=0.0)
        return T5EncoderModel(config).eval()


def tiny_cogvideox_transformer(seed: int = 0) -> CogVideoXTransformer3DModel:
    width, height = TINY_SIZE
    with _seeded(seed):
        return CogVideoXTransformer3DModel(
            num_attention_heads=2, attention_head_dim=16, in_channels=32, out_channels=16, time_embed_dim=16,
            text_embed_dim=32, num_layers=TINY_BACKBONE_LAYERS, sample_width=width // 8, sample_height=height // 8,
            sample_frames=49, patch_size=2, max_text_seq_length=TINY_TEXT_LEN,
            use_rotary_positional_embeddings=True, use_learned_positional_embeddings=True,
        ).eval()


def tiny_branch(transformer: CogVideoXTransformer3DModel, seed: int = 0) -> VideoPainterBranch:
    """A branch initialised from the backbone (as VideoPainter starts training), with small random
    (not zero) branch linears so the tiny run exercises the injection."""
    branch = VideoPainterBranch.from_transformer(transformer, num_layers=TINY_BRANCH_LAYERS)
    with _seeded(seed + 1), torch.no_grad():
        for linear in branch.branch_blocks:
            linear.weight.normal_(0.0, 0.02)
    return branch.eval()


def tiny_cogvideox_components(seed: int = 0) -> dict[str, Any]:
    """Keyword arguments for ``VideoPainterPipeline``: tokenizer, text_encoder, vae, transformer,
    scheduler, branch."""
    width, height = TINY_SIZE
    tokenizer = tiny_t5_tokenizer(model_max_length=TINY_TEXT_LEN)
    with _seeded(seed + 2):
        vae = AutoencoderKLCogVideoX(block_out_channels=(2, 2, 2, 2), latent_channels=16, layers_per_block=1,
                                     norm_num_groups=1, sample_height=height, sample_width=width).eval()
    transformer = tiny_cogvideox_transformer(seed)
    return {
        "tokenizer": tokenizer,
        "text_encoder": _t5(tokenizer, seed + 3),
        "vae": vae,
        "transformer": transformer,
        "scheduler": CogVideoXDPMScheduler(**COGVIDEOX_SCHEDULER),
        "branch": tiny_branch(transformer, seed),
    }


def tiny_fluxfill_components(seed: int = 0) -> dict[str, Any]:
    """Keyword arguments for ``diffusers.FluxFillPipeline``."""
    clip_tokenizer = tiny_clip_tokenizer()
    t5_tokenizer = tiny_t5_tokenizer()
    with _seeded(seed + 10):
        clip = CLIPTextModel(CLIPTextConfig(
            vocab_size=len(clip_tokenizer), hidden_size=32, intermediate_size=37, num_hidden_layers=1,
            num_attention_heads=4, max_position_embeddings=77, projection_dim=32,
            bos_token_id=clip_tokenizer.bos_token_id, eos_token_id=clip_tokenizer.eos_token_id,
            pad_token_id=clip_tokenizer.pad_token_id)).eval()
    with _seeded(seed + 11):
        transformer = FluxTransformer2DModel(
            patch_size=1, in_channels=384, out_channels=64, num_layers=1, num_single_layers=1,
            attention_head_dim=16, num_attention_heads=2, joint_attention_dim=32, pooled_projection_dim=32,
            guidance_embeds=True, axes_dims_rope=(4, 6, 6)).eval()
    with _seeded(seed + 12):
        vae = AutoencoderKL(in_channels=3, out_channels=3, down_block_types=["DownEncoderBlock2D"] * 4,
                            up_block_types=["UpDecoderBlock2D"] * 4, block_out_channels=(8, 8, 8, 8),
                            layers_per_block=1, latent_channels=16, norm_num_groups=4, use_quant_conv=False,
                            use_post_quant_conv=False, shift_factor=0.0609, scaling_factor=1.5035).eval()
    scheduler = FlowMatchEulerDiscreteScheduler(base_image_seq_len=256, base_shift=0.5, max_image_seq_len=4096,
                                                max_shift=1.15, use_dynamic_shifting=True, shift=3.0)
    return {
        "scheduler": scheduler, "vae": vae, "text_encoder": clip, "tokenizer": clip_tokenizer,
        "text_encoder_2": _t5(t5_tokenizer, seed + 13), "tokenizer_2": t5_tokenizer, "transformer": transformer,
    }

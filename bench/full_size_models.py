"""Full-size stage-2 architectures with random weights for the GPU benches (``bench/editing.py``,
``bench/stage2_levers.py``), and their tiny CPU stand-ins for ``--gpu-smoke``. Weights are random: the
figures are speed and memory, never quality."""

from __future__ import annotations

import contextlib
import time

COGVIDEOX_5B_I2V = dict(
    num_attention_heads=48, attention_head_dim=64, in_channels=32, out_channels=16, time_embed_dim=512,
    text_embed_dim=4096, num_layers=42, sample_width=90, sample_height=60, sample_frames=49, patch_size=2,
    max_text_seq_length=226, use_rotary_positional_embeddings=True, use_learned_positional_embeddings=True)
FLUX_FILL = dict(patch_size=1, in_channels=384, out_channels=64, num_layers=19, num_single_layers=38,
                 attention_head_dim=128, num_attention_heads=24, joint_attention_dim=4096,
                 pooled_projection_dim=768, guidance_embeds=True, axes_dims_rope=(16, 56, 56))


def _t5():
    from transformers import T5Config, T5EncoderModel

    return T5EncoderModel(T5Config(vocab_size=32128, d_model=4096, d_kv=64, d_ff=10240, num_layers=24, num_heads=64,
                                   feed_forward_proj="gated-gelu", dropout_rate=0.0)).eval()


@contextlib.contextmanager
def _on_gpu_in_bf16():
    import torch

    torch.set_default_dtype(torch.bfloat16)
    try:
        with torch.device("cuda"):
            yield
    finally:
        torch.set_default_dtype(torch.float32)


def video_model(smoke: bool):
    """(VideoPainter pipeline, (width, height)): CogVideoX-5b-I2V + branch + T5-XXL with random bf16 weights on the
    GPU, or with ``smoke`` the tiny models on CPU (checks the script's code; measures nothing)."""
    from diffusers import AutoencoderKLCogVideoX, CogVideoXDPMScheduler, CogVideoXTransformer3DModel

    from core.tokenizers import tiny_t5_tokenizer
    from generation.tiny_models import COGVIDEOX_SCHEDULER, tiny_cogvideox_components
    from generation.videopainter.branch import VideoPainterBranch
    from generation.videopainter.pipeline import VideoPainterPipeline

    if smoke:
        video, size = VideoPainterPipeline(**tiny_cogvideox_components(0)), (96, 64)
    else:
        with _on_gpu_in_bf16():
            video = VideoPainterPipeline(
                tokenizer=tiny_t5_tokenizer(226), text_encoder=_t5(),
                vae=AutoencoderKLCogVideoX(scaling_factor=0.7).eval(),
                transformer=CogVideoXTransformer3DModel(**COGVIDEOX_5B_I2V).eval(),
                scheduler=CogVideoXDPMScheduler(**COGVIDEOX_SCHEDULER), branch=VideoPainterBranch().eval())
        size = (720, 480)
    video.set_progress_bar_config(disable=True)
    return video, size


def flux_model(smoke: bool):
    """FLUX.1-Fill with random bf16 weights on the GPU (CLIP-L, T5-XXL), or with ``smoke`` the tiny one on CPU."""
    from diffusers import (
        AutoencoderKL,
        FlowMatchEulerDiscreteScheduler,
        FluxFillPipeline,
        FluxTransformer2DModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel

    from core.tokenizers import tiny_clip_tokenizer, tiny_t5_tokenizer
    from generation.tiny_models import tiny_fluxfill_components

    if smoke:
        flux = FluxFillPipeline(**tiny_fluxfill_components(0))
    else:
        clip_tok = tiny_clip_tokenizer()
        with _on_gpu_in_bf16():
            flux = FluxFillPipeline(
                scheduler=FlowMatchEulerDiscreteScheduler(
                    base_image_seq_len=256, base_shift=0.5, max_image_seq_len=4096, max_shift=1.15,
                    use_dynamic_shifting=True, shift=3.0),
                vae=AutoencoderKL(down_block_types=["DownEncoderBlock2D"] * 4,
                                  up_block_types=["UpDecoderBlock2D"] * 4, block_out_channels=(128, 256, 512, 512),
                                  layers_per_block=2, latent_channels=16, use_quant_conv=False,
                                  use_post_quant_conv=False, shift_factor=0.1159, scaling_factor=0.3611).eval(),
                text_encoder=CLIPTextModel(CLIPTextConfig(
                    vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                    num_attention_heads=12, projection_dim=768, bos_token_id=clip_tok.bos_token_id,
                    eos_token_id=clip_tok.eos_token_id, pad_token_id=clip_tok.pad_token_id)).eval(),
                tokenizer=clip_tok, text_encoder_2=_t5(), tokenizer_2=tiny_t5_tokenizer(),
                transformer=FluxTransformer2DModel(**FLUX_FILL).eval())
    flux.set_progress_bar_config(disable=True)
    return flux


def stage2_models(smoke: bool):
    """(video pipeline, FluxFill pipeline, (width, height)): both of the above."""
    video, size = video_model(smoke)
    return video, flux_model(smoke), size


def sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timed(fn, device: str, repeat: int = 3) -> float:
    fn()
    sync(device)
    start = time.perf_counter()
    for _ in range(repeat):
        fn()
    sync(device)
    return (time.perf_counter() - start) / repeat

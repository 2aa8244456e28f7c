"""The LoRA trainer feeds FluxFill's transformer exactly what ``FluxFillPipeline`` feeds it at inference
(384 channels: packed noisy latents + masked-image latents + 8x8 space-to-depth mask, the guidance
embedding, CLIP pooled + T5 embeddings), its noise levels lie on the inference schedule, and the
adapter it adds is the diffusers/peft LoRA stage 2 loads."""

import numpy as np
import pytest
import torch
from diffusers import FluxFillPipeline
from PIL import Image

from core.errors import LanepaintError
from generation.tiny_models import tiny_fluxfill_components
from training.lora_data import prepare_sample
from training.lora_model import PromptEmbeddings, add_lora, fill_inputs, flow_matching_loss, sample_sigmas

PROMPT = "road with double yellow solid lane markings"


class _Captured(Exception):
    pass


@pytest.fixture(scope="module")
def pipe():
    p = FluxFillPipeline(**tiny_fluxfill_components(0))
    p.set_progress_bar_config(disable=True)
    return p


def _sample():
    rng = np.random.default_rng(3)
    frame = rng.integers(0, 256, (64, 96, 3), dtype=np.uint8)
    mask = np.zeros((64, 96), bool)
    mask[30:, 10:70] = True
    return frame, mask


def test_training_inputs_equal_what_the_pipeline_feeds_the_transformer(pipe):
    frame, mask = _sample()
    seen = {}

    def capture(module, args, kwargs):
        seen.update(kwargs)
        raise _Captured

    handle = pipe.transformer.register_forward_pre_hook(capture, with_kwargs=True)
    try:
        with pytest.raises(_Captured):
            pipe(prompt=PROMPT, image=Image.fromarray(frame), mask_image=Image.fromarray(mask.astype(np.uint8) * 255),
                 height=64, width=96, guidance_scale=30.0, num_inference_steps=4, max_sequence_length=32,
                 generator=torch.Generator().manual_seed(5))
    finally:
        handle.remove()
    first_sigma = pipe.scheduler.sigmas[:1].clone()            # the pipeline's first (shifted) noise level

    image, small = prepare_sample(frame, mask, (96, 64), dilate_size=0)
    embeds, pooled, text_ids = PromptEmbeddings(pipe, "cpu", 32).encode([PROMPT], [PROMPT])
    kwargs, target = fill_inputs(pipe, torch.from_numpy(image[None]), torch.from_numpy(small[None]), embeds, pooled,
                                 text_ids, 30.0, torch.Generator().manual_seed(5), sigmas=first_sigma)

    assert kwargs["hidden_states"].shape == seen["hidden_states"].shape == (1, 24, 384)
    torch.testing.assert_close(kwargs["hidden_states"], seen["hidden_states"], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(kwargs["timestep"], seen["timestep"])
    for name in ("guidance", "pooled_projections", "encoder_hidden_states", "txt_ids", "img_ids"):
        torch.testing.assert_close(kwargs[name], seen[name])
    # the mask channels are the 8x8 space-to-depth of the binary mask, packed 2x2: 256 per token
    mask_part = kwargs["hidden_states"][0, :, 128:]
    assert set(mask_part.unique().tolist()) == {0.0, 1.0}
    assert mask_part.sum().item() == mask.sum()
    # the target is noise - x0 in the packed layout: at sigma 1 the noisy part is pure noise
    noisy = kwargs["hidden_states"][..., :64]
    assert target.shape == noisy.shape
    loss = flow_matching_loss(pipe.transformer, kwargs, target)
    assert loss.ndim == 0 and torch.isfinite(loss)


def test_noise_levels_lie_on_the_inference_schedule_of_the_resolution(pipe):
    from diffusers.pipelines.flux.pipeline_flux_fill import calculate_shift

    generator = torch.Generator().manual_seed(0)
    height, width = 1024, 1024
    sigmas = sample_sigmas(pipe, 64, height, width, generator)
    plain = sample_sigmas(pipe, 64, height, width, torch.Generator().manual_seed(0), shift=False)
    assert sigmas.shape == (64,) and bool(((sigmas > 0) & (sigmas <= 1)).all())
    # the pipeline's own scheduler at 1000 steps for a 1024x1024 image visits exactly these levels
    config = pipe.scheduler.config
    mu = calculate_shift((height // 16) * (width // 16), config.base_image_seq_len, config.max_image_seq_len,
                         config.base_shift, config.max_shift)
    scheduler = type(pipe.scheduler).from_config(config)
    scheduler.set_timesteps(sigmas=np.linspace(1.0, 1 / 1000, 1000), mu=mu)
    schedule = scheduler.sigmas[:-1]
    assert all(torch.isclose(schedule, s, atol=1e-6).any() for s in sigmas)
    assert sigmas.mean() > plain.mean()                    # shifted towards noise at high resolution
    assert torch.equal(sigmas.argsort(), plain.argsort())  # same draws, monotone map


def test_add_lora_targets_attention_and_starts_as_the_identity(pipe):
    transformer = tiny_fluxfill_components(0)["transformer"]
    transformer.requires_grad_(False)
    count = add_lora(transformer, rank=8, alpha=8, dropout=0.0, targets=("to_k", "to_q", "to_v", "to_out.0"), seed=1)
    trainable = {n: p for n, p in transformer.named_parameters() if p.requires_grad}
    assert count == sum(p.numel() for p in trainable.values()) > 0
    assert all(".lora_" in n and p.dtype == torch.float32 for n, p in trainable.items())
    modules = {n.split(".lora_")[0].rsplit(".", 1)[-1] for n in trainable}
    assert modules == {"to_k", "to_q", "to_v", "0"}          # to_out.0 (single blocks have no to_out)
    assert all(float(p.detach().abs().sum()) == 0 for n, p in trainable.items() if "lora_B" in n)
    with pytest.raises(LanepaintError, match="LoRA targets nope"):
        add_lora(tiny_fluxfill_components(0)["transformer"], 4, 4, 0.0, ("nope",), seed=1)

"""FluxFill with a trainable LoRA, and the flow-matching loss on exactly what inference feeds it.

The model comes from ``first_frame.build_fluxfill`` (stage 2's loader: tiny random weights or the
FLUX.1-Fill-dev checkpoint). ``fill_inputs`` builds the transformer's input with the pipeline's own
methods, in the pipeline's order (``_encode_vae_image``, the noise draw, ``prepare_mask_latents``,
``_pack_latents``, ``_prepare_latent_image_ids``), so the 384 input channels are the packed noisy
latents (64) + the packed masked-image latents (64) + the packed 8x8 space-to-depth mask (256), as
in ``FluxFillPipeline.__call__``; ``tests/test_lora_model.py`` checks it against a pipeline call.

Noise levels: ``u ~ U(0, 1)`` is put on the scheduler's 1000-step training grid (sigma = 1 .. 1/1000,
as diffusers' Flux training scripts index ``scheduler.sigmas``) and then, with ``shift``, moved by
the same resolution-dependent time shift the pipeline applies at inference (``calculate_shift`` of the
image's token count, ``scheduler.time_shift``), so training sees the noise levels that the 50 inference
steps at this resolution visit. The noisy latents are ``(1 - sigma) x0 + sigma noise``, the target is
``noise - x0`` (flow matching), the transformer gets ``timestep = sigma`` (the pipeline passes
``t / 1000``) and the guidance embedding of ``guidance_scale`` (30, stage 2's FluxFill guidance), and
the loss is the unweighted mean squared error over all latent tokens.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Iterable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from diffusers import FluxFillPipeline
from diffusers.pipelines.flux.pipeline_flux_fill import calculate_shift
from diffusers.utils.torch_utils import randn_tensor

from core.device import DevicePolicy
from core.errors import LanepaintError, brief
from generation.first_frame import build_fluxfill

log = logging.getLogger(__name__)


def load_training_pipeline(profile: str, model: str, policy: DevicePolicy, seed: int = 0) -> FluxFillPipeline:
    """FluxFill on the CPU with every weight frozen (the caller places the parts)."""
    pipe = build_fluxfill(profile, model, policy, seed)
    pipe.set_progress_bar_config(disable=True)
    for module in (pipe.transformer, pipe.vae, pipe.text_encoder, pipe.text_encoder_2):
        module.requires_grad_(False)
        module.eval()
    return pipe


def add_lora(transformer: torch.nn.Module, rank: int, alpha: float, dropout: float, targets: Sequence[str],
             seed: int) -> int:
    """Add the trainable adapter (peft, gaussian init of A, zero B: the model is unchanged at step 0);
    its parameters are float32 whatever the base weights are. Returns the trainable parameter count."""
    from peft import LoraConfig

    config = LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=dropout, init_lora_weights="gaussian",
                        target_modules=list(targets))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        try:
            transformer.add_adapter(config)
        except ValueError as exc:
            raise LanepaintError(f"LoRA targets {','.join(targets)}: {brief(exc, 200)}") from None
    count = 0
    for param in transformer.parameters():
        if param.requires_grad:
            param.data = param.data.float()
            count += param.numel()
    return count


class PromptEmbeddings:
    """CLIP (pooled) + T5 embeddings per unique (prompt, prompt_2), computed once: lane datasets have at
    most a few dozen distinct prompts, so the text encoders run once and can then be freed."""

    def __init__(self, pipe: FluxFillPipeline, device: Any, max_sequence_length: int) -> None:
        self.pipe, self.device, self.max_sequence_length = pipe, torch.device(device), max_sequence_length
        self.table: dict[tuple[str, str], tuple[torch.Tensor, torch.Tensor]] = {}
        self.text_ids: torch.Tensor | None = None

    def encode(self, prompts: Sequence[str], prompts_2: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(T5 embeddings [B, L, D], pooled CLIP [B, P], text ids [L, 3]) straight from the encoders."""
        with torch.no_grad():
            return self.pipe.encode_prompt(prompt=list(prompts), prompt_2=list(prompts_2), device=self.device,
                                           max_sequence_length=self.max_sequence_length)

    def precompute(self, pairs: Iterable[tuple[str, str]]) -> int:
        for pair in dict.fromkeys(pairs):
            if pair not in self.table:
                embeds, pooled, text_ids = self.encode([pair[0]], [pair[1]])
                self.table[pair] = (embeds[0], pooled[0])
                self.text_ids = text_ids
        return len(self.table)

    def get(self, prompts: Sequence[str], prompts_2: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        rows = [self.table[(p, p2)] for p, p2 in zip(prompts, prompts_2, strict=True)]
        assert self.text_ids is not None
        return torch.stack([r[0] for r in rows]), torch.stack([r[1] for r in rows]), self.text_ids


def free_text_encoders(pipe: FluxFillPipeline) -> None:
    """Drop CLIP and T5 (about 9.5 GB for FLUX.1) once every prompt is embedded."""
    pipe.text_encoder = None
    pipe.text_encoder_2 = None
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def sample_sigmas(pipe: FluxFillPipeline, batch: int, height: int, width: int, generator: torch.Generator,
                  shift: bool = True) -> torch.Tensor:
    """Noise levels [B] (float32, on the generator's device); see the module docstring."""
    config = pipe.scheduler.config
    steps = int(config.num_train_timesteps)
    u = torch.rand(batch, generator=generator, device=generator.device)
    index = (u * steps).long().clamp(max=steps - 1)
    sigmas = (steps - index).float() / steps
    if not config.get("use_dynamic_shifting", False):
        static = float(config.get("shift", 1.0))
        return static * sigmas / (1 + (static - 1) * sigmas)
    if shift:
        seq_len = (height // pipe.vae_scale_factor // 2) * (width // pipe.vae_scale_factor // 2)
        mu = calculate_shift(seq_len, config.get("base_image_seq_len", 256), config.get("max_image_seq_len", 4096),
                             config.get("base_shift", 0.5), config.get("max_shift", 1.15))
        sigmas = pipe.scheduler.time_shift(mu, 1.0, sigmas)
    return sigmas


def fill_inputs(pipe: FluxFillPipeline, images: torch.Tensor, masks: torch.Tensor, prompt_embeds: torch.Tensor,
                pooled: torch.Tensor, text_ids: torch.Tensor, guidance_scale: float, generator: torch.Generator,
                sigmas: torch.Tensor | None = None, shift: bool = True,
                dtype: torch.dtype | None = None) -> tuple[dict[str, Any], torch.Tensor]:
    """(transformer keyword arguments, flow-matching target) for images [B, 3, H, W] in [-1, 1] and
    masks [B, 1, H, W] in {0, 1} (1 = inpaint), on the VAE's device; ``sigmas`` [B] are drawn when None;
    ``dtype``: the base weights' dtype (default: the transformer's)."""
    dtype = dtype or pipe.transformer.dtype
    device = images.device
    batch, _, height, width = images.shape
    channels = pipe.vae.config.latent_channels
    if sigmas is None:
        sigmas = sample_sigmas(pipe, batch, height, width, generator, shift)
    with torch.no_grad():
        images = images.to(dtype)
        masks = masks.to(dtype)
        latents = pipe._encode_vae_image(images, generator)                    # x0, scaled and shifted
        noise = randn_tensor(latents.shape, generator=generator, device=device, dtype=dtype)
        mask_packed, masked_packed = pipe.prepare_mask_latents(
            masks, images * (1 - masks), batch, channels, 1, height, width, dtype, device, generator)
        sigma = sigmas.to(device, dtype).view(batch, 1, 1, 1)
        lat_h, lat_w = latents.shape[-2:]
        noisy = pipe._pack_latents((1 - sigma) * latents + sigma * noise, batch, channels, lat_h, lat_w)
        target = pipe._pack_latents(noise - latents, batch, channels, lat_h, lat_w)
        hidden = torch.cat((noisy, torch.cat((masked_packed, mask_packed), dim=-1)), dim=2)
        img_ids = pipe._prepare_latent_image_ids(batch, lat_h // 2, lat_w // 2, device, dtype)
    kwargs = {
        "hidden_states": hidden,
        "timestep": sigmas.to(device, dtype),
        "guidance": torch.full([batch], float(guidance_scale), device=device, dtype=torch.float32),
        "pooled_projections": pooled.to(device, dtype),
        "encoder_hidden_states": prompt_embeds.to(device, dtype),
        "txt_ids": text_ids.to(device, dtype),
        "img_ids": img_ids,
        "return_dict": False,
    }
    return kwargs, target


def flow_matching_loss(model: torch.nn.Module, kwargs: dict[str, Any], target: torch.Tensor) -> torch.Tensor:
    """Unweighted MSE between the predicted velocity and ``noise - x0`` (float32)."""
    prediction = model(**kwargs)[0]
    return F.mse_loss(prediction.float(), target.float())

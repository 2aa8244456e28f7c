"""VideoPainter image-to-video inpainting on upstream diffusers' CogVideoX I2V pipeline.

``VideoPainterPipeline`` subclasses ``CogVideoXImageToVideoPipeline`` (prompt encoding, image
latents, rotary embeddings, latent decoding, LoRA loading and CPU offload are upstream's) and adds
the ``branch`` component and VideoPainter's dual-branch inpainting loop:

- masked video = video * (mask < 0.5) in [-1, 1]; the mask goes to the latent grid with nearest
  interpolation ([F, H, W] -> [(F-1)/4+1, H/8, W/8]); image latents = the encoded first frame, then
  zeros; when a first frame is given (FluxFill's edit, or the previous window's result) it replaces
  frame 0 of the video and its mask is zeroed;
- per step: the branch sees [noisy latents | masked-video latents | mask], its residuals go into the
  backbone through ``BranchInjection`` (mask_add: background tokens only); dynamic CFG; the
  scheduler step (CogVideoXDPMScheduler with trailing spacing); replace_gt re-imposes the original
  latents, noised to the next timestep, outside the mask;
- clips longer than ``num_frames``: windows every ``window_stride`` frames (the last one aligned to
  the clip end); window k>0 takes the previous window's generated frame at its start (original
  pixels outside the mask, so nothing drifts from window to window) as its first frame; frames
  covered by several windows are averaged (in pixels, after decoding each window); optional
  VideoPainterID resampling.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from diffusers.models import AutoencoderKLCogVideoX, CogVideoXTransformer3DModel
from diffusers.pipelines.cogvideo.pipeline_cogvideox_image2video import (
    CogVideoXImageToVideoPipeline,
    retrieve_latents,
    retrieve_timesteps,
)
from diffusers.schedulers import CogVideoXDDIMScheduler, CogVideoXDPMScheduler
from diffusers.utils.torch_utils import randn_tensor
from transformers import T5EncoderModel, T5Tokenizer

from core.logs import progress
from generation.speed_levers import reset_step_cache
from generation.videopainter.branch import VideoPainterBranch
from generation.videopainter.hooks import (
    BranchInjection,
    background_tokens,
    install_branch_hooks,
    pooled_token_mask,
)
from generation.videopainter.id_resampling import ID_ADAPTER, IDHooks, IDResampleState, install_id_resampling

log = logging.getLogger(__name__)


def plan_windows(total: int, num_frames: int, stride: int) -> list[int]:
    """Start frames of the windows covering ``total`` frames (the last one ends at the clip end)."""
    if total < num_frames:
        raise ValueError(f"clip has {total} frames, fewer than one window of {num_frames}")
    starts = list(range(0, total - num_frames + 1, stride))
    if starts[-1] != total - num_frames:
        starts.append(total - num_frames)
    return starts


def dynamic_guidance_scale(guidance_scale: float, timestep: float, num_inference_steps: int) -> float:
    """Upstream CogVideoX's (and VideoPainter's) dynamic CFG, evaluated exactly as they do: at the
    timestep value ``t`` (0..999), not the step index. Kept as is for parity with their results."""
    return 1 + guidance_scale * (
        (1 - math.cos(math.pi * ((num_inference_steps - timestep) / num_inference_steps) ** 5.0)) / 2)


@dataclass
class VideoPainterOutput:
    frames: Any                             # output_type np: [T, H, W, 3] uint8; pt: [T, 3, H, W] float in [0, 1];
                                            # pil: list of PIL images; latent: [1, F, C, h, w] of the one window
    windows: list[tuple[int, int]] = field(default_factory=list)
    id_resampling: bool = False


@dataclass
class Batch:
    """A call's videos: ``prompts`` x ``per_prompt`` (prompt-major, as diffusers orders them), each prompt's
    first frame (or None), and whether the caller asked for a batch (the output then has a batch axis)."""
    prompts: list[str]
    per_prompt: int
    first_frames: list[np.ndarray] | None
    batched: bool

    @property
    def size(self) -> int:
        return len(self.prompts) * self.per_prompt


OUTPUT_TYPES = ("np", "pt", "pil", "latent")
CALLBACK_TENSORS = ("latents", "prompt_embeds")


class VideoPainterPipeline(CogVideoXImageToVideoPipeline):
    """CogVideoX-5b-I2V + VideoPainter context encoder, for video inpainting (see module doc)."""

    # The branch runs every step next to the transformer: like a ControlNet it stays out of the
    # offload chain (upstream's "text_encoder->transformer->vae"), so with CPU offload it is moved to
    # the GPU once on first use instead of swapping with the transformer at every step.
    model_cpu_offload_seq = "text_encoder->transformer->vae"

    def __init__(self, tokenizer: T5Tokenizer, text_encoder: T5EncoderModel, vae: AutoencoderKLCogVideoX,
                 transformer: CogVideoXTransformer3DModel,
                 scheduler: CogVideoXDDIMScheduler | CogVideoXDPMScheduler, branch: VideoPainterBranch):
        super().__init__(tokenizer=tokenizer, text_encoder=text_encoder, vae=vae, transformer=transformer,
                         scheduler=scheduler)
        self.register_modules(branch=branch)
        # the branch hooks go in first, so that a cache enabled later (speed_levers) wraps them
        self.branch_slot = install_branch_hooks(transformer)
        self.id_state: IDResampleState | None = None
        # diffusers' pipeline state, read through the properties guidance_scale, num_timesteps, interrupt, ...
        self._guidance_scale, self._num_timesteps, self._interrupt = 1.0, 0, False
        self._current_timestep, self._attention_kwargs = None, None
        self._callback: tuple[Callable[..., dict[str, Any]] | None, tuple[str, ...]] = (None, ())

    def check_video_inputs(self, video: Any, masks: Any, prompt: Any, first_frame: Any, num_frames: int,
                           window_stride: int, strength: float, num_inference_steps: int, output_type: str,
                           callback_on_step_end: Any, callback_on_step_end_tensor_inputs: Any,
                           negative_prompt: Any = None, num_videos_per_prompt: int = 1, generator: Any = None,
                           latents: Any = None) -> Batch:
        """Every argument checked before any work, one clear ``ValueError`` each; returns the batch."""
        batched = isinstance(prompt, list | tuple)
        prompts = list(prompt) if batched else [prompt]
        if not prompts or not all(isinstance(p, str) for p in prompts):
            raise ValueError(f"prompt must be a string or a non-empty list of strings, got {prompt!r:.80}")
        if negative_prompt is not None and not isinstance(negative_prompt, str) and (
                not isinstance(negative_prompt, list | tuple) or len(negative_prompt) != len(prompts)
                or not all(isinstance(p, str) for p in negative_prompt)):
            raise ValueError(f"negative_prompt must be a string or a list of {len(prompts)} strings (one per prompt)")
        if not isinstance(num_videos_per_prompt, int) or num_videos_per_prompt < 1:
            raise ValueError(f"num_videos_per_prompt must be an integer >= 1, got {num_videos_per_prompt!r}")
        size = len(prompts) * num_videos_per_prompt
        if not isinstance(video, np.ndarray) or video.ndim != 4 or video.shape[-1] != 3 or video.dtype != np.uint8:
            raise ValueError(f"video must be a uint8 array [T, H, W, 3], got {getattr(video, 'dtype', type(video))} "
                             f"{list(getattr(video, 'shape', []))}")
        total, height, width = video.shape[:3]
        if not isinstance(masks, np.ndarray) or masks.shape != (total, height, width):
            raise ValueError(f"masks {list(getattr(masks, 'shape', []))} do not match video {list(video.shape)}")
        multiple = self.vae_scale_factor_spatial * self.transformer.config.patch_size
        if height % multiple or width % multiple:
            raise ValueError(f"height and width must be multiples of {multiple}, got {width}x{height}")
        firsts = self._first_frames(first_frame, len(prompts), (height, width, 3))
        if num_frames < 1 or (num_frames - 1) % self.vae_scale_factor_temporal:
            raise ValueError(f"num_frames must be 1 + a multiple of {self.vae_scale_factor_temporal}, got {num_frames}")
        if total < num_frames:
            raise ValueError(f"the video has {total} frames, fewer than num_frames={num_frames}")
        if window_stride < 1:
            raise ValueError(f"window_stride must be >= 1, got {window_stride}")
        if not 0.0 < strength <= 1.0:
            raise ValueError(f"strength must be in (0, 1], got {strength}")
        if num_inference_steps < 1:
            raise ValueError(f"num_inference_steps must be >= 1, got {num_inference_steps}")
        if isinstance(generator, list) and len(generator) != size:
            raise ValueError(f"{len(generator)} generators for a batch of {size} videos ({len(prompts)} prompt(s) x "
                             f"num_videos_per_prompt {num_videos_per_prompt}): pass one per video, or one for all")
        if latents is not None:
            shape = (size, (num_frames - 1) // self.vae_scale_factor_temporal + 1, self.vae.config.latent_channels,
                     height // self.vae_scale_factor_spatial, width // self.vae_scale_factor_spatial)
            if not isinstance(latents, torch.Tensor) or tuple(latents.shape) != shape:
                raise ValueError(f"latents must be a tensor {list(shape)} (the first window's starting noise), got "
                                 f"{list(getattr(latents, 'shape', [])) or type(latents).__name__}")
        if output_type not in OUTPUT_TYPES:
            raise ValueError(f"output_type must be one of {', '.join(OUTPUT_TYPES)}, got {output_type!r}")
        if output_type == "latent" and plan_windows(total, num_frames, window_stride)[1:]:
            raise ValueError("output_type='latent' needs a clip of one window: windows after the first are "
                             "conditioned on decoded frames")
        if callback_on_step_end is not None and not callable(callback_on_step_end):
            raise ValueError("callback_on_step_end must be callable")
        unknown = [k for k in callback_on_step_end_tensor_inputs or () if k not in CALLBACK_TENSORS]
        if unknown:
            raise ValueError(f"callback_on_step_end_tensor_inputs {unknown} not in {list(CALLBACK_TENSORS)}")
        batched = batched or num_videos_per_prompt > 1
        return Batch(prompts, num_videos_per_prompt, firsts, batched)

    @staticmethod
    def _first_frames(first_frame: Any, prompts: int, shape: tuple[int, int, int]) -> list[np.ndarray] | None:
        """None, or one ``[H, W, 3]`` first frame per prompt (a single frame is shared by all)."""
        if first_frame is None:
            return None
        if isinstance(first_frame, np.ndarray) and first_frame.shape == shape:
            return [first_frame] * prompts
        stacked = isinstance(first_frame, np.ndarray) and first_frame.ndim == 4   # [n, H, W, 3]
        frames = list(first_frame) if isinstance(first_frame, list | tuple) or stacked else [first_frame]
        if len(frames) != prompts or any(getattr(f, "shape", None) != shape for f in frames):
            given = [list(getattr(f, "shape", [])) for f in frames][:3]
            raise ValueError(f"first_frame must be one {list(shape)} array for every prompt, or {prompts} of them "
                             f"(one per prompt), got {given}")
        return frames

    # ---- VideoPainterID -----------------------------------------------------------------------
    def enable_id_resampling(self, mode: str = "fork", prev_clip_weight: float = 0.5) -> None:
        """Install the ID-resampling processors (call after loading the VideoPainterID LoRA); ``mode`` and
        ``prev_clip_weight`` as in ``id_resampling``."""
        self.id_state = install_id_resampling(self.transformer, mode, prev_clip_weight)

    def _use_id_resampling(self, multi_window: bool) -> bool:
        if self.id_state is None:
            return False
        self.id_state.reset()
        has_adapter = ID_ADAPTER in getattr(self.transformer, "peft_config", {})
        if has_adapter:  # the LoRA belongs with resampling: off for single-window clips
            (self.transformer.enable_adapters if multi_window else self.transformer.disable_adapters)()
        return multi_window

    # ---- conditioning --------------------------------------------------------------------------
    def encode_video(self, video: torch.Tensor, generator: torch.Generator | list[torch.Generator] | None
                     ) -> torch.Tensor:
        """``[B, 3, F, H, W]`` in [-1, 1] -> scaled latents ``[B, (F-1)/4+1, C, H/8, W/8]``, one video at a time
        (the VAE's peak memory is per video), video ``i`` sampled with ``generator[i]`` when a list is given."""
        latents = torch.cat([retrieve_latents(self.vae.encode(video[i:i + 1]),
                                              generator[i] if isinstance(generator, list) else generator)
                             for i in range(video.shape[0])])
        return (self.vae_scaling_factor_image * latents).permute(0, 2, 1, 3, 4)

    def latent_mask(self, masks: torch.Tensor) -> torch.Tensor:
        """``[B, 1, F, H, W]`` (1 = inpaint) -> nearest on the latent grid ``[B, F', 1, h, w]``."""
        _, _, f, h, w = masks.shape
        size = ((f - 1) // self.vae_scale_factor_temporal + 1, h // self.vae_scale_factor_spatial,
                w // self.vae_scale_factor_spatial)
        return F.interpolate(masks.float(), size=size, mode="nearest").permute(0, 2, 1, 3, 4)

    # ---- one window ------------------------------------------------------------------------------
    def _denoise_window(self, video: torch.Tensor, masks: torch.Tensor, image: torch.Tensor,
                        prompt_embeds: torch.Tensor, timesteps: torch.Tensor, num_inference_steps: int,
                        guidance_scale: float, use_dynamic_cfg: bool, full_strength: bool,
                        generator: torch.Generator | list[torch.Generator] | None, conditioning_scale: float,
                        mask_add: bool, replace_gt: bool, id_resampling: bool, decode: bool = True,
                        noise: torch.Tensor | None = None) -> Any:
        """One window of a batch: ``video`` ``[B, 3, F, H, W]`` (each video's own first frame), ``masks``
        ``[1, 1, F, H, W]`` (shared), ``image`` ``[B, 3, H, W]``; returns frames ``[B, F, H, W, 3]`` in [0, 1]
        (or the latents). Generator ``i`` of a list is consumed exactly as a call for video ``i`` alone would."""
        device, dtype = self._execution_device, prompt_embeds.dtype
        do_cfg = guidance_scale > 1.0
        size = video.shape[0]
        video = video.to(device=device, dtype=dtype)
        masks = masks.to(device=device, dtype=dtype)
        height, width = video.shape[-2:]
        shared_mask = self.latent_mask(masks).to(dtype)
        latent_mask = shared_mask.expand(size, -1, -1, -1, -1)
        video_latents = self.encode_video(video, generator).to(dtype)
        masked_latents = self.encode_video(video * (masks < 0.5), generator).to(dtype)
        if noise is None:
            noise = randn_tensor(video_latents.shape, generator=generator, device=device, dtype=dtype)
        noise = noise.to(device=device, dtype=dtype)
        latents, image_latents = self.prepare_latents(image.to(device=device, dtype=dtype), size,
                                                      video_latents.shape[2], video.shape[2], height, width,
                                                      dtype, device, generator, latents=noise)
        if not full_strength:
            latents = self.scheduler.add_noise(video_latents, noise, timesteps[:1])
        branch_cond = torch.cat([masked_latents, latent_mask], dim=2)
        keep = (background_tokens(shared_mask, self.transformer.config.patch_size).expand(size, -1, -1)
                if mask_add else None)
        if do_cfg:
            branch_cond, image_latents = torch.cat([branch_cond] * 2), torch.cat([image_latents] * 2)
            keep = torch.cat([keep] * 2) if keep is not None else None
        rotary = (self._prepare_rotary_positional_embeddings(height, width, latents.size(1), device)
                  if self.transformer.config.use_rotary_positional_embeddings else None)
        if id_resampling and self.id_state is not None:
            pooled = pooled_token_mask(shared_mask, self.transformer.config.patch_size)[0]
            self.id_state.start_window(torch.nonzero(pooled > 0).flatten(), pooled > 0)
        extra_step_kwargs = self.prepare_extra_step_kwargs(generator, 0.0)
        old_pred_original_sample = None
        reset_step_cache(self.transformer)   # a window starts from noise: nothing cached applies
        for i, t in enumerate(progress(timesteps, desc="denoise", total=len(timesteps), unit="step")):
            if self._interrupt:
                break
            self._current_timestep = t
            context = "cond_uncond"
            if id_resampling and self.id_state is not None:
                self.id_state.recording = i == len(timesteps) - 1
                if self.id_state.recording:   # a fresh cache context computes every block: all are recorded
                    context = "id_record"
            model_latents = torch.cat([latents] * 2) if do_cfg else latents
            model_latents = self.scheduler.scale_model_input(model_latents, t)
            timestep = t.expand(model_latents.shape[0])
            samples = self.branch(hidden_states=model_latents, encoder_hidden_states=prompt_embeds,
                                  branch_cond=branch_cond, timestep=timestep, image_rotary_emb=rotary,
                                  conditioning_scale=conditioning_scale)
            model_input = torch.cat([model_latents, image_latents], dim=2)
            with BranchInjection(self.transformer, samples, keep), \
                    IDHooks(self.transformer, self.id_state, id_resampling), \
                    self.transformer.cache_context(context, step_index=i, num_inference_steps=len(timesteps),
                                                   timestep=t):
                noise_pred = self.transformer(hidden_states=model_input, encoder_hidden_states=prompt_embeds,
                                              timestep=timestep, image_rotary_emb=rotary, return_dict=False)[0]
            noise_pred = noise_pred.float()
            scale = dynamic_guidance_scale(guidance_scale, t.item(), num_inference_steps) if use_dynamic_cfg \
                else guidance_scale
            self._guidance_scale = scale
            if do_cfg:
                uncond, cond = noise_pred.chunk(2)
                noise_pred = uncond + scale * (cond - uncond)
            if isinstance(self.scheduler, CogVideoXDPMScheduler):
                latents, old_pred_original_sample = self.scheduler.step(
                    noise_pred, old_pred_original_sample, t, timesteps[i - 1] if i > 0 else None, latents,
                    **extra_step_kwargs, return_dict=False)
            else:
                latents = self.scheduler.step(noise_pred, t, latents, **extra_step_kwargs, return_dict=False)[0]
            latents = latents.to(dtype)
            if replace_gt:  # keep the original outside the mask, at the noise level of the next step
                target = (self.scheduler.add_noise(video_latents, noise, timesteps[i + 1:i + 2])
                          if i < len(timesteps) - 1 else video_latents)
                latents = (1 - latent_mask) * target + latent_mask * latents
            callback, names = self._callback
            if callback is not None:
                tensors = {"latents": latents, "prompt_embeds": prompt_embeds}
                returned = callback(self, i, t, {k: tensors[k] for k in names}) or {}
                latents = returned.get("latents", latents)
                prompt_embeds = returned.get("prompt_embeds", prompt_embeds)
        if id_resampling and self.id_state is not None:
            self.id_state.finish_window()
        if not decode:
            return latents
        frames = torch.cat([self.decode_latents(latents[i:i + 1]) for i in range(size)])   # peak memory per video
        return self.video_processor.postprocess_video(video=frames, output_type="np")

    # ---- whole clip --------------------------------------------------------------------------------
    @torch.no_grad()
    def __call__(self, video: np.ndarray, masks: np.ndarray, prompt: str | Sequence[str],
                 first_frame: np.ndarray | Sequence[np.ndarray] | None = None,
                 negative_prompt: str | Sequence[str] | None = None, num_frames: int = 49, window_stride: int = 41,
                 num_inference_steps: int = 50, guidance_scale: float = 6.0, use_dynamic_cfg: bool = True,
                 strength: float = 1.0, generator: torch.Generator | list[torch.Generator] | None = None,
                 conditioning_scale: float = 1.0, mask_add: bool = True, replace_gt: bool = True,
                 num_videos_per_prompt: int = 1, latents: torch.Tensor | None = None, output_type: str = "np",
                 return_dict: bool = True, callback_on_step_end: Callable[..., dict[str, Any]] | None = None,
                 callback_on_step_end_tensor_inputs: Sequence[str] = ("latents",)) -> Any:
        """Inpaint ``video`` ``[T, H, W, 3]`` uint8 where ``masks`` ``[T, H, W]`` is True.

        ``H``/``W`` are the model resolution (720x480 for CogVideoX-5b-I2V), ``T >= num_frames``.
        ``first_frame`` ``[H, W, 3]`` uint8 (e.g. FluxFill's edit) conditions the first window.

        A batch: ``prompt`` as a list (one first frame for all, or a list with one per prompt) and/or
        ``num_videos_per_prompt``; every video of the batch repaints the same clip and masks, so the windows
        run together (one transformer call per step for all). ``generator`` may be a list, one per video:
        video ``i`` is then exactly what a call for it alone with ``generator[i]`` gives. ``latents``: the
        first window's starting noise ``[B, (num_frames-1)/4+1, C, H/8, W/8]``.

        As a diffusers pipeline: ``output_type`` np | pt | pil | latent (one-window clips), ``return_dict``
        (False: a tuple ``(frames,)``), ``callback_on_step_end(pipe, step, timestep, tensors) -> dict`` after
        each step with ``callback_on_step_end_tensor_inputs`` (latents, prompt_embeds; a returned ``latents``
        replaces them), ``pipe.interrupt`` (set it in the callback to stop after that step), and the
        ``guidance_scale`` (the step's, with dynamic CFG), ``num_timesteps`` and ``current_timestep``
        properties. Every argument is checked first (``check_video_inputs``). Frames have a leading batch
        axis when a batch was asked for (a prompt list or ``num_videos_per_prompt`` > 1); latents always do.
        """
        batch = self.check_video_inputs(video, masks, prompt, first_frame, num_frames, window_stride, strength,
                                        num_inference_steps, output_type, callback_on_step_end,
                                        callback_on_step_end_tensor_inputs, negative_prompt, num_videos_per_prompt,
                                        generator, latents)
        self._interrupt, self._guidance_scale, self._current_timestep = False, guidance_scale, None
        self._callback = (callback_on_step_end, tuple(callback_on_step_end_tensor_inputs or ()))
        total, height, width = video.shape[:3]
        cfg = self.transformer.config
        if cfg.patch_size_t is not None or cfg.ofs_embed_dim:
            raise ValueError("VideoPainter's branch is built for CogVideoX 1.0 I2V (5b-I2V); this transformer is "
                             "CogVideoX 1.5 (temporal patches / ofs embedding)")
        if cfg.use_learned_positional_embeddings and (
                height // self.vae_scale_factor_spatial != cfg.sample_height
                or width // self.vae_scale_factor_spatial != cfg.sample_width):
            raise ValueError(f"this transformer only works at {cfg.sample_width * self.vae_scale_factor_spatial}x"
                             f"{cfg.sample_height * self.vae_scale_factor_spatial}, got {width}x{height}")
        device = self._execution_device
        starts = plan_windows(total, num_frames, window_stride)
        id_resampling = self._use_id_resampling(len(starts) > 1)
        do_cfg = guidance_scale > 1.0
        negative = list(negative_prompt) if isinstance(negative_prompt, list | tuple) else negative_prompt
        prompt_embeds, negative_embeds = self.encode_prompt(
            prompt=batch.prompts, negative_prompt=negative, do_classifier_free_guidance=do_cfg,
            num_videos_per_prompt=batch.per_prompt, max_sequence_length=cfg.max_text_seq_length, device=device)
        if do_cfg:
            prompt_embeds = torch.cat([negative_embeds, prompt_embeds], dim=0)
        prompt_embeds = prompt_embeds.to(self.transformer.dtype)

        pixels = torch.from_numpy(np.ascontiguousarray(video)).permute(3, 0, 1, 2).float() / 127.5 - 1.0
        mask_t = torch.from_numpy(np.ascontiguousarray(masks)).float()[None]
        image = None
        if batch.first_frames is not None:   # [B, 3, H, W], prompt-major like the embeddings
            image = torch.stack([torch.from_numpy(np.ascontiguousarray(batch.first_frames[i // batch.per_prompt]))
                                 .permute(2, 0, 1).float() / 127.5 - 1.0 for i in range(batch.size)])
        acc = np.zeros((batch.size, total, height, width, 3), np.float64)
        counts = np.zeros(total, np.float64)
        previous: tuple[int, np.ndarray] | None = None
        for start in starts:
            window = pixels[:, start:start + num_frames][None].repeat(batch.size, 1, 1, 1, 1)   # [B, 3, F, H, W]
            window_masks = mask_t[:, start:start + num_frames].clone()
            if previous is not None:   # the previous window's frame, with the original outside the mask
                prev_start, prev_frames = previous
                generated = (torch.from_numpy(prev_frames[:, start - prev_start]).permute(0, 3, 1, 2).float()
                             * 2.0 - 1.0)
                inside = window_masks[:, 0]
                image = inside * generated + (1.0 - inside) * window[:, :, 0]
            if image is not None:
                window[:, :, 0] = image
                window_masks[:, 0] = 0.0
                cond = image
            else:   # no first frame given: condition on the masked first frame, as upstream does
                cond = window[:, :, 0] * (window_masks[:, 0] < 0.5)
            timesteps, steps = retrieve_timesteps(self.scheduler, num_inference_steps, device)
            timesteps, steps = self.get_timesteps(steps, timesteps, strength, device)
            self._num_timesteps = len(timesteps)
            frames = self._denoise_window(
                window, window_masks[None], cond, prompt_embeds, timesteps, steps, guidance_scale,
                use_dynamic_cfg, strength >= 1.0, generator, conditioning_scale, mask_add, replace_gt,
                id_resampling, decode=output_type != "latent", noise=latents if start == starts[0] else None)
            if output_type == "latent":
                self.maybe_free_model_hooks()
                return VideoPainterOutput(frames, [(start, start + num_frames)], id_resampling) if return_dict \
                    else (frames,)
            acc[:, start:start + num_frames] += frames
            counts[start:start + num_frames] += 1
            previous = (start, frames)
            log.debug("window %d-%d done", start, start + num_frames)
        self.maybe_free_model_hooks()
        self._current_timestep = None
        out = np.clip(np.rint(acc / counts[:, None, None, None] * 255.0), 0, 255).astype(np.uint8)
        if not batch.batched:
            out = out[0]
        if output_type == "pt":
            out = torch.from_numpy(out).movedim(-1, -3).float() / 255.0
        elif output_type == "pil":
            from PIL import Image

            out = ([[Image.fromarray(f) for f in clip] for clip in out] if batch.batched
                   else [Image.fromarray(f) for f in out])
        if not return_dict:
            return (out,)
        return VideoPainterOutput(out, [(s, s + num_frames) for s in starts], id_resampling)

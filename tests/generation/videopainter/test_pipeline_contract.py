"""The VideoPainter pipeline as a diffusers pipeline: output types, return_dict, step callbacks, interrupt,
the state properties, and argument checks with clear errors (tiny models, 2 steps)."""

import numpy as np
import pytest
import torch
from PIL import Image

from generation.tiny_models import tiny_cogvideox_components
from generation.videopainter.pipeline import VideoPainterOutput, VideoPainterPipeline
from tests.generation.videopainter.test_videopainter import _clip

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def pipe():
    return VideoPainterPipeline(**tiny_cogvideox_components(0))


def _call(pipe, **kwargs):
    video, masks = _clip(49)
    kwargs.setdefault("generator", torch.Generator().manual_seed(42))
    kwargs.setdefault("first_frame", video[0])
    return pipe(video, masks, kwargs.pop("prompt", "lane"), num_inference_steps=2, **kwargs)


def test_output_types_and_return_dict(pipe):
    as_np = _call(pipe)
    assert isinstance(as_np, VideoPainterOutput) and as_np.frames.dtype == np.uint8 and as_np.frames.shape[0] == 49
    as_pt = _call(pipe, output_type="pt")
    assert as_pt.frames.shape == (49, 3, *as_np.frames.shape[1:3]) and as_pt.frames.dtype == torch.float32
    assert torch.allclose(as_pt.frames, torch.from_numpy(as_np.frames).permute(0, 3, 1, 2).float() / 255)
    as_pil = _call(pipe, output_type="pil")
    assert len(as_pil.frames) == 49 and isinstance(as_pil.frames[0], Image.Image)
    assert np.array_equal(np.asarray(as_pil.frames[3]), as_np.frames[3])
    latent = _call(pipe, output_type="latent")
    assert latent.frames.ndim == 5 and latent.frames.shape[:2] == (1, 13)
    (frames,) = _call(pipe, return_dict=False)
    assert np.array_equal(frames, as_np.frames)                      # same seed, same result
    one = _call(pipe, prompt=["lane"]).frames                         # a prompt list is a batch, here of one
    assert one.shape == (1, *as_np.frames.shape) and np.array_equal(one[0], as_np.frames)


def test_step_callback_sees_and_can_replace_the_latents_and_the_state_properties(pipe):
    seen = []

    def record(p, step, timestep, tensors):
        seen.append((step, int(timestep), tuple(tensors), p.guidance_scale, p.num_timesteps, p.current_timestep))
        return {}

    base = _call(pipe, callback_on_step_end=record, callback_on_step_end_tensor_inputs=["latents", "prompt_embeds"])
    assert [s[0] for s in seen] == [0, 1] and all(s[2] == ("latents", "prompt_embeds") for s in seen)
    assert all(s[4] == 2 for s in seen) and seen[0][3] != seen[1][3]          # dynamic CFG moves per step
    assert pipe.num_timesteps == 2 and pipe.current_timestep is None and pipe.interrupt is False

    def zero_latents(p, step, timestep, tensors):
        return {"latents": torch.zeros_like(tensors["latents"])}

    changed = _call(pipe, callback_on_step_end=zero_latents)
    assert not np.array_equal(changed.frames, base.frames)


def test_interrupt_stops_after_the_step_that_set_it(pipe):
    steps = []

    def stop(p, step, timestep, tensors):
        steps.append(step)
        p._interrupt = True
        return {}

    _call(pipe, callback_on_step_end=stop)
    assert steps == [0] and pipe.interrupt is True


@pytest.mark.parametrize("kwargs, message", [
    ({"prompt": []}, "prompt must be a string or a non-empty list of strings"),
    ({"num_videos_per_prompt": 0}, "num_videos_per_prompt must be an integer >= 1"),
    ({"prompt": ["a", "b"], "negative_prompt": ["x"]}, "negative_prompt must be a string or a list of 2 strings"),
    ({"prompt": ["a", "b"], "first_frame": [np.zeros((64, 96, 3), np.uint8)]},
     "first_frame must be one [64, 96, 3] array for every prompt, or 2 of them"),
    ({"num_videos_per_prompt": 2, "generator": [torch.Generator()]}, "1 generators for a batch of 2 videos"),
    ({"latents": torch.zeros(1, 13, 16, 8)}, "latents must be a tensor [1, 13, 16, 8, 12]"),
    ({"num_frames": 48}, "num_frames must be 1 + a multiple of 4"),
    ({"strength": 0.0}, "strength must be in (0, 1]"),
    ({"window_stride": 0}, "window_stride must be >= 1"),
    ({"output_type": "mp4"}, "output_type must be one of np, pt, pil, latent"),
    ({"callback_on_step_end_tensor_inputs": ["noise"]}, "not in ['latents', 'prompt_embeds']"),
    ({"callback_on_step_end": 3}, "callback_on_step_end must be callable"),
])
def test_bad_arguments_are_clear_errors_before_any_work(pipe, kwargs, message):
    with pytest.raises(ValueError) as info:
        _call(pipe, **kwargs)
    assert message in str(info.value)


def test_bad_arrays_are_clear_errors(pipe):
    video, masks = _clip(49)
    with pytest.raises(ValueError, match="video must be a uint8 array"):
        pipe(video.astype(np.float32), masks, "lane")
    with pytest.raises(ValueError, match="masks .* do not match video"):
        pipe(video, masks[:10], "lane")
    with pytest.raises(ValueError, match="multiples of 16"):
        pipe(video[:, :60], masks[:, :60], "lane")
    with pytest.raises(ValueError, match="fewer than num_frames=49"):
        pipe(video[:20], masks[:20], "lane")
    with pytest.raises(ValueError, match="first_frame"):
        pipe(video, masks, "lane", first_frame=video[0, :10])
    long_video, long_masks = _clip(53)
    with pytest.raises(ValueError, match="output_type='latent' needs a clip of one window"):
        pipe(long_video, long_masks, "lane", window_stride=4, output_type="latent")

"""The checks of diffusers' pipeline test mixin (tests/pipelines/test_pipelines_common.py) that apply to a video
inpainting pipeline, adapted to VideoPainterPipeline on tiny models: batch consistency (a batch with a generator
per video equals the videos made one by one, also across windows and with ID resampling), num_videos_per_prompt,
latents as the starting noise, classifier-free guidance batching, save/load, the components round trip, and
model CPU offload (needs a GPU: the offload hooks move each model to an accelerator and back).

Not adapted: attention slicing, xformers, VAE slicing/tiling equivalence (upstream CogVideoX's own tests cover
its VAE), fp16 inference (needs a GPU), and the mixin's "inputs as dict" helpers (our call takes arrays)."""

import numpy as np
import pytest
import torch

from generation.tiny_models import tiny_cogvideox_components
from generation.videopainter.pipeline import VideoPainterPipeline
from tests.generation.videopainter.test_videopainter import _clip

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# A batched matmul may sum in another order than a batch of one: frames in [0, 1] agree to this.
BATCH_TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def pipe():
    return VideoPainterPipeline(**tiny_cogvideox_components(0))


def _firsts(video, n):
    rng = np.random.default_rng(5)
    return [np.clip(video[0].astype(int) + rng.integers(-40, 40, video[0].shape), 0, 255).astype(np.uint8)
            for _ in range(n)]


def _seeded(*seeds):
    return [torch.Generator().manual_seed(s) for s in seeds]


@pytest.mark.parametrize("frames, stride, id_resampling", [(49, 41, False), (53, 4, False), (53, 4, True)],
                         ids=["one-window", "two-windows", "two-windows-id-resampling"])
def test_a_batch_with_a_generator_per_video_equals_the_videos_made_one_by_one(frames, stride, id_resampling):
    pipe = VideoPainterPipeline(**tiny_cogvideox_components(0))
    if id_resampling:
        pipe.enable_id_resampling()
    video, masks = _clip(frames, seed=2)
    prompts, firsts = ["lane one", "lane two", "lane three"], _firsts(video, 3)
    common = dict(num_inference_steps=2, window_stride=stride, output_type="pt")
    batched = pipe(video, masks, prompts, first_frame=firsts, generator=_seeded(7, 8, 9), **common).frames
    assert batched.shape == (3, frames, 3, 64, 96)
    for i, (prompt, first, seed) in enumerate(zip(prompts, firsts, (7, 8, 9), strict=True)):
        alone = pipe(video, masks, prompt, first_frame=first, generator=_seeded(seed)[0], **common).frames
        assert (batched[i] - alone).abs().max() <= BATCH_TOLERANCE, i
    assert not torch.equal(batched[0], batched[1])


def test_num_videos_per_prompt(pipe):
    video, masks = _clip(49)
    common = dict(first_frame=video[0], num_inference_steps=2, output_type="np")
    out = pipe(video, masks, ["a", "b"], num_videos_per_prompt=2, generator=torch.Generator().manual_seed(1),
               **common).frames
    assert out.shape == (4, 49, 64, 96, 3)
    assert not np.array_equal(out[0], out[1])        # one generator: each video its own noise
    same = pipe(video, masks, "a", num_videos_per_prompt=2, generator=_seeded(3, 3), **common).frames
    assert same.shape == (2, 49, 64, 96, 3) and np.array_equal(same[0], same[1])


def test_latents_are_the_first_windows_starting_noise(pipe):
    video, masks = _clip(49)
    noise = torch.randn(2, 13, 16, 8, 12, generator=torch.Generator().manual_seed(11))
    seen = []
    handle = pipe.transformer.register_forward_pre_hook(
        lambda module, args, kwargs: seen.append(kwargs["hidden_states"].clone()), with_kwargs=True)
    try:
        out = pipe(video, masks, "lane", first_frame=video[0], num_videos_per_prompt=2, latents=noise,
                   num_inference_steps=2, generator=torch.Generator().manual_seed(0), output_type="latent").frames
    finally:
        handle.remove()
    first_call = seen[0]                              # [uncond x 2 | cond x 2] x [noisy latents | image latents]
    assert first_call.shape[0] == 4
    assert torch.equal(first_call[:2, :, :16], noise) and torch.equal(first_call[2:, :, :16], noise)
    assert out.shape == (2, 13, 16, 8, 12)


def test_guidance_above_one_doubles_the_transformer_batch(pipe):
    video, masks = _clip(49)
    sizes = []
    handle = pipe.transformer.register_forward_pre_hook(
        lambda module, args, kwargs: sizes.append(kwargs["hidden_states"].shape[0]), with_kwargs=True)
    try:
        for scale in (1.0, 6.0):
            pipe(video, masks, ["a", "b", "c"], first_frame=video[0], guidance_scale=scale, num_inference_steps=2)
    finally:
        handle.remove()
    assert sizes == [3, 3, 6, 6]


def test_save_load_and_components_round_trip_give_the_same_video(pipe, tmp_path):
    video, masks = _clip(49)

    def run(p):
        return p(video, masks, "lane", first_frame=video[0], num_inference_steps=2,
                 generator=torch.Generator().manual_seed(42)).frames

    reference = run(pipe)
    pipe.save_pretrained(tmp_path)
    loaded = VideoPainterPipeline.from_pretrained(tmp_path)
    assert type(loaded.branch).__name__ == "VideoPainterBranch"
    assert np.array_equal(run(loaded), reference)
    rebuilt = VideoPainterPipeline(**pipe.components)
    assert set(pipe.components) == {"tokenizer", "text_encoder", "vae", "transformer", "scheduler", "branch"}
    assert np.array_equal(run(rebuilt), reference)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="model CPU offload moves each model to a GPU and back")
def test_model_cpu_offload_gives_the_same_video():
    video, masks = _clip(49)

    def run(p):
        return p(video, masks, "lane", first_frame=video[0], num_inference_steps=2,
                 generator=torch.Generator().manual_seed(42)).frames

    resident = VideoPainterPipeline(**tiny_cogvideox_components(0)).to("cuda")
    offloaded = VideoPainterPipeline(**tiny_cogvideox_components(0))
    offloaded.enable_model_cpu_offload(device="cuda")
    assert np.abs(run(resident).astype(int) - run(offloaded).astype(int)).max() <= 1

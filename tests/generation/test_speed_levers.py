"""Speed levers on tiny models: First Block Cache with the VideoPainter branch (the residual counted once,
the skipped fraction, the output within a stated tolerance), float8 weight storage, regional compile (one
compiled graph per block class), FluxFill under the cache, and ID resampling's recording step under it."""

import numpy as np
import pytest
import torch

from generation.speed_levers import apply_speed_levers
from generation.tiny_models import TINY_BACKBONE_LAYERS, tiny_cogvideox_components, tiny_fluxfill_components
from generation.videopainter.hooks import BranchInjection, install_branch_hooks
from generation.videopainter.pipeline import VideoPainterPipeline
from tests.generation.videopainter.test_videopainter import _branch_inputs, _clip

pytestmark = pytest.mark.usefixtures("one_torch_thread")

STEPS = 10
# The stated tolerance of the cached run against the uncached one (tiny random weights, frames in [0, 1]).
CACHE_MEAN_TOLERANCE = 2e-3
CACHE_MAX_TOLERANCE = 0.3
FLOAT8_MEAN_TOLERANCE = 1e-3


def _pipe(**levers):
    pipe = VideoPainterPipeline(**tiny_cogvideox_components(0))
    applied = apply_speed_levers(pipe.transformer, extra_modules=(pipe.branch,), compile_backend="eager", **levers)
    return pipe, applied


def _run(pipe, frames=49, steps=STEPS, **kwargs):
    video, masks = _clip(frames)
    pipe.branch_slot.reset_count()
    return pipe(video, masks, "lane", first_frame=video[0], num_inference_steps=steps, output_type="pt",
                generator=torch.Generator().manual_seed(42), **kwargs).frames


@pytest.fixture(scope="module")
def reference():
    pipe, applied = _pipe()
    assert applied == {"step_cache": None, "storage": "compute", "compile": "none"}
    frames = _run(pipe)
    assert pipe.branch_slot.block_calls == STEPS * TINY_BACKBONE_LAYERS   # every block at every step
    return frames


def test_a_skipped_step_adds_the_branch_residual_once():
    """Same inputs twice with a threshold that always skips: the second call runs only the first block and
    must reproduce the first call. Were the residual added outside the cache (a torch forward hook), each
    skipped block would add it again and the outputs would differ."""
    transformer = tiny_cogvideox_components(0)["transformer"]
    slot = install_branch_hooks(transformer)
    apply_speed_levers(transformer, cache_threshold=1e9)
    noisy, _, text, image, t = _branch_inputs(transformer)
    x = torch.cat([noisy, image], dim=2)
    samples = [torch.randn(2, 13 * 4 * 6, 32, generator=torch.Generator().manual_seed(i)) for i in (1, 2)]
    outputs = []
    with torch.no_grad(), BranchInjection(transformer, samples):
        for _ in range(2):
            slot.reset_count()
            with transformer.cache_context("cond_uncond"):
                outputs.append(transformer(x, text, t, return_dict=False)[0])
            outputs.append(slot.block_calls)
    computed, calls, cached, skipped_calls = outputs
    assert calls == TINY_BACKBONE_LAYERS and skipped_calls == 1
    assert torch.allclose(cached, computed, atol=1e-5)


def test_cache_enabled_before_the_pipeline_is_a_clear_error():
    components = tiny_cogvideox_components(0)
    apply_speed_levers(components["transformer"], cache_threshold=0.1)
    with pytest.raises(ValueError, match="enable step caching .* after building the VideoPainter pipeline"):
        VideoPainterPipeline(**components)


def test_first_block_cache_skips_blocks_within_the_stated_tolerance(reference):
    pipe, applied = _pipe(cache_threshold=0.2)
    assert applied["step_cache"] == {"method": "first-block", "threshold": 0.2}
    frames = _run(pipe)
    skipped = 1 - pipe.branch_slot.block_calls / (STEPS * TINY_BACKBONE_LAYERS)
    diff = (frames - reference).abs()
    assert skipped >= 0.3                       # measured 0.45 with these seeds
    assert 0 < diff.mean() <= CACHE_MEAN_TOLERANCE and diff.max() <= CACHE_MAX_TOLERANCE
    again = _run(pipe)                          # the cache state does not leak into the next call
    assert torch.equal(again, frames)


def test_a_threshold_below_every_change_computes_every_block(reference):
    pipe, _ = _pipe(cache_threshold=1e-6)
    assert torch.equal(_run(pipe), reference) and pipe.branch_slot.block_calls == STEPS * TINY_BACKBONE_LAYERS


def test_float8_storage_casts_the_weights_not_the_norms_and_stays_close(reference):
    pipe, applied = _pipe(storage="float8")
    assert applied["storage"] == "float8_e4m3fn weights, float32 compute"
    block = pipe.transformer.transformer_blocks[0]
    assert block.attn1.to_q.weight.dtype == torch.float8_e4m3fn and block.ff.net[2].weight.dtype == torch.float8_e4m3fn
    assert block.norm1.norm.weight.dtype == torch.float32                 # norms stay as loaded
    assert pipe.branch.transformer_blocks[0].attn1.to_k.weight.dtype == torch.float8_e4m3fn
    diff = (_run(pipe) - reference).abs()
    assert 0 < diff.mean() <= FLOAT8_MEAN_TOLERANCE


def test_regional_compile_reuses_one_graph_for_every_block(reference):
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()
    pipe, applied = _pipe(compile="regional", cache_threshold=1e-6)
    assert applied["compile"] == "regional (6 blocks, eager)"
    frames = _run(pipe, steps=STEPS)
    assert torch.equal(frames, reference)
    # 4 backbone + 2 branch blocks of one class: a graph per input layout, not one per block
    assert 1 <= counters["stats"]["unique_graphs"] <= 2
    torch._dynamo.reset()


def test_id_resampling_records_every_block_at_a_windows_last_step_under_the_cache():
    pipe, _ = _pipe(cache_threshold=1e9)          # every step after a window's first skips
    pipe.enable_id_resampling()
    recorded = []
    record = pipe.id_state.record
    pipe.id_state.record = lambda layer, value: recorded.append(layer) or record(layer, value)
    out = _run(pipe, frames=53, steps=3, window_stride=4)
    assert out.shape[0] == 53
    assert sorted(recorded) == sorted(list(range(TINY_BACKBONE_LAYERS)) * 2)   # both windows, every block
    # per window: step 0 computes, step 1 skips, the last step (its own cache context) computes
    assert pipe.branch_slot.block_calls == 2 * (TINY_BACKBONE_LAYERS + 1 + TINY_BACKBONE_LAYERS)


def test_fluxfill_runs_under_its_cache_and_skips():
    from diffusers import FluxFillPipeline

    from generation.first_frame import FluxFillInpainter

    def inpaint(threshold, compile="none"):
        pipe = FluxFillPipeline(**tiny_fluxfill_components(0))
        pipe.set_progress_bar_config(disable=True)
        apply_speed_levers(pipe.transformer, cache_threshold=threshold, compile=compile, compile_backend="eager")
        calls = []   # attention of the last (tail) block: runs only when the block computes
        pipe.transformer.single_transformer_blocks[0].attn.register_forward_pre_hook(lambda *a: calls.append(1))
        rng = np.random.default_rng(0)
        frame = rng.integers(0, 256, (64, 96, 3), dtype=np.uint8)
        mask = np.zeros((64, 96), bool)
        mask[32:] = True
        out = FluxFillInpainter(pipe, num_inference_steps=6, max_area=96 * 64, max_sequence_length=32)(
            frame, mask, "lane", seed=1)
        return out, len(calls)

    plain, plain_calls = inpaint(0.0)
    cached, cached_calls = inpaint(1e9)
    assert plain_calls == 6 and cached_calls == 1     # the cached run computes the tail blocks at step 0 only
    assert cached.shape == plain.shape and cached.dtype == np.uint8
    compiled, compiled_calls = inpaint(1e9, compile="regional")   # compiled under the cache's own hooks
    assert compiled_calls == 1 and np.array_equal(compiled, cached)


def test_float8_storage_keeps_the_id_lora_in_the_compute_dtype(tmp_path):
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    from generation.tiny_models import tiny_cogvideox_transformer
    from generation.videopainter.id_resampling import load_id_lora

    source = tiny_cogvideox_transformer(0)
    source.add_adapter(LoraConfig(r=4, lora_alpha=4, init_lora_weights=False,
                                  target_modules=["to_q", "to_k", "to_v", "to_out.0"]))
    VideoPainterPipeline.save_lora_weights(tmp_path, transformer_lora_layers=get_peft_model_state_dict(source))

    def run(storage):
        pipe = VideoPainterPipeline(**tiny_cogvideox_components(0))
        load_id_lora(pipe, str(tmp_path), alpha=2.0)      # as edit_models does: the LoRA first, then the levers
        pipe.enable_id_resampling()
        apply_speed_levers(pipe.transformer, storage=storage, extra_modules=(pipe.branch,))
        return pipe, _run(pipe, frames=53, steps=2, window_stride=4)

    _, plain = run("compute")
    pipe, cast = run("float8")
    to_q = pipe.transformer.transformer_blocks[0].attn1.to_q
    assert to_q.base_layer.weight.dtype == torch.float8_e4m3fn
    assert to_q.lora_A["videopainter_id"].weight.dtype == torch.float32      # the adapter is not rounded
    assert (cast - plain).abs().mean() <= FLOAT8_MEAN_TOLERANCE

"""The FluxFill first frame on tiny seeded components (2 steps): size handling, keep_masked_pixels,
the optional LoRA (scale 0 = off), and a missing LoRA path."""

import numpy as np
import pytest

from core.errors import LanepaintError
from generation.first_frame import FluxFillInpainter, apply_lora
from generation.tiny_models import tiny_fluxfill_components


@pytest.fixture(scope="module")
def pipe():
    from diffusers import FluxFillPipeline

    p = FluxFillPipeline(**tiny_fluxfill_components(0))
    p.set_progress_bar_config(disable=True)
    return p


def _frame():
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (70, 100, 3), dtype=np.uint8)       # not a multiple of 16
    mask = np.zeros((70, 100), bool)
    mask[35:, 20:80] = True
    return frame, mask


def _inpainter(pipe, **kw):
    return FluxFillInpainter(pipe, num_inference_steps=2, max_area=96 * 64, max_sequence_length=32, **kw)


def test_first_frame_keeps_the_clip_size_and_changes_only_the_mask(pipe):
    frame, mask = _frame()
    inpainter = _inpainter(pipe, keep_masked_pixels=True, mask_feather=4)
    assert inpainter.working_size(100, 70) == (80, 64)
    out = inpainter(frame, mask, "double yellow solid lane", seed=42)
    assert out.shape == frame.shape and out.dtype == np.uint8
    assert np.array_equal(out[~mask], frame[~mask])
    assert not np.array_equal(out[mask], frame[mask])
    again = inpainter(frame, mask, "double yellow solid lane", seed=42)
    assert np.array_equal(out, again)                                 # seeded


def test_without_keep_masked_pixels_the_whole_frame_is_fluxfills(pipe):
    frame, mask = _frame()
    out = _inpainter(pipe, keep_masked_pixels=False)(frame, mask, "white dashed lane", seed=1)
    assert out.shape == frame.shape
    assert not np.array_equal(out[~mask], frame[~mask])


def test_lora_scale_zero_is_off_and_a_positive_scale_changes_the_result(tmp_path):
    from diffusers import FluxFillPipeline
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    source = tiny_fluxfill_components(0)["transformer"]
    source.add_adapter(LoraConfig(r=4, lora_alpha=4, init_lora_weights=False,
                                  target_modules=["to_q", "to_k", "to_v", "to_out.0"]))
    FluxFillPipeline.save_lora_weights(tmp_path, transformer_lora_layers=get_peft_model_state_dict(source))
    frame, mask = _frame()
    plain = FluxFillPipeline(**tiny_fluxfill_components(0))
    plain.set_progress_bar_config(disable=True)
    assert apply_lora(plain, str(tmp_path), 0.0) == {"path": str(tmp_path), "scale": 0.0, "loaded": False}
    assert not getattr(plain.transformer, "peft_config", None)
    base = _inpainter(plain)(frame, mask, "white solid lane", seed=3)
    with_lora = FluxFillPipeline(**tiny_fluxfill_components(0))
    with_lora.set_progress_bar_config(disable=True)
    info = apply_lora(with_lora, str(tmp_path / "pytorch_lora_weights.safetensors"), 0.8)
    assert info["loaded"] and info["scale"] == 0.8
    edited = _inpainter(with_lora)(frame, mask, "white solid lane", seed=3)
    assert not np.array_equal(edited, base)
    assert np.array_equal(edited[~mask], frame[~mask])


def test_missing_lora_path_is_a_one_line_error(pipe, tmp_path):
    with pytest.raises(LanepaintError, match="FluxFill LoRA not found: .*nope"):
        apply_lora(pipe, str(tmp_path / "nope"), 1.0)
    with pytest.raises(LanepaintError, match="has no pytorch_lora_weights.safetensors"):
        apply_lora(pipe, str(tmp_path), 1.0)


def test_bad_frame_input_is_rejected(pipe):
    frame, mask = _frame()
    with pytest.raises(ValueError, match="does not match"):
        _inpainter(pipe)(frame, mask[:10], "x", seed=0)
    with pytest.raises(ValueError, match="uint8"):
        _inpainter(pipe)(frame.astype(np.float32), mask, "x", seed=0)

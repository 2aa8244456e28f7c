"""Qwen2.5-VL wrapper on the tiny profile: the real classes with random weights, and the judge end to end."""

import gc
import json
import weakref

import numpy as np
import pytest
import torch

from core import storage
from core.device import DevicePolicy
from core.errors import UsageError
from generation.quality.judge import CaptionRefineWriter, Judge
from generation.quality.judge_parse import FAIL
from generation.quality.vlm import QWEN_SIZES, QwenVLM, memory_plan, qwen_source

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def vlm():
    return QwenVLM("tiny").load()


@pytest.fixture
def frames():
    rng = np.random.default_rng(1)
    clip = rng.integers(0, 255, (9, 40, 56, 3), dtype=np.uint8)
    masks = np.zeros((9, 40, 56), bool)
    masks[:, 24:, 8:40] = True
    return clip, masks


def test_tiny_model_is_the_real_architecture(vlm):
    from transformers import Qwen2_5_VLForConditionalGeneration

    model = vlm._model
    assert isinstance(model, Qwen2_5_VLForConditionalGeneration) and not model.training
    text = model.config.text_config
    head_dim = text.hidden_size // text.num_attention_heads
    assert sum(text.rope_parameters["mrope_section"]) == head_dim // 2
    assert vlm._processor.video_processor is None
    info = vlm.describe()
    assert info["profile"] == "tiny" and info["device"] == "cpu" and info["parameters"] > 0


def test_ask_with_image_and_text_only(vlm, frames):
    clip, _ = frames
    answer = vlm.ask(clip[0], "Is the paint yellow?", max_new_tokens=4, seed=3)
    again = vlm.ask(clip[0], "Is the paint yellow?", max_new_tokens=4, seed=3)
    assert isinstance(answer, str) and answer == again          # seeded sampling is reproducible
    assert isinstance(vlm.ask(None, "hello", temperature=0.0, max_new_tokens=3), str)
    with pytest.raises(ValueError, match=r"uint8 \[H,W,3\]"):
        vlm.ask(clip[0].astype(np.float32), "x", max_new_tokens=2)


def test_ask_many_batches_with_left_padding(vlm, frames):
    clip, _ = frames
    prompts = ["short", "a much longer question about the lane markings in this frame"]
    batch = vlm.ask_many([clip[0], clip[1]], prompts, temperature=0.0, max_new_tokens=4)
    single = [vlm.ask(clip[i], prompts[i], temperature=0.0, max_new_tokens=4) for i in range(2)]
    assert len(batch) == 2 and batch[1] == single[1]   # the longest prompt needs no padding: identical
    assert vlm.ask_many([], []) == []


def test_caption_falls_back_to_the_instruction_when_empty(vlm, monkeypatch):
    assert isinstance(vlm.caption("add a double yellow line", max_new_tokens=4, seed=0), str)
    monkeypatch.setattr(vlm, "ask", lambda *a, **k: "  ``` ```  ")
    assert vlm.caption("add a double yellow line") == "add a double yellow line"


def test_unload_releases_the_model_and_reloads_on_demand():
    vlm = QwenVLM("tiny", unload_after_use=True).load()
    ref = weakref.ref(vlm._model)
    assert vlm.maybe_unload() is True and not vlm.loaded
    gc.collect()
    assert ref() is None                       # nothing else holds the model: its memory is free
    vlm.ask(None, "hi", max_new_tokens=2)
    assert vlm.loaded and vlm.load_count == 2
    keep = QwenVLM("tiny", unload_after_use=False).load()
    assert keep.maybe_unload() is False and keep.loaded


def test_model_names_and_memory_plan(tmp_path):
    assert qwen_source(None) == QWEN_SIZES["7B"] == "Qwen/Qwen2.5-VL-7B-Instruct"
    assert qwen_source("72b") == "Qwen/Qwen2.5-VL-72B-Instruct"
    assert qwen_source(str(tmp_path)) == str(tmp_path)
    assert qwen_source("my-org/my-qwen") == "my-org/my-qwen"
    for bad in ("13B", "/no/such/folder", "a/b/c"):
        with pytest.raises(UsageError, match="Qwen model"):
            qwen_source(bad)
    with pytest.raises(UsageError):
        QwenVLM("tiny", vram_reserve_gib=-1)
    gpu = DevicePolicy("cuda:1", "bfloat16", True, (9, 0), "H100")
    assert memory_plan(gpu, 0.0) == {"device_map": {"": "cuda:1"}}
    plan = memory_plan(gpu, 30.0, free_bytes=80 * 2**30)
    assert plan["device_map"] == "auto" and plan["max_memory"][1] == 50 * 2**30
    assert memory_plan(gpu, 90.0, free_bytes=80 * 2**30)["max_memory"][1] == 0
    assert memory_plan(DevicePolicy("cpu", "float32", False), 30.0) == {"device_map": {"": "cpu"}}


def test_judge_loop_end_to_end_with_tiny_qwen(vlm, frames, tmp_path):
    """Random weights answer garbage: every verdict parses to FAIL and the cap ends the loop."""
    clip, masks = frames
    judge = Judge(vlm, iters=3, max_new_tokens=6, caption_max_new_tokens=6, compliance_frames=3, seed=7)
    captions = []

    def inpaint(caption, attempt):
        captions.append(caption)
        out = clip[0].copy()
        out[masks[0]] = 255
        return out

    writer = CaptionRefineWriter(str(tmp_path / "clip_0001_caption_refine"))
    result = judge.refine_first_frame("add a double solid yellow line", clip[0], masks[0], inpaint, record=writer)
    assert result.verdict == FAIL and result.iterations == 3 and len(captions) == 3
    assert all(a.verdict.reasons for a in result.history)
    compliance = judge.compliance_over_time("add a double solid yellow line", clip, masks, clip, record=writer)
    assert compliance.frames == [0, 4, 8] and compliance.fraction == 0.0
    writer.write_summary(result, compliance)
    summary = json.loads(storage.read_text(str(tmp_path / "clip_0001_caption_refine" / "summary.json")))
    assert summary["first_frame"]["final_verdict"] == FAIL and summary["compliance"]["checked"] == 3
    assert len(list((tmp_path / "clip_0001_caption_refine").glob("attempt_*_answer.txt"))) == 3


def test_full_loader_reads_a_local_checkpoint_folder(vlm, frames, tmp_path):
    """The `full` path (tokenizer, image processor and model from a folder) gives the tiny model's answers."""
    vlm._model.save_pretrained(tmp_path)
    vlm._processor.tokenizer.save_pretrained(tmp_path)
    vlm._processor.image_processor.save_pretrained(tmp_path)
    full = QwenVLM("full", model=str(tmp_path), device="cpu").load()
    assert full.source == str(tmp_path) and full.plan == {"device_map": {"": "cpu"}}
    clip, _ = frames
    question = "Which colour are the lines?"
    assert full.ask(clip[2], question, temperature=0.0, max_new_tokens=5) == \
        vlm.ask(clip[2], question, temperature=0.0, max_new_tokens=5)
    assert full.describe()["parameters"] == vlm.describe()["parameters"]


@pytest.mark.gpu
def test_unload_gives_the_gpu_memory_back():
    torch.cuda.empty_cache()
    before = torch.cuda.memory_allocated()
    vlm = QwenVLM("tiny", device="cuda", unload_after_use=True).load()
    assert torch.cuda.memory_allocated() > before
    assert isinstance(vlm.ask(np.zeros((56, 56, 3), np.uint8), "x", max_new_tokens=2), str)
    vlm.maybe_unload()
    assert torch.cuda.memory_allocated() == before


def test_tiny_answers_are_capped_to_a_few_tokens(vlm, monkeypatch):
    seen = {}
    generate = vlm._model.generate

    def spy(**kwargs):
        out = generate(**kwargs)
        seen["new"] = out.shape[1] - kwargs["input_ids"].shape[1]
        seen["asked"] = kwargs["max_new_tokens"]
        return out

    monkeypatch.setattr(vlm._model, "generate", spy)
    vlm.ask(None, "describe the road", temperature=0.0, max_new_tokens=512)
    assert seen["asked"] == 8 and seen["new"] <= 8

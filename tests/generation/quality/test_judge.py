"""The caption-refine loop and the compliance check with scripted verdicts (no model), and their files."""

import json

import numpy as np
import pytest

from core import storage
from core.layout import Layout
from generation.quality.judge import (
    CaptionRefineWriter,
    compliance_frames,
    compliance_over_time,
    refine_first_frame,
)
from generation.quality.judge_parse import FAIL, PASS
from generation.quality.judge_prompts import ATTRIBUTE_KEYS, PANEL_LABELS, build_panel

H, W = 36, 48


def answer(verdict, caption, failed=()):
    checks = {k: {"pass": k not in failed, "note": ""} for k in ATTRIBUTE_KEYS}
    return json.dumps({"verdict": verdict, "checks": checks, "revised_caption": caption})


@pytest.fixture
def scene():
    rng = np.random.default_rng(0)
    original = rng.integers(0, 255, (H, W, 3), dtype=np.uint8)
    mask = np.zeros((H, W), bool)
    mask[20:, 10:30] = True
    return original, mask


class ScriptedJudge:
    def __init__(self, answers):
        self.answers = list(answers)
        self.calls = []

    def __call__(self, panel, prompt, attempt):
        self.calls.append((panel.shape, prompt, attempt))
        return self.answers[attempt - 1]


class RecordingInpainter:
    def __init__(self):
        self.captions = []

    def __call__(self, caption, attempt):
        self.captions.append(caption)
        return np.full((H, W, 3), attempt, dtype=np.uint8)   # attempt n paints the value n


def test_fail_fail_pass_drives_three_attempts_with_revised_captions(scene):
    original, mask = scene
    judge = ScriptedJudge([answer(FAIL, "caption two", failed=("colour",)),
                           answer(FAIL, "caption three", failed=("pattern",)),
                           answer(PASS, "caption three")])
    inpaint = RecordingInpainter()
    records = []
    result = refine_first_frame("add yellow lines", original, mask, "caption one", inpaint, judge,
                                max_iters=10, record=records.append)
    assert inpaint.captions == ["caption one", "caption two", "caption three"]
    assert result.verdict == PASS and result.iterations == 3 and result.chosen_attempt == 3
    assert result.caption == "caption three"
    assert int(result.image[0, 0, 0]) == 3
    assert [a.verdict.verdict for a in result.history] == [FAIL, FAIL, PASS]
    assert [a.index for a in records] == [1, 2, 3]
    # the judge saw the three-panel image and a prompt with the instruction and the caption used
    shape, prompt, attempt = judge.calls[1]
    assert attempt == 2 and "add yellow lines" in prompt and "caption two" in prompt
    assert shape[1] > 3 * W and shape[2] == 3
    summary = result.to_dict()
    assert summary["iterations"] == 3 and summary["final_verdict"] == PASS
    assert [h["caption"] for h in summary["history"]] == ["caption one", "caption two", "caption three"]


def test_iteration_cap_ends_the_loop_and_keeps_the_best_attempt(scene):
    original, mask = scene
    answers = [answer(FAIL, f"c{i + 2}", failed=ATTRIBUTE_KEYS[: 7 - s]) for i, s in enumerate([1, 5, 5, 2])]
    inpaint = RecordingInpainter()
    result = refine_first_frame("x", original, mask, "c1", inpaint, ScriptedJudge(answers), max_iters=4)
    assert result.verdict == FAIL and result.iterations == 4 and len(inpaint.captions) == 4
    assert result.chosen_attempt == 3          # 5 checks passed on attempts 2 and 3: the latest wins
    assert result.caption == "c3" and int(result.image[0, 0, 0]) == 3


def test_malformed_answers_keep_the_caption_and_never_raise(scene):
    original, mask = scene
    answers = ["no idea", '{"verdict": "PASS", "checks": {', "```json\n{}\n```", 17, answer("MAYBE", "c9")]
    inpaint = RecordingInpainter()
    result = refine_first_frame("x", original, mask, "c1", inpaint, ScriptedJudge(answers), max_iters=5)
    assert result.verdict == FAIL and result.iterations == 5
    # no usable revised caption until the last answer: the caption stays
    assert inpaint.captions == ["c1"] * 5
    assert all(a.verdict.reasons for a in result.history)
    assert "unknown verdict 'MAYBE'" in result.history[-1].verdict.reasons


def test_max_iters_must_be_positive(scene):
    with pytest.raises(ValueError):
        refine_first_frame("x", *scene, "c", RecordingInpainter(), ScriptedJudge([]), max_iters=0)


def test_compliance_frames_spread_over_the_clip():
    assert compliance_frames(49, 4) == [0, 16, 32, 48]
    assert compliance_frames(3, 4) == [0, 1, 2]
    assert compliance_frames(49, 1) == [0]
    assert compliance_frames(49, 0) == [] and compliance_frames(0, 4) == []


def test_compliance_fraction_and_batched_call(scene):
    original, mask = scene
    clip = np.stack([original] * 9)
    masks = np.stack([mask] * 9)
    seen = []

    def judge_many(panels, prompts):
        seen.append((len(panels), prompts[0]))
        return [answer(PASS, "c"), "garbage", answer(FAIL, "c", failed=("count",)), answer(PASS, "c")]

    records = []
    result = compliance_over_time("add lines", clip, masks, clip, judge_many, frames=4, record=records.append)
    assert seen[0][0] == 4 and "add lines" in seen[0][1] and "revised_caption" not in seen[0][1]
    assert result.frames == [0, 3, 5, 8]
    assert result.fraction == pytest.approx(0.5) and result.passed == 2
    assert [r.frame for r in records] == [0, 3, 5, 8]
    assert result.to_dict()["verdicts"] == [PASS, FAIL, FAIL, PASS]
    off = compliance_over_time("x", clip, masks, clip, judge_many, frames=0)
    assert off.fraction is None and off.frames == []


def test_panel_layout(scene):
    original, mask = scene
    generated = np.zeros_like(original)
    panel = build_panel(original, mask, generated)
    label_h = panel.shape[0] - H
    assert panel.dtype == np.uint8 and panel.shape[1] == 3 * W + 8 and label_h >= 14
    np.testing.assert_array_equal(panel[label_h:, :W], original)
    np.testing.assert_array_equal(panel[label_h:, W + 4:2 * W + 4, 0], mask * 255)
    np.testing.assert_array_equal(panel[label_h:, 2 * W + 8:], generated)
    assert panel[:label_h].max() == 255          # labels drawn in white
    assert len(PANEL_LABELS) == 3
    with pytest.raises(ValueError, match="panel shapes differ"):
        build_panel(original, mask[:-1], generated)
    big = build_panel(np.zeros((2048, 1024, 3), np.uint8), np.zeros((2048, 1024)), np.zeros((2048, 1024, 3), np.uint8))
    assert big.shape[0] < 1200                   # scaled down to max 1024 per tile


def test_writer_keeps_every_attempt(storage_root, scene):
    original, mask = scene
    folder = Layout(storage_root).vp_caption_refine_dir("run1", "double_yellow", "clip_0001")
    writer = CaptionRefineWriter(folder)
    judge = ScriptedJudge([answer(FAIL, "c2", failed=("count",)), answer(PASS, "c2")])
    result = refine_first_frame("add", original, mask, "c1", RecordingInpainter(), judge, record=writer)
    clip = np.stack([original] * 4)
    compliance = compliance_over_time("add", clip, np.stack([mask] * 4), clip,
                                      lambda panels, prompts: [answer(PASS, "c")] * len(panels), 2, writer)
    writer.write_summary(result, compliance)
    names = sorted(u[len(folder):].lstrip("/") for u in storage.walk_files(folder))
    expected = {f"attempt_0{i}_{s}" for i in (1, 2) for s in ("panel.png", "prompt.txt", "answer.txt", "verdict.json")}
    assert expected <= set(names)
    assert "compliance/frame_00003_verdict.json" in names and "summary.json" in names
    assert folder.rstrip("/").endswith("clip_0001_caption_refine")
    verdict = json.loads(storage.read_text(storage.join(folder, "attempt_01_verdict.json")))
    assert verdict["verdict"] == FAIL and verdict["caption"] == "c1" and verdict["parsed"]["checks"]["count"] is False
    assert "c1" in storage.read_text(storage.join(folder, "attempt_01_prompt.txt"))
    assert storage.read_bytes(storage.join(folder, "attempt_02_panel.png"))[:8] == b"\x89PNG\r\n\x1a\n"
    summary = json.loads(storage.read_text(storage.join(folder, "summary.json")))
    assert summary["first_frame"]["iterations"] == 2 and summary["compliance"]["fraction"] == 1.0


def test_env_rows_fill_the_edit_config_fields():
    from core.config import build_config
    from generation.config import EditConfig

    base = {"RUN_ID": "ignored", "LANEPAINT_PROFILE": "full"}
    given = {"data_run_id": "seg1", "run_id": "r1"}
    cfg = build_config(EditConfig, given, environ=base)
    assert (cfg.judge, cfg.qwen_model, cfg.unload_qwen_after_use, cfg.qwen_vram_reserve_gib) == (True, "7B", False, 0.0)
    assert (cfg.caption_refine_iters, cfg.caption_refine_temperature, cfg.compliance_frames, cfg.metrics) == \
        (10, 0.1, 4, True)
    env = base | {"LLM_MODEL_SIZE": "72B", "VP_UNLOAD_QWEN_AFTER_USE": "1", "QWEN_VRAM_RESERVE_GIB": "24",
                  "VP_CAPTION_REFINE_ITERS": "3", "VP_CAPTION_REFINE_TEMPERATURE": "0", "VP_COMPLIANCE_FRAMES": "0",
                  "VP_JUDGE": "0", "VP_METRICS": "false", "VP_QWEN_DEVICE": "cpu"}
    cfg = build_config(EditConfig, given | {"caption_refine_iters": 5}, environ=env)
    assert (cfg.qwen_model, cfg.unload_qwen_after_use, cfg.qwen_vram_reserve_gib, cfg.qwen_device) == \
        ("72B", True, 24.0, "cpu")
    assert (cfg.caption_refine_iters, cfg.caption_refine_temperature, cfg.compliance_frames) == (5, 0.0, 0)
    assert cfg.judge is False and cfg.metrics is False

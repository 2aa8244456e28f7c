"""The judge loop and the metrics inside stage 2 (``run_edit``) with the tiny models: scripted verdicts
reaching FluxFill in order, per-item failures of the judge and the metrics, leftovers of a failed try,
resume without loading models, judge and metrics off, and Qwen freed before the video pass.

The scripted judge stands in for Qwen2.5-VL only (answers chosen by the test); FluxFill, the video
pipeline and the metrics are the real tiny models."""

import json
import os

import numpy as np
import pytest

from core.lanes import LaneSpec
from core.layout import Layout
from core.vp_data import write_vp_clip
from generation.config import EditConfig
from generation.quality.judge_parse import FAIL, PASS
from generation.quality.judge_prompts import ATTRIBUTE_KEYS
from generation.stage import run_edit
from synthetic.scenes import SceneSpec, render_scene

RUN = "seg_q"
VIDEO = "synth_q01"
YELLOW2, WHITE, YELLOW1 = "lane_double_yellow_solid", "lane_single_white_dashed", "lane_single_yellow_solid"
KEYS = {YELLOW2: "double solid yellow", WHITE: "single dashed white", YELLOW1: "single solid yellow"}


def answer(verdict, caption=None, failed=()):
    checks = {k: {"pass": k not in failed, "note": ""} for k in ATTRIBUTE_KEYS}
    out = {"verdict": verdict, "checks": checks}
    if caption is not None:
        out["revised_caption"] = caption
    return json.dumps(out)


class ScriptedVLM:
    """Stands in for Qwen2.5-VL: per instruction (``KEYS``), scripted answers or an exception."""

    def __init__(self, first=None, compliance=None, caption_error=None):
        self.first = {k: list(v) for k, v in (first or {}).items()}
        self.compliance = compliance or {}
        self.caption_error = caption_error or {}
        self.unloads = 0

    @staticmethod
    def _folder(text):
        return next(folder for folder, key in KEYS.items() if key in text)

    def caption(self, instruction, **kwargs):
        folder = self._folder(instruction)
        if folder in self.caption_error:
            raise self.caption_error[folder]
        return f"first caption {folder}"

    def ask(self, image, prompt, **kwargs):
        assert image.dtype == np.uint8 and image.shape[1] > 3 * 96      # the three-panel image
        return self.first[self._folder(prompt)].pop(0)

    def ask_many(self, images, prompts, **kwargs):
        return list(self.compliance[self._folder(prompts[0])])[:len(prompts)]

    def maybe_unload(self):
        self.unloads += 1
        return False


@pytest.fixture(scope="module")
def stage1(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("quality") / "out")
    spec = SceneSpec(width=96, height=64, fps=8.0, seconds=49 / 8, lanes=LaneSpec.parse("single white dashed"))
    frames, masks = render_scene(spec)
    write_vp_clip(Layout(root), RUN, VIDEO, frames, masks, fps=8.0)
    return root


@pytest.fixture
def flux_calls(monkeypatch):
    """Every (caption, seed) the real tiny FluxFill is called with."""
    from generation.first_frame import FluxFillInpainter

    calls = []
    original = FluxFillInpainter.__call__

    def spy(self, frame, mask, caption, seed):
        calls.append((caption, seed))
        return original(self, frame, mask, caption, seed)

    monkeypatch.setattr(FluxFillInpainter, "__call__", spy)
    return calls


def config(root, run_id, instructions, **changes):
    return EditConfig(data_run_id=RUN, run_id=run_id, output_root=root, profile="tiny", instructions=instructions,
                      **changes)


def sidecar(root, run_id, folder):
    return json.loads(open(Layout(root).vp_sidecar(run_id, folder, VIDEO)).read())


def test_scripted_verdicts_drive_fluxfill_and_failures_stay_per_item(stage1, flux_calls, monkeypatch):
    root, layout = stage1, Layout(stage1)
    import generation.quality.metrics

    score = generation.quality.metrics.QualityScorer.score

    def failing_score(self, original, edited, masks, instruction, caption=None):
        if KEYS[WHITE] in instruction:
            raise RuntimeError("CUDA out of memory")
        return score(self, original, edited, masks, instruction, caption=caption)

    monkeypatch.setattr(generation.quality.metrics.QualityScorer, "score", failing_score)
    vlm = ScriptedVLM(
        first={YELLOW2: [answer(FAIL, "caption two", failed=("colour",)), answer(FAIL, "caption three"),
                         answer(PASS, "caption three")],
               WHITE: [answer(FAIL, "white two", failed=("count",)), answer(FAIL, "white three", failed=("count",)),
                       answer(PASS, "white three")]},
        compliance={YELLOW2: [answer(PASS), answer(FAIL, failed=("pattern",)), answer(PASS), "not json"],
                    WHITE: [answer(PASS)] * 4},
        caption_error={YELLOW1: RuntimeError("Qwen exploded")})
    instructions = "lane double yellow solid||lane single white dashed||lane single yellow solid"
    result = run_edit(config(root, "q1", instructions, caption_refine_iters=3), vlm=vlm)

    assert result.ok == (f"{YELLOW2}/{VIDEO}",)
    failed = dict(result.failed)
    assert failed == {f"{WHITE}/{VIDEO}": f"{VIDEO}: metrics failed: RuntimeError: CUDA out of memory",
                      f"{YELLOW1}/{VIDEO}": f"{VIDEO}: first-frame judge loop failed: RuntimeError: Qwen exploded"}
    # the revised captions reached FluxFill in order, each attempt with the next seed
    assert flux_calls[:3] == [(f"first caption {YELLOW2}", 42), ("caption two", 43), ("caption three", 44)]
    assert flux_calls[3:] == [(f"first caption {WHITE}", 42), ("white two", 43), ("white three", 44)]
    assert vlm.unloads == 3                      # after each first-frame loop, the failed one too

    side = sidecar(root, "q1", YELLOW2)
    assert (side["iterations"], side["verdict"], side["caption_used"], side["video_prompt"]) == \
        (3, PASS, "caption three", "caption three")
    assert side["verdict_history"] == [FAIL, FAIL, PASS] and side["seeds"]["first_frame"] == 44
    assert [h["caption"] for h in side["judge"]["history"]] == [f"first caption {YELLOW2}", "caption two",
                                                               "caption three"]
    assert side["compliance_fraction"] == 0.5 and side["judge"]["compliance"]["verdicts"] == [PASS, FAIL, PASS, FAIL]
    refine = layout.vp_caption_refine_dir("q1", YELLOW2, VIDEO)
    assert sorted(n for n in os.listdir(refine) if n.endswith("_verdict.json")) == \
        ["attempt_01_verdict.json", "attempt_02_verdict.json", "attempt_03_verdict.json"]
    assert json.loads(open(os.path.join(refine, "summary.json")).read())["first_frame"]["final_verdict"] == PASS
    assert side["quality_label"] in ("EXCELLENT", "GOOD", "MODERATE")
    assert os.path.exists(layout.vp_eval_txt("q1", YELLOW2, VIDEO))
    report = open(os.path.join(layout.vp_instruction("q1", YELLOW2), "report.txt")).read()
    row = next(line for line in report.splitlines() if line.startswith(VIDEO))
    assert " PASS " in row and " 3 " in row and " 0.50 " in row and side["quality_label"] in row
    assert "first frame PASS 1/1" in report

    # the failed item left attempts but no sidecar: a rerun redoes it and drops the old attempt files
    white_refine = layout.vp_caption_refine_dir("q1", WHITE, VIDEO)
    assert len([n for n in os.listdir(white_refine) if n.endswith("_verdict.json")]) == 3
    assert not os.path.exists(layout.vp_sidecar("q1", WHITE, VIDEO))
    monkeypatch.setattr(generation.quality.metrics.QualityScorer, "score", score)
    again = run_edit(config(root, "q1", instructions, video_ids=(VIDEO,)),
                     vlm=ScriptedVLM(first={WHITE: [answer(PASS, "w")], YELLOW1: [answer(PASS, "y")]},
                                     compliance={WHITE: [answer(PASS)] * 4, YELLOW1: [answer(PASS)] * 4}))
    assert sorted(again.ok) == [f"{WHITE}/{VIDEO}", f"{YELLOW1}/{VIDEO}"] and again.skipped == (f"{YELLOW2}/{VIDEO}",)
    assert sorted(n for n in os.listdir(white_refine) if n.startswith("attempt_")) == \
        [f"attempt_01_{k}" for k in ("answer.txt", "panel.png", "prompt.txt", "verdict.json")]
    assert sidecar(root, "q1", WHITE)["compliance_fraction"] == 1.0

    # every item done: a rerun loads no model at all
    import generation.edit_models
    import generation.quality.checks
    import generation.quality.vlm

    def no_load(*args, **kwargs):
        raise AssertionError("a model was loaded although every item is done")

    for module, name in ((generation.quality.checks, "load_quality"), (generation.edit_models, "load_edit_models"),
                         (generation.quality.vlm, "QwenVLM"), (generation.quality.metrics, "QualityScorer")):
        monkeypatch.setattr(module, name, no_load)
    done = run_edit(config(root, "q1", instructions))
    assert len(done.skipped) == 3 and not done.ok and not done.failed


def test_judge_and_metrics_off(stage1, flux_calls, monkeypatch):
    import torch

    import generation.quality.metrics
    import generation.quality.vlm
    from generation.videopainter.pipeline import VideoPainterPipeline

    threads = []
    original = VideoPainterPipeline.__call__

    def spy(self, *args, **kwargs):
        threads.append(torch.get_num_threads())
        return original(self, *args, **kwargs)

    monkeypatch.setattr(VideoPainterPipeline, "__call__", spy)
    before = torch.get_num_threads()
    torch.set_num_threads(2)

    def no_load(*args, **kwargs):
        raise AssertionError("loaded although switched off")

    monkeypatch.setattr(generation.quality.vlm, "QwenVLM", no_load)
    monkeypatch.setattr(generation.quality.metrics, "QualityScorer", no_load)
    root, layout = stage1, Layout(stage1)
    try:
        result = run_edit(config(root, "off1", "lane double yellow solid", judge=False, metrics=False))
        assert threads == [1] and torch.get_num_threads() == 2   # tiny on the CPU: one thread, then restored
    finally:
        torch.set_num_threads(before)
    assert result.ok == (f"{YELLOW2}/{VIDEO}",)
    side = sidecar(root, "off1", YELLOW2)
    assert flux_calls == [(side["instruction"], 42)]                  # one attempt, the instruction as caption
    assert (side["caption_used"], side["iterations"], side["verdict"]) == (side["instruction"], 1, "not judged")
    assert side["verdict_history"] == [] and side["compliance_fraction"] is None and side["quality"] is None
    assert side["judge"] == {"enabled": False} and side["seeds"] == {"first_frame": 42, "video": 42}
    assert not os.path.exists(layout.vp_caption_refine_dir("off1", YELLOW2, VIDEO))
    assert not os.path.exists(layout.vp_eval_json("off1", YELLOW2, VIDEO))
    assert set(side["timings"]) >= {"first_frame", "video_generation", "upload"}
    report = open(os.path.join(layout.vp_instruction("off1", YELLOW2), "report.txt")).read()
    assert "not judged" in report and " n/a " in report


def test_unload_after_use_frees_qwen_before_each_video_pass(stage1, monkeypatch):
    """VP_UNLOAD_QWEN_AFTER_USE with the real tiny Qwen: absent during the video pass, reloaded when needed."""
    import generation.quality.vlm
    from generation.videopainter.pipeline import VideoPainterPipeline

    made = []

    class Recorded(generation.quality.vlm.QwenVLM):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            made.append(self)

    seen = []
    original = VideoPainterPipeline.__call__

    def spy(self, *args, **kwargs):
        seen.append(made[0].loaded)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(generation.quality.vlm, "QwenVLM", Recorded)
    monkeypatch.setattr(VideoPainterPipeline, "__call__", spy)
    root = stage1
    result = run_edit(config(root, "unl1", "lane double yellow solid||lane single white dashed",
                             unload_qwen_after_use=True, caption_refine_iters=2, compliance_frames=1, metrics=False))
    assert len(result.ok) == 2 and len(made) == 1
    assert seen == [False, False]
    # item 1: load for the caption, free, load for the compliance check; item 2 reuses it, frees, loads again
    assert made[0].load_count == 3
    manifest = json.loads(open(os.path.join(result.run_uri, "manifest.json")).read())
    assert "loaded on demand, freed before each video pass" in manifest["models"]["memory_plan"][0]
    side = sidecar(root, "unl1", WHITE)
    assert side["iterations"] == 2 and side["verdict"] == FAIL and side["judge"]["compliance"]["checked"] == 1


def test_cli_flags_reach_the_config(monkeypatch):
    import argparse

    from core.config_cli import config_from_args
    from generation import cli

    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    args = parser.parse_args(["--data-run-id", "s", "--run-id", "r", "--no-judge", "--llm-model-size", "72B",
                              "--caption-refine-iters", "3", "--caption-refine-temperature", "0",
                              "--compliance-frames", "0", "--unload-qwen-after-use", "--qwen-vram-reserve-gib", "12",
                              "--no-metrics", "--qwen-device", "cpu", "--clip-score-model", "org/clip"])
    cfg = config_from_args(EditConfig, args)
    assert (cfg.judge, cfg.metrics, cfg.qwen_model, cfg.qwen_device) == (False, False, "72B", "cpu")
    assert (cfg.caption_refine_iters, cfg.caption_refine_temperature, cfg.compliance_frames) == (3, 0.0, 0)
    assert (cfg.unload_qwen_after_use, cfg.qwen_vram_reserve_gib, cfg.clip_score_model) == (True, 12.0, "org/clip")
    monkeypatch.setenv("VP_JUDGE", "0")
    plain = config_from_args(EditConfig, parser.parse_args(["--data-run-id", "s"]))
    assert plain.judge is False and plain.metrics is True and plain.caption_refine_iters == 10
    assert config_from_args(EditConfig, parser.parse_args(["--data-run-id", "s", "--judge"])).judge is True


@pytest.mark.gpu
def test_stage_on_cuda_with_the_judge_and_metrics(stage1):
    """Tiny models on the GPU (bf16 where the device policy says so): FluxFill, the video pipeline, Qwen
    (freed before the video pass) and the metrics all on CUDA, through the same code path."""
    cfg = config(stage1, "gpu1", "lane double yellow solid", cog_device="cuda", flux_device="cuda",
                 qwen_device="cuda", unload_qwen_after_use=True, caption_refine_iters=2, compliance_frames=2)
    result = run_edit(cfg)
    assert result.ok == (f"{YELLOW2}/{VIDEO}",) and not result.failed
    side = sidecar(stage1, "gpu1", YELLOW2)
    assert side["devices"]["judge"].startswith("cuda") and side["devices"]["video"].startswith("cuda")
    assert side["iterations"] == 2 and side["judge"]["compliance"]["checked"] == 2
    assert side["quality"]["full"]["psnr"] is not None and "gpu_memory_peak_gb" in side["memory"]

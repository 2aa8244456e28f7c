"""Stage 2 end to end on tiny models: every output, per-item bad inputs, resume, run-level usage
errors, the CLI and the demo step. Stage-1 output is written with core.vp_data.write_vp_clip from
synthetic clips (ground-truth masks): exactly the hand-off format."""

import dataclasses
import json
import os

import numpy as np
import pytest

from core import videoio
from core.config import build_config
from core.errors import LanepaintError, UsageError
from core.lanes import LaneSpec
from core.layout import Layout
from core.moment import Moment
from core.vp_data import write_vp_clip
from generation.config import EditConfig
from generation.editor import load_clip_inputs
from generation.masking import dilate_masks
from generation.stage import run_edit
from orchestrator.cli import main
from orchestrator.demo import DemoState, _edit
from synthetic.scenes import SceneSpec, render_scene

RUN = "demo_run"
GOOD = "synth_good"
BAD = {
    "synth_nometa": "missing meta.csv",
    "synth_nomasks": "missing masks",
    "synth_mismatch": "meta.csv end_frame 49 is past the 45 mask frames",
    "synth_empty": "all-zero mask (nothing to edit)",
    "synth_short": "clip shorter than 49 frames (40 frames at 8 fps)",
}


@pytest.fixture(scope="module")
def scene():
    spec = SceneSpec(width=128, height=80, fps=8.0, seconds=49 / 8, lanes=LaneSpec.parse("single white dashed"))
    frames, masks = render_scene(spec)
    assert frames.shape == (49, 80, 128, 3)
    return frames, masks


MOMENT = Moment(t0_s=8.0, start_s=2.0, fps=8.0, frames=49)     # what stage 1 planned: t0 at the window's end


def write_stage1(root, frames, masks):
    layout = Layout(root)
    write_vp_clip(layout, RUN, GOOD, frames, masks, fps=8.0, moment=MOMENT)
    for vid in ("synth_nometa", "synth_nomasks", "synth_mismatch"):
        write_vp_clip(layout, RUN, vid, frames, masks, fps=8.0)
    os.remove(layout.vp_meta_csv(RUN, "synth_nometa"))
    os.remove(layout.vp_masks_npz(RUN, "synth_nomasks"))
    np.savez_compressed(layout.vp_masks_npz(RUN, "synth_mismatch"), arr_0=masks[:45].astype(np.uint8))
    write_vp_clip(layout, RUN, "synth_empty", frames, np.zeros_like(masks), fps=8.0)
    write_vp_clip(layout, RUN, "synth_short", frames[:40], masks[:40], fps=8.0)
    return layout


def test_demo_edit_step_writes_every_output_and_fails_bad_inputs_one_line_each(tmp_path, scene, monkeypatch):
    frames, masks = scene
    root = str(tmp_path / "out")
    layout = write_stage1(root, frames, masks)
    state = DemoState(output_root=root, run_id=RUN, seconds=6.125, size=(128, 80))
    outcome = _edit(state)
    result = state.results["edit"]
    assert outcome.startswith("2 edited, 0 already done, 10 failed")
    assert state.exit_code == 1 and result.exit_code == 1
    folders = ["lane_double_yellow_solid", "lane_single_white_dashed"]
    assert sorted(result.ok) == [f"{f}/{GOOD}" for f in folders]
    failures = dict(result.failed)
    for folder in folders:
        for vid, reason in BAD.items():
            assert reason in failures[f"{folder}/{vid}"] and "\n" not in failures[f"{folder}/{vid}"]

    dilated = dilate_masks(masks, 24)
    original = videoio.decode(layout.vp_raw_video(RUN, GOOD), fps=None)
    for folder in folders:
        edit = layout.vp_edit_video(RUN, folder, GOOD)
        info = videoio.probe(edit)
        assert (info.frame_count, info.width, info.height, info.fps) == (49, 128, 80, 8.0)
        edited = videoio.decode(edit, fps=None)
        outside = np.abs(edited.astype(int) - original.astype(int))[~dilated].mean()
        inside = np.abs(edited.astype(int) - original.astype(int))[dilated].mean()
        assert outside < 3.0 < 10.0 < inside            # original outside the mask (up to H.264), edit inside
        gen = videoio.probe(layout.vp_generated_video(RUN, folder, GOOD))
        assert (gen.frame_count, gen.width, gen.height) == (49, 96, 64)
        sidecar = json.loads(open(layout.vp_sidecar(RUN, folder, GOOD)).read())
        for key in ("flux_input", "flux_mask", "flux_output"):
            assert os.path.getsize(sidecar["outputs"][key]) > 0
        assert sidecar["instruction"].endswith("keep road texture, lighting, and shadows unchanged")
        # the judge (tiny random Qwen: every answer parses to FAIL) ran its 10 attempts; the latest of the
        # tied attempts is kept, and its caption (from the judge, not the instruction) drove both models
        assert (sidecar["iterations"], sidecar["verdict"]) == (10, "FAIL")
        assert sidecar["verdict_history"] == ["FAIL"] * 10 and sidecar["judge"]["chosen_attempt"] == 10
        assert sidecar["caption_used"] == sidecar["video_prompt"] == sidecar["judge"]["history"][-1]["caption"]
        assert sidecar["seeds"]["first_frame"] == 42 + 9 and sidecar["seeds"]["video"] == 42
        assert sidecar["compliance_fraction"] == 0.0
        assert sidecar["judge"]["compliance"]["frames"] == [0, 16, 32, 48]
        assert set(sidecar["timings"]) == {"first_frame", "video_generation", "upload", "compliance", "metrics"}
        assert sidecar["parameters"]["num_inference_steps"] == 2 and sidecar["parameters"]["caption_refine_iters"] == 10
        assert sidecar["parameters"]["dilate_size"] == 24 and sidecar["profile"] == "tiny"
        assert "ram_peak_mb" in sidecar["memory"] and sidecar["windows"] == [[0, 49]]
        assert sidecar["moment"] == MOMENT.as_dict()            # carried on to stage 3
        refine = layout.vp_caption_refine_dir(RUN, folder, GOOD)
        assert sidecar["outputs"]["caption_refine"] == refine
        names = set(os.listdir(refine))
        assert {f"attempt_{i:02d}_{k}" for i in range(1, 11) for k in ("panel.png", "prompt.txt", "answer.txt",
                                                                          "verdict.json")} <= names
        assert "summary.json" in names and len(os.listdir(os.path.join(refine, "compliance"))) == 4 * 4
        scores = json.loads(open(layout.vp_eval_json(RUN, folder, GOOD)).read())
        assert scores["label"]["label"] == sidecar["quality_label"] and scores["resolution"] == {"width": 128, "height": 80}
        assert scores["full"]["psnr"] > 0 and scores["masked"]["ssim"] is not None and scores["mask_dilate_px"] == 24
        assert scores["full"]["lpips"] >= 0 and scores["label"]["evaluated"] == ["psnr", "ssim", "lpips"]
        report = open(os.path.join(layout.vp_instruction(RUN, folder), "report.txt")).read()
        assert all(vid in report for vid in [GOOD, *BAD]) and "1/6 ok, 5 failed" in report
        row = next(line for line in report.splitlines() if line.startswith(GOOD))
        assert " FAIL " in row and " 0.00 " in row and sidecar["quality_label"] in row
    manifest = json.loads(open(os.path.join(layout.vp_run(RUN), "manifest.json")).read())
    assert manifest["counts"] == {"ok": 2, "failed": 10} and manifest["profile"] == "tiny"
    assert manifest["items"][f"{folders[0]}/{GOOD}"]["details"]["moment"] == MOMENT.as_dict()
    assert "profile_note" in manifest and manifest["models"]["memory_plan"]
    plan = manifest["models"]["memory_plan"]
    assert "qwen judge" in plan[0] and "metrics CLIP" in plan[1] and "video" in plan[2]
    assert manifest["models"]["judge"]["caption_refine_iters"] == 10 and manifest["models"]["metrics"]["clip_score"]

    # resume: the good items are done (sidecar written last), the models are not even loaded
    import generation.edit_models

    def no_models(cfg):
        raise AssertionError("models loaded although every item is done")

    monkeypatch.setattr(generation.edit_models, "load_edit_models", no_models)
    import generation.quality.checks

    monkeypatch.setattr(generation.quality.checks, "load_quality", no_models)
    again = run_edit(EditConfig(data_run_id=RUN, run_id=RUN, output_root=root, profile="tiny",
                                instructions="lane double yellow solid||lane single white dashed",
                                video_ids=(GOOD,)))
    assert sorted(again.skipped) == sorted(result.ok) and not again.ok and not again.failed
    broken = run_edit(EditConfig(data_run_id=RUN, run_id=RUN, output_root=root, profile="tiny",
                                 instructions="lane double yellow solid", video_ids=("synth_nometa", "synth_gone")))
    assert dict(broken.failed) == {"lane_double_yellow_solid/synth_nometa": failures[f"{folders[0]}/synth_nometa"],
                                   "lane_double_yellow_solid/synth_gone": f"synth_gone: not in segmentation run {RUN}"}
    report = json.loads(open(os.path.join(layout.vp_instruction(RUN, folders[0]), "report.json")).read())
    rows = {row["video_id"]: row for row in report["videos"]}   # every video of the run, from all invocations
    assert set(rows) == {GOOD, "synth_gone", *BAD}
    assert rows[GOOD]["status"] == "ok" and rows[GOOD]["timings"]["video_generation"] > 0
    assert rows["synth_gone"]["status"] == "failed" and rows["synth_short"]["status"] == "failed"


def test_an_edit_cut_before_the_planned_moment_fails_with_one_line(tmp_path, scene):
    root = str(tmp_path / "out")
    write_vp_clip(Layout(root), RUN, GOOD, *scene, fps=8.0, moment=MOMENT)
    cfg = EditConfig(data_run_id=RUN, run_id="e1", output_root=root, profile="tiny", max_frames=41, num_frames=41,
                     window_stride=33)
    with pytest.raises(LanepaintError, match=r"^synth_good: the edit would end at 7\.00 s, before the evaluated "
                                             r"moment t0 = 8\.00 s planned by stage 1 \(--max-frames 41 cuts it"):
        load_clip_inputs(Layout(root), cfg, GOOD, str(tmp_path / "cache"))
    whole = load_clip_inputs(Layout(root), dataclasses.replace(cfg, max_frames=0), GOOD, str(tmp_path / "cache"))
    assert whole.clip.moment == MOMENT and len(whole.frames) == 49


def test_no_segmentation_output_is_a_usage_error_before_anything_is_written(tmp_path):
    root = str(tmp_path / "empty")
    with pytest.raises(UsageError, match=f"no segmentation output for run seg9 under {root}"):
        run_edit(EditConfig(data_run_id="seg9", run_id="e1", output_root=root, profile="tiny"))
    assert not os.path.exists(root)


@pytest.mark.parametrize("kind, message", [("missing", "FluxFill LoRA not found: .*missing.safetensors"),
                                           ("empty folder", "has no pytorch_lora_weights.safetensors")])
def test_bad_lora_path_is_a_usage_error_before_anything_is_written(tmp_path, scene, kind, message):
    root = str(tmp_path / "out")
    write_vp_clip(Layout(root), RUN, GOOD, *scene, fps=8.0)
    lora = tmp_path / "missing.safetensors"
    if kind == "empty folder":
        lora = tmp_path / "lora_run"
        lora.mkdir()
    cfg = EditConfig(data_run_id=RUN, run_id="e1", output_root=root, profile="tiny",
                     img_inpainting_lora_path=str(lora), img_inpainting_lora_scale=1.0)
    with pytest.raises(UsageError, match=f"^--img-inpainting-lora-path: .*{message}"):
        run_edit(cfg)
    assert not os.path.exists(os.path.join(root, "vp"))


@pytest.mark.parametrize("changes, message", [
    ({"instructions": "lane double yellow solid||"}, "empty instruction"),
    ({"instructions": "lane double purple solid"}, "unknown word 'purple'"),
    ({"data_run_id": ""}, "--data-run-id is required"),
    ({"run_id": "../x"}, "invalid run id"),
    ({"strength": 0.0}, "--strength must be in (0, 1]"),
    ({"num_frames": 48}, "4k+1"),
    ({"video_ids": ("ok", "a/b")}, "invalid video id"),
    ({"caption_refine_iters": 0}, "--caption-refine-iters must be >= 1"),
    ({"caption_refine_temperature": -0.1}, "--caption-refine-temperature must be >= 0"),
    ({"compliance_frames": -1}, "--compliance-frames must be >= 0"),
    ({"qwen_vram_reserve_gib": -2.0}, "--qwen-vram-reserve-gib must be >= 0"),
    ({"profile": "full", "qwen_model": "13B"}, "--qwen-model: Qwen model '13B'"),
])
def test_bad_config_is_a_one_line_usage_error(changes, message):
    values = {"data_run_id": "seg", "run_id": "e1", "profile": "tiny"} | changes
    with pytest.raises(UsageError) as err:
        EditConfig(**values)
    assert message in str(err.value)


def test_environment_fills_the_config_and_flags_win():
    env = {"VP_DILATE_SIZE": "12", "LANEPAINT_EDIT_KEEP_MASKED_PIXELS": "false", "VP_SEED": "7",
           "VIDEO_EDITING_INSTRUCTIONS": "lane double white solid", "VP_VIDEO_IDS": "a_1,b_2",
           "LANEPAINT_PROFILE": "tiny", "DATA_RUN_ID": "ignored: a generic name the library does not read"}
    cfg = build_config(EditConfig, {"seed": "9", "run_id": "r1", "data_run_id": "seg1"}, environ=env)
    assert cfg.instructions == "lane double white solid"
    assert (cfg.dilate_size, cfg.keep_masked_pixels, cfg.seed, cfg.data_run_id) == (12, False, 9, "seg1")
    assert cfg.video_ids == ("a_1", "b_2") and cfg.profile == "tiny"
    assert (cfg.num_inference_steps, cfg.model_size, cfg.guidance_scale, cfg.mask_feather) == (2, (96, 64), 6.0, 8)
    full = EditConfig(data_run_id="seg1", run_id="r1")
    assert (full.num_inference_steps, full.model_size, full.flux_num_inference_steps) == (70, (720, 480), 50)
    assert (full.strength, full.seed, full.img_inpainting_lora_scale, full.flux_guidance_scale) == (1.0, 42, 0.0, 30.0)


def test_cli_without_segmentation_output_exits_2(tmp_path, capsys):
    code = main(["edit", "--data-run-id", "nothing", "--run-id", "e1", "--output-root", str(tmp_path),
                 "--profile", "tiny"])
    assert code == 2
    assert f"no segmentation output for run nothing under {tmp_path}" in capsys.readouterr().err


def test_full_profile_code_path_loads_local_checkpoint_folders(tmp_path, scene):
    """The full loader (from_pretrained of the CogVideoX I2V folder, the branch subfolder, FluxFill, the
    Qwen2.5-VL judge and the metrics' CLIP models), run offline on tiny checkpoints saved to disk; only
    the sizes are overridden. One torch thread, as the stage uses for tiny runs (the full profile on a
    CPU keeps torch's default; on a busy 2-core runner two threads spin against each other)."""
    from core.device import torch_threads

    with torch_threads(1):
        _full_profile_run(tmp_path, scene)


def _full_profile_run(tmp_path, scene):
    from tests.fixtures.tiny_checkpoints import save_tiny_checkpoints, save_tiny_quality_checkpoints

    paths = save_tiny_checkpoints(str(tmp_path / "ckpt")) | save_tiny_quality_checkpoints(str(tmp_path / "ckpt"))
    root = str(tmp_path / "out")
    write_vp_clip(Layout(root), RUN, GOOD, *scene, fps=8.0)
    cfg = EditConfig(data_run_id=RUN, run_id="full1", output_root=root, profile="full",
                     instructions="lane double white solid", **paths, model_width=96, model_height=64,
                     num_inference_steps=2, flux_num_inference_steps=2, flux_max_area=96 * 64,
                     flux_max_sequence_length=32, cog_device="cpu", flux_device="cpu", qwen_device="cpu",
                     caption_refine_iters=1, compliance_frames=1)   # full Qwen answers run to 512 tokens
    result = run_edit(cfg)
    assert result.ok == (f"lane_double_white_solid/{GOOD}",) and not result.failed
    manifest = json.loads(open(os.path.join(result.run_uri, "manifest.json")).read())
    video = manifest["models"]["video"]
    assert video["model"] == paths["cog_model"] and video["branch"].endswith("vp/checkpoints/branch")
    assert video["placement"] == "resident" and video["parameters"]["branch"] > 0
    assert manifest["profile"] == "full" and "profile_note" not in manifest
    judge, metrics = manifest["models"]["judge"], manifest["models"]["metrics"]
    assert judge["source"] == paths["qwen_model"] and judge["profile"] == "full" and judge["parameters"] > 0
    assert metrics["clip_score"]["source"] == paths["clip_score_model"]
    assert metrics["clip_temporal"]["source"] == paths["clip_temporal_model"]
    sidecar = json.loads(open(Layout(root).vp_sidecar("full1", "lane_double_white_solid", GOOD)).read())
    assert sidecar["iterations"] == 1 and sidecar["verdict_history"] == ["FAIL"]
    assert sidecar["judge"]["compliance"]["checked"] == 1 and sidecar["quality"]["eval_json"]


def _batch_run(root, run_id, batch, **changes):
    cfg = EditConfig(data_run_id=RUN, run_id=run_id, output_root=root, profile="tiny", judge=False, metrics=False,
                     instructions="lane single white dashed||lane double yellow solid||lane single yellow solid",
                     instruction_batch=batch, **changes)
    return run_edit(cfg), cfg


def _sidecars_and_frames(layout, cfg, result):
    out = {}
    for item_id in result.ok:
        folder, video_id = item_id.split("/")
        sidecar = json.loads(open(layout.vp_sidecar(cfg.run_id, folder, video_id)).read())
        out[folder] = (sidecar, videoio.decode(layout.vp_generated_video(cfg.run_id, folder, video_id), fps=None))
    return out


def test_instructions_as_one_batch_give_the_videos_made_one_by_one(tmp_path, scene, monkeypatch):
    import generation.stage as stage

    root = str(tmp_path / "out")
    layout = Layout(root)
    write_vp_clip(layout, RUN, GOOD, *scene, fps=8.0, moment=MOMENT)
    passes = []
    video_pass = stage.video_pass
    monkeypatch.setattr(stage, "video_pass", lambda cfg, inputs, firsts, models: passes.append(len(firsts))
                        or video_pass(cfg, inputs, firsts, models))
    alone_result, alone_cfg = _batch_run(root, "alone", 1)
    assert passes == [] and len(alone_result.ok) == 3     # batch 1: edit_item's own pass, not the batcher
    batched_result, batched_cfg = _batch_run(root, "batched", 3)
    assert passes == [3] and len(batched_result.ok) == 3
    alone = _sidecars_and_frames(layout, alone_cfg, alone_result)
    batched = _sidecars_and_frames(layout, batched_cfg, batched_result)
    assert alone.keys() == batched.keys() and len(alone) == 3
    for folder, (sidecar, frames) in batched.items():
        assert sidecar["video_batch"] == 3 and alone[folder][0]["video_batch"] == 1
        assert sidecar["parameters"]["instruction_batch"] == 3
        assert {"first_frame", "video_generation", "upload"} <= set(sidecar["timings"])
        assert np.abs(frames.astype(int) - alone[folder][1].astype(int)).max() <= 1


def test_a_batch_member_that_fails_fails_alone_and_out_of_memory_falls_back_to_one_by_one(tmp_path, scene,
                                                                                         monkeypatch):
    import torch

    import generation.stage as stage

    root = str(tmp_path / "out")
    write_vp_clip(Layout(root), RUN, GOOD, *scene, fps=8.0, moment=MOMENT)
    first_frame_item, video_pass = stage.first_frame_item, stage.video_pass
    passes = []

    def flaky_first_frame(cfg, layout, instruction, *args):
        if instruction.folder == "lane_double_yellow_solid":
            raise RuntimeError("FluxFill exploded (test)")      # not a LanepaintError: still this item's alone
        return first_frame_item(cfg, layout, instruction, *args)

    def small_gpu(cfg, inputs, firsts, models):
        passes.append(len(firsts))
        if len(firsts) > 1:
            raise torch.OutOfMemoryError("CUDA out of memory (test)")
        return video_pass(cfg, inputs, firsts, models)

    monkeypatch.setattr(stage, "first_frame_item", flaky_first_frame)
    monkeypatch.setattr(stage, "video_pass", small_gpu)
    result, cfg = _batch_run(root, "flaky", 3)
    assert passes == [2, 1, 1]                   # the batch of the two good ones, then each alone
    assert len(result.ok) == 2
    assert [(item, reason) for item, reason in result.failed] == [
        (f"lane_double_yellow_solid/{GOOD}", "RuntimeError: FluxFill exploded (test)")]


def test_a_batch_leaves_out_an_instruction_another_run_holds(tmp_path, scene, monkeypatch):
    import generation.stage as stage
    from core.claims import ClaimStore

    root = str(tmp_path / "out")
    layout = Layout(root)
    write_vp_clip(layout, RUN, GOOD, *scene, fps=8.0, moment=MOMENT)
    other_run = ClaimStore(layout.vp_run("held"))                # another invocation on the same run id
    held = other_run.acquire(f"lane_double_yellow_solid/{GOOD}")
    assert not isinstance(held, str)
    passes = []
    video_pass = stage.video_pass
    monkeypatch.setattr(stage, "video_pass", lambda cfg, inputs, firsts, models: passes.append(
        [f.instruction.folder for f in firsts]) or video_pass(cfg, inputs, firsts, models))
    try:
        result, _ = _batch_run(root, "held", 3)
        claims_left = os.listdir(os.path.join(layout.vp_run("held"), "_claims"))
    finally:
        held.release()
    assert passes == [["lane_single_white_dashed", "lane_single_yellow_solid"]]
    assert len(result.ok) == 2 and [item for item, _ in result.claimed] == [f"lane_double_yellow_solid/{GOOD}"]
    assert claims_left == [os.path.basename(held.uri)]          # ours were all released


def test_speed_levers_are_applied_by_the_stage_and_recorded(tmp_path, scene):
    root = str(tmp_path / "out")
    layout = Layout(root)
    write_vp_clip(layout, RUN, GOOD, *scene, fps=8.0, moment=MOMENT)
    cfg = EditConfig(data_run_id=RUN, run_id="fast", output_root=root, profile="tiny", judge=False, metrics=False,
                     instructions="lane single white dashed", num_inference_steps=4, flux_num_inference_steps=4,
                     step_cache_threshold=0.2, flux_step_cache_threshold=0.2, storage_dtype="float8")
    result = run_edit(cfg)
    assert len(result.ok) == 1, result.failed
    manifest = json.loads(open(result.manifest_uri).read())
    video, first = manifest["models"]["video"]["speed"], manifest["models"]["first_frame"]["speed"]
    assert video == {"step_cache": {"method": "first-block", "threshold": 0.2},
                     "storage": "float8_e4m3fn weights, float32 compute", "compile": "none"}
    assert first["step_cache"] == {"method": "first-block", "threshold": 0.2}
    sidecar = json.loads(open(layout.vp_sidecar("fast", "lane_single_white_dashed", GOOD)).read())
    assert sidecar["parameters"]["storage_dtype"] == "float8" and sidecar["parameters"]["step_cache_threshold"] == 0.2

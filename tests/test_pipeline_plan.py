"""Planning a pipeline run: stage order, option forwarding, usage errors before anything is written,
shards, entry-point signatures, and one-line failures through the local DAG. No models loaded."""

import dataclasses
import json
import logging
import os
import time

import pytest

from core.errors import UsageError
from orchestrator.cli import main
from orchestrator.plan import (
    PARAM_BY_NAME,
    PARAMS,
    STAGES,
    PipelineRequest,
    PipelineResult,
    StageReport,
    load,
    next_command,
    normalise_stages,
    plan,
    request_from,
)
from orchestrator.shards import shard_configs, split

# a valid, non-default value for every forwarded option
VALUES = {
    "sam2_max_frames": 33, "sam2_fps": 5.0, "sam2_model": "small", "sam2_checkpoint": "/ckpt/sam2.pt",
    "sam2_prompt": "box", "sam2_reprompt_every": 5, "sam2_window": 40,
    "instructions": "lane double white solid", "qwen_model": "72B", "judge": True, "caption_refine_iters": 3,
    "caption_refine_temperature": 0.3, "compliance_frames": 2, "unload_qwen_after_use": True,
    "qwen_vram_reserve_gib": 6.5, "vp_num_inference_steps": 9, "vp_guidance_scale": 4.5, "vp_strength": 0.8,
    "vp_seed": 7, "vp_dilate_size": 5, "vp_mask_feather": 3, "vp_keep_masked_pixels": False,
    "vp_img_inpainting_lora_path": "/lora.safetensors", "vp_img_inpainting_lora_scale": 0.7, "vp_max_frames": 57,
    "alpamayo_model": "constant-velocity", "alpamayo_model_path": "/models/ar1", "alpamayo_num_traj_samples": 3,
    "alpamayo_video_name": "clipa.camera_front_wide_120fov", "dataset_dir": "/data/hf", "dataset_revision": "a" * 40,
}


def _request(tmp_path, **changes) -> PipelineRequest:
    values = {"run_id": "r1", "stages": "123", "inputs": ("a/clip_0001.mp4",), "output_root": str(tmp_path / "out"),
              "profile": "tiny"} | changes
    return PipelineRequest(**values)


@pytest.mark.parametrize("text, stages", [("321", "123"), ("1,2", "12"), ("3", "3"), ("2 3", "23"), (12, "12")])
def test_stages_are_normalised(text, stages):
    assert normalise_stages(text) == stages


@pytest.mark.parametrize("text", ["13", "", "4", "124", "x"])
def test_non_contiguous_or_unknown_stages_are_usage_errors(text):
    with pytest.raises(UsageError, match="contiguous"):
        normalise_stages(text)


def test_every_option_reaches_its_stage_config(tmp_path, caplog):
    assert set(VALUES) == set(PARAM_BY_NAME), "give the new option a test value"
    with caplog.at_level(logging.WARNING, logger="orchestrator.plan"):
        the_plan = plan(_request(tmp_path), VALUES, environ={})
    for param in PARAMS:
        spec = STAGES[param.stage]
        config = the_plan.stage(spec.name).config
        if param.field in {f.name for f in dataclasses.fields(load(spec.config))}:
            assert config[param.field] == VALUES[param.name], param.name
        else:       # an option the installed stage does not declare yet is dropped, with a warning
            assert param.field not in config and f"{param.name}: this {spec.name} stage has no" in caplog.text
    edit = the_plan.stage("edit").config
    assert edit["data_run_id"] == "r1" and edit["run_id"] == "r1" and edit["profile"] == "tiny"
    assert the_plan.stage("evaluate").config["video_data"] == os.path.join(str(tmp_path / "out"), "vp", "r1")
    assert the_plan.stage("segment").config["inputs"] == ["a/clip_0001.mp4"]


def test_environment_fills_what_is_not_given_and_options_win(tmp_path):
    environ = {"SAM2_WINDOW": "80", "VP_STRENGTH": "0.5", "RUN_ID": "env_run", "DATA_RUN_ID": "seg0",
               "LANEPAINT_CONCURRENCY": "3", "OUTPUT_ROOT": str(tmp_path / "env_out")}
    request, options = request_from({"run_id": None, "stages": "12", "inputs": ["x/clip_0001.mp4"],
                                     "vp_strength": 0.9, "sam2_fps": None}, environ)
    assert (request.run_id, request.data_run_id, request.concurrency) == ("env_run", "seg0", 3)
    assert request.output_root == str(tmp_path / "env_out") and options == {"vp_strength": 0.9}
    the_plan = plan(request, options, environ)
    assert the_plan.stage("segment").config["window"] == 80
    assert the_plan.stage("edit").config["strength"] == 0.9


def _vp_data(root, run, videos):
    for vid in videos:
        os.makedirs(os.path.join(root, "preprocessed_data_vp", run, vid))


def _edited(root, run, folder, vid):
    path = os.path.join(root, "vp", run, folder, vid, f"{vid}_vp_edit_sample0.mp4")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    open(path, "wb").close()


@pytest.mark.parametrize("changes, options, message", [
    ({"stages": "23"}, {}, "stage 2 without stage 1 needs --data-run-id"),
    ({"stages": "2", "data_run_id": "nope"}, {}, "no segmentation output for run nope"),
    ({"stages": "3"}, {}, "not found (expected stage 2's vp/<run_id> folder"),
    ({"stages": "12", "inputs": ()}, {}, "stage 1 needs videos"),
    ({"output_root": "s3://bucket/x"}, {}, "bad output root"),
    ({}, {"sam2_model": "huge"}, "--model='huge': expected one of tiny, small"),
    ({}, {"vp_strength": 1.5}, "--strength must be in (0, 1]"),
    ({}, {"frobnicate": 1}, "unknown option(s): frobnicate"),
])
def test_bad_runs_are_usage_errors_before_anything_is_written(tmp_path, changes, options, message):
    with pytest.raises(UsageError) as info:
        plan(_request(tmp_path, **changes), options, environ={})
    assert message in str(info.value) and "\n" not in str(info.value)
    assert not (tmp_path / "out").exists()


def test_cli_usage_error_exits_2_with_one_line(tmp_path, capsys):
    root = tmp_path / "out"
    assert main(["run", "--stages", "2", "--run-id", "e1", "--data-run-id", "s9", "--output-root", str(root)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no segmentation output for run s9" in err[0]
    assert main(["run", "--stages", "13", "--run-id", "e1"]) == 2
    assert not root.exists()


def test_cli_dry_run_prints_the_plan_and_writes_nothing(tmp_path, capsys):
    root = tmp_path / "out"
    _vp_data(str(root), "s1", ["clip_0001"])
    code = main(["run", "--dry-run", "--stages", "23", "--run-id", "e1", "--data-run-id", "s1", "--output-root",
                 str(root), "--profile", "tiny", "--vp-strength", "0.5"])
    out = capsys.readouterr().out
    assert code == 0 and "run e1: stages 23, profile tiny" in out and "concurrency 1" in out
    assert "2 edit     FluxFill + VideoPainter editing: segmentation run s1 -> " in out
    assert f"edited clips under {root / 'vp' / 'e1'}" in out
    assert sorted(os.listdir(root)) == ["preprocessed_data_vp"]


def test_split_keeps_order_and_sizes():
    assert split(list("abcde"), 2) == [["a", "b", "c"], ["d", "e"]]
    assert split(list("abcde"), 1, videos_per_shard=2) == [["a", "b"], ["c", "d"], ["e"]]
    assert split(list("ab"), 8) == [["a"], ["b"]] and split([], 4) == []


def test_shards_of_each_stage(tmp_path):
    root = str(tmp_path / "out")
    req = _request(tmp_path, inputs=("a/x_0001.mp4", "c/y_0002.mp4", "b/x_0001.mp4",
                                     "chunks://lanepaint-nothing/p?fs=memory"))
    seg = plan(req, environ={}).stage("segment")
    shards = [json.loads(c) for c in shard_configs(seg, concurrency=3)]
    # same video id in one shard (the stage's duplicate check sees both); an unresolvable entry is kept
    assert [s["inputs"] for s in shards] == [["chunks://lanepaint-nothing/p?fs=memory", "a/x_0001.mp4",
                                              "b/x_0001.mp4"], ["c/y_0002.mp4"]]
    common = [{k: v for k, v in s.items() if k != "inputs"} for s in shards]
    assert common[0] == common[1] and common[0]["run_id"] == "r1" and common[0]["profile"] == "tiny"

    _vp_data(root, "s1", ["v1", "v2", "v3"])
    edit = plan(_request(tmp_path, stages="2", data_run_id="s1"), environ={}).stage("edit")
    assert [json.loads(c)["video_ids"] for c in shard_configs(edit, 2)] == [["v1", "v2"], ["v3"]]

    for folder in ("lane_a", "lane_b"):
        for vid in ("v1", "v2", "v3"):
            _edited(root, "r1", folder, vid)
    evaluate = plan(_request(tmp_path, stages="3"), environ={}).stage("evaluate")
    assert [json.loads(c)["video_name"] for c in shard_configs(evaluate, 2)] == ["v1,v2", "v3"]
    chosen = plan(_request(tmp_path, stages="3"), {"alpamayo_video_name": "v3,v1"}, environ={}).stage("evaluate")
    assert [json.loads(c)["video_name"] for c in shard_configs(chosen, 4)] == ["v1", "v3"]


def test_entry_points_forward_their_stages_options():
    import inspect

    import workflow_master as wm

    def params(task):
        return list(inspect.signature(task.func).parameters)

    stage_params = {s: {p.name for p in PARAMS if p.stage == s} for s in "123"}
    master = params(wm.master_pipeline)
    assert master[0] == "run_id" and set(master) >= set(PARAM_BY_NAME) | {"stages", "inputs", "data_run_id",
                                                                            "video_data", "concurrency"}
    expected = {"sam2_only": "1", "sam2_vp": "12", "vp_only": "2", "vp_alpamayo": "23", "alpamayo_only": "3"}
    for name, stages in expected.items():
        got = set(params(wm.ENTRY_POINTS[name])) & set(PARAM_BY_NAME)
        assert got == set().union(*(stage_params[s] for s in stages)), name
    assert "inputs" in params(wm.sam2_vp) and "data_run_id" not in params(wm.sam2_vp)
    assert "data_run_id" in params(wm.vp_alpamayo) and "video_data" not in params(wm.vp_alpamayo)
    assert "stages" not in params(wm.alpamayo_only) and "video_data" in params(wm.alpamayo_only)


def test_results_give_exit_codes_and_the_next_command(tmp_path):
    ok = StageReport("segment", "r1", run_uri="x", ok=["a"], shards=1)
    bad = StageReport("edit", "r1", ok=["a"], failed={"f/b": "b: missing meta.csv"}, shards=2)
    result = PipelineResult("r1", "12", "out", [ok, bad], "next")
    assert result.exit_code == 1 and PipelineResult("r1", "1", "out", [ok]).exit_code == 0
    lines = "\n".join(result.lines())
    assert "FAILED f/b: b: missing meta.csv" in lines and "in 2 shard(s)" in lines
    assert "--data-run-id r1" in next_command(_request(tmp_path, stages="1"))
    assert "--stages 3" in next_command(_request(tmp_path, stages="12"))
    assert next_command(_request(tmp_path)) == ""


def test_a_failure_inside_the_dag_is_one_line_and_not_retried(tmp_path, capsys, monkeypatch):
    """A usage error found inside a stage task (no tiny Alpamayo) fails at once, without retries."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    root = str(tmp_path / "out")
    _edited(root, "r1", "lane_a", "clip_0001.camera_front_wide_120fov")
    start = time.perf_counter()
    code = main(["run", "--stages", "3", "--run-id", "r1", "--output-root", root, "--profile", "tiny",
                 "--alpamayo-model", "alpamayo"])
    captured = capsys.readouterr()
    assert code == 1 and time.perf_counter() - start < 10          # a retry would wait 15 s first
    (line,) = [x for x in captured.err.splitlines() if x.startswith("lanepaint run:")]
    assert line.startswith("lanepaint run: failed: pipeline run failed:") and "no tiny profile" in line
    assert "Traceback" not in captured.err and "Traceback" not in captured.out

"""Planning a pipeline run: stage order, option forwarding, usage errors before anything is written,
shards, entry-point signatures, and one-line failures through the local DAG. No models loaded."""

import json
import os
import time

import pytest

from core.config import build_config, setting_of, settings_fields
from core.errors import UsageError
from core.runner import split_items
from orchestrator.cli import main
from orchestrator.plan import (
    OPTIONS,
    SHARED_FIELDS,
    STAGES,
    PipelineRequest,
    next_command,
    normalise_stages,
    plan,
    request_from,
)
from orchestrator.results import PipelineResult, StageReport
from orchestrator.shards import shard_configs

# valid, non-default values of options of every type (int, float, str, bool, choice, tuple, optional)
VALUES = {
    "segment_max_frames": 33, "segment_fps": 5.0, "segment_model": "small", "segment_checkpoint": "/ckpt/sam2.pt",
    "segment_prompt": "box", "segment_window": 40, "segment_offload_state_to_cpu": True,
    "edit_instructions": "lane double white solid", "edit_qwen_model": "72B", "edit_judge": False,
    "edit_strength": 0.8, "edit_seed": 7, "edit_keep_masked_pixels": False, "edit_video_ids": ["v1", "v2"],
    "edit_img_inpainting_lora_scale": 0.7, "edit_num_frames": 33, "edit_window_stride": 30, "edit_reserve_gb": 8.0,
    "evaluate_model": "constant-velocity", "evaluate_num_traj_samples": 3, "evaluate_dataset_revision": "a" * 40,
    "evaluate_cameras": ["camera_front_wide_120fov"], "evaluate_t0_offset": 1.5, "evaluate_render": False,
}


def test_every_stage_setting_is_an_option_of_the_run():
    """Every field a stage config declares is reachable from `lanepaint run` and the entry points, except
    what the request itself fills (run id, output root, profile, ...) and the stage's input."""
    for spec in STAGES:
        expected = {f"{spec.name}_{f.name}" for f in settings_fields(spec.config)
                    if f.name not in SHARED_FIELDS and f.name != spec.input_field}
        assert expected == {name for name, (s, _) in OPTIONS.items() if s is spec}, spec.name
        for f in settings_fields(spec.config):
            assert setting_of(f).help, f"{spec.name}.{f.name} has no help"


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


def test_options_reach_their_stage_config(tmp_path):
    the_plan = plan(_request(tmp_path), VALUES, environ={})
    for name, value in VALUES.items():
        spec, field = OPTIONS[name]
        assert the_plan.stage(spec.name).config[field] == value, name
    edit = the_plan.stage("edit").config
    assert edit["data_run_id"] == "r1" and edit["run_id"] == "r1" and edit["profile"] == "tiny"
    assert the_plan.stage("evaluate").config["video_data"] == os.path.join(str(tmp_path / "out"), "vp", "r1")
    assert the_plan.stage("segment").config["inputs"] == ["a/clip_0001.mp4"]
    # the resolved options rebuild the same configs with no environment at all
    for stage in the_plan.stages:
        rebuilt = build_config(stage.spec.config, stage.config, environ={})
        assert {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(rebuilt).items()} == stage.config
    assert the_plan.options()["edit_seed"] == 7 and the_plan.options()["segment_fps"] == 5.0


def test_a_run_that_goes_on_to_stage_3_plans_the_moment_in_stage_1(tmp_path):
    """Stage 3 in the run turns on stage 1's moment planning (10 fps, the 49-frame window ending at t0); a run
    without it keeps the whole-clip 8 fps default; a value the user gives wins over the implied one."""
    from core.config_file import load_config_file

    def segment(stages, options=None, file=None, environ=None):
        request = _request(tmp_path, stages=stages)
        return plan(request, options or {}, file, environ=environ or {}).stage("segment").config

    with_3 = segment("123")
    assert (with_3["plan_moment"], with_3["fps"], with_3["edit_window"]) == (True, 10.0, 49)
    without = segment("12")
    assert (without["plan_moment"], without["fps"]) == (False, 8.0)
    assert segment("123", {"segment_plan_moment": False})["plan_moment"] is False
    assert segment("123", environ={"LANEPAINT_SEGMENT_PLAN_MOMENT": "0"})["plan_moment"] is False
    config = tmp_path / "run.yaml"
    config.write_text("segment:\n  plan-moment: false\n  fps: 8\n")
    assert segment("123", file=load_config_file(str(config)))["plan_moment"] is False
    assert segment("123", {"segment_fps": 30.0})["fps"] == 30.0


def test_defaults_file_environment_and_options_in_order(tmp_path):
    from core.config_file import load_config_file

    config = tmp_path / "run.yaml"
    config.write_text(f"run:\n  output-root: {tmp_path / 'file_out'}\n  stages: '12'\n"
                      "segment:\n  window: 50\n  fps: 3\nedit:\n  strength: 0.4\n  seed: 3\n")
    file = load_config_file(str(config))
    environ = {"SAM2_WINDOW": "80", "VP_STRENGTH": "0.5", "RUN_ID": "env_run", "LANEPAINT_CONCURRENCY": "3"}
    request, options = request_from({"run_id": "r5", "inputs": ["x/clip_0001.mp4"], "edit_strength": 0.9,
                                     "segment_fps": None}, file, environ)
    assert (request.run_id, request.stages, request.concurrency) == ("r5", "12", 3)
    assert request.output_root == str(tmp_path / "file_out") and options == {"edit_strength": 0.9}
    the_plan = plan(request, options, file, environ)
    segment, edit = the_plan.stage("segment").config, the_plan.stage("edit").config
    assert (segment["window"], segment["fps"]) == (80, 3.0)      # environment over file; file over default
    assert (edit["strength"], edit["seed"]) == (0.9, 3)           # option over environment


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
    ({"stages": "12", "inputs": ()}, {}, "stage 1 needs --input (stage 1 videos"),
    ({"output_root": "s3://bucket/x"}, {}, "bad output root"),
    ({}, {"segment_model": "huge"}, "--model='huge': expected one of tiny, small"),
    ({}, {"edit_strength": 1.5}, "--strength must be in (0, 1]"),
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
                 str(root), "--profile", "tiny", "--edit-strength", "0.5"])
    out = capsys.readouterr().out
    assert code == 0 and "run e1: stages 23, profile tiny" in out and "concurrency auto" in out
    assert "2 edit     FluxFill + VideoPainter editing: segmentation run s1 -> " in out
    assert f"edited clips under {root / 'vp' / 'e1'}" in out
    assert sorted(os.listdir(root)) == ["preprocessed_data_vp"]


def test_split_keeps_order_and_sizes():
    assert split_items(list("abcde"), 2) == [["a", "b", "c"], ["d", "e"]]
    assert split_items(list("abcde"), 1, size=2) == [["a", "b"], ["c", "d"], ["e"]]
    assert split_items(list("ab"), 8) == [["a"], ["b"]] and split_items([], 4) == []
    assert split_items(list(range(7)), 3) == [[0, 1, 2], [3, 4, 5], [6]]


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
    chosen = plan(_request(tmp_path, stages="3"), {"evaluate_video_name": "v3,v1"}, environ={}).stage("evaluate")
    assert [json.loads(c)["video_name"] for c in shard_configs(chosen, 4)] == ["v1", "v3"]


def test_entry_points_forward_their_stages_options():
    import inspect

    import workflow_master as wm

    def params(task):
        return list(inspect.signature(task.func).parameters)

    stage_params = {spec.number: {n for n, (s, _) in OPTIONS.items() if s is spec} for spec in STAGES}
    master = params(wm.master_pipeline)
    assert master[0] == "run_id" and set(master) >= set(OPTIONS) | {"stages", "inputs", "data_run_id",
                                                                     "video_data", "concurrency"}
    expected = {"sam2_only": "1", "sam2_vp": "12", "vp_only": "2", "vp_alpamayo": "23", "alpamayo_only": "3"}
    for name, stages in expected.items():
        got = set(params(wm.ENTRY_POINTS[name])) & set(OPTIONS)
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
    assert "--stages 23 --run-id r1 --data-run-id r1" in next_command(_request(tmp_path, stages="1"))
    assert "--stages 3 --run-id r1 --video-data " in next_command(_request(tmp_path, stages="12"))
    assert next_command(_request(tmp_path)) == ""


def test_a_failure_inside_the_dag_is_one_line_and_not_retried(tmp_path, capsys, monkeypatch):
    """A usage error found inside a stage task (no driving dataset where it is asked for) fails at once,
    without retries."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    root = str(tmp_path / "out")
    _edited(root, "r1", "lane_a", "clip_0001.camera_front_wide_120fov")
    start = time.perf_counter()
    code = main(["run", "--stages", "3", "--run-id", "r1", "--output-root", root, "--profile", "tiny",
                 "--evaluate-dataset-dir", str(tmp_path / "no-dataset")])
    captured = capsys.readouterr()
    assert code == 1 and time.perf_counter() - start < 10          # a retry would wait 15 s first
    (line,) = [x for x in captured.err.splitlines() if x.startswith("lanepaint run:")]
    assert line.startswith("lanepaint run: failed: pipeline run failed:") and "no PhysicalAI-AV cache there" in line
    assert "Traceback" not in captured.err and "Traceback" not in captured.out

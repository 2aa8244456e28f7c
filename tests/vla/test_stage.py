"""Stage 3 end to end on a synthetic PhysicalAI-AV fixture (two clips, four cameras, known ego motion)."""

import dataclasses
import json
import os
import zipfile

import numpy as np
import pytest

from core import storage, videoio
from core.driving_dataset import REPO_FOLDER
from core.layout import Layout
from core.moment import Moment, plan_moment
from core.runner import StageResult
from orchestrator.cli import main
from synthetic.av_dataset import CAMERA_START_S, FRONT_CAMERA, AVDatasetSpec, write_av_dataset

pytest.importorskip("physical_ai_av")

from vla.config import EvaluateConfig  # noqa: E402
from vla.driving_data import DrivingData  # noqa: E402
from vla.dual_inference import clip_seed
from vla.stage import run_evaluate  # noqa: E402

FOLDER = "lane_double_yellow_solid"
CAMERAS = ("camera_cross_left_120fov", "camera_front_wide_120fov", "camera_cross_right_120fov",
           "camera_front_tele_30fov")


@pytest.fixture(scope="module")
def av(tmp_path_factory):
    """Two 14 s clips shaped like the real dataset's (each camera covers the whole clip), small and at 10 fps."""
    root = tmp_path_factory.mktemp("pai")
    spec = AVDatasetSpec(clips=2, cameras=CAMERAS, clip_seconds=14.0, fps=10.0, width=64, height=48)
    return write_av_dataset(spec, str(root / "hf_cache"), str(root / "inputs"))


def _video_id(clip) -> str:
    return f"{clip.clip_id}.{FRONT_CAMERA}"


def _moment(clip, fps: float = 10.0, frames: int = 49) -> Moment:
    """What stage 1 plans for the clip's front video."""
    return plan_moment(videoio.probe(clip.input_video).last_frame_s, fps, frames)


def _edited_clip(clip, moment: Moment) -> np.ndarray:
    """What stage 2 would write: stage 1's window of the input, repainted (here: a bright band)."""
    out = videoio.decode_times(clip.input_video, moment.frame_times()).copy()
    out[:, -12:, :, :] = (255, 255, 0)
    return out


def _write_vp(root: str, run_id: str, folder: str, video_id: str, frames: np.ndarray | None,
              raw: bytes | None = None, instruction: str = "lane double yellow solid",
              moment: Moment | None = None, fps: float = 8.0) -> str:
    uri = Layout(root).vp_edit_video(run_id, folder, video_id)
    with storage.atomic_path(uri) as tmp:
        if raw is not None:
            with open(tmp, "wb") as fh:
                fh.write(raw)
        else:
            videoio.encode(frames, tmp, fps=moment.fps if moment else fps)
    storage.write_text(uri[:-4] + ".json", json.dumps(
        {"instruction": instruction, "moment": moment.as_dict() if moment else None}))
    generated = uri[:-4] + "_generated.mp4"
    storage.write_bytes(generated, b"must be skipped")
    return uri


def _write_planned(root: str, run_id: str, folder: str, clip, **kwargs) -> Moment:
    moment = _moment(clip)
    _write_vp(root, run_id, folder, _video_id(clip), _edited_clip(clip, moment), moment=moment, **kwargs)
    return moment


def test_fixture_round_trip_through_physical_ai_av(av):
    data = DrivingData(av.cache_dir)          # revision from refs/main, offline
    assert data.revision == av.revision and os.environ.get("HF_HUB_OFFLINE") == "1"
    clip = av.clips[0]
    t0_after = 1_550_000                      # between two 10 fps frames
    sample = data.load(clip.clip_id, FRONT_CAMERA, t0_after, CAMERAS, np.array([300_000, 200_000, 100_000, 0]))
    t0 = CAMERA_START_S + 1.55
    assert sample.t0_us == round(t0 * 1e6)
    assert sample.camera_indices.tolist() == [0, 1, 2, 6]
    # side cameras are written at half size: every camera is brought to one size to stack
    assert sample.frames.shape == (4, 4, 48, 64, 3) and sample.frames.dtype == np.uint8
    # wanted 1.45, 1.55, 1.65, 1.75 s: the frame at or before each (cameras start at 0.2 s), not the nearest
    assert sample.frame_timestamps_us[1].tolist() == [1_400_000, 1_500_000, 1_600_000, 1_700_000]
    hist, hist_yaw = clip.ego.in_frame_at(t0, t0 + np.arange(-15, 1) * 0.1)
    fut, fut_yaw = clip.ego.in_frame_at(t0, t0 + np.arange(1, 65) * 0.1)
    assert np.allclose(sample.ego_history_xyz, hist, atol=1e-3)
    assert np.allclose(sample.ego_future_xyz, fut, atol=1e-3)
    assert np.allclose(np.arctan2(sample.ego_future_rot[:, 1, 0], sample.ego_future_rot[:, 0, 0]), fut_yaw, atol=1e-6)
    assert np.allclose(sample.ego_history_xyz[-1], 0.0, atol=1e-9) and fut[-1, 0] > 80
    # the front camera frames are the input clip's frames at those times (the input is the dataset's video)
    inp = videoio.decode(clip.input_video, fps=None)
    assert np.array_equal(sample.frames[1], inp[12:16])


def test_paired_inference_with_the_model_and_the_baseline(av, tmp_path):
    root = str(tmp_path / "out")
    moments = [_write_planned(root, "r1", FOLDER, clip) for clip in av.clips]
    cfg = EvaluateConfig(video_data=Layout(root).vp_run("r1"), run_id="r1", output_root=root, profile="tiny",
                         dataset_dir=av.cache_dir, bootstrap_samples=500)
    result = run_evaluate(cfg)
    assert result.exit_code == 0 and len(result.ok) == 2 and not result.failed
    layout = Layout(root)
    clip = av.clips[0]
    vid = _video_id(clip)
    record = json.loads(storage.read_text(layout.alpamayo_file("r1", FOLDER, vid, "_inference.json")))
    assert record["success"] and record["clip_id"] == clip.clip_id and record["camera"] == FRONT_CAMERA
    assert record["num_trajectories"] == 1 and record["model"] == "alpamayo"
    assert record["instruction"] == "lane double yellow solid"
    # the moment stage 1 planned: t0 = 7.5 s in the 13.9 s video (6.4 s of future), the 49-frame window ending there
    temporal = record["temporal_config"]
    assert temporal["moment"] == moments[0].as_dict() == {"t0_s": 7.5, "start_s": 2.7, "fps": 10.0, "frames": 49}
    assert temporal["moment_source"] == "stage 1 plan" and temporal["t0_seconds_after_clip_start"] == 7.5
    assert temporal["frame_spacing"] == "model" and temporal["frame_offsets_seconds"] == [0.3, 0.2, 0.1, 0.0]
    assert temporal["edited_frame_times_seconds"] == [7.2, 7.3, 7.4, 7.5]
    assert temporal["edited_frame_lateness_seconds"] == 0
    # every camera's dataset frames at t0 - 0.3 .. t0 (the cameras start 0.2 s into the ego motion)
    assert temporal["dataset_frame_timestamps_us"] == [[7_400_000, 7_500_000, 7_600_000, 7_700_000]] * 4
    # constant speed on a constant-curvature arc: the baseline is exact, and it ignores the edit
    base = record["baseline"]
    assert base["model"] == "constant-velocity" and base["min_ade_meters"] < 0.01
    assert base["min_ade_meters"] == base["original_min_ade_meters"] and base["plan_displacement"]["ade_meters"] == 0
    # the model (tiny Alpamayo-R1, random weights) sees the images: its plan moves when the camera changes
    moved = record["plan_displacement"]
    assert moved["ade_meters"] > 0 and len(moved["ade_per_sample"]) == 1 and moved["fde_meters"] >= 0
    assert record["seed"] == clip_seed(42, clip.clip_id, FRONT_CAMERA) and record["seed"] != record_seed(av, root)
    assert set(record["metrics"]) >= {"inference_time_seconds", "gpu_memory_used_gb", "gpu_memory_peak_gb",
                                      "ram_used_mb", "ram_peak_mb"}
    with np.load(layout.alpamayo_file("r1", FOLDER, vid, "_vis_data.npz"), allow_pickle=False) as npz:
        assert npz["pred_xyz"].shape == (1, 64, 3) and npz["pred_rot"].shape == (1, 64, 3, 3)
        assert npz["gt_future_xyz"].shape == (64, 3) and npz["gt_future_rot"].shape == (64, 3, 3)
        assert npz["ego_history_xyz"].shape == (16, 3) and npz["ego_history_rot"].shape == (16, 3, 3)
        assert npz["image_frames"].shape == (4, 4, 3, 48, 64) and npz["camera_indices"].tolist() == [0, 1, 2, 6]
        swapped = npz["image_frames"][1].transpose(0, 2, 3, 1)
        edited = _edited_clip(clip, moments[0])[-4:]
        assert np.abs(swapped.astype(int) - edited.astype(int)).mean() < 6          # edited camera swapped in
        assert (swapped[:, -6:, :, 2] < 80).all()                                   # ... with its yellow band
        assert np.abs(npz["original_frames"].astype(int) - npz["image_frames"][1].astype(int)).mean() > 20
    for suffix in ("_overlay.mp4", "_comparison.mp4"):
        assert videoio.probe(layout.alpamayo_file("r1", FOLDER, vid, suffix)).frame_count > 40
    summary = json.loads(storage.read_text(result.get("summary_uri")))
    assert summary["counts"]["succeeded"] == 2 and summary["instructions"][FOLDER]["plan_displacement"]["ade_meters"] > 0
    report = storage.read_text(result.get("report_uri"))
    assert "videos: 2   succeeded: 2" in report and f"{FOLDER}: n=2 mean " in report
    assert "plan moved (original vs edited plan, paired samples): ADE mean" in report
    assert "baseline constant-velocity: minADE 0.00" in report and "delta +0.000 m" in report
    assert storage.exists(summary["delta_plot"]) and storage.read_bytes(summary["delta_plot"])[:4] == b"\x89PNG"
    manifest = json.loads(storage.read_text(result.manifest_uri))
    assert manifest["models"]["trajectory_model"]["model"] == "alpamayo"
    assert manifest["models"]["baseline"]["model"] == "constant-velocity"
    assert manifest["models"]["dataset"]["revision"] == av.revision
    assert manifest["items"][f"{FOLDER}/{vid}"]["details"]["moment"] == moments[0].as_dict()


def record_seed(av, root):
    """The other clip's seed (seeds differ per clip)."""
    record = json.loads(storage.read_text(Layout(root).alpamayo_file("r1", FOLDER, _video_id(av.clips[1]),
                                                                     "_inference.json")))
    return record["seed"]


def _legacy_clip(clip, frames: int) -> np.ndarray:
    """A clip edited without a planned moment (t0 at its last frame): the input's first frames at 8 fps."""
    return videoio.decode(clip.input_video, fps=8)[:frames]


def test_each_bad_input_fails_alone_with_one_line(av, tmp_path):
    root = str(tmp_path / "out")
    good, other = av.clips
    moment = _write_planned(root, "r2", FOLDER, good)
    _write_vp(root, "r2", FOLDER, "nodot", _legacy_clip(good, 16))
    _write_vp(root, "r2", FOLDER, f"{good.clip_id}.camera_bogus_99fov", _legacy_clip(good, 16))
    _write_vp(root, "r2", FOLDER, f"00000000-0000-0000-0000-000000000000.{FRONT_CAMERA}", _legacy_clip(good, 16))
    _write_vp(root, "r2", "short_history", _video_id(good), _legacy_clip(good, 8))
    _write_vp(root, "r2", "long_clip", _video_id(other), np.concatenate([_legacy_clip(other, 49)] * 5))
    _write_vp(root, "r2", "three_frames", _video_id(good), _legacy_clip(good, 3))
    _write_vp(root, "r2", "corrupt", _video_id(other), None, raw=b"this is not a video")
    _write_vp(root, "r2", "bad_moment", _video_id(good), _edited_clip(good, moment),
              moment=dataclasses.replace(moment, t0_s=moment.end_s + 1))
    _write_vp(root, "r2", "wrong_rate", _video_id(good), _edited_clip(good, moment), moment=moment)
    # re-encode the last one at 8 fps: its moment says 10
    with storage.atomic_path(Layout(root).vp_edit_video("r2", "wrong_rate", _video_id(good))) as tmp:
        videoio.encode(_edited_clip(good, moment), tmp, fps=8)
    result = run_evaluate(EvaluateConfig(video_data=Layout(root).vp_run("r2"), run_id="r2", output_root=root,
                                         profile="tiny", dataset_dir=av.cache_dir, render=False))
    assert result.exit_code == 1 and result.ok == (f"{FOLDER}/{_video_id(good)}",)
    reasons = dict(result.failed)
    assert len(reasons) == 9 and all("\n" not in r for r in reasons.values())
    assert "does not parse as <clip_id>.<camera_name>" in reasons[f"{FOLDER}/nodot"]
    assert "unknown camera 'camera_bogus_99fov'" in reasons[f"{FOLDER}/{good.clip_id}.camera_bogus_99fov"]
    assert "is not in the dataset" in reasons[f"{FOLDER}/00000000-0000-0000-0000-000000000000.{FRONT_CAMERA}"]
    assert "of ego history, needs 1.6 s" in reasons[f"short_history/{_video_id(good)}"]
    assert "of ego future, needs 6.4 s" in reasons[f"long_clip/{_video_id(other)}"]
    assert "after the first frame the model needs" in reasons[f"three_frames/{_video_id(good)}"]
    assert "corrupt" in reasons[f"corrupt/{_video_id(other)}"] or "not a readable video" in reasons[f"corrupt/{_video_id(other)}"]
    assert "sidecar: bad evaluated moment" in reasons[f"bad_moment/{_video_id(good)}"]
    assert "runs at 8 fps, its planned moment at 10 fps" in reasons[f"wrong_rate/{_video_id(good)}"]
    report = storage.read_text(Layout(root).alpamayo_report("r2"))
    assert "videos: 10   succeeded: 1" in report and "failed: 9" in report
    assert report.count("FAILED") == 9
    # the unparseable name left nothing behind; a parsed one records its failure (never "done")
    assert not storage.exists(Layout(root).alpamayo_item("r2", FOLDER, "nodot"))
    failure = json.loads(storage.read_text(Layout(root).alpamayo_file("r2", "three_frames", _video_id(good),
                                                                      "_inference.json")))
    assert failure["success"] is False and "the model needs" in failure["error"]


def test_frame_spacing_edit_and_a_clip_edited_without_a_moment(av, tmp_path):
    """The seed's behaviour stays an option: frames at the edit's step; a clip without a moment puts t0 at its
    last frame; an 8 fps edit holds the model's times only up to 75 ms early (recorded)."""
    root = str(tmp_path / "out")
    clip = av.clips[0]
    _write_vp(root, "r6", "legacy", _video_id(clip), _legacy_clip(clip, 20))
    eight = _moment(clip, fps=8.0)
    _write_vp(root, "r6", "eight_fps", _video_id(clip), _edited_clip(clip, eight), moment=eight)
    base = dict(video_data=Layout(root).vp_run("r6"), output_root=root, profile="tiny", dataset_dir=av.cache_dir,
                render=False, baseline=False)
    by_model = run_evaluate(EvaluateConfig(run_id="m6", **base))
    by_edit = run_evaluate(EvaluateConfig(run_id="e6", frame_spacing="edit", **base))
    assert by_model.exit_code == 0 and by_edit.exit_code == 0

    def temporal(run_id, folder):
        uri = Layout(root).alpamayo_file(run_id, folder, _video_id(clip), "_inference.json")
        return json.loads(storage.read_text(uri))["temporal_config"]

    legacy = temporal("e6", "legacy")
    assert legacy["moment_source"] == "last edited frame (no planned moment)"
    assert legacy["t0_seconds_after_clip_start"] == 19 / 8 and legacy["frame_offsets_seconds"] == [0.375, 0.25, 0.125, 0]
    assert legacy["dataset_frame_timestamps_us"][1] == [2_200_000, 2_300_000, 2_400_000, 2_500_000]
    model = temporal("m6", "eight_fps")
    assert model["moment"]["t0_s"] == 7.5 and model["frame_offsets_seconds"] == [0.3, 0.2, 0.1, 0.0]
    assert model["edited_frame_times_seconds"] == [7.125, 7.25, 7.375, 7.5]      # at or before 7.2, 7.3, 7.4, 7.5
    assert model["edited_frame_lateness_seconds"] == pytest.approx(0.075)
    assert model["dataset_frame_timestamps_us"][1] == [7_400_000, 7_500_000, 7_600_000, 7_700_000]
    assert temporal("e6", "eight_fps")["edited_frame_lateness_seconds"] == 0


def test_resume_skips_complete_videos_and_redoes_incomplete_ones(av, tmp_path):
    root = f"memory://vla-resume-{os.getpid()}/out"     # remote storage: inputs fetched, outputs uploaded
    for clip in av.clips:
        _write_planned(root, "r3", FOLDER, clip)
    cfg = EvaluateConfig(video_data=Layout(root).vp_run("r3"), run_id="r3", output_root=root, profile="tiny",
                         dataset_dir=av.cache_dir, render=False, cache_dir=str(tmp_path / "cache"))
    first = run_evaluate(cfg)
    assert len(first.ok) == 2
    layout = Layout(root)
    npz = layout.alpamayo_file("r3", FOLDER, _video_id(av.clips[1]), "_vis_data.npz")
    storage.rm(npz)
    second = run_evaluate(cfg)
    assert second.skipped == (f"{FOLDER}/{_video_id(av.clips[0])}",)
    assert second.ok == (f"{FOLDER}/{_video_id(av.clips[1])}",) and storage.exists(npz)
    summary = json.loads(storage.read_text(layout.alpamayo_summary("r3")))
    assert summary["counts"]["skipped_already_done"] == 1 and summary["counts"]["succeeded"] == 2
    # a rerun on one clip still reports the whole run
    from dataclasses import replace

    third = run_evaluate(replace(cfg, video_name=av.clips[0].clip_id))
    assert third.skipped == second.skipped and not third.ok
    summary = json.loads(storage.read_text(layout.alpamayo_summary("r3")))
    assert summary["counts"]["succeeded"] == 2 and summary["counts"]["from_earlier_invocations"] == 1


def test_cli_evaluate_and_usage_errors(av, tmp_path, capsys):
    root = str(tmp_path / "out")
    clip = av.clips[1]
    _write_planned(root, "r4", FOLDER, clip)
    folder = Layout(root).vp_instruction("r4", FOLDER)           # one instruction folder works too
    args = ["evaluate", "--video-data", folder, "--run-id", "e4", "--output-root", root, "--profile", "tiny",
            "--dataset-dir", av.cache_dir, "--no-render", "--video-name", clip.clip_id]
    assert main(args) == 0
    assert "report:" in capsys.readouterr().out
    assert storage.exists(Layout(root).alpamayo_file("e4", FOLDER, _video_id(clip), "_inference.json"))
    assert main(args[:2] + [str(tmp_path / "missing")] + args[3:]) == 2
    assert main(args[:-1] + ["no-such-video"]) == 2
    assert main(["evaluate", "--video-data", folder, "--run-id", "e5", "--output-root", root, "--profile", "tiny",
                 "--dataset-dir", str(tmp_path / "no-dataset")]) == 2
    err = capsys.readouterr().err
    assert "not found" in err and "matches none" in err and "no PhysicalAI-AV cache" in err
    assert not storage.exists(Layout(root).alpamayo_run("e5"))    # usage errors write nothing


def test_demo_chain_ends_with_videos_and_a_report(tmp_path, monkeypatch):
    from orchestrator import demo

    state = demo.DemoState(output_root=str(tmp_path / "demo"), run_id="d1", seconds=14.0, size=(64, 36))
    assert demo._evaluate(state) == "skipped: no stage-2 output"
    demo._synthesise(state)
    (video,) = state.inputs
    video_id = os.path.basename(video)[:-4]
    assert video_id.endswith(f".{FRONT_CAMERA}")
    info = videoio.probe(video)           # the dataset's own front video: the whole clip at 30 fps
    assert (info.fps, info.frame_count, info.width, info.height) == (30.0, 420, 64, 36)
    moment = plan_moment(info.last_frame_s, 10.0)     # what stage 1 plans when stage 3 follows
    frames = videoio.decode_times(video, moment.frame_times())
    layout = Layout(state.output_root)
    _write_vp(state.output_root, "d1", "lane_double_yellow_solid", video_id, frames, moment=moment)
    state.results["edit"] = StageResult("edit", "d1", state.output_root, layout.vp_run("d1"), "")
    outcome = demo._evaluate(state)
    assert "1 clip(s) evaluated, 0 failed" in outcome and state.exit_code == 0
    for suffix in ("_overlay.mp4", "_comparison.mp4", "_inference.json"):
        assert storage.exists(layout.alpamayo_file("d1", "lane_double_yellow_solid", video_id, suffix))
    assert storage.exists(layout.alpamayo_report("d1"))


def test_synth_cli_writes_an_av_dataset_shaped_like_the_real_one(tmp_path, capsys):
    from synthetic.cli import SynthConfig

    defaults = SynthConfig(out="x", av_dataset="y")
    assert (defaults.seconds, defaults.fps, defaults.width, defaults.height) == (20.0, 30.0, 320, 180)
    assert (SynthConfig(out="x").seconds, SynthConfig(out="x").fps) == (3.0, 10.0)     # plain clips keep theirs
    out, ds = tmp_path / "inputs", tmp_path / "hf"
    code = main(["synth", "--out", str(out), "--av-dataset", str(ds), "--clips", "1", "--seconds", "2",
                 "--width", "64", "--height", "36", "--cameras", f"{FRONT_CAMERA},camera_rear_tele_30fov"])
    assert code == 0
    (video,) = list(out.glob(f"*.{FRONT_CAMERA}.mp4"))
    assert videoio.probe(str(video)).frame_count == 60          # 2 s at the dataset's 30 fps
    data = DrivingData(str(ds))
    assert data.describe()["clips"] == 1 and "dataset:" in capsys.readouterr().out
    # the input is the dataset's own front-camera video, byte for byte
    (chunk,) = (ds / REPO_FOLDER / "snapshots" / data.revision / "camera" / FRONT_CAMERA).glob("*.zip")
    with zipfile.ZipFile(chunk) as zf:
        assert zf.read(video.name) == video.read_bytes()
    assert main(["synth", "--out", str(out), "--av-dataset", str(ds), "--cameras", "camera_rear_tele_30fov"]) == 2

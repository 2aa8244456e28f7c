"""The bad-input battery: what a new user (or a broken disk) hands every command, and what must come back.

Each case asserts the exit code, a one-line message naming the item (or the flag) and the reason, that the
good items of the same run finished, and that nothing half-written is visible. Per-item cases share one run
per stage (one good item among them), usage cases run the command in-process and must write nothing.
``docs/reliability.md`` counts them with the stage-3 cases of ``tests/vla/test_stage.py``.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from core import storage, videoio
from core.layout import Layout
from core.vp_data import write_vp_clip
from orchestrator.cli import main
from synthetic.scenes import LaneSpec, SceneSpec, render_scene, write_clip

pytest.importorskip("torch")

TMP_MARK = "lanepaint-tmp-"


def _no_half_files(root) -> None:
    """Nothing half-written is visible: no temp file under the output root."""
    if os.path.exists(root):
        leftovers = [os.path.join(d, f) for d, _, files in os.walk(root) for f in files if TMP_MARK in f]
        assert not leftovers, leftovers


def _failed_lines(out: str) -> dict[str, str]:
    """``FAILED <item>: <reason>`` lines of a stage summary -> {item: reason}."""
    found = {}
    for line in out.splitlines():
        line = line.strip()
        if line.startswith("FAILED "):
            item, _, reason = line[len("FAILED "):].partition(": ")
            found[item] = reason
    return found


# ---- stage 1: bad videos and inputs, one run, one good clip among them ---------------------------------
def _write(path, data: bytes) -> str:
    with open(path, "wb") as fh:
        fh.write(data)
    return str(path)


@pytest.fixture(scope="module")
def segment_run(tmp_path_factory, gcs_emulator):
    from tests.conftest import BUCKET
    from tests.core.test_videoio import _jumping_clip

    folder = tmp_path_factory.mktemp("bad_videos")
    good = write_clip(SceneSpec(width=96, height=64, fps=10, seconds=1.2, seed=4), str(folder),
                      name="good_clip_0001").video_path
    real = open(good, "rb").read()
    slow = str(folder / "slow_clip_0001.mp4")
    videoio.encode(np.zeros((3, 48, 64, 3), np.uint8), slow, fps=0.5, crf=0, preset="ultrafast")
    audio = folder / "audio_clip_0001.mp4"
    from tests.segmentation.test_stage import _audio_only

    _audio_only(audio)
    os.makedirs(folder / "folder_clip_0001.mp4")
    os.makedirs(folder / "dup")
    inputs = {
        "missing_clip_0001": str(folder / "missing_clip_0001.mp4"),
        "empty_clip_0001": _write(folder / "empty_clip_0001.mp4", b""),
        "text_clip_0001": _write(folder / "text_clip_0001.mp4", b"this is a text file, not a video\n" * 20),
        "random_clip_0001": _write(folder / "random_clip_0001.mp4", os.urandom(4096)),
        "truncated_clip_0001": _write(folder / "truncated_clip_0001.mp4", real[: len(real) // 3]),
        "header_clip_0001": _write(folder / "header_clip_0001.mp4", real[:64]),
        "jump_clip_0001": _jumping_clip(str(folder / "jump_clip_0001.mkv"), 1e9),
        "slow_clip_0001": slow,
        "audio_clip_0001": str(audio),
        "folder_clip_0001": str(folder / "folder_clip_0001.mp4"),
        "abc": _write(folder / "abc.mp4", real),                          # too short for VideoPainter's layout
        "bad name": _write(folder / "bad name.mp4", real),                # whitespace in the id
        "good_clip_0001 (dup)": _write(folder / "dup" / "good_clip_0001.mp4", real),   # same id twice
        "gs_missing_0001": f"gs://{BUCKET}/nowhere/gs_missing_0001.mp4",
        "gs_nobucket_0001": "gs://no-such-bucket-lanepaint/x/gs_nobucket_0001.mp4",
        "chunks_empty": f"chunks://{BUCKET}/nothing-here?start=0&end=2",
        "chunks_bad": "chunks://bucket-only",
        "memory_missing_0001": "memory://nowhere/memory_missing_0001.mp4",
    }
    root = str(tmp_path_factory.mktemp("seg_out") / "out")
    return good, inputs, root


def test_stage_1_fails_each_bad_video_alone_and_segments_the_good_one(segment_run, capsys):
    good, inputs, root = segment_run
    code = main(["segment", "--profile", "tiny", "--run-id", "bad1", "--output-root", root, "--max-frames", "12",
                 "--input", good, *inputs.values()])
    out = capsys.readouterr().out
    assert code == 1
    failed = _failed_lines(out)
    assert "good_clip_0001" not in failed and "1 ok" in out           # the good clip finished
    expected = {      # a fragment of each input's name -> a fragment of its one-line reason
        "missing_clip_0001": "not found",
        "empty_clip_0001": "empty file (0 bytes)",
        "text_clip_0001": "not a readable video",
        "random_clip_0001": "not a readable video",
        "truncated_clip_0001": "not a readable video",
        "header_clip_0001": "not a readable video",
        "jump_clip_0001": "s after the one before it (corrupt timestamps",
        "slow_clip_0001": "is below 1 fps",
        "audio_clip_0001": "no video stream",
        "folder_clip_0001": "is a folder, not a video file",
        "abc": "VideoPainter's layout needs at least 4 characters",
        "bad name": "must not contain whitespace",
        "dup/good_clip_0001": "duplicate video id 'good_clip_0001'",
        "gs_missing_0001": "not found",
        "gs_nobucket_0001": "not found",
        "nothing-here": "no .mp4 videos found in its chunk folders",
        "bucket-only": "no .mp4 videos found",
        "memory_missing_0001": "not found",
    }
    for fragment, reason in expected.items():
        hits = [(item, why) for item, why in failed.items() if fragment in item or fragment in why]
        assert hits, f"{fragment}: no FAILED line in\n{out}"
        item, why = hits[0]
        assert reason in why, (fragment, why)
        assert "\n" not in why and "Traceback" not in why
    assert len(failed) >= len(expected)
    layout = Layout(root)
    assert storage.exists(layout.vp_meta_csv("bad1", "good_clip_0001"))
    manifest = json.loads(storage.read_text(storage.join(layout.sam2_run("bad1"), "manifest.json")))
    assert manifest["counts"]["ok"] == 1 and manifest["counts"]["failed"] >= len(expected)
    _no_half_files(root)


# ---- usage errors: exit 2, one line, nothing written ----------------------------------------------------
def _usage_cases(tmp):
    clip = os.path.join(tmp, "in", "clip_0001.mp4")
    a_file = os.path.join(tmp, "a_file.txt")
    bad_yaml = os.path.join(tmp, "bad.yaml")
    unknown_key = os.path.join(tmp, "unknown.yaml")
    not_utf8 = os.path.join(tmp, "latin1.yaml")
    out = os.path.join(tmp, "out")
    seg = ["segment", "--profile", "tiny", "--input", clip, "--run-id", "u1", "--output-root", out]
    edit = ["edit", "--profile", "tiny", "--data-run-id", "seg1", "--run-id", "e1", "--output-root", out]
    ev = ["evaluate", "--profile", "tiny", "--video-data", os.path.join(tmp, "vp"), "--run-id", "v1",
          "--output-root", out]
    return [
        # stage 1 flags and values
        (seg + ["--fps", "0"], {}, "--fps 0: must be in (0, 120]"),
        (seg + ["--fps", "1e9"], {}, "--fps 1e+09: must be in (0, 120]"),
        (seg + ["--fps", "inf"], {}, "--fps inf: must be in (0, 120]"),
        (seg + ["--fps", "nan"], {}, "--fps nan: must be in (0, 120]"),
        (seg + ["--fps", "fast"], {}, "expected float"),
        (seg + ["--max-frames", "0"], {}, "--max-frames must be >= 1"),
        (seg + ["--window", "1"], {}, "--window must be 0 (no limit) or >= 2 frames"),
        (seg + ["--edit-window", "-1"], {}, "--edit-window must be >= 0"),
        (seg + ["--tiny-seed", "-1"], {}, "a seed must be an integer in 0 .. 4294967295"),
        (seg + ["--tiny-seed", str(2**40)], {}, "a seed must be an integer in 0 .. 4294967295"),
        (seg + ["--prompt", "clicks"], {}, "argument --prompt: invalid choice: 'clicks'"),
        (seg + ["--device", "tpu"], {}, "tpu"),
        (seg + ["--item-timeout", "-5"], {}, "--item-timeout -5.0: must be a finite number >= 0"),
        (seg + ["--item-timeout", "nan"], {}, "must be a finite number >= 0"),
        (seg + ["--checkpoint", os.path.join(tmp, "nope.pt")], {}, "nope.pt: not found"),
        (seg + ["--model-config", "configs/x.yaml"], {}, "--model-config needs --checkpoint"),
        (["segment", "--profile", "tiny", "--run-id", "u1", "--output-root", out], {}, "no inputs"),
        (seg[:-4] + ["--run-id", "", "--output-root", out], {}, "must not be empty"),
        (seg[:-4] + ["--run-id", "../up", "--output-root", out], {}, "invalid run id '../up'"),
        (seg[:-2] + ["--output-root", a_file], {}, "it is a file, not a folder"),
        (seg[:-2] + ["--output-root", "gs://no-such-bucket-lanepaint/out"], {}, "cannot write there"),
        (seg[:-2] + ["--output-root", "ftp://host/out"], {}, "bad output root"),
        (seg, {"LANEPAINT_SEGMENT_FPS": "abc"}, "LANEPAINT_SEGMENT_FPS='abc': expected float"),
        (seg, {"SAM2_CHUNK_START": "1"}, "SAM2_CHUNK_START is no longer read"),
        (seg, {"LANEPAINT_LOG_LEVEL": "LOUD"}, "LANEPAINT_LOG_LEVEL='LOUD': expected one of DEBUG, INFO"),
        (seg + ["--config", bad_yaml], {}, "bad.yaml"),
        (seg + ["--config", unknown_key], {}, "has no setting 'frames-per-second'"),
        (seg + ["--config", not_utf8], {}, "latin1.yaml"),
        (seg + ["--config", os.path.join(tmp, "missing.yaml")], {}, "missing.yaml"),
        # stage 2
        (edit + ["--instructions", ""], {}, "must not be empty"),
        (edit + ["--instructions", " || "], {}, "empty instruction in"),
        (edit + ["--seed", "-3"], {}, "a seed must be an integer"),
        (edit + ["--num-frames", "50"], {}, "--num-frames must be 4k+1"),
        (edit + ["--strength", "0"], {}, "--strength must be in (0, 1]"),
        (edit, {}, "no segmentation output for run seg1"),
        (edit + ["--img-inpainting-lora-path", os.path.join(tmp, "no-lora")], {}, "no-lora"),
        (edit, {"LANEPAINT_EDIT_FPS": "8"}, "LANEPAINT_EDIT_FPS is no longer read"),
        # stage 3
        (ev, {}, "not found"),
        (ev + ["--cameras", "front"], {}, "expected camera names like camera_front_wide_120fov"),
        (ev + ["--num-traj-samples", "0"], {}, "--num-traj-samples 0: must be >= 1"),
        (ev + ["--t0-offset", "nan"], {}, "--t0-offset nan: must be a finite number of seconds"),
        (ev + ["--frame-spacing", "wide"], {}, "argument --frame-spacing: invalid choice: 'wide'"),
        (ev + ["--dataset-revision", "main"], {}, "offline access needs a 40-hex commit id"),
        # the pipeline
        (["run", "--stages", "13", "--run-id", "p1", "--output-root", out, "--input", clip], {}, "contiguous"),
        (["run", "--stages", "1", "--run-id", "", "--output-root", out, "--input", clip], {},
         "--run-id must not be empty"),
        (["run", "--stages", "2", "--run-id", "p1", "--output-root", out], {}, "--data-run-id"),
        (["run", "--stages", "1", "--run-id", "p1", "--output-root", out, "--input", clip, "--concurrency", "-1"], {},
         "--concurrency must be >= 0"),
        (["run", "--stages", "1", "--run-id", "p1", "--output-root", out, "--input", clip, "--segment-fps", "500"], {},
         "--fps 500: must be in (0, 120]"),
        # side tools
        (["render", os.path.join(tmp, "no-npz")], {}, "not found"),
        (["fetch-dataset", "--dataset-dir", os.path.join(tmp, "pai")], {}, "no clips"),
        (["fetch-dataset", "--clip", "a.camera_nope_99fov", "--dataset-dir", os.path.join(tmp, "pai")], {},
         "unknown camera 'camera_nope_99fov'"),
        (["fetch-dataset", "--clip", "abc", "--workers", "0", "--dataset-dir", os.path.join(tmp, "pai")], {},
         "--workers must be >= 1"),
        (["synth", "--out", a_file], {}, "is a file, not a folder"),
        (["synth", "--out", os.path.join(tmp, "s"), "--width", "100000", "--height", "100000"], {}, "from 32x32 to"),
        (["synth", "--out", os.path.join(tmp, "s"), "--seconds", "-1"], {}, "--seconds -1.0: must be a positive"),
        (["synth", "--out", os.path.join(tmp, "s"), "--lanes", "triple purple"], {}, "triple purple"),
        (["demo", "--output-root", out, "--size", "10x10"], {}, "--size '10x10': from 32x32"),
        (["demo", "--output-root", out, "--seconds", "5"], {}, "--seconds 5: the demo needs"),
        (["dataset", "filter", "--input", os.path.join(tmp, "no-dataset")], {}, "no-dataset"),
        (["train-lora", "--data", os.path.join(tmp, "no-dataset"), "--output", out, "--profile", "tiny"], {},
         "no-dataset"),
        (["config", "show", "nosuchsection"], {}, "nosuchsection"),
    ]


def test_usage_errors_exit_2_with_one_line_and_write_nothing(tmp_path, gcs_emulator, capsys, monkeypatch):
    tmp = str(tmp_path)
    os.makedirs(os.path.join(tmp, "in"))
    write_clip(SceneSpec(width=96, height=64, fps=10, seconds=0.5), os.path.join(tmp, "in"), name="clip_0001")
    _write(os.path.join(tmp, "a_file.txt"), b"x")
    _write(os.path.join(tmp, "bad.yaml"), b"segment: [unclosed\n")
    _write(os.path.join(tmp, "unknown.yaml"), b"segment:\n  frames-per-second: 8\n")
    _write(os.path.join(tmp, "latin1.yaml"), "segment:\n  caption: caf\xe9\n".encode("latin-1"))
    cases = _usage_cases(tmp)
    assert len(cases) >= 60
    capsys.readouterr()
    wrong = []
    for argv, env, message in cases:
        for key in [k for k in os.environ if k.startswith(("LANEPAINT_", "SAM2_", "VP_"))]:
            monkeypatch.delenv(key)
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        code = main(argv)
        err = capsys.readouterr().err.strip()
        for key in env:
            monkeypatch.delenv(key)
        lines = [ln for ln in err.splitlines() if ln.strip()]
        ok = code == 2 and len(lines) == 1 and "Traceback" not in err and message in lines[0]
        if not ok:
            wrong.append(f"{' '.join(argv)} {env}: exit {code}, expected {message!r} in {lines}")
        if os.path.exists(os.path.join(tmp, "out")):
            wrong.append(f"{' '.join(argv)}: wrote {os.listdir(os.path.join(tmp, 'out'))}")
            import shutil

            shutil.rmtree(os.path.join(tmp, "out"))
    assert not wrong, "\n".join(wrong)


# ---- stage 2: broken hand-off files, one run, one good clip among them ---------------------------------
@pytest.fixture(scope="module")
def scene():
    frames, masks = render_scene(SceneSpec(width=96, height=64, fps=8.0, seconds=49 / 8,
                                           lanes=LaneSpec.parse("single white dashed")))
    return frames, masks


def _rewrite_meta(layout, video_id, **changes):
    import csv
    import io

    uri = layout.vp_meta_csv("seg", video_id)
    rows = list(csv.DictReader(io.StringIO(storage.read_text(uri))))
    rows[0].update({k: str(v) for k, v in changes.items()})
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    storage.write_text(uri, buf.getvalue())


def test_stage_2_fails_each_broken_hand_off_alone_and_edits_the_good_clip(tmp_path, scene, capsys):
    frames, masks = scene
    root = str(tmp_path / "out")
    layout = Layout(root)
    names = ["good_clip", "latin1_meta", "no_columns", "outside_path", "backwards_range", "range_past_masks",
             "random_masks", "truncated_masks", "float_masks", "zero_masks", "size_mismatch", "missing_video",
             "empty_meta", "nan_fps"]
    for name in names:
        write_vp_clip(layout, "seg", name, frames, masks, fps=8.0)
    storage.write_bytes(layout.vp_meta_csv("seg", "latin1_meta"), "path,fps\ncaf\xe9,8\n".encode("latin-1"))
    storage.write_text(layout.vp_meta_csv("seg", "no_columns"), "a,b\n1,2\n")
    _rewrite_meta(layout, "outside_path", path="../../../../etc/passwd.0.mp4")
    _rewrite_meta(layout, "backwards_range", start_frame=30, end_frame=10)
    _rewrite_meta(layout, "range_past_masks", end_frame=80)
    _rewrite_meta(layout, "nan_fps", fps="nan")
    storage.write_bytes(layout.vp_masks_npz("seg", "random_masks"), os.urandom(2048))
    raw = storage.read_bytes(layout.vp_masks_npz("seg", "truncated_masks"))
    storage.write_bytes(layout.vp_masks_npz("seg", "truncated_masks"), raw[: len(raw) // 2])
    np.savez_compressed(layout.vp_masks_npz("seg", "float_masks"), arr_0=masks.astype(np.float32) * 0.7)
    np.savez_compressed(layout.vp_masks_npz("seg", "zero_masks"), arr_0=np.zeros(masks.shape, np.uint8))
    np.savez_compressed(layout.vp_masks_npz("seg", "size_mismatch"), arr_0=np.ones((49, 32, 48), np.uint8))
    os.remove(layout.vp_raw_video("seg", "missing_video"))
    storage.write_text(layout.vp_meta_csv("seg", "empty_meta"), "")
    os.makedirs(os.path.join(layout.vp_data_run("seg"), "bad folder name"))     # a stray folder: skipped
    code = main(["edit", "--profile", "tiny", "--data-run-id", "seg", "--run-id", "e1", "--output-root", root,
                 "--instructions", "lane double yellow solid", "--no-judge"])
    captured = capsys.readouterr()
    assert code == 1
    failed = {item.split("/", 1)[1]: why for item, why in _failed_lines(captured.out).items()}
    expected = {
        "latin1_meta": "unreadable meta.csv", "no_columns": "bad meta.csv (missing columns",
        "outside_path": "bad meta.csv path '../../../../etc/passwd.0.mp4'",
        "backwards_range": "bad meta.csv frame range start_frame=30 end_frame=10",
        "range_past_masks": "end_frame 80 is past the 49 mask frames",
        "random_masks": "is not an .npz file", "truncated_masks": "unreadable masks",
        "float_masks": "masks must be integer labels", "zero_masks": "all-zero mask",
        "size_mismatch": "mask size 48x32 differs from video size 96x64", "missing_video": "missing video",
        "empty_meta": "bad meta.csv (no rows)", "nan_fps": "bad meta.csv frame range",
    }
    assert set(failed) == set(expected), failed
    for name, reason in expected.items():
        assert reason in failed[name] and failed[name].startswith(name), (name, failed[name])
    assert "bad folder name" in captured.err and "skipping" in captured.err
    assert storage.exists(layout.vp_sidecar("e1", "lane_double_yellow_solid", "good_clip"))
    _no_half_files(root)


# ---- stage 3: broken sidecars and edited clips -----------------------------------------------------------
def test_stage_3_fails_broken_sidecars_and_clips_alone(tmp_path, capsys):
    pytest.importorskip("physical_ai_av")
    from core.moment import plan_moment
    from synthetic.av_dataset import FRONT_CAMERA, AVDatasetSpec, write_av_dataset

    av = write_av_dataset(AVDatasetSpec(clips=1, cameras=(FRONT_CAMERA,), clip_seconds=9.0, fps=10.0, width=64,
                                        height=36), str(tmp_path / "hf"), str(tmp_path / "in"))
    clip = av.clips[0]
    vid = f"{clip.clip_id}.{FRONT_CAMERA}"
    moment = plan_moment(videoio.probe(clip.input_video).last_frame_s, 10.0, 20)
    frames = videoio.decode_times(clip.input_video, moment.frame_times())
    root = str(tmp_path / "out")
    layout = Layout(root)

    def edited(folder, sidecar, data=None):
        uri = layout.vp_edit_video("v", folder, vid)
        if data is None:
            with storage.atomic_path(uri) as tmp:
                videoio.encode(frames, tmp, fps=10)
        else:
            storage.write_bytes(uri, data)
        storage.write_bytes(uri[:-4] + ".json", sidecar if isinstance(sidecar, bytes) else
                            json.dumps(sidecar).encode())

    edited("good", {"instruction": "x", "moment": moment.as_dict()})
    edited("sidecar_not_json", b"{not json")
    edited("sidecar_list", b"[1, 2]")
    edited("moment_outside", {"moment": {**moment.as_dict(), "t0_s": 99.0}})
    edited("moment_partial", {"moment": {"t0_s": 5.0}})
    edited("zero_bytes_clip", {"moment": moment.as_dict()}, data=b"")
    code = main(["evaluate", "--profile", "tiny", "--video-data", layout.vp_run("v"), "--run-id", "v",
                 "--output-root", root, "--dataset-dir", av.cache_dir, "--no-render", "--cameras", FRONT_CAMERA])
    out = capsys.readouterr().out
    assert code == 1
    failed = {item.split("/", 1)[0]: why for item, why in _failed_lines(out).items()}
    expected = {"sidecar_not_json": "unreadable sidecar", "sidecar_list": "is not a JSON object",
                "moment_outside": "t0 must lie in the window", "moment_partial": "bad evaluated moment",
                "zero_bytes_clip": "empty file (0 bytes)"}
    assert set(failed) == set(expected), out
    for name, reason in expected.items():
        assert reason in failed[name], (name, failed[name])
    assert storage.exists(layout.alpamayo_file("v", "good", vid, "_inference.json"))
    _no_half_files(root)


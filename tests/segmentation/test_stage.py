"""``lanepaint segment`` end to end with the tiny profile: outputs, bad inputs, usage errors, resume."""

import csv
import json
import os

import av
import cv2
import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("sam2")

from core import storage, videoio  # noqa: E402
from core.lanes import LaneSpec
from core.layout import Layout  # noqa: E402
from core.vp_data import VP_COLUMNS, load_masks, read_vp_clip  # noqa: E402
from orchestrator.cli import main  # noqa: E402
from synthetic.scenes import SceneSpec, write_clip  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def _clip(folder, seed, lanes="single white solid", seconds=2.0, name=None):
    spec = SceneSpec(width=128, height=80, fps=10, seconds=seconds, seed=seed, lanes=LaneSpec.parse(lanes))
    return write_clip(spec, str(folder), name=name).video_path


def _audio_only(path):
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=8000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        frame.sample_rate = 8000
        for packet in [*stream.encode(frame), *stream.encode()]:
            container.mux(packet)
    return str(path)


def _segment(*args):
    return main(["segment", "--profile", "tiny", *args])


def test_done_when_two_clips_and_a_corrupt_file(tmp_path, capsys):
    good = [_clip(tmp_path, 0, name="clip_a.camera_front_wide_120fov"),
            _clip(tmp_path, 1, "double yellow dashed", name="clip_b.camera_front_wide_120fov")]
    corrupt = tmp_path / "corrupt_clip.mp4"
    corrupt.write_bytes(b"\x00\x00\x00\x18ftypmp42 this is not a video" * 10)
    root = str(tmp_path / "out")
    args = ["--input", *good, str(corrupt), "--run-id", "r1", "--output-root", root, "--max-frames", "12"]

    assert _segment(*args) == 1
    out = capsys.readouterr().out
    edit = f"lanepaint edit --data-run-id r1 --output-root {root} --profile tiny"
    assert out.startswith("segment run id: r1") and out.count(edit) == 2   # at start and at the end
    assert "segment r1: 2 ok, 0 skipped (already done), 1 failed" in out
    assert f"FAILED corrupt_clip: {corrupt}: not a readable video" in out

    lay = Layout(root)
    for path in good:
        vid = os.path.basename(path)[:-4]
        # VideoPainter layout
        clip = read_vp_clip(lay, "r1", vid)
        with open(clip.meta_uri, newline="") as fh:
            rows = list(csv.DictReader(fh))
        assert tuple(rows[0])[:6] == VP_COLUMNS and {"frames", "width", "height", "coverage"} <= set(rows[0])
        assert (rows[0]["path"], rows[0]["fps"], rows[0]["mask_id"]) == (f"{vid}.0.mp4", "8", "1")
        assert (clip.frames, clip.width, clip.height, clip.vp_ready) == (12, 128, 80, False)
        assert "too short for VideoPainter" in rows[0]["note"]
        assert clip.video_uri.endswith(f"raw_videos/{vid[:-3]}/{vid}.0.mp4")
        info = videoio.probe(clip.video_uri)
        assert (info.frame_count, info.fps, info.width, info.height) == (12, 8.0, 128, 80)
        labels = np.load(clip.masks_uri, allow_pickle=False)["arr_0"]
        assert labels.dtype == np.uint8 and labels.shape == (12, 80, 128)
        assert set(np.unique(labels)) == {0, 1}
        # sam2 layout: PNGs 0/255 equal to the label map
        pngs = sorted(os.listdir(lay.sam2_masks_dir("r1", vid)))
        assert pngs == [f"{t:05d}.png" for t in range(12)]
        for t in (0, 11):
            png = cv2.imread(os.path.join(lay.sam2_masks_dir("r1", vid), pngs[t]), cv2.IMREAD_UNCHANGED)
            assert png.dtype == np.uint8 and png.shape == (80, 128) and set(np.unique(png)) <= {0, 255}
            assert np.array_equal(png == 255, load_masks(clip)[t])
        assert videoio.probe(lay.sam2_segmented_video("r1", vid)).frame_count == 12
        assert sorted(os.listdir(lay.sam2_visualizations_dir("r1", vid))) == ["00000.png", "00006.png", "00011.png"]
        stats = json.loads(storage.read_text(lay.sam2_stats_json("r1", vid)))
        assert len(stats["coverage"]) == 12 and len(stats["consecutive_iou"]) == 11
        assert stats["coverage"][0] == pytest.approx(labels[0].mean(), abs=1e-6)
        assert {"decode", "segment", "clean", "write"} <= set(stats["timings"])

    manifest = json.loads(storage.read_text(os.path.join(root, "sam2", "r1", "manifest.json")))
    assert manifest["profile"] == "tiny" and "profile_note" in manifest
    assert manifest["models"]["sam2"]["image_size"] == 64
    item = manifest["items"]["clip_a.camera_front_wide_120fov"]
    assert item["status"] == "ok" and {"decode", "segment", "clean", "write", "upload", "handoff"} <= set(item["timings"])
    assert "low_coverage_frames" in item["details"] and "mean_consecutive_iou" in item["details"]
    assert manifest["items"]["corrupt_clip"]["status"] == "failed"

    # rerun: finished clips are skipped, the bad one is reported again
    assert _segment(*args) == 1
    assert "segment r1: 0 ok, 2 skipped (already done), 1 failed" in capsys.readouterr().out
    # an incomplete clip (marker gone) is redone; --overwrite redoes everything
    os.remove(lay.vp_meta_csv("r1", "clip_a.camera_front_wide_120fov"))
    good_args = ["--input", *good, "--run-id", "r1", "--output-root", root]
    assert _segment(*good_args, "--max-frames", "12") == 0
    assert "segment r1: 1 ok, 1 skipped (already done), 0 failed" in capsys.readouterr().out
    assert _segment(*good_args, "--max-frames", "10", "--overwrite") == 0
    assert "segment r1: 2 ok, 0 skipped" in capsys.readouterr().out
    assert len(os.listdir(lay.sam2_masks_dir("r1", "clip_b.camera_front_wide_120fov"))) == 10  # no stale PNGs
    assert sorted(os.listdir(lay.sam2_visualizations_dir("r1", "clip_b.camera_front_wide_120fov"))) == \
        ["00000.png", "00004.png", "00009.png"]


def test_each_bad_input_is_one_line_and_the_run_goes_on(tmp_path, capsys):
    from segmentation.config import SegmentConfig
    from segmentation.stage import run_segment

    good = _clip(tmp_path, 3, name="good_clip")
    remote_good = "memory://lanepaint-seg-test/in/remote_clip.mp4"
    storage.put(good, remote_good)
    (tmp_path / "zero_bytes.mp4").write_bytes(b"")
    (tmp_path / "notes_clip.mp4").write_text("this is a text file, not a video\n")
    (tmp_path / "empty_bucket").mkdir()
    bad = {
        "missing_clip": str(tmp_path / "missing_clip.mp4"),
        "zero_bytes": str(tmp_path / "zero_bytes.mp4"),
        "notes_clip": str(tmp_path / "notes_clip.mp4"),
        "audio_only": _audio_only(tmp_path / "audio_only.mp4"),
        "gone_clip": "memory://lanepaint-seg-test/nowhere/gone_clip.mp4",
        f"chunks://{tmp_path}/empty_bucket?fs=file": f"chunks://{tmp_path}/empty_bucket?fs=file",
        "chunks://bucket/x?colour=red": "chunks://bucket/x?colour=red",
    }
    cfg = SegmentConfig(inputs=(good, remote_good, *bad.values()), run_id="r2", output_root=str(tmp_path / "out"),
                        profile="tiny", max_frames=6, cache_dir=str(tmp_path / "cache"))
    result = run_segment(cfg)
    assert result.exit_code == 1
    assert set(result.ok) == {"good_clip", "remote_clip"}
    reasons = dict(result.failed)
    assert set(reasons) == set(bad)
    expected = {
        "missing_clip": "missing_clip.mp4: not found",
        "zero_bytes": "zero_bytes.mp4: empty file (0 bytes)",
        "notes_clip": "notes_clip.mp4: not a readable video",
        "audio_only": "audio_only.mp4: no video stream",
        "gone_clip": "memory://lanepaint-seg-test/nowhere/gone_clip.mp4: not found",
        f"chunks://{tmp_path}/empty_bucket?fs=file": "no .mp4 videos found",
        "chunks://bucket/x?colour=red": "unknown key 'colour'",
    }
    for item, text in expected.items():
        assert text in reasons[item] and "\n" not in reasons[item], (item, reasons[item])
    assert result.get("vp_data_uri") == Layout(str(tmp_path / "out")).vp_data_run("r2")
    assert "--data-run-id r2" in result.next_command
    assert os.listdir(tmp_path / "cache")   # the remote input was fetched into the cache


@pytest.mark.parametrize("args, message", [
    (["--run-id", "../escape"], "invalid run id"),
    (["--run-id", "has space"], "invalid run id"),
    (["--output-root", "ftp://host/out"], "bad output root"),
    (["--output-root", "FILE"], "is a file"),
    (["--max-frames", "0"], "--max-frames must be >= 1"),
    (["--profile", "full", "--vos-optimized", "--device", "cpu"], "needs a CUDA device"),
])
def test_bad_usage_exits_2_and_writes_nothing(tmp_path, capsys, args, message):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    args = [str(blocker) if a == "FILE" else a for a in args]
    if "--output-root" not in args:
        args += ["--output-root", str(tmp_path / "out")]
    if "--run-id" not in args:
        args += ["--run-id", "r1"]
    before = sorted(os.listdir(tmp_path))
    assert _segment("--input", str(tmp_path / "whatever_clip.mp4"), *args) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert sorted(os.listdir(tmp_path)) == before


def test_demo_step_gives_non_empty_masks(tmp_path):
    """The demo's synthetic clip through the real tiny model: stage 2 needs a non-empty mask."""
    from orchestrator.demo import DemoState, _segment, _synthesise

    state = DemoState(output_root=str(tmp_path / "out"), run_id="demo1", seconds=14.0, size=(320, 180))
    _synthesise(state)
    line = _segment(state)
    assert state.exit_code == 0 and line.startswith("1 ok, 0 skipped, 0 failed")
    result = state.results["segment"]
    vid = result.ok[0]
    assert vid.endswith(".camera_front_wide_120fov")  # <clip_id>.<camera>: stage 3 finds its ego motion
    clip = read_vp_clip(Layout(state.output_root), "demo1", vid)
    masks = load_masks(clip)
    # the 49-frame window at 10 fps ending at the planned moment: 13.97 s of video, t0 = 7.5 s (6.4 s before its end)
    assert clip.vp_ready and clip.frames == 49 and clip.fps == 10
    assert clip.moment is not None and clip.moment.as_dict() == {"t0_s": 7.5, "start_s": 2.7, "fps": 10.0, "frames": 49}
    manifest = json.loads(storage.read_text(result.manifest_uri))
    assert manifest["items"][vid]["details"]["moment"] == clip.moment.as_dict()
    assert masks.any(axis=(1, 2)).all() and 0.05 < masks.mean() < 0.95


def test_gs_input_and_gs_output_root(gcs_emulator, tmp_path):
    """Remote input fetched once into the cache; both layouts written to a gs:// root; resume on gs://."""
    import uuid

    from segmentation.config import SegmentConfig
    from segmentation.stage import run_segment
    from tests.conftest import BUCKET

    sub = f"{BUCKET}/seg-{uuid.uuid4().hex[:6]}"
    storage.put(_clip(tmp_path, 4, seconds=1.0, name="gs_clip_0001"), f"gs://{sub}/in/chunk_0000/gs_clip_0001.mp4")
    cfg = SegmentConfig(inputs=(f"chunks://{sub}/in",), run_id="g1", output_root=f"gs://{sub}/out",
                        profile="tiny", cache_dir=str(tmp_path / "cache"))
    result = run_segment(cfg)
    assert result.ok == ("gs_clip_0001",) and result.exit_code == 0
    lay = Layout(cfg.output_root)
    clip = read_vp_clip(lay, "g1", "gs_clip_0001")
    assert clip.frames == 8 and load_masks(clip).shape == (8, 80, 128)
    assert len(storage.ls(lay.sam2_masks_dir("g1", "gs_clip_0001"))) == 8
    assert storage.exists(lay.sam2_segmented_video("g1", "gs_clip_0001"))
    assert json.loads(storage.read_text(result.manifest_uri))["items"]["gs_clip_0001"]["status"] == "ok"
    assert run_segment(cfg).skipped == ("gs_clip_0001",)


def test_model_that_cannot_load_fails_the_run_in_one_line_and_writes_nothing(tmp_path, capsys):
    video = _clip(tmp_path, 5, seconds=0.5, name="clip_0005")
    capsys.readouterr()  # only what the command itself prints counts
    broken = tmp_path / "broken_sam2.pt"
    broken.write_bytes(b"not a checkpoint")
    code = _segment("--input", video, "--run-id", "r1", "--output-root", str(tmp_path / "out"), "--profile", "full",
                    "--device", "cpu", "--checkpoint", str(broken))
    err = capsys.readouterr().err
    assert code == 1 and "cannot load SAM2 model" in err and "broken_sam2.pt" in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "out").exists()
    # a checkpoint that is not there at all is a usage error, found before anything runs (was: at model load)
    code = _segment("--input", video, "--run-id", "r1", "--output-root", str(tmp_path / "out"), "--profile", "full",
                    "--device", "cpu", "--checkpoint", str(tmp_path / "missing_sam2.pt"))
    err = capsys.readouterr().err
    assert code == 2 and err.strip().endswith("missing_sam2.pt: not found") and not (tmp_path / "out").exists()


def test_plan_moment_keeps_the_window_ending_at_t0_and_fails_a_short_video_before_segmenting(tmp_path, capsys):
    """--plan-moment: the window's frames are the source frames at or before start + k/10 s; a video too short
    for 1.6 s of history, the window and 6.4 s of future fails in planning, before SAM2 sees it."""
    long = str(tmp_path / "long_clip.camera_front_wide_120fov.mp4")
    stamp = np.stack([np.full((48, 64, 3), (5 * k) % 250, np.uint8) for k in range(30 * 13)])   # 13 s at 30 fps
    videoio.encode(stamp, long, fps=30, crf=0, preset="ultrafast")
    short = _clip(tmp_path, 2, seconds=7.0, name="short_clip.camera_front_wide_120fov")
    root = str(tmp_path / "out")
    code = _segment("--input", long, short, "--run-id", "m1", "--output-root", root, "--plan-moment",
                    "--edit-window", "20")
    out = capsys.readouterr().out
    assert code == 1
    (line,) = [ln for ln in out.splitlines() if "FAILED short_clip" in ln]
    assert line.endswith("short_clip.camera_front_wide_120fov: 6.90 s of video; the evaluated moment needs 8.30 s "
                         "(1.90 s before t0 for the 20-frame edit window at 10 fps and the 1.6 s history, 6.4 s "
                         "after it)")
    assert not os.path.exists(Layout(root).sam2_masks_dir("m1", "short_clip.camera_front_wide_120fov"))
    clip = read_vp_clip(Layout(root), "m1", "long_clip.camera_front_wide_120fov")
    # 12.97 s of video: t0 = 6.5 s (6.4 s before its end, on the 0.1 s grid), 20 frames at 10 fps from 4.6 s
    assert clip.moment.as_dict() == {"t0_s": 6.5, "start_s": 4.6, "fps": 10.0, "frames": 20}
    frames = videoio.decode(clip.video_uri, fps=None)
    source = np.floor((4.6 + np.arange(20) / 10) * 30 + 1e-6).astype(int)       # 138, 141, ... 195
    assert np.abs(frames[:, 0, 0, 0].astype(int) - (5 * source) % 250).max() <= 2


def test_pipelined_videos_overlap_keep_failures_apart_and_give_the_same_masks(tmp_path, monkeypatch):
    """With prefetch (the default) video k is written while k+1 is segmented on another thread; a corrupt
    video in the middle fails alone, and every mask equals the one-at-a-time run's."""
    import threading
    import time

    import segmentation.stage as stage
    from core.config import build_config
    from segmentation.config import SegmentConfig

    clips = [_clip(tmp_path, k, name=f"clip_{k}.camera_front_wide_120fov") for k in range(3)]
    corrupt = tmp_path / "broken_clip.mp4"
    corrupt.write_bytes(b"\x00\x00\x00\x18ftypmp42 not a video" * 10)
    inputs = [clips[0], str(corrupt), clips[1], clips[2]]
    events = []

    def logged(name, fn):
        def wrapper(*args, **kwargs):
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                events.append((name, threading.get_ident(), start, time.perf_counter()))
        return wrapper

    monkeypatch.setattr(stage, "write_local", logged("write", stage.write_local))
    monkeypatch.setattr(stage._Segment, "segment_input", logged("segment", stage._Segment.segment_input))
    results = {}
    for prefetch in (True, False):
        cfg = build_config(SegmentConfig, {"inputs": tuple(inputs), "run_id": f"p{int(prefetch)}", "profile": "tiny",
                                           "output_root": str(tmp_path / "out"), "max_frames": 12,
                                           "prefetch": prefetch}, environ={})
        results[prefetch] = stage.run_segment(cfg)
        if prefetch:
            pipelined, events[:] = list(events), []
    for result in results.values():
        assert len(result.ok) == 3 and [item for item, _ in result.failed] == ["broken_clip"]
        assert "not a readable video" in result.failed[0][1]
    writes = [e for e in pipelined if e[0] == "write"]
    segments = [e for e in pipelined if e[0] == "segment"]
    assert {e[1] for e in segments}.isdisjoint({e[1] for e in writes})        # another thread segments
    assert any(s[2] < w[3] and w[2] < s[3] for s in segments for w in writes)  # ... while a video is written
    assert all(e[1] == threading.get_ident() for e in events)                 # without prefetch: all in line
    lay = Layout(str(tmp_path / "out"))
    for path in clips:
        vid = os.path.basename(path)[:-4]
        assert np.array_equal(load_masks(read_vp_clip(lay, "p1", vid)), load_masks(read_vp_clip(lay, "p0", vid)))


def test_a_source_kept_whole_at_its_own_rate_is_copied_not_encoded_again(tmp_path):
    from core.config import build_config
    from segmentation.config import SegmentConfig
    from segmentation.stage import run_segment

    spec = SceneSpec(width=128, height=80, fps=8, seconds=1.5, seed=3, lanes=LaneSpec.parse("single white solid"))
    whole = write_clip(spec, str(tmp_path), name="whole_clip.camera_front_wide_120fov").video_path
    other = _clip(tmp_path, 4, name="tenfps_clip.camera_front_wide_120fov")          # 10 fps: resampled to 8
    root = str(tmp_path / "out")
    cfg = build_config(SegmentConfig, {"inputs": (whole, other), "run_id": "c1", "profile": "tiny", "fps": 8.0,
                                       "output_root": root}, environ={})
    result = run_segment(cfg)
    assert len(result.ok) == 2
    items = json.loads(storage.read_text(result.manifest_uri))["items"]
    assert items["whole_clip.camera_front_wide_120fov"]["details"]["handoff_video"] == "copied"
    assert items["tenfps_clip.camera_front_wide_120fov"]["details"]["handoff_video"] == "encoded"
    clip = read_vp_clip(Layout(root), "c1", "whole_clip.camera_front_wide_120fov")
    handed_off = videoio.decode(clip.video_uri, fps=None)
    assert np.array_equal(handed_off, videoio.decode(whole, fps=8))   # the frames SAM2 saw, without another encode
    assert (clip.frames, clip.fps) == (12, 8.0) and load_masks(clip).shape == handed_off.shape[:3]


def test_a_segmentation_past_its_time_limit_fails_its_video_and_stops_on_the_other_thread(tmp_path, monkeypatch):
    import time

    import segmentation.sam2_model as sam2_model
    from core.config import build_config
    from segmentation.config import SegmentConfig
    from segmentation.stage import run_segment

    def hung(self, frames, square=None, should_stop=None):      # SAM2 that never finishes unless told to stop
        for _ in range(300):
            if should_stop is not None and should_stop():
                raise sam2_model.SegmentationStopped("segmentation stopped (test)")
            time.sleep(0.05)
        raise AssertionError("never asked to stop")

    monkeypatch.setattr(sam2_model.RoadSegmenter, "segment", hung)
    clips = [_clip(tmp_path, k, name=f"slow_{k}.camera_front_wide_120fov") for k in range(2)]
    cfg = build_config(SegmentConfig, {"inputs": tuple(clips), "run_id": "t1", "profile": "tiny", "item_timeout": 1.0,
                                       "output_root": str(tmp_path / "out"), "max_frames": 8}, environ={})
    start = time.perf_counter()
    result = run_segment(cfg)
    assert time.perf_counter() - start < 8.0                 # each video stopped at its limit, not after 15 s
    assert [item for item, _ in result.failed] == [os.path.basename(c)[:-4] for c in clips]
    assert all(reason.startswith("timed out after 1 s") for _, reason in result.failed), result.failed


def test_a_video_another_run_holds_is_not_segmented_ahead(tmp_path, monkeypatch):
    import segmentation.sam2_model as sam2_model
    from core.claims import ClaimStore
    from core.config import build_config
    from segmentation.config import SegmentConfig
    from segmentation.stage import run_segment

    clips = [_clip(tmp_path, k, name=f"held_{k}.camera_front_wide_120fov") for k in range(3)]
    root = str(tmp_path / "out")
    other = ClaimStore(Layout(root).sam2_run("h1")).acquire("held_1.camera_front_wide_120fov")
    assert not isinstance(other, str)
    segmented = []
    segment = sam2_model.RoadSegmenter.segment
    monkeypatch.setattr(sam2_model.RoadSegmenter, "segment",
                        lambda self, frames, *a, **k: segmented.append(len(frames)) or segment(self, frames, *a, **k))
    cfg = build_config(SegmentConfig, {"inputs": tuple(clips), "run_id": "h1", "profile": "tiny", "max_frames": 8,
                                       "output_root": root}, environ={})
    try:
        result = run_segment(cfg)
        left = os.listdir(os.path.join(Layout(root).sam2_run("h1"), "_claims"))
    finally:
        other.release()
    assert len(segmented) == 2                                  # the held video was never segmented, even ahead
    assert len(result.ok) == 2 and [item for item, _ in result.claimed] == ["held_1.camera_front_wide_120fov"]
    assert left == [os.path.basename(other.uri)]                # our claims and reservations all released

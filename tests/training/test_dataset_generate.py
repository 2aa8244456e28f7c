"""``lanepaint dataset generate`` on synthetic clips with the tiny profile (SAM2 tiny in image mode +
the tiny Qwen2.5-VL, or a scripted captioner): files, train.csv, masks, per-chunk counts, resume,
frames past the end, low-coverage drops, captions, gs:// output, several workers."""

import csv
import json
import os

import cv2
import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("sam2")

from core import storage, videoio  # noqa: E402
from core.lanes import LaneSpec
from orchestrator.cli import main  # noqa: E402
from synthetic.scenes import SceneSpec, write_clip  # noqa: E402
from training.dataset_config import DatasetGenerateConfig  # noqa: E402
from training.dataset_generate import generate_dataset  # noqa: E402
from training.lane_dataset import parse_prompt, read_rows, validate_dataset  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

FRAMES = "0,5,15"
ANSWERS = {  # what a scripted VLM says about each synthetic clip
    "double_yellow_solid": '{"count": "double", "color": "yellow", "pattern": "solid"}',
    "single_white_dashed": '{"count": "single", "colo',          # cut off: must become unknown
}


class ScriptedCaptioner:
    """A captioner that answers from the clip's lane spec (its name); picklable for worker processes."""

    def __init__(self, policy=None):
        self.calls = []

    def __call__(self, images, names):
        self.calls.append(list(names))
        assert all(i.dtype == np.uint8 and i.ndim == 3 and i.shape[2] == 3 for i in images)
        return [next(a for key, a in ANSWERS.items() if key in name) for name in names]

    def describe(self):
        return {"name": "scripted"}


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """chunk_0000: two 2 s double-yellow-solid clips; chunk_0001: one 1 s single-white-dashed clip."""
    root = tmp_path_factory.mktemp("videos")
    for chunk, lanes, seconds, seeds in ((0, "double yellow solid", 2.0, (0, 1)), (1, "single white dashed", 1.0, (0,))):
        for seed in seeds:
            spec = SceneSpec(width=128, height=80, fps=10, seconds=seconds, seed=seed, lanes=LaneSpec.parse(lanes))
            write_clip(spec, str(root / f"chunk_{chunk:04d}"))
    return str(root)


def _cfg(source, output, **kw):
    values = dict(sources=(f"chunks://{source}?fs=file",), output=output, frames=(0, 5, 15), profile="tiny",
                  io_workers=2)
    return DatasetGenerateConfig(**(values | kw))


def _mtimes(root):
    return {f"{sub}/{n}": os.stat(os.path.join(root, sub, n)).st_mtime_ns
            for sub in ("images", "masks") for n in sorted(os.listdir(os.path.join(root, sub)))}


def test_tiny_end_to_end_files_counts_and_resume(source, tmp_path, capsys):
    out = str(tmp_path / "ds")
    assert main(["dataset", "generate", "--source", f"chunks://{source}?fs=file", "--output", out,
                 "--frames", FRAMES, "--profile", "tiny"]) == 0
    printed = capsys.readouterr().out
    assert "samples: 8" in printed and "3 ok, 0 skipped" in printed

    names = [f"synth_double_yellow_solid_s{s}_frame{f:03d}" for s in (0, 1) for f in (0, 5, 15)] + \
            [f"synth_single_white_dashed_s0_frame{f:03d}" for f in (0, 5)]
    with open(os.path.join(out, "train.csv"), newline="") as fh:
        table = list(csv.DictReader(fh))
    assert list(table[0]) == ["image", "mask", "prompt", "prompt_2"]
    assert [r["image"] for r in table] == [f"images/{n}.png" for n in names]
    assert [r["mask"] for r in table] == [f"masks/{n}.png" for n in names]
    # the tiny VLM's random bytes never parse: unknown attributes, raw answers kept
    assert {r["prompt"] for r in table} == {r["prompt_2"] for r in table} == {"road with unknown unknown unknown lane markings"}
    captions = [json.loads(line) for line in open(os.path.join(out, "captions.jsonl"))]
    assert [c["sample"] for c in captions] == names and all(c["raw_answer"] and c["parse_notes"] for c in captions)

    # files: the image is the source frame, the mask is 0/255 with the recorded coverage
    frame5 = videoio.decode_at(os.path.join(source, "chunk_0000", "synth_double_yellow_solid_s1.mp4"), [5])[5]
    image = cv2.cvtColor(cv2.imread(os.path.join(out, "images", names[4] + ".png")), cv2.COLOR_BGR2RGB)
    assert np.array_equal(image, frame5)
    record = json.load(open(os.path.join(out, "_records", names[4] + ".json")))
    mask = cv2.imread(os.path.join(out, "masks", names[4] + ".png"), cv2.IMREAD_UNCHANGED)
    assert mask.dtype == np.uint8 and mask.shape == (80, 128) and set(np.unique(mask)) <= {0, 255}
    assert (mask == 255).mean() == pytest.approx(record["coverage"], abs=1e-6) and record["coverage"] >= 0.01
    assert len(validate_dataset(out, require_all_valid=True).rows) == 8

    manifest = json.load(open(os.path.join(out, "manifest.json")))
    assert manifest["profile"] == "tiny" and manifest["models"]["sam2"]["mode"] == "image"
    assert manifest["models"]["captioner"]["source"] == "tiny-random-qwen2.5-vl"
    assert manifest["dataset"]["chunks"] == {
        "chunk_0000": {"videos": 2, "samples": 6, "dropped_low_coverage": 0, "frames_past_end": 0},
        "chunk_0001": {"videos": 1, "samples": 2, "dropped_low_coverage": 0, "frames_past_end": 1}}
    item = manifest["items"]["synth_single_white_dashed_s0"]
    assert item["details"]["frames_past_end"] == [15] and item["details"]["samples"] == 2

    # second run: nothing redone, no model loaded, files untouched
    before = _mtimes(out)
    assert main(["dataset", "generate", "--source", f"chunks://{source}?fs=file", "--output", out,
                 "--frames", FRAMES, "--profile", "tiny"]) == 0
    printed = capsys.readouterr()
    assert "0 ok, 3 skipped" in printed.out and "samples: 8" in printed.out and "loaded" not in printed.err
    assert _mtimes(out) == before

    # a crash after one sample's files: only the unrecorded sample is redone
    os.remove(os.path.join(out, "_records", names[1] + ".json"))
    os.remove(os.path.join(out, "_videos", "synth_double_yellow_solid_s0.json"))
    captioner = ScriptedCaptioner()
    result = generate_dataset(_cfg(source, out), captioner_factory=lambda policy: captioner)
    assert (len(result.ok), len(result.skipped)) == (1, 2) and captioner.calls == [[names[1]]]
    after = _mtimes(out)
    assert after.keys() == before.keys()
    assert {n for n in before if after[n] != before[n]} == {f"images/{names[1]}.png", f"masks/{names[1]}.png"}
    prompts = {r.image: r.prompt for r in read_rows(out)}
    assert prompts[f"images/{names[1]}.png"] == "road with double yellow solid lane markings"
    assert prompts[f"images/{names[0]}.png"] == "road with unknown unknown unknown lane markings"


def test_scripted_captions_low_coverage_and_sources(source, tmp_path):
    out = str(tmp_path / "ds")
    listing = tmp_path / "videos.txt"
    listing.write_text(f"# two clips\n{source}/chunk_0001/synth_single_white_dashed_s0.mp4\n"
                       f"{source}/chunk_0000/synth_double_yellow_solid_s1.mp4\n"
                       f"{source}/chunk_0000/synth_double_yellow_solid_s0.mp4\n")
    captioner = ScriptedCaptioner()
    threshold = 0.3
    result = generate_dataset(_cfg(source, out, sources=(str(listing),), start_index=1, limit=2,
                                   min_coverage=threshold), captioner_factory=lambda policy: captioner)
    assert set(result.ok) == {"synth_double_yellow_solid_s1", "synth_double_yellow_solid_s0"}
    records = [json.load(open(os.path.join(out, "_records", n))) for n in sorted(os.listdir(os.path.join(out, "_records")))]
    kept = [r for r in records if r["status"] == "kept"]
    dropped = [r for r in records if r["status"] == "dropped"]
    assert kept and dropped and len(records) == 6
    assert all(r["coverage"] >= threshold for r in kept) and all(r["coverage"] < threshold for r in dropped)
    assert all(r["reason"] == "low coverage" and not os.path.exists(os.path.join(out, "images", r["sample"] + ".png"))
               for r in dropped)
    # one captioner call per video with its kept frames only
    assert sorted(n for call in captioner.calls for n in call) == sorted(r["sample"] for r in kept)
    rows = read_rows(out)
    assert len(rows) == len(kept)
    assert {r.prompt for r in rows} == {"road with double yellow solid lane markings"}
    counts = json.load(open(os.path.join(out, "manifest.json")))["dataset"]["chunks"]
    assert counts == {"chunk_0000": {"videos": 2, "samples": len(kept), "dropped_low_coverage": len(dropped),
                                     "frames_past_end": 0}}

    # a malformed answer becomes unknown attributes, never a crash
    out2 = str(tmp_path / "ds2")
    generate_dataset(_cfg(source, out2, sources=(f"{source}/chunk_0001",)), captioner_factory=ScriptedCaptioner)
    [row, _] = read_rows(out2)
    assert parse_prompt(row.prompt).count == "unknown" and row.prompt == "road with unknown unknown unknown lane markings"
    caption = json.loads(open(os.path.join(out2, "captions.jsonl")).readline())
    assert caption["raw_answer"] == ANSWERS["single_white_dashed"] and "malformed" in caption["parse_notes"][0]


def test_bad_sources_and_usage(source, tmp_path, capsys):
    out = str(tmp_path / "ds")
    (tmp_path / "bad_clip.mp4").write_bytes(b"not a video")
    result = generate_dataset(_cfg(source, out, sources=(str(tmp_path / "bad_clip.mp4"), str(tmp_path / "nowhere"),
                                                         f"{source}/chunk_0001")), captioner_factory=ScriptedCaptioner)
    failed = dict(result.failed)
    assert "not a readable video" in failed["bad_clip"] and "not found" in failed[str(tmp_path / "nowhere")]
    assert result.ok == ("synth_single_white_dashed_s0",) and result.exit_code == 1
    (tmp_path / "a_file").write_text("x")
    assert main(["dataset", "generate", "--source", source, "--output", str(tmp_path / "a_file"), "--profile", "tiny"]) == 2
    assert main(["dataset", "generate", "--source", source, "--output", out, "--frames", "3,-1"]) == 2
    assert main(["dataset", "generate", "--source", source, "--output", out, "--devices", "gpu"]) == 2
    err = capsys.readouterr().err
    assert "is a file, not a folder" in err and "frame numbers must be >= 0" in err and "'gpu'" in err
    # a model that cannot load stops the run with one line, before anything is written
    fresh = str(tmp_path / "fresh")
    assert main(["dataset", "generate", "--source", source, "--output", fresh, "--profile", "full", "--devices", "cpu",
                 "--sam2-checkpoint", str(tmp_path / "missing_sam2.pt")]) == 1
    err = capsys.readouterr().err
    assert "failed: cannot load SAM2 model" in err and "missing_sam2.pt" in err and not os.path.exists(fresh)


def test_gs_output_and_two_worker_processes(source, gcs_emulator, tmp_path):
    """Local chunks -> gs:// dataset, split over two CPU worker processes (the multi-GPU code path)."""
    from tests.conftest import BUCKET

    out = f"gs://{BUCKET}/datasets/{tmp_path.name}"
    result = generate_dataset(_cfg(source, out, devices="cpu,cpu"), captioner_factory=ScriptedCaptioner)
    assert len(result.ok) == 3 and result.exit_code == 0
    manifest = json.loads(storage.read_text(storage.join(out, "manifest.json")))
    workers = {item: record["details"]["worker"] for item, record in manifest["items"].items()}
    assert sorted(workers.values()) == ["1/2 cpu", "1/2 cpu", "2/2 cpu"]   # contiguous, near-equal shares
    pids = {record["details"]["pid"] for record in manifest["items"].values()}
    assert len(pids) == 2 and os.getpid() not in pids and manifest["dataset"]["devices"] == ["cpu", "cpu"]
    report = validate_dataset(out, require_all_valid=True)
    assert len(report.rows) == 8
    assert sum("double yellow solid" in r.prompt for r in report.rows) == 6
    assert storage.exists(storage.join(out, "images", "synth_single_white_dashed_s0_frame005.png"))


def test_image_mode_matches_sams_video_predictor_on_single_frames():
    """Image mode = the video predictor prompted on a one-frame clip (same seed, same weights): the
    same SAM2 steps, so the same masks; batching does not change them; every prompt strategy runs."""
    import torch

    from core.device import resolve_device
    from segmentation.config import SegmentConfig
    from segmentation.sam2_model import RoadImageSegmenter, load_image_segmenter, load_segmenter
    from synthetic.scenes import render_scene

    frames, _ = render_scene(SceneSpec(width=128, height=80, fps=10, seconds=0.4, seed=3,
                                       lanes=LaneSpec.parse("double yellow solid")))
    policy = resolve_device("cpu", "tiny")
    image = load_image_segmenter(SegmentConfig(profile="tiny"), policy, batch_size=3)
    video = load_segmenter(SegmentConfig(profile="tiny"), policy)
    for a, b in zip(image.model.parameters(), video.predictor.parameters(), strict=True):
        assert torch.equal(a, b)
    masks = image.segment(frames)
    assert masks.dtype == bool and masks.shape == (4, 80, 128) and 0.05 < masks.mean() < 0.95
    for t in range(len(frames)):
        np.testing.assert_array_equal(masks[t], video.segment(frames[t:t + 1])[0])
    one_by_one = RoadImageSegmenter(image.loaded, SegmentConfig(profile="tiny"), batch_size=1)
    np.testing.assert_array_equal(one_by_one.segment(frames), masks)
    for prompt in ("points9", "box"):
        other = RoadImageSegmenter(image.loaded, SegmentConfig(profile="tiny", prompt=prompt))
        np.testing.assert_array_equal(other.segment(frames[:1])[0], video_with(video, prompt).segment(frames[:1])[0])


def video_with(segmenter, prompt):
    from segmentation.config import SegmentConfig
    from segmentation.sam2_model import RoadSegmenter

    return RoadSegmenter(segmenter.loaded, SegmentConfig(profile="tiny", prompt=prompt))

"""`lanepaint demo` twice, each in a fresh process: every stage end to end, the run's table and HTML report,
and the same bytes both times (videos, masks, npz, PNG) and the same numbers (timings and paths aside)."""

from __future__ import annotations

import csv
import fnmatch
import hashlib
import json
import math
import os
import re
import shutil
import sys
from pathlib import Path

import pytest

from core import videoio
from orchestrator.cli import main
from orchestrator.run_table import COLUMN_NAMES, COLUMNS
from tests.fixtures import REPO_ROOT, processes

RUN = "demo_t"
pytestmark = pytest.mark.slow

# keys whose values depend on the clock, the machine's load or where the run was written
VOLATILE_KEYS = {"timings", "seconds", "finished_at", "started_at", "updated_at", "last_invocation", "command",
                 "memory", "ram_peak_mb", "ram_used_mb", "memory_ram_peak_mb", "memory_ram_used_mb",
                 "gpu_memory_used_gb", "gpu_memory_peak_gb", "inference_time_seconds", "load_seconds",
                 "original_inference_time_seconds", "pair_inference_time_seconds"}
VOLATILE_COLUMNS = {"segment_seconds", "edit_seconds", "video_generation_seconds", "vla_seconds"}


@pytest.fixture(scope="module")
def demos(tmp_path_factory):
    roots = []
    for name in ("a", "b"):
        root = tmp_path_factory.mktemp(f"demo_{name}") / "out"
        result = processes.run([sys.executable, "-m", "orchestrator.cli", "demo", "--output-root", str(root),
                                "--run-id", RUN], timeout=600, cwd=REPO_ROOT)
        assert result.returncode == 0, result.stderr[-3000:]
        roots.append((root, result.stdout))
    return roots


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_demo_runs_every_stage_end_to_end(demos):
    """`lanepaint demo`: a synthetic clip through stages 1 -> 2 -> 3 with the tiny profile, then the report."""
    root, out = demos[0]
    assert f"lanepaint demo {RUN}" in out and "failed" not in out.split("done in")[1].replace("0 failed", "")
    assert f"{root}/reports/{RUN}/report.html" in out
    files = _files(root)

    def count(pattern: str) -> int:
        return sum(1 for f in files if fnmatch.fnmatch(f, pattern))

    assert count(f"sam2/{RUN}/*/masks/00000.png") == 1
    assert count(f"preprocessed_data_vp/{RUN}/*/mask_root/*/all_masks.npz") == 1
    assert count(f"vp/{RUN}/*/*/*_vp_edit_sample0.mp4") == 2          # two instructions
    assert count(f"vp/{RUN}/*/*/*_vp_edit_sample0.json") == 2
    assert count(f"alpamayo/{RUN}/*/*/*_overlay.mp4") == 2
    assert count(f"alpamayo/{RUN}/*/*/*_comparison.mp4") == 2
    assert count(f"alpamayo/{RUN}/{RUN}_report.txt") == 1
    assert count(f"reports/{RUN}/results.*") == 2 and count(f"reports/{RUN}/report.html") == 1
    fingerprints = {}
    for stage in ("sam2", "vp", "alpamayo"):
        manifest = json.loads((root / stage / RUN / "manifest.json").read_text())
        assert manifest["profile"] == "tiny" and "profile_note" in manifest
        fingerprints |= {role: d.get("weights_sha256") for role, d in manifest["models"].items() if isinstance(d, dict)}
    for role in ("sam2", "video", "first_frame", "judge", "metrics", "trajectory_model"):    # which weights ran
        assert re.fullmatch(r"[0-9a-f]{64}", fingerprints[role] or ""), role
    # the input is the synthetic dataset's own front video: the whole 20 s clip at 30 fps
    (video,) = (root / "demo_inputs" / RUN).glob("*.camera_front_wide_120fov.mp4")
    info = videoio.probe(str(video))
    assert (info.fps, info.frame_count, info.width, info.height) == (30.0, 600, 320, 180)
    # stage 1 planned the moment (t0 6.4 s before the end), stage 3 evaluated there with the real architecture
    (record_file, *_) = root.glob(f"alpamayo/{RUN}/*/*/*_inference.json")
    record = json.loads(record_file.read_text())
    assert record["model"] == "alpamayo" and record["temporal_config"]["moment"]["t0_s"] == 13.5
    assert record["temporal_config"]["moment_source"] == "stage 1 plan"
    assert record["baseline"]["model"] == "constant-velocity"
    report = (root / "alpamayo" / RUN / f"{RUN}_report.txt").read_text()
    assert "plan moved (original vs edited plan, paired samples): ADE mean" in report
    assert "baseline constant-velocity: minADE" in report and "minADE (edited): average" in report
    assert "Holm-adjusted over 2 instruction(s)" in report
    assert "WARNING: n=1 is too small for the test: its smallest attainable p is 1.0000" in report
    # stage 2's per-instruction table fits the 61-character video ids of real clips
    lines = (root / "vp" / RUN / "lane_single_white_dashed" / "report.txt").read_text().splitlines()
    header = next(line for line in lines if line.startswith("video "))
    row = next(line for line in lines if line.startswith(record["video_id"]))
    assert row.index(" ok ") + 1 == header.index("status") and len(record["video_id"]) == 61


def _rows(root: Path) -> list[dict[str, str]]:
    with open(root / "reports" / RUN / "results.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_the_table_has_every_column_and_a_row_per_clip_and_instruction(demos):
    import pyarrow.parquet as pq

    root, _ = demos[0]
    rows = _rows(root)
    with open(root / "reports" / RUN / "results.csv", newline="") as f:
        assert tuple(next(csv.reader(f))) == COLUMN_NAMES
    assert sorted(r["instruction_folder"] for r in rows) == ["lane_double_yellow_solid", "lane_single_white_dashed"]
    parquet = pq.read_table(root / "reports" / RUN / "results.parquet")
    assert tuple(parquet.column_names) == COLUMN_NAMES and parquet.num_rows == 2
    assert parquet.schema.field("plan_ade_m").metadata[b"doc"].startswith(b"stage 3: how far the plan moved")
    assert str(parquet.schema.field("full_identical_frames").type) == "int64"
    docs = (Path(REPO_ROOT) / "docs" / "results.md").read_text()
    for column in COLUMNS:     # the docs list every column with its description
        assert f"| `{column.name}` | {column.kind} | {column.doc.replace('|', '/')} |" in docs, column.name


def test_a_row_holds_the_values_of_the_per_item_files(demos):
    root, _ = demos[0]
    row = next(r for r in _rows(root) if r["instruction_folder"] == "lane_single_white_dashed")
    video_id, folder = row["video_id"], row["instruction_folder"]
    item = root / "vp" / RUN / folder / video_id
    sidecar = json.loads((item / f"{video_id}_vp_edit_sample0.json").read_text())
    evaluation = json.loads((item / f"eval_{video_id}.json").read_text())
    stats = json.loads((root / "sam2" / RUN / video_id / f"{video_id}_stats.json").read_text())
    inference = json.loads(next((root / "alpamayo" / RUN / folder).glob("*/*_inference.json")).read_text())
    assert row["clip_id"] + "." + row["camera"] == video_id and row["edit_status"] == row["vla_status"] == "ok"
    assert row["judge_verdict"] == sidecar["verdict"] and int(row["judge_iterations"]) == sidecar["iterations"]
    assert float(row["compliance_fraction"]) == sidecar["compliance_fraction"]
    assert row["quality_label"] == evaluation["label"]["label"] == sidecar["quality_label"]
    assert row["quality_criteria"] == "psnr,ssim,lpips"
    for block in ("full", "masked", "background"):
        for key in ("psnr", "ssim", "mse", "mae"):
            assert float(row[f"{block}_{key}"]) == evaluation[block][key], f"{block}_{key}"
    assert int(row["full_identical_frames"]) == evaluation["full"]["identical_frames"]
    assert float(row["full_lpips"]) == evaluation["full"]["lpips"]
    assert float(row["road_coverage_mean"]) == stats["mean_coverage"] and float(row["t0_s"]) == 13.5
    assert float(row["min_ade_edited_m"]) == inference["min_ade_meters"]
    assert float(row["min_ade_original_m"]) == inference["original_min_ade_meters"]
    assert float(row["min_ade_delta_m"]) == pytest.approx(inference["min_ade_delta_meters"], abs=1e-12)
    assert float(row["plan_ade_m"]) == inference["plan_displacement"]["ade_meters"]
    assert int(row["seed_video"]) == sidecar["seeds"]["video"] and int(row["seed_vla"]) == inference["seed"]
    assert row["edit_video"] == sidecar["outputs"]["edit"] and os.path.exists(row["overlay_video"])
    assert row["vp_psnr"] == ""           # the lanepaint protocol: no VideoPainter block


def test_the_html_report_shows_the_run(demos):
    root, _ = demos[0]
    page = (root / "reports" / RUN / "report.html").read_text()
    for needle in ("Did the plan move? minADE change per instruction", "Edit quality against how far the plan moved",
                   "The judge", "Sample clips (2)", "p Holm (2 instr.)", "minADE change, edited - original (m)",
                   "plan moved, ADE (m)", "edit PSNR, full frame (dB)", "n=1 is too small", "tiny profile"):
        assert needle in page, needle
    assert page.count("<svg") >= 4 and page.count("data:image/jpeg;base64,") == 8   # 2 clips x 4 thumbnails
    assert not re.search(r"""(src|href)=['"]https?://""", page)          # nothing fetched from elsewhere
    links = re.findall(r"href='([^']+)'", page)
    assert links and all((root / "reports" / RUN / link).resolve().exists() for link in links), links


def test_the_html_report_opens_in_a_headless_browser(demos, tmp_path):
    browser = next((shutil.which(b) for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)),
                   None)
    if browser is None:
        pytest.skip("no headless browser installed")
    root, _ = demos[0]
    page = root / "reports" / RUN / "report.html"
    result = processes.run([browser, "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={tmp_path}",
                            "--dump-dom", page.as_uri()], timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Did the plan move?" in result.stdout and result.stdout.count("<svg") >= 4


def test_lanepaint_report_rebuilds_the_same_table(demos, tmp_path):
    root, _ = demos[0]
    copy = tmp_path / "out"
    shutil.copytree(root, copy)
    before = (copy / "reports" / RUN / "results.csv").read_text()     # the records name the files they wrote
    shutil.rmtree(copy / "reports")
    assert main(["report", str(copy / "vp" / RUN)]) == 0
    assert (copy / "reports" / RUN / "results.csv").read_text() == before
    assert (copy / "reports" / RUN / "report.html").exists()


def _normalised(value, root: str):
    if isinstance(value, dict):
        return {k: _normalised(v, root) for k, v in value.items() if k not in VOLATILE_KEYS}
    if isinstance(value, list):
        return [_normalised(v, root) for v in value]
    if isinstance(value, str):
        return value.replace(root, "<root>")
    return value


def test_two_runs_give_the_same_bytes_and_the_same_numbers(demos):
    (root_a, _), (root_b, _) = demos
    files = _files(root_a)
    assert files == _files(root_b)
    binary = [f for f in files if f.endswith((".mp4", ".png", ".npz", ".npy", ".parquet", ".zip", ".jpg"))]
    assert sum(f.endswith(".mp4") for f in binary) >= 10 and sum(f.endswith(".npz") for f in binary) >= 3
    differ = [f for f in binary if not f.endswith(".parquet") and
              hashlib.sha256((root_a / f).read_bytes()).digest() != hashlib.sha256((root_b / f).read_bytes()).digest()]
    assert differ == [], differ
    for name in (f for f in files if f.endswith(".json")):
        a = _normalised(json.loads((root_a / name).read_text()), str(root_a))
        b = _normalised(json.loads((root_b / name).read_text()), str(root_b))
        assert a == b, name
    rows_a, rows_b = _rows(root_a), _rows(root_b)
    for row_a, row_b in zip(rows_a, rows_b, strict=True):
        for column in COLUMN_NAMES:
            if column not in VOLATILE_COLUMNS:
                assert row_a[column].replace(str(root_a), "") == row_b[column].replace(str(root_b), ""), column
    psnr = float(rows_a[0]["background_psnr"])
    assert math.isfinite(psnr)


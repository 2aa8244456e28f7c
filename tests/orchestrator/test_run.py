"""The whole tiny pipeline through `lanepaint run` (the Flyte DAG in local mode): on gs:// (GCS
emulator), then reusing a segmentation run with --stages 23 and sharded stages, then stage 3 through
`flyte run --local workflow_master.py`. Tiny models, 49-frame 96x64 clips."""

import csv
import fnmatch
import io
import json
import os
import shutil
import sys
import uuid

import pytest

from core import storage
from core.layout import Layout
from orchestrator.cli import main
from synthetic.av_dataset import AVDatasetSpec, write_av_dataset
from tests.conftest import BUCKET
from tests.fixtures import REPO_ROOT, processes

ROOT = REPO_ROOT
INSTRUCTION = "lane double yellow solid"
FOLDER = "lane_double_yellow_solid"


@pytest.fixture(scope="module")
def av(tmp_path_factory):
    """Two synthetic PhysicalAI-AV clips (14 s, front camera 96x54 at 10 fps, covering the whole clip) and the
    dataset cache stage 3 reads."""
    root = tmp_path_factory.mktemp("av")
    spec = AVDatasetSpec(clips=2, clip_seconds=14.0, fps=10.0, width=96, height=54, lanes=("single white dashed",))
    return write_av_dataset(spec, str(root / "hf"), str(root / "inputs"))


@pytest.fixture(autouse=True)
def _no_flyte_leftovers(monkeypatch, tmp_path):
    """The Flyte SDK writes under HOME: keep it in tmp_path. Each local run's /tmp/flyte folder is removed."""
    import flyte

    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    names, real = [], flyte.with_runcontext

    def spy(*args, **kwargs):
        names.append(kwargs["name"])
        return real(*args, **kwargs)

    monkeypatch.setattr(flyte, "with_runcontext", spy)
    yield
    assert not [n for n in names if os.path.exists(os.path.join("/tmp/flyte/metadata", n))]
    assert not (tmp_path / "home" / ".flyte").exists()        # no local task cache written


def _args(av, *extra: str) -> list[str]:
    return ["run", "--profile", "tiny", "--edit-instructions", INSTRUCTION, "--segment-max-frames", "49",
            "--evaluate-model", "constant-velocity", "--evaluate-dataset-dir", av.cache_dir, *extra]


def _relative(root: str) -> list[str]:
    return [f[len(root.rstrip("/")) + 1:] for f in storage.walk_files(root)]


def _count(files: list[str], pattern: str) -> int:
    return sum(1 for f in files if fnmatch.fnmatch(f, pattern))


ARTEFACTS = {   # pattern -> files per clip (and instruction)
    "sam2/{r}/*/masks/00000.png": 1, "sam2/{r}/*/masks/00048.png": 1, "sam2/{r}/*/visualizations/00000.png": 1,
    "sam2/{r}/*/*_segmented.mp4": 1, "sam2/{r}/*/*_stats.json": 1,
    "preprocessed_data_vp/{r}/*/meta.csv": 1, "preprocessed_data_vp/{r}/*/raw_videos/*/*.0.mp4": 1,
    "preprocessed_data_vp/{r}/*/mask_root/*/all_masks.npz": 1,
    "vp/{r}/" + FOLDER + "/*/*_vp_edit_sample0.mp4": 1, "vp/{r}/" + FOLDER + "/*/*_vp_edit_sample0_generated.mp4": 1,
    "vp/{r}/" + FOLDER + "/*/*_vp_edit_sample0.json": 1, "vp/{r}/" + FOLDER + "/*/eval_*.txt": 1,
    "vp/{r}/" + FOLDER + "/*/eval_*.json": 1, "vp/{r}/" + FOLDER + "/*/*_caption_refine/summary.json": 1,
    "alpamayo/{r}/" + FOLDER + "/*/*_inference.json": 1, "alpamayo/{r}/" + FOLDER + "/*/*_vis_data.npz": 1,
    "alpamayo/{r}/" + FOLDER + "/*/*_overlay.mp4": 1, "alpamayo/{r}/" + FOLDER + "/*/*_comparison.mp4": 1,
}
RUN_FILES = ("sam2/{r}/manifest.json", "preprocessed_data_vp/{r}", "vp/{r}/manifest.json",
             "vp/{r}/" + FOLDER + "/report.txt", "vp/{r}/" + FOLDER + "/report.json", "alpamayo/{r}/manifest.json",
             "alpamayo/{r}/{r}_report.txt", "alpamayo/{r}/inference_summary.json", "alpamayo/{r}/{r}_minade_delta.png")


def _check_run(root: str, run: str, clips: int, stages: str = "123") -> list[str]:
    files = _relative(root)
    folders = {"1": ("sam2/", "preprocessed_data_vp/"), "2": ("vp/",), "3": ("alpamayo/",)}
    wanted = tuple(p for s in stages for p in folders[s])
    for pattern, n in ARTEFACTS.items():
        if pattern.startswith(wanted):
            assert _count(files, pattern.format(r=run)) == n * clips, pattern
    for name in RUN_FILES:
        if name.startswith(wanted) and not name.startswith("preprocessed"):
            assert name.format(r=run) in files, name
    return files


@pytest.mark.slow
def test_whole_pipeline_on_gs(gcs_emulator, av, capsys):
    root = f"gs://{BUCKET}/{uuid.uuid4().hex[:8]}/out"
    code = main(_args(av, "--stages", "123", "--run-id", "g1", "--input", av.inputs[0], "--output-root", root))
    out = capsys.readouterr().out
    assert code == 0, out
    assert "run g1: stages 123" in out and "3 evaluate" in out and " 0 failed in 1 shard(s)" in out
    _check_run(root, "g1", clips=1)
    layout = Layout(root)
    for stage in ("sam2", "vp", "alpamayo"):
        manifest = json.loads(storage.read_text(layout.path(stage, "g1", "manifest.json")))
        assert manifest["profile"] == "tiny" and manifest["counts"] == {"ok": 1} and manifest["models"]
    assert json.loads(storage.read_text(layout.alpamayo_summary("g1")))["counts"]["succeeded"] == 1
    # the run ends with its table and report, on gs:// too; the report links to the objects in the console
    assert "results (one row per clip x instruction, and the report to open):" in out
    assert f"html     {layout.report_html('g1')}" in out
    rows = storage.read_text(layout.results_table("g1", "csv")).splitlines()
    assert len(rows) == 2 and storage.exists(layout.results_table("g1", "parquet"))
    page = storage.read_text(layout.report_html("g1"))
    assert f"https://storage.cloud.google.com/{BUCKET}/" in page and "data:image/jpeg;base64," in page


@pytest.fixture(scope="module")
def segmented(av, tmp_path_factory):
    """A local segmentation run s1 of both clips, two shards (concurrency 2)."""
    root = str(tmp_path_factory.mktemp("local") / "out")
    code = main(_args(av, "--stages", "1", "--run-id", "s1", "--input", *av.inputs, "--output-root", root,
                      "--concurrency", "2"))
    assert code == 0
    return root


@pytest.mark.slow
def test_stage_one_shards_merge_into_one_manifest(segmented, av):
    _check_run(segmented, "s1", clips=2, stages="1")
    manifest = json.loads(storage.read_text(Layout(segmented).path("sam2", "s1", "manifest.json")))
    assert manifest["counts"] == {"ok": 2} and sorted(manifest["items"]) == sorted(
        os.path.basename(v)[:-4] for v in av.inputs)
    assert manifest["config"]["inputs"] == av.inputs and manifest["config"]["max_frames"] == 49


@pytest.mark.slow
def test_stages_23_reuse_the_segmentation_run_in_two_shards_each(segmented, av, capsys):
    code = main(_args(av, "--stages", "23", "--run-id", "e1", "--data-run-id", "s1", "--output-root", segmented,
                      "--concurrency", "2", "--edit-seed", "7"))
    out = capsys.readouterr().out
    assert code == 0, out
    assert "2 ok, 0 skipped (already done), 0 failed in 2 shard(s)" in out
    files = _check_run(segmented, "e1", clips=2, stages="23")
    assert not any(f.startswith(("sam2/e1", "preprocessed_data_vp/e1")) for f in files)    # stage 1 reused
    layout = Layout(segmented)
    report = json.loads(storage.read_text(layout.path("vp", "e1", FOLDER, "report.json")))
    assert [row["status"] for row in report["videos"]] == ["ok", "ok"]            # both shards' videos
    sidecar = json.loads(storage.read_text(next(layout.path(f) for f in files if f.endswith("sample0.json"))))
    assert sidecar["seeds"]["video"] == 7                                         # the option reached stage 2
    summary = json.loads(storage.read_text(layout.alpamayo_summary("e1")))
    assert summary["counts"]["succeeded"] == 2 and summary["counts"]["ok_this_run"] == 2
    assert summary["video_data"] == layout.vp_run("e1")
    manifest = json.loads(storage.read_text(layout.path("vp", "e1", "manifest.json")))
    assert manifest["counts"] == {"ok": 2} and manifest["config"]["data_run_id"] == "s1"
    rows = list(csv.DictReader(io.StringIO(storage.read_text(layout.results_table("e1", "csv")))))
    assert len(rows) == 2 and all(r["road_coverage_mean"] for r in rows)     # stage 1's stats of run s1
    assert all(r["seed_video"] == "7" and r["min_ade_edited_m"] for r in rows)


@pytest.mark.slow
def test_flyte_cli_runs_the_dag_locally(segmented, av, tmp_path):
    """`flyte run --local workflow_master.py alpamayo_only ...`: the same DAG through Flyte's own CLI."""
    video_data = Layout(segmented).vp_run("e1")
    if not storage.exists(video_data):
        pytest.skip("needs the stage-2 output of test_stages_23_reuse_the_segmentation_run_in_two_shards_each")
    env = dict(os.environ, HOME=str(tmp_path), TMPDIR=str(tmp_path))
    flyte = os.path.join(os.path.dirname(sys.executable), "flyte")
    clip = os.path.basename(av.inputs[0])[:-4]
    name = f"lanepaint-cli-{uuid.uuid4().hex[:8]}"
    try:
        out = processes.run([flyte, "run", "--local", "--name", name, "workflow_master.py", "alpamayo_only",
                              "--run_id", "c1",
                              "--video_data", video_data, "--output_root", segmented, "--profile", "tiny",
                              "--evaluate_model", "constant-velocity", "--evaluate_dataset_dir", av.cache_dir,
                              "--evaluate_video_name", clip],
                             cwd=ROOT, env=env, timeout=300)
    finally:   # flyte's CLI keeps its local run metadata under /tmp/flyte/metadata/<run name>
        shutil.rmtree(os.path.join("/tmp/flyte/metadata", name), ignore_errors=True)
        shutil.rmtree(os.path.join("/tmp/flyte/raw_data", name), ignore_errors=True)
    assert out.returncode == 0, (out.stdout + out.stderr)[-3000:]
    assert storage.exists(Layout(segmented).alpamayo_report("c1"))
    assert _relative(segmented).count(f"alpamayo/c1/{FOLDER}/{clip}/{clip}_inference.json") == 1
    assert _count(_relative(segmented), "alpamayo/c1/" + FOLDER + "/*/*_inference.json") == 1

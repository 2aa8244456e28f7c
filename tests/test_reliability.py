"""A run that is stopped: SIGTERM writes the manifest and exits 143; kill -9 leaves nothing a rerun trips
on; both resume without recomputing finished items. Each run is a real ``lanepaint segment`` process (tiny
profile) in its own process group with a hard timeout."""

from __future__ import annotations

import glob
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from synthetic.scenes import SceneSpec, write_clip
from tests.fixtures import REPO_ROOT, processes

pytest.importorskip("torch")
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    folder = tmp_path_factory.mktemp("clips")
    return [write_clip(SceneSpec(width=96, height=64, fps=10, seconds=2.0, seed=k), str(folder),
                       name=f"clip_{k:04d}").video_path for k in range(4)]


def _start(clips, root, run_id="r1"):
    cmd = [sys.executable, "-m", "orchestrator.cli", "segment", "--profile", "tiny", "--run-id", run_id,
           "--output-root", root, "--input", *clips]
    return processes.start(cmd, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_records(root, count, proc, timeout=120.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(glob.glob(os.path.join(root, "sam2", "r1", "_items", "*.json"))) >= count:
            return
        if proc.poll() is not None:
            raise AssertionError(f"the run ended before {count} item(s) finished: {proc.communicate()}")
        time.sleep(0.05)
    raise AssertionError(f"no {count} finished item(s) after {timeout} s")


def _rerun(clips, root):
    out = processes.run([sys.executable, "-m", "orchestrator.cli", "segment", "--profile", "tiny", "--run-id", "r1",
                         "--output-root", root, "--input", *clips], cwd=REPO_ROOT, timeout=240)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def test_sigterm_writes_the_manifest_says_so_and_the_rerun_resumes(clips, tmp_path):
    """Defect: SIGTERM exited 143 with no message and no manifest."""
    root = str(tmp_path / "out")
    proc = _start(clips, root)
    try:
        _wait_for_records(root, 1, proc)
        os.killpg(proc.pid, signal.SIGTERM)
        out, err = proc.communicate(timeout=120)
    finally:
        processes.stop(proc)
    assert proc.returncode == 143, err[-2000:]
    assert "interrupted by SIGTERM: the manifest records what finished; rerun to resume" in out
    manifest = json.loads(open(os.path.join(root, "sam2", "r1", "manifest.json")).read())
    statuses = {k: v["status"] for k, v in manifest["items"].items()}
    assert list(statuses.values()).count("ok") >= 1
    stopped = [v for v in manifest["items"].values() if v["status"] == "failed"]
    assert len(stopped) <= 1 and all("interrupted by SIGTERM" in v["error"] for v in stopped)
    done_before = sorted(k for k, v in statuses.items() if v == "ok")
    rerun = _rerun(clips, root)
    assert f"{len(done_before)} skipped (already done)" in rerun             # nothing finished is recomputed
    final = json.loads(open(os.path.join(root, "sam2", "r1", "manifest.json")).read())
    assert final["counts"] == {"ok": 4}


def test_kill_9_leaves_nothing_a_rerun_trips_on(clips, tmp_path):
    root = str(tmp_path / "out")
    proc = _start(clips, root)
    try:
        _wait_for_records(root, 1, proc)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        processes.stop(proc)
    finished = len(glob.glob(os.path.join(root, "sam2", "r1", "_items", "*.json")))
    rerun = _rerun(clips, root)
    assert f"{finished} skipped (already done)" in rerun or f"{finished - 1} skipped" in rerun
    final = json.loads(open(os.path.join(root, "sam2", "r1", "manifest.json")).read())
    assert final["counts"] == {"ok": 4}
    assert not [f for d, _, fs in os.walk(root) for f in fs if "lanepaint-tmp-" in f]   # no half-written file
    assert not os.listdir(os.path.join(root, "sam2", "r1", "_claims"))                # claims released


def test_a_stage_run_through_injected_gcs_faults_loses_nothing(gcs_emulator, tmp_path, monkeypatch):
    """A proxy in front of the GCS emulator answers 503, 500, 429, resets or delays 15% of requests; stage 1
    reads its input from gs:// and writes every output there, and every object is intact."""
    import uuid

    import numpy as np

    from core import storage
    from core.layout import Layout
    from core.vp_data import load_masks, read_vp_clip
    from orchestrator.cli import main
    from tests.conftest import BUCKET
    from tests.fixtures.fault_proxy import FaultProxy, serve

    clip = write_clip(SceneSpec(width=96, height=64, fps=10, seconds=1.2, seed=4), str(tmp_path), name="clip_0001")
    prefix = f"gs://{BUCKET}/faults-{uuid.uuid4().hex[:8]}"
    storage.put_file(clip.video_path, f"{prefix}/in/clip_0001.mp4")
    with serve(FaultProxy(gcs_emulator.host, rate=0.15, seed=3)) as proxy:
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", proxy.endpoint)
        storage.reset_filesystems()
        try:
            code = main(["segment", "--profile", "tiny", "--run-id", "f1", "--output-root", f"{prefix}/out",
                         "--input", f"{prefix}/in/clip_0001.mp4", "--cache-dir", str(tmp_path / "cache")])
        finally:
            monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_emulator.host)
            storage.reset_filesystems()
    injected = sum(v for k, v in proxy.counts.items() if k != "requests")
    assert code == 0 and injected >= 5, proxy.counts
    layout = Layout(f"{prefix}/out")
    meta = read_vp_clip(layout, "f1", "clip_0001")                     # the hand-off reads back whole
    masks = load_masks(meta)
    assert masks.shape == (meta.frames, 64, 96) and masks.dtype == np.bool_
    pngs = [u for u in storage.ls(layout.sam2_masks_dir("f1", "clip_0001")) if u.endswith(".png")]
    assert len(pngs) == meta.frames
    manifest = json.loads(storage.read_text(storage.join(layout.sam2_run("f1"), "manifest.json")))
    assert manifest["counts"] == {"ok": 1}

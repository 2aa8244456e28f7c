"""`lanepaint fetch-dataset` against a hub stand-in on loopback (tests/fixtures/fake_hub.py) serving a synthetic
PhysicalAI-AV repository (two chunks), and stage 3's streaming mode (HF_HUB_OFFLINE=0) against the same hub.
Each command runs in its own process (huggingface_hub reads HF_HUB_OFFLINE and HF_ENDPOINT at import), with a
hard timeout."""

import json
import os
import subprocess
import sys

import pytest

from core.driving_dataset import FRONT_CAMERA, REPO_FOLDER, REPO_ID
from synthetic.av_dataset import AVDatasetSpec, write_av_dataset
from tests.fixtures import REPO_ROOT, processes
from tests.fixtures.fake_hub import FakeHub, etag, serve

pytest.importorskip("physical_ai_av")

TOKEN = "hf_test_token"
CAMERAS = (FRONT_CAMERA, "camera_front_tele_30fov")


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    """Three clips in two chunks (2 + 1), two cameras; the repository's files are the snapshot folder."""
    root = tmp_path_factory.mktemp("hub")
    spec = AVDatasetSpec(clips=3, cameras=CAMERAS, clip_seconds=9.0, fps=10.0, width=64, height=36,
                         clips_per_chunk=2)
    return write_av_dataset(spec, str(root / "source_cache"), str(root / "inputs"))


def _env(tmp_path, token: str | None = TOKEN, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "PAI_", "LANEPAINT_"))}
    env.update(HF_HOME=str(tmp_path / "hf_home"), PYTHONPATH=REPO_ROOT, **extra)
    if token:
        env["HF_TOKEN"] = token
    return env


def _fetch(hub, tmp_path, *args: str, token: str | None = TOKEN) -> subprocess.CompletedProcess:
    return processes.run([sys.executable, "-m", "orchestrator.cli", "fetch-dataset", "--endpoint", hub.endpoint,
                           *args], cwd=REPO_ROOT, env=_env(tmp_path, token),
                          timeout=120)


def _archives(hub) -> list[tuple[str, str, str]]:
    return [r for r in hub.requests if r[0] == "GET" and r[1].endswith(".zip")]


def test_dry_run_lists_the_archives_and_bytes_and_downloads_nothing(repo, tmp_path):
    clip = repo.clips[2].clip_id                     # alone in chunk 1
    with serve(FakeHub(repo.snapshot_dir, REPO_ID, repo.revision, token=TOKEN)) as hub:
        out = _fetch(hub, tmp_path, "--clip", clip, "--cameras", FRONT_CAMERA, "--dataset-dir",
                     str(tmp_path / "pai"), "--dry-run")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == f"PhysicalAI-AV revision {repo.revision} -> {tmp_path / 'pai'}"
    wanted = [f"camera/{FRONT_CAMERA}/{FRONT_CAMERA}.chunk_0001.zip", "labels/egomotion/egomotion.chunk_0001.zip"]
    listed = [ln.split()[0] for ln in lines[1:3]]
    assert listed == wanted and all("to download" in ln and clip in ln for ln in lines[1:3])
    total = sum(os.path.getsize(os.path.join(repo.snapshot_dir, p)) for p in wanted)
    assert "2 file(s)" in lines[3] and "2 to download" in lines[3] and f"{total:,} bytes" in lines[3]
    assert not (tmp_path / "pai").exists() and not _archives(hub)


def test_fetch_resumes_a_cut_download_and_stage_3_reads_the_clip_offline(repo, tmp_path):
    clip = repo.clips[0]
    target = tmp_path / "pai"
    front = f"camera/{FRONT_CAMERA}/{FRONT_CAMERA}.chunk_0000.zip"
    source = os.path.join(repo.snapshot_dir, front)
    # a download cut by a killed job: huggingface_hub's partial blob, the first 3000 bytes
    blobs = target / REPO_FOLDER / "blobs"
    blobs.mkdir(parents=True)
    with open(source, "rb") as fh:
        (blobs / f"{etag(source)}.incomplete").write_bytes(fh.read(3000))
    with serve(FakeHub(repo.snapshot_dir, REPO_ID, repo.revision, token=TOKEN)) as hub:
        first = _fetch(hub, tmp_path, "--clip", f"{clip.clip_id}.{FRONT_CAMERA}", "--cameras",
                       "camera_front_tele_30fov", "--dataset-dir", str(target))
        assert first.returncode == 0, first.stdout + first.stderr
        assert [r[2] for r in _archives(hub) if r[1].endswith(front)] == ["bytes=3000-"]    # resumed, not restarted
        assert "3 file(s)" in first.stdout and "3 downloaded" in first.stdout
        assert f"--dataset-revision {repo.revision}" in first.stdout
        fetched = target / REPO_FOLDER / "snapshots" / repo.revision / front
        assert fetched.read_bytes() == open(source, "rb").read()
        before = len(_archives(hub))
        again = _fetch(hub, tmp_path, "--clip", clip.clip_id, "--cameras", f"{FRONT_CAMERA},camera_front_tele_30fov",
                       "--dataset-dir", str(target))
        assert again.returncode == 0 and "0 downloaded" in again.stdout and "3 already cached" in again.stdout
        assert len(_archives(hub)) == before     # nothing fetched twice
    assert (target / REPO_FOLDER / "refs" / "main").read_text() == repo.revision
    # stage 3 reads the clip from the fetched cache, offline, byte for byte the hub's archives
    script = ("import json, numpy as np\nfrom vla.driving_data import DrivingData\n"
              f"data = DrivingData({str(target)!r})\n"
              f"s = data.load({clip.clip_id!r}, {FRONT_CAMERA!r}, 2_000_000, ({FRONT_CAMERA!r},), np.array([0]))\n"
              "print(json.dumps({'frames': list(s.frames.shape), 'revision': data.revision}))")
    out = processes.run([sys.executable, "-c", script], cwd=REPO_ROOT, env=_env(tmp_path, token=None), timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout.splitlines()[-1]) == {"frames": [1, 1, 36, 64, 3], "revision": repo.revision}


def test_gated_access_and_unknown_clips_are_one_line_each(repo, tmp_path):
    with serve(FakeHub(repo.snapshot_dir, REPO_ID, repo.revision, token=TOKEN)) as hub:
        denied = _fetch(hub, tmp_path, "--clip", repo.clips[0].clip_id, "--dataset-dir", str(tmp_path / "a"),
                        token=None)
        assert denied.returncode == 2
        assert denied.stderr.strip().endswith("is gated; accept its terms on the hub and set HF_TOKEN to a read token")
        assert len(denied.stderr.strip().splitlines()) == 1
        mixed = _fetch(hub, tmp_path, "--clip", "no-such-clip", repo.clips[1].clip_id, "--cameras", FRONT_CAMERA,
                       "--dataset-dir", str(tmp_path / "b"))
    assert mixed.returncode == 1
    assert "FAILED no-such-clip: not in the dataset at this revision" in mixed.stdout
    assert "2 file(s)" in mixed.stdout and "2 downloaded" in mixed.stdout


def test_stage_3_streams_a_clip_from_the_hub_when_offline_mode_is_off(repo, tmp_path):
    """HF_HUB_OFFLINE=0 and --no-dataset-offline: only the metadata is cached; the clip's archives are read
    through the hub (range requests), not downloaded."""
    target = tmp_path / "pai"
    with serve(FakeHub(repo.snapshot_dir, REPO_ID, repo.revision, token=TOKEN)) as hub:
        listed = _fetch(hub, tmp_path, "--clip", "nothing-needed", "--dataset-dir", str(target))
        assert listed.returncode == 1 and "not in the dataset" in listed.stdout       # metadata now cached
        clip = repo.clips[1]
        script = ("import json, numpy as np\nfrom vla.driving_data import DrivingData\n"
                  f"data = DrivingData({str(target)!r}, revision={repo.revision!r}, offline=False)\n"
                  f"s = data.load({clip.clip_id!r}, {FRONT_CAMERA!r}, 2_000_000, ({FRONT_CAMERA!r},), "
                  "np.array([100_000, 0]))\n"
                  "print(json.dumps({'frames': list(s.frames.shape), 'stamps': s.frame_timestamps_us.tolist()}))")
        out = processes.run([sys.executable, "-c", script], cwd=REPO_ROOT,
                             env=_env(tmp_path, HF_ENDPOINT=hub.endpoint, HF_HUB_OFFLINE="0"), timeout=120)
        assert out.returncode == 0, out.stderr[-3000:]
        assert json.loads(out.stdout.splitlines()[-1]) == {"frames": [1, 2, 36, 64, 3],
                                                           "stamps": [[2_100_000, 2_200_000]]}
        ranged = [r for r in hub.requests if r[1].endswith(".chunk_0000.zip") and r[2]]
        assert ranged                                                  # streamed by range requests
    assert not list((target / REPO_FOLDER / "snapshots" / repo.revision).rglob("*.zip"))   # nothing downloaded

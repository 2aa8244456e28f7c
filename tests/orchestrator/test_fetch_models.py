"""`lanepaint fetch-models` against the hub stand-in (tests/fixtures/fake_hub.py) serving model repositories:
the catalog of a full config, a dry run, a download pinned in the cache's lock, what loaders then read, and
one-line failures. Each command runs in its own process (huggingface_hub reads its environment at import)."""

import json
import os
import sys

import pytest

from core.config import build_config
from generation.config import EditConfig
from orchestrator.model_catalog import checkpoints
from segmentation.config import SegmentConfig
from tests.fixtures import REPO_ROOT, processes
from tests.fixtures.fake_hub import FakeHub, serve
from vla.config import EvaluateConfig

pytest.importorskip("huggingface_hub")

SAM2 = "facebook/sam2.1-hiera-large"
BACKBONE = "Qwen/Qwen3-VL-8B-Instruct"
COMMITS = {SAM2: "a" * 40, BACKBONE: "b" * 40}


def test_the_catalog_of_the_default_full_config():
    found = checkpoints("123", build_config(SegmentConfig, {"profile": "full"}),
                        build_config(EditConfig, {"profile": "full", "data_run_id": "x"}),
                        build_config(EvaluateConfig, {"profile": "full", "video_data": "x"}))
    repos = [c.repo_id for c in found]
    assert repos == [SAM2, "THUDM/CogVideoX-5b-I2V", "TencentARC/VideoPainter", "black-forest-labs/FLUX.1-Fill-dev",
                     "Qwen/Qwen2.5-VL-7B-Instruct", "openai/clip-vit-large-patch14", "openai/clip-vit-base-patch32",
                     "nvidia/Alpamayo-R1-10B", BACKBONE, "Qwen/Qwen3-VL-2B-Instruct"]
    flux = next(c for c in found if c.repo_id.endswith("FLUX.1-Fill-dev"))
    assert flux.wants("transformer/diffusion_pytorch_model-00001-of-00003.safetensors")
    assert not flux.wants("flux1-fill-dev.safetensors")            # the single-file copy is not read
    branch = next(c for c in found if c.repo_id == "TencentARC/VideoPainter")
    assert branch.wants("checkpoints/branch/config.json") and not branch.wants("checkpoints/other/x.bin")
    # a local checkpoint instead of a hub id is not fetched; stage choice and switches count
    local = build_config(SegmentConfig, {"profile": "full", "checkpoint": "/models/sam2.pt"})
    assert checkpoints("1", local) == []
    no_judge = build_config(EditConfig, {"profile": "full", "data_run_id": "x", "judge": False, "metrics": False})
    assert [c.role for c in checkpoints("2", edit=no_judge)] == [
        "video: CogVideoX-5B I2V", "video: VideoPainter branch", "first frame: FluxFill"]


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    hubs = []
    for repo, files in ((SAM2, {"sam2.1_hiera_large.pt": 3000, "sam2.1_hiera_l.yaml": 200, "README.md": 50}),
                        (BACKBONE, {"config.json": 120, "model-00001-of-00004.safetensors": 5000})):
        folder = root / repo.replace("/", "__")
        folder.mkdir()
        for name, size in files.items():
            (folder / name).write_bytes(bytes(range(256)) * (size // 256) + b"x" * (size % 256))
        hubs.append(FakeHub(str(folder), repo, COMMITS[repo], repo_type="model"))
    with serve(*hubs) as first:
        yield first


def _fetch(tmp_path, hub, *args):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "LANEPAINT_"))}
    env.update(HF_HOME=str(tmp_path / "hf_home"), HF_ENDPOINT=hub.endpoint, PYTHONPATH=REPO_ROOT)
    return processes.run([sys.executable, "-m", "orchestrator.cli", "fetch-models", "--cache-dir",
                          str(tmp_path / "cache"), *args], env=env, timeout=120, cwd=REPO_ROOT)


def test_dry_run_lists_commits_files_and_sizes_and_downloads_nothing(tmp_path, hub):
    out = _fetch(tmp_path, hub, "--stages", "1", "--dry-run")
    assert out.returncode == 0, out.stderr[-2000:]
    line = next(x for x in out.stdout.splitlines() if SAM2 in x)
    assert f"@ {'a' * 12}" in line and "3 files" in line and "3 file(s) to download" in line
    assert "1 checkpoint(s)" in out.stdout
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").rglob("*.pt"))


def test_download_pins_the_commit_and_loaders_read_it(tmp_path, hub):
    out = _fetch(tmp_path, hub, "--stages", "13")
    # the hub serves SAM2 and the backbone only: Alpamayo and its processor fail, one line each, and the
    # checkpoints that arrived are pinned all the same
    assert out.returncode == 1, out.stderr[-2000:]
    assert "FAILED nvidia/Alpamayo-R1-10B: not found at this endpoint" in out.stdout
    assert "FAILED Qwen/Qwen3-VL-2B-Instruct: not found at this endpoint" in out.stdout
    cache = tmp_path / "cache"
    lock = json.loads((cache / "lanepaint-models.lock.json").read_text())["repos"]
    assert lock[SAM2]["revision"] == COMMITS[SAM2] and lock[SAM2]["files"] == 3
    assert lock[BACKBONE] == {"revision": COMMITS[BACKBONE], "requested": "main", "files": 1, "bytes": 120}
    snapshot = cache / "models--facebook--sam2.1-hiera-large" / "snapshots" / COMMITS[SAM2]
    assert (snapshot / "sam2.1_hiera_large.pt").stat().st_size == 3000
    assert not any(cache.rglob("model-00001-of-00004.safetensors"))    # the backbone's config only
    from core.model_lock import pinned_revision

    assert pinned_revision(SAM2, str(cache)) == COMMITS[SAM2] and pinned_revision("org/other", str(cache)) is None
    again = _fetch(tmp_path, hub, "--stages", "1", "--dry-run")
    assert "cached" in next(x for x in again.stdout.splitlines() if SAM2 in x)


def test_an_unknown_revision_fails_that_checkpoint_in_one_line(tmp_path, hub):
    out = _fetch(tmp_path, hub, "--stages", "1", "--revision", f"{SAM2}={'c' * 40}")
    assert out.returncode == 1
    assert f"FAILED {SAM2}: revision not found" in out.stdout


@pytest.mark.parametrize("args, message", [(["--stages", "4"], "--stages '4'"),
                                           (["--revision", "nonsense"], "--revision 'nonsense'")])
def test_bad_usage_is_exit_2(tmp_path, hub, args, message):
    out = _fetch(tmp_path, hub, *args)
    assert out.returncode == 2 and message in out.stderr


def test_a_loader_asks_for_the_pinned_commit(tmp_path, monkeypatch):
    """The CLIP loader (every loader does the same) passes the lock's commit to from_pretrained."""
    import transformers

    from core.device import resolve_device
    from core.model_lock import write_lock
    from generation.quality.clip_model import load_clip

    write_lock({"openai/clip-vit-base-patch32": {"revision": "d" * 40}}, str(tmp_path))
    seen = []

    class Stop(Exception):
        pass

    def fake(name, **kwargs):
        seen.append((name, kwargs.get("revision")))
        raise Stop

    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", fake)
    with pytest.raises(Stop):
        load_clip("openai/clip-vit-base-patch32", "full", resolve_device("cpu", "full"), str(tmp_path))
    assert seen == [("openai/clip-vit-base-patch32", "d" * 40)]

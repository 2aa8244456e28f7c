"""What the manifests record about the weights: a hash of tiny models, the hub commit of full ones."""

import os

import pytest
import torch

from core.model_fingerprint import hub_commit, modules_of, snapshot_commit, weights_record, weights_sha256

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def _net(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3))


def test_the_hash_follows_the_weights_not_the_object():
    assert weights_sha256({"m": _net(0)}) == weights_sha256({"m": _net(0)})
    assert weights_sha256({"m": _net(0)}) != weights_sha256({"m": _net(1)})
    changed = _net(0)
    with torch.no_grad():
        changed[0].bias[0] += 1e-6
    assert weights_sha256({"m": changed}) != weights_sha256({"m": _net(0)})
    changed = _net(0)
    changed[1].num_batches_tracked += 1                         # buffers count too (a 0-d one here)
    assert weights_sha256({"m": changed}) != weights_sha256({"m": _net(0)})


def test_wrappers_and_pipelines_are_searched_for_their_modules():
    class Pipeline:
        def __init__(self):
            self.components = {"transformer": _net(0), "scheduler": object(), "vae": _net(1)}

    class Wrapper:
        def __init__(self):
            self.pipe = Pipeline()

    found = modules_of(Wrapper())
    assert sorted(found) == ["pipe.transformer", "pipe.vae"]
    record = weights_record("tiny", [Wrapper()])
    assert len(record["weights_sha256"]) == 64 and record == weights_record("tiny", [Wrapper()])
    assert weights_record("tiny", [None]) == {"weights_sha256": None}


def test_full_weights_are_identified_by_the_commit_in_the_hub_cache(tmp_path):
    snapshot = tmp_path / "models--org--model" / "snapshots" / COMMIT
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}")
    refs = tmp_path / "models--org--model" / "refs"
    refs.mkdir()
    (refs / "main").write_text(COMMIT)
    assert snapshot_commit(os.path.join(str(snapshot), "config.json")) == COMMIT
    assert snapshot_commit("/models/sam2.pt") is None
    assert hub_commit("org/model", cache_dir=str(tmp_path)) == COMMIT
    record = weights_record("full", [], ["org/model", "org/absent", "/local/folder"], cache_dir=str(tmp_path))
    assert record["revisions"]["org/model"] == COMMIT
    # fetch-models downloads at a commit and writes no refs/main: the lock's pin finds the snapshot
    (refs / "main").unlink()
    from core.model_lock import write_lock

    write_lock({"org/model": {"revision": COMMIT}}, str(tmp_path))
    assert weights_record("full", [], ["org/model"], cache_dir=str(tmp_path))["revisions"]["org/model"] == COMMIT
    assert record["revisions"]["org/absent"].startswith("unknown")
    assert record["revisions"]["/local/folder"].startswith("unknown")


@pytest.mark.parametrize("bad", ["", "noslash", "./rel/path"])
def test_not_a_hub_id_has_no_commit(bad, tmp_path):
    assert hub_commit(bad, cache_dir=str(tmp_path)) is None

"""Item claims (core/claims.py): one item, one invocation at a time, on local, memory:// and gs:// roots."""

import json
import os
import subprocess
import sys
import time

import pytest

from core import storage
from core.claims import ClaimStore
from core.runner import CLAIMED, OK, ItemRunner


def test_a_second_invocation_leaves_a_claimed_item_to_its_holder(storage_root):
    root = storage.join(storage_root, "run")
    first, second = ClaimStore(root), ClaimStore(root)
    claim = first.acquire("clip_a")
    assert not isinstance(claim, str)
    held = second.acquire("clip_a")
    assert isinstance(held, str) and held.startswith("claimed by another run (") and f"pid {os.getpid()}" in held
    claim.release()
    again = second.acquire("clip_a")                  # released: free again
    assert not isinstance(again, str)
    again.release()
    assert not storage.exists(first.uri("clip_a"))


def test_exclusive_create_has_one_winner(storage_root):
    uri = storage.join(storage_root, "x", "claim.json")
    assert storage.create_exclusive(uri, b"one") is True
    assert storage.create_exclusive(uri, b"two") is False
    assert storage.read_bytes(uri) == b"one"


def test_a_stale_claim_is_taken_over(tmp_path):
    root = str(tmp_path / "run")
    store = ClaimStore(root, ttl_s=60)
    # a holder on this host whose process is gone (kill -9): taken over at once
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    storage.write_text(store.uri("a"), json.dumps({"item_id": "a", "host": store.host, "pid": dead.pid,
                                                  "started_at": time.time(), "heartbeat_at": time.time()}))
    claim = store.acquire("a")
    assert not isinstance(claim, str)
    claim.release()
    # a holder elsewhere that stopped beating
    storage.write_text(store.uri("b"), json.dumps({"item_id": "b", "host": "elsewhere", "pid": 1,
                                                  "started_at": 0, "heartbeat_at": time.time() - 120}))
    claim = store.acquire("b")
    assert not isinstance(claim, str)
    claim.release()
    # a live holder elsewhere keeps it
    storage.write_text(store.uri("c"), json.dumps({"item_id": "c", "host": "elsewhere", "pid": 1,
                                                  "started_at": time.time(), "heartbeat_at": time.time()}))
    assert "elsewhere pid 1" in store.acquire("c")


def test_the_heartbeat_keeps_a_long_item_claimed(tmp_path):
    root = str(tmp_path / "run")
    holder = ClaimStore(root, ttl_s=0.5, heartbeat_s=0.1)
    other = ClaimStore(root, ttl_s=0.5, heartbeat_s=0.1)
    other.host = "another-host"                       # so only the heartbeat can prove the holder alive
    claim = holder.acquire("long")
    time.sleep(1.2)                                   # longer than the ttl: still fresh thanks to the beats
    assert isinstance(other.acquire("long"), str)
    claim.release()


def test_the_runner_skips_claimed_items_and_the_manifest_leaves_them_to_their_holder(tmp_path):
    root = str(tmp_path / "run")
    busy = ClaimStore(root).acquire("b")
    ran = []
    summary = ItemRunner("s", item_id=str, claims=ClaimStore(root)).run(
        ["a", "b", "c"], lambda item, timings: ran.append(item) or {})
    assert ran == ["a", "c"]
    assert [(r.item_id, r.status) for r in summary.results] == [("a", OK), ("b", CLAIMED), ("c", OK)]
    assert "1 claimed by another run" in summary.lines()[0]
    busy.release()


@pytest.mark.slow
def test_two_runs_on_one_run_id_never_compute_the_same_video(tmp_path):
    """Defect: two runs on the same run id both computed everything and the last writer won silently."""
    from synthetic.scenes import SceneSpec, write_clip
    from tests.fixtures import REPO_ROOT, processes

    clips = [write_clip(SceneSpec(width=96, height=64, fps=10, seconds=1.0, seed=k), str(tmp_path / "in"),
                        name=f"clip_{k:04d}").video_path for k in range(6)]
    root = str(tmp_path / "out")
    cmd = [sys.executable, "-m", "orchestrator.cli", "segment", "--profile", "tiny", "--run-id", "same",
           "--output-root", root, "--input", *clips]
    first = processes.start(cmd, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    second = processes.start(cmd, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        outs = [p.communicate(timeout=240) for p in (first, second)]
    finally:
        processes.stop(first)
        processes.stop(second)
    assert first.returncode == 0 and second.returncode == 0, outs
    done = []
    for out, _err in outs:
        line = next(ln for ln in out.splitlines() if ln.startswith("segment same:"))
        done.append(int(line.split(":")[1].split(" ok")[0]))
    manifest = json.loads(open(os.path.join(root, "sam2", "same", "manifest.json")).read())
    assert manifest["counts"] == {"ok": 6}
    # no video was computed by both: each ok item's record was written once, by one invocation
    assert done[0] + done[1] == 6, outs


def test_a_reservation_is_the_claim_its_item_later_acquires(tmp_path):
    ours, theirs = ClaimStore(str(tmp_path)), ClaimStore(str(tmp_path))
    held = theirs.acquire("b")
    assert ours.reserve("a") and ours.reserve("a")             # reserved once, asked twice
    assert not ours.reserve("b")                               # another invocation holds it
    claim = ours.acquire("a")
    assert not isinstance(claim, str) and ours.reserve("a")    # held by us now: still ours
    assert isinstance(theirs.acquire("a"), str)
    claim.release()
    assert ours.reserve("c")
    ours.release_reserved()                                    # a reservation whose item never came
    taken = theirs.acquire("c")
    assert not isinstance(taken, str)
    taken.release()
    held.release()

import json

import pytest

from core import storage
from core.errors import LanepaintError
from core.manifest import TINY_NOTE, RunManifest
from core.runner import FAILED, OK, SKIPPED, ItemRunner, RunSummary


def _fn(item, timings):
    with timings.phase("work"):
        if item == "bad":
            raise LanepaintError("bad: zero-byte file")
        if item == "boom":
            raise ZeroDivisionError("division by zero")
    return {"frames": len(item)}


def test_failures_are_recorded_and_the_run_goes_on():
    runner = ItemRunner(stage="segment", item_id=str)
    summary = runner.run(["a", "bad", "boom", "ccc"], _fn)
    assert [r.status for r in summary.results] == [OK, FAILED, FAILED, OK]
    assert summary.results[1].error == "bad: zero-byte file"
    assert summary.results[2].error == "ZeroDivisionError: division by zero"
    assert summary.results[3].details == {"frames": 3}
    assert "work" in summary.results[0].timings
    assert summary.exit_code == 1
    lines = summary.lines()
    assert lines[0] == "segment: 4 item(s): 2 ok, 0 skipped (already done), 2 failed"
    assert "  FAILED bad: bad: zero-byte file" in lines


def test_done_items_are_skipped_unless_overwrite():
    calls = []
    runner = ItemRunner(stage="s", item_id=str, is_done=lambda item: item == "done")
    summary = runner.run(["done", "new"], lambda item, t: calls.append(item))
    assert [r.status for r in summary.results] == [SKIPPED, OK] and calls == ["new"]
    assert summary.exit_code == 0
    calls.clear()
    ItemRunner(stage="s", item_id=str, is_done=lambda item: True, overwrite=True).run(["done"], lambda i, t: calls.append(i))
    assert calls == ["done"]


@pytest.mark.parametrize("signal_exc, name, code", [(KeyboardInterrupt, "SIGINT", 130), ("Terminated", "SIGTERM", 143)])
def test_an_interrupt_stops_the_run_at_the_item_and_keeps_the_record(signal_exc, name, code, storage_root):
    """Defect: SIGTERM exited 143 with no message and no manifest."""
    from core.runner import StageResult, Terminated

    exc = Terminated if signal_exc == "Terminated" else signal_exc
    ran = []

    def fn(item, timings):
        ran.append(item)
        if item == "b":
            raise exc
        return {}

    root = storage.join(storage_root, "run")
    manifest = RunManifest("s", root, "r", None, "tiny")
    summary = ItemRunner(stage="s", item_id=str, on_result=manifest.record).run(["a", "b", "c"], fn)
    assert ran == ["a", "b"] and summary.interrupted == name
    assert [(r.item_id, r.status) for r in summary.results] == [("a", OK), ("b", FAILED)]
    assert summary.results[1].error == f"interrupted by {name} before it finished (rerun to resume)"
    result = StageResult.from_summary(summary, "r", storage_root, root, manifest.finalize(summary))
    assert result.exit_code == code and f"interrupted by {name}" in result.lines()[-1]
    assert json.loads(storage.read_text(result.manifest_uri))["counts"] == {"ok": 1, "failed": 1}


def test_pre_run_failure_counts():
    summary = RunSummary("segment")
    summary.add_failure("chunks://b/x", "no .mp4 videos found")
    assert summary.exit_code == 1 and summary.count(FAILED) == 1


def test_manifest_records_items_and_merges_previous_runs(storage_root):
    from dataclasses import dataclass

    @dataclass(frozen=True)
    class Cfg:
        fps: float = 8.0
        hf_token: str | None = "secret-value"

    run_root = storage.join(storage_root, "sam2", "r1")
    m1 = RunManifest("segment", run_root, "r1", Cfg(), profile="tiny", models={"sam2": "tiny random"})
    runner = ItemRunner(stage="segment", item_id=str, on_result=m1.record)
    s1 = runner.run(["a", "bad"], _fn)
    uri = m1.finalize(s1)
    doc = json.loads(storage.read_text(uri))
    assert doc["stage"] == "segment" and doc["run_id"] == "r1" and doc["profile"] == "tiny"
    assert doc["profile_note"] == TINY_NOTE
    assert doc["config"] == {"fps": 8.0, "hf_token": "<redacted>"}
    assert "secret-value" not in storage.read_text(uri)
    assert doc["items"]["a"]["status"] == "ok" and doc["items"]["bad"]["status"] == "failed"
    assert doc["counts"] == {"ok": 1, "failed": 1}
    assert "numpy" in doc["versions"] and doc["models"] == {"sam2": "tiny random"}

    # a second invocation (another shard, or a rerun after a crash) adds its items
    m2 = RunManifest("segment", run_root, "r1", Cfg(), profile="tiny")
    runner2 = ItemRunner(stage="segment", item_id=str, is_done=lambda i: i == "a", on_result=m2.record)
    s2 = runner2.run(["a", "bad2", "c"], lambda item, t: None)
    doc2 = json.loads(storage.read_text(m2.finalize(s2)))
    assert set(doc2["items"]) == {"a", "bad", "bad2", "c"}
    assert doc2["items"]["a"]["status"] == "ok"            # kept from the first run, not "skipped"
    assert doc2["last_invocation"]["skipped"] == 1 and doc2["last_invocation"]["ok"] == 2


def test_manifest_full_profile_has_no_tiny_note(tmp_path):
    doc = RunManifest("edit", str(tmp_path), "r", None, profile="full").build()
    assert "profile_note" not in doc


def test_stage_result_from_summary_and_report():
    import dataclasses
    import io
    import json

    from core.runner import StageResult
    from core.stage_cli import report

    summary = ItemRunner(stage="segment", item_id=str, is_done=lambda i: i == "old").run(["old", "a", "bad"], _fn)
    result = StageResult.from_summary(summary, "r1", "/out", "/out/sam2/r1", "/out/sam2/r1/manifest.json",
                                      next_command="lanepaint edit --data-run-id r1", vp_data_uri="/out/vp")
    assert (result.ok, result.skipped) == (("a",), ("old",))
    assert result.failed == (("bad", "bad: zero-byte file"),)
    assert result.exit_code == 1 and result.get("vp_data_uri") == "/out/vp"
    json.dumps(dataclasses.asdict(result))  # plain data only
    out = io.StringIO()
    assert report(result, out) == 1
    text = out.getvalue()
    assert "segment r1: 1 ok, 1 skipped (already done), 1 failed" in text
    assert "FAILED bad: bad: zero-byte file" in text and "next: lanepaint edit --data-run-id r1" in text


def test_an_item_over_its_time_limit_fails_and_the_next_one_runs():
    """Defect: one clip looping for ever (a timestamp jump in the resampler) stopped every later clip."""
    import time

    from core.runner import ItemTimeout

    def fn(item, timings):
        if item == "stuck":
            with timings.phase("decode"):
                while True:              # Python code that never ends
                    pass
        try:                             # the timeout is not an Exception: item code cannot swallow it
            return {"value": item}
        except Exception:
            return {}

    start = time.monotonic()
    summary = ItemRunner("t", item_id=str, timeout=0.5).run(["stuck", "fine"], fn)
    assert time.monotonic() - start < 10
    stuck, fine = summary.results
    assert stuck.status == FAILED and stuck.error == "timed out after 0.5 s in phase decode (--item-timeout)"
    assert fine.status == OK and fine.details == {"value": "fine"}
    assert issubclass(ItemTimeout, BaseException) and not issubclass(ItemTimeout, Exception)
    # a fast item under a limit is untouched, and nothing fires later
    quick = ItemRunner("t", item_id=str, timeout=0.2).run(["a"], lambda i, t: {"ok": 1})
    time.sleep(0.4)
    assert quick.results[0].status == OK


def test_a_redo_that_fails_leaves_the_item_incomplete():
    """Defect: a failed --overwrite left the old completion marker, so later runs skipped a 'failed' item."""
    markers = {"a"}
    calls = []

    def invalidate(item):
        calls.append(("invalidate", item, item in markers))
        markers.discard(item)

    def fn(item, timings):
        calls.append(("run", item, item in markers))
        raise LanepaintError("boom")

    summary = ItemRunner("t", item_id=str, is_done=lambda i: i in markers, overwrite=True,
                         invalidate=invalidate).run(["a"], fn)
    assert summary.results[0].status == FAILED and calls == [("invalidate", "a", True), ("run", "a", False)]
    assert "a" not in markers            # the next run redoes it instead of skipping it


def test_a_skipped_item_repairs_a_missing_or_stale_record(storage_root):
    """Defect: a crash between an item's completion marker and its record lost it from the manifest for good."""
    from core.runner import ItemResult

    root = storage.join(storage_root, "run")
    old = RunManifest("segment", root, "r", None, "tiny")
    old.record(ItemResult("stale", FAILED, error="boom"))        # recorded failed, later completed on disk
    old.finalize()
    again = RunManifest("segment", root, "r", None, "tiny")
    for item in ("lost", "stale"):                               # outputs complete: the runner skips them
        again.record(ItemResult(item, SKIPPED))
    items = json.loads(storage.read_text(again.finalize()))["items"]
    assert items["lost"]["status"] == OK and "record was missing" in items["lost"]["recovered"]
    assert items["stale"]["status"] == OK and "record was 'failed'" in items["stale"]["recovered"]
    assert json.loads(storage.read_text(again.finalize()))["counts"] == {"ok": 2}

"""A cached shard report whose outputs were deleted is found, so the shard runs again."""

from core import storage
from core.ids import item_file_name
from core.manifest import ITEMS_DIR
from orchestrator.results import StageReport
from orchestrator.shards import stale_shards


def _record(run_uri: str, item: str) -> None:
    storage.write_text(storage.join(run_uri, ITEMS_DIR, item_file_name(item)), f'{{"item_id": "{item}", "status": "ok"}}')


def test_only_shards_whose_finished_items_lost_their_records_are_stale(tmp_path):
    run = str(tmp_path / "sam2" / "r1")
    reports = [StageReport("segment", "r1", ok=["a", "b"]), StageReport("segment", "r1", ok=["c"]),
               StageReport("segment", "r1", failed={"d": "bad video"}), StageReport("segment", "r1", ok=[])]
    assert stale_shards(run, reports) == [0, 1]              # nothing on disk: every shard that finished items
    for item in ("a", "b", "c"):
        _record(run, item)
    assert stale_shards(run, reports) == []                  # all there: the cache hit stands
    storage.rm(storage.join(run, ITEMS_DIR, item_file_name("b")))
    assert stale_shards(run, reports) == [0]                 # one output deleted: that shard only

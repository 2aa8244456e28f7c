"""Which videos a dataset run reads (start index, limit, early stop, lists, folders, bad sources) and
how they are dealt to devices: no models, no torch."""

import pytest

from core import storage
from core.errors import UsageError
from training.dataset_config import DatasetFilterConfig, DatasetGenerateConfig
from training.dataset_sources import NO_CHUNK, chunk_of, discover_videos, plan_devices, plan_jobs


def _bucket(root, layout):
    for chunk, count in layout.items():
        for k in range(count):
            storage.write_bytes(storage.join(root, f"chunk_{chunk:04d}", f"v{chunk}_{k}.mp4"), b"x")


def _names(uris):
    return [storage.basename(u) for u in uris]


def test_start_index_and_limit_stop_the_chunk_listing(monkeypatch):
    _bucket("memory://dsrc/pre", {0: 3, 1: 3, 2: 3, 3: 3})
    listed = []
    real_ls = storage.ls
    monkeypatch.setattr(storage, "ls", lambda uri, **kw: listed.append(uri) or real_ls(uri, **kw))
    videos, errors = discover_videos(["chunks://dsrc/pre?fs=memory"], start_index=2, limit=3)
    assert _names(videos) == ["v0_2.mp4", "v1_0.mp4", "v1_1.mp4"] and errors == {}
    assert [storage.basename(u) for u in listed if "chunk_" in u] == ["chunk_0000", "chunk_0001"]
    everything, _ = discover_videos(["chunks://dsrc/pre?fs=memory"])
    assert len(everything) == 12
    assert discover_videos(["chunks://dsrc/pre?fs=memory"], start_index=20)[0] == []


def test_lists_folders_and_bad_sources_in_order(tmp_path):
    _bucket(str(tmp_path / "data"), {0: 2, 7: 1})
    listing = tmp_path / "list.txt"
    listing.write_text(f"# comment\n\n{tmp_path}/data/chunk_0007/v7_0.mp4\nchunks://{tmp_path}/data?fs=file&end=0\n")
    sources = [str(listing), str(tmp_path / "data"), str(tmp_path / "missing"), str(tmp_path / "list.txt.bak"),
               "chunks://b/x?colour=red"]
    (tmp_path / "list.txt.bak").write_text("x")
    videos, errors = discover_videos(sources, start_index=1, limit=4)
    assert _names(videos) == ["v0_0.mp4", "v0_1.mp4", "v0_0.mp4", "v0_1.mp4"]
    assert errors == {}     # enough found: the later sources are not even looked at
    videos, errors = discover_videos(sources)
    assert _names(videos) == ["v7_0.mp4", "v0_0.mp4", "v0_1.mp4", "v0_0.mp4", "v0_1.mp4", "v7_0.mp4"]
    assert "not found" in errors[str(tmp_path / "missing")]
    assert "not a video (.mp4), a folder, a .txt list" in errors[str(tmp_path / "list.txt.bak")]
    assert "unknown key 'colour'" in errors["chunks://b/x?colour=red"]
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "no .mp4 videos found" in discover_videos([str(empty)])[1][str(empty)]


def test_jobs_ids_chunks_and_duplicates():
    jobs = plan_jobs(["gs://b/p/chunk_0003/clip.cam.mp4", "/data/clip_b.mp4", "gs://b/p/chunk_0004/clip.cam.mp4",
                      "/data/bad name.mp4"])
    assert [(j.video_id, j.chunk, j.error is None) for j in jobs] == [
        ("clip.cam", "chunk_0003", True), ("clip_b", NO_CHUNK, True), (None, "chunk_0004", False),
        (None, NO_CHUNK, False)]
    assert "duplicate video id 'clip.cam' (also gs://b/p/chunk_0003/clip.cam.mp4)" in jobs[2].error
    assert "must not contain whitespace" in jobs[3].error
    assert chunk_of("chunk_0001/x.mp4") == "chunk_0001" and chunk_of("x.mp4") == NO_CHUNK


def test_devices_one_worker_each():
    assert plan_devices("auto", "tiny", gpu_count=4) == ["cpu"]
    assert plan_devices("auto", "full", gpu_count=3) == ["cuda:0", "cuda:1", "cuda:2"]
    assert plan_devices("auto", "full", gpu_count=0) == ["cpu"]
    assert plan_devices("cuda:1, cuda:3", "full") == ["cuda:1", "cuda:3"]
    assert plan_devices("cpu,cpu", "tiny") == ["cpu", "cpu"]
    for bad, message in (("gpu", "'gpu'"), ("auto,cpu", "cannot be combined"), (" , ", "must not be empty")):
        with pytest.raises(UsageError, match=message):
            plan_devices(bad, "full")


def test_config_validation_and_filter_naming():
    ok = DatasetGenerateConfig(sources=("x",), output="o")
    assert ok.frames == (1, 100, 200, 300, 400, 500) and ok.frame_numbers == ok.frames
    assert DatasetGenerateConfig(sources=("x",), output="o", frames=(5, 1, 5)).frame_numbers == (1, 5)
    for kwargs, message in (({"sources": ()}, "no sources"), ({"output": " "}, "--output must not be empty"),
                            ({"frames": (1, -2)}, ">= 0"), ({"limit": 0}, "--limit must be >= 1"),
                            ({"start_index": -1}, "--start-index"), ({"min_coverage": 1.0}, "--min-coverage"),
                            ({"sam2_config": "c.yaml"}, "needs --sam2-checkpoint")):
        with pytest.raises(UsageError, match=message):
            DatasetGenerateConfig(**({"sources": ("x",), "output": "o"} | kwargs))
    assert DatasetFilterConfig(input="gs://b/ds/", count="double", color="yellow").output_uri() == \
        "gs://b/ds__double_yellow_any"
    assert DatasetFilterConfig(input="/d/ds", require_clear_road=True).output_uri() == "/d/ds__any_any_any_clearroad"
    assert DatasetFilterConfig(input="/d/ds", output="/e/x").output_uri() == "/e/x"
    with pytest.raises(UsageError, match="--color 'red': use one of white, yellow, mixed, unknown, any"):
        DatasetFilterConfig(input="/d/ds", color="red")

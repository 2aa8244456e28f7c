import pytest

from core import storage
from core.chunks import expand_inputs, parse_chunks_uri, resolve_chunks
from core.errors import UsageError


def _make_bucket(root: str, layout: dict[int, int]) -> None:
    for chunk, count in layout.items():
        for k in range(count):
            storage.write_bytes(storage.join(root, f"chunk_{chunk:04d}", f"v{chunk}_{k}.mp4"), b"x")
        storage.write_text(storage.join(root, f"chunk_{chunk:04d}", "notes.txt"), "not a video")
    storage.write_text(storage.join(root, "README.txt"), "ignored")


def _names(uris):
    return [storage.basename(u) for u in uris]


@pytest.fixture
def gs_bucket(gcs_emulator):
    import uuid

    from tests.conftest import BUCKET

    prefix = f"chunks-{uuid.uuid4().hex[:6]}"
    _make_bucket(f"gs://{BUCKET}/{prefix}", {0: 3, 1: 2, 2: 3, 5: 1})
    return f"{BUCKET}/{prefix}"


def test_resolve_against_emulator_in_chunk_order(gs_bucket):
    uris = resolve_chunks(f"chunks://{gs_bucket}?per_chunk=2")
    assert _names(uris) == ["v0_0.mp4", "v0_1.mp4", "v1_0.mp4", "v1_1.mp4", "v2_0.mp4", "v2_1.mp4", "v5_0.mp4"]
    assert all(u.startswith("gs://") for u in uris)


def test_range_and_limit_against_emulator(gs_bucket):
    assert _names(resolve_chunks(f"chunks://{gs_bucket}?start=1&end=2")) == \
        ["v1_0.mp4", "v1_1.mp4", "v2_0.mp4", "v2_1.mp4", "v2_2.mp4"]
    assert _names(resolve_chunks(f"chunks://{gs_bucket}?start=2&end=2&per_chunk=1")) == ["v2_0.mp4"]
    assert _names(resolve_chunks(f"chunks://{gs_bucket}?limit=4")) == ["v0_0.mp4", "v0_1.mp4", "v0_2.mp4", "v1_0.mp4"]


def test_listing_stops_once_enough_found(gs_bucket, monkeypatch):
    listed = []
    real_ls = storage.ls

    def spy(uri, dirs=True, files=True):
        listed.append(uri)
        return real_ls(uri, dirs=dirs, files=files)

    monkeypatch.setattr(storage, "ls", spy)
    resolve_chunks(f"chunks://{gs_bucket}?per_chunk=1&limit=2")
    chunk_listings = [u for u in listed if "chunk_" in u]
    assert [storage.basename(u) for u in chunk_listings] == ["chunk_0000", "chunk_0001"]


def test_caller_limit_caps_the_listing_and_the_uri_limit(tmp_path, monkeypatch):
    _make_bucket("memory://chunklim/pre", {0: 2, 1: 2, 2: 2})
    base = "chunks://chunklim/pre?fs=memory"
    assert _names(resolve_chunks(base, limit=3)) == ["v0_0.mp4", "v0_1.mp4", "v1_0.mp4"]
    assert _names(resolve_chunks(base + "&limit=1", limit=3)) == ["v0_0.mp4"]      # the smaller wins
    assert _names(resolve_chunks(base + "&limit=5", limit=2)) == ["v0_0.mp4", "v0_1.mp4"]
    listed = []
    real_ls = storage.ls
    monkeypatch.setattr(storage, "ls", lambda uri, **kw: listed.append(uri) or real_ls(uri, **kw))
    resolve_chunks(base, limit=2)
    assert [storage.basename(u) for u in listed if "chunk_" in u] == ["chunk_0000"]
    with pytest.raises(UsageError, match="limit must be >= 1"):
        resolve_chunks(base, limit=0)


def test_memory_and_local_backends(tmp_path):
    _make_bucket("memory://chunkbkt/pre", {3: 2, 4: 2})
    assert _names(resolve_chunks("chunks://chunkbkt/pre?fs=memory&per_chunk=1")) == ["v3_0.mp4", "v4_0.mp4"]
    _make_bucket(str(tmp_path / "data"), {0: 1})
    assert _names(resolve_chunks(f"chunks://{tmp_path}/data?fs=file")) == ["v0_0.mp4"]


@pytest.mark.parametrize(
    "uri, message",
    [
        ("chunks://b/p?start=5&end=2", "end (2) < start (5)"),
        ("chunks://b/p?per_chunk=0", "per_chunk must be >= 1"),
        ("chunks://b/p?limit=0", "limit must be >= 1"),
        ("chunks://b/p?colour=red", "unknown key 'colour'"),
        ("chunks://b/p?start=x", "start='x' is not an integer"),
        ("chunks:///p", "missing bucket"),
        ("chunks://b/p?start=1&start=2", "start given twice"),
        ("chunks://b/p?fs=s3", "fs must be gs, memory or file"),
    ],
)
def test_bad_queries_raise_one_line_usage_errors(uri, message):
    with pytest.raises(UsageError) as info:
        parse_chunks_uri(uri)
    assert message in str(info.value) and uri in str(info.value)
    assert "\n" not in str(info.value)


def test_expand_inputs_reports_empty_results_and_keeps_going(tmp_path):
    _make_bucket("memory://expbkt/ok", {0: 2})
    videos, errors = expand_inputs(["/local/a.mp4", "chunks://expbkt/ok?fs=memory",
                                    "chunks://expbkt/empty?fs=memory", "chunks://b?end=-1"])
    assert _names(videos) == ["a.mp4", "v0_0.mp4", "v0_1.mp4"]
    assert set(errors) == {"chunks://expbkt/empty?fs=memory", "chunks://b?end=-1"}
    assert "no .mp4 videos found" in errors["chunks://expbkt/empty?fs=memory"]

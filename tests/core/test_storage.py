"""The same storage assertions on local disk, memory:// and gs:// (GCS emulator)."""

import os
import time
from pathlib import Path

import pytest

from core import storage
from core.errors import StorageError


def test_write_read_exists_ls(storage_root):
    uri = storage.join(storage_root, "a", "b.txt")
    assert not storage.exists(uri)
    storage.write_text(uri, "hello")
    assert storage.exists(uri)
    assert storage.read_text(uri) == "hello"
    assert storage.size(uri) == 5
    assert [storage.basename(u) for u in storage.ls(storage.join(storage_root, "a"))] == ["b.txt"]
    with storage.open(uri, "rb") as fh:
        assert fh.read() == b"hello"


def test_ls_separates_files_and_folders(storage_root):
    storage.write_text(storage.join(storage_root, "d", "f1.txt"), "1")
    storage.write_text(storage.join(storage_root, "d", "sub", "f2.txt"), "2")
    folder = storage.join(storage_root, "d")
    assert [storage.basename(u) for u in storage.ls(folder, dirs=False)] == ["f1.txt"]
    assert [storage.basename(u) for u in storage.ls(folder, files=False)] == ["sub"]
    assert storage.isdir(storage.join(storage_root, "d", "sub"))
    assert storage.ls(storage.join(storage_root, "missing")) == []


def test_glob_and_walk(storage_root):
    for name in ("x1.mp4", "x2.mp4", "y.txt"):
        storage.write_text(storage.join(storage_root, "g", name), name)
    storage.write_text(storage.join(storage_root, "g", "deep", "z.mp4"), "z")
    found = storage.glob(storage.join(storage_root, "g", "*.mp4"))
    assert [storage.basename(u) for u in found] == ["x1.mp4", "x2.mp4"]
    walked = storage.walk_files(storage.join(storage_root, "g"))
    assert sorted(storage.basename(u) for u in walked) == ["x1.mp4", "x2.mp4", "y.txt", "z.mp4"]


def test_put_and_get_file_and_tree(storage_root, tmp_path):
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "one.bin").write_bytes(b"\x00\x01")
    (src / "sub" / "two.txt").write_text("two")
    dests = storage.put(str(src), storage.join(storage_root, "tree"))
    assert sorted(storage.basename(u) for u in dests) == ["one.bin", "two.txt"]
    assert storage.read_bytes(storage.join(storage_root, "tree", "sub", "two.txt")) == b"two"
    local = storage.get(storage.join(storage_root, "tree", "one.bin"), tmp_path / "back" / "one.bin")
    assert open(local, "rb").read() == b"\x00\x01"


def test_atomic_path_commits_only_on_success(storage_root):
    uri = storage.join(storage_root, "out", "result.json")
    with pytest.raises(RuntimeError):
        with storage.atomic_path(uri) as tmp:
            assert tmp.endswith(".json")
            with open(tmp, "w") as fh:
                fh.write("half")
            raise RuntimeError("crash mid-write")
    assert not storage.exists(uri)
    with storage.atomic_path(uri) as tmp:
        with open(tmp, "w") as fh:
            fh.write("{}")
    assert storage.read_text(uri) == "{}"
    leftovers = [u for u in storage.walk_files(storage.join(storage_root, "out")) if ".tmp-" in u]
    assert leftovers == []


def test_atomic_overwrite_replaces_whole_file(storage_root):
    uri = storage.join(storage_root, "f.txt")
    storage.write_text(uri, "first version, longer")
    storage.write_text(uri, "second")
    assert storage.read_text(uri) == "second"


def test_rm(storage_root):
    uri = storage.join(storage_root, "r", "x.txt")
    storage.write_text(uri, "x")
    storage.rm(storage.join(storage_root, "r"), recursive=True)
    assert not storage.exists(uri)
    storage.rm(uri)  # missing is fine


def test_fetch_caches_remote_by_uri(storage_root, tmp_path):
    uri = storage.join(storage_root, "v", "clip.mp4")
    storage.write_bytes(uri, b"video-bytes")
    first = storage.fetch(uri, tmp_path / "cache")
    assert open(first, "rb").read() == b"video-bytes"
    second = storage.fetch(uri, tmp_path / "cache")
    assert first == second
    if not storage.is_local(uri):
        assert first.startswith(str(tmp_path / "cache"))
        assert os.path.getmtime(first) == os.path.getmtime(second)  # not downloaded twice


def test_missing_read_is_one_line_storage_error(storage_root):
    uri = storage.join(storage_root, "nope.txt")
    with pytest.raises(StorageError) as info:
        storage.read_text(uri)
    assert str(info.value) == f"{uri}: not found"
    with pytest.raises(StorageError, match="not found"):
        storage.fetch(uri, "/tmp/unused-cache")


@pytest.mark.parametrize("bad", ["", "bogus://bucket/x", "gs://", "memory://"])
def test_bad_uris_rejected(bad):
    with pytest.raises(StorageError):
        storage.exists(bad)


def test_a_protocol_whose_package_is_missing_is_one_line_naming_it():
    fsspec = pytest.importorskip("fsspec")
    try:
        import s3fs  # noqa: F401
        pytest.skip("s3fs is installed")
    except ImportError:
        pass
    if "s3" in fsspec.registry:   # importing flyte registers obstore's s3 filesystem
        pytest.skip(f"an s3 filesystem is registered in this process ({fsspec.registry['s3'].__module__})")
    with pytest.raises(StorageError) as info:
        storage.read_bytes("s3://bucket/clip.mp4")
    assert str(info.value).startswith("s3:// needs a filesystem package") and "s3fs" in str(info.value)
    assert "\n" not in str(info.value)


@pytest.fixture
def other_protocol():
    """A filesystem registered with fsspec under a protocol lanepaint has no special code for."""
    import importlib

    import fsspec
    from fsspec.implementations.memory import MemoryFileSystem

    class OtherFS(MemoryFileSystem):
        protocol = ("lpother",)
        store: dict = {}
        pseudo_dirs = [""]

    fsspec.register_implementation("lpother", OtherFS, clobber=True)
    storage._fsspec_protocols.cache_clear()
    yield "lpother://bucket/run"
    importlib.import_module("fsspec.registry")._registry.pop("lpother", None)
    storage._fsspec_protocols.cache_clear()


def test_any_fsspec_protocol_reads_writes_lists_and_writes_atomically(other_protocol, tmp_path):
    root = other_protocol
    assert storage.scheme(root) == "lpother"
    storage.check_output_root(root)                       # the write probe works there too
    storage.write_text(storage.join(root, "a", "x.json"), '{"k": 1}')
    with storage.atomic_path(storage.join(root, "a", "v.bin")) as tmp:
        Path(tmp).write_bytes(b"video")
    with pytest.raises(RuntimeError):
        with storage.atomic_path(storage.join(root, "a", "broken.bin")) as tmp:
            Path(tmp).write_bytes(b"half")
            raise RuntimeError("writer failed")
    assert storage.walk_files(root) == [f"{root}/a/v.bin", f"{root}/a/x.json"]     # nothing half-written
    assert storage.read_text(f"{root}/a/x.json") == '{"k": 1}'
    local = storage.fetch(f"{root}/a/v.bin", str(tmp_path / "cache"))
    assert Path(local).read_bytes() == b"video"


def test_an_https_input_is_fetched(tmp_path):
    """Inputs over http(s): a local server on a free port, stopped at the end."""
    import functools
    import http.server
    import threading

    (tmp_path / "clip.mp4").write_bytes(b"\x00video bytes")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        uri = f"http://127.0.0.1:{server.server_address[1]}/clip.mp4"
        assert storage.scheme(uri) == "http" and storage.exists(uri)
        local = storage.fetch(uri, str(tmp_path / "cache"))
        assert Path(local).read_bytes() == b"\x00video bytes"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def test_scheme_and_join():
    assert storage.scheme("/a/b") == "local"
    assert storage.scheme("file:///a/b") == "local"
    assert storage.local_path("file:///a/b") == "/a/b"
    assert storage.scheme("gs://b/x") == "gs"
    assert storage.join("gs://b/root/", "x", "/y/") == "gs://b/root/x/y"
    assert storage.join("rel/dir", "x") == os.path.join("rel/dir", "x")


def test_unreachable_gcs_is_a_one_line_error(monkeypatch):
    from core.errors import StorageError

    monkeypatch.setenv("STORAGE_EMULATOR_HOST", "http://127.0.0.1:9")  # discard port: refused
    storage.reset_filesystems()
    import gcsfs.retry

    monkeypatch.setattr(gcsfs.retry, "is_retriable", lambda exc: False)
    try:
        with pytest.raises(StorageError) as info:
            storage.read_bytes("gs://some-bucket/x.mp4")
        assert "gs://some-bucket/x.mp4" in str(info.value)
        assert "\n" not in str(info.value)
    finally:
        storage.reset_filesystems()


def test_read_json_records_keeps_order_and_skips_bad_files(storage_root):
    uris = [storage.join(storage_root, "rec", f"{k}.json") for k in range(5)]
    for k, uri in enumerate(uris):
        storage.write_text(uri, f'{{"k": {k}}}')
    storage.write_text(uris[1], "{half written")
    storage.write_text(uris[3], "[1, 2]")
    missing = storage.join(storage_root, "rec", "missing.json")
    assert storage.read_json_records([*uris, missing], workers=3) == [{"k": 0}, {"k": 2}, {"k": 4}]
    assert storage.read_json_records([]) == []


def _dead_pid() -> int:
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_leftovers_of_dead_processes_are_swept_and_live_ones_kept(tmp_path, monkeypatch):
    """Defect: temp files under the output tree and lanepaint-* folders in TMPDIR after kill -9 were never
    cleaned."""
    import tempfile as _tempfile

    monkeypatch.setattr(_tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    run = tmp_path / "out" / "sam2" / "r1" / "clip"
    run.mkdir(parents=True)
    dead = storage.temp_prefix().replace(f"-{os.getpid()}-", f"-{_dead_pid()}-")
    leftover = run / f".stats.json.{dead}1234abcd"
    leftover.write_text("half")
    mine = run / f".masks.npz.{storage.temp_prefix()}5678abcd"          # a live writer's file: kept
    mine.write_text("busy")
    other = run / ".x.json.lanepaint-tmp-ffff-1-0000abcd"               # another host's, recent: kept
    other.write_text("theirs")
    stale_dir = tmp_path / "tmp" / f"{dead}seg-xyz"
    stale_dir.mkdir()
    (stale_dir / "frame.png").write_bytes(b"x")
    unrelated = tmp_path / "tmp" / "someone-else"
    unrelated.mkdir()
    assert storage.sweep_leftovers(str(tmp_path / "out" / "sam2" / "r1")) == 2
    assert not leftover.exists() and not stale_dir.exists()
    assert mine.exists() and other.exists() and unrelated.exists()
    old = time.time() - storage.LEFTOVER_AGE_S - 60
    os.utime(other, (old, old))
    assert storage.sweep_leftovers(str(tmp_path / "out")) == 1 and not other.exists()


def test_the_input_cache_stays_under_its_limit_least_recently_used_first(tmp_path, monkeypatch):
    """Defect: the input cache grew without bound."""
    cache = tmp_path / "cache"
    for k, age in enumerate((300, 200, 100)):
        entry = cache / f"entry{k}"
        entry.mkdir(parents=True)
        (entry / "clip.mp4").write_bytes(b"x" * 1000)
        os.utime(entry, (time.time() - age, time.time() - age))
    assert storage.evict(str(cache), 2500, keep=str(cache / "entry0")) == 1
    assert sorted(p.name for p in cache.iterdir()) == ["entry0", "entry2"]     # oldest kept: it is in use
    monkeypatch.setenv("LANEPAINT_CACHE_MAX_GB", str(1500 / 1024**3))
    storage.write_bytes("memory://cache-limit/new.mp4", b"y" * 1000)
    path = storage.fetch("memory://cache-limit/new.mp4", str(cache))
    assert os.path.exists(path) and len(list(cache.iterdir())) == 1

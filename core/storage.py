"""One storage API over local paths, ``file://``, ``memory://`` and ``gs://`` (fsspec).

URIs are plain strings everywhere. Local paths stay paths; ``file://`` maps to a local path.
``gs://`` filesystems are built explicitly with gcsfs (Flyte re-registers fsspec's gs:// handler,
so we never rely on ``fsspec.filesystem("gs")``). Writes go through ``atomic_path`` /
``write_bytes``: a temp name then a move (local) or a single-object upload (gs://, memory://), so a
crash never leaves a half file under the final name.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import os
import re
import shutil
import socket
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, ClassVar

from core.config import Settings, build_config, setting
from core.errors import StorageError, UsageError, brief

log = logging.getLogger(__name__)

REMOTE_SCHEMES = ("gs", "memory")
DEFAULT_CACHE_DIR = os.path.join(os.path.expanduser("~"), ".cache", "lanepaint")
_fs_lock = threading.Lock()
_gcs_fs: Any = None


def scheme(uri: str) -> str:
    """``local`` for paths and ``file://``, else the URI scheme (``gs``, ``memory``)."""
    if not isinstance(uri, str) or not uri:
        raise StorageError(f"invalid URI {uri!r}: empty")
    if "://" not in uri:
        return "local"
    proto = uri.split("://", 1)[0].lower()
    if proto == "file":
        return "local"
    if proto == "gcs":
        return "gs"
    if proto not in REMOTE_SCHEMES and proto not in _fsspec_protocols():
        raise StorageError(f"unsupported URI {uri!r}: scheme {proto}:// is not an fsspec protocol (use a path, "
                           "file://, gs://, s3://, az://, hf://, https:// ...)")
    return proto


@functools.lru_cache(maxsize=1)
def _fsspec_protocols() -> frozenset[str]:
    """Every protocol fsspec knows (its filesystem package may still be missing: see ``filesystem``)."""
    from fsspec.registry import known_implementations, registry

    return frozenset(known_implementations) | frozenset(registry)


def is_local(uri: str) -> bool:
    return scheme(uri) == "local"


@dataclass(frozen=True)
class StorageSettings(Settings):
    """How gs:// is reached (environment only: storage is set up before any command's flags)."""

    SECTION: ClassVar[str] = "storage"

    emulator_host: str | None = setting(None, help="GCS emulator endpoint (tests, local runs)",
                                        env="STORAGE_EMULATOR_HOST", flag=None)
    gcs_token: str | None = setting(None, help="gcsfs token: google_default, anon, cloud, or a JSON key path",
                                    default_text="anon with an emulator, else google_default",
                                    env="LANEPAINT_GCS_TOKEN", flag=None, secret=True)
    gcs_project: str | None = setting(None, help="GCP project for gs:// access", env="GOOGLE_CLOUD_PROJECT",
                                      flag=None)
    cache_max_gb: float = setting(50.0, help="size limit of the input cache (--cache-dir): the least recently "
                                  "used inputs are removed beyond it (0: no limit)", env="LANEPAINT_CACHE_MAX_GB",
                                  flag=None)


def local_path(uri: str) -> str:
    """The filesystem path of a local URI."""
    if scheme(uri) != "local":
        raise StorageError(f"{uri}: not a local path")
    return uri[len("file://"):] if uri.startswith("file://") else uri


def _gcs() -> Any:
    global _gcs_fs
    with _fs_lock:
        if _gcs_fs is None:
            # Must be set before gcsfs is imported, or each call waits on a gRPC lookup (60 s on the
            # emulator).
            os.environ.setdefault("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")
            import gcsfs

            settings = build_config(StorageSettings)
            emulator = settings.emulator_host
            token = settings.gcs_token or ("anon" if emulator else None)
            kwargs: dict[str, Any] = {"token": token, "use_listings_cache": False}
            if settings.gcs_project:
                kwargs["project"] = settings.gcs_project
            if emulator:
                kwargs["endpoint_url"] = emulator if "://" in emulator else f"http://{emulator}"
            try:
                _gcs_fs = gcsfs.GCSFileSystem(**kwargs)
            except Exception as exc:   # e.g. a credentials file without the keys its type needs
                raise StorageError(f"gs:// access: cannot use the credentials ({brief(exc, 160)}); check "
                                   "LANEPAINT_GCS_TOKEN or GOOGLE_APPLICATION_CREDENTIALS") from None
        return _gcs_fs


def reset_filesystems() -> None:
    """Forget cached filesystem objects (after changing storage environment variables)."""
    global _gcs_fs
    with _fs_lock:
        _gcs_fs = None


def filesystem(uri: str) -> tuple[Any, str]:
    """(fsspec filesystem, path inside it) for a URI."""
    kind = scheme(uri)
    if kind == "local":
        from fsspec.implementations.local import LocalFileSystem

        return LocalFileSystem(), os.path.abspath(local_path(uri))
    body = uri.split("://", 1)[1]
    if not body.strip("/"):
        raise StorageError(f"invalid URI {uri!r}: no bucket")
    if kind == "gs":
        return _gcs(), body.strip("/")
    import fsspec

    if kind == "memory":
        return fsspec.filesystem("memory"), "/" + body.strip("/")
    try:
        return fsspec.core.url_to_fs(uri)    # the protocol's own URL parsing (host, bucket, ...)
    except ImportError as exc:     # e.g. s3:// without s3fs: fsspec's message names the package
        raise StorageError(f"{kind}:// needs a filesystem package that is not installed: {brief(exc, 200)}") from None
    except Exception as exc:
        raise StorageError(f"{uri}: {kind}:// cannot be used: {brief(exc, 200)}") from None


def check_output_root(root: str) -> None:
    """A usage error (nothing written) unless ``root`` is a usable output location: a known scheme, and
    locally a folder (or a path that can become one) that is writable."""
    if not isinstance(root, str) or not root.strip():
        raise UsageError("--output-root must not be empty")
    try:
        kind = scheme(root)
        filesystem(root)
    except StorageError as exc:
        raise UsageError(f"bad output root {root!r}: {exc}") from None
    if kind != "local":
        _probe_write(root)
        return
    path = os.path.abspath(local_path(root))
    if os.path.exists(path) and not os.path.isdir(path):
        raise UsageError(f"bad output root {root!r}: it is a file, not a folder")
    existing = path
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise UsageError(f"bad output root {root!r}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UsageError(f"bad output root {root!r}: {existing} is not writable")


def _probe_write(root: str) -> None:
    """Write and remove a small object under a remote root: a missing bucket, a typo or a read-only
    credential is found before any work, not after every item is computed."""
    import uuid

    probe = join(root, f".lanepaint-write-check-{uuid.uuid4().hex[:12]}")
    try:
        write_bytes(probe, b"")
        rm(probe)
    except StorageError as exc:
        raise UsageError(f"bad output root {root!r}: cannot write there ({exc})") from None


def _to_uri(kind_uri: str, path: str, fs: Any) -> str:
    """A listed ``path`` of filesystem ``fs`` (the one ``kind_uri`` resolved to) as a URI of the same kind."""
    kind = scheme(kind_uri)
    if kind == "local":
        return path
    if kind == "memory":
        return "memory://" + path.lstrip("/")
    return fs.unstrip_protocol(path)


def join(base: str, *parts: str) -> str:
    """Join path parts onto a URI with ``/`` (or the OS separator for local paths)."""
    clean = [str(p).strip("/") for p in parts if str(p).strip("/")]
    if is_local(base):
        return os.path.join(local_path(base), *clean)
    return "/".join([base.rstrip("/"), *clean])


def basename(uri: str) -> str:
    return uri.rstrip("/").rsplit("/", 1)[-1]


@contextlib.contextmanager
def _errors(uri: str, action: str) -> Iterator[None]:
    try:
        yield
    except StorageError:
        raise
    except FileNotFoundError:
        raise StorageError(f"{uri}: not found") from None
    except PermissionError:
        raise StorageError(f"{uri}: permission denied while trying to {action}") from None
    except Exception as exc:  # gcsfs/aiohttp raise many kinds; keep the message to one line
        detail = brief(exc, 200)
        raise StorageError(f"{uri}: cannot {action} ({detail})") from None


def exists(uri: str) -> bool:
    fs, path = filesystem(uri)
    with _errors(uri, "check existence"):
        return bool(fs.exists(path))


def isdir(uri: str) -> bool:
    fs, path = filesystem(uri)
    with _errors(uri, "check existence"):
        return bool(fs.isdir(path))


def size(uri: str) -> int:
    fs, path = filesystem(uri)
    with _errors(uri, "read size"):
        return int(fs.size(path))


def ls(uri: str, dirs: bool = True, files: bool = True) -> list[str]:
    """Sorted URIs directly under ``uri``; empty when it does not exist."""
    fs, path = filesystem(uri)
    with _errors(uri, "list"):
        if not fs.exists(path):
            return []
        entries = fs.ls(path, detail=True)
    out = []
    for entry in entries:
        is_dir = entry.get("type") == "directory"
        name = entry["name"].rstrip("/")
        if name == path.rstrip("/"):
            continue
        if (is_dir and dirs) or (not is_dir and files):
            out.append(_to_uri(uri, name, fs))
    return sorted(out)


def glob(pattern: str) -> list[str]:
    """Sorted URIs matching a glob pattern (``*``, ``**``, ``?``)."""
    fs, path = filesystem(pattern)
    with _errors(pattern, "glob"):
        return sorted(_to_uri(pattern, p, fs) for p in fs.glob(path))


def walk_files(uri: str) -> list[str]:
    """Every file under a folder URI, recursively, sorted."""
    fs, path = filesystem(uri)
    with _errors(uri, "list"):
        if not fs.exists(path):
            return []
        return sorted(_to_uri(uri, p, fs) for p in fs.find(path))


def open(uri: str, mode: str = "rb") -> IO[Any]:  # noqa: A001 - mirrors fsspec
    """Open for reading. Writers should use ``atomic_path``/``write_bytes`` instead of ``"wb"``."""
    fs, path = filesystem(uri)
    with _errors(uri, "open"):
        return fs.open(path, mode)


def read_bytes(uri: str) -> bytes:
    fs, path = filesystem(uri)
    with _errors(uri, "read"):
        return fs.cat_file(path)


def read_text(uri: str, encoding: str = "utf-8") -> str:
    data = read_bytes(uri)
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:   # a file another program (or a person) wrote: one line, not a crash
        raise StorageError(f"{uri}: not {encoding} text (byte {exc.start} of {len(data)})") from None


def read_json_object(uri: str) -> dict[str, Any] | None:
    """The JSON object at ``uri``; None, with a warning, when it cannot be read or is not an object."""
    import json

    try:
        data = json.loads(read_text(uri))
    except (StorageError, ValueError) as exc:
        log.warning("ignoring unreadable record %s: %s", uri, exc)
        return None
    return data if isinstance(data, dict) else None


def read_json_objects(uris: list[str], workers: int = 16) -> list[dict[str, Any] | None]:
    """``read_json_object`` of every URI, in a thread pool (many small objects on gs:// are slow one by one);
    one entry per URI, in order."""
    from concurrent.futures import ThreadPoolExecutor

    if not uris:
        return []
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(uris)))) as pool:
        return list(pool.map(read_json_object, uris))


def read_json_records(uris: list[str], workers: int = 16) -> list[dict[str, Any]]:
    """The JSON objects at ``uris`` (``read_json_objects``) without the unreadable ones. Order follows ``uris``."""
    return [r for r in read_json_objects(uris, workers) if r is not None]


def makedirs(uri: str) -> None:
    if is_local(uri):
        with _errors(uri, "create folder"):
            os.makedirs(local_path(uri), exist_ok=True)


# Temp files and folders carry this host and process, so a later run can tell leftovers of a process that
# died (kill -9, OOM) from files a live process is still writing: ``sweep_leftovers``.
_HOST = hashlib.sha1(socket.gethostname().encode()).hexdigest()[:4]
_TMP_MARK = re.compile(r"lanepaint-tmp-([0-9a-f]{4})-(\d+)-")
LEFTOVER_AGE_S = 24 * 3600.0       # a leftover of another host is removed after a day


def temp_prefix(purpose: str = "") -> str:
    """The prefix of this process's temp files and folders in TMPDIR (``tempfile`` calls)."""
    return f"lanepaint-tmp-{_HOST}-{os.getpid()}-{purpose + '-' if purpose else ''}"


def _local_tmp_name(dest: str) -> str:
    folder, name = os.path.split(os.path.abspath(dest))
    return os.path.join(folder, f".{name}.{temp_prefix()}{uuid.uuid4().hex[:8]}")


def _is_leftover(name: str, path: str) -> bool:
    match = _TMP_MARK.search(name)
    if not match:
        return False
    host, pid = match.group(1), int(match.group(2))
    if host == _HOST:
        if pid == os.getpid():
            return False
        try:
            os.kill(pid, 0)
            return False
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
    try:
        return time.time() - os.path.getmtime(path) > LEFTOVER_AGE_S
    except OSError:
        return False


def sweep_leftovers(*roots: str) -> int:
    """Remove temp files under local ``roots`` and temp files and folders in TMPDIR that a dead process of
    this host left (or that are older than a day and of another host); returns how many were removed."""
    places = [tempfile.gettempdir()]
    places += [local_path(r) for r in roots if is_local(r) and os.path.isdir(local_path(r))]
    removed = 0
    for place in places:
        walk = os.walk(place) if place != places[0] else [(place, [], os.listdir(place))]
        for folder, _dirs, names in walk:
            for name in names:
                path = os.path.join(folder, name)
                if not _is_leftover(name, path):
                    continue
                try:
                    if os.path.isdir(path) and not os.path.islink(path):
                        shutil.rmtree(path)
                    else:
                        os.unlink(path)
                    removed += 1
                except OSError as exc:
                    log.debug("could not remove leftover %s: %s", path, exc)
    if removed:
        log.info("removed %d leftover temp file(s) of processes that no longer run", removed)
    return removed


def _replace_local(dest: str, fill: Any) -> None:
    """Write a local file under a temp name beside ``dest`` with ``fill(tmp)``, then move it into place."""
    os.makedirs(os.path.dirname(os.path.abspath(dest)), exist_ok=True)
    tmp = _local_tmp_name(dest)
    try:
        fill(tmp)
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def put_file(local: str | os.PathLike[str], uri: str) -> None:
    """Copy one local file to ``uri`` atomically (temp + rename, or one object upload)."""
    src = os.fspath(local)
    with _errors(uri, "write"):
        if is_local(uri):
            dest = os.path.abspath(local_path(uri))
            if os.path.abspath(src) != dest:
                _replace_local(dest, lambda tmp: shutil.copyfile(src, tmp))
        else:
            fs, path = filesystem(uri)
            fs.put_file(src, path)


def put(local: str | os.PathLike[str], uri: str) -> list[str]:
    """Upload a file or a folder tree to ``uri``; returns the destination URIs of the files."""
    src = os.fspath(local)
    if not os.path.exists(src):
        raise StorageError(f"{src}: not found")
    if os.path.isfile(src):
        put_file(src, uri)
        return [uri]
    pairs = []
    for root, _dirs, names in os.walk(src):
        for name in sorted(names):
            full = os.path.join(root, name)
            rel = os.path.relpath(full, src).replace(os.sep, "/")
            pairs.append((full, join(uri, rel)))
    if is_local(uri) or len(pairs) <= 1:
        for full, dest in pairs:
            put_file(full, dest)
    else:  # one batched call: gcsfs uploads the objects concurrently, each one atomic
        fs, _ = filesystem(uri)
        with _errors(uri, "write"):
            fs.put([p[0] for p in pairs], [filesystem(p[1])[1] for p in pairs])
    return [dest for _, dest in pairs]


def get(uri: str, local: str | os.PathLike[str]) -> str:
    """Download a file URI to a local path (atomically); returns the local path."""
    dest = os.fspath(local)
    fs, path = filesystem(uri)
    with _errors(uri, "download"):
        _replace_local(dest, lambda tmp: shutil.copyfile(path, tmp) if is_local(uri) else fs.get_file(path, tmp))
    return dest


def write_bytes(uri: str, data: bytes) -> None:
    """Write bytes to ``uri`` atomically."""
    with atomic_path(uri) as tmp:
        Path(tmp).write_bytes(data)


def write_text(uri: str, text: str, encoding: str = "utf-8") -> None:
    write_bytes(uri, text.encode(encoding))


def create_exclusive(uri: str, data: bytes) -> bool:
    """Write ``uri`` only if it does not exist, atomically (True), else leave it (False). Locally a complete
    temp file is hard-linked into place; on gs:// the upload carries ``ifGenerationMatch=0``, so of two
    writers exactly one wins, whichever machines they run on."""
    if is_local(uri):
        dest = os.path.abspath(local_path(uri))
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        tmp = _local_tmp_name(dest)
        try:
            Path(tmp).write_bytes(data)
            with _errors(uri, "create"):
                try:
                    os.link(tmp, dest)
                except FileExistsError:
                    return False
            return True
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    fs, path = filesystem(uri)
    with _errors(uri, "create"):
        try:
            fs.pipe_file(path, data, mode="create")
        except FileExistsError:
            return False
    return True


@contextlib.contextmanager
def atomic_path(uri: str, suffix: str | None = None) -> Iterator[str]:
    """Yield a local temp file path; on success it is moved or uploaded to ``uri``.

    On an exception nothing appears at ``uri`` and the temp file is removed. ``suffix`` keeps the
    extension for writers that infer the format from it (default: the URI's own extension).
    """
    ext = suffix if suffix is not None else os.path.splitext(basename(uri))[1]
    if is_local(uri):
        dest = os.path.abspath(local_path(uri))
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        tmp = _local_tmp_name(dest) + ext
        try:
            yield tmp
            with _errors(uri, "write"):
                os.replace(tmp, dest)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    else:
        fd, tmp = tempfile.mkstemp(prefix=temp_prefix(), suffix=ext)
        os.close(fd)
        try:
            yield tmp
            put_file(tmp, uri)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)


def rm(uri: str, recursive: bool = False) -> None:
    """Remove a file (or a tree with ``recursive``); a missing target is not an error."""
    fs, path = filesystem(uri)
    with _errors(uri, "remove"):
        if fs.exists(path):
            fs.rm(path, recursive=recursive)


def fetch(uri: str, cache_dir: str | os.PathLike[str]) -> str:
    """A local path holding the content of ``uri``; remote files are downloaded once per URI.

    The cache key is the URI itself; an entry whose size differs from the remote object is
    downloaded again.
    """
    if is_local(uri):
        path = local_path(uri)
        if not os.path.exists(path):
            raise StorageError(f"{uri}: not found")
        return path
    key = hashlib.sha1(uri.encode("utf-8")).hexdigest()[:16]
    dest = os.path.join(os.fspath(cache_dir), key, basename(uri))
    remote_size = size(uri)
    if os.path.exists(dest) and os.path.getsize(dest) == remote_size:
        log.debug("cache hit %s -> %s", uri, dest)
        os.utime(os.path.dirname(dest))          # most recently used
        return dest
    path = get(uri, dest)
    os.utime(os.path.dirname(dest))
    limit = build_config(StorageSettings).cache_max_gb
    if limit > 0:
        evict(os.fspath(cache_dir), int(limit * 1024**3), keep=os.path.dirname(dest))
    return path


def evict(cache_dir: str, max_bytes: int, keep: str = "") -> int:
    """Remove the least recently used entries of a fetch cache until it holds at most ``max_bytes``
    (never ``keep``, the entry just fetched); returns how many were removed."""
    entries = []
    for name in os.listdir(cache_dir):
        folder = os.path.join(cache_dir, name)
        if not os.path.isdir(folder):
            continue
        total = sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(folder) for f in files)
        entries.append((os.path.getmtime(folder), total, folder))
    used = sum(total for _, total, _ in entries)
    removed = 0
    for _, total, folder in sorted(entries):
        if used <= max_bytes:
            break
        if os.path.abspath(folder) == os.path.abspath(keep):
            continue
        shutil.rmtree(folder, ignore_errors=True)
        used -= total
        removed += 1
    if removed:
        log.info("input cache %s: removed %d least recently used input(s) to stay under %.1f GB", cache_dir, removed,
                 max_bytes / 1024**3)
    return removed

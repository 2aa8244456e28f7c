"""``fetch_dataset(cfg) -> FetchResult``: the PhysicalAI-AV files that some clips need, into a Hugging Face
cache folder, so stage 3 reads them offline (``lanepaint evaluate --dataset-dir``).

What a clip needs: the dataset's metadata (``features.csv``, ``clip_index.parquet``, ``metadata/*``), and for
each camera and the ego motion the chunk archive holding the clip (``camera/<cam>/<cam>.chunk_NNNN.zip``,
``labels/egomotion/egomotion.chunk_NNNN.zip``; an archive holds every clip of its chunk). The metadata is
read first (it maps clips to chunks); then the sizes of the archives are asked for, and the ones not yet
cached are downloaded into the cache's layout (a download cut by a killed job resumes where it stopped on the
next run; a file already cached is not fetched again). The revision is resolved once (``main`` by default, recorded in the
cache's ``refs/main``), so every file comes from the same commit. ``dry_run`` lists the files and bytes
and downloads nothing but the metadata, into a temporary folder that is removed.

A clip that is not in the dataset, or lacks a camera, is reported on one line and the others go on.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import Any

from core.driving_dataset import REPO_FOLDER, REPO_ID, camera_index
from core.edited_clips import parse_video_id
from core.errors import LanepaintError, UsageError
from core.hub_errors import hub_failure
from core.storage import temp_prefix
from vla.config import FetchDatasetConfig

log = logging.getLogger(__name__)

EGOMOTION = "egomotion"
METADATA = ("features.csv", "clip_index.parquet", "metadata/feature_presence.parquet",
            "metadata/data_collection.parquet")
OPTIONAL_METADATA = ("splits/default.parquet",)
CHUNK_BYTES = 1 << 20
DOWNLOAD_TIMEOUT_S = 60.0        # per network read, not for the whole file
SHA256 = re.compile(r"[0-9a-f]{64}")


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(CHUNK_BYTES * 8), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass
class FetchResult:
    revision: str
    dataset_dir: str
    files: list[dict[str, Any]] = field(default_factory=list)     # path, size, cached, clips, status
    failed: dict[str, str] = field(default_factory=dict)          # clip or file -> one-line reason
    dry_run: bool = False

    @property
    def exit_code(self) -> int:
        return 1 if self.failed else 0

    def lines(self) -> list[str]:
        gib = 1024**3
        to_get = [f for f in self.files if not f["cached"]]
        out = [f"PhysicalAI-AV revision {self.revision} -> {self.dataset_dir}"]
        for f in self.files:
            state = "cached" if f["cached"] else ("to download" if self.dry_run else f.get("status", ""))
            out.append(f"  {f['path']:<64} {f['size'] / 1024**2:10.1f} MiB  {state:<12} clips: {', '.join(f['clips'])}")
        total, fetch = sum(f["size"] for f in self.files), sum(f["size"] for f in to_get)
        verb = "to download" if self.dry_run else "downloaded"
        out.append(f"{len(self.files)} file(s), {total / gib:.2f} GiB; {len(to_get)} {verb} ({fetch / gib:.2f} GiB, "
                   f"{fetch:,} bytes), {len(self.files) - len(to_get)} already cached")
        out += [f"FAILED {name}: {reason}" for name, reason in self.failed.items()]
        if not self.dry_run and not self.failed:
            out.append(f"use: lanepaint evaluate --dataset-dir {self.dataset_dir} --dataset-revision {self.revision} ...")
        return out


def wanted_clips(cfg: FetchDatasetConfig) -> dict[str, set[str]]:
    """clip id -> cameras, from the ids and video ids given (a video id adds its camera)."""
    names = list(cfg.clips)
    if cfg.clips_from:
        try:
            with open(cfg.clips_from, encoding="utf-8") as fh:
                names += [ln.split("#", 1)[0].strip() for ln in fh]
        except OSError as exc:
            raise UsageError(f"--clips-from {cfg.clips_from}: {exc.strerror or exc}") from None
    clips: dict[str, set[str]] = {}
    for name in filter(None, (n.strip() for n in names)):
        if "." in name:
            try:
                clip_id, camera = parse_video_id(name)
            except LanepaintError as exc:
                raise UsageError(f"clip {name!r}: {exc}") from None
            clips.setdefault(clip_id, set(cfg.cameras)).add(camera)
        else:
            clips.setdefault(name, set(cfg.cameras))
    if not clips:
        raise UsageError("no clips: the ids given are empty")
    for cameras in clips.values():
        for camera in cameras:
            camera_index(camera)
    return clips


def _hub_error(exc: Exception, what: str) -> LanepaintError:
    """A hub failure as one line naming the file or step (``core.hub_errors``)."""
    failure = hub_failure(exc, REPO_ID, missing="not in the dataset")
    return type(failure)(f"{what}: {failure}")


class _Hub:
    """Downloads into one cache folder at one revision."""

    def __init__(self, cfg: FetchDatasetConfig, cache_dir: str) -> None:
        from huggingface_hub import HfApi

        self.cfg, self.cache_dir = cfg, cache_dir
        self.api = HfApi(endpoint=cfg.endpoint)
        self.revision = cfg.revision or "main"

    def download(self, path: str, revision: str | None = None) -> str:
        from huggingface_hub import hf_hub_download

        try:
            return hf_hub_download(REPO_ID, path, repo_type="dataset", revision=revision or self.revision,
                                   cache_dir=self.cache_dir, endpoint=self.cfg.endpoint)
        except Exception as exc:   # the hub raises many kinds; each becomes one line naming the file
            raise _hub_error(exc, path) from None

    def archive(self, path: str) -> str:
        """Download one (large) archive into the cache, resuming a partial download left by an earlier run:
        ``blobs/<etag>.incomplete`` grows by ranged requests, is checked against the size (and the sha256 the
        hub gives as ETag), then becomes the blob the snapshot links to (the cache layout
        ``huggingface_hub`` reads). One process at a time per file (a lock next to the partial file)."""
        try:
            return self._archive(path)
        except LanepaintError:
            raise
        except Exception as exc:   # network and hub errors: one line naming the file
            raise _hub_error(exc, path) from None

    def _archive(self, path: str) -> str:
        from filelock import FileLock
        from huggingface_hub import get_hf_file_metadata, hf_hub_url
        from huggingface_hub.utils import build_hf_headers, get_session, hf_raise_for_status

        repo = os.path.join(self.cache_dir, REPO_FOLDER)
        pointer = os.path.join(repo, "snapshots", self.revision, *path.split("/"))
        if os.path.isfile(pointer):
            return pointer
        url = hf_hub_url(REPO_ID, path, repo_type="dataset", revision=self.revision, endpoint=self.cfg.endpoint)
        meta = get_hf_file_metadata(url, endpoint=self.cfg.endpoint)
        if not meta.etag or meta.size is None:
            raise LanepaintError(f"{path}: the hub gave no ETag or size for it")
        blob = os.path.join(repo, "blobs", meta.etag)
        partial = blob + ".incomplete"
        os.makedirs(os.path.dirname(blob), exist_ok=True)
        with FileLock(partial + ".lock"):
            if not os.path.isfile(blob):
                have = os.path.getsize(partial) if os.path.exists(partial) else 0
                if have > meta.size:
                    have = 0
                if have < meta.size:
                    headers = build_hf_headers()
                    if have:
                        headers["Range"] = f"bytes={have}-"
                        log.info("%s: resuming at %.1f of %.1f MiB", path, have / 1024**2, meta.size / 1024**2)
                    with get_session().stream("GET", url, headers=headers, follow_redirects=True,
                                              timeout=DOWNLOAD_TIMEOUT_S) as response:
                        hf_raise_for_status(response)
                        if have and response.status_code != 206:    # the server ignored the range
                            have = 0
                        with open(partial, "ab" if have else "wb") as fh:
                            for chunk in response.iter_bytes(CHUNK_BYTES):
                                fh.write(chunk)
                got = os.path.getsize(partial)
                if got != meta.size:
                    raise LanepaintError(f"{path}: {got:,} of {meta.size:,} bytes arrived (rerun to resume)")
                if SHA256.fullmatch(meta.etag) and _sha256(partial) != meta.etag:
                    os.remove(partial)
                    raise LanepaintError(f"{path}: the download does not match the hub's sha256 (removed; rerun)")
                os.replace(partial, blob)
        os.makedirs(os.path.dirname(pointer), exist_ok=True)
        if not os.path.lexists(pointer):
            try:
                os.symlink(os.path.relpath(blob, os.path.dirname(pointer)), pointer)
            except OSError:             # no symlinks (some filesystems): the snapshot holds the file itself
                shutil.copyfile(blob, pointer)
        return pointer

    def sizes(self, paths: list[str]) -> dict[str, int]:
        try:
            infos = self.api.get_paths_info(REPO_ID, paths, repo_type="dataset", revision=self.revision)
        except Exception as exc:
            raise _hub_error(exc, "listing the chunk archives") from None
        return {info.path: int(info.size) for info in infos}

    def cached(self, path: str) -> bool:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(REPO_ID, path, cache_dir=self.cache_dir, revision=self.revision,
                                       repo_type="dataset")
        return isinstance(found, str)


def _metadata(hub: _Hub) -> tuple[Any, Any, Any]:
    """(features table, clip index, feature presence) at the hub's revision, which becomes a commit id."""
    import pandas as pd

    first = hub.download(METADATA[0])
    commit = os.path.basename(os.path.dirname(first))     # .../snapshots/<commit>/features.csv
    if len(commit) == 40:
        hub.revision = commit
    paths = {name: hub.download(name) for name in METADATA[1:]}
    for name in OPTIONAL_METADATA:
        try:
            hub.download(name)
        except LanepaintError:
            log.debug("%s: not in this revision", name)
    features = pd.read_csv(first, index_col="feature")
    return features, pd.read_parquet(paths["clip_index.parquet"]), pd.read_parquet(
        paths["metadata/feature_presence.parquet"])


def plan_files(clips: dict[str, set[str]], features: Any, index: Any, presence: Any,
               failed: dict[str, str]) -> dict[str, list[str]]:
    """Archive path -> the clips that need it; a clip the dataset lacks (or lacks a camera of) goes to
    ``failed``."""
    files: dict[str, list[str]] = {}
    for clip_id, cameras in sorted(clips.items()):
        if clip_id not in index.index:
            failed[clip_id] = "not in the dataset at this revision"
            continue
        chunk = int(index.at[clip_id, "chunk"])
        wanted = sorted(cameras, key=camera_index) + [EGOMOTION]
        missing = [f for f in wanted if f not in features.index or (
            f in presence.columns and clip_id in presence.index and not bool(presence.at[clip_id, f]))]
        if missing:
            failed[clip_id] = f"no {', '.join(missing)} in the dataset"
            continue
        for feature in wanted:
            path = str(features.at[feature, "chunk_path"]).format(chunk_id=chunk)
            files.setdefault(path, []).append(clip_id)
    return files


def fetch_dataset(cfg: FetchDatasetConfig) -> FetchResult:
    """Download (or with ``dry_run`` list) what the clips of ``cfg`` need; see the module docstring."""
    import huggingface_hub.constants as hf_constants

    clips = wanted_clips(cfg)
    if hf_constants.HF_HUB_OFFLINE:
        raise UsageError("HF_HUB_OFFLINE is set: fetch-dataset downloads from the hub; unset it for this command")
    target = cfg.dataset_dir or hf_constants.HF_HUB_CACHE
    work = tempfile.mkdtemp(prefix=temp_prefix("fetch")) if cfg.dry_run else target
    try:
        hub = _Hub(cfg, work)
        features, index, presence = _metadata(hub)
        result = FetchResult(hub.revision, target, dry_run=cfg.dry_run)
        files = plan_files(clips, features, index, presence, result.failed)
        sizes = hub.sizes(list(files)) if files else {}
        real = _Hub(cfg, target)
        real.revision = hub.revision
        for path, users in files.items():
            if path not in sizes:
                result.failed[path] = "listed by features.csv but not in the repository"
                continue
            result.files.append({"path": path, "size": sizes[path], "cached": real.cached(path), "clips": users})
        if not cfg.dry_run:
            _download(real, [f for f in result.files if not f["cached"]], cfg.workers, result)
    finally:
        if cfg.dry_run:
            shutil.rmtree(work, ignore_errors=True)
    return result


def _download(hub: _Hub, files: list[dict[str, Any]], workers: int, result: FetchResult) -> None:
    """The files not cached yet, ``workers`` at a time (``huggingface_hub`` shows a progress bar per file on a
    terminal); a line per finished file."""
    total = len(files)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        jobs = {pool.submit(hub.archive, f["path"]): f for f in files}
        for done, job in enumerate(as_completed(jobs), 1):
            entry = jobs[job]
            try:
                job.result()
                entry["status"] = "downloaded"
            except LanepaintError as exc:
                entry["status"] = "failed"
                result.failed[entry["path"]] = str(exc)
            log.info("[%d/%d] %s: %s (%.1f MiB)", done, total, entry["path"], entry["status"], entry["size"] / 1024**2)

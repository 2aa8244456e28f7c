"""``lanepaint fetch-models``: every checkpoint a full run needs, at pinned commits, into one hub cache.

For each checkpoint of ``model_catalog.checkpoints`` (the stage configs resolved as a run would resolve them:
defaults < ``--config`` file < environment): the revision (a pin given with ``--revision REPO=REV``, else the
one the cache's lock holds, else ``main``) is resolved to its commit, the files the loaders read are listed
with their sizes, and, unless ``--dry-run``, downloaded with ``huggingface_hub.snapshot_download`` (resumable,
each file checked by the hub library) into the cache. The commits are then written to the cache's
``lanepaint-models.lock.json`` (``core.model_lock``), which every loader reads. Stages then run from the
cache, offline if asked (``HF_HUB_OFFLINE=1``): mount it as the pods' ``HF_HOME`` volume or copy it to a
bucket and back.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, ClassVar

from core import model_lock
from core.config import Settings, build_config, setting
from core.errors import LanepaintError, UsageError, brief
from core.hub_errors import hub_failure
from orchestrator.model_catalog import Checkpoint, checkpoints

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FetchModelsConfig(Settings):
    """``lanepaint fetch-models``: checkpoints of a full run into a hub cache, pinned in its lock file."""

    SECTION: ClassVar[str] = "fetch-models"

    stages: str = setting("123", help="the stages whose checkpoints to fetch: 1 SAM2, 2 edit, 3 driving model")
    cache_dir: str | None = setting(None, help="hub cache folder to fill (the pods' HF_HOME/hub)",
                                    default_text="HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub")
    revisions: tuple[str, ...] = setting((), help="pins REPO=REV (a commit, tag or branch); others keep the lock's "
                                         "commit, else main", flag="--revision", nargs="+", metavar="REPO=REV",
                                         env=None)
    endpoint: str | None = setting(None, help="hub endpoint (a mirror)", default_text="https://huggingface.co",
                                   aliases=("HF_ENDPOINT",))
    workers: int = setting(8, help="files downloaded at the same time")
    dry_run: bool = setting(False, help="list the checkpoints, their commits, files and sizes; download nothing",
                            env=None)

    def validate(self) -> None:
        if not self.stages or set(self.stages) - set("123"):
            raise UsageError(f"--stages {self.stages!r}: use digits 1, 2, 3 (e.g. 123, 2)")
        for pin in self.revisions:
            repo, _, rev = pin.partition("=")
            if not (repo and rev and "/" in repo):
                raise UsageError(f"--revision {pin!r}: use REPO=REV, e.g. THUDM/CogVideoX-5b-I2V=<commit>")
        if self.workers < 1:
            raise UsageError(f"--workers must be >= 1, got {self.workers}")

    def pins(self) -> dict[str, str]:
        return dict(p.split("=", 1) for p in self.revisions)


@dataclass
class Resolved:
    checkpoint: Checkpoint
    requested: str
    commit: str = ""
    files: list[tuple[str, int]] = field(default_factory=list)
    cached: int = 0          # files already in the cache
    status: str = ""


@dataclass
class FetchModelsResult:
    cache_dir: str
    dry_run: bool
    items: list[Resolved] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    lock: str = ""

    @property
    def exit_code(self) -> int:
        return 1 if self.failed else 0

    def lines(self) -> list[str]:
        gib = 1024**3
        out = [f"checkpoints for a full run -> {self.cache_dir}"]
        for r in self.items:
            size = sum(s for _, s in r.files)
            state = r.status or ("cached" if r.cached == len(r.files) else
                                 f"{len(r.files) - r.cached} file(s) to download" if self.dry_run else "")
            out.append(f"  {r.checkpoint.stage:<8} {r.checkpoint.role:<34} {r.checkpoint.repo_id:<40} "
                       f"@ {r.commit[:12] or r.requested:<12} {len(r.files):4d} files {size / gib:8.2f} GiB  {state}")
        total = sum(s for r in self.items for _, s in r.files)
        out.append(f"{len(self.items)} checkpoint(s), {total / gib:.2f} GiB")
        out += [f"FAILED {repo}: {reason}" for repo, reason in self.failed.items()]
        if self.lock:
            out.append(f"pinned in {self.lock}: loaders read these commits (run with HF_HOME pointing at the cache's "
                       "parent, HF_HUB_OFFLINE=1 to stay offline)")
        return out


def _configs(config_file: Any) -> tuple[Any, Any, Any]:
    """The stage configs a full run would use (their inputs do not matter here: placeholders fill them)."""
    from generation.config import EditConfig
    from segmentation.config import SegmentConfig
    from vla.config import EvaluateConfig

    def build(cls: type, **fixed: Any) -> Any:
        file = config_file.values_for(cls) if config_file is not None else None
        return build_config(cls, {"profile": "full", **fixed}, file=file)

    return (build(SegmentConfig), build(EditConfig, data_run_id="fetch-models"),
            build(EvaluateConfig, video_data="fetch-models"))


def _unreachable(exc: Exception) -> bool:
    """Offline mode or no connection: every other checkpoint would fail the same way."""
    from huggingface_hub.errors import OfflineModeIsEnabled

    return isinstance(exc, OfflineModeIsEnabled) or any(
        word in type(exc).__name__ for word in ("ConnectError", "ConnectionError", "ConnectTimeout"))


def _resolve(api: Any, item: Resolved, cache_dir: str) -> None:
    from huggingface_hub import try_to_load_from_cache

    info = api.model_info(item.checkpoint.repo_id, revision=item.requested, files_metadata=True)
    item.commit = str(info.sha)
    item.files = sorted((s.rfilename, int(s.size or 0)) for s in info.siblings or []
                        if item.checkpoint.wants(s.rfilename))
    if not item.files:
        raise LanepaintError(f"no files match {', '.join(item.checkpoint.patterns or ())}")
    item.cached = sum(isinstance(try_to_load_from_cache(item.checkpoint.repo_id, name, cache_dir=cache_dir,
                                                        revision=item.commit), str) for name, _ in item.files)


def fetch_models(cfg: FetchModelsConfig, config_file: Any = None) -> FetchModelsResult:
    try:
        from huggingface_hub import HfApi, snapshot_download
    except ImportError:
        raise UsageError("fetch-models needs huggingface_hub (pip install huggingface_hub)") from None
    segment, edit, evaluate = _configs(config_file)
    cache_dir = model_lock.hub_cache_dir(cfg.cache_dir)
    lock = model_lock.read_lock(cache_dir)["repos"]
    pins = cfg.pins()
    result = FetchModelsResult(cache_dir, cfg.dry_run)
    api = HfApi(endpoint=cfg.endpoint)
    for checkpoint in checkpoints(cfg.stages, segment, edit, evaluate):
        requested = pins.get(checkpoint.repo_id) or (lock.get(checkpoint.repo_id) or {}).get("revision") or "main"
        item = Resolved(checkpoint, requested)
        result.items.append(item)
        try:
            _resolve(api, item, cache_dir)
        except Exception as exc:   # the hub raises many kinds; each becomes one line naming the repository
            if _unreachable(exc):
                raise LanepaintError(f"cannot reach the hub at {cfg.endpoint or 'https://huggingface.co'}: "
                                     f"{brief(exc, 160)}") from None
            item.status = "FAILED"
            result.failed[checkpoint.repo_id] = exc.args[0] if isinstance(exc, LanepaintError) else str(
                hub_failure(exc, checkpoint.repo_id))
            continue
        if cfg.dry_run:
            continue
        log.info("%s @ %s: %d file(s)", checkpoint.repo_id, item.commit[:12], len(item.files))
        try:
            snapshot_download(checkpoint.repo_id, revision=item.commit, cache_dir=cache_dir,
                              allow_patterns=list(checkpoint.patterns) if checkpoint.patterns else None,
                              endpoint=cfg.endpoint, max_workers=cfg.workers)
        except Exception as exc:
            item.status = "FAILED"
            result.failed[checkpoint.repo_id] = str(hub_failure(exc, checkpoint.repo_id))
            continue
        item.status, item.cached = "fetched", len(item.files)
    done = {r.checkpoint.repo_id: {"revision": r.commit, "requested": r.requested, "files": len(r.files),
                                   "bytes": sum(s for _, s in r.files)}
            for r in result.items if r.status == "fetched"}
    if done:
        result.lock = model_lock.write_lock(done, cache_dir)
    return result

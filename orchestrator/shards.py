"""Fan-out of one stage over video shards, and the per-run aggregation after the shards.

A stage run is: list its items (videos) -> cut them into shards -> run the stage function once per
shard (``run_shard``; models load once per shard, per-video failures are recorded inside) ->
``finalize``: merge every shard's per-item records into the run's ``manifest.json`` and rewrite
what is per run (stage 2's per-instruction reports, stage 3's run report). Used by the Flyte tasks
(``orchestrator.flyte_tasks``) and testable without flyte.

Shards of stage 1 keep every input with the same video id together (the duplicate check of
``run_segment`` works within a call); stage 2 and 3 shard by video id, so one clip's instructions
share a shard.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Sequence
from typing import Any, TypeVar

from core import storage
from core.chunks import expand_inputs
from core.errors import StorageError, UsageError
from core.layout import Layout
from core.manifest import MANIFEST_NAME, RunManifest
from core.runner import FAILED, OK, SKIPPED, ItemResult, RunSummary
from orchestrator.plan import BY_NAME, StagePlan, StageReport, build_stage_config, load

log = logging.getLogger(__name__)

T = TypeVar("T")

def split(items: Sequence[T], concurrency: int, videos_per_shard: int = 0) -> list[list[T]]:
    """Contiguous shards: ``videos_per_shard`` items each, or (0) ``concurrency`` near-equal ones."""
    items = list(items)
    if not items:
        return []
    size = videos_per_shard or -(-len(items) // max(1, concurrency))
    return [items[i:i + size] for i in range(0, len(items), size)]


def _groups(uris: list[str]) -> list[list[str]]:
    """Stage-1 inputs grouped by video id (file stem), in input order."""
    groups: dict[str, list[str]] = {}
    for uri in uris:
        groups.setdefault(os.path.splitext(storage.basename(uri))[0], []).append(uri)
    return list(groups.values())


def stage_items(stage: StagePlan) -> list[str]:
    """The items a stage shards over: video URIs (1) or video ids (2, 3). May be empty."""
    cfg = stage.config
    if stage.spec.name == "segment":
        return list(cfg["inputs"])
    layout = Layout(cfg["output_root"])
    if stage.spec.name == "edit":
        from core.vp_data import list_vp_videos

        return list(cfg["video_ids"]) or list_vp_videos(layout, cfg["data_run_id"])
    from core.edited_clips import find_edited_videos
    from vla.config import EvaluateConfig

    evaluate = build_stage_config(stage.spec, cfg, environ={})
    assert isinstance(evaluate, EvaluateConfig)
    try:
        videos = find_edited_videos(cfg["video_data"])
    except UsageError:
        return []
    return list(dict.fromkeys(v.video_id for v in videos if evaluate.wants(v.video_id, v.clip_guess, v.file_name)))


def shard_configs(stage: StagePlan, concurrency: int, videos_per_shard: int = 0) -> list[str]:
    """One JSON config per shard (sorted keys, so equal shards give equal Flyte cache keys)."""
    name, cfg = stage.spec.name, stage.config
    if name == "segment":
        videos, bad = expand_inputs(list(cfg["inputs"]))   # chunks:// listed once, here
        shards = [[uri for group in part for uri in group]
                  for part in split(_groups(videos), concurrency, videos_per_shard)]
        if bad:   # entries that resolve to no video: a shard reports them as failed items
            shards = shards or [[]]
            shards[0] = list(bad) + shards[0]
        return [_dumps(cfg | {"inputs": shard}) for shard in shards]
    items = stage_items(stage)
    key = "video_ids" if name == "edit" else "video_name"
    return [_dumps(cfg | {key: shard if name == "edit" else ",".join(shard)})
            for shard in split(items, concurrency, videos_per_shard)]


def _dumps(values: dict[str, Any]) -> str:
    return json.dumps(values, sort_keys=True)


def run_shard(stage: str, config_json: str, fn: Any = None) -> StageReport:
    """Run the stage function on one shard's config; per-video failures come back in ``failed``."""
    spec = BY_NAME[stage]
    cfg = build_stage_config(spec, json.loads(config_json), environ={})
    start = time.perf_counter()
    result = (fn or load(spec.function))(cfg)
    return StageReport.from_result(result, time.perf_counter() - start)


def combine(stage: str, run_id: str, reports: Sequence[StageReport]) -> StageReport:
    """The stage's report from its shards' reports."""
    out = StageReport(stage=stage, run_id=run_id, shards=len(reports))
    for r in reports:
        out.run_uri = out.run_uri or r.run_uri
        out.manifest_uri = out.manifest_uri or r.manifest_uri
        out.ok += r.ok
        out.skipped += r.skipped
        out.failed.update(r.failed)
        out.extra.update(r.extra)
    return out


def _summary(stage: str, report: StageReport) -> RunSummary:
    summary = RunSummary(stage)
    summary.results += [ItemResult(i, OK) for i in report.ok] + [ItemResult(i, SKIPPED) for i in report.skipped]
    summary.results += [ItemResult(i, FAILED, error=e) for i, e in report.failed.items()]
    return summary


def _read_json(uri: str) -> dict[str, Any]:
    try:
        return json.loads(storage.read_text(uri)) if storage.exists(uri) else {}
    except (StorageError, ValueError) as exc:
        log.warning("ignoring unreadable %s: %s", uri, exc)
        return {}


def finalize(stage: str, config_json: str, reports: Sequence[StageReport]) -> StageReport:
    """After every shard of a stage: one manifest for the run, and the run-level reports."""
    spec = BY_NAME[stage]
    cfg = build_stage_config(spec, json.loads(config_json), environ={})
    combined = combine(stage, cfg.run_id, reports)
    run_uri = spec.run_uri(Layout(cfg.output_root), cfg.run_id)
    combined.run_uri = run_uri
    summary = _summary(stage, combined)
    if spec.run_reports:   # the stage rewrites what is per run (reports) from every shard's records
        load(spec.run_reports)(cfg, summary)
    previous = _read_json(storage.join(run_uri, MANIFEST_NAME))     # the last shard's models
    manifest = RunManifest(stage, run_uri, cfg.run_id, cfg, cfg.profile, previous.get("models"))
    combined.manifest_uri = manifest.finalize(summary)
    return combined

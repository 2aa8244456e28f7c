"""Fan-out of one stage over shards of its items, and the per-run aggregation after the shards.

A stage run is: list its items (``StageSpec.item_groups``) -> cut them into shards -> run the stage
function once per shard (``run_shard``; models load once per shard, per-item failures are recorded
inside) -> ``finalize``: merge every shard's per-item records into the run's ``manifest.json`` and
rewrite what is per run (``StageSpec.run_reports``). Used by the Flyte tasks
(``orchestrator.flyte_tasks``) and testable without flyte.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from typing import Any

from core import storage
from core.config import build_config
from core.layout import Layout
from core.manifest import MANIFEST_NAME, RunManifest
from core.runner import FAILED, OK, SKIPPED, ItemResult, RunSummary, Terminated, split_items
from core.stage_spec import StageSpec, load
from orchestrator.plan import BY_NAME, StagePlan
from orchestrator.results import StageReport

log = logging.getLogger(__name__)


def stage_config(spec: StageSpec, values: dict[str, Any]) -> Any:
    """A stage config rebuilt from planned values alone (no file, no environment: they travelled resolved)."""
    return build_config(spec.config, values, environ={})


def shard_configs(stage: StagePlan, concurrency: int, videos_per_shard: int = 0) -> list[str]:
    """One JSON config per shard (sorted keys, so equal shards give equal Flyte cache keys)."""
    groups = stage.spec.item_groups(stage_config(stage.spec, stage.config))
    return [json.dumps(stage.config | stage.spec.shard_values(part), sort_keys=True)
            for part in split_items(groups, concurrency, videos_per_shard)]


def run_shard(stage: str, config_json: str) -> StageReport:
    """Run the stage function on one shard's config; per-item failures come back in ``failed``."""
    spec = BY_NAME[stage]
    cfg = stage_config(spec, json.loads(config_json))
    start = time.perf_counter()
    result = load(spec.run)(cfg)
    if result.interrupted:        # the stage wrote its manifest; the DAG stops here instead of going on
        raise KeyboardInterrupt if result.interrupted == "SIGINT" else Terminated
    return StageReport.from_result(result, time.perf_counter() - start, spec.number)


def stale_shards(run_uri: str, reports: Sequence[StageReport]) -> list[int]:
    """Indices of shard reports that list finished items whose records are gone from the run root: a Flyte
    cache hit for outputs someone deleted. Those shards must run again (without the cache). One listing of
    the records folder, no record read."""
    from core.ids import item_file_name
    from core.manifest import ITEMS_DIR

    if not any(r.ok for r in reports):
        return []
    present = {storage.basename(uri) for uri in storage.ls(storage.join(run_uri, ITEMS_DIR), dirs=False)}
    return [i for i, r in enumerate(reports) if any(item_file_name(item) not in present for item in r.ok)]


def combine(spec: StageSpec, run_id: str, reports: Sequence[StageReport]) -> StageReport:
    """The stage's report from its shards' reports."""
    out = StageReport(stage=spec.name, run_id=run_id, shards=len(reports), number=spec.number)
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


def finalize(stage: str, config_json: str, reports: Sequence[StageReport]) -> StageReport:
    """After every shard of a stage: one manifest for the run, and the run-level reports."""
    spec = BY_NAME[stage]
    cfg = stage_config(spec, json.loads(config_json))
    combined = combine(spec, cfg.run_id, reports)
    run_uri = spec.run_uri(Layout(cfg.output_root), cfg.run_id)
    combined.run_uri = run_uri
    summary = _summary(stage, combined)
    if spec.run_reports:   # the stage rewrites what is per run (reports) from every shard's records
        load(spec.run_reports)(cfg, summary)
    last = storage.join(run_uri, MANIFEST_NAME)                      # the last shard's manifest: its models
    previous = (storage.read_json_object(last) or {}) if storage.exists(last) else {}
    manifest = RunManifest(stage, run_uri, cfg.run_id, cfg, cfg.profile, previous.get("models"))
    combined.manifest_uri = manifest.finalize(summary)
    return combined

"""Stage 3: ``run_evaluate(cfg)`` plans on original vs edited clips and reports how the plan moved.

Order of work: validate the run id, output root and input (usage errors before anything is
written), load the trajectory model once, open the PhysicalAI-AV dataset once (after the model, so
a model download is not blocked by the dataset's offline switch), then every edited clip through
``vla.dual_inference`` (per-clip failures recorded, the run goes on; complete clips skipped unless
``overwrite``), then the report, the summary and the manifest.
"""

from __future__ import annotations

import json
import logging

from core import storage
from core.claims import ClaimStore
from core.driving_dataset import camera_index
from core.edited_clips import EditedVideo, find_edited_videos
from core.errors import LanepaintError, StorageError, UsageError
from core.ids import validate_id
from core.layout import Layout
from core.manifest import RunManifest
from core.model_fingerprint import weights_record
from core.runner import ItemRunner, RunSummary, StageResult
from vla.config import EvaluateConfig
from vla.driving_data import DrivingData
from vla.dual_inference import EvalContext, evaluate_video, is_complete, output_uris
from vla.models import load_model
from vla.report import write_run_report

log = logging.getLogger(__name__)

STAGE = "evaluate"


def delta_plot_uri(layout: Layout, run_id: str) -> str:
    return storage.join(layout.alpamayo_run(run_id), f"{run_id}_minade_delta.png")


def _check_usage(cfg: EvaluateConfig) -> list[EditedVideo]:
    if not cfg.run_id:
        raise UsageError("--run-id is required")
    validate_id(cfg.run_id, "run id")
    storage.check_output_root(cfg.output_root)
    for camera in cfg.cameras:
        try:
            camera_index(camera)
        except LanepaintError as exc:
            raise UsageError(f"--cameras: {exc}") from None
    videos = find_edited_videos(cfg.video_data)
    chosen = [v for v in videos if cfg.wants(v.video_id, v.clip_guess, v.file_name)]
    if not chosen:
        raise UsageError(f"--video-name {cfg.video_name!r} matches none of the {len(videos)} edited clip(s) "
                         f"under {cfg.video_data}")
    return chosen


def run_evaluate(cfg: EvaluateConfig) -> StageResult:
    videos = _check_usage(cfg)
    layout = Layout(cfg.output_root)
    run_uri = layout.alpamayo_run(cfg.run_id)
    storage.sweep_leftovers(run_uri)
    kind = cfg.resolved_model
    model = load_model(kind, profile=cfg.profile, model_path=cfg.model_path, num_traj_samples=cfg.num_traj_samples,
                       device=cfg.device, max_new_tokens=int(cfg.max_generation_length),
                       processor_path=cfg.processor_path, offline=cfg.model_offline, cache_dir=cfg.cache_dir)
    baseline = (load_model("constant-velocity", profile=cfg.profile, model_path="", num_traj_samples=1)
                if cfg.baseline and kind != "constant-velocity" else None)
    data = DrivingData(cfg.dataset_dir, cfg.dataset_revision, cfg.dataset_offline)

    manifest = RunManifest(STAGE, run_uri, cfg.run_id, cfg, cfg.profile)
    described = model.describe()
    manifest.set_model("trajectory_model", {**described, **weights_record(
        cfg.profile, [getattr(model, "model", None)], [str(described.get("source", ""))], cfg.cache_dir)})
    if baseline is not None:
        manifest.set_model("baseline", baseline.describe())
    manifest.set_model("dataset", data.describe())
    ctx = EvalContext(cfg, layout, model, data, cfg.cache_dir or storage.DEFAULT_CACHE_DIR, baseline)
    log.info("evaluate %s: %d edited clip(s), model %s, outputs under %s", cfg.run_id, len(videos), kind, run_uri)
    runner = ItemRunner(STAGE, item_id=lambda v: v.item_id, is_done=lambda v: is_complete(ctx, v),
                        overwrite=cfg.overwrite, on_result=manifest.record, timeout=cfg.item_timeout,
                        invalidate=lambda v: storage.rm(output_uris(ctx, v)["inference"]),
                        claims=ClaimStore(run_uri))
    summary = runner.run(videos, lambda video, timings: evaluate_video(ctx, video, timings))

    header = {"run_id": cfg.run_id, "stage": STAGE, "model": model.name, "model_description": model.describe(),
              "baseline": baseline.name if baseline is not None else None,
              "profile": cfg.profile, "video_data": cfg.video_data, "dataset": data.describe()}
    report_uri, summary_uri = layout.alpamayo_report(cfg.run_id), layout.alpamayo_summary(cfg.run_id)
    write_run_report(run_uri, report_uri, summary_uri, delta_plot_uri(layout, cfg.run_id), header, summary,
                     cfg.bootstrap_samples, cfg.permutation_samples, cfg.seed)
    manifest_uri = manifest.finalize(summary)
    log.info("report: %s", report_uri)
    return StageResult.from_summary(summary, cfg.run_id, cfg.output_root, run_uri, manifest_uri,
                                    next_command="" if cfg.render else f"lanepaint render {run_uri}",
                                    report_uri=report_uri, summary_uri=summary_uri)


REPORT_HEADER_KEYS = ("run_id", "stage", "model", "model_description", "baseline", "profile", "dataset")


def write_run_reports(cfg: EvaluateConfig, summary: RunSummary) -> None:
    """After every shard of a run: the run report and summary over every shard's clips (the header
    comes from the summary a shard wrote)."""
    layout = Layout(cfg.output_root)
    summary_uri = layout.alpamayo_summary(cfg.run_id)
    try:
        previous = json.loads(storage.read_text(summary_uri))
    except (StorageError, ValueError):
        raise LanepaintError(f"stage 3 run {cfg.run_id}: no shard wrote a readable {summary_uri}") from None
    header = {k: previous.get(k) for k in REPORT_HEADER_KEYS} | {"video_data": cfg.video_data}
    write_run_report(layout.alpamayo_run(cfg.run_id), layout.alpamayo_report(cfg.run_id), summary_uri,
                     delta_plot_uri(layout, cfg.run_id), header, summary, cfg.bootstrap_samples,
                     cfg.permutation_samples, cfg.seed)

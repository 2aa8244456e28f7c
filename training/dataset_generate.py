"""``generate_dataset(cfg) -> StageResult``: driving videos -> a captioned inpainting dataset in the
format of ``training.lane_dataset`` (train.csv, images/, masks/), at ``cfg.output``.

Steps: discover the videos (``dataset_sources``); skip videos whose record covers the requested
frames (and, inside the others, samples that have a record) unless ``overwrite``; deal the rest to
one worker per device (``dataset_worker``: SAM2 image mode + stage-1 cleanup + captions, models
loaded once per device; several devices run in spawned processes); then assemble ``train.csv`` and
``captions.jsonl`` from every record in the dataset folder (so a crash loses nothing, and runs over
further videos add to the same dataset) and write ``manifest.json`` with per-chunk counts.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
from collections import defaultdict
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Any

from core import storage
from core.errors import one_line
from core.ids import new_run_id
from core.manifest import RunManifest
from core.runner import FAILED, SKIPPED, ItemResult, RunSummary, StageResult, split_items
from training.dataset_config import DatasetGenerateConfig
from training.dataset_sources import VideoJob, discover_videos, plan_devices, plan_jobs
from training.dataset_worker import (
    RECORDS_DIR,
    STAGE,
    VIDEOS_DIR,
    CaptionerFactory,
    WorkerReport,
    WorkerTask,
    run_worker,
    run_worker_process,
)
from training.lane_dataset import CAPTIONS_JSONL, MANIFEST_JSON, DatasetRow, write_rows

log = logging.getLogger(__name__)

CHUNK_COUNTS = ("videos", "samples", "dropped_low_coverage", "frames_past_end")


@dataclass
class DatasetState:
    """What the dataset folder already holds: finished videos and sample records."""

    videos: dict[str, dict[str, Any]]
    sample_names: set[str]

    @classmethod
    def read(cls, root: str, workers: int) -> DatasetState:
        video_uris = [u for u in storage.ls(storage.join(root, VIDEOS_DIR), dirs=False) if u.endswith(".json")]
        videos = {str(r.get("video_id")): r for r in storage.read_json_records(video_uris, workers)}
        names = {storage.basename(u)[:-5] for u in storage.ls(storage.join(root, RECORDS_DIR), dirs=False)
                 if u.endswith(".json")}
        return cls(videos, names)

    def covers(self, job: VideoJob, frames: Sequence[int]) -> bool:
        record = self.videos.get(job.video_id or "")
        return record is not None and set(frames) <= set(record.get("frames_requested", []))


def _dispatch(tasks: list[WorkerTask], captioner_factory: CaptionerFactory | None,
              root: str) -> list[WorkerReport]:
    """One worker in this process, or one spawned process per device."""
    if len(tasks) == 1:
        return [run_worker(tasks[0], captioner_factory)]
    reports = []
    context = multiprocessing.get_context("spawn")   # CUDA cannot be used in forked children
    with ProcessPoolExecutor(max_workers=len(tasks), mp_context=context) as pool:
        futures = {pool.submit(run_worker_process, task, captioner_factory): task for task in tasks}
        for future in as_completed(futures):
            task = futures[future]
            try:
                reports.append(future.result())
            except Exception as exc:  # a worker that died or could not load its models
                reason = f"worker on {task.device} stopped: {one_line(exc)}"
                log.error(reason)
                finished = DatasetState.read(root, 8).videos
                reports.append(WorkerReport(task.device, [ItemResult(j.item_id, FAILED, error=reason)
                                                          for j in task.jobs if j.video_id not in finished]))
    return reports


@dataclass
class Assembly:
    rows: list[DatasetRow]
    chunks: dict[str, dict[str, int]]
    train_csv: str


def assemble(root: str, workers: int) -> Assembly:
    """``train.csv`` and ``captions.jsonl`` from every record under ``root``, and per-chunk counts."""
    state = DatasetState.read(root, workers)
    samples: dict[str, dict[str, Any]] = {}
    for video in state.videos.values():
        for record in video.get("samples", []):
            samples[record["sample"]] = record
    loose = sorted(state.sample_names - set(samples))   # videos that stopped half-way
    for record in storage.read_json_records([storage.join(root, RECORDS_DIR, f"{n}.json") for n in loose], workers):
        samples[record["sample"]] = record
    chunks: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(CHUNK_COUNTS, 0))
    for video in state.videos.values():
        counts = chunks[video.get("chunk", "?")]
        counts["videos"] += 1
        counts["frames_past_end"] += len(video.get("frames_past_end", []))
    kept = []
    for name in sorted(samples):
        record = samples[name]
        counts = chunks[record.get("chunk", "?")]
        if record.get("status") == "kept":
            kept.append(record)
            counts["samples"] += 1
        else:
            counts["dropped_low_coverage"] += 1
    rows = [DatasetRow(r["image"], r["mask"], r["prompt"], r["prompt"]) for r in kept]
    captions = "".join(json.dumps({k: r.get(k) for k in ("sample", "video_id", "frame", "chunk", "image", "prompt",
                                                          "count", "color", "pattern", "parsed_from",
                                                          "parse_notes", "raw_answer")}) + "\n" for r in kept)
    storage.write_text(storage.join(root, CAPTIONS_JSONL), captions)
    train_csv = write_rows(root, rows)
    return Assembly(rows, dict(sorted(chunks.items())), train_csv)


def generate_dataset(cfg: DatasetGenerateConfig, captioner_factory: CaptionerFactory | None = None) -> StageResult:
    """Build (or extend, or resume) the dataset at ``cfg.output``; see the module docstring.

    ``captioner_factory(policy) -> captioner`` replaces Qwen (tests use scripted captioners).
    """
    storage.check_output_root(cfg.output)
    run_id = new_run_id()
    videos, bad_sources = discover_videos(cfg.sources, cfg.start_index, cfg.limit)
    jobs = plan_jobs(videos)
    manifest = RunManifest(STAGE, cfg.output, run_id, cfg, cfg.profile)
    summary = RunSummary(STAGE)
    for source, error in bad_sources.items():
        summary.add_failure(source, error)
        manifest.record(summary.results[-1])
    for job in (j for j in jobs if j.error):
        summary.add_failure(job.item_id, job.error or "")
        manifest.record(summary.results[-1])
    state = DatasetState.read(cfg.output, cfg.io_workers)
    pending = []
    for job in (j for j in jobs if not j.error):
        if not cfg.overwrite and state.covers(job, cfg.frame_numbers):
            log.info("%s: skipped, its samples are already in the dataset (use --overwrite to redo)", job.item_id)
            summary.results.append(ItemResult(job.item_id, SKIPPED))
        else:
            pending.append(job)
    devices = plan_devices(cfg.devices, cfg.profile)
    log.info("dataset %s: %d video(s), %d to run on %s -> %s", run_id, len(jobs), len(pending),
             ", ".join(devices), cfg.output)
    if pending:
        level = logging.getLogger().getEffectiveLevel()
        parts = split_items(pending, len(devices))
        tasks = [WorkerTask(cfg, device, run_id, tuple(part), frozenset(state.sample_names), level,
                            f"{k + 1}/{len(parts)}") for k, (device, part) in enumerate(zip(devices, parts, strict=False))]
        for report in _dispatch(tasks, captioner_factory, cfg.output):
            summary.results.extend(report.results)
            for role, description in report.models.items():
                manifest.set_model(role, description)
    assembly = assemble(cfg.output, cfg.io_workers)
    log.info("dataset %s: %d sample(s) in %s", cfg.output, len(assembly.rows), assembly.train_csv)
    data = manifest.build(summary)
    data["dataset"] = {"samples": len(assembly.rows), "train_csv": assembly.train_csv, "devices": devices,
                       "frames": list(cfg.frame_numbers), "min_coverage": cfg.min_coverage,
                       "chunks": assembly.chunks,
                       "this_run_failed_by_chunk": _failed_by_chunk(jobs, summary)}
    manifest_uri = storage.join(cfg.output, MANIFEST_JSON)
    storage.write_text(manifest_uri, json.dumps(data, indent=2, default=str))
    next_command = f"lanepaint dataset filter --input {cfg.output} --require-clear-road" if assembly.rows else ""
    return StageResult.from_summary(summary, run_id, cfg.output, cfg.output, manifest_uri, next_command,
                                    train_csv=assembly.train_csv, samples=str(len(assembly.rows)))


def _failed_by_chunk(jobs: Sequence[VideoJob], summary: RunSummary) -> dict[str, int]:
    chunk_of = {j.item_id: j.chunk for j in jobs}
    out: dict[str, int] = defaultdict(int)
    for result in summary.failures:
        out[chunk_of.get(result.item_id, "(source)")] += 1
    return dict(out)


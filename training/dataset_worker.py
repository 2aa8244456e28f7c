"""One dataset worker: SAM2 (image mode) and the captioner loaded once on one device, then every
video of its shard: seek the requested frames -> road masks -> stage-1 cleanup -> drop frames under
``min_coverage`` -> captions -> sample files and records.

Fetching and seeking the next videos runs in background threads while the current one is on the
device; sample files are encoded and written in a thread pool. Each sample is written as image PNG,
mask PNG, then its record (``_records/<sample>.json``, the marker: a sample with a record is never
redone); a video's record (``_videos/<video>.json``, with all its sample records) is written last.
Several GPUs: ``run_worker_process`` is the same worker in a spawned process (one per GPU).
No torch at import: models are loaded inside ``run_worker``.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from core import storage, videoio
from core.errors import LanepaintError
from core.manifest import RunManifest
from core.prefetch import ReadAhead
from core.runner import ItemResult, ItemRunner, Timings
from segmentation.cleanup import clean_masks, default_workers
from segmentation.config import SegmentConfig
from training.dataset_config import DatasetGenerateConfig
from training.dataset_sources import VideoJob
from training.lane_caption import Captioner, describe_captioner, parse_lane_answer
from training.lane_dataset import image_path, mask_path, sample_name

log = logging.getLogger(__name__)

STAGE = "dataset"
RECORDS_DIR = "_records"     # one JSON per sample (kept or dropped), written after its files
VIDEOS_DIR = "_videos"       # one JSON per finished video, holding its sample records
PREFETCH = 2                 # videos fetched and decoded ahead of the one on the device
MAX_RAW_CHARS = 2000

CaptionerFactory = Callable[[Any], Captioner]   # DevicePolicy -> captioner


def record_uri(root: str, name: str) -> str:
    return storage.join(root, RECORDS_DIR, f"{name}.json")


def video_record_uri(root: str, video_id: str) -> str:
    return storage.join(root, VIDEOS_DIR, f"{video_id}.json")


def segment_config(cfg: DatasetGenerateConfig, device: str) -> SegmentConfig:
    """The stage-1 settings SAM2's loader and the prompts read."""
    return SegmentConfig(profile=cfg.profile, model=cfg.sam2_model, checkpoint=cfg.sam2_checkpoint,
                         model_config=cfg.sam2_config, prompt=cfg.prompt, tiny_seed=cfg.tiny_seed,
                         cache_dir=cfg.cache_dir, device=device)


@dataclass(frozen=True)
class WorkerTask:
    cfg: DatasetGenerateConfig
    device: str
    run_id: str
    jobs: tuple[VideoJob, ...]
    done_samples: frozenset[str] = frozenset()
    log_level: int = logging.INFO
    label: str = "1/1"           # which worker this is, for logs and the manifest


@dataclass
class WorkerReport:
    device: str
    results: list[ItemResult] = field(default_factory=list)
    models: dict[str, Any] = field(default_factory=dict)


@dataclass
class Loaded:
    """A video fetched and its wanted frames decoded (in a background thread)."""

    local: str
    frames: dict[int, np.ndarray]
    todo: list[int]


def _png(image: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".png", image)
    if not ok:
        raise LanepaintError("could not encode a PNG")
    return data.tobytes()


class VideoProcessor:
    """The per-video function for ``ItemRunner``, holding the models and pools of one worker."""

    def __init__(self, cfg: DatasetGenerateConfig, segmenter: Any, captioner: Captioner,
                 done_samples: frozenset[str], io_pool: ThreadPoolExecutor, worker: str = "1/1 cpu") -> None:
        self.cfg, self.segmenter, self.captioner, self.worker = cfg, segmenter, captioner, worker
        self.done = frozenset() if cfg.overwrite else done_samples
        self.io = io_pool
        self.workers = default_workers(0)
        self.prefetcher: ReadAhead | None = None

    def todo(self, job: VideoJob) -> list[int]:
        assert job.video_id is not None
        return [f for f in self.cfg.frame_numbers if sample_name(job.video_id, f) not in self.done]

    def load(self, job: VideoJob) -> Loaded | None:
        if job.error:
            return None
        todo = self.todo(job)
        if not todo:
            return Loaded("", {}, [])
        local = storage.fetch(job.uri, self.cfg.cache_dir or storage.DEFAULT_CACHE_DIR)
        return Loaded(local, videoio.decode_at(local, todo), todo)

    def __call__(self, job: VideoJob, timings: Timings) -> dict[str, Any]:
        if job.error:
            raise LanepaintError(job.error)
        assert self.prefetcher is not None and job.video_id is not None
        with timings.phase("fetch_decode"):
            loaded = self.prefetcher.get(job)
        assert loaded is not None
        try:
            return self._process(job, loaded, timings)
        finally:
            if loaded.local and not storage.is_local(job.uri) and os.path.exists(loaded.local):
                os.remove(loaded.local)   # a remote video is read once: do not let the cache grow

    def _process(self, job: VideoJob, loaded: Loaded, timings: Timings) -> dict[str, Any]:
        vid, cfg = job.video_id, self.cfg
        assert vid is not None
        past_end = [f for f in loaded.todo if f not in loaded.frames]
        if past_end:
            log.warning("%s: frame(s) %s past the end of the video: skipped", vid, past_end)
        numbers = [f for f in loaded.todo if f in loaded.frames]
        writes: list[Future[dict[str, Any]]] = []
        if numbers:
            frames = np.stack([loaded.frames[f] for f in numbers])
            with timings.phase("segment"):
                raw = self.segmenter.segment(frames)
            with timings.phase("clean"):
                masks = clean_masks(raw, self.workers)
                coverage = masks.reshape(len(masks), -1).mean(axis=1)
            keep = [i for i in range(len(numbers)) if coverage[i] >= cfg.min_coverage]
            for i in (i for i in range(len(numbers)) if coverage[i] < cfg.min_coverage):
                log.info("%s: frame %d dropped: road coverage %.4f < %g", vid, numbers[i], coverage[i], cfg.min_coverage)
            names = [sample_name(vid, f) for f in numbers]
            with timings.phase("caption"):
                answers = list(self.captioner([frames[i] for i in keep], [names[i] for i in keep])) if keep else []
            if len(answers) != len(keep):
                raise LanepaintError(f"{vid}: captioner gave {len(answers)} answer(s) for {len(keep)} frame(s)")
            answer_of = dict(zip(keep, answers, strict=True))
            with timings.phase("write"):
                for i, f in enumerate(numbers):
                    base = {"sample": names[i], "video_id": vid, "frame": f, "source": job.uri, "chunk": job.chunk,
                            "coverage": round(float(coverage[i]), 6), "width": int(frames.shape[2]),
                            "height": int(frames.shape[1]), "profile": cfg.profile}
                    if i in answer_of:
                        writes.append(self.io.submit(self._write_sample, base, frames[i], masks[i], answer_of[i]))
                    else:
                        writes.append(self.io.submit(self._write_record, base | {"status": "dropped",
                                                                                 "reason": "low coverage"}))
                records = [w.result() for w in writes]
        else:
            records = []
        earlier = [sample_name(vid, f) for f in cfg.frame_numbers if f not in loaded.todo]
        records += list(self.io.map(lambda n: json.loads(storage.read_text(record_uri(cfg.output, n))), earlier))
        records.sort(key=lambda r: r["frame"])
        video = {"video_id": vid, "source": job.uri, "chunk": job.chunk, "frames_requested": list(cfg.frame_numbers),
                 "frames_past_end": past_end, "samples": records}
        storage.write_text(video_record_uri(cfg.output, vid), json.dumps(video, indent=1))
        kept = sum(1 for r in records if r["status"] == "kept")
        return {"chunk": job.chunk, "worker": self.worker, "pid": os.getpid(), "samples": kept,
                "dropped_low_coverage": len(records) - kept, "frames_past_end": past_end, "redone": len(numbers)}

    def _write_record(self, record: dict[str, Any]) -> dict[str, Any]:
        storage.write_text(record_uri(self.cfg.output, record["sample"]), json.dumps(record, indent=1))
        return record

    def _write_sample(self, base: dict[str, Any], frame: np.ndarray, mask: np.ndarray, raw: str) -> dict[str, Any]:
        name, root = base["sample"], self.cfg.output
        parsed = parse_lane_answer(raw)
        storage.write_bytes(storage.join(root, image_path(name)), _png(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR)))
        storage.write_bytes(storage.join(root, mask_path(name)), _png(mask.astype(np.uint8) * 255))
        text = raw if isinstance(raw, str) else repr(raw)
        return self._write_record(base | {"status": "kept", "image": image_path(name), "mask": mask_path(name),
                                          "raw_answer": text[:MAX_RAW_CHARS]} | parsed.as_dict())


def _default_captioner(cfg: DatasetGenerateConfig) -> CaptionerFactory:
    from training.lane_caption import QwenCaptioner

    return lambda policy: QwenCaptioner(cfg.profile, cfg.vlm_model, policy.device, cfg.caption_temperature,
                                        cfg.caption_max_new_tokens, cfg.batch_size, cfg.cache_dir,
                                        cfg.caption_max_side)


def run_worker(task: WorkerTask, captioner_factory: CaptionerFactory | None = None) -> WorkerReport:
    """Load the models once on ``task.device`` and process every job of the shard."""
    from core.device import resolve_device
    from segmentation.sam2_model import load_image_segmenter

    cfg = task.cfg
    policy = resolve_device(task.device, cfg.profile)
    segmenter = load_image_segmenter(segment_config(cfg, task.device), policy, cfg.batch_size)
    captioner = (captioner_factory or _default_captioner(cfg))(policy)
    report = WorkerReport(task.device, models={"sam2": segmenter.loaded.description,
                                               "captioner": describe_captioner(captioner)})
    manifest = RunManifest(STAGE, cfg.output, task.run_id, cfg, cfg.profile)
    with ThreadPoolExecutor(max_workers=cfg.io_workers, thread_name_prefix="dataset-io") as io_pool:
        processor = VideoProcessor(cfg, segmenter, captioner, task.done_samples, io_pool, f"{task.label} {task.device}")
        processor.prefetcher = ReadAhead(processor.load, task.jobs, depth=PREFETCH)
        try:
            runner = ItemRunner(stage=f"{STAGE} worker {task.label} {task.device}", item_id=lambda j: j.item_id, on_result=manifest.record)
            report.results = runner.run(task.jobs, processor).results
        finally:
            processor.prefetcher.close()
    return report


def run_worker_process(task: WorkerTask, captioner_factory: CaptionerFactory | None = None) -> WorkerReport:
    """``run_worker`` in a spawned process: logging set up like the parent's first."""
    from core.logs import setup_logging

    setup_logging(task.log_level)
    return run_worker(task, captioner_factory)

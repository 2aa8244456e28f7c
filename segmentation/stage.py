"""Stage 1: ``run_segment(cfg) -> StageResult``: SAM2 road masks for every input video.

Per video: fetch (remote inputs cached by URI) -> decode at ``fps`` (at most ``max_frames``) ->
SAM2 prompt + propagation -> cleanup in a thread pool -> PNG masks, visualisations, stats ->
the VideoPainter hand-off (``meta.csv`` last). With ``prefetch`` these run as a pipeline over three
threads: video k is written while k+1 is segmented and k+2 fetched and decoded, so the device does not
wait for the CPU work around it; each video's failure is still its own. A bad video is recorded with a one-line reason and
the run goes on; a video whose outputs are complete is skipped unless ``overwrite``. The model is
loaded once per call (and only when some video needs it).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass
from typing import Any

from core import storage, videoio
from core.chunks import expand_inputs
from core.claims import ClaimStore
from core.device import memory_snapshot, resolve_device
from core.errors import LanepaintError, UsageError
from core.ids import new_run_id, video_ids_of
from core.layout import VP_MIN_VIDEO_ID_LEN, Layout
from core.manifest import RunManifest
from core.moment import Moment, model_frame_error_s, plan_moment
from core.prefetch import ReadAhead
from core.runner import FAILED, ItemRunner, RunSummary, StageResult, Timings
from core.vp_data import write_vp_clip
from segmentation.cleanup import clean_masks, default_workers, mask_stats
from segmentation.config import SegmentConfig, edit_command
from segmentation.outputs import is_complete, temp_folder, upload, write_local

log = logging.getLogger(__name__)

STAGE = "segment"


@dataclass(frozen=True)
class VideoItem:
    uri: str
    video_id: str | None        # None when the file name gives no usable id
    error: str | None = None    # known before running (bad id, duplicate)

    @property
    def item_id(self) -> str:
        return self.video_id or self.uri


def check_vp_id(video_id: str) -> None:
    """VideoPainter's folder is ``video_id[:-3]``: an id needs at least 4 characters."""
    if len(video_id) < VP_MIN_VIDEO_ID_LEN:
        raise LanepaintError(f"invalid video id {video_id!r}: VideoPainter's layout needs at least "
                             f"{VP_MIN_VIDEO_ID_LEN} characters")


def plan_items(videos: list[str]) -> list[VideoItem]:
    """One item per video; a bad file name or a second video with the same id is a failed item."""
    return [VideoItem(uri, vid, error) for uri, vid, error in video_ids_of(videos, check_vp_id)]


@dataclass
class _Input:
    local: str
    moment: Moment | None
    frames: Any
    seconds: dict[str, float]
    square: Any = None     # the frames at SAM2's input size (read_input)
    raw: Any = None        # SAM2's masks, then the cleaned ones and their statistics (segment_input)
    masks: Any = None
    stats: Any = None


class _Segment:
    """The per-video function, with the lazily loaded segmenter shared across videos."""

    def __init__(self, cfg: SegmentConfig, layout: Layout, run_id: str, policy: Any, manifest: RunManifest):
        self.cfg, self.layout, self.run_id, self.policy, self.manifest = cfg, layout, run_id, policy, manifest
        self.workers = default_workers(cfg.workers)
        self.segmenter: Any = None
        self.claims: ClaimStore | None = None           # the run's claims (the runner's), set by run_segment
        self.decoded = ReadAhead(self.read_input, [], enabled=False)
        self.segmented = ReadAhead(self.segment_input, [], enabled=False)

    def pipeline(self, pending: list[VideoItem], enabled: bool) -> None:
        """Three stages at once: the writer (this thread) writes video k while one thread segments k+1 and
        another fetches and decodes k+2; each hands on at most one video (memory: three videos' frames)."""
        self.decoded = ReadAhead(self.read_input, pending, enabled=enabled)
        self.segmented = ReadAhead(self.segment_input, pending, enabled=enabled)

    def close(self) -> None:
        """Stop the threads: a segmentation in progress stops at its next frame instead of running to the end."""
        self.segmented.close()
        self.decoded.close()

    def read_input(self, item: VideoItem) -> _Input:
        """Fetch (a remote input is cached locally) and decode the frames the stage needs."""
        cfg, seconds = self.cfg, {}
        start = time.perf_counter()
        local = storage.fetch(item.uri, cfg.cache_dir or storage.DEFAULT_CACHE_DIR)
        seconds["fetch"] = time.perf_counter() - start
        start = time.perf_counter()
        moment = self.moment(str(item.video_id), local)
        if moment is None:
            frames = videoio.decode(local, fps=cfg.fps, max_frames=cfg.max_frames)
        else:
            frames = videoio.decode_times(local, moment.frame_times())
        seconds["decode"] = time.perf_counter() - start
        start = time.perf_counter()
        square = self.segmenter.model_input(frames)   # on this thread, not the one feeding the device
        seconds["resize"] = time.perf_counter() - start
        return _Input(local, moment, frames, seconds, square=square)

    def segment_input(self, item: VideoItem) -> _Input:
        """The decoded frames (waiting for them is ``input_wait``), SAM2, then the cleanup and its statistics.
        Ahead of its turn, the video is claimed first: one that another run holds is not segmented here."""
        if self.claims is not None and not self.claims.reserve(item.item_id):
            raise LanepaintError(f"{item.item_id}: claimed by another run")
        start = time.perf_counter()
        given = self.decoded.get(item)
        seconds = dict(given.seconds)
        if self.decoded.enabled:    # in line, the wait is the fetch and decode themselves
            seconds["input_wait"] = time.perf_counter() - start
        start = time.perf_counter()
        given.raw = self.segmenter.segment(given.frames, given.square,
                                           should_stop=lambda: self.segmented.should_stop(item))
        given.square = None                           # 3 MB a frame at 1024 px: not kept for the writer
        seconds["segment"] = time.perf_counter() - start
        start = time.perf_counter()
        given.masks = clean_masks(given.raw, self.workers)
        given.stats = mask_stats(given.masks)
        seconds["clean"] = time.perf_counter() - start
        given.seconds = seconds
        return given

    def load(self) -> None:
        from core.model_fingerprint import weights_record
        from segmentation.sam2_model import load_segmenter

        self.segmenter = load_segmenter(self.cfg, self.policy)
        loaded = self.segmenter.loaded
        self.manifest.set_model("sam2", {**loaded.description, **weights_record(
            self.cfg.profile, [loaded.predictor], [loaded.description.get("source", "")])})

    def moment(self, video_id: str, local: str) -> Moment | None:
        """With ``plan_moment``: the evaluated moment and edit window of this video (a one-line error when it
        is too short), from its probed length alone, before any frame is decoded."""
        cfg = self.cfg
        if not cfg.plan_moment:
            return None
        info = videoio.probe(local)
        window = min(cfg.edit_window, cfg.max_frames) if cfg.edit_window else 0
        return plan_moment(info.last_frame_s, cfg.fps, window, cfg.max_frames)

    def __call__(self, item: VideoItem, timings: Timings) -> dict[str, Any]:
        if item.error:
            raise LanepaintError(item.error)
        cfg, vid = self.cfg, item.video_id
        assert vid is not None
        if self.segmented.enabled:
            with timings.phase("segment_wait"):   # the writer waited for the masks: 0 when the segmenter was ahead
                given = self.segmented.get(item)
        else:
            given = self.segmented.get(item)
        for name, value in given.seconds.items():  # the work itself, overlapped with the neighbouring videos
            timings.add(name, value)
        moment, frames, raw, masks, stats = given.moment, given.frames, given.raw, given.masks, given.stats
        if stats.low_coverage_frames:
            log.warning("%s: %d frame(s) below 1%% road coverage: %s", vid, len(stats.low_coverage_frames),
                        list(stats.low_coverage_frames)[:10])
        with temp_folder() as tmp:
            with timings.phase("write"):
                write_local(tmp, vid, frames, masks, cfg.fps, self.workers)
            record = {"video_id": vid, "source": item.uri, "profile": cfg.profile, "fps": cfg.fps,
                      "moment": moment.as_dict() if moment else None,
                      "width": int(frames.shape[2]), "height": int(frames.shape[1]),
                      "raw_mean_coverage": round(float(raw.mean()), 6), **stats.as_dict(),
                      "timings": timings.as_dict()}
            with timings.phase("upload"):
                upload(self.layout, self.run_id, vid, tmp, record)
        with timings.phase("handoff"):
            # every frame of the source at its own rate: its video stream is copied, not decoded and encoded again
            copy = moment is None and videoio.copies_frames(given.local, cfg.fps, frames)
            clip = write_vp_clip(self.layout, self.run_id, vid, frames, masks, fps=cfg.fps, caption=cfg.caption,
                                 moment=moment, source=given.local if copy else None)
        return {**stats.summary(), "width": clip.width, "height": clip.height, "vp_ready": clip.vp_ready,
                "handoff_video": "copied" if copy else "encoded",
                "moment": moment.as_dict() if moment else None,
                "note": clip.note, "masks_uri": self.layout.sam2_masks_dir(self.run_id, vid),
                "vp_meta_uri": clip.meta_uri, "memory": memory_snapshot(self.policy.device)}


def run_segment(cfg: SegmentConfig) -> StageResult:
    """Segment the road in every input video; write both layouts and the run manifest."""
    run_id = cfg.run_id or new_run_id()
    cfg = dataclasses.replace(cfg, run_id=run_id)
    root = cfg.output_root
    storage.check_output_root(root)
    if not cfg.inputs:
        raise UsageError("no inputs: give at least one --input (path, gs:// or chunks:// URI)")
    if cfg.checkpoint and not storage.exists(cfg.checkpoint):
        raise UsageError(f"--checkpoint {cfg.checkpoint}: not found")
    layout = Layout(root)
    run_uri = layout.sam2_run(run_id)
    storage.sweep_leftovers(run_uri, layout.vp_data_run(run_id))
    policy = resolve_device(cfg.device, cfg.profile)
    if cfg.vos_optimized and not policy.is_cuda:
        raise UsageError("vos_optimized (torch.compile of SAM2) needs a CUDA device")

    videos, bad_entries = expand_inputs(list(cfg.inputs))
    items = plan_items(videos)
    manifest = RunManifest(STAGE, run_uri, run_id, cfg, cfg.profile)
    segment = _Segment(cfg, layout, run_id, policy, manifest)

    def done(item: VideoItem) -> bool:
        return item.error is None and is_complete(layout, run_id, item.video_id)

    if cfg.plan_moment and (late := model_frame_error_s(cfg.fps)) > 0:
        log.warning("--fps %g holds no frames at the driving model's 0.1 s spacing: stage 3 takes the edited "
                    "frame at or before each time, up to %.0f ms early (10, 20 or 30 fps hold them)", cfg.fps,
                    late * 1000)
    pending = [i for i in items if i.error is None and (cfg.overwrite or not done(i))]
    if pending:
        segment.load()
    segment.pipeline(pending, enabled=cfg.prefetch and len(pending) > 1)
    log.info("segment %s: %d video(s) (%d to run) from %d input(s) -> %s", run_id, len(items), len(pending),
             len(cfg.inputs), run_uri)

    summary = RunSummary(STAGE)
    for entry, error in bad_entries.items():
        summary.add_failure(entry, error)
        manifest.record(summary.results[-1])
    segment.claims = ClaimStore(run_uri)
    runner = ItemRunner(stage=STAGE, item_id=lambda i: i.item_id, is_done=done, overwrite=cfg.overwrite,
                        on_result=manifest.record, timeout=cfg.item_timeout,
                        invalidate=lambda i: storage.rm(layout.vp_meta_csv(run_id, i.video_id)),
                        claims=segment.claims)
    try:
        runner.run(items, segment, summary)
    finally:
        segment.close()
        segment.claims.release_reserved()
    manifest_uri = manifest.finalize(summary)
    usable = any(r.status != FAILED for r in summary.results)
    return StageResult.from_summary(
        summary, run_id, root, run_uri, manifest_uri,
        next_command=edit_command(run_id, root, cfg.profile) if usable else "",
        vp_data_uri=layout.vp_data_run(run_id))

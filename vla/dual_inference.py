"""One edited clip through the driving model: its original frames and, in the same batch, the same frames
with the edited camera swapped in.

Both inputs get the same ego history, the same other cameras and the same frame timestamps; only the
edited camera's frames differ. They run as one batch of two with one seed per clip
(``clip_seed``: stable, recorded), so sample ``k`` of both starts from the same noise and the plan
displacement between them (ADE/FDE, paired by sample) measures the edit alone. The constant-velocity
baseline runs beside the model as a reference line (it ignores images: its displacement is 0). Outputs under ``alpamayo/<run_id>/<instruction_folder>/<video_id>/``:
``_vis_data.npz``, ``_overlay.mp4`` and ``_comparison.mp4``, then ``_inference.json`` last (its
``"success": true`` marks the video complete). A failure after the name was parsed leaves an
``_inference.json`` with ``"success": false`` and the reason, which never counts as complete.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from core import storage
from core.device import memory_snapshot
from core.driving_dataset import NUM_FUTURE, TRAJ_STEP_S, camera_index
from core.edited_clips import EditedVideo
from core.errors import LanepaintError, StorageError, one_line
from core.layout import Layout
from core.runner import Timings
from vla import visdata
from vla.config import EvaluateConfig
from vla.driving_data import DrivingData
from vla.edited_frames import NUM_FRAMES, read_model_frames
from vla.metrics import finite_or_none, min_ade, plan_displacement
from vla.model_io import ModelInput
from vla.models import TrajectoryModel

log = logging.getLogger(__name__)

SUFFIXES = {"inference": "_inference.json", "vis_data": "_vis_data.npz", "overlay": "_overlay.mp4",
            "comparison": "_comparison.mp4"}
RENDER_FPS = 10.0


@dataclass
class EvalContext:
    cfg: EvaluateConfig
    layout: Layout
    model: TrajectoryModel
    data: DrivingData
    cache_dir: str
    baseline: TrajectoryModel | None = None


def clip_seed(seed: int, clip_id: str, camera: str) -> int:
    """The seed of one clip's paired run: the run seed and the clip's video id hashed (stable across runs,
    machines and instructions, so the original input's plan is the same under every instruction)."""
    digest = hashlib.sha256(f"{int(seed)}:{clip_id}.{camera}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


def _paired(model: TrajectoryModel, original: ModelInput, edited: ModelInput, seed: int,
            ground_truth: np.ndarray, label: str, video: EditedVideo) -> dict[str, Any]:
    """One model on the pair: predictions, minADE of each, their difference and the plan displacement."""
    first, second = model.predict([original, edited], seed=seed)
    for name, pred in (("original", first), ("edited", second)):
        if not np.isfinite(pred.xyz).all():
            raise LanepaintError(f"{video.file_name}: {label} returned a non-finite trajectory ({name} input)")
    ade, ade_original = min_ade(second.xyz, ground_truth), min_ade(first.xyz, ground_truth)
    return {"original": first, "edited": second, "min_ade": ade, "original_min_ade": ade_original,
            "displacement": plan_displacement(first.xyz, second.xyz)}


def output_uris(ctx: EvalContext, video: EditedVideo) -> dict[str, str]:
    return {key: ctx.layout.alpamayo_file(ctx.cfg.run_id, video.folder, video.video_id, suffix)
            for key, suffix in SUFFIXES.items()}


def is_complete(ctx: EvalContext, video: EditedVideo) -> bool:
    """The inference record says success and every file it announces exists."""
    uris = output_uris(ctx, video)
    if not storage.exists(uris["inference"]):
        return False
    record = json.loads(storage.read_text(uris["inference"]))
    if not record.get("success"):
        return False
    wanted = ["vis_data"] + (["overlay", "comparison"] if ctx.cfg.render else [])
    return all(storage.exists(uris[key]) for key in wanted)


def _gb(value: float | None) -> float | None:
    return None if value is None else round(float(value), 3)


def _run(ctx: EvalContext, video: EditedVideo, uris: dict[str, str], timings: Timings) -> dict[str, Any]:
    cfg = ctx.cfg
    clip_id, camera = video.parse()
    with timings.phase("decode"):
        edited = read_model_frames(video, ctx.cache_dir, cfg.frame_spacing)
    t0_after_start_s = cfg.t0_offset + edited.moment.t0_s
    with timings.phase("dataset"):
        sample = ctx.data.load(clip_id, camera, int(round(t0_after_start_s * 1e6)), cfg.cameras,
                               np.round(edited.offsets_s * 1e6).astype(np.int64))
    k = sample.camera_names.index(camera)
    swapped = sample.with_camera(camera, edited.frames)

    def model_input(frames):
        return ModelInput(frames, sample.camera_indices, sample.ego_history_xyz, sample.ego_history_rot)

    seed = clip_seed(cfg.seed, clip_id, camera)
    with timings.phase("inference"):
        main = _paired(ctx.model, model_input(sample.frames), model_input(swapped), seed, sample.ego_future_xyz,
                       ctx.model.name, video)
    reference = None
    if ctx.baseline is not None:
        with timings.phase("baseline"):
            reference = _paired(ctx.baseline, model_input(sample.frames), model_input(swapped), seed,
                                sample.ego_future_xyz, ctx.baseline.name, video)
    original, edited_pred = main["original"], main["edited"]
    memory = memory_snapshot(ctx.model.device) | edited_pred.memory
    ade, ade_original = main["min_ade"], main["original_min_ade"]
    vis = visdata.VisData(
        pred_xyz=edited_pred.xyz, pred_rot=edited_pred.rot, gt_future_xyz=sample.ego_future_xyz,
        gt_future_rot=sample.ego_future_rot, ego_history_xyz=sample.ego_history_xyz,
        ego_history_rot=sample.ego_history_rot, image_frames=swapped.transpose(0, 1, 4, 2, 3),
        camera_indices=sample.camera_indices, original_pred_xyz=original.xyz, original_pred_rot=original.rot,
        original_frames=sample.frames[k].transpose(0, 3, 1, 2), edited_camera_index=camera_index(camera),
        min_ade=ade, original_min_ade=ade_original, t0_us=sample.t0_us, frame_fps=edited.frame_rate,
        clip_id=clip_id, camera_name=camera, video_id=video.video_id)
    with timings.phase("write"):
        visdata.save(vis, uris["vis_data"])
    if cfg.render:
        from vla.render import write_videos

        with timings.phase("render"):
            write_videos(vis, uris["overlay"], uris["comparison"], RENDER_FPS)
    record = {
        "video_id": video.video_id,
        "video_name": video.file_name,
        "instruction_folder": video.folder,
        "instruction": video.instruction(),
        "paths": {"edited_video": video.uri, **{k_: v for k_, v in uris.items()
                                               if k_ in ("inference", "vis_data") or cfg.render}},
        "clip_id": clip_id,
        "camera": camera,
        "camera_index": camera_index(camera),
        "cameras": list(sample.camera_names),
        "t0_us": sample.t0_us,
        "model": ctx.model.name,
        "profile": cfg.profile,
        "num_trajectories": int(edited_pred.xyz.shape[0]),
        "original_num_trajectories": int(original.xyz.shape[0]),
        "min_ade_meters": ade,
        "original_min_ade_meters": ade_original,
        "min_ade_delta_meters": ade - ade_original,
        "plan_displacement": main["displacement"],
        "seed": seed,
        "seed_rule": "sha256(run seed:clip_id.camera), first 31 bits; shared by the original and edited input",
        "baseline": None if reference is None else {
            "model": ctx.baseline.name, "min_ade_meters": reference["min_ade"],
            "original_min_ade_meters": reference["original_min_ade"],
            "min_ade_delta_meters": reference["min_ade"] - reference["original_min_ade"],
            "plan_displacement": reference["displacement"]},
        "reasoning_traces": list(edited_pred.reasoning),
        "original_reasoning_traces": list(original.reasoning),
        "temporal_config": {
            "edited_clip_fps": edited.moment.fps,
            "frame_spacing": cfg.frame_spacing,
            "num_frames_per_camera": NUM_FRAMES,
            "frame_window_seconds": round(float(edited.offsets_s[0]), 6),
            "edited_clip_frames": edited.moment.frames,
            "t0_seconds_after_clip_start": round(t0_after_start_s, 6),
            "dataset_frame_timestamps_us": sample.frame_timestamps_us.tolist(),
            **edited.temporal(),
            "trajectory_step_seconds": TRAJ_STEP_S,
            "num_future_waypoints": NUM_FUTURE,
        },
        "metrics": {
            "inference_time_seconds": round(edited_pred.seconds, 4),
            "original_inference_time_seconds": round(original.seconds, 4),
            "pair_inference_time_seconds": round(edited_pred.seconds + original.seconds, 4),
            "gpu_memory_used_gb": _gb(memory.get("gpu_memory_used_gb")),
            "gpu_memory_peak_gb": _gb(memory.get("gpu_memory_peak_gb")),
            "ram_used_mb": memory.get("ram_used_mb"),
            "ram_peak_mb": memory.get("ram_peak_mb"),
        },
        "success": True,
    }
    storage.write_text(uris["inference"], json.dumps(record, indent=2))
    return {"min_ade": finite_or_none(ade), "original_min_ade": finite_or_none(ade_original),
            "delta": finite_or_none(ade - ade_original), "plan_ade": finite_or_none(main["displacement"]["ade_meters"]),
            "clip_id": clip_id, "camera": camera, "seed": seed, "moment": edited.moment.as_dict(),
            "moment_source": edited.temporal()["moment_source"]}


def evaluate_video(ctx: EvalContext, video: EditedVideo, timings: Timings) -> dict[str, Any]:
    """The ItemRunner function: outputs for one edited clip, or a one-line error naming it.

    A name that does not parse (or an unknown camera) fails before anything is written.
    """
    video.parse()
    try:
        uris = output_uris(ctx, video)
    except LanepaintError as exc:
        raise LanepaintError(f"{video.file_name}: {exc}") from None
    try:
        return _run(ctx, video, uris, timings)
    except Exception as exc:
        failure = {"video_id": video.video_id, "video_name": video.file_name, "instruction_folder": video.folder,
                   "paths": {"edited_video": video.uri}, "success": False, "error": one_line(exc)}
        try:
            storage.write_text(uris["inference"], json.dumps(failure, indent=2))
        except StorageError as write_exc:
            log.warning("%s: could not record the failure: %s", video.item_id, write_exc)
        raise

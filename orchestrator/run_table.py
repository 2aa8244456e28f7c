"""The run's tidy table: one row per clip x instruction with every number the stages recorded.

Entry point: ``build_table(output_root, run_id) -> RunTable`` (rows + the columns), then
``write_table(table, output_root, run_id) -> {"csv": uri, "parquet": uri}``. Both read only the per-item
records the stages leave, so the table can be rebuilt at any time (``lanepaint report``), locally or on gs://:

- stage 2 (``vp/<run_id>``): each edit's sidecar ``*_vp_edit_sample0.json`` and its ``eval_*.json``, and the
  run's item records (``_items/``) for failures, which leave no sidecar;
- stage 1 (``sam2/<data run>`` named by the sidecar, else ``<run_id>``): ``<video_id>_stats.json``;
- stage 3 (``alpamayo/<run_id>``): each ``*_inference.json`` and the item records.

A row exists for every clip x instruction any stage 2 or 3 record names; a value a stage did not produce is
empty (CSV) or null (Parquet). ``COLUMNS`` is the one place the columns are defined and documented
(``docs/results.md`` lists them; a test keeps the two equal).
"""

from __future__ import annotations

import csv
import io
import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from core import storage
from core.edited_clips import SIDECAR_FILE_SUFFIX, parse_video_id
from core.errors import LanepaintError
from core.layout import Layout
from core.manifest import read_item_records
from vla.report import INFERENCE_SUFFIX

log = logging.getLogger(__name__)

METRIC_BLOCKS = ("full", "masked", "background")
METRIC_KEYS = ("psnr", "psnr_frame_mean", "identical_frames", "ssim", "lpips", "mse", "mae", "clip_score",
               "temporal_consistency")
VP_PROTOCOL_KEYS = tuple(f"{prefix}{key}" for prefix in ("", "masked_") for key in (
    "psnr", "ssim", "lpips", "mse", "mae", "clip_score", "temporal_consistency"))


@dataclass
class Sources:
    """The records of one clip x instruction (empty dicts where a stage left none)."""

    run_id: str
    folder: str
    video_id: str
    stats: dict[str, Any] = field(default_factory=dict)         # stage 1 <video_id>_stats.json
    sidecar: dict[str, Any] = field(default_factory=dict)       # stage 2 sidecar
    evaluation: dict[str, Any] = field(default_factory=dict)    # stage 2 eval_<video_id>.json
    edit_item: dict[str, Any] = field(default_factory=dict)     # stage 2 item record
    inference: dict[str, Any] = field(default_factory=dict)     # stage 3 _inference.json
    vla_item: dict[str, Any] = field(default_factory=dict)      # stage 3 item record


@dataclass(frozen=True)
class Column:
    name: str
    kind: str               # "str", "float", "int", "bool"
    doc: str
    get: Callable[[Sources], Any]


def _path(record: Mapping[str, Any], *keys: str) -> Any:
    value: Any = record
    for key in keys:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


def _number(value: Any) -> float | None:
    """Floats as written by the stages (``"inf"`` strings from strict JSON back to inf)."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return float(value)


def _sum(values: Mapping[str, Any] | None) -> float | None:
    if not values:
        return None
    return round(sum(float(v) for v in values.values() if isinstance(v, int | float)), 4)


def _clip_camera(video_id: str) -> tuple[str, str | None]:
    """(clip id, camera) of a PhysicalAI-AV video id; another name is its own clip id, without a camera."""
    try:
        return parse_video_id(video_id)
    except LanepaintError:
        return video_id, None


def _edit_status(s: Sources) -> str:
    if s.sidecar:
        return "ok"
    return str(s.edit_item.get("status") or "missing")


def _vla_status(s: Sources) -> str:
    if s.inference:
        return "ok" if s.inference.get("success", True) else "failed"
    return str(s.vla_item.get("status") or "missing")


def _error(item: Mapping[str, Any], record: Mapping[str, Any]) -> str | None:
    return record.get("error") or item.get("error") or None


def _metric(block: str, key: str) -> Callable[[Sources], Any]:
    def get(s: Sources) -> Any:
        value = _path(s.evaluation, block, key)
        if value is None:
            value = _path(s.sidecar, "quality", block, key)
        return int(value) if key == "identical_frames" and value is not None else _number(value)

    return get


def _vp_metric(key: str) -> Callable[[Sources], Any]:
    return lambda s: _number(_path(s.evaluation, "videopainter", key))


def _s(*keys: str, record: str = "sidecar") -> Callable[[Sources], Any]:
    return lambda s: _path(getattr(s, record), *keys)


def _n(*keys: str, record: str = "sidecar") -> Callable[[Sources], Any]:
    return lambda s: _number(_path(getattr(s, record), *keys))


def _stage1_seconds(s: Sources) -> float | None:
    return _sum(s.stats.get("timings"))


def _low_frames(s: Sources) -> int | None:
    frames = s.stats.get("low_coverage_frames")
    return len(frames) if isinstance(frames, list) else None


def _criteria(s: Sources) -> str | None:
    evaluated = _path(s.evaluation, "label", "evaluated")
    return ",".join(evaluated) if isinstance(evaluated, list) else None


def _first_frame_passed(s: Sources) -> bool | None:
    verdict = s.sidecar.get("verdict")
    return None if verdict is None else verdict == "PASS"


def _speed_levers(s: Sources) -> str | None:
    parameters = s.sidecar.get("parameters")
    if not isinstance(parameters, Mapping) or "storage_dtype" not in parameters:
        return None
    levers = [f"{name} cache {parameters[key]:g}" for name, key in (("video", "step_cache_threshold"),
                                                                   ("flux", "flux_step_cache_threshold"))
              if _number(parameters.get(key))]
    levers += [f"{parameters['storage_dtype']} weights"] if parameters["storage_dtype"] != "compute" else []
    levers += [f"compile {parameters['compile']}"] if parameters.get("compile", "none") != "none" else []
    return ", ".join(levers) or "none"


def _delta(s: Sources) -> float | None:
    edited, original = _number(s.inference.get("min_ade_meters")), _number(s.inference.get("original_min_ade_meters"))
    return None if edited is None or original is None else edited - original


_BASE: tuple[Column, ...] = (
    Column("run_id", "str", "the run id", lambda s: s.run_id),
    Column("clip_id", "str", "PhysicalAI-AV clip id (the video id before the camera)",
           lambda s: _clip_camera(s.video_id)[0]),
    Column("camera", "str", "camera of the edited video (empty for a name without one)",
           lambda s: _clip_camera(s.video_id)[1]),
    Column("video_id", "str", "<clip_id>.<camera>: the video's id in every stage", lambda s: s.video_id),
    Column("instruction_folder", "str", "folder of the instruction (stage 2 and 3 outputs)", lambda s: s.folder),
    Column("instruction", "str", "the edit instruction",
           lambda s: s.sidecar.get("instruction") or s.inference.get("instruction")),
    Column("edit_status", "str", "stage 2: ok, failed, or missing (no record)", _edit_status),
    Column("edit_error", "str", "stage 2: the one-line reason of a failure", lambda s: _error(s.edit_item, {})
           if not s.sidecar else None),
    Column("vla_status", "str", "stage 3: ok, failed, or missing (no record)", _vla_status),
    Column("vla_error", "str", "stage 3: the one-line reason of a failure",
           lambda s: _error(s.vla_item, s.inference) if _vla_status(s) != "ok" else None),
    Column("profile", "str", "model profile: full (real checkpoints) or tiny (random weights)",
           lambda s: s.sidecar.get("profile") or s.inference.get("profile") or s.stats.get("profile")),
    # stage 1
    Column("t0_s", "float", "the planning moment: seconds from the start of the source video",
           _n("moment", "t0_s", record="stats")),
    Column("start_s", "float", "start of the edited window: seconds from the start of the source video",
           _n("moment", "start_s", record="stats")),
    Column("frames", "int", "frames of the edited window", _s("frames", record="stats")),
    Column("fps", "float", "frame rate of the edited window (frames/s)", _n("fps", record="stats")),
    Column("width", "int", "frame width (px)", _s("width", record="stats")),
    Column("height", "int", "frame height (px)", _s("height", record="stats")),
    Column("road_coverage_mean", "float", "stage 1: mean fraction of each frame in the road mask",
           _n("mean_coverage", record="stats")),
    Column("road_coverage_min", "float", "stage 1: smallest per-frame road fraction", _n("min_coverage", record="stats")),
    Column("mask_iou_consecutive_mean", "float", "stage 1: mean IoU of consecutive masks (temporal stability)",
           _n("mean_consecutive_iou", record="stats")),
    Column("mask_iou_consecutive_min", "float", "stage 1: smallest IoU of consecutive masks",
           _n("min_consecutive_iou", record="stats")),
    Column("low_coverage_frames", "int", "stage 1: frames whose road fraction is below the threshold", _low_frames),
    # stage 2: the judge
    Column("judge_verdict", "str", "stage 2: the judge's verdict on the chosen first frame (PASS/FAIL)",
           _s("verdict")),
    Column("judge_passed", "bool", "stage 2: judge_verdict == PASS", _first_frame_passed),
    Column("judge_iterations", "int", "stage 2: first-frame attempts the judge saw", _s("iterations")),
    Column("judge_chosen_attempt", "int", "stage 2: the attempt whose frame was propagated",
           _s("judge", "chosen_attempt")),
    Column("compliance_fraction", "float", "stage 2: fraction of checked frames of the edit the judge passed",
           _n("compliance_fraction")),
    Column("compliance_checked", "int", "stage 2: frames of the edit the judge checked",
           _s("judge", "compliance", "checked")),
    Column("caption_used", "str", "stage 2: the caption the video model was given", _s("caption_used")),
    Column("quality_label", "str", "stage 2: EXCELLENT / GOOD / MODERATE (see docs/metrics.md)",
           _s("quality_label")),
    Column("quality_points", "int", "stage 2: points of the label", _s("quality", "points")),
    Column("quality_criteria", "str", "stage 2: the label's criteria that had a value (psnr,ssim,lpips)", _criteria),
    Column("mask_coverage_pct", "float", "stage 2: % of pixels in the scored (dilated) mask",
           _n("quality", "mask_coverage_pct")),
)

_METRIC_DOCS = {"psnr": "PSNR (dB) of the mean MSE over frames", "psnr_frame_mean": "mean of the finite "
                "per-frame PSNR (dB)", "identical_frames": "frames with zero error", "ssim": "SSIM",
                "lpips": "LPIPS (SqueezeNet)", "mse": "MSE (images in [0,1])", "mae": "MAE (images in [0,1])",
                "clip_score": "CLIP score against the instruction (0-100)",
                "temporal_consistency": "mean CLIP cosine of adjacent frames"}
_BLOCK_DOCS = {"full": "full frame", "masked": "inside the mask", "background": "outside the mask"}

_METRICS: tuple[Column, ...] = tuple(
    Column(f"{block}_{key}", "int" if key == "identical_frames" else "float",
           f"stage 2, {_BLOCK_DOCS[block]}: {_METRIC_DOCS[key]}", _metric(block, key))
    for block in METRIC_BLOCKS for key in METRIC_KEYS
    if not (block == "background" and key in ("lpips", "clip_score", "temporal_consistency")))

_VP_METRICS: tuple[Column, ...] = tuple(
    Column(f"vp_{key}", "float", f"stage 2, VideoPainter's protocol (--metrics-protocol videopainter): {key}",
           _vp_metric(key)) for key in VP_PROTOCOL_KEYS)

_TAIL: tuple[Column, ...] = (
    # stage 3
    Column("model", "str", "stage 3: the driving model", _s("model", record="inference")),
    Column("min_ade_original_m", "float", "stage 3: minADE of the plan on the original clip (m)",
           _n("original_min_ade_meters", record="inference")),
    Column("min_ade_edited_m", "float", "stage 3: minADE of the plan on the edited clip (m)",
           _n("min_ade_meters", record="inference")),
    Column("min_ade_delta_m", "float", "stage 3: min_ade_edited_m - min_ade_original_m (m)", _delta),
    Column("plan_ade_m", "float", "stage 3: how far the plan moved: mean distance between the original and "
           "edited plans (paired samples, m)", _n("plan_displacement", "ade_meters", record="inference")),
    Column("plan_fde_m", "float", "stage 3: distance between the plans' final points (m)",
           _n("plan_displacement", "fde_meters", record="inference")),
    Column("num_trajectories", "int", "stage 3: trajectory samples per input", _s("num_trajectories", record="inference")),
    Column("baseline_model", "str", "stage 3: the image-blind baseline", _s("baseline", "model", record="inference")),
    Column("baseline_min_ade_m", "float", "stage 3: the baseline's minADE (m)",
           _n("baseline", "min_ade_meters", record="inference")),
    Column("baseline_min_ade_delta_m", "float", "stage 3: the baseline's minADE change (0: it ignores images)",
           _n("baseline", "min_ade_delta_meters", record="inference")),
    # seeds
    Column("seed_first_frame", "int", "stage 2: seed of the first-frame inpaint", _s("seeds", "first_frame")),
    Column("seed_video", "int", "stage 2: seed of the video generation", _s("seeds", "video")),
    Column("seed_vla", "int", "stage 3: seed of the driving model (shared by original and edit)",
           _s("seed", record="inference")),
    # timings
    Column("segment_seconds", "float", "stage 1: seconds for the clip (decode, segment, clean, write)", _stage1_seconds),
    Column("edit_seconds", "float", "stage 2: seconds for the item", lambda s: _sum(s.sidecar.get("timings"))),
    Column("video_generation_seconds", "float", "stage 2: seconds of the video model (a batch: this item's share)",
           _n("timings", "video_generation")),
    Column("video_batch", "int", "stage 2: videos denoised together in the item's video pass (--instruction-batch)",
           _s("video_batch")),
    Column("speed_levers", "str", "stage 2: the speed levers of the run (step caches, weight storage, compile; "
           "none: all off)", _speed_levers),
    Column("vla_seconds", "float", "stage 3: seconds of the original + edited inference",
           _n("metrics", "pair_inference_time_seconds", record="inference")),
    # where to look
    Column("edit_video", "str", "stage 2: the edited video", _s("outputs", "edit")),
    Column("original_video", "str", "stage 1: the clip that was edited (VideoPainter input)", _s("input", "video")),
    Column("first_frame_input", "str", "stage 2: the original first frame (PNG)", _s("outputs", "flux_input")),
    Column("first_frame_mask", "str", "stage 2: the repainted mask of the first frame (PNG)",
           _s("outputs", "flux_mask")),
    Column("overlay_video", "str", "stage 3: plans drawn over the edited clip", _s("paths", "overlay", record="inference")),
    Column("comparison_video", "str", "stage 3: original | edited side by side with both plans",
           _s("paths", "comparison", record="inference")),
)

COLUMNS: tuple[Column, ...] = _BASE + _METRICS + _VP_METRICS + _TAIL
COLUMN_NAMES = tuple(c.name for c in COLUMNS)


@dataclass
class RunTable:
    run_id: str
    rows: list[dict[str, Any]]


def _split_item(item_id: str) -> tuple[str, str] | None:
    parts = item_id.split("/")
    return (parts[0], parts[1]) if len(parts) == 2 and all(parts) else None


def _record_kind(name: str) -> str | None:
    """Which ``Sources`` field a file under a stage 2 or 3 run folder fills, if any."""
    if name.endswith(SIDECAR_FILE_SUFFIX):
        return "sidecar"
    if name.endswith(INFERENCE_SUFFIX):
        return "inference"
    if name.startswith("eval_") and name.endswith(".json"):
        return "evaluation"
    return None


def _collect(layout: Layout, run_id: str) -> dict[tuple[str, str], Sources]:
    found: dict[tuple[str, str], Sources] = {}

    def at(folder: str, video_id: str) -> Sources:
        return found.setdefault((folder, video_id), Sources(run_id, folder, video_id))

    wanted: list[tuple[Sources, str, str]] = []     # (where, which field, file), read together below
    for root, item_attribute in ((layout.vp_run(run_id), "edit_item"), (layout.alpamayo_run(run_id), "vla_item")):
        files = storage.walk_files(root)
        for uri in files:
            parts = uri.replace("\\", "/").split("/")
            kind = _record_kind(parts[-1])
            if kind and len(parts) >= 3 and not parts[-3].startswith("_"):
                wanted.append((at(parts[-3], parts[-2]), kind, uri))
        for item_id, record in read_item_records(root, listed=files).items():   # no second listing
            if key := _split_item(item_id):
                setattr(at(*key), item_attribute, record)
    for (sources, kind, _), value in zip(wanted, storage.read_json_objects([u for *_, u in wanted]), strict=True):
        setattr(sources, kind, value or {})
    by_stats: dict[str, list[Sources]] = {}     # stage 1's statistics of each video, found through the sidecar
    for sources in found.values():
        data_run = _path(sources.sidecar, "input", "data_run_id") or run_id
        by_stats.setdefault(layout.sam2_stats_json(data_run, sources.video_id), []).append(sources)
    present = [uri for uri in by_stats if storage.exists(uri)]
    for uri, value in zip(present, storage.read_json_objects(present), strict=True):
        for sources in by_stats[uri]:
            sources.stats = value or {}
    return found


def build_table(output_root: str, run_id: str) -> RunTable:
    """Every clip x instruction of run ``run_id`` under ``output_root`` (sorted by instruction, then clip)."""
    found = _collect(Layout(output_root), run_id)
    rows = []
    for key in sorted(found):
        sources = found[key]
        rows.append({column.name: column.get(sources) for column in COLUMNS})
    return RunTable(run_id, rows)


def _csv_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if math.isnan(value):
            return ""
        return "inf" if value == math.inf else "-inf" if value == -math.inf else repr(value)
    return str(value)


def table_csv(table: RunTable) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(COLUMN_NAMES)
    for row in table.rows:
        writer.writerow([_csv_value(row.get(name)) for name in COLUMN_NAMES])
    return buffer.getvalue()


def table_parquet(table: RunTable) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    types = {"str": pa.string(), "float": pa.float64(), "int": pa.int64(), "bool": pa.bool_()}
    schema = pa.schema([pa.field(c.name, types[c.kind], metadata={"doc": c.doc}) for c in COLUMNS])
    arrays = {c.name: [row.get(c.name) for row in table.rows] for c in COLUMNS}
    buffer = io.BytesIO()
    pq.write_table(pa.table(arrays, schema=schema), buffer, compression="zstd")
    return buffer.getvalue()


def write_table(table: RunTable, output_root: str) -> dict[str, str]:
    """``reports/<run_id>/results.csv`` and ``results.parquet`` (without pyarrow: the CSV only, said so)."""
    layout = Layout(output_root)
    out = {}
    csv_uri = layout.results_table(table.run_id, "csv")
    storage.write_text(csv_uri, table_csv(table))
    out["csv"] = csv_uri
    try:
        data = table_parquet(table)
    except ImportError:
        log.warning("results table: pyarrow is not installed, so only the CSV was written (%s)", csv_uri)
        return out
    parquet_uri = layout.results_table(table.run_id, "parquet")
    storage.write_bytes(parquet_uri, data)
    out["parquet"] = parquet_uri
    return out

"""The quality label and the per-video evaluation files ``eval_<video_id>.txt`` / ``.json``.

- ``quality_label(full)``: +1 each for PSNR > 40 (the clip PSNR, of the mean MSE: finite unless every
  frame is identical), SSIM > 0.95, LPIPS < 0.1 on full-frame values; >= 2 points EXCELLENT, 1 GOOD,
  0 MODERATE. ``evaluated`` lists the criteria that had a value; an unavailable one earns no point (the
  label's ``note`` says which), so without LPIPS the best label needs both PSNR and SSIM.
- ``write_eval(layout, run_id, folder, video_id, scores, info) -> (txt_uri, json_uri)`` with
  ``scores`` from ``QualityScorer.score`` and ``info`` holding ``original``, ``edited``, ``masks``
  (URIs), ``fps`` and optionally ``mask_dilate_px`` (the masks were dilated by that much before
  scoring). JSON cannot hold infinities: +inf is written as the string ``"inf"``, a missing value
  as ``null``.

No torch here.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from core import storage
from core.layout import Layout

EXCELLENT, GOOD, MODERATE = "EXCELLENT", "GOOD", "MODERATE"
# (metric, comparison, threshold) for the label's points, on full-frame values.
THRESHOLDS: tuple[tuple[str, str, float], ...] = (("psnr", ">", 40.0), ("ssim", ">", 0.95), ("lpips", "<", 0.1))

_ROWS = (("psnr", "PSNR (dB, of the mean MSE)"), ("psnr_frame_mean", "PSNR (dB, mean of finite frames)"),
         ("identical_frames", "identical frames"), ("ssim", "SSIM"), ("lpips", "LPIPS"), ("mse", "MSE"), ("mae", "MAE"),
         ("clip_score", "CLIP score"), ("temporal_consistency", "temporal consistency"))
_BLOCKS = (("full", "Full frame"), ("masked", "Inside the mask (mask > 0.5 on both clips)"),
           ("background", "Outside the mask (should be unchanged)"))


def quality_label(full: Mapping[str, Any]) -> dict[str, Any]:
    """The label and which points were earned, from full-frame metric values."""
    earned: dict[str, bool] = {}
    evaluated: list[str] = []
    for key, op, threshold in THRESHOLDS:
        value = full.get(key)
        if value is None or isinstance(value, str) or math.isnan(value):
            earned[key] = False
            continue
        evaluated.append(key)
        earned[key] = value > threshold if op == ">" else value < threshold
    points = sum(earned.values())
    label = EXCELLENT if points >= 2 else GOOD if points == 1 else MODERATE
    out: dict[str, Any] = {"label": label, "points": points, "max_points": len(THRESHOLDS), "earned": earned,
                           "evaluated": evaluated}
    missing = [key.upper() for key, _, _ in THRESHOLDS if key not in evaluated]
    if missing:
        out["note"] = (f"evaluated on {len(evaluated)} of {len(THRESHOLDS)} criteria: {', '.join(missing)} "
                       f"unavailable, {'its point counts' if len(missing) == 1 else 'their points count'} "
                       "as not earned")
    return out


def json_safe(value: Any) -> Any:
    """Nested data with +/-inf as "inf"/"-inf" and nan as None, so strict JSON can hold it."""
    if isinstance(value, float):
        if math.isnan(value):
            return None
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return value
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


def eval_record(video_id: str, scores: Mapping[str, Any], info: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON document of one video's evaluation."""
    return json_safe({
        "video_id": video_id,
        "instruction": scores.get("instruction"),
        "paths": {k: info.get(k) for k in ("original", "edited", "masks")},
        "mask_dilate_px": info.get("mask_dilate_px"),
        "resolution": {"width": scores.get("width"), "height": scores.get("height")},
        "fps": info.get("fps"),
        "frames": scores.get("frames"),
        "mask_coverage_pct": scores.get("mask_coverage_pct"),
        "full": scores.get("full"),
        "masked": scores.get("masked"),
        "background": scores.get("background"),
        "label": scores.get("label"),
        "lpips": scores.get("lpips"),
        "profile": scores.get("profile"),
        "per_frame": scores.get("per_frame"),
        **({"videopainter": scores["videopainter"]} if scores.get("videopainter") else {}),
    })


def _number(key: str, value: Any, lpips_reason: str | None) -> str:
    if value is None:
        if key == "lpips" and lpips_reason:
            return f"unavailable ({lpips_reason})"
        return "n/a"
    if isinstance(value, str):
        return value
    if key == "identical_frames":
        return str(value)
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return f"{value:.6g}" if key in ("mse", "mae") else f"{value:.4f}"


def _dilation(pixels: Any) -> str:
    return f" (dilated by {pixels} px: the area that was repainted)" if pixels else ""


def format_eval_txt(record: Mapping[str, Any]) -> str:
    """The human-readable ``eval_<video_id>.txt`` from an ``eval_record``."""
    paths = record.get("paths") or {}
    res = record.get("resolution") or {}
    fps = record.get("fps")
    coverage = record.get("mask_coverage_pct")
    lpips_reason = (record.get("lpips") or {}).get("reason")
    lines = [
        f"Evaluation of {record.get('video_id')}",
        f"instruction:      {record.get('instruction')}",
        f"original video:   {paths.get('original') or 'n/a'}",
        f"edited video:     {paths.get('edited') or 'n/a'}",
        f"masks:            {paths.get('masks') or 'n/a'}{_dilation(record.get('mask_dilate_px'))}",
        f"resolution:       {res.get('width')}x{res.get('height')} (W x H)",
        f"frames:           {record.get('frames')} at {f'{fps:.2f}' if isinstance(fps, int | float) else 'n/a'} fps",
        f"mask coverage:    {f'{coverage:.2f}' if isinstance(coverage, int | float) else 'n/a'} %",
    ]
    if record.get("profile") == "tiny":
        lines.append("profile:          tiny (random-weight models: the CLIP and LPIPS numbers are meaningless)")
    for block, title in _BLOCKS:
        values = record.get(block) or {}
        lines += ["", title]
        for key, name in _ROWS:
            if key in values:
                lines.append(f"  {name:<33} {_number(key, values[key], lpips_reason)}")
    vp = record.get("videopainter")
    if vp:
        lines += ["", "VideoPainter's protocol (--metrics-protocol videopainter; see docs/metrics.md)",
                  f"  caption of the CLIP score: {vp.get('caption')}"]
        for prefix, title in (("", "full frame"), ("masked_", "masked (original vs edit x (1 - mask))")):
            values = "  ".join(f"{name} {_number(key, vp.get(prefix + key), lpips_reason)}" for key, name in _ROWS
                               if prefix + key in vp)
            lines.append(f"  {title}: {values}")
    label = record.get("label") or {}
    earned = label.get("earned") or {}
    parts = [f"{k.upper()} {op} {t:g}: {'yes' if earned.get(k) else 'no'}" for k, op, t in THRESHOLDS]
    lines += ["", f"Quality: {label.get('label')} ({label.get('points')}/{label.get('max_points')} points; "
                  + ", ".join(parts) + ")"]
    if label.get("note"):
        lines.append(f"  {label['note']}")
    return "\n".join(lines) + "\n"


def write_eval(layout: Layout, run_id: str, folder: str, video_id: str, scores: Mapping[str, Any],
               info: Mapping[str, Any]) -> tuple[str, str]:
    """Write ``eval_<video_id>.json`` then ``eval_<video_id>.txt`` (each atomically); their URIs."""
    record = eval_record(video_id, scores, info)
    json_uri = layout.vp_eval_json(run_id, folder, video_id)
    txt_uri = layout.vp_eval_txt(run_id, folder, video_id)
    storage.write_text(json_uri, json.dumps(record, indent=2, ensure_ascii=False, allow_nan=False) + "\n")
    storage.write_text(txt_uri, format_eval_txt(record))
    return txt_uri, json_uri

"""The run report: ``<run_id>_report.txt``, ``inference_summary.json`` and a PNG of the minADE deltas.

Rows cover every video of the run: each ``_inference.json`` under ``alpamayo/<run_id>`` (finished
or failed, now or in an earlier invocation) and this invocation's failures that left no record. Per instruction folder, the paired
change ``delta = edited minADE - original minADE`` gets mean, median, a seeded bootstrap 95%
interval and a sign-flip permutation p-value (``vla.metrics``).
"""

from __future__ import annotations

import io
import json
import logging
import statistics
from collections.abc import Sequence
from typing import Any

import numpy as np

from core import storage
from core.errors import StorageError
from core.runner import FAILED, RunSummary
from vla.metrics import instruction_delta_stats

log = logging.getLogger(__name__)


INFERENCE_SUFFIX = "_inference.json"


def _item_of(uri: str) -> str:
    parts = uri.replace("\\", "/").rstrip("/").split("/")
    return f"{parts[-3]}/{parts[-2]}"     # <instruction_folder>/<video_id>/<video_id>_inference.json


def collect_rows(run_root: str, summary: RunSummary | None = None) -> list[dict[str, Any]]:
    """Every video of the run, sorted: each ``_inference.json`` under ``run_root`` (with this
    invocation's status when it touched the video, else ``earlier``), plus this invocation's
    failures that left no record (a name that does not parse)."""
    touched = {r.item_id: r for r in summary.results} if summary is not None else {}
    rows: dict[str, dict[str, Any]] = {}
    for uri in storage.walk_files(run_root):
        if not uri.endswith(INFERENCE_SUFFIX):
            continue
        item = _item_of(uri)
        try:
            record = json.loads(storage.read_text(uri))
        except (StorageError, ValueError) as exc:
            record = {"success": False, "error": f"unreadable {storage.basename(uri)}: {exc}"}
        result = touched.get(item)
        row = {**record, "item": item, "status": result.status if result is not None else "earlier"}
        if result is not None and result.status == FAILED:
            row.update(success=False, error=result.error or "failed")
        rows[item] = row
    for item, result in touched.items():
        if result.status == FAILED and item not in rows:
            rows[item] = {"item": item, "status": FAILED, "success": False, "error": result.error or "failed"}
    return [rows[k] for k in sorted(rows)]


def _mean(values: Sequence[float]) -> float | None:
    return float(statistics.fmean(values)) if values else None


def _max(values: Sequence[float]) -> float | None:
    return float(max(values)) if values else None


def _metric(rows: list[dict[str, Any]], key: str) -> list[float]:
    return [float(r["metrics"][key]) for r in rows if r.get("metrics", {}).get(key) is not None]


def _displacement(group: list[dict[str, Any]], key: str | None = None) -> dict[str, float | None]:
    """Mean, median and max of the plan displacement (ADE and FDE between the original and edited plans)."""
    records = [(r.get(key) or {}) if key else r for r in group]
    out: dict[str, float | None] = {}
    for metric in ("ade_meters", "fde_meters"):
        values = [float(d["plan_displacement"][metric]) for d in records if d.get("plan_displacement")]
        out[metric] = _mean(values)
        out[f"{metric}_median"] = float(statistics.median(values)) if values else None
        out[f"{metric}_max"] = _max(values)
    return out


def _baseline(group: list[dict[str, Any]]) -> dict[str, Any] | None:
    records = [r["baseline"] for r in group if r.get("baseline")]
    if not records:
        return None
    return {"model": records[0]["model"], "min_ade_meters": _mean([b["min_ade_meters"] for b in records]),
            "min_ade_delta_meters": _mean([b["min_ade_delta_meters"] for b in records]),
            "plan_displacement": _displacement(group, "baseline")}


def summarise(rows: list[dict[str, Any]], header: dict[str, Any], bootstrap_samples: int = 10000,
              permutation_samples: int = 10000, seed: int = 0) -> dict[str, Any]:
    good = [r for r in rows if r.get("success")]
    ades = [float(r["min_ade_meters"]) for r in good]
    originals = [float(r["original_min_ade_meters"]) for r in good]
    by_video = sorted(good, key=lambda r: r["min_ade_meters"])
    groups = {folder: [r for r in good if r["instruction_folder"] == folder]
              for folder in sorted({r["instruction_folder"] for r in good})}
    deltas = instruction_delta_stats(
        {folder: ([r["min_ade_meters"] for r in group], [r["original_min_ade_meters"] for r in group])
         for folder, group in groups.items()}, bootstrap_samples, permutation_samples, seed)
    instructions: dict[str, Any] = {
        folder: {
            "instruction": next((r.get("instruction") for r in group if r.get("instruction")), None),
            "videos": [r["video_id"] for r in group],
            "deltas": [r["min_ade_meters"] - r["original_min_ade_meters"] for r in group],
            "delta": deltas[folder],
            "plan_displacement": _displacement(group),
            "baseline": _baseline(group),
        } for folder, group in groups.items()}
    return {
        **header,
        "counts": {"total": len(rows), "succeeded": len(good), "failed": len(rows) - len(good),
                   "ok_this_run": sum(1 for r in good if r["status"] == "ok"),
                   "skipped_already_done": sum(1 for r in good if r["status"] == "skipped"),
                   "from_earlier_invocations": sum(1 for r in good if r["status"] == "earlier")},
        "inference_time_seconds": {"mean": _mean(_metric(good, "inference_time_seconds"))},
        "gpu_memory_peak_gb": {"mean": _mean(_metric(good, "gpu_memory_peak_gb")),
                               "max": _max(_metric(good, "gpu_memory_peak_gb"))},
        "ram_peak_mb": {"mean": _mean(_metric(good, "ram_peak_mb")), "max": _max(_metric(good, "ram_peak_mb"))},
        "min_ade_meters": {"mean": _mean(ades), "best": min(ades, default=None), "worst": _max(ades),
                           "best_video": by_video[0]["video_id"] if by_video else None,
                           "worst_video": by_video[-1]["video_id"] if by_video else None},
        "original_min_ade_meters": {"mean": _mean(originals), "best": min(originals, default=None),
                                    "worst": _max(originals)},
        "instructions": instructions,
        "failures": [{"item": r["item"], "error": r.get("error", "")} for r in rows if not r.get("success")],
        "videos": rows,
    }


def _f(value: float | None, fmt: str = ".3f", unit: str = "") -> str:
    return "n/a" if value is None else f"{value:{fmt}}{unit}"


def report_text(s: dict[str, Any]) -> str:
    c = s["counts"]
    lines = [
        f"lanepaint stage 3 report: run {s['run_id']}",
        f"model: {s['model']} (profile {s['profile']})   input: {s['video_data']}",
        f"dataset: {s['dataset'].get('dataset_dir')} @ {s['dataset'].get('revision')}",
        "",
        f"videos: {c['total']}   succeeded: {c['succeeded']} ({c['ok_this_run']} now, "
        f"{c['skipped_already_done']} already done, {c['from_earlier_invocations']} from earlier invocations)   "
        f"failed: {c['failed']}",
        f"average inference time: {_f(s['inference_time_seconds']['mean'], '.3f', ' s')}",
        f"GPU peak: average {_f(s['gpu_memory_peak_gb']['mean'], '.2f', ' GB')}, "
        f"max {_f(s['gpu_memory_peak_gb']['max'], '.2f', ' GB')}",
        f"RAM peak: average {_f(s['ram_peak_mb']['mean'], '.0f', ' MB')}, max {_f(s['ram_peak_mb']['max'], '.0f', ' MB')}",
        f"minADE (edited): average {_f(s['min_ade_meters']['mean'], '.3f', ' m')}, "
        f"best {_f(s['min_ade_meters']['best'], '.3f', ' m')} ({s['min_ade_meters']['best_video']}), "
        f"worst {_f(s['min_ade_meters']['worst'], '.3f', ' m')} ({s['min_ade_meters']['worst_video']})",
        f"minADE (original): average {_f(s['original_min_ade_meters']['mean'], '.3f', ' m')}",
        "",
        "per instruction: delta = edited minADE - original minADE (m)",
    ]
    if (s.get("model_description") or {}).get("uses_images") is False:
        lines.insert(len(lines) - 1, f"note: {s['model']} plans from the ego history only and never looks at the "
                     "camera frames, so its delta is 0 by construction; use --model alpamayo to measure the edit")
    for folder, info in s["instructions"].items():
        d = info["delta"]
        lines.append(f"  {folder}: n={d['n']} mean {d['mean']:+.3f} median {d['median']:+.3f} "
                     f"95% CI [{d['ci_low']:+.3f}, {d['ci_high']:+.3f}] p={d['p_value']:.4f} ({d['permutation']}), "
                     f"Holm-adjusted over {len(s['instructions'])} instruction(s) p={d['p_holm']:.4f}"
                     + (f"  \"{info['instruction']}\"" if info.get("instruction") else ""))
        if d.get("too_few_pairs"):
            lines.append(f"      WARNING: n={d['n']} is too small for the test: its smallest attainable p is "
                         f"{d['smallest_attainable_p']:.4f}, so p < 0.05 is impossible (n >= 6 needed); the "
                         "interval is a bootstrap over so few clips and is not evidence of an effect")
        p = info.get("plan_displacement") or {}
        lines.append(f"      plan moved (original vs edited plan, paired samples): ADE mean "
                     f"{_f(p.get('ade_meters'), '.3f', ' m')} (median {_f(p.get('ade_meters_median'), '.3f', ' m')}, "
                     f"max {_f(p.get('ade_meters_max'), '.3f', ' m')}), FDE mean {_f(p.get('fde_meters'), '.3f', ' m')}")
        b = info.get("baseline")
        if b:
            lines.append(f"      baseline {b['model']}: minADE {_f(b['min_ade_meters'], '.3f', ' m')}, delta "
                         f"{_f(b['min_ade_delta_meters'], '+.3f', ' m')}, plan moved ADE "
                         f"{_f(b['plan_displacement']['ade_meters'], '.3f', ' m')} (ignores images: 0 by construction)")
    if not s["instructions"]:
        lines.append("  (no successful videos)")
    lines += ["", "per video:", f"  {'status':<8} {'minADE':>8} {'orig':>8} {'delta':>8} {'moved':>8} {'time s':>7}  "
              "video"]
    for r in s["videos"]:
        if r.get("success"):
            moved = (r.get("plan_displacement") or {}).get("ade_meters")
            lines.append(f"  {r['status']:<8} {r['min_ade_meters']:8.3f} {r['original_min_ade_meters']:8.3f} "
                         f"{r['min_ade_meters'] - r['original_min_ade_meters']:+8.3f} {_f(moved, '8.3f')} "
                         f"{r['metrics']['inference_time_seconds']:7.3f}  {r['item']}")
        else:
            lines.append(f"  {'FAILED':<8} {'':>8} {'':>8} {'':>8} {'':>8} {'':>7}  {r['item']}: {r.get('error', '')}")
    if s.get("delta_plot"):
        lines += ["", f"delta plot: {s['delta_plot']}"]
    return "\n".join(lines) + "\n"


def delta_plot_png(instructions: dict[str, Any], title: str) -> bytes:
    """Deltas per instruction (points), mean with its bootstrap 95% interval, zero line."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    names = list(instructions) or ["(none)"]
    fig = Figure(figsize=(max(4.0, 1.6 * len(names) + 2), 4.0), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    ax.axhline(0.0, color="grey", linewidth=1)
    rng = np.random.default_rng(0)
    for i, name in enumerate(instructions):
        info = instructions[name]
        deltas = np.asarray(info["deltas"], dtype=float)
        ax.scatter(i + rng.uniform(-0.12, 0.12, len(deltas)), deltas, s=18, alpha=0.7, color="tab:blue")
        d = info["delta"]
        ax.errorbar([i + 0.25], [d["mean"]], yerr=[[d["mean"] - d["ci_low"]], [d["ci_high"] - d["mean"]]],
                    fmt="o", color="tab:red", capsize=4)
        ax.annotate(f"p={d['p_value']:.3g}", (i + 0.3, d["mean"]), fontsize=8)
    ax.set_xticks(range(len(names)), [n[:28] for n in names], rotation=20, ha="right", fontsize=8)
    ax.set_ylabel("edited - original minADE (m)")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def write_run_report(run_root: str, report_uri: str, summary_uri: str, plot_uri: str, header: dict[str, Any],
                     summary: RunSummary | None = None, bootstrap_samples: int = 10000,
                     permutation_samples: int = 10000, seed: int = 0) -> dict[str, Any]:
    """Build the report of everything under ``run_root`` and write the PNG, the JSON and the text.

    Also usable after a fan-out over several workers (``summary=None``): it reads the run's records.
    """
    rows = collect_rows(run_root, summary)
    report = summarise(rows, header, bootstrap_samples, permutation_samples, seed)
    report["delta_plot"] = plot_uri
    storage.write_bytes(plot_uri, delta_plot_png(report["instructions"], f"minADE change, run {report['run_id']}"))
    storage.write_text(summary_uri, json.dumps(report, indent=2, default=str))
    storage.write_text(report_uri, report_text(report))
    return report

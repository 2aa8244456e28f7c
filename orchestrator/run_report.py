"""The run's report a person opens: one static HTML file, ``reports/<run_id>/report.html``.

Entry point: ``write_run_results(output_root, run_id, samples=6) -> RunResults``: builds the table
(``run_table``), writes ``results.csv`` / ``results.parquet`` and the HTML, and returns their URIs and the
HTML text (the Flyte driver shows the same text as its task report). Everything comes from the table, so
``lanepaint report`` rebuilds the same file at any time.

The page holds, in order: the counts and any failures (clip, stage, reason); per instruction the minADE change
(edited - original) with n, mean, median, the bootstrap 95% interval, the sign-flip p-value, the Holm-adjusted
p-value over the run's instructions, and a warning when n is too small for the test to reach p < 0.05; a
strip chart of those changes; scatter charts of edit metrics against how far the plan moved; the judge's pass
rates; and for a sample of clips, thumbnails (original | repainted mask | edit | plans over the edit) that link
to the videos. No scripts, no external files: images are embedded, charts are inline SVG.
"""

from __future__ import annotations

import base64
import html
import logging
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from core import storage
from core.errors import LanepaintError, brief
from core.layout import Layout
from orchestrator.run_table import RunTable, build_table, write_table
from orchestrator.svg_plots import bar_chart, finite, scatter_chart, strip_chart

log = logging.getLogger(__name__)

THUMB_WIDTH = 200
SCATTERS = (("full_psnr", "edit PSNR, full frame (dB)"), ("masked_ssim", "edit SSIM inside the mask"),
            ("compliance_fraction", "judge compliance (fraction of checked frames passed)"),
            ("full_lpips", "edit LPIPS, full frame"))
PLAN_AXIS = "plan moved, ADE (m)"


@dataclass
class RunResults:
    run_id: str
    rows: int
    uris: dict[str, str] = field(default_factory=dict)    # csv, parquet, html
    html: str = ""

    def lines(self) -> list[str]:
        return [f"results: {self.rows} clip x instruction row(s)"] + [f"  {kind:<8} {uri}" for kind, uri in
                                                                      self.uris.items()]


def _fmt(value: Any, spec: str = ".3f") -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float) and not np.isfinite(value):
        return "inf" if value > 0 else "n/a"
    return f"{value:{spec}}"


def _instruction_stats(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per instruction with both minADE values: its changes, their statistics (``instruction_delta_stats``, as
    stage 3's report computes them) and the plan displacements."""
    from vla.metrics import instruction_delta_stats

    groups: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        if row.get("min_ade_edited_m") is not None and row.get("min_ade_original_m") is not None:
            groups.setdefault(row["instruction_folder"], []).append(row)
    groups = dict(sorted(groups.items()))
    stats = instruction_delta_stats({folder: ([r["min_ade_edited_m"] for r in group],
                                              [r["min_ade_original_m"] for r in group])
                                     for folder, group in groups.items()})
    return [{"folder": folder, "stats": stats[folder],
             "deltas": [r["min_ade_edited_m"] - r["min_ade_original_m"] for r in group],
             "plan_ade": finite([r.get("plan_ade_m") for r in group])} for folder, group in groups.items()]


def _link(uri: str | None, report_dir: str) -> str | None:
    """A link the browser can follow from the report's folder: relative for local files, the console URL
    for gs:// objects."""
    if not uri:
        return None
    if storage.is_local(uri) and storage.is_local(report_dir):
        return os.path.relpath(storage.local_path(uri), storage.local_path(report_dir))
    if uri.startswith("gs://"):
        return "https://storage.cloud.google.com/" + uri[len("gs://"):]
    return uri


def _jpeg(frame: np.ndarray) -> str:
    import cv2

    height, width = frame.shape[:2]
    size = (THUMB_WIDTH, max(1, round(height * THUMB_WIDTH / width)))
    small = cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
    if small.ndim == 3:
        small = cv2.cvtColor(small, cv2.COLOR_RGB2BGR)
    ok, data = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, 80])
    if not ok:
        raise LanepaintError("could not encode a thumbnail")
    return "data:image/jpeg;base64," + base64.b64encode(data.tobytes()).decode("ascii")


def _thumb(uri: str | None, cache: str, last: bool = False) -> str | None:
    """A JPEG data URI of a PNG or of a video's first (or last) frame; None when it cannot be read."""
    if not uri:
        return None
    try:
        import cv2

        from core import videoio

        path = storage.fetch(uri, cache)
        if uri.endswith(".png"):
            image = cv2.imread(path, cv2.IMREAD_UNCHANGED)
            if image is None:
                return None
            return _jpeg(image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2RGB))
        count = videoio.probe(path).frame_count
        frames = videoio.decode_at(path, [max(0, count - 1) if last else 0])
        return _jpeg(next(iter(frames.values()))) if frames else None
    except Exception as exc:  # a thumbnail is a convenience: the report is still written without it
        log.warning("report: no thumbnail of %s: %s", uri, brief(exc))
        return None


def _sample(rows: list[dict[str, Any]], count: int) -> list[dict[str, Any]]:
    """Up to ``count`` edited rows, taken in turn from each instruction (deterministic)."""
    by_folder: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        if row.get("edit_status") == "ok":
            by_folder.setdefault(row["instruction_folder"], []).append(row)
    picked: list[dict[str, Any]] = []
    while len(picked) < count and any(by_folder.values()):
        for folder in sorted(by_folder):
            if by_folder[folder] and len(picked) < count:
                picked.append(by_folder[folder].pop(0))
    return picked


def _table(headers: Sequence[str], body: Sequence[Sequence[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    rows = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in body)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"


_STYLE = """body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:1100px}
table{border-collapse:collapse;margin:8px 0 16px}td,th{border:1px solid #ccc;padding:4px 8px;font-size:13px;
text-align:left;vertical-align:top}th{background:#f4f4f4}.warn{color:#a40;font-weight:600}
.note{color:#555;font-size:13px}figure{margin:8px 0 20px}figcaption{font-size:13px;color:#444}
.thumbs td{text-align:center}.thumbs img{display:block;width:200px}"""


def render_html(table: RunTable, output_root: str, samples: int = 6) -> str:
    rows = table.rows
    report_dir = Layout(output_root).reports_run(table.run_id)
    esc = html.escape
    parts = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>lanepaint run "
             f"{esc(table.run_id)}</title><style>{_STYLE}</style></head><body>",
             f"<h1>lanepaint run {esc(table.run_id)}</h1>",
             f"<p class='note'>output root {esc(output_root)}; table: <a href='results.csv'>results.csv</a>, "
             "<a href='results.parquet'>results.parquet</a> (one row per clip x instruction; columns in "
             "docs/results.md)</p>"]
    profiles = sorted({r["profile"] for r in rows if r.get("profile")})
    if "tiny" in profiles:
        parts.append("<p class='warn'>tiny profile: the models have random weights; every number and picture "
                     "below only shows that the pipeline ran.</p>")
    edits_ok = sum(r["edit_status"] == "ok" for r in rows)
    vla_ok = sum(r["vla_status"] == "ok" for r in rows)
    parts.append(f"<h2>Counts</h2><p>{len(rows)} clip x instruction item(s); stage 2 edited {edits_ok}; "
                 f"stage 3 evaluated {vla_ok}.</p>")
    failures = [(r, stage, r.get(f"{stage}_error") or "") for r in rows for stage in ("edit", "vla")
                if r.get(f"{stage}_status") == "failed"]
    if failures:
        parts.append("<h3>Failures</h3>" + _table(
            ("instruction", "clip", "stage", "reason"),
            [(esc(r["instruction_folder"]), esc(r["video_id"]), "2 edit" if stage == "edit" else "3 driving model",
              esc(reason)) for r, stage, reason in failures]))

    stats = _instruction_stats(rows)
    parts.append("<h2>Did the plan move? minADE change per instruction</h2>")
    if stats:
        body = []
        for e in stats:
            s = e["stats"]
            warn = (f"<span class='warn'>n={s['n']} is too small: the smallest p the test can give is "
                    f"{s['smallest_attainable_p']:.3f}, so p &lt; 0.05 is impossible (n &ge; 6 needed)</span>"
                    if s["too_few_pairs"] else "")
            body.append((esc(e["folder"]), str(s["n"]), _fmt(s["mean"], "+.3f"), _fmt(s["median"], "+.3f"),
                         f"[{s['ci_low']:+.3f}, {s['ci_high']:+.3f}]", f"{s['p_value']:.4f}", f"{s['p_holm']:.4f}",
                         _fmt(float(np.mean(e["plan_ade"])) if e["plan_ade"] else None), warn))
        parts.append(_table(("instruction", "n", "mean (m)", "median (m)", "95% CI of the mean (m)",
                             "p (sign flip)", f"p Holm ({len(stats)} instr.)", "plan moved, mean ADE (m)", ""),
                            body))
        parts.append("<p class='note'>change = edited minADE - original minADE, paired per clip; interval: "
                     "percentile bootstrap of the mean (10000 resamples, seeded); p: two-sided sign-flip "
                     "permutation test of mean 0 (exact up to n = 16); Holm: adjusted over this run's "
                     "instructions.</p>")
        chart = strip_chart([(e["folder"], e["deltas"], (e["stats"]["mean"], e["stats"]["ci_low"],
                                                         e["stats"]["ci_high"])) for e in stats],
                            "minADE change, edited - original (m)")
        parts.append(f"<figure>{chart}<figcaption>Each dot is a clip; the red bar is the mean with its bootstrap "
                     "95% interval; dashed: no change.</figcaption></figure>")
    else:
        parts.append("<p>No clip has both minADE values yet (stage 3 did not run or every clip failed).</p>")

    parts.append("<h2>Edit quality against how far the plan moved</h2>")
    folders = sorted({r["instruction_folder"] for r in rows})
    for key, axis in SCATTERS:
        series = []
        for folder in folders:
            points = [(float(r[key]), float(r["plan_ade_m"])) for r in rows if r["instruction_folder"] == folder
                      and finite([r.get(key)]) and finite([r.get("plan_ade_m")])]
            if points:
                series.append((folder, points))
        shown = sum(len(p) for _, p in series)
        if not shown:
            parts.append(f"<p class='note'>{esc(axis)}: no clip has both values.</p>")
            continue
        parts.append(f"<figure>{scatter_chart(series, axis, PLAN_AXIS)}<figcaption>{shown} clip(s), one colour "
                     "per instruction; plan moved: mean distance between the plans on the original and on the "
                     "edited clip (paired samples).</figcaption></figure>")

    parts.append("<h2>The judge</h2>")
    judge_rows = []
    for folder in folders:
        group = [r for r in rows if r["instruction_folder"] == folder and r.get("edit_status") == "ok"]
        passed = [r["judge_passed"] for r in group if r.get("judge_passed") is not None]
        compliance = finite([r.get("compliance_fraction") for r in group])
        labels: dict[str, int] = {}
        for r in group:
            if r.get("quality_label"):
                labels[r["quality_label"]] = labels.get(r["quality_label"], 0) + 1
        judge_rows.append((folder, len(group), (100.0 * sum(passed) / len(passed)) if passed else None,
                           (100.0 * float(np.mean(compliance))) if compliance else None, labels))
    if judge_rows:
        parts.append(_table(("instruction", "edits", "first frame passed (%)", "mean compliance (%)",
                             "quality labels"),
                            [(esc(f), str(n), _fmt(p, ".0f"), _fmt(c, ".0f"),
                              esc(", ".join(f"{k} {v}" for k, v in sorted(lab.items())))) for f, n, p, c, lab
                             in judge_rows]))
        bars = bar_chart([(f, [p, c]) for f, _, p, c, _ in judge_rows], ["first frame passed", "compliance"],
                         "share of edits / checked frames (%)", y_range=(0.0, 100.0))
        parts.append(f"<figure>{bars}"
                     "<figcaption>First frame passed: the judge's final verdict on the frame that was propagated; "
                     "compliance: the share of checked frames of the edited video it passed.</figcaption></figure>")

    picked = _sample(rows, samples)
    if picked:
        parts.append(f"<h2>Sample clips ({len(picked)})</h2><table class='thumbs'><thead><tr><th>clip</th>"
                     "<th>original (first frame)</th><th>repainted mask</th><th>edit (first frame)</th>"
                     "<th>plans over the edit (last frame)</th></tr></thead><tbody>")
        with tempfile.TemporaryDirectory(prefix=storage.temp_prefix("report")) as cache:
            for r in picked:
                cells = []
                for uri, last, target in ((r.get("first_frame_input"), False, r.get("original_video")),
                                          (r.get("first_frame_mask"), False, None),
                                          (r.get("edit_video"), False, r.get("edit_video")),
                                          (r.get("overlay_video"), True, r.get("overlay_video"))):
                    image = _thumb(uri, cache, last)
                    img = f"<img src='{image}' alt=''>" if image else "n/a"
                    href = _link(target, report_dir)
                    cells.append(f"<a href='{esc(href)}'>{img}</a>" if href and image else img)
                caption = (f"{esc(r['instruction_folder'])}<br>{esc(r['video_id'])}<br>plan moved "
                           f"{_fmt(r.get('plan_ade_m'))} m, minADE change {_fmt(r.get('min_ade_delta_m'), '+.3f')} m")
                parts.append(f"<tr><td>{caption}</td>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
        parts.append("</tbody></table>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def write_run_results(output_root: str, run_id: str, samples: int = 6) -> RunResults:
    """Build the table and the report of run ``run_id`` and write them under ``reports/<run_id>``."""
    table = build_table(output_root, run_id)
    if not table.rows:
        raise LanepaintError(f"run {run_id} under {output_root}: no stage-2 or stage-3 records to report on")
    uris = write_table(table, output_root)
    page = render_html(table, output_root, samples)
    uris["html"] = Layout(output_root).report_html(run_id)
    storage.write_text(uris["html"], page)
    return RunResults(run_id, len(table.rows), uris, page)

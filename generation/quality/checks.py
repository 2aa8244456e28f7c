"""Stage-2 quality inside ``run_edit``: the Qwen2.5-VL judge loop around FluxFill, the compliance check
of the generated clip, and the per-video metrics.

Entry point: ``load_quality(cfg, vlm=None) -> Quality``, called once per ``run_edit`` before the
FluxFill and video pipelines are placed, so their memory plan sees what Qwen and CLIP already hold.
``vlm``: an already loaded Qwen2.5-VL (anything with ``caption``, ``ask`` and ``ask_many``) to use
instead of loading one from ``cfg``. Per (video, instruction) item the editor calls, in order:

1. ``start_item(layout, run_id, folder, video_id) -> CaptionRefineWriter | None``: removes what an
   unfinished or overwritten earlier try left (attempt files, eval files) and opens
   ``<video_id>_caption_refine/`` (judge on);
2. ``first_frame(inpainter, frame, mask, instruction, seed, writer, video_id) -> FirstFrameResult``:
   judge on: the first caption comes from Qwen, FluxFill attempt ``n`` runs with the judge's latest
   caption and seed ``seed + n - 1`` until a PASS or ``caption_refine_iters`` attempts; then Qwen is
   freed when ``unload_qwen_after_use`` (before the video model). Judge off: one FluxFill call with
   the instruction as caption, verdict "not judged";
3. ``compliance(instruction, original, masks, edited, writer, video_id)``: the judge checks
   ``compliance_frames`` frames spread over the edited clip (None when the judge is off);
4. ``evaluate(layout, run_id, folder, video_id, original, edited, masks, instruction, info)``: the
   metrics, ``eval_<video_id>.txt`` and ``.json`` (None when metrics are off);
5. ``finish_item(writer, result, compliance)``: ``summary.json`` of the caption-refine folder.

Any failure inside the judge or the metrics (a model raising, out of memory) becomes a one-line
``LanepaintError`` naming the video and the step: the item fails, the run goes on. Malformed model
answers are not failures: they parse to FAIL (``judge_parse``).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from core import storage
from core.device import resolve_device
from core.errors import LanepaintError, brief, one_line
from core.layout import Layout
from generation.config import EditConfig
from generation.quality.judge import CaptionRefineWriter, ComplianceResult, Judge
from generation.quality.metrics_report import json_safe, write_eval

log = logging.getLogger(__name__)

NOT_JUDGED = "not judged"


@dataclass
class FirstFrameResult:
    """The chosen first frame and how it was chosen (``Quality.first_frame`` builds it)."""

    image: np.ndarray
    caption_used: str
    iterations: int = 1
    verdict: str = NOT_JUDGED
    details: dict[str, Any] = field(default_factory=dict)     # the judge's record (JSON-ready)
    seed: int = 0                                             # FluxFill seed of the chosen attempt
    refine: Any = field(default=None, repr=False)             # judge.RefineResult when judged


@dataclass
class Quality:
    """The judge (with its VLM) and the metrics scorer of one stage run; either may be off (None)."""

    judge: Judge | None = None
    vlm: Any = None
    scorer: Any = None                      # metrics.QualityScorer
    descriptions: dict[str, Any] = field(default_factory=dict)
    plan: list[str] = field(default_factory=list)
    load_seconds: float = 0.0

    # ---- per item ------------------------------------------------------------------------------
    def start_item(self, layout: Layout, run_id: str, folder: str, video_id: str) -> CaptionRefineWriter | None:
        """Clear leftovers of an earlier try of this item; the caption-refine writer (judge on)."""
        refine_dir = layout.vp_caption_refine_dir(run_id, folder, video_id)
        storage.rm(refine_dir, recursive=True)
        for uri in (layout.vp_eval_txt(run_id, folder, video_id), layout.vp_eval_json(run_id, folder, video_id)):
            storage.rm(uri)
        return CaptionRefineWriter(refine_dir) if self.judge is not None else None

    def first_frame(self, inpainter: Any, frame: np.ndarray, mask: np.ndarray, instruction: str, seed: int,
                    writer: CaptionRefineWriter | None, video_id: str) -> FirstFrameResult:
        if self.judge is None:
            return FirstFrameResult(inpainter(frame, mask, instruction, seed), instruction, seed=seed)
        seeds: dict[int, int] = {}

        def inpaint(caption: str, attempt: int) -> np.ndarray:
            seeds[attempt] = seed + attempt - 1     # a retry with an unchanged caption still tries new noise
            return inpainter(frame, mask, caption, seeds[attempt])

        try:
            refined = self.judge.refine_first_frame(instruction, frame, mask, inpaint, record=writer)
        except Exception as exc:
            raise LanepaintError(f"{video_id}: first-frame judge loop failed: {one_line(exc)}") from exc
        finally:
            self._free_vlm()                        # VP_UNLOAD_QWEN_AFTER_USE: before the video model
        details = refined.to_dict()
        for entry in details["history"]:
            entry["seed"] = seeds.get(entry["index"])
        details["caption_refine_dir"] = writer.folder if writer is not None else None
        return FirstFrameResult(refined.image, refined.caption, refined.iterations, refined.verdict, details,
                                seed=seeds[refined.chosen_attempt], refine=refined)

    def compliance(self, instruction: str, original: np.ndarray, masks: np.ndarray, edited: np.ndarray,
                   writer: CaptionRefineWriter | None, video_id: str) -> ComplianceResult | None:
        if self.judge is None:
            return None
        try:
            return self.judge.compliance_over_time(instruction, original, masks, edited, record=writer)
        except Exception as exc:
            raise LanepaintError(f"{video_id}: compliance check failed: {one_line(exc)}") from exc

    def evaluate(self, layout: Layout, run_id: str, folder: str, video_id: str, original: np.ndarray,
                 edited: np.ndarray, masks: np.ndarray, instruction: str, info: dict[str, Any],
                 caption: str | None = None) -> dict[str, Any] | None:
        """Metrics of the edited clip and its eval files; a summary for the sidecar (None when off).
        ``caption``: the video model's prompt (the text of VideoPainter's protocol CLIP score)."""
        if self.scorer is None:
            return None
        try:
            scores = self.scorer.score(original, edited, masks, instruction, caption=caption)
        except Exception as exc:
            raise LanepaintError(f"{video_id}: metrics failed: {one_line(exc)}") from exc
        txt_uri, json_uri = write_eval(layout, run_id, folder, video_id, scores, info)
        label = scores["label"]
        return json_safe({"label": label["label"], "points": label["points"], "max_points": label["max_points"],
                          "full": scores["full"], "masked": scores["masked"], "background": scores["background"],
                          "mask_coverage_pct": scores["mask_coverage_pct"], "eval_txt": txt_uri,
                          "eval_json": json_uri})

    @staticmethod
    def finish_item(writer: CaptionRefineWriter | None, result: FirstFrameResult,
                    compliance: ComplianceResult | None) -> None:
        if writer is not None:
            writer.write_summary(result.refine, compliance)

    def _free_vlm(self) -> None:
        unload = getattr(self.vlm, "maybe_unload", None)
        if callable(unload):
            unload()


def _judge_plan(cfg: EditConfig, vlm: Any, provided: bool) -> str:
    from generation.edit_models import size_text

    if provided:
        return "qwen judge: provided by the caller (not placed by this stage)"
    device = resolve_device(cfg.qwen_device, cfg.profile).device
    reserve = (f", weights capped at free memory - {cfg.qwen_vram_reserve_gib:g} GiB when it loads"
               if cfg.qwen_vram_reserve_gib > 0 and device.startswith("cuda") else "")
    if cfg.unload_qwen_after_use:
        return (f"{device}: qwen judge {vlm.source}: loaded on demand, freed before each video pass "
                f"(VP_UNLOAD_QWEN_AFTER_USE: about one load per item){reserve}")
    return (f"{device}: qwen judge {vlm.source} {size_text(vlm.weight_bytes())}: resident, loaded before the "
            f"pipelines (the free memory below already excludes it){reserve}")


def load_quality(cfg: EditConfig, vlm: Any = None) -> Quality:
    """Load the judge's Qwen2.5-VL and the metrics' CLIP models once (see the module docstring)."""
    start = time.perf_counter()
    quality = Quality()
    if cfg.judge:
        provided = vlm is not None
        if vlm is None:
            from generation.quality.vlm import QwenVLM

            vlm = QwenVLM(cfg.profile, cfg.qwen_model, cfg.qwen_device, cfg.qwen_vram_reserve_gib,
                          cfg.unload_qwen_after_use)
            if not cfg.unload_qwen_after_use:
                vlm.load()                  # resident: before the pipelines, which plan around it
        quality.vlm = vlm
        quality.judge = Judge(vlm, cfg.caption_refine_iters, cfg.caption_refine_temperature,
                              compliance_frames=cfg.compliance_frames, seed=cfg.seed)
        describe = getattr(vlm, "describe", None)
        quality.descriptions["judge"] = {
            **(describe() if callable(describe) else {"name": type(vlm).__name__}),
            "caption_refine_iters": cfg.caption_refine_iters,
            "caption_refine_temperature": cfg.caption_refine_temperature,
            "compliance_frames": cfg.compliance_frames}
        quality.plan.append(_judge_plan(cfg, vlm, provided))
    else:
        quality.descriptions["judge"] = {"enabled": False}
    if cfg.metrics:
        from generation.edit_models import module_bytes, size_text
        from generation.quality.metrics import QualityScorer

        try:
            scorer = QualityScorer(cfg.profile, cfg.cog_device, clip_score_model=cfg.clip_score_model,
                                   clip_temporal_model=cfg.clip_temporal_model, protocol=cfg.metrics_protocol)
        except (OSError, ValueError) as exc:
            raise LanepaintError(f"cannot load the CLIP models of the metrics ({cfg.clip_score_model}, "
                                 f"{cfg.clip_temporal_model}): {brief(exc)}") from None
        quality.scorer = scorer
        quality.descriptions["metrics"] = scorer.describe()
        models = {id(e.model): e.model for e in (scorer.clip_score, scorer.clip_temporal)}
        quality.plan.append(f"{scorer.policy.device}: metrics CLIP "
                            f"{size_text(sum(module_bytes(m) for m in models.values()))}: resident")
    else:
        quality.descriptions["metrics"] = {"enabled": False}
    quality.load_seconds = time.perf_counter() - start
    return quality

"""Stage 2: ``run_edit(cfg) -> StageResult``: repaint the road of every clip of a segmentation run.

Reads ``preprocessed_data_vp/<data_run_id>/`` (stage 1's hand-off), loads the models once (the
Qwen2.5-VL judge and the metrics' CLIP models first, then FluxFill and the video pipeline), and runs
every (video, instruction) item, all instructions of a video before the next video: judged first
frame, video pass, compliance check, metrics (``generation.quality.checks``). Bad inputs and failures of
the judge or the metrics fail their items with a one-line reason; the others go on. An item whose
sidecar exists is done and skipped on rerun (unless ``overwrite``); a rerun with nothing to do loads
no model. Each instruction folder gets ``report.txt``/``report.json`` listing every video with
status, timings, verdict, compliance fraction and quality label; the run root gets ``manifest.json``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from dataclasses import dataclass
from typing import Any

from core import storage
from core.claims import ClaimStore
from core.device import tiny_cpu_threads, torch_threads
from core.errors import LanepaintError, UsageError, one_line
from core.layout import Layout
from core.manifest import RunManifest
from core.model_fingerprint import weights_record
from core.runner import FAILED, OK, ItemRunner, ItemTimeout, RunSummary, StageResult, Timings
from core.vp_data import list_vp_videos, read_vp_clip
from generation.config import EditConfig
from generation.editor import (
    ClipInputs,
    FirstFramed,
    VideoResult,
    edit_item,
    finish_item,
    first_frame_item,
    load_clip_inputs,
    start_peak_memory,
    video_pass,
)
from generation.instructions import Instruction, parse_instructions
from generation.lora_weights import check_lora_path

log = logging.getLogger(__name__)

STAGE = "edit"


@dataclass(frozen=True)
class EditItem:
    video_id: str
    instruction: Instruction

    @property
    def item_id(self) -> str:
        return f"{self.instruction.folder}/{self.video_id}"


def _check_inputs(cfg: EditConfig) -> tuple[Layout, list[str]]:
    """Run-level checks, before anything is written: storage root, LoRA paths, stage-1 output."""
    storage.check_output_root(cfg.output_root)
    check_lora_path(cfg.img_inpainting_lora_path)   # local, gs:// or memory://; a run folder or a checkpoint
    if cfg.id_lora_path and not os.path.exists(cfg.id_lora_path):
        raise UsageError(f"--id-lora-path {cfg.id_lora_path}: no such file or folder")
    layout = Layout(cfg.output_root)
    available = list_vp_videos(layout, cfg.data_run_id)
    if not available:
        raise UsageError(f"no segmentation output for run {cfg.data_run_id} under {cfg.output_root}")
    return layout, available


def _readable(layout: Layout, cfg: EditConfig, video_id: str, available: list[str]) -> bool:
    """A cheap look (meta.csv and files) so that a run whose pending videos are all broken does not
    load the models; the full checks run per item."""
    if video_id not in available:
        return False
    try:
        read_vp_clip(layout, cfg.data_run_id, video_id)
    except LanepaintError:
        return False
    return True


class _ClipCache:
    """The inputs of the current video (items come video by video), or the error they raised."""

    def __init__(self, layout: Layout, cfg: EditConfig, available: set[str]) -> None:
        self.layout, self.cfg, self.available = layout, cfg, available
        self.cache_dir = cfg.cache_dir or storage.DEFAULT_CACHE_DIR
        self.video_id: str | None = None
        self.value: ClipInputs | LanepaintError | None = None

    def get(self, video_id: str) -> ClipInputs:
        if video_id != self.video_id:
            self.video_id, self.value = video_id, None
            try:
                if video_id not in self.available:
                    raise LanepaintError(f"{video_id}: not in segmentation run {self.cfg.data_run_id}")
                self.value = load_clip_inputs(self.layout, self.cfg, video_id, self.cache_dir)
            except LanepaintError as exc:
                self.value = exc
        if isinstance(self.value, LanepaintError):
            raise LanepaintError(str(self.value))
        assert self.value is not None
        return self.value


class _InstructionBatches:
    """``--instruction-batch N``: the item that starts a video's batch computes the first frames of itself and the
    next N-1 pending instructions of that video, then one batched video pass; each of those items later takes its
    result (its own first-frame time, its share of the video pass) and writes its outputs as usual.

    The other members are claimed first (``ClaimStore.reserve``: an item another invocation holds is left out, and
    the runner later takes over the reservation) and their old sidecar removed (no item looks done with its
    outputs being redone). A member's failed first frame is raised again when its item comes; a batch that ran
    out of GPU memory is redone one by one."""

    def __init__(self, cfg: EditConfig, layout: Layout, models: Any, quality: Any, pending: list[EditItem],
                 is_done: Any, claims: ClaimStore) -> None:
        self.cfg, self.layout, self.models, self.quality, self.is_done = cfg, layout, models, quality, is_done
        self.pending, self.claims = pending, claims
        self.ready: dict[str, tuple[FirstFramed | LanepaintError, VideoResult | None, float]] = {}
        self.video_id: str | None = None

    def _group(self, item: EditItem) -> list[EditItem]:
        later = self.pending[self.pending.index(item) + 1:] if item in self.pending else []
        group = [item]
        for other in later:
            if len(group) >= self.cfg.instruction_batch or other.video_id != item.video_id:
                break
            if (other.item_id not in self.ready and (self.cfg.overwrite or not self.is_done(other))
                    and self.claims.reserve(other.item_id)):
                storage.rm(self.layout.vp_sidecar(self.cfg.run_id, other.instruction.folder, other.video_id))
                group.append(other)
        return group

    def run(self, item: EditItem, inputs: ClipInputs, timings: Timings) -> dict[str, Any]:
        if item.video_id != self.video_id:
            self.video_id, self.ready = item.video_id, {}
        if item.item_id not in self.ready:
            try:
                self._compute(self._group(item), inputs)
            except ItemTimeout:
                timings.timed_out_in = timings.timed_out_in or "instruction batch"
                raise
        framed, out, video_seconds = self.ready.pop(item.item_id)
        if isinstance(framed, LanepaintError):
            raise LanepaintError(str(framed))
        timings.add("first_frame", framed.seconds)
        timings.add("video_generation", video_seconds)
        assert out is not None
        return finish_item(self.cfg, self.layout, inputs, framed, out, self.models, self.quality, timings)

    def _compute(self, group: list[EditItem], inputs: ClipInputs) -> None:
        start_peak_memory(self.models.cog_policy.device)
        framed: list[FirstFramed] = []
        for member in group:
            try:
                framed.append(first_frame_item(self.cfg, self.layout, member.instruction, inputs, self.models,
                                               self.quality))
            except Exception as exc:      # a member's failure is its own (interrupts and timeouts are not Exceptions)
                if member is group[0]:
                    raise
                self.ready[member.item_id] = (exc if isinstance(exc, LanepaintError)
                                              else LanepaintError(one_line(exc)), None, 0.0)
        if len(framed) > 1:
            log.info("%s: video pass for %d instructions as one batch", inputs.clip.video_id, len(framed))
        for f, out, seconds in self._passes(framed, inputs):
            self.ready[EditItem(inputs.clip.video_id, f.instruction).item_id] = (f, out, seconds)

    def _passes(self, framed: list[FirstFramed], inputs: ClipInputs) -> list[tuple[FirstFramed, VideoResult, float]]:
        import torch

        try:
            return self._timed_pass(framed, inputs)
        except torch.OutOfMemoryError:
            if len(framed) == 1:
                raise
        # out of the except block: the failed batch's tensors are no longer held by its traceback
        log.warning("%s: a batch of %d ran out of GPU memory; one by one instead (lower --instruction-batch)",
                    inputs.clip.video_id, len(framed))
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        return [done for f in framed for done in self._timed_pass([f], inputs)]

    def _timed_pass(self, framed: list[FirstFramed], inputs: ClipInputs) -> list[tuple[FirstFramed, VideoResult, float]]:
        """The video pass for ``framed``, each with its share of the wall time."""
        start = time.perf_counter()
        outs = video_pass(self.cfg, inputs, framed, self.models)
        share = (time.perf_counter() - start) / len(framed)
        return [(f, out, share) for f, out in zip(framed, outs, strict=True)]


def _tiny_cpu_threads(cfg: EditConfig) -> contextlib.AbstractContextManager[None]:
    """One torch intra-op thread for a tiny run on the CPU (core.device), restored afterwards."""
    on_cpu = all(d.strip().lower() in ("auto", "cpu") for d in (cfg.cog_device, cfg.flux_device, cfg.qwen_device))
    return torch_threads(tiny_cpu_threads(cfg.profile, on_cpu))


def _fraction(value: Any) -> str:
    return f"{value:.2f}" if isinstance(value, int | float) else "n/a"


def write_reports(layout: Layout, cfg: EditConfig, instructions: tuple[Instruction, ...], videos: list[str],
                   records: dict[str, dict[str, Any]]) -> None:
    """Per instruction: every video of this run with status, timings, verdict, compliance and quality label."""
    for inst in instructions:
        rows = []
        for video_id in videos:
            record = records.get(f"{inst.folder}/{video_id}", {})
            details = record.get("details", {})
            rows.append({"video_id": video_id, "status": record.get("status", "not run"),
                         "error": record.get("error", ""), "seconds": record.get("seconds", 0.0),
                         "timings": record.get("timings", {}), "verdict": details.get("verdict"),
                         "iterations": details.get("iterations"),
                         "compliance_fraction": details.get("compliance_fraction"),
                         "quality_label": details.get("quality_label")})
        width = max([len("video")] + [len(r["video_id"]) for r in rows])     # real ids are 61 characters
        lines = [f"instruction: {inst.text}", f"folder: {inst.folder}", f"run: {cfg.run_id} (data {cfg.data_run_id}, "
                 f"profile {cfg.profile})", "", f"{'video':<{width}} {'status':<8} {'first_frame':>11} "
                 f"{'video_gen':>10} {'quality':>8} {'upload':>8} {'total':>8}  {'verdict':<11} {'iters':>5} "
                 f"{'compliance':>10}  {'label':<9}  error"]
        for r in rows:
            t = r["timings"]
            ok = r["status"] == OK
            lines.append(f"{r['video_id']:<{width}} {r['status']:<8} {t.get('first_frame', 0):>11.2f} "
                         f"{t.get('video_generation', 0):>10.2f} {t.get('compliance', 0) + t.get('metrics', 0):>8.2f} "
                         f"{t.get('upload', 0):>8.2f} {r['seconds']:>8.2f}  {(r['verdict'] or '-') if ok else '-':<11} "
                         f"{(r['iterations'] or '-') if ok else '-':>5} "
                         f"{_fraction(r['compliance_fraction']) if ok else '-':>10}  "
                         f"{(r['quality_label'] or 'n/a') if ok else '-':<9}  {r['error']}")
        done = [r for r in rows if r["status"] == OK]
        passed = sum(1 for r in done if r["verdict"] == "PASS")
        labels = {label: sum(1 for r in done if r["quality_label"] == label)
                  for label in dict.fromkeys(r["quality_label"] for r in done if r["quality_label"])}
        lines += ["", f"{len(done)}/{len(rows)} ok, {sum(1 for r in rows if r['status'] == FAILED)} failed; "
                      f"first frame PASS {passed}/{len(done)}; quality "
                      + (", ".join(f"{k} {v}" for k, v in labels.items()) or "n/a")]
        folder = layout.vp_instruction(cfg.run_id, inst.folder)
        storage.write_text(storage.join(folder, "report.txt"), "\n".join(lines) + "\n")
        storage.write_text(storage.join(folder, "report.json"), json.dumps(
            {"instruction": inst.as_dict(), "run_id": cfg.run_id, "videos": rows}, indent=2))


def _run_items(cfg: EditConfig, layout: Layout, items: list[EditItem], pending: list[EditItem], available: list[str],
               manifest: RunManifest, is_done: Any, vlm: Any) -> RunSummary:
    """Load the models (only when a pending video is readable), then run every item."""
    models = quality = None
    with contextlib.ExitStack() as stack:
        if any(_readable(layout, cfg, v, available) for v in dict.fromkeys(it.video_id for it in pending)):
            from generation.edit_models import load_edit_models
            from generation.quality.checks import load_quality

            stack.enter_context(_tiny_cpu_threads(cfg))
            quality = load_quality(cfg, vlm)            # first: the pipelines' memory plan sees Qwen and CLIP
            models = load_edit_models(cfg, quality.plan)
            weights = {"video": ([models.video], [cfg.cog_model, cfg.branch_model]),
                       "first_frame": ([models.first_frame], [cfg.flux_model]),
                       "judge": ([getattr(quality.vlm, "_model", None)], [str(quality.descriptions.get("judge", {})
                                                                              .get("source", ""))]),
                       "metrics": ([getattr(quality.scorer, "clip_score", None),
                                    getattr(quality.scorer, "clip_temporal", None),
                                    getattr(quality.scorer, "lpips", None)],
                                   [cfg.clip_score_model, cfg.clip_temporal_model])}
            for role, description in {**models.descriptions, **quality.descriptions}.items():
                if role in weights and isinstance(description, dict) and description.get("enabled") is not False:
                    description = {**description, **weights_record(cfg.profile, *weights[role])}
                manifest.set_model(role, description)
            manifest.set_model("memory_plan", models.plan)
            manifest.set_model("load_seconds", round(models.load_seconds + quality.load_seconds, 3))
        clips = _ClipCache(layout, cfg, set(available))

        claims = ClaimStore(layout.vp_run(cfg.run_id))
        batches = _InstructionBatches(cfg, layout, models, quality, pending, is_done, claims)

        def run_one(item: EditItem, timings: Timings) -> dict[str, Any]:
            inputs = clips.get(item.video_id)
            if cfg.instruction_batch > 1:
                return batches.run(item, inputs, timings)
            return edit_item(cfg, layout, item.instruction, inputs, models, quality, timings)

        runner = ItemRunner(STAGE, item_id=lambda it: it.item_id, is_done=is_done, overwrite=cfg.overwrite,
                            on_result=manifest.record, timeout=cfg.item_timeout * cfg.instruction_batch,
                            invalidate=lambda it: storage.rm(layout.vp_sidecar(cfg.run_id, it.instruction.folder,
                                                                               it.video_id)),
                            claims=claims)
        try:
            return runner.run(items, run_one, RunSummary(STAGE))
        finally:
            claims.release_reserved()


def run_edit(cfg: EditConfig, *, vlm: Any = None) -> StageResult:
    """Edit every video of ``cfg.data_run_id`` with every instruction; see the module docstring.

    ``vlm``: an already loaded Qwen2.5-VL (anything with ``caption``, ``ask``, ``ask_many``) for the
    judge, instead of loading one from ``cfg`` (e.g. a notebook that keeps it between calls).
    """
    instructions = parse_instructions(cfg.instructions)
    layout, available = _check_inputs(cfg)
    videos = list(cfg.video_ids) or available
    items = [EditItem(v, inst) for v in videos for inst in instructions]
    run_uri = layout.vp_run(cfg.run_id)
    storage.sweep_leftovers(run_uri)
    manifest = RunManifest(STAGE, run_uri, cfg.run_id, cfg, cfg.profile)
    manifest.set_model("instructions", [inst.as_dict() for inst in instructions])

    def is_done(item: EditItem) -> bool:
        return storage.exists(layout.vp_sidecar(cfg.run_id, item.instruction.folder, item.video_id))

    pending = [it for it in items if cfg.overwrite or not is_done(it)]
    log.info("edit %s: %d video(s) x %d instruction(s) from segmentation run %s, %d to do",
             cfg.run_id, len(videos), len(instructions), cfg.data_run_id, len(pending))
    summary = _run_items(cfg, layout, items, pending, available, manifest, is_done, vlm)
    records = manifest.build(summary)["items"]     # every invocation's items (shards share the run root)
    write_reports(layout, cfg, instructions, sorted(set(available) | set(videos)), records)
    manifest_uri = manifest.finalize(summary)
    return StageResult.from_summary(summary, cfg.run_id, cfg.output_root, run_uri, manifest_uri,
                                    vp_run_uri=run_uri,
                                    instruction_folders=",".join(inst.folder for inst in instructions))


def write_run_reports(cfg: EditConfig, summary: RunSummary) -> None:
    """After every shard of a run: the per-instruction ``report.txt``/``report.json`` from every
    shard's item records (``summary`` is unused: the records hold the statuses and timings)."""
    layout = Layout(cfg.output_root)
    records = RunManifest(STAGE, layout.vp_run(cfg.run_id), cfg.run_id, None, cfg.profile).build()["items"]
    videos = sorted(set(list_vp_videos(layout, cfg.data_run_id)) | set(cfg.video_ids))
    write_reports(layout, cfg, parse_instructions(cfg.instructions), videos, records)

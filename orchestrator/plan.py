"""The pipeline as data: which stages run, with which configs, and what they reported.

Used by ``lanepaint run``, the Flyte DAG (``workflow_master.py``, ``orchestrator.flyte_tasks``) and the
per-stage workflows. No flyte and no torch here: the stage configs are found by dotted path
(``STAGES``) and imported when a plan is built; they are standard-library modules.

- ``PARAMS``: every stage option the DAG entry points and ``lanepaint run`` forward, with the
  config field it sets. A value left ``None`` means "not given": the stage's environment variable
  (``core.config.ENV_TABLE``) or its default applies. An option whose field the stage config does
  not declare (an older stage package) is ignored with a warning.
- ``plan(request, options)``: validates the run (stage order, required inputs, the outputs a
  stage reuses from an earlier run) BEFORE anything is written and returns each stage's complete
  config as JSON-able values. Stage tasks rebuild their config from those values alone, so a Flyte
  cache key (inputs + version) covers everything that changes a result.
"""

from __future__ import annotations

import dataclasses
import importlib
import logging
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from core import storage
from core.config import build_config
from core.errors import StorageError, UsageError
from core.ids import validate_id
from core.layout import Layout

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StageSpec:
    number: str
    name: str            # config section and manifest stage name
    title: str
    config: str          # "module:Class" of its config dataclass
    function: str        # "module:function" of its stage function
    run_folder: str      # name of the Layout method giving its run root
    run_reports: str = ""  # "module:function" rewriting run-level reports after all shards: fn(cfg, summary)

    def run_uri(self, layout: Layout, run_id: str) -> str:
        return getattr(layout, self.run_folder)(run_id)


STAGES: dict[str, StageSpec] = {
    "1": StageSpec("1", "segment", "SAM2 segmentation", "segmentation.config:SegmentConfig",
                   "segmentation.stage:run_segment", "sam2_run"),
    "2": StageSpec("2", "edit", "FluxFill + VideoPainter editing", "generation.config:EditConfig",
                   "generation.stage:run_edit", "vp_run", "generation.stage:write_run_reports"),
    "3": StageSpec("3", "evaluate", "driving-model evaluation", "vla.config:EvaluateConfig",
                   "vla.stage:run_evaluate", "alpamayo_run", "vla.stage:write_run_reports"),
}
BY_NAME = {spec.name: spec for spec in STAGES.values()}
VALID_STAGES = ("1", "2", "3", "12", "23", "123")


def load(path: str) -> Any:
    """``"package.module:attribute"`` -> the attribute (stage modules are imported on demand)."""
    module, _, attr = path.partition(":")
    return getattr(importlib.import_module(module), attr)


@dataclass(frozen=True)
class Param:
    name: str            # entry-point parameter and (with dashes) `lanepaint run` flag
    stage: str           # "1", "2" or "3"
    field: str           # field of that stage's config
    type: type
    help: str


def _p(name: str, stage: str, field_name: str, tp: type, help_text: str) -> Param:
    return Param(name, stage, field_name, tp, help_text)


# Every stage option the entry points forward. Names mirror the environment variables.
PARAMS: tuple[Param, ...] = (
    _p("sam2_max_frames", "1", "max_frames", int, "frames per video after resampling (SAM2_MAX_FRAMES)"),
    _p("sam2_fps", "1", "fps", float, "resampling frame rate (SAM2_FPS)"),
    _p("sam2_model", "1", "model", str, "SAM2.1 size: tiny, small, base_plus, large (SAM2_MODEL)"),
    _p("sam2_checkpoint", "1", "checkpoint", str, "local SAM2 checkpoint instead of the hub (SAM2_CHECKPOINT)"),
    _p("sam2_prompt", "1", "prompt", str, "prompt strategy: points6, points9, box (SAM2_PROMPT)"),
    _p("sam2_reprompt_every", "1", "reprompt_every", int, "prompt again every N frames (SAM2_REPROMPT_EVERY)"),
    _p("sam2_window", "1", "window", int, "frames per SAM2 state (SAM2_WINDOW)"),
    _p("instructions", "2", "instructions", str,
       "edit instructions separated by '||' (VP_INSTRUCTIONS; default: five built-in lane edits)"),
    _p("qwen_model", "2", "qwen_model", str, "Qwen2.5-VL judge: 7B, 72B, a hub id or a folder (LLM_MODEL_SIZE)"),
    _p("judge", "2", "judge", bool, "check FluxFill's first frame with the Qwen2.5-VL judge and refine the caption"),
    _p("caption_refine_iters", "2", "caption_refine_iters", int,
       "most FluxFill attempts the judge sees per video (VP_CAPTION_REFINE_ITERS)"),
    _p("caption_refine_temperature", "2", "caption_refine_temperature", float,
       "Qwen sampling temperature (VP_CAPTION_REFINE_TEMPERATURE)"),
    _p("compliance_frames", "2", "compliance_frames", int, "edited frames the judge checks (VP_COMPLIANCE_FRAMES)"),
    _p("unload_qwen_after_use", "2", "unload_qwen_after_use", bool, "free Qwen after each use (VP_UNLOAD_QWEN_AFTER_USE)"),
    _p("qwen_vram_reserve_gib", "2", "qwen_vram_reserve_gib", float,
       "GiB of GPU memory Qwen leaves free (QWEN_VRAM_RESERVE_GIB)"),
    _p("vp_num_inference_steps", "2", "num_inference_steps", int, "video diffusion steps (VP_NUM_INFERENCE_STEPS)"),
    _p("vp_guidance_scale", "2", "guidance_scale", float, "video guidance (VP_GUIDANCE_SCALE)"),
    _p("vp_strength", "2", "strength", float, "denoising strength (VP_STRENGTH)"),
    _p("vp_seed", "2", "seed", int, "generation seed (VP_SEED)"),
    _p("vp_dilate_size", "2", "dilate_size", int, "mask dilation in pixels (VP_DILATE_SIZE)"),
    _p("vp_mask_feather", "2", "mask_feather", int, "mask feathering in pixels (VP_MASK_FEATHER)"),
    _p("vp_keep_masked_pixels", "2", "keep_masked_pixels", bool,
       "paste back only the masked region of the first frame (VP_KEEP_MASKED_PIXELS)"),
    _p("vp_img_inpainting_lora_path", "2", "img_inpainting_lora_path", str,
       "FluxFill LoRA file or folder (VP_IMG_INPAINTING_LORA_PATH)"),
    _p("vp_img_inpainting_lora_scale", "2", "img_inpainting_lora_scale", float,
       "FluxFill LoRA scale (VP_IMG_INPAINTING_LORA_SCALE)"),
    _p("vp_max_frames", "2", "max_frames", int, "edit at most this many frames per clip (VP_MAX_FRAMES)"),
    _p("alpamayo_model", "3", "model", str, "trajectory model: auto, alpamayo, constant-velocity (ALPAMAYO_MODEL)"),
    _p("alpamayo_model_path", "3", "model_path", str, "Alpamayo-R1 hub id or folder (ALPAMAYO_MODEL_PATH)"),
    _p("alpamayo_num_traj_samples", "3", "num_traj_samples", int,
       "trajectory samples per inference (ALPAMAYO_NUM_TRAJ_SAMPLES)"),
    _p("alpamayo_video_name", "3", "video_name", str, "auto or comma-separated video ids to evaluate"),
    _p("dataset_dir", "3", "dataset_dir", str, "Hugging Face cache holding PhysicalAI-AV (PAI_DATASET_DIR)"),
    _p("dataset_revision", "3", "dataset_revision", str, "PhysicalAI-AV commit (PAI_DATASET_REVISION)"),
)
PARAM_BY_NAME = {p.name: p for p in PARAMS}


def normalise_stages(text: object) -> str:
    """``"321"``, ``"1,2"`` or ``"12"`` -> ``"12"``; a usage error unless the stages are contiguous."""
    digits = "".join(sorted(set(str(text).replace(",", "").replace(" ", ""))))
    if digits not in VALID_STAGES:
        raise UsageError(f"--stages {text!r}: use 1, 2, 3, 12, 23 or 123 (contiguous stages; "
                         "stage 2 reads stage 1's output, stage 3 reads stage 2's)")
    return digits


@dataclass(frozen=True)
class PipelineRequest:
    """What one pipeline run asks for (``lanepaint run`` section ``run`` of the environment table)."""

    run_id: str = ""
    stages: str = "123"
    inputs: tuple[str, ...] = ()      # stage 1: videos (paths, gs://, chunks://)
    output_root: str = "outputs"
    profile: Literal["full", "tiny"] = "full"
    data_run_id: str = ""             # stage 2 without stage 1: the segmentation run to edit
    video_data: str = ""              # stage 3 without stage 2: its input (default <root>/vp/<run_id>)
    overwrite: bool = False
    cache_dir: str | None = None
    concurrency: int = 4
    videos_per_shard: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "stages", normalise_stages(self.stages))
        if not self.run_id:
            raise UsageError("--run-id is required")
        validate_id(self.run_id, "run id")
        if self.data_run_id:
            validate_id(self.data_run_id, "data run id")
        if self.profile not in ("full", "tiny"):
            raise UsageError(f"--profile {self.profile!r}: use full or tiny")
        if not isinstance(self.output_root, str) or not self.output_root.strip():
            raise UsageError("--output-root must not be empty")
        if self.concurrency < 1:
            raise UsageError(f"--concurrency must be >= 1, got {self.concurrency}")
        if self.videos_per_shard < 0:
            raise UsageError(f"--videos-per-shard must be >= 0, got {self.videos_per_shard}")

    @property
    def layout(self) -> Layout:
        return Layout(self.output_root)


REQUEST_FIELDS = tuple(f.name for f in dataclasses.fields(PipelineRequest))


def request_from(values: Mapping[str, Any], environ: Mapping[str, str] | None = None
                 ) -> tuple[PipelineRequest, dict[str, Any]]:
    """Entry-point values -> (request, stage options). ``None`` means not given: the environment
    (section ``run``, e.g. RUN_ID, OUTPUT_ROOT, DATA_RUN_ID) or the default applies."""
    unknown = sorted(set(values) - set(REQUEST_FIELDS) - set(PARAM_BY_NAME))
    if unknown:
        raise UsageError(f"unknown parameter(s): {', '.join(unknown)}")
    fields = {k: v for k, v in values.items() if k in REQUEST_FIELDS}
    if fields.get("inputs") is not None:
        fields["inputs"] = tuple(fields["inputs"])
    request = build_config(PipelineRequest, "run", fields, environ)
    options = {k: v for k, v in values.items() if k in PARAM_BY_NAME and v is not None}
    return request, options


@dataclass(frozen=True)
class StagePlan:
    spec: StageSpec
    config: dict[str, Any]            # every field of the stage config (JSON-able)
    run_uri: str


@dataclass(frozen=True)
class Plan:
    request: PipelineRequest
    stages: tuple[StagePlan, ...]

    def stage(self, name: str) -> StagePlan | None:
        return next((s for s in self.stages if s.spec.name == name), None)

    def lines(self) -> list[str]:
        req = self.request
        out = [f"run {req.run_id}: stages {req.stages}, profile {req.profile}, output root {req.output_root}, "
               f"concurrency {req.concurrency}"]
        for s in self.stages:
            if s.spec.name == "segment":
                source = f"{len(s.config['inputs'])} input(s)"
            elif s.spec.name == "edit":
                source = f"segmentation run {s.config['data_run_id']}"
            else:
                source = f"edited clips under {s.config['video_data']}"
            out.append(f"  {s.spec.number} {s.spec.name:<8} {s.spec.title}: {source} -> {s.run_uri}")
        return out


def config_values(cfg: Any) -> dict[str, Any]:
    """A stage config's fields as JSON-able values (tuples become lists)."""
    return {f.name: (list(v) if isinstance(v := getattr(cfg, f.name), tuple) else v)
            for f in dataclasses.fields(cfg)}


def build_stage_config(spec: StageSpec, values: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> Any:
    """The stage config from ``values`` (environment < values); ``environ={}`` ignores the environment."""
    return build_config(load(spec.config), spec.name, dict(values), environ)


def stage_options(spec: StageSpec, options: Mapping[str, Any]) -> dict[str, Any]:
    """Config values of ``spec``'s options that were given, for the fields its config declares."""
    declared = {f.name for f in dataclasses.fields(load(spec.config))}
    out = {}
    for name, value in options.items():
        param = PARAM_BY_NAME[name]
        if param.stage != spec.number or value is None:
            continue
        if param.field not in declared:
            log.warning("%s: this %s stage has no %r setting; ignored", name, spec.name, param.field)
            continue
        out[param.field] = value
    return out


def _check_output_root(root: str) -> None:
    try:
        storage.filesystem(root)
    except StorageError as exc:
        raise UsageError(f"bad output root {root!r}: {exc}") from None
    if storage.is_local(root) and storage.exists(root) and not storage.isdir(root):
        raise UsageError(f"bad output root {root!r}: it is a file, not a folder")


def plan(request: PipelineRequest, options: Mapping[str, Any] | None = None,
         environ: Mapping[str, str] | None = None) -> Plan:
    """Validate a run and resolve every stage's config; raises ``UsageError`` before anything is written."""
    options = dict(options or {})
    unknown = sorted(set(options) - set(PARAM_BY_NAME))
    if unknown:
        raise UsageError(f"unknown option(s): {', '.join(unknown)}")
    _check_output_root(request.output_root)
    layout = request.layout
    common = {"run_id": request.run_id, "output_root": request.output_root, "profile": request.profile,
              "overwrite": request.overwrite, "cache_dir": request.cache_dir}
    stages = []
    for number in request.stages:
        spec = STAGES[number]
        values = dict(common)
        if spec.name == "segment":
            if not request.inputs:
                raise UsageError("stage 1 needs videos: give --input (paths, gs:// or chunks:// URIs)")
            values["inputs"] = list(request.inputs)
        elif spec.name == "edit":
            values["data_run_id"] = request.run_id if "1" in request.stages else _data_run(request, layout)
        else:
            values["video_data"] = (layout.vp_run(request.run_id) if "2" in request.stages
                                    else _video_data(request, layout))
        values.update(stage_options(spec, options))
        cfg = build_stage_config(spec, values, environ)
        run_uri = spec.run_uri(layout, request.run_id)
        stages.append(StagePlan(spec, config_values(cfg), run_uri))
    if "1" not in request.stages and request.inputs:
        log.warning("--input is only read by stage 1, which does not run (stages %s); ignored", request.stages)
    if "1" in request.stages and "2" in request.stages and request.data_run_id:
        log.warning("--data-run-id %s ignored: stage 2 edits this run's own segmentation", request.data_run_id)
    if "2" in request.stages and "3" in request.stages and request.video_data:
        log.warning("--video-data %s ignored: stage 3 evaluates this run's own edits", request.video_data)
    return Plan(request, tuple(stages))


def _data_run(request: PipelineRequest, layout: Layout) -> str:
    """Stage 2 without stage 1: the segmentation run to reuse must be named and have output."""
    from core.vp_data import list_vp_videos

    if not request.data_run_id:
        raise UsageError(f"stage 2 without stage 1 needs --data-run-id: the segmentation run to edit "
                         f"(its output is under {layout.path('preprocessed_data_vp')}/<run id>)")
    try:
        found = list_vp_videos(layout, request.data_run_id)
    except StorageError as exc:
        raise UsageError(f"cannot read segmentation run {request.data_run_id}: {exc}") from None
    if not found:
        raise UsageError(f"no segmentation output for run {request.data_run_id} under {request.output_root} "
                         f"({layout.vp_data_run(request.data_run_id)} is missing or empty)")
    return request.data_run_id


def _video_data(request: PipelineRequest, layout: Layout) -> str:
    """Stage 3 without stage 2: its input must hold edited clips (default: this run id's vp/ folder)."""
    from core.edited_clips import find_edited_videos

    video_data = request.video_data or layout.vp_run(request.run_id)
    find_edited_videos(video_data)      # UsageError when missing or empty
    return video_data


@dataclass
class StageReport:
    """What one stage (or one shard of it) did: plain data a Flyte task can return."""

    stage: str
    run_id: str
    run_uri: str = ""
    manifest_uri: str = ""
    ok: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)     # item -> one-line reason
    extra: dict[str, str] = field(default_factory=dict)      # stage-specific URIs
    shards: int = 0
    seconds: float = 0.0
    note: str = ""                                           # why a stage did not run

    @classmethod
    def from_result(cls, result: Any, seconds: float = 0.0) -> StageReport:
        """From a ``core.runner.StageResult``."""
        return cls(stage=result.stage, run_id=result.run_id, run_uri=result.run_uri,
                   manifest_uri=result.manifest_uri, ok=list(result.ok), skipped=list(result.skipped),
                   failed=dict(result.failed), extra=dict(result.extra), shards=1, seconds=round(seconds, 3))

    @property
    def exit_code(self) -> int:
        return 1 if self.failed or self.note.startswith("failed") else 0

    def line(self) -> str:
        if self.note:
            return self.note
        return (f"{len(self.ok)} ok, {len(self.skipped)} skipped (already done), {len(self.failed)} failed "
                f"in {self.shards} shard(s) -> {self.run_uri}")


@dataclass
class PipelineResult:
    run_id: str
    stages: str
    output_root: str
    reports: list[StageReport] = field(default_factory=list)
    next_command: str = ""

    @property
    def exit_code(self) -> int:
        return max((r.exit_code for r in self.reports), default=0)

    def lines(self) -> list[str]:
        out = [f"run {self.run_id} (stages {self.stages}) -> {self.output_root}"]
        for report in self.reports:
            spec = BY_NAME[report.stage]
            out.append(f"  {spec.number} {spec.name:<8} {report.seconds:7.1f}s  {report.line()}")
            out += [f"      FAILED {item}: {reason}" for item, reason in sorted(report.failed.items())]
            if report.manifest_uri:
                out.append(f"      manifest: {report.manifest_uri}")
        if self.next_command:
            out.append(f"next: {self.next_command}")
        return out


def next_command(request: PipelineRequest) -> str:
    """The command that continues after the last stage of ``request`` (empty after stage 3)."""
    q = shlex.quote
    root = f"--output-root {q(request.output_root)} --profile {request.profile}"
    last = request.stages[-1]
    if last == "1":
        return f"lanepaint run --stages 23 --run-id <new run id> --data-run-id {q(request.run_id)} {root}"
    if last == "2":
        return (f"lanepaint run --stages 3 --run-id {q(request.run_id)} "
                f"--video-data {q(request.layout.vp_run(request.run_id))} {root}")
    return ""

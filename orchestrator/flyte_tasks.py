"""The Flyte 2 side of the pipeline, built once and used by ``workflow_master.py`` and the
per-stage workflows (``segmentation/workflow.py``, ``generation/workflow.py``, ``vla/workflow.py``).

- One ``TaskEnvironment`` per stage with its own image and GPU request (``DeploySettings``, from the
  ``deploy`` rows of ``core.config.ENV_TABLE``), holding the stage's shard task (retries for
  transient errors, cache keyed by the shard's config and ``cache_version``); a CPU environment on
  the same image holds its finalize task (manifest and run reports after every shard).
- ``run_stage``: ``flyte.map`` over the stage's shards (bounded concurrency,
  ``return_exceptions=False``: per-video failures are recorded inside the shard, so a raised error
  is a real task failure), then finalize. Locally ``flyte.map`` runs the shards one after another.
- ``entry_point``: builds an entry task whose parameters come from ``orchestrator.plan.PARAMS``, so the
  master and every partial forward the same options under the same names.
- ``run_local``: one in-process local run (``flyte.init()`` + ``with_runcontext(mode="local")``).

Imports flyte and core only: stage code is imported inside the task bodies.
"""

from __future__ import annotations

import inspect
import json
import logging
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import flyte
import flyte.errors

from core import __version__
from core.config import build_config
from core.errors import LanepaintError, UsageError
from orchestrator.plan import (
    PARAMS,
    PipelineResult,
    StagePlan,
    StageReport,
    next_command,
    plan,
    request_from,
)
from orchestrator.shards import finalize, run_shard, shard_configs

log = logging.getLogger(__name__)

# per stage: (image name, CPU, memory) of its GPU task
STAGE_IMAGES = {"segment": ("segmentation", "8", "32Gi"), "edit": ("generation", "12", "160Gi"),
                "evaluate": ("vla", "8", "96Gi")}


@dataclass(frozen=True)
class DeploySettings:
    """Images and resources of the DAG's environments (environment section ``deploy``)."""

    registry: str = ""
    image_tag: str = "latest"
    orchestrator_image: str = ""
    segmentation_image: str = ""
    generation_image: str = ""
    vla_image: str = ""
    gpu: str = "A100_80G:1"
    cpu: str = ""
    memory: str = ""
    retries: int = 2
    cache_version: str = f"lanepaint-{__version__}"

    def __post_init__(self) -> None:
        if self.retries < 0:
            raise UsageError(f"LANEPAINT_RETRIES must be >= 0, got {self.retries}")
        if not self.image_tag or not self.cache_version:
            raise UsageError("LANEPAINT_IMAGE_TAG and LANEPAINT_CACHE_VERSION must not be empty")
        try:
            flyte.Resources(gpu=self.gpu_request)
        except (TypeError, ValueError):
            raise UsageError(f"LANEPAINT_GPU={self.gpu!r}: not a Flyte GPU request; use <type>:<count>, e.g. "
                             "A100_80G:1, H100:1, L4:1, or none") from None

    @property
    def gpu_request(self) -> str | None:
        return None if self.gpu.strip().lower() in ("", "none", "0") else self.gpu.strip()

    def image(self, name: str) -> str:
        """``<registry>/lanepaint-<name>:<tag>`` unless the full name is configured."""
        explicit = getattr(self, f"{name}_image")
        if explicit:
            return explicit
        base = f"lanepaint-{name}:{self.image_tag}"
        return f"{self.registry.rstrip('/')}/{base}" if self.registry else base


SETTINGS = build_config(DeploySettings, "deploy")
RETRIES = flyte.RetryStrategy(count=SETTINGS.retries, backoff=flyte.Backoff(
    base=timedelta(seconds=15), factor=2.0, cap=timedelta(minutes=5)))
CACHE = flyte.Cache(behavior="override", version_override=SETTINGS.cache_version)


def _stage_env(stage: str) -> tuple[flyte.TaskEnvironment, flyte.TaskEnvironment]:
    """(GPU environment of the stage's shards, CPU environment of its finalize task), same image."""
    name, cpu, memory = STAGE_IMAGES[stage]
    image = SETTINGS.image(name)
    env = flyte.TaskEnvironment(
        name=f"lanepaint_{name}", image=image, cache=CACHE,
        resources=flyte.Resources(cpu=SETTINGS.cpu or cpu, memory=SETTINGS.memory or memory,
                                  gpu=SETTINGS.gpu_request),
        description=f"lanepaint stage {stage}: one shard of videos per task, models loaded once")
    report_env = flyte.TaskEnvironment(
        name=f"lanepaint_{name}_report", image=image, resources=flyte.Resources(cpu="2", memory="8Gi"),
        description=f"lanepaint stage {stage}: run manifest and reports after every shard")
    return env, report_env


SEGMENT_ENV, SEGMENT_REPORT_ENV = _stage_env("segment")
EDIT_ENV, EDIT_REPORT_ENV = _stage_env("edit")
EVALUATE_ENV, EVALUATE_REPORT_ENV = _stage_env("evaluate")
STAGE_ENVS = (SEGMENT_ENV, SEGMENT_REPORT_ENV, EDIT_ENV, EDIT_REPORT_ENV, EVALUATE_ENV, EVALUATE_REPORT_ENV)


def _guard(fn: Callable[[], StageReport]) -> StageReport:
    """Bad usage is not transient: it fails the task without retries."""
    try:
        return fn()
    except UsageError as exc:
        raise flyte.errors.NonRecoverableError(str(exc)) from None


@SEGMENT_ENV.task(retries=RETRIES)
async def sam2_shard(config_json: str) -> StageReport:
    """Stage 1 (SAM2) on one shard of videos; the model loads once for the shard."""
    from segmentation.stage import run_segment

    return _guard(lambda: run_shard("segment", config_json, run_segment))


@EDIT_ENV.task(retries=RETRIES)
async def vp_shard(config_json: str) -> StageReport:
    """Stage 2 (FluxFill + VideoPainter) on one shard of videos; the models load once for the shard."""
    from generation.stage import run_edit

    return _guard(lambda: run_shard("edit", config_json, run_edit))


@EVALUATE_ENV.task(retries=RETRIES)
async def alpamayo_shard(config_json: str) -> StageReport:
    """Stage 3 (Alpamayo-R1 or the baseline) on one shard of edited clips; the model loads once."""
    from vla.stage import run_evaluate

    return _guard(lambda: run_shard("evaluate", config_json, run_evaluate))


@SEGMENT_REPORT_ENV.task(retries=RETRIES)
async def sam2_finalize(config_json: str, shards: list[StageReport]) -> StageReport:
    """Stage 1's manifest.json from every shard's item records."""
    return _guard(lambda: finalize("segment", config_json, shards))


@EDIT_REPORT_ENV.task(retries=RETRIES)
async def vp_finalize(config_json: str, shards: list[StageReport]) -> StageReport:
    """Stage 2's manifest.json and per-instruction reports over every shard."""
    return _guard(lambda: finalize("edit", config_json, shards))


@EVALUATE_REPORT_ENV.task(retries=RETRIES)
async def alpamayo_finalize(config_json: str, shards: list[StageReport]) -> StageReport:
    """Stage 3's manifest.json and run report (minADE deltas) over every shard."""
    return _guard(lambda: finalize("evaluate", config_json, shards))


TASKS = {"segment": (sam2_shard, sam2_finalize), "edit": (vp_shard, vp_finalize),
         "evaluate": (alpamayo_shard, alpamayo_finalize)}
NOTHING_TO_DO = {"segment": "no input videos", "edit": "no segmentation output to edit",
                 "evaluate": "no edited clips to evaluate"}


async def run_stage(stage: StagePlan, concurrency: int, videos_per_shard: int = 0) -> StageReport:
    """Map the stage's shard task over its shards, then finalize the run."""
    shard_task, finalize_task = TASKS[stage.spec.name]
    start = time.perf_counter()
    configs = shard_configs(stage, concurrency, videos_per_shard)
    if not configs:
        return StageReport(stage=stage.spec.name, run_id=stage.config["run_id"], run_uri=stage.run_uri,
                           note=f"skipped: {NOTHING_TO_DO[stage.spec.name]}")
    local = getattr(flyte.ctx(), "mode", "local") == "local"
    log.info("stage %s: %d shard(s), %s", stage.spec.number, len(configs),
             "one after another (Flyte local mode)" if local else f"at most {concurrency} at a time")
    reports = [r async for r in flyte.map.aio(shard_task, configs, group_name=f"{stage.spec.name}_shards",
                                              concurrency=concurrency, return_exceptions=False)]
    report = await finalize_task(json.dumps(stage.config, sort_keys=True), reports)
    report.seconds = round(time.perf_counter() - start, 3)
    return report


async def run_pipeline(values: Mapping[str, Any]) -> PipelineResult:
    """Plan (usage errors before anything starts), then every stage in order."""
    try:
        request, options = request_from(values)
        the_plan = plan(request, options)
    except UsageError as exc:
        raise flyte.errors.NonRecoverableError(str(exc)) from None
    result = PipelineResult(run_id=request.run_id, stages=request.stages, output_root=request.output_root)
    for stage in the_plan.stages:
        result.reports.append(await run_stage(stage, request.concurrency, request.videos_per_shard))
    result.next_command = next_command(request)
    return result


# ---- entry points -----------------------------------------------------------------------------
_REQUIRED = inspect.Parameter.empty
COMMON_PARAMS: tuple[tuple[str, Any, Any], ...] = (
    ("run_id", str, _REQUIRED), ("output_root", str | None, None), ("profile", str | None, None),
    ("overwrite", bool, False), ("cache_dir", str | None, None), ("concurrency", int, 4),
    ("videos_per_shard", int, 0),
)


def entry_params(stages: str | None) -> list[tuple[str, Any, Any]]:
    """(name, type, default) of an entry point running ``stages`` (None: any, chosen by ``stages``)."""
    run = stages or "123"
    params = list(COMMON_PARAMS)
    if stages is None:
        params.append(("stages", str, "123"))
    if "1" in run:
        params.append(("inputs", list[str] | None, None))
    if "2" in run and (stages is None or "1" not in run):
        params.append(("data_run_id", str | None, None))
    if "3" in run and (stages is None or "2" not in run):
        params.append(("video_data", str | None, None))
    params += [(p.name, p.type | None, None) for p in PARAMS if p.stage in run]
    return params


def entry_point(env: flyte.TaskEnvironment, name: str, module: str, stages: str | None, doc: str) -> Any:
    """An entry task ``name`` of ``module`` with the parameters of ``entry_params(stages)``.

    The signature is generated (one table, every entry point forwards the same options); the task
    must be assigned to the module attribute ``name`` so that Flyte can load it remotely.
    """
    params = entry_params(stages)

    async def entry(**kwargs: Any) -> PipelineResult:
        values = {n: kwargs.get(n, None if d is _REQUIRED else d) for n, _t, d in params}
        if stages is not None:
            values["stages"] = stages
        return await run_pipeline(values)

    entry.__name__ = entry.__qualname__ = name
    entry.__module__ = module
    entry.__doc__ = doc
    entry.__annotations__ = {n: t for n, t, _d in params} | {"return": PipelineResult}
    entry.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [inspect.Parameter(n, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=d, annotation=t) for n, t, d in params],
        return_annotation=PipelineResult)
    return env.task(entry)


def driver_environment(name: str, depends_on: list[flyte.TaskEnvironment]) -> flyte.TaskEnvironment:
    """A light environment (orchestrator image, no GPU) for entry tasks that call stage tasks."""
    return flyte.TaskEnvironment(name=name, image=SETTINGS.image("orchestrator"),
                                 resources=flyte.Resources(cpu="1", memory="2Gi"), depends_on=depends_on,
                                 description="lanepaint driver: plans the run and fans the stages out")


# ---- local runs -------------------------------------------------------------------------------
def _quiet_flyte_logs() -> None:
    """Flyte's loggers go through ours (stderr, our format) and only at DEBUG: a failed task is reported
    once, in one line, by ``run_local``. ``flyte.init`` wraps the root handlers' formatters with run and
    action ids; they are unwrapped again."""
    root = logging.getLogger()
    for name in ("flyte", "flyte.user"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
        logger.setLevel(logging.DEBUG if root.level <= logging.DEBUG else logging.CRITICAL)
    for handler in root.handlers:
        inner = getattr(handler.formatter, "_inner", None)
        if isinstance(inner, logging.Formatter):
            handler.setFormatter(inner)


def run_local(task: Any, values: Mapping[str, Any]) -> PipelineResult:
    """Run an entry task in this process (Flyte local mode: shards run one after another).

    Flyte's run data goes to a temp folder removed afterwards; the local task cache is not used (the
    stages skip complete videos themselves). A failed task becomes a one-line ``LanepaintError``.
    """
    flyte.init()
    _quiet_flyte_logs()
    name = f"lanepaint-{uuid.uuid4().hex[:12]}"
    try:
        with tempfile.TemporaryDirectory(prefix="lanepaint-flyte-") as raw:
            run = flyte.with_runcontext(mode="local", name=name, raw_data_path=raw,
                                        disable_run_cache=True).run(task, **values)
            return run.outputs()[0]
    except flyte.errors.BaseRuntimeError as exc:
        raise LanepaintError(f"pipeline run failed: {exc}") from None
    finally:   # flyte's local metadata folder is fixed under /tmp/flyte; remove this run's
        shutil.rmtree(os.path.join("/tmp", "flyte", "metadata", name), ignore_errors=True)

"""The Flyte 2 side of the pipeline, built once from the stage specs and used by ``orchestrator.dag``.

- Per stage (``orchestrator.plan.STAGES``): a ``TaskEnvironment`` with the stage's image and GPU request
  (``orchestrator.deploy.DeploySettings``) holding its shard task ``<prefix>_shard`` (retries for transient
  errors, cache keyed by the shard's config and ``cache_version``), and a CPU environment on the same
  image holding its finalize task ``<prefix>_finalize`` (manifest and run reports after every shard).
- ``run_stage``: ``flyte.map`` over the stage's shards (bounded concurrency,
  ``return_exceptions=False``: per-video failures are recorded inside the shard, so a raised error
  is a real task failure), then finalize. Locally ``flyte.map`` runs the shards one after another.
- ``entry_point``: builds an entry task whose parameters are the request fields and the stage options
  (``orchestrator.plan``), so the master and every partial forward the same options under the same names.
- ``run_local``: one in-process local run (``flyte.init()`` + ``with_runcontext(mode="local")``).

Stage code is imported inside the task bodies (through ``StageSpec.run``).
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any, Literal, get_args, get_origin

import flyte
import flyte.errors

from core import storage
from core.config import build_config, strip_optional, type_hints
from core.errors import LanepaintError, UsageError, brief
from core.stage_spec import StageSpec
from orchestrator.deploy import DeploySettings
from orchestrator.devices import worker_devices
from orchestrator.plan import (
    OPTIONS,
    REQUEST_FIELDS,
    STAGES,
    PipelineRequest,
    StagePlan,
    next_command,
    plan,
    request_from,
)
from orchestrator.results import PipelineResult, StageReport
from orchestrator.shards import finalize, run_shard, shard_configs, stale_shards
from orchestrator.workers import run_workers

log = logging.getLogger(__name__)

SETTINGS = build_config(DeploySettings)
RETRIES = flyte.RetryStrategy(count=SETTINGS.retries, backoff=flyte.Backoff(
    base=timedelta(seconds=15), factor=2.0, cap=timedelta(minutes=5)))
CLUSTER_CONCURRENCY = 4   # shards at a time on a cluster when the request leaves concurrency at 0
CACHE = flyte.Cache(behavior="override", version_override=SETTINGS.effective_cache_version)
POD_ENV = SETTINGS.pod_env()      # what the submitter chose travels with every task (see deploy.py)
SECRETS = [flyte.Secret(key=SETTINGS.hf_secret, as_env_var="HF_TOKEN")] if SETTINGS.hf_secret else []


def _stage_envs(spec: StageSpec) -> tuple[flyte.TaskEnvironment, flyte.TaskEnvironment]:
    """(GPU environment of the stage's shards, CPU environment of its finalize task), same image."""
    image = flyte.Image.from_ref_name(spec.image)   # resolved by flyte run/deploy --image <name>=<uri>
    env = flyte.TaskEnvironment(
        name=f"lanepaint_{spec.image}", image=image, cache=CACHE, env_vars=POD_ENV, secrets=SECRETS,
        resources=flyte.Resources(cpu=SETTINGS.cpu or spec.cpu, memory=SETTINGS.memory or spec.memory,
                                  gpu=SETTINGS.gpu_request),
        description=f"lanepaint stage {spec.number} ({spec.title}): one shard of videos per task, models loaded once")
    report_env = flyte.TaskEnvironment(
        name=f"lanepaint_{spec.image}_report", image=image, resources=flyte.Resources(cpu="2", memory="8Gi"),
        env_vars=POD_ENV, description=f"lanepaint stage {spec.number}: run manifest and reports after every shard")
    return env, report_env


def _guard(fn: Callable[[], StageReport]) -> StageReport:
    """Bad usage is not transient: it fails the task without retries."""
    try:
        return fn()
    except UsageError as exc:
        raise flyte.errors.NonRecoverableError(str(exc)) from None


def _named(fn: Any, name: str, doc: str) -> Any:
    """Give a generated task function the module-level name Flyte loads it by (assigned below)."""
    fn.__name__ = fn.__qualname__ = name
    fn.__module__ = __name__
    fn.__doc__ = doc
    return fn


def _stage_tasks(spec: StageSpec) -> tuple[Any, Any]:
    env, report_env = ENVS[spec.name]

    async def shard(config_json: str) -> StageReport:
        return _guard(lambda: run_shard(spec.name, config_json))

    async def finish(config_json: str, shards: list[StageReport]) -> StageReport:
        return _guard(lambda: finalize(spec.name, config_json, shards))

    shard_task = env.task(retries=RETRIES)(_named(
        shard, f"{spec.task_prefix}_shard",
        f"Stage {spec.number} ({spec.title}) on one shard of videos; the models load once for the shard."))
    finish_task = report_env.task(retries=RETRIES)(_named(
        finish, f"{spec.task_prefix}_finalize", f"Stage {spec.number}'s manifest and run reports over every shard."))
    return shard_task, finish_task


ENVS = {spec.name: _stage_envs(spec) for spec in STAGES}
STAGE_ENVS = tuple(env for pair in ENVS.values() for env in pair)
TASKS = {spec.name: _stage_tasks(spec) for spec in STAGES}
for _shard_task, _finish_task in TASKS.values():   # module attributes: Flyte loads tasks by module and name
    globals()[_shard_task.func.__name__] = _shard_task
    globals()[_finish_task.func.__name__] = _finish_task


async def run_stage(stage: StagePlan, concurrency: int, videos_per_shard: int = 0, devices: str = "") -> StageReport:
    """Map the stage's shard task over its shards, then finalize the run. A local run with several devices
    (``--devices``) runs one worker process per device at once instead (``orchestrator.workers``)."""
    shard_task, finalize_task = TASKS[stage.spec.name]
    start = time.perf_counter()
    local = getattr(flyte.ctx(), "mode", "local") == "local"
    workers = worker_devices(devices) if local and devices else []
    concurrency = concurrency or (len(workers) if workers else 1 if local else CLUSTER_CONCURRENCY)
    configs = shard_configs(stage, concurrency, videos_per_shard)    # lists the stage's input once
    if not configs:
        return StageReport(stage=stage.spec.name, run_id=stage.config["run_id"], run_uri=stage.run_uri,
                           note=f"skipped: nothing to do ({stage.spec.describe_input(stage.config)} has no items)",
                           number=stage.spec.number)
    if workers:
        reports = await asyncio.to_thread(run_workers, stage.spec.name, configs, workers)
    else:
        reports = await _map_shards(stage, shard_task, configs, concurrency, local)
    report = await finalize_task(json.dumps(stage.config, sort_keys=True), reports)
    report.seconds = round(time.perf_counter() - start, 3)
    return report


async def _map_shards(stage: StagePlan, shard_task: Any, configs: list[str], concurrency: int,
                      local: bool) -> list[Any]:
    """The shard task over every shard config with Flyte's map; on a cluster, shards whose cached outputs are gone
    run again with the cache off."""
    log.info("stage %s: %d shard(s), %s", stage.spec.number, len(configs),
             "one after another (Flyte local mode)" if local else f"at most {concurrency} at a time")
    reports = [r async for r in flyte.map.aio(shard_task, configs, group_name=f"{stage.spec.name}_shards",
                                              concurrency=concurrency, return_exceptions=False)]
    stale = [] if local else stale_shards(stage.run_uri, reports)    # local runs do not use the cache
    if stale:      # cached reports whose outputs were deleted: the cache must not stand in for them
        log.warning("stage %s: %d shard(s) came back from the cache but their outputs are gone; running them again",
                    stage.spec.number, len(stale))
        fresh = shard_task.override(cache="disable")
        redone = [r async for r in flyte.map.aio(fresh, [configs[i] for i in stale], concurrency=concurrency,
                                                 group_name=f"{stage.spec.name}_reruns", return_exceptions=False)]
        for index, report in zip(stale, redone, strict=True):
            reports[index] = report
    return reports


async def run_pipeline(values: Mapping[str, Any]) -> PipelineResult:
    """Plan (usage errors before anything starts), then every stage in order."""
    try:
        request, options = request_from(values)
        the_plan = plan(request, options)
    except UsageError as exc:
        raise flyte.errors.NonRecoverableError(str(exc)) from None
    result = PipelineResult(run_id=request.run_id, stages=request.stages, output_root=request.output_root)
    for stage in the_plan.stages:
        result.reports.append(await run_stage(stage, request.concurrency, request.videos_per_shard,
                                              request.devices))
    result.next_command = next_command(request)
    await _run_results(result)
    return result


async def _run_results(result: PipelineResult) -> None:
    """The run's table and HTML report (``run_report``), also shown as this task's Flyte report."""
    from orchestrator.run_report import write_run_results

    if not any(r.stage in ("edit", "evaluate") for r in result.reports):
        result.results_note = "none: the table and report start with stage 2"
        return
    try:
        written = write_run_results(result.output_root, result.run_id)
    except Exception as exc:   # the stages' outputs stand; the report can be rebuilt with `lanepaint report`
        result.results_note = f"failed: {brief(exc)} (rebuild with lanepaint report)"
        log.error("results of run %s: %s", result.run_id, result.results_note)
        return
    result.results = written.uris
    if getattr(flyte.ctx(), "mode", "local") != "local":
        try:
            await flyte.report.replace.aio(written.html, do_flush=True)
        except Exception as exc:
            log.warning("could not publish the Flyte report: %s", brief(exc))


# ---- entry points -----------------------------------------------------------------------------
_REQUIRED = inspect.Parameter.empty


def _param_type(tp: Any) -> Any:
    """The Flyte parameter type of a config field: tuples travel as lists, choices as text; None = not given."""
    inner, _ = strip_optional(tp)
    if get_origin(inner) is Literal:
        inner = str
    elif get_origin(inner) is tuple:
        inner = list[get_args(inner)[0]]   # type: ignore[misc, valid-type]
    return inner | None


def entry_params(stages: str | None) -> list[tuple[str, Any, Any]]:
    """(name, type, default) of an entry point running ``stages`` (None: any, chosen by ``stages``).

    The request's fields (``run_id`` required; ``stages`` only when the entry point chooses; each stage's
    input field only when that stage can start the run), then every option of the stages it runs."""
    run = stages or "123"
    hints = type_hints(PipelineRequest)
    starts = {spec.input_field for spec in STAGES if spec.number in run
              and (stages is None or spec.input_from_previous is None or str(int(spec.number) - 1) not in run)}
    inputs = {spec.input_field for spec in STAGES}
    params: list[tuple[str, Any, Any]] = [("run_id", str, _REQUIRED)]
    for name in REQUEST_FIELDS:
        if name == "run_id" or (name == "stages" and stages is not None) or (name in inputs and name not in starts):
            continue
        params.append((name, _param_type(hints[name]), None))
    for name, (spec, field_name) in OPTIONS.items():
        if spec.number in run:
            params.append((name, _param_type(type_hints(spec.config)[field_name]), None))
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
    return env.task(entry, report=True)


def driver_environment(name: str, depends_on: list[flyte.TaskEnvironment]) -> flyte.TaskEnvironment:
    """A light environment (orchestrator image, no GPU) for entry tasks that call stage tasks."""
    return flyte.TaskEnvironment(name=name, image=flyte.Image.from_ref_name("orchestrator"), env_vars=POD_ENV,
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
        with tempfile.TemporaryDirectory(prefix=storage.temp_prefix("flyte")) as raw:
            run = flyte.with_runcontext(mode="local", name=name, raw_data_path=raw,
                                        disable_run_cache=True).run(task, **values)
            return run.outputs()[0]
    except flyte.errors.BaseRuntimeError as exc:
        raise LanepaintError(f"pipeline run failed: {exc}") from None
    finally:   # flyte's local metadata folder is fixed under /tmp/flyte; remove this run's
        shutil.rmtree(os.path.join("/tmp", "flyte", "metadata", name), ignore_errors=True)

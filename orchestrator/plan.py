"""The pipeline as data: which stages run, with which configs. No flyte and no torch here.

Used by ``lanepaint run``, the Flyte DAG (``orchestrator.dag``, ``orchestrator.flyte_tasks``) and the
demo. The stages are the specs their packages export (``STAGES``); nothing here names a stage.

- ``PipelineRequest`` (section ``run``): what a run asks for. Its ``inputs``, ``data_run_id`` and
  ``video_data`` are the input fields of the stages that read them (``StageSpec.input_field``).
- Stage options: every field a stage config exposes to the pipeline, named ``<stage>_<field>``
  (``segment_max_frames``: flag ``--segment-max-frames`` of ``lanepaint run``, parameter of the Flyte
  entry points). A value left None means "not given": the config file, the environment or the default
  applies, in that order of increasing priority.
- ``plan(request, options, file)``: validates the run (stage order, required inputs, the outputs a stage
  reuses from an earlier run) BEFORE anything is written and returns each stage's complete config as
  JSON-able values. Stage tasks rebuild their config from those values alone, so everything that changes
  a result travels with the run.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from core import storage
from core.config import (
    Profile,
    Settings,
    StageSettings,
    build_config,
    cache_dir_setting,
    config_values,
    flag_of,
    item_timeout_setting,
    output_root_setting,
    overwrite_setting,
    profile_setting,
    setting,
    setting_of,
    settings_fields,
)
from core.config_cli import pipeline_fields
from core.config_file import ConfigFile
from core.errors import UsageError
from core.ids import validate_id
from core.layout import Layout
from core.stage_cli import command_line
from core.stage_spec import StageSpec
from generation.spec import SPEC as EDIT
from segmentation.spec import SPEC as SEGMENT
from vla.spec import SPEC as EVALUATE

log = logging.getLogger(__name__)

STAGES: tuple[StageSpec, ...] = (SEGMENT, EDIT, EVALUATE)
BY_NUMBER = {spec.number: spec for spec in STAGES}
BY_NAME = {spec.name: spec for spec in STAGES}
VALID_STAGES = ("1", "2", "3", "12", "23", "123")


def option_name(spec: StageSpec, field_name: str) -> str:
    """The name of a stage option in ``lanepaint run`` (``--<name with dashes>``) and the entry points."""
    return f"{spec.name}_{field_name}"


# option name -> (stage, config field)
OPTIONS: dict[str, tuple[StageSpec, str]] = {
    option_name(spec, f.name): (spec, f.name) for spec in STAGES for f in pipeline_fields(spec.config)}


def normalise_stages(text: object) -> str:
    """``"321"``, ``"1,2"`` or ``"12"`` -> ``"12"``; a usage error unless the stages are contiguous."""
    digits = "".join(sorted(set(str(text).replace(",", "").replace(" ", ""))))
    if digits not in VALID_STAGES:
        raise UsageError(f"--stages {text!r}: use 1, 2, 3, 12, 23 or 123 (contiguous stages; "
                         "stage 2 reads stage 1's output, stage 3 reads stage 2's)")
    return digits


@dataclass(frozen=True)
class PipelineRequest(Settings):
    """What one pipeline run asks for (``lanepaint run``; config-file section ``run``)."""

    SECTION: ClassVar[str] = "run"

    run_id: str = setting("", help="run id of every stage run", env=None, default_text="run_YYYYMMDD_HHMMSS",
                          blank_is_default=False)
    stages: str = setting("123", help="stages to run: 1 SAM2, 2 VideoPainter, 3 Alpamayo-R1; contiguous "
                          "(1, 2, 3, 12, 23, 123)", env=None)
    inputs: tuple[str, ...] = setting((), help="stage 1 videos: paths, gs:// or chunks:// URIs (repeatable)",
                                      flag="--input", nargs="+", metavar="URI", env=None)
    output_root: str = output_root_setting()
    profile: Profile = profile_setting()
    data_run_id: str = setting("", help="stage 2 without stage 1: the segmentation run to edit", env=None)
    video_data: str = setting("", help="stage 3 without stage 2: stage 2's output URI", env=None,
                              default_text="<output-root>/vp/<run-id>")
    overwrite: bool = overwrite_setting()
    cache_dir: str | None = cache_dir_setting()
    item_timeout: float = item_timeout_setting()
    concurrency: int = setting(0, help="shards of a stage that run at the same time (0: 1 in a local run, where "
                               "shards run one after another; 4 on a cluster)", env="LANEPAINT_CONCURRENCY")
    videos_per_shard: int = setting(0, help="videos per shard task (0: split each stage into `concurrency` equal "
                                    "shards)", env="LANEPAINT_VIDEOS_PER_SHARD")
    devices: str = setting("auto", help="a local run's shard workers, one process per device, all at once: auto "
                           "(every visible GPU; one or none: this process), a GPU count (4), GPU ids (0,2,3), groups of GPUs for one "
                           "worker (0+1,2+3) or cpu:N",
                           env="LANEPAINT_DEVICES", metavar="DEVICES")

    def validate(self) -> None:
        object.__setattr__(self, "stages", normalise_stages(self.stages))
        if not self.run_id:
            raise UsageError("--run-id is required")
        validate_id(self.run_id, "run id")
        if self.data_run_id:
            validate_id(self.data_run_id, "data run id")
        if self.concurrency < 0:
            raise UsageError(f"--concurrency must be >= 0 (0: automatic), got {self.concurrency}")
        if self.videos_per_shard < 0:
            raise UsageError(f"--videos-per-shard must be >= 0, got {self.videos_per_shard}")
        from orchestrator.devices import check_devices

        check_devices(self.devices)

    @property
    def layout(self) -> Layout:
        return Layout(self.output_root)


REQUEST_FIELDS = tuple(f.name for f in settings_fields(PipelineRequest))
# the request's values every stage config takes as they are
SHARED_FIELDS = tuple(f.name for f in settings_fields(StageSettings))


def request_from(values: Mapping[str, Any], file: ConfigFile | None = None,
                 environ: Mapping[str, str] | None = None) -> tuple[PipelineRequest, dict[str, Any]]:
    """Entry-point values -> (request, stage options given). None means not given."""
    unknown = sorted(set(values) - set(REQUEST_FIELDS) - set(OPTIONS))
    if unknown:
        raise UsageError(f"unknown parameter(s): {', '.join(unknown)}")
    fields = {k: (tuple(v) if isinstance(v, list) else v) for k, v in values.items() if k in REQUEST_FIELDS}
    request = build_config(PipelineRequest, fields, file=file.values_for(PipelineRequest) if file else None,
                           environ=environ)
    options = {k: v for k, v in values.items() if k in OPTIONS and v is not None}
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
               f"concurrency {req.concurrency or 'auto'}"]
        for s in self.stages:
            out.append(f"  {s.spec.number} {s.spec.name:<8} {s.spec.title}: {s.spec.describe_input(s.config)} "
                       f"-> {s.run_uri}")
        return out

    def options(self) -> dict[str, Any]:
        """Every stage option of the planned stages, resolved: with the request's fields, what the DAG needs
        to rebuild the same configs wherever it runs (no config file, environment or defaults there)."""
        return {option_name(s.spec, f.name): s.config[f.name]
                for s in self.stages for f in pipeline_fields(s.spec.config)}


def stage_options(spec: StageSpec, options: Mapping[str, Any]) -> dict[str, Any]:
    """Config values of ``spec``'s options that were given."""
    return {OPTIONS[name][1]: value for name, value in options.items()
            if value is not None and OPTIONS[name][0] is spec}


def _request_field(name: str) -> Any:
    return next(f for f in settings_fields(PipelineRequest) if f.name == name)


def _request_flag(field_name: str) -> str:
    return flag_of(PipelineRequest, _request_field(field_name))


def _stage_input(spec: StageSpec, request: PipelineRequest, layout: Layout) -> Any:
    """What ``spec`` reads: the previous stage's output of this run, else the request's value (checked)."""
    given = getattr(request, spec.input_field)
    flag = _request_flag(spec.input_field)
    previous = str(int(spec.number) - 1)
    if spec.input_from_previous is not None and previous in request.stages:
        if given:
            log.warning("%s %s ignored: stage %s reads what stage %s writes in this run", flag,
                        given if isinstance(given, str) else " ".join(given), spec.number, previous)
        return spec.input_from_previous(layout, request.run_id)
    value = given or (spec.input_default(layout, request.run_id) if spec.input_default else given)
    if spec.check_input is not None:
        spec.check_input(layout, value)
    elif not value:
        raise UsageError(f"stage {spec.number} needs {flag} ({setting_of(_request_field(spec.input_field)).help})")
    return list(value) if isinstance(value, tuple) else value


def implied_defaults(spec: StageSpec, stages: str) -> dict[str, Any]:
    """The defaults the later stages of the run give ``spec`` (``StageSpec.upstream_defaults``): stage 3 in
    the run turns on stage 1's moment planning."""
    implied: dict[str, Any] = {}
    for number in stages:
        if number > spec.number:
            implied |= BY_NUMBER[number].upstream_defaults.get(spec.name, {})
    return implied


def plan(request: PipelineRequest, options: Mapping[str, Any] | None = None, file: ConfigFile | None = None,
         environ: Mapping[str, str] | None = None) -> Plan:
    """Validate a run and resolve every stage's config; raises ``UsageError`` before anything is written."""
    options = dict(options or {})
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise UsageError(f"unknown option(s): {', '.join(unknown)}")
    storage.check_output_root(request.output_root)
    layout = request.layout
    shared = {name: getattr(request, name) for name in SHARED_FIELDS}
    planned = []
    for number in request.stages:
        spec = BY_NUMBER[number]
        values = shared | {spec.input_field: _stage_input(spec, request, layout)} | stage_options(spec, options)
        cfg = build_config(spec.config, values, file=implied_defaults(spec, request.stages)
                           | (file.values_for(spec.config) if file else {}), environ=environ)
        planned.append(StagePlan(spec, config_values(cfg), spec.run_uri(layout, request.run_id)))
    for spec in STAGES:
        given = getattr(request, spec.input_field)
        if spec.number not in request.stages and given:
            log.warning("%s is only read by stage %s, which does not run (stages %s); ignored",
                        _request_flag(spec.input_field), spec.number, request.stages)
    return Plan(request, tuple(planned))


def next_command(request: PipelineRequest) -> str:
    """The command that continues after the last stage of ``request`` (empty after stage 3)."""
    following = BY_NUMBER.get(str(int(request.stages[-1]) + 1))
    if following is None or following.input_from_previous is None:
        return ""
    rest = "".join(n for n in VALID_STAGES[-1] if n >= following.number)
    value = following.input_from_previous(request.layout, request.run_id)
    return command_line("lanepaint", "run", stages=rest, run_id=request.run_id,
                        **{following.input_field: value}, output_root=request.output_root, profile=request.profile)

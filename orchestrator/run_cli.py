"""``lanepaint run``: the whole pipeline (or a contiguous part of it) as one command.

Runs the Flyte DAG (``orchestrator.dag``, exposed by ``workflow_master.py``) in this process (Flyte local
mode): stage 1 (SAM2), stage 2 (FluxFill + VideoPainter) on stage 1's run id, stage 3 (Alpamayo-R1 or the
baseline) on stage 2's output URI. ``--stages 23 --data-run-id R`` reuses segmentation run R; ``--stages
3`` evaluates ``--video-data`` (default ``<output-root>/vp/<run-id>``). Every stage option is a flag
``--<stage>-<option>`` (``--segment-max-frames``, ``--edit-instructions``, ``--evaluate-model``). The run
is validated and every setting resolved before anything is written (exit 2); the DAG receives the
resolved values, so it needs neither the config file nor this shell's environment.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Mapping
from typing import Any

from core.config_cli import add_settings_arguments, cli_values
from core.config_file import ConfigFile
from orchestrator.plan import OPTIONS, REQUEST_FIELDS, STAGES, PipelineRequest, Plan

log = logging.getLogger(__name__)

EXAMPLES = """\
examples:
  lanepaint run --input clips/*.mp4 --run-id r1 --output-root gs://bucket/lanepaint --config run.yaml
  lanepaint run --stages 12 --input clip.mp4 --run-id r2 --segment-max-frames 49 \\
      --edit-instructions "lane double yellow solid"
  lanepaint run --stages 23 --run-id r3 --data-run-id r1 --edit-seed 7 --evaluate-num-traj-samples 6
  lanepaint run --stages 3 --run-id r1 --evaluate-dataset-dir /cache/hf --dry-run   # plan only
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_settings_arguments(parser, PipelineRequest)
    parser.add_argument("--dry-run", action="store_true", help="validate the run, print the plan and stop")
    for spec in STAGES:
        add_settings_arguments(parser, spec.config, prefix=spec.name, pipeline_only=True,
                               group=f"stage {spec.number} options ({spec.title}; section {spec.name!r} "
                                     "of a config file)")


def values_from(args: argparse.Namespace) -> dict[str, Any]:
    """Entry-point values from parsed arguments (None: not given); a fresh run id when none is given."""
    from core.ids import new_run_id

    values = cli_values(PipelineRequest, args) | {name: getattr(args, name, None) for name in OPTIONS}
    config_file: ConfigFile | None = getattr(args, "config_file", None)
    in_file = config_file.values_for(PipelineRequest).get("run_id") if config_file else None
    if values.get("run_id") is None and not in_file:          # not given: a new id ("" given is an error)
        values["run_id"] = new_run_id()
    return values


def prepare(values: Mapping[str, Any], config_file: ConfigFile | None = None) -> tuple[Plan, dict[str, Any]]:
    """(plan, what the DAG receives): the run validated (``UsageError`` before anything is written) and
    every request field and stage option resolved (flags < environment < config file < defaults)."""
    from orchestrator.plan import plan, request_from

    request, options = request_from(values, config_file)
    the_plan = plan(request, options, config_file)
    resolved = {name: getattr(request, name) for name in REQUEST_FIELDS}
    resolved["inputs"] = list(request.inputs)
    return the_plan, resolved | the_plan.options()


def execute(values: Mapping[str, Any], config_file: ConfigFile | None = None) -> Any:
    """Validate, then run the DAG locally; returns its ``PipelineResult``."""
    _, resolved = prepare(values, config_file)
    return _run_dag(resolved)


def _run_dag(resolved: Mapping[str, Any]) -> Any:
    from orchestrator.dag import master_pipeline
    from orchestrator.flyte_tasks import run_local

    return run_local(master_pipeline, resolved)


def run(args: argparse.Namespace) -> int:
    the_plan, resolved = prepare(values_from(args), getattr(args, "config_file", None))
    for line in the_plan.lines():
        print(line)
    if args.dry_run:
        return 0
    print("", flush=True)
    result = _run_dag(resolved)
    for line in result.lines():
        print(line)
    return result.exit_code

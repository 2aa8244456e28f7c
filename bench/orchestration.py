"""Orchestration cost of the Flyte DAG (issue 8), tiny profile on CPU.

1. Overhead: one clip through stages 1-3 as the DAG in local mode (``lanepaint run``'s path:
   flyte.init, task calls, shard configs, finalize re-aggregation) against the reference approach of
   calling ``run_segment``, ``run_edit`` and ``run_evaluate`` directly with the same settings.
2. Fan-out: ``--videos`` clips through stages 1-3 at concurrency 1 (one shard per stage) and at
   concurrency N (N shards per stage). In Flyte's local mode ``flyte.map`` runs shards one after
   another (flyte/_map.py), so more shards only add model loads here; on a cluster each shard is its
   own task on its own node. The cluster case is not measured.

    .venv/bin/python bench/orchestration.py [--videos 4] [--concurrency 4] [--repeats 2]
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))   # the packages, not bench/*.py

INSTRUCTION = "lane double yellow solid"


def _direct(inputs: list[str], root: str, run_id: str, dataset_dir: str) -> None:
    from generation.config import EditConfig
    from generation.stage import run_edit
    from segmentation.config import SegmentConfig
    from segmentation.stage import run_segment
    from vla.config import EvaluateConfig
    from vla.stage import run_evaluate

    run_segment(SegmentConfig(inputs=tuple(inputs), run_id=run_id, output_root=root, profile="tiny", max_frames=49))
    edit = run_edit(EditConfig(data_run_id=run_id, run_id=run_id, output_root=root, instructions=INSTRUCTION,
                               profile="tiny"))
    run_evaluate(EvaluateConfig(video_data=edit.run_uri, run_id=run_id, output_root=root, model="constant-velocity",
                                profile="tiny", dataset_dir=dataset_dir))


def _dag(inputs: list[str], root: str, run_id: str, dataset_dir: str, concurrency: int = 1) -> object:
    import workflow_master
    from orchestrator.flyte_tasks import run_local

    result = run_local(workflow_master.master_pipeline, {
        "run_id": run_id, "stages": "123", "inputs": inputs, "output_root": root, "profile": "tiny",
        "concurrency": concurrency, "instructions": INSTRUCTION, "sam2_max_frames": 49,
        "alpamayo_model": "constant-velocity", "dataset_dir": dataset_dir})
    assert result.exit_code == 0, result.lines()
    return result


def _finalize_again(result) -> float:
    """Seconds of the three finalize steps (manifests and run reports) on the DAG run's outputs."""
    import json

    from orchestrator.plan import PipelineRequest, plan
    from orchestrator.shards import finalize

    request = PipelineRequest(run_id=result.run_id, stages="123", inputs=("x_0001.mp4",), output_root=result.output_root,
                              profile="tiny")
    start = time.perf_counter()
    for stage, report in zip(plan(request).stages, result.reports, strict=True):
        config = dict(stage.config)
        if stage.spec.name == "evaluate":
            config["model"] = "constant-velocity"
        finalize(stage.spec.name, json.dumps(config), [report])
    return time.perf_counter() - start


def _timed(fn, *args, **kwargs) -> tuple[float, object]:
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return time.perf_counter() - start, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--videos", type=int, default=4)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=2, help="best of N for the overhead comparison")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    from synthetic.av_dataset import AVDatasetSpec, write_av_dataset

    work = tempfile.mkdtemp(prefix="lanepaint-bench-orch-")
    os.environ["HOME"] = os.path.join(work, "home")      # the Flyte SDK writes under HOME
    try:
        spec = AVDatasetSpec(clips=args.videos, clip_seconds=14.0, fps=10.0, width=96, height=54,
                             lanes=("single white dashed",))
        av = write_av_dataset(spec, os.path.join(work, "hf"), os.path.join(work, "inputs"))
        one = av.inputs[:1]
        _direct(one, os.path.join(work, "warm"), "warm", av.cache_dir)         # imports and first loads
        direct, dag = [], []
        for i in range(args.repeats):
            direct.append(_timed(_direct, one, os.path.join(work, f"direct{i}"), "b1", av.cache_dir)[0])
            seconds, result = _timed(_dag, one, os.path.join(work, f"dag{i}"), "b1", av.cache_dir)
            dag.append(seconds)
        best_direct, best_dag = min(direct), min(dag)
        again = _finalize_again(result)
        print(f"1 clip, stages 1-3, tiny profile, best of {args.repeats}:")
        print(f"  reference: the three stage functions called directly  {best_direct:7.2f} s")
        print(f"  DAG (Flyte local mode, lanepaint run's path)           {best_dag:7.2f} s")
        print(f"  overhead: {best_dag - best_direct:+.2f} s, ratio DAG / direct = {best_dag / best_direct:.3f}; "
              f"of it, re-aggregation after the shards (finalize of 3 stages, timed again alone): {again:.2f} s")

        t1, r1 = _timed(_dag, av.inputs, os.path.join(work, "fan1"), "f1", av.cache_dir, 1)
        tn, rn = _timed(_dag, av.inputs, os.path.join(work, "fann"), "fn", av.cache_dir, args.concurrency)
        print(f"\n{args.videos} clips, stages 1-3, Flyte local mode (map runs shards one after another):")
        for label, seconds, result in ((f"concurrency 1 (reference, {r1.reports[0].shards} shard per stage)", t1, r1),
                                       (f"concurrency {args.concurrency} ({rn.reports[0].shards} shards per stage)",
                                        tn, rn)):
            stages = ", ".join(f"{r.stage} {r.seconds:.1f} s" for r in result.reports)
            print(f"  {label:<46} {seconds:7.2f} s  ({stages})")
        print(f"  ratio concurrency {args.concurrency} / concurrency 1 = {tn / t1:.3f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

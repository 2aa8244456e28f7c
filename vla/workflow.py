"""Stage 3 (Alpamayo-R1 or the baseline) alone as a Flyte 2 workflow, on stage 2's output URI.

    flyte run --local vla/workflow.py evaluate_workflow --run_id r1 --video_data outputs/vp/r1
    flyte --config cluster.yaml deploy vla/workflow.py evaluate_driver

The shard and finalize tasks, their image and GPU request are the ones of the master DAG
(``core.flyte_tasks``); only the entry point and its light driver environment live here.
"""

from __future__ import annotations

from core.flyte_tasks import EVALUATE_ENV, EVALUATE_REPORT_ENV, driver_environment, entry_point

evaluate_driver = driver_environment("lanepaint_vla_workflow", depends_on=[EVALUATE_ENV, EVALUATE_REPORT_ENV])
evaluate_workflow = entry_point(evaluate_driver, "evaluate_workflow", __name__, "3",
                                "Stage 3: plan on original vs edited clips under `video_data`, minADE report.")

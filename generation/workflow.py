"""Stage 2 (FluxFill + VideoPainter) alone as a Flyte 2 workflow, on an existing segmentation run.

    flyte run --local generation/workflow.py edit_workflow --run_id e1 --data_run_id r1
    flyte --config cluster.yaml deploy generation/workflow.py edit_driver

The shard and finalize tasks, their image and GPU request are the ones of the master DAG
(``core.flyte_tasks``); only the entry point and its light driver environment live here.
"""

from __future__ import annotations

from core.flyte_tasks import EDIT_ENV, EDIT_REPORT_ENV, driver_environment, entry_point

edit_driver = driver_environment("lanepaint_generation_workflow", depends_on=[EDIT_ENV, EDIT_REPORT_ENV])
edit_workflow = entry_point(edit_driver, "edit_workflow", __name__, "2",
                            "Stage 2: repaint the lanes of segmentation run `data_run_id`'s clips.")

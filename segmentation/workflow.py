"""Stage 1 (SAM2) alone as a Flyte 2 workflow: deployable and runnable without the rest of the DAG.

    flyte run --local segmentation/workflow.py segment_workflow --run_id r1 --inputs '["clip.mp4"]'
    flyte --config cluster.yaml deploy segmentation/workflow.py segment_driver

The shard and finalize tasks, their image and GPU request are the ones of the master DAG
(``core.flyte_tasks``); only the entry point and its light driver environment live here.
"""

from __future__ import annotations

from core.flyte_tasks import SEGMENT_ENV, SEGMENT_REPORT_ENV, driver_environment, entry_point

segment_driver = driver_environment("lanepaint_segmentation_workflow", depends_on=[SEGMENT_ENV, SEGMENT_REPORT_ENV])
segment_workflow = entry_point(segment_driver, "segment_workflow", __name__, "1",
                               "Stage 1: SAM2 road masks of `inputs`, in VideoPainter's input format.")

"""The Flyte environments and entry tasks of the lanepaint DAG (``workflow_master.py`` exposes them).

Defined here, below ``workflow_master.py``, so that ``lanepaint run`` (``orchestrator.run_cli``) can run
the same tasks in this process without importing upward. Flyte finds each task remotely by this module
and the attribute name (``entry_point`` assigns both).
"""

from __future__ import annotations

from orchestrator.flyte_tasks import ENVS, STAGE_ENVS, driver_environment, entry_point

driver = driver_environment("lanepaint_driver", depends_on=list(STAGE_ENVS))

master_pipeline = entry_point(
    driver, "master_pipeline", __name__, None,
    "Run the stages named by `stages` (1 SAM2, 2 VideoPainter, 3 Alpamayo-R1; contiguous, e.g. 123 or 23).")
sam2_only = entry_point(driver, "sam2_only", __name__, "1", "Stage 1: SAM2 road masks of `inputs`.")
sam2_vp = entry_point(driver, "sam2_vp", __name__, "12", "Stages 1 and 2: segment `inputs`, then edit them.")
vp_only = entry_point(driver, "vp_only", __name__, "2",
                      "Stage 2: edit the clips of segmentation run `data_run_id`.")
vp_alpamayo = entry_point(driver, "vp_alpamayo", __name__, "23",
                          "Stages 2 and 3: edit segmentation run `data_run_id`, then evaluate the edits.")
alpamayo_only = entry_point(driver, "alpamayo_only", __name__, "3",
                            "Stage 3: evaluate the edited clips under `video_data` (default <root>/vp/<run_id>).")

ENTRY_POINTS = {"master_pipeline": master_pipeline, "sam2_only": sam2_only, "sam2_vp": sam2_vp,
                "vp_only": vp_only, "vp_alpamayo": vp_alpamayo, "alpamayo_only": alpamayo_only}

# One stage alone, deployable without the rest of the DAG: each driver depends only on its stage's
# environments, e.g. `flyte deploy workflow_master.py segment_driver`.
segment_driver = driver_environment("lanepaint_segmentation_workflow", depends_on=list(ENVS["segment"]))
segment_workflow = entry_point(segment_driver, "segment_workflow", __name__, "1",
                               "Stage 1 alone: SAM2 road masks of `inputs`, in VideoPainter's input format.")
edit_driver = driver_environment("lanepaint_generation_workflow", depends_on=list(ENVS["edit"]))
edit_workflow = entry_point(edit_driver, "edit_workflow", __name__, "2",
                            "Stage 2 alone: repaint the lanes of segmentation run `data_run_id`'s clips.")
evaluate_driver = driver_environment("lanepaint_vla_workflow", depends_on=list(ENVS["evaluate"]))
evaluate_workflow = entry_point(evaluate_driver, "evaluate_workflow", __name__, "3",
                                "Stage 3 alone: evaluate the edited clips under `video_data`.")

# The side tools, each a task on its own environment; `flyte deploy workflow_master.py tools` deploys all three.
from orchestrator.tool_tasks import TOOLS, tool_environment, tool_task  # noqa: E402

TOOL_ENVS = {spec.name: tool_environment(spec) for spec in TOOLS}
dataset_generate = tool_task(TOOL_ENVS["dataset_generate"], TOOLS[0], __name__)
dataset_filter = tool_task(TOOL_ENVS["dataset_filter"], TOOLS[1], __name__)
train_lora = tool_task(TOOL_ENVS["train_lora"], TOOLS[2], __name__)
tools = driver_environment("lanepaint_tools", depends_on=list(TOOL_ENVS.values()))

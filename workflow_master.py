"""The lanepaint Flyte 2 DAG: SAM2 -> VideoPainter -> Alpamayo-R1, and its partial entry points.

Stages pass a run id and URIs, never Python objects: stage 2 reads stage 1's output by run id
(``preprocessed_data_vp/<run_id>``), stage 3 reads stage 2's output URI (``vp/<run_id>``). Each stage
maps its shard task over the videos (``flyte.map``, at most ``concurrency`` shards at a time; a shard
loads its models once), then re-aggregates the run's manifest and reports.

Entry points (all forward the same options, ``<stage>_<option>`` for every option a stage config exposes;
``orchestrator.plan.OPTIONS`` lists them, ``lanepaint run --help`` shows them as flags):

- ``master_pipeline(run_id, ..., stages="123")``: the stages named (1, 2, 3, 12, 23, 123);
- ``sam2_only``, ``sam2_vp``, ``vp_only``, ``vp_alpamayo``, ``alpamayo_only``;
- ``segment_workflow``, ``edit_workflow``, ``evaluate_workflow``: one stage each, deployable alone with
  its own driver (``segment_driver``, ``edit_driver``, ``evaluate_driver``);
- the side tools ``dataset_generate``, ``dataset_filter``, ``train_lora`` (``orchestrator.tool_tasks``),
  deployable together as ``tools``.

Stage 2 without stage 1 needs ``data_run_id`` (a segmentation run whose output exists); stage 3
without stage 2 reads ``video_data`` (default ``<output_root>/vp/<run_id>``). Both are checked before
anything starts.

Run::

    flyte run --local workflow_master.py master_pipeline --run_id r1 --inputs '["clip.mp4"]' \\
        --profile tiny --output_root outputs                       # in this process, no cluster
    lanepaint run --stages 123 --run-id r1 --input clip.mp4 --profile tiny   # the same, as a command
    flyte --config cluster.yaml deploy workflow_master.py driver  # every environment it depends on
    flyte --config cluster.yaml run workflow_master.py master_pipeline --run_id r1 --inputs ...

Images, GPU type, resources, retries and the cache version come from the ``deploy`` environment
variables (``lanepaint env``; ``scripts/build_and_run.sh`` sets them). The tasks are defined in
``orchestrator.dag`` (so ``lanepaint run`` can run them without importing this file); this file exposes
them to ``flyte run`` and ``flyte deploy``. Imports the orchestrator only.
"""

from __future__ import annotations

from orchestrator.dag import (  # noqa: F401 - the entry points and environments Flyte loads from this file
    ENTRY_POINTS,
    alpamayo_only,
    dataset_filter,
    dataset_generate,
    driver,
    edit_driver,
    edit_workflow,
    evaluate_driver,
    evaluate_workflow,
    master_pipeline,
    sam2_only,
    sam2_vp,
    segment_driver,
    segment_workflow,
    tools,
    train_lora,
    vp_alpamayo,
    vp_only,
)

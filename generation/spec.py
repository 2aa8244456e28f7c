"""Stage 2 as the pipeline sees it (``core.stage_spec``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from core.errors import StorageError, UsageError
from core.layout import Layout
from core.stage_spec import StageSpec
from core.vp_data import list_vp_videos
from generation.config import EditConfig


def _groups(cfg: EditConfig) -> list[list[str]]:
    """One group per video: a video's instructions share a shard (its inputs are read once)."""
    ids = list(cfg.video_ids) or list_vp_videos(Layout(cfg.output_root), cfg.data_run_id)
    return [[vid] for vid in ids]


def _shard(groups: Sequence[list[str]]) -> dict[str, Any]:
    return {"video_ids": [vid for group in groups for vid in group]}


def check_segmentation_run(layout: Layout, data_run_id: str) -> None:
    """Stage 2 without stage 1: the segmentation run to reuse must be named and have output."""
    if not data_run_id:
        raise UsageError(f"stage 2 without stage 1 needs --data-run-id: the segmentation run to edit "
                         f"(its output is under {layout.path('preprocessed_data_vp')}/<run id>)")
    try:
        found = list_vp_videos(layout, data_run_id)
    except StorageError as exc:
        raise UsageError(f"cannot read segmentation run {data_run_id}: {exc}") from None
    if not found:
        raise UsageError(f"no segmentation output for run {data_run_id} under {layout.root} "
                         f"({layout.vp_data_run(data_run_id)} is missing or empty)")


SPEC = StageSpec(
    number="2", name="edit", title="FluxFill + VideoPainter editing", config=EditConfig,
    run="generation.stage:run_edit", run_folder=Layout.vp_run, input_field="data_run_id",
    item_groups=_groups, shard_values=_shard,
    describe_input=lambda values: f"segmentation run {values['data_run_id']}",
    input_from_previous=lambda layout, run_id: run_id, check_input=check_segmentation_run,
    run_reports="generation.stage:write_run_reports",
    task_prefix="vp", image="generation", cpu="12", memory="160Gi",
)

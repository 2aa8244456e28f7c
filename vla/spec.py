"""Stage 3 as the pipeline sees it (``core.stage_spec``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from core.edited_clips import find_edited_videos
from core.errors import UsageError
from core.layout import Layout
from core.stage_spec import StageSpec
from vla.config import EvaluateConfig


def _groups(cfg: EvaluateConfig) -> list[list[str]]:
    """One group per edited video id (its instructions share a shard: the dataset clip is read once)."""
    try:
        videos = find_edited_videos(cfg.video_data)
    except UsageError:
        return []
    chosen = [v.video_id for v in videos if cfg.wants(v.video_id, v.clip_guess, v.file_name)]
    return [[vid] for vid in dict.fromkeys(chosen)]


def _shard(groups: Sequence[list[str]]) -> dict[str, Any]:
    return {"video_name": ",".join(vid for group in groups for vid in group)}


def _check(layout: Layout, video_data: str) -> None:
    find_edited_videos(video_data)      # UsageError when missing or empty


SPEC = StageSpec(
    number="3", name="evaluate", title="driving-model evaluation", config=EvaluateConfig,
    run="vla.stage:run_evaluate", run_folder=Layout.alpamayo_run, input_field="video_data",
    item_groups=_groups, shard_values=_shard,
    describe_input=lambda values: f"edited clips under {values['video_data']}",
    input_from_previous=Layout.vp_run, input_default=Layout.vp_run, check_input=_check,
    run_reports="vla.stage:write_run_reports",
    # stage 1 plans the moment stage 3 evaluates and keeps only the edit window ending at it
    upstream_defaults={"segment": {"plan_moment": True}},
    task_prefix="alpamayo", image="vla", cpu="8", memory="96Gi",
)

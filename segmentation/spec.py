"""Stage 1 as the pipeline sees it (``core.stage_spec``)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from core import storage
from core.chunks import expand_inputs
from core.layout import Layout
from core.stage_spec import StageSpec
from segmentation.config import SegmentConfig


def _groups(cfg: SegmentConfig) -> list[list[str]]:
    """Inputs grouped by video id (file stem), in input order: a shard keeps a video id's inputs together
    (the duplicate check of ``run_segment`` works within a call). Entries that resolve to no video join the
    first group; the shard that gets them reports them as failed items."""
    videos, bad = expand_inputs(list(cfg.inputs))   # chunks:// listed once, here
    groups: dict[str, list[str]] = {}
    for uri in videos:
        groups.setdefault(os.path.splitext(storage.basename(uri))[0], []).append(uri)
    out = list(groups.values()) or ([[]] if bad else [])
    if bad:
        out[0] = list(bad) + out[0]
    return out


def _shard(groups: Sequence[list[str]]) -> dict[str, Any]:
    return {"inputs": [uri for group in groups for uri in group]}


SPEC = StageSpec(
    number="1", name="segment", title="SAM2 segmentation", config=SegmentConfig,
    run="segmentation.stage:run_segment", run_folder=Layout.sam2_run, input_field="inputs",
    item_groups=_groups, shard_values=_shard,
    describe_input=lambda values: f"{len(values['inputs'])} input(s)",
    task_prefix="sam2", image="segmentation", cpu="8", memory="32Gi",
)

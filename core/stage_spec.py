"""What a stage tells the pipeline about itself: ``StageSpec``. Each stage package exports one
(``segmentation.spec.SPEC``, ``generation.spec.SPEC``, ``vla.spec.SPEC``) and the orchestrator loops over
them: planning, sharding, Flyte tasks and reports never branch on a stage's name.

The callables of a spec are cheap (configs, listings of URIs); the stage function and its run-level
report writer are named as ``"module:function"`` and imported only where they run (a stage image).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from core.layout import Layout


def load(path: str) -> Any:
    """``"package.module:attribute"`` -> the attribute (imported on demand)."""
    module, _, attr = path.partition(":")
    return getattr(importlib.import_module(module), attr)


@dataclass(frozen=True)
class StageSpec:
    number: str                          # "1": its place in the DAG
    name: str                            # config section, manifest stage name, item records
    title: str
    config: type                         # its ``core.config.Settings`` dataclass (config.SECTION == name)
    run: str                             # "module:function": the stage function, cfg -> StageResult
    run_folder: Callable[[Layout, str], str]          # (layout, run id) -> the stage's run root
    input_field: str                     # the config field holding what the stage reads
    # The items a run shards over, in groups that stay together: cfg -> [[item, ...], ...]; and the
    # config values that restrict a run to some of those groups.
    item_groups: Callable[[Any], list[list[str]]]
    shard_values: Callable[[Sequence[list[str]]], dict[str, Any]]
    describe_input: Callable[[Mapping[str, Any]], str]    # config values -> "3 input(s)" for the plan
    # Stages after the first: their input when the previous stage ran in the same run, and the check
    # (a UsageError before anything is written) of an input given by the user.
    input_from_previous: Callable[[Layout, str], Any] | None = None
    input_default: Callable[[Layout, str], Any] | None = None
    check_input: Callable[[Layout, Any], None] | None = None
    run_reports: str = ""                # "module:function" rewriting run-level reports after every shard
    # Defaults this stage gives the earlier stages of the same run: {stage name: {field: value}}. They sit
    # above the fields' own defaults and below the config file, the environment and the options.
    upstream_defaults: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    # Flyte: task name prefix (``<prefix>_shard``), image folder and the shard task's CPU and memory.
    task_prefix: str = ""
    image: str = ""
    cpu: str = "8"
    memory: str = "32Gi"

    def run_uri(self, layout: Layout, run_id: str) -> str:
        return self.run_folder(layout, run_id)

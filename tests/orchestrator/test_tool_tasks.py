"""The side tools as Flyte tasks: parameters from their commands' settings, run in Flyte local mode."""

import inspect

from orchestrator.dag import dataset_filter, dataset_generate, train_lora
from orchestrator.flyte_tasks import run_local
from tests.training.test_dataset_filter import make_dataset
from training.lane_dataset import read_rows


def test_each_tool_task_takes_its_commands_settings():
    params = {t.func.__name__: set(inspect.signature(t.func).parameters) for t in (dataset_generate, dataset_filter,
                                                                                   train_lora)}
    assert {"input", "output", "count", "color", "pattern", "limit"} <= params["dataset_filter"]
    assert {"sources", "output", "profile", "frames"} <= params["dataset_generate"]
    assert {"data", "output", "profile", "max_train_steps"} <= params["train_lora"]
    assert all(p.default is None for p in inspect.signature(dataset_filter.func).parameters.values())


def test_dataset_filter_runs_as_a_flyte_task(tmp_path):
    source, out = str(tmp_path / "source"), str(tmp_path / "out")
    make_dataset(source, with_bad=False)
    result = run_local(dataset_filter, {"input": source, "output": out, "count": "double", "color": "yellow"})
    assert "output (3 rows)" in result["summary"]           # the command's own summary comes back
    rows = read_rows(out)
    assert len(rows) == 3 and all("double yellow" in r.prompt for r in rows)

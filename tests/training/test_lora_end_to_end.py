"""Issue 7 end to end on synthetic clips with the tiny profile: ``dataset generate`` (tiny SAM2 in
image mode + a scripted lane captioner) -> ``dataset filter`` (double yellow solid, clear road) ->
``train-lora`` (3 steps) -> the adapter loaded by stage 2's model loader (``load_edit_models``, from
the run folder, i.e. its newest checkpoint) changes the first frame, and scale 0 gives exactly the
frame without a LoRA."""

import json
import os

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("sam2")

from core.lanes import LaneSpec
from generation.config import EditConfig  # noqa: E402
from generation.edit_models import load_edit_models  # noqa: E402
from orchestrator.cli import main  # noqa: E402
from synthetic.scenes import SceneSpec, write_clip  # noqa: E402
from training.dataset_config import DatasetGenerateConfig  # noqa: E402
from training.dataset_generate import generate_dataset  # noqa: E402
from training.lane_dataset import load_sample, read_rows  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

ANSWERS = {"double_yellow_solid": '{"count": "double", "color": "yellow", "pattern": "solid"}',
           "single_white_dashed": '{"count": "single", "color": "white", "pattern": "dashed"}'}


class ScriptedCaptioner:
    """Answers from the clip's lane spec (its name), like a VLM that reads the markings right."""

    def __init__(self, policy=None):
        pass

    def __call__(self, images, names):
        return [next(a for key, a in ANSWERS.items() if key in name) for name in names]

    def describe(self):
        return {"name": "scripted"}


def _first_frame(lora_path, scale, frame, mask):
    cfg = EditConfig(data_run_id="unused", profile="tiny", img_inpainting_lora_path=lora_path,
                     img_inpainting_lora_scale=scale)
    models = load_edit_models(cfg)
    return models.first_frame(frame, mask, "road with double yellow solid lane markings", seed=7), models


def test_generate_filter_train_and_load_into_stage2(tmp_path, capsys):
    videos = tmp_path / "videos" / "chunk_0000"
    for lanes in ("double yellow solid", "single white dashed"):
        write_clip(SceneSpec(width=128, height=80, fps=10, seconds=1.0, seed=0, lanes=LaneSpec.parse(lanes)),
                   str(videos))
    dataset = str(tmp_path / "lanes")
    generated = generate_dataset(DatasetGenerateConfig(
        sources=(str(videos),), output=dataset, frames=(0, 4, 8), profile="tiny", io_workers=2),
        captioner_factory=ScriptedCaptioner)
    assert len(generated.ok) == 2 and len(read_rows(dataset)) == 6

    assert main(["dataset", "filter", "--input", dataset, "--count", "double", "--color", "yellow",
                 "--pattern", "solid", "--require-clear-road"]) == 0
    filtered = dataset + "__double_yellow_solid_clearroad"
    rows = read_rows(filtered)
    assert len(rows) == 3 and {r.prompt for r in rows} == {"road with double yellow solid lane markings"}

    out = str(tmp_path / "loras")
    assert main(["train-lora", "--data", filtered, "--output", out, "--profile", "tiny", "--max-train-steps", "3",
                 "--gradient-accumulation", "1", "--learning-rate", "1e-3", "--lr-warmup-steps", "0",
                 "--checkpointing-steps", "2"]) == 0
    printed = capsys.readouterr().out
    [run] = os.listdir(out)
    assert run.startswith("fluxfill_lanes__double_yellow_solid_clearroad_")
    run_dir = os.path.join(out, run)
    assert sorted(n for n in os.listdir(run_dir) if n.startswith("checkpoint-")) == ["checkpoint-2", "checkpoint-3"]
    assert f"checkpoint: {os.path.join(run_dir, 'checkpoint-3')}" in printed
    history = json.load(open(os.path.join(run_dir, "loss_history.json")))
    assert [h["step"] for h in history] == [1, 2, 3] and all(np.isfinite(h["loss"]) for h in history)
    summary = open(os.path.join(run_dir, "training_summary.txt")).read()
    assert "3 row(s) used" in summary and "steps: 0 -> 3 of 3" in summary and "final loss" in summary

    frame, mask = load_sample(filtered, rows[0])
    plain, _ = _first_frame(None, 0.0, frame, mask)
    off, _ = _first_frame(run_dir, 0.0, frame, mask)
    lora, models = _first_frame(run_dir, 1.0, frame, mask)
    assert models.descriptions["first_frame"]["lora"] == {"path": run_dir, "scale": 1.0, "loaded": True}
    assert np.array_equal(off, plain)
    assert lora.shape == plain.shape and not np.array_equal(lora, plain)
    assert np.array_equal(lora[~mask], frame[~mask])        # stage 2 still changes only the road

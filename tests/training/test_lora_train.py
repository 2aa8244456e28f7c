"""``lanepaint train-lora`` with the tiny FluxFill: exact resume (4 steps straight = 2 + resume 2),
checkpoint pruning and completeness, the diffusers LoRA format, the run's files, invalid rows skipped,
remote (memory://) datasets and outputs with gradient checkpointing, stage 2 loading a remote run
folder, and two DDP processes on CPU (the multi-GPU code path)."""

import json
import os
import shutil
import uuid

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from core import storage
from generation import lora_weights
from orchestrator.cli import main
from tests.fixtures import REPO_ROOT, processes
from tests.fixtures.lane_datasets import write_dataset
from training import lora_checkpoints as ckpt
from training.lane_dataset import DatasetRow

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

TRAIN = ["--profile", "tiny", "--gradient-accumulation", "2", "--learning-rate", "1e-3", "--lr-warmup-steps", "1"]


def _tensors(path):
    return load_file(path)


def _assert_same_tensors(a, b):
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_resume_gives_the_same_adapter_and_history_as_an_uninterrupted_run(tmp_path, capsys):
    bad = DatasetRow("images/gone.png", "masks/gone.png", "road with single white solid lane markings")
    data = write_dataset(str(tmp_path / "lanes"), n=5, extra_rows=(bad,))
    out = str(tmp_path / "out")
    args = ["train-lora", "--data", data, "--output", out, "--run-name", "run1", "--max-train-steps", "4",
            "--checkpointing-steps", "1", "--checkpoints-total-limit", "3", *TRAIN]
    assert main(args) == 0
    run = os.path.join(out, "run1")
    assert sorted(os.listdir(run)) == ["checkpoint-2", "checkpoint-3", "checkpoint-4", "logs", "loss_history.json",
                                       "manifest.json", "training_summary.txt"]      # checkpoint-1 pruned
    final = os.path.join(run, "checkpoint-4")
    weights = _tensors(os.path.join(final, lora_weights.WEIGHTS_NAME))
    assert weights and all(k.startswith("transformer.") and ".lora_" in k for k in weights)
    metadata = json.loads(safe_open(os.path.join(final, lora_weights.WEIGHTS_NAME), "pt").metadata()["lora_adapter_metadata"])
    assert metadata["transformer.r"] == 128 and metadata["transformer.lora_alpha"] == 128
    optimizer = _tensors(os.path.join(final, "optimizer.safetensors"))
    history = json.load(open(os.path.join(run, "loss_history.json")))
    assert [h["step"] for h in history] == [1, 2, 3, 4]
    assert history[0]["lr"] == pytest.approx(0.0) and history[1]["lr"] == pytest.approx(1e-3)  # 1 warm-up step
    summary = open(os.path.join(run, "training_summary.txt")).read()
    assert "5 row(s) used, 1 skipped (1 image missing, 1 mask missing)" in summary
    assert "3 step(s) per epoch, 4 step(s) over 2 epoch(s)" in summary
    manifest = json.load(open(os.path.join(run, "manifest.json")))
    assert manifest["stage"] == "train-lora" and manifest["profile"] == "tiny" and manifest["models"]["trainable"] > 0
    assert any(name.startswith("events.out.tfevents") for _, _, names in os.walk(os.path.join(run, "logs")) for name in names)
    assert "skipped row: line 7 (images/gone.png): image images/gone.png" in capsys.readouterr().err

    # interrupted after step 2: later checkpoints never written, a half-written checkpoint-3 left behind
    shutil.rmtree(os.path.join(run, "checkpoint-4"))
    os.remove(os.path.join(run, "checkpoint-3", ckpt.STATE_NAME))
    os.remove(os.path.join(run, "loss_history.json"))
    assert ckpt.latest_checkpoint(run) == os.path.join(run, "checkpoint-2")
    assert main(args + ["--resume-from-checkpoint", "latest"]) == 0
    assert "resumed from" in capsys.readouterr().err
    assert sorted(n for n in os.listdir(run) if n.startswith("checkpoint-")) == ["checkpoint-2", "checkpoint-3",
                                                                                  "checkpoint-4"]
    _assert_same_tensors(_tensors(os.path.join(final, lora_weights.WEIGHTS_NAME)), weights)
    _assert_same_tensors(_tensors(os.path.join(final, "optimizer.safetensors")), optimizer)
    assert json.load(open(os.path.join(run, "loss_history.json"))) == history


def test_remote_dataset_and_output_then_stage2_loads_the_remote_run(tmp_path, monkeypatch):
    from diffusers import FluxFillPipeline

    from generation.first_frame import apply_lora
    from generation.tiny_models import tiny_fluxfill_components

    bucket = f"memory://lora-{uuid.uuid4().hex[:8]}"
    data = f"{bucket}/datasets/lanes"
    storage.put(write_dataset(str(tmp_path / "lanes"), n=3), data)
    out = f"{bucket}/runs"
    cache = str(tmp_path / "cache")
    args = ["train-lora", "--data", data, "--output", out, "--max-train-steps", "2", "--checkpointing-steps", "1",
            "--checkpoints-total-limit", "1", "--cache-dir", cache, "--gradient-checkpointing", *TRAIN]
    assert main(args) == 0
    [run] = storage.ls(out)
    assert storage.basename(run).startswith("fluxfill_lanes_")
    assert [step for step, _ in ckpt.complete_checkpoints(run)] == [2]
    for name in ("loss_history.json", "training_summary.txt", "manifest.json"):
        assert storage.exists(storage.join(run, name))
    assert any("tfevents" in uri for uri in storage.walk_files(storage.join(run, "logs")))

    assert main(args[:5] + ["--max-train-steps", "3", *args[7:], "--resume-from-checkpoint", "latest"]) == 0
    assert storage.ls(out) == [run] and [s for s, _ in ckpt.complete_checkpoints(run)] == [3]
    history = json.loads(storage.read_text(storage.join(run, "loss_history.json")))
    assert [h["step"] for h in history] == [1, 2, 3]

    monkeypatch.setattr(storage, "DEFAULT_CACHE_DIR", str(tmp_path / "home-cache"))   # where stage 2 downloads it
    pipe = FluxFillPipeline(**tiny_fluxfill_components(0))
    info = apply_lora(pipe, run, 1.0)
    assert any(name == lora_weights.WEIGHTS_NAME for _, _, names in os.walk(tmp_path / "home-cache") for name in names)
    assert info["loaded"] and "lanes" in pipe.get_list_adapters()["transformer"]


@pytest.mark.slow
def test_two_process_ddp_on_cpu(tmp_path):
    """The multi-GPU code path (DDP, per-process shares, gathered RNG states) on two gloo CPU processes."""
    import sys

    data = write_dataset(str(tmp_path / "lanes"), n=4)
    out = str(tmp_path / "out")
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = processes.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "-m", "orchestrator.cli",
                           "train-lora", "--data", data, "--output", out, "--run-name", "ddp", "--max-train-steps", "2",
                           *TRAIN], cwd=REPO_ROOT, env=env, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("train-lora ddp: 2 step(s)") == 1          # one summary, from the main process
    run = os.path.join(out, "ddp")
    assert [s for s, _ in ckpt.complete_checkpoints(run)] == [2]
    summary = open(os.path.join(run, "training_summary.txt")).read()
    assert "2 process(es)" in summary and "2 batch(es) of 1 x 2 process(es) per epoch" in summary
    states = _tensors(os.path.join(run, "checkpoint-2", "random_states.safetensors"))
    assert sorted(states) == ["generator.0", "generator.1", "torch_cpu.0", "torch_cpu.1"]
    assert not torch.equal(states["generator.0"], states["generator.1"])   # each process its own noise

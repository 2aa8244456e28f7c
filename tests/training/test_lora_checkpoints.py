"""FluxFill LoRA runs without torch: run names, complete vs half-written checkpoints, pruning, atomic
publishing (local and remote), the LoRA path stage 2 accepts (file, checkpoint, run folder; local or
remote) with one-line errors, resume resolution, the config's checks, and ``train-lora`` stopping on a
bad dataset or a bad resume before any model (or torch) loads, with exit code 2."""

import datetime as dt
import json
import os
import sys
import uuid

import cv2
import numpy as np
import pytest

from core import storage
from core.config import build_config
from core.errors import LanepaintError, UsageError
from generation import lora_weights
from tests.fixtures import REPO_ROOT, processes
from training import lora_checkpoints as ckpt
from training.lora_config import LoraTrainConfig

ROOT = REPO_ROOT


def _checkpoint(run: str, step: int, complete: bool = True, weights: bool = True) -> str:
    uri = storage.join(run, f"checkpoint-{step}")
    if weights:
        storage.write_bytes(storage.join(uri, lora_weights.WEIGHTS_NAME), f"weights {step}".encode())
    else:
        storage.write_text(storage.join(uri, "optimizer.json"), "{}")
    if complete:
        storage.write_text(storage.join(uri, ckpt.STATE_NAME), json.dumps({"step": step}))
    return uri


def test_run_names_and_checkpoint_listing(storage_root):
    assert ckpt.new_run_name("gs://b/data/lanes__double_yellow_solid", dt.datetime(2026, 11, 21, 8, 30, 5)) == \
        "fluxfill_lanes__double_yellow_solid_20261121_083005"
    assert ckpt.dataset_name("/data/my lanes/") == "my_lanes"
    run = storage.join(storage_root, "fluxfill_lanes_20261121_083005")
    for step in (100, 200, 300):
        _checkpoint(run, step)
    _checkpoint(run, 400, complete=False)                       # a crash while writing it
    assert [s for s, _ in ckpt.complete_checkpoints(run)] == [100, 200, 300]
    assert ckpt.latest_checkpoint(run) == storage.join(run, "checkpoint-300")
    assert ckpt.find_latest_run(storage_root, "gs://x/lanes") == run
    assert ckpt.find_latest_run(storage_root, "gs://x/other") is None
    removed = ckpt.prune(run, keep=2)
    assert [storage.basename(u) for u in removed] == ["checkpoint-100"]
    names = sorted(storage.basename(u) for u in storage.ls(run))
    assert names == ["checkpoint-200", "checkpoint-300", "checkpoint-400"]   # a newer half one is left for resume


def test_publish_is_all_or_nothing_and_replaces_a_stale_checkpoint(tmp_path, storage_root):
    run = storage.join(storage_root, "run")
    _checkpoint(run, 5, complete=False)                          # stale half checkpoint of the same step
    staging = str(tmp_path / "staging")
    folder = ckpt.temp_folder(run, staging, 5)
    with open(os.path.join(folder, lora_weights.WEIGHTS_NAME), "wb") as fh:
        fh.write(b"new")
    assert not ckpt.is_complete(storage.join(run, "checkpoint-5"))
    uri = ckpt.publish(folder, run, 5, json.dumps({"step": 5}))
    assert uri == storage.join(run, "checkpoint-5") and ckpt.is_complete(uri)
    assert storage.read_bytes(storage.join(uri, lora_weights.WEIGHTS_NAME)) == b"new"
    assert sorted(storage.basename(u) for u in storage.walk_files(uri)) == [lora_weights.WEIGHTS_NAME, ckpt.STATE_NAME]
    assert not os.path.exists(folder)
    if storage.is_local(run):
        assert sorted(os.listdir(run)) == ["checkpoint-5"]         # no temp folder left
        os.makedirs(os.path.join(run, ".checkpoint-6.tmp"))
        ckpt.remove_stale_temps(run)
        assert sorted(os.listdir(run)) == ["checkpoint-5"]


def test_stage2_lora_paths_file_checkpoint_run_folder_and_remote(tmp_path):
    run = str(tmp_path / "fluxfill_lanes_1")
    for step in (2, 4):
        _checkpoint(run, step)
    _checkpoint(run, 6, complete=False)
    newest = os.path.join(run, "checkpoint-4", lora_weights.WEIGHTS_NAME)
    assert lora_weights.lora_weights_uri(run) == newest
    assert lora_weights.lora_weights_uri(os.path.join(run, "checkpoint-2")).endswith("checkpoint-2/" + lora_weights.WEIGHTS_NAME)
    assert lora_weights.lora_weights_uri(newest) == newest
    assert lora_weights.local_lora_weights(run) == (os.path.join(run, "checkpoint-4"), lora_weights.WEIGHTS_NAME)

    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(LanepaintError, match=f"FluxFill LoRA folder {empty} has no {lora_weights.WEIGHTS_NAME} and no "
                                             "complete checkpoint-N folder"):
        lora_weights.lora_weights_uri(str(empty))
    with pytest.raises(LanepaintError, match="FluxFill LoRA not found: .*nope"):
        lora_weights.lora_weights_uri(str(tmp_path / "nope"))
    with pytest.raises(UsageError, match="^--img-inpainting-lora-path: FluxFill LoRA not found"):
        lora_weights.check_lora_path(str(tmp_path / "nope"))
    lora_weights.check_lora_path(run)

    remote = f"memory://lora-{uuid.uuid4().hex[:8]}/fluxfill_lanes_2"
    storage.put(run, remote)
    folder, name = lora_weights.local_lora_weights(remote, str(tmp_path / "cache"))
    assert name == lora_weights.WEIGHTS_NAME and str(tmp_path / "cache") in folder
    assert open(os.path.join(folder, name), "rb").read() == b"weights 4"


def test_resume_resolution(tmp_path):
    out = str(tmp_path / "out")
    assert ckpt.resolve_resume("latest", out, "/d/lanes", None) == (None, None)     # fresh run
    older, newer = os.path.join(out, "fluxfill_lanes_20261120_000000"), os.path.join(out, "fluxfill_lanes_20261121_000000")
    _checkpoint(older, 10)
    _checkpoint(newer, 3, complete=False)                      # newest run never finished a checkpoint
    assert ckpt.resolve_resume("latest", out, "/d/lanes", None) == (older, os.path.join(older, "checkpoint-10"))
    named = os.path.join(out, "mine")
    _checkpoint(named, 7)
    assert ckpt.resolve_resume("latest", out, "/d/lanes", "mine") == (named, os.path.join(named, "checkpoint-7"))
    assert ckpt.resolve_resume(os.path.join(older, "checkpoint-10"), out, "/d/lanes", None)[0] == older
    assert ckpt.resolve_resume(named, out, "/d/lanes", None)[1] == os.path.join(named, "checkpoint-7")
    with pytest.raises(UsageError, match="not a complete checkpoint-N folder"):
        ckpt.resolve_resume(os.path.join(newer, "checkpoint-3"), out, "/d/lanes", None)


def test_config_defaults_and_one_line_errors():
    cfg = build_config(LoraTrainConfig, {"data": "d", "output": "o", "profile": "tiny"}, environ={})
    assert (cfg.resolution, cfg.max_sequence_length, cfg.alpha, cfg.rank) == (64, 32, 128.0, 128)
    assert cfg.target_modules == ("to_k", "to_q", "to_v", "to_out.0") and cfg.gradient_accumulation == 4
    full = build_config(LoraTrainConfig, {"data": "d", "output": "o", "target_modules": "to_q,to_v"},
                        environ={"LORA_RANK": "16", "LORA_MAX_TRAIN_STEPS": "7"})
    assert (full.resolution, full.rank, full.alpha, full.max_train_steps, full.target_modules) == \
        (1024, 16, 16.0, 7, ("to_q", "to_v"))
    for values, message in (({"output": "o"}, "--data is required"), ({"data": "d", "output": "o", "rank": 0}, "--rank"),
                            ({"data": "d", "output": "o", "run_name": "a/b"}, "invalid run name"),
                            ({"data": "d", "output": "o", "target_modules": "to q"}, "--target-modules entry")):
        with pytest.raises(UsageError, match=message):
            build_config(LoraTrainConfig, values, environ={})


BLOCKED = """
import sys
class _Block:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in {'torch', 'diffusers', 'transformers', 'accelerate', 'peft'}:
            raise ImportError('blocked heavy import: ' + name)
sys.meta_path.insert(0, _Block())
from orchestrator.cli import main
for args in CASES:
    print('exit', main(['train-lora', '--profile', 'tiny'] + args), flush=True)
"""


def test_bad_datasets_and_resumes_stop_before_any_model_loads(tmp_path):
    def dataset(name, csv, files=()):
        root = tmp_path / name
        (root / "images").mkdir(parents=True)
        (root / "masks").mkdir()
        if csv is not None:
            (root / "train.csv").write_text(csv)
        for rel, size in files:
            cv2.imwrite(str(root / rel), np.full((size[1], size[0]), 255, np.uint8))
        return str(root)

    header = "image,mask,prompt,prompt_2\n"
    row = "images/a.png,masks/a.png,road with single white solid lane markings,\n"
    out = str(tmp_path / "out")
    resume = os.path.join(out, "run", "checkpoint-3")
    os.makedirs(resume)
    with open(os.path.join(resume, ckpt.STATE_NAME), "w") as fh:
        json.dump({"step": 3, "adapter": {"rank": 128, "alpha": 128.0, "target_modules": ["to_q"]}}, fh)
    good = dataset("good", header + row, [("images/a.png", (32, 32)), ("masks/a.png", (32, 32))])
    cases = [
        ["--data", dataset("nocsv", None), "--output", out],
        ["--data", dataset("nocols", "image,mask,prompt\n"), "--output", out],
        ["--data", dataset("norows", header), "--output", out],
        ["--data", dataset("nofiles", header + row), "--output", out],
        ["--data", dataset("sizes", header + row, [("images/a.png", (32, 32)), ("masks/a.png", (16, 32))]), "--output", out],
        ["--data", good, "--output", out, "--resume-from-checkpoint", resume, "--rank", "4"],
        ["--data", good, "--output", out, "--resume-from-checkpoint", str(tmp_path / "nowhere")],
    ]
    proc = processes.run([sys.executable, "-c", f"CASES = {cases!r}\n" + BLOCKED], cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split("\n")[:-1] == ["exit 2"] * len(cases)
    errors = [line for line in proc.stderr.splitlines() if "lanepaint train-lora: error:" in line]
    assert len(errors) == len(cases)
    expected = ["cannot read train.csv", "lacks column(s) prompt_2", "train.csv has no rows",
                "1 of 1 row(s) invalid (1 image missing, 1 mask missing)", "1 of 1 row(s) invalid (1 size mismatch)",
                "its adapter {'rank': 128", "not a complete checkpoint-N folder"]
    for line, text in zip(errors, expected, strict=True):
        assert text in line, line
    assert sorted(os.listdir(out)) == ["run"] and os.listdir(os.path.join(out, "run")) == ["checkpoint-3"]

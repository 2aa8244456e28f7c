"""--devices: one shard worker process per device in a local run (orchestrator/workers.py)."""

import os
import sys

import pytest

from core.errors import LanepaintError, UsageError
from orchestrator import devices, workers
from orchestrator.run_cli import execute
from tests.fixtures import processes


@pytest.mark.parametrize("spec, visible, expected", [
    ("auto", "0,1,2,3", ["0", "1", "2", "3"]), ("auto", "5", []), ("auto", "", []), ("2", "", ["0", "1"]),
    ("0,2", "", ["0", "2"]), ("cpu:3", "0,1", ["cpu", "cpu", "cpu"]), ("cpu:1", "", ["cpu"]), ("1", "", []),
    ("0", "", []), ("0+1,2+3", "", ["0+1", "2+3"])])
def test_devices_become_one_worker_each(monkeypatch, spec, visible, expected):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
    assert devices.worker_devices(spec) == expected


@pytest.mark.parametrize("spec", ["graphics", "0,0", "cpu:0", "-1", "cpu:x", "0+1,1+2", "0+"])
def test_bad_devices_are_usage_errors(spec):
    with pytest.raises(UsageError, match="--devices"):
        devices.check_devices(spec)


def test_a_group_of_gpus_is_one_worker_that_sees_all_of_them():
    assert workers._env("0+1", 2)["CUDA_VISIBLE_DEVICES"] == "0,1"
    assert workers._env("cpu", 2)["CUDA_VISIBLE_DEVICES"] == ""


def test_a_worker_that_dies_without_a_report_fails_the_stage_in_one_line(monkeypatch):
    monkeypatch.setattr(workers.sys, "executable", "/bin/false")
    with pytest.raises(LanepaintError, match=r"^stage segment: the worker on cpu exited with 1 and no report"):
        workers.run_workers("segment", ["{}", "{}"], ["cpu", "cpu"])


@pytest.mark.slow
def test_a_local_run_on_two_workers_processes_every_video_once(tmp_path):
    clips = []
    for seed in range(4):
        out = processes.run([sys.executable, "-m", "orchestrator.cli", "synth", "--out", str(tmp_path / f"c{seed}"),
                             "--seconds", "5", "--fps", "10", "--width", "96", "--height", "64", "--seed", str(seed)],
                            timeout=120)
        assert out.returncode == 0, out.stderr[-1000:]
        clips += [str(p) for p in (tmp_path / f"c{seed}").glob("*.mp4")]
    result = execute({"stages": "1", "run_id": "w1", "profile": "tiny", "output_root": str(tmp_path / "out"),
                      "inputs": clips, "devices": "cpu:2"})
    (report,) = result.reports
    assert result.exit_code == 0 and sorted(report.ok) == sorted(os.path.basename(c)[:-4] for c in clips)
    assert report.shards == 2 and not report.skipped
    pids = {v for k, v in report.extra.items() if k.startswith("worker_")}
    assert len(pids) == 2 and all(v.startswith("cpu pid ") for v in pids)     # two processes did the work
    assert str(os.getpid()) not in " ".join(pids)

"""bench/segmentation.py's end-to-end GPU part (stage 1 pipelined against upstream's JPEG-folder recipe) runs its
code on the tiny model on the CPU (``--gpu-smoke``), so the script a lent GPU runs is known to work."""

import re
import sys

import pytest

from tests.fixtures import REPO_ROOT, processes

pytest.importorskip("sam2")


def test_end_to_end_bench_runs_on_the_cpu():
    out = processes.run([sys.executable, "bench/segmentation.py", "--gpu-smoke"], cwd=REPO_ROOT, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert re.search(r"upstream recipe \(JPEG folder.*\): +\d+\.\d+ fps", out.stdout)
    assert re.search(r"ours \(run_segment, pipelined, every output\): +\d+\.\d+ fps +ratio \d+\.\d+x", out.stdout)

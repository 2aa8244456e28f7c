"""The stage-2 bench scripts a lent GPU runs (bench/stage2_levers.py, bench/editing.py) run their GPU part's code
on the tiny models on the CPU (``--gpu-smoke``), so they are known to work before the GPU time is spent."""

import re
import sys

from tests.fixtures import REPO_ROOT, processes


def test_levers_bench_runs_its_cpu_part_and_its_gpu_code_on_the_cpu():
    out = processes.run([sys.executable, "bench/stage2_levers.py", "--gpu-smoke", "--steps", "3", "--repeats", "1",
                          "--instructions", "2"], cwd=REPO_ROOT, timeout=400)
    assert out.returncode == 0, out.stderr[-2000:]
    text = out.stdout
    for arm in ("plain", "cache-0.05", "cache-0.3", "float8", "compile", "batch of 2"):
        assert re.search(rf"^  {re.escape(arm)} +\d+\.\d+ +\d+\.\d+x", text, re.M), arm
    assert "one by one:" in text and "GPU FluxFill on cpu (smoke" in text
    batch = re.search(r"^  batch of 2 +[\d.]+ +[\d.]+x +[\d.]+ +([\d.e+-]+) +([\d.e+-]+)", text, re.M)
    assert batch and float(batch.group(2)) <= 1e-5          # the batch equals the videos made one by one


def test_editing_bench_gpu_code_runs_on_the_cpu():
    out = processes.run([sys.executable, "bench/editing.py", "--gpu-smoke", "--skip-cpu", "--steps", "2"],
                        cwd=REPO_ROOT, timeout=400)
    assert out.returncode == 0, out.stderr[-2000:]
    assert re.search(r"branch_overhead +-?\d+\.\d+", out.stdout) and "s_per_clip" in out.stdout

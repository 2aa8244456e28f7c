"""bench/vla_model.py runs: its CPU part and its GPU part's code (``--gpu-smoke``: the full layout, narrow), so
the script a lent GPU runs is known to work before the GPU time is spent."""

import re
import sys

import pytest

from tests.fixtures import REPO_ROOT, processes

pytest.importorskip("transformers")


def test_vla_model_bench_runs_its_cpu_part_and_its_gpu_code_on_the_cpu():
    out = processes.run([sys.executable, "bench/vla_model.py", "--gpu-smoke", "--repeats", "1",
                          "--reasoning-tokens", "2"], cwd=REPO_ROOT, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    text = out.stdout
    assert re.search(r"ratio sequential / batch: +\d+\.\d+x", text)
    # the processor sizes 16 frames as upstream does: 170-192 tokens each
    prefill = re.search(r"prefill: (\d+) tokens per input \((\d+) image tokens", text)
    assert prefill and 16 * 170 <= int(prefill.group(2)) <= 16 * 192 and int(prefill.group(2)) < int(prefill.group(1))
    assert re.search(r"2 reasoning tokens: +\d+\.\d+ s per pair as a batch of 2", text)

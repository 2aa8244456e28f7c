"""The device policy: dtype per GPU generation, CPU for tiny runs, torch threads."""

import pytest

from core.device import policy_for


@pytest.mark.parametrize("cap, dtype, tf32", [((9, 0), "bfloat16", True), ((8, 0), "bfloat16", True),
                                              ((7, 5), "float16", False), (None, "float32", False)])
def test_device_policy(cap, dtype, tf32):
    policy = policy_for(cap, "cuda:0" if cap else "cpu")
    assert (policy.dtype_name, policy.tf32) == (dtype, tf32)

def test_resolve_device_cpu_for_tiny():
    from core.device import resolve_device

    policy = resolve_device(None, profile="tiny")
    assert policy.device == "cpu" and policy.dtype_name == "float32"

def test_torch_threads_sets_and_restores():
    import torch

    from core.device import tiny_cpu_threads, torch_threads

    before = torch.get_num_threads()
    with torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with torch_threads(None):
        assert torch.get_num_threads() == before
    assert tiny_cpu_threads("tiny", on_cpu=True) == 1
    assert tiny_cpu_threads("tiny", on_cpu=False) is None and tiny_cpu_threads("full", on_cpu=True) is None

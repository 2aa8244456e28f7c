import subprocess
import sys

import pytest

from core.cli import main
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


def test_no_command_prints_help_and_exits_2(capsys):
    assert main([]) == 2
    assert "commands" in capsys.readouterr().out


def test_unknown_command_is_usage_error():
    with pytest.raises(SystemExit) as info:
        main(["frobnicate"])
    assert info.value.code == 2


def test_console_script_entry_point_runs():
    out = subprocess.run([sys.executable, "-m", "core.cli", "env"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "SAM2_MAX_FRAMES" in out.stdout


def test_demo_synthesises_a_clip(tmp_path, capsys):
    assert main(["demo", "--output-root", str(tmp_path), "--run-id", "demo_t", "--seconds", "1",
                 "--size", "96x64"]) == 0
    assert (tmp_path / "demo_inputs" / "demo_t").is_dir()
    assert "lanepaint demo demo_t" in capsys.readouterr().out

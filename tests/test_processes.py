"""tests/fixtures/processes.py: a command run by a test can neither hang the suite nor leave processes behind."""

import subprocess
import sys
import time

import pytest

from tests.fixtures import processes

SPAWN = ("import subprocess, sys\n"
         "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)']{redirect})\n"
         "open({pidfile!r}, 'w').write(str(child.pid))\n"
         "print('parent done', flush=True)\n")


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/status") as fh:
            return "\nState:\tZ" not in fh.read()       # a zombie is dead, waiting to be reaped
    except FileNotFoundError:
        return False


def _gone(pid: int, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.05)
    return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_grandchild_holding_the_output_pipe_ends_at_the_timeout_and_is_killed(tmp_path):
    """torchrun's case: the launcher is done but a worker keeps stdout open; plain subprocess.run would wait
    for it for ever after its timeout."""
    pidfile = str(tmp_path / "pid")
    start = time.monotonic()
    with pytest.raises(AssertionError, match="no result after 3 s; its process group was killed"):
        processes.run([sys.executable, "-c", SPAWN.format(redirect="", pidfile=pidfile)], timeout=3)
    assert time.monotonic() - start < 30
    assert _gone(int(open(pidfile).read()))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_straggler_left_by_a_finished_command_is_killed(tmp_path):
    pidfile = str(tmp_path / "pid")
    out = processes.run([sys.executable, "-c", SPAWN.format(redirect=", stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL",
                                        pidfile=pidfile)],
                        timeout=30)
    assert out.returncode == 0 and out.stdout == "parent done\n"
    assert _gone(int(open(pidfile).read()))


def test_a_server_is_stopped_with_its_group():
    proc = processes.start([sys.executable, "-c", "import time; time.sleep(600)"], stdout=subprocess.DEVNULL)
    processes.stop(proc, grace=2)
    assert proc.poll() is not None and not _alive(proc.pid)

"""--devices on CPU: the same videos through stages 1 and 2 (tiny) with one worker process, then with N.

Worker processes stand in for GPUs: each loads the models once and takes a share of the cores for torch.
The reference is one worker process (``--devices cpu:1``) on the same videos in the same invocation; the
figure is the wall-time ratio. On a GPU node each worker has a whole GPU, so there the ratio is bounded
by N (minus the per-worker model load); on this CPU machine the workers share the cores, so the ratio
mostly shows the overlap of one worker's I/O, decode and encode with another's compute, plus the load
cost of N model sets.

Usage: .venv/bin/python bench/devices.py [--clips 4] [--workers 2]
"""

from __future__ import annotations

import argparse
import glob
import logging
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    logging.disable(logging.INFO)
    from orchestrator.cli import main as cli
    from orchestrator.run_cli import execute

    with tempfile.TemporaryDirectory() as tmp:
        assert cli(["--log-level", "WARNING", "synth", "--out", f"{tmp}/clips", "--seconds", "6.5", "--fps", "10",
                    "--width", "96", "--height", "64", "--clips", str(args.clips)]) == 0
        clips = sorted(glob.glob(f"{tmp}/clips/*.mp4"))
        times = {}
        for label, devices in (("1 worker", "cpu:1"), (f"{args.workers} workers", f"cpu:{args.workers}")):
            start = time.perf_counter()
            result = execute({"stages": "12", "run_id": f"d{len(times)}", "profile": "tiny", "inputs": clips,
                              "output_root": f"{tmp}/out", "devices": devices,
                              "edit_instructions": "lane double yellow solid"})
            times[label] = time.perf_counter() - start
            assert result.exit_code == 0, result.lines()
            print(f"{label:<10} {times[label]:7.1f} s  ({', '.join(r.line() for r in result.reports)})")
        one, many = times["1 worker"], times[f"{args.workers} workers"]
        print(f"{args.clips} clips, stages 1+2 tiny on {os.cpu_count()} cores: {args.workers} workers / 1 worker "
              f"wall time = {many / one:.2f} (speed-up {one / many:.2f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Stage 1 (tiny) over N synthetic videos with and without reading ahead: wall time against the sum of its
phases. The reference is the same videos with ``--no-prefetch`` in the same invocation.

With prefetch the videos run as a pipeline: video k is written (PNGs, tinted video, upload, hand-off) on the
main thread while k+1 is segmented and cleaned on another and k+2 fetched and decoded on a third, so the
wall time drops below the sum of the phases; ``input_wait`` is what the segmenter still waited for its frames
and ``segment_wait`` what the writer waited for the masks. On this CPU machine SAM2 (tiny) and the decode share the cores,
so the overlap is bounded; on a GPU node the segmenter runs on the device and the decode on the CPU.

Usage: .venv/bin/python bench/stage1_overlap.py [--videos 8] [--size 320x180]
"""

from __future__ import annotations

import argparse
import glob
import json
import logging
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", type=int, default=8)
    parser.add_argument("--size", default="320x180")
    args = parser.parse_args(argv)
    logging.disable(logging.INFO)
    from core.config import build_config
    from orchestrator.cli import main as cli
    from segmentation.config import SegmentConfig
    from segmentation.stage import run_segment

    width, height = args.size.split("x")
    with tempfile.TemporaryDirectory() as tmp:
        assert cli(["--log-level", "WARNING", "synth", "--out", f"{tmp}/videos", "--seconds", "6.5", "--fps", "10",
                    "--width", width, "--height", height, "--clips", str(args.videos)]) == 0
        videos = sorted(glob.glob(f"{tmp}/videos/*.mp4"))
        rows = {}
        for label, prefetch in (("no prefetch", False), ("prefetch", True), ("no prefetch (again)", False),
                                ("prefetch (again)", True)):
            cfg = build_config(SegmentConfig, {"inputs": videos, "output_root": f"{tmp}/out", "run_id": f"r{len(rows)}",
                                               "profile": "tiny", "prefetch": prefetch})
            start = time.perf_counter()
            result = run_segment(cfg)
            wall = time.perf_counter() - start
            manifest = json.load(open(result.manifest_uri))
            phases = [item["timings"] for item in manifest["items"].values()]
            waits = ("input_wait", "segment_wait")
            busy = sum(sum(v for k, v in t.items() if k not in waits) for t in phases)
            waited = sum(t.get("input_wait", 0.0) for t in phases)
            writer = sum(t.get("segment_wait", 0.0) for t in phases)
            rows[label] = wall
            print(f"{label:<20} wall {wall:6.2f} s   sum of phases {busy:6.2f} s   wall/sum {wall / busy:.2f}   "
                  + (f"segmenter waited for frames {waited:5.2f} s   writer waited for masks {writer:5.2f} s"
                     if prefetch else "(in line: nothing waits)"))
        off = min(rows["no prefetch"], rows["no prefetch (again)"])
        on = min(rows["prefetch"], rows["prefetch (again)"])
        print(f"{args.videos} videos {args.size}, stage 1 tiny, {os.cpu_count()} cores: prefetch / no prefetch wall "
              f"time = {on / off:.2f} (best of two each)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Stage 1 on gs:// through injected storage faults: what was injected, how long it took, what was lost.

A proxy (tests/fixtures/fault_proxy.py) in front of the GCS emulator answers 503, 500, 429, a dropped
connection or a delay for a share of requests; stage 1 (tiny) reads 3 clips from gs:// and writes every
output there. After each run every hand-off is read back (meta.csv, video, masks, one PNG per frame) and
compared with a run without faults (reference, same inputs): the masks must be identical.

Usage: .venv/bin/python bench/reliability.py [--rates 0.1,0.2,0.3]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rates", default="0.1,0.2,0.3")
    args = parser.parse_args(argv)
    import logging

    import numpy as np

    from core import storage
    from core.layout import Layout
    from core.vp_data import load_masks, read_vp_clip
    from orchestrator.cli import main as lanepaint
    from synthetic.scenes import SceneSpec, write_clip
    from tests.fixtures.fault_proxy import FaultProxy, serve
    from tests.fixtures.gcs_emulator import Emulator

    logging.disable(logging.WARNING)
    work = tempfile.mkdtemp(prefix="bench-faults-")
    emulator = Emulator(["bench"]).start()
    try:
        os.environ["STORAGE_EMULATOR_HOST"] = emulator.host
        storage.reset_filesystems()
        prefix = f"gs://bench/{uuid.uuid4().hex[:8]}"
        ids = [f"clip_{k:04d}" for k in range(3)]
        for k, vid in enumerate(ids):
            clip = write_clip(SceneSpec(width=96, height=64, fps=10, seconds=1.2, seed=4 + k), work, name=vid)
            storage.put_file(clip.video_path, f"{prefix}/in/{vid}.mp4")

        def run(run_id: str, rate: float) -> tuple[int, float, dict, dict]:
            with serve(FaultProxy(emulator.host, rate=rate, seed=7)) as proxy:
                os.environ["STORAGE_EMULATOR_HOST"] = proxy.endpoint
                storage.reset_filesystems()
                start = time.perf_counter()
                code = lanepaint(["--log-level", "ERROR", "segment", "--profile", "tiny", "--run-id", run_id,
                                  "--output-root", f"{prefix}/out", "--cache-dir", os.path.join(work, run_id),
                                  "--input", *[f"{prefix}/in/{v}.mp4" for v in ids]])
                seconds = time.perf_counter() - start
            os.environ["STORAGE_EMULATOR_HOST"] = emulator.host
            storage.reset_filesystems()
            layout = Layout(f"{prefix}/out")
            masks = {}
            for vid in ids:
                clip = read_vp_clip(layout, run_id, vid)
                pngs = [u for u in storage.ls(layout.sam2_masks_dir(run_id, vid)) if u.endswith(".png")]
                assert len(pngs) == clip.frames, (vid, len(pngs), clip.frames)
                masks[vid] = load_masks(clip)
            return code, seconds, dict(proxy.counts), masks

        code, ref_s, _, reference = run("ref", 0.0)
        assert code == 0
        print(f"reference (no faults): {ref_s:.1f} s, 3 clips")
        print(f"{'rate':>5} {'requests':>9} {'503':>4} {'500':>4} {'429':>4} {'reset':>6} {'delay':>6} {'exit':>5} "
              f"{'seconds':>8}  outputs")
        for rate in (float(r) for r in args.rates.split(",")):
            code, seconds, counts, masks = run(f"r{int(rate * 100)}", rate)
            same = all(np.array_equal(masks[v], reference[v]) for v in ids)
            print(f"{rate:5.0%} {counts.get('requests', 0):9d} {counts.get('503', 0):4d} {counts.get('500', 0):4d} "
                  f"{counts.get('429', 0):4d} {counts.get('reset', 0):6d} {counts.get('delay', 0):6d} {code:5d} "
                  f"{seconds:8.1f}  {'all intact, masks identical to the reference' if same and code == 0 else 'LOST'}")
    finally:
        emulator.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

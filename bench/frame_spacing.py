"""How the edit rate places the edited camera's frames at the driving model's times t0 - 0.3, -0.2, -0.1, 0 s.

Stage 1 edits a window at 10 fps by default, which holds those times exactly. The alternatives keep
VideoPainter's native 8 fps: take the edited frame at or before each time (up to 75 ms early), or blend the
two edited frames around it (linear interpolation). On a synthetic PhysicalAI-AV clip (front camera
320x180 at 30 fps, ego at 14 m/s) the frames each option feeds are compared with the true camera frame at
each time: the time error, how far the car travels in it, and the PSNR against the true frame (the
dataset's own frames stand in for an edit, so only the placement in time is measured).

Usage: .venv/bin/python bench/frame_spacing.py [--speed 14]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from core import videoio  # noqa: E402
from core.moment import frames_at, plan_moment  # noqa: E402
from synthetic.av_dataset import AVDatasetSpec, write_av_dataset  # noqa: E402

OFFSETS = np.array([0.3, 0.2, 0.1, 0.0])


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--speed", type=float, default=14.0, help="ego speed in m/s")
    args = parser.parse_args(argv)
    work = tempfile.mkdtemp(prefix="bench-spacing-")
    av = write_av_dataset(AVDatasetSpec(clips=1, speed_mps=args.speed), os.path.join(work, "hf"),
                          os.path.join(work, "in"))
    video = av.clips[0].input_video
    info = videoio.probe(video)
    moment = plan_moment(info.last_frame_s, 10.0)
    targets = moment.t0_s - OFFSETS
    truth = videoio.decode_times(video, targets)            # the camera frame at each time (30 fps holds them)

    def window(fps: float) -> np.ndarray:
        return moment.t0_s - (np.arange(int(round(4.8 * fps)), -1, -1) / fps)   # an edit window ending at t0

    rows = []
    for label, fps in (("10 fps edit (ours): frame at each time", 10.0), ("8 fps edit: frame at or before", 8.0)):
        grid = window(fps)
        picked = grid[frames_at(grid, targets)]
        frames = videoio.decode_times(video, picked)
        rows.append((label, targets - picked, [psnr(f, t) for f, t in zip(frames, truth, strict=True)]))
    grid = window(8.0)
    before = frames_at(grid, targets)
    after = np.minimum(before + 1, len(grid) - 1)
    weight = np.where(after > before, (targets - grid[before]) / (grid[after] - grid[before] + 1e-12), 0.0)
    lo, hi = videoio.decode_times(video, grid[before]), videoio.decode_times(video, grid[after])
    blended = np.rint(lo * (1 - weight[:, None, None, None]) + hi * weight[:, None, None, None]).astype(np.uint8)
    rows.append(("8 fps edit: linear blend of the two around it", np.zeros(4), [psnr(f, t) for f, t in
                                                                                 zip(blended, truth, strict=True)]))
    seed_times = moment.t0_s - np.arange(3, -1, -1) * 0.125
    rows.append(("8 fps edit, frames 0.125 s apart (seed)", targets - seed_times,
                 [psnr(f, t) for f, t in zip(videoio.decode_times(video, seed_times), truth, strict=True)]))
    print(f"synthetic front camera 320x180 at 30 fps, ego {args.speed:g} m/s, t0 = {moment.t0_s:.1f} s; frames at "
          "t0 - 0.3, -0.2, -0.1, 0 s")
    print(f"  {'option':<48} {'max time error':>15} {'max travel':>11} {'PSNR vs true frame (dB), per frame':>36}")
    for label, errors, values in rows:
        shown = ", ".join("exact" if np.isinf(v) else f"{v:.1f}" for v in values)
        print(f"  {label:<48} {np.max(np.abs(errors)) * 1000:12.0f} ms {np.max(np.abs(errors)) * args.speed:9.2f} m"
              f"  {shown:>36}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

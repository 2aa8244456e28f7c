"""Benchmark: the pixel metrics of one clip (full frame, inside and outside the mask), ours vs references.

Ours: ``generation.quality.metrics.pixel_metrics`` on batches of frames (float64, one SSIM map per frame
reused by the three regions, the 11-tap Gaussian as sums of shifted slices).
References, timed in the same run on the same arrays and device:

- ``torchmetrics-per-frame``: upstream's calculator flow: torchmetrics PSNR/SSIM/MSE (+ MAE) one
  frame at a time, run twice (full frames, then mask-composited frames).
- ``conv2d-ssim``: our batched code with the SSIM window as a depthwise float64 ``conv2d`` (the
  first implementation we wrote).

    .venv/bin/python bench/quality_metrics.py --frames 49 --size 720x480 [--device cuda]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
import torch.nn.functional as F

from generation.quality import metrics
from generation.quality.metrics import SSIM_WINDOW, _gaussian, pixel_metrics


def conv2d_ssim_map(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    g = _gaussian(a.device, a.dtype)
    pad = (SSIM_WINDOW - 1) // 2
    a, b = (F.pad(x, (pad, pad, pad, pad), mode="reflect") for x in (a, b))
    stack = torch.cat([a, b, a * a, b * b, a * b], dim=1)
    groups = stack.shape[1]
    out = F.conv2d(stack, g.view(1, 1, 1, -1).expand(groups, 1, 1, SSIM_WINDOW), groups=groups)
    out = F.conv2d(out, g.view(1, 1, -1, 1).expand(groups, 1, SSIM_WINDOW, 1), groups=groups)
    mu_a, mu_b, e_aa, e_bb, e_ab = out.split(a.shape[1], dim=1)
    var_a, var_b = (e_aa - mu_a**2).clamp(min=0), (e_bb - mu_b**2).clamp(min=0)
    cov = e_ab - mu_a * mu_b
    c1, c2 = metrics.SSIM_K1**2, metrics.SSIM_K2**2
    return ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))


def ours(original, edited, masks, device, batch, ssim_fn=None):
    out = []
    for s in range(0, len(original), batch):
        a = torch.from_numpy(original[s:s + batch]).to(device).permute(0, 3, 1, 2).double() / 255
        b = torch.from_numpy(edited[s:s + batch]).to(device).permute(0, 3, 1, 2).double() / 255
        m = torch.from_numpy(masks[s:s + batch]).to(device)
        smap = (ssim_fn or metrics.ssim_map)(a, b)
        for region in (None, m, ~m):
            out.append(pixel_metrics(a, b, region, smap)["ssim"])
    return torch.cat(out).cpu()


def torchmetrics_per_frame(original, edited, masks, device):
    from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

    out = []
    for masked in (False, True):
        for i in range(len(original)):
            a = torch.from_numpy(original[i]).to(device).permute(2, 0, 1)[None].float() / 255
            b = torch.from_numpy(edited[i]).to(device).permute(2, 0, 1)[None].float() / 255
            if masked:
                m = torch.from_numpy(masks[i]).to(device)[None, None].float()
                a, b = a * m, b * m
            out.append((peak_signal_noise_ratio(b, a, data_range=1.0), structural_similarity_index_measure(
                b, a, data_range=1.0), F.mse_loss(b, a), (b - a).abs().mean()))
    return [float(x[1]) for x in out]


def timed(fn, device):
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=49)
    parser.add_argument("--size", default="720x480")
    parser.add_argument("--batch", type=int, default=0, help="frames per batch (0: the scorer's default)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    width, height = (int(v) for v in args.size.split("x"))
    args.batch = args.batch or (metrics.GPU_BATCH if args.device.startswith("cuda") else metrics.CPU_BATCH)
    rng = np.random.default_rng(0)
    original = rng.integers(0, 256, (args.frames, height, width, 3), dtype=np.uint8)
    edited = original.copy()
    masks = np.zeros((args.frames, height, width), bool)
    masks[:, height // 2:, width // 4: 3 * width // 4] = True
    edited[masks] = rng.integers(0, 256, (int(masks.sum()), 3), dtype=np.uint8)
    runs = {
        "ours (batched, shifted-slice SSIM)": lambda: ours(original, edited, masks, args.device, args.batch),
        "conv2d-ssim (batched, depthwise conv2d)": lambda: ours(original, edited, masks, args.device, args.batch,
                                                                 conv2d_ssim_map),
        "torchmetrics-per-frame (upstream flow)": lambda: torchmetrics_per_frame(original, edited, masks,
                                                                                  args.device),
    }
    seconds = {name: min(timed(fn, args.device) for _ in range(args.repeats)) for name, fn in runs.items()}
    base = seconds["ours (batched, shifted-slice SSIM)"]
    print(f"{args.frames} frames {width}x{height}, device {args.device}, batch {args.batch}, "
          f"torch threads {torch.get_num_threads()}")
    for name, value in seconds.items():
        print(f"  {name:<42} {value:8.2f} s   {value / base:5.2f}x ours")


if __name__ == "__main__":
    main()

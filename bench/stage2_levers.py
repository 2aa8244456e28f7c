"""Benchmark of stage 2's speed levers (generation/speed_levers.py) and of batched instructions.

Each arm builds fresh models, applies its lever and repaints one 49-frame clip; the reference is the plain
run of the same models measured in the same process. Per arm: seconds, the ratio plain / arm, the fraction of
transformer block calls skipped (step cache), the output difference against the plain run (frames in [0, 1]:
mean and max absolute), and on a GPU the peak memory.

- CPU (default): the tiny models (96x64, 4 backbone blocks) at ``--steps`` steps. Arms: First Block Cache at
  several thresholds, the caches not picked for comparison (TaylorSeer on whole blocks every 2nd and 3rd
  step, Pyramid Attention Broadcast), float8 weight storage, and ``--instructions`` instructions as one batch against one by
  one. Compile is GPU only (inductor on 2 CPU cores measures the compiler). The tiny models' weights are
  random: the differences bound what a lever changes, they say nothing about the look of a real edit.
- GPU (``--gpu``): the full-size architectures with random bf16 weights (CogVideoX-5b-I2V + the VideoPainter
  branch + T5-XXL, FLUX.1-Fill): seconds per 49-frame 720x480 clip at ``--steps`` steps and peak memory per
  arm (plain, cache, float8, regional compile after a warm-up call, 5 instructions as one batch), and
  FluxFill seconds per attempt at ``--flux-size`` for plain, cache, float8 and compile. ``--gpu-smoke`` runs
  the GPU part's code on the tiny models on the CPU (checks the script, measures nothing).

    .venv/bin/python bench/stage2_levers.py [--steps 20] [--instructions 5] [--gpu | --gpu-smoke] [--skip-cpu]
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))   # the packages

from full_size_models import flux_model, sync, video_model  # noqa: E402  (bench/ is on sys.path)

CACHE_THRESHOLDS = (0.05, 0.1, 0.2, 0.3)
GOALS = "goals (issue 16, H100): clip <= 90 s (stretch 60 s), 5 instructions <= 8 min, peak <= 75 GB"


def _clip(width: int, height: int, frames: int = 49):
    from core.lanes import LaneSpec
    from generation.masking import dilate_masks
    from synthetic.scenes import SceneSpec, render_scene

    spec = SceneSpec(width=width, height=height, fps=8.0, seconds=frames / 8, lanes=LaneSpec.parse("single white dashed"))
    video, masks = render_scene(spec)
    return video[:frames], dilate_masks(masks[:frames], 8)


def _prompts(n: int) -> list[str]:
    from generation.instructions import DEFAULT_SHORTHANDS, parse_instructions

    texts = [inst.text for inst in parse_instructions("||".join(DEFAULT_SHORTHANDS))]
    return [texts[i % len(texts)] for i in range(n)]


def _free() -> None:
    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def _peak_gb(device: str) -> float:
    import torch

    return torch.cuda.max_memory_allocated() / 2**30 if device.startswith("cuda") else 0.0


def _levers(arm: str) -> dict:
    """``apply_speed_levers`` arguments of an arm: cache-<threshold>, float8, compile (others: none)."""
    if arm.startswith("cache-"):
        return {"cache_threshold": float(arm.split("-")[1])}
    return {"float8": {"storage": "float8"}, "compile": {"compile": "regional"}}.get(arm, {})


def _other_cache(pipe, arm: str) -> None:
    """The caches we did not pick, for comparison (bench only): TaylorSeer on whole blocks (``taylorseer-<interval>``:
    compute every <interval>th step after 3 warm-up steps, extrapolate the others; diffusers' default patterns do not
    match CogVideoX's ``attn1``) and Pyramid Attention Broadcast (``pab``: attention reused every other step in
    timesteps 100-800)."""
    import torch
    from diffusers.hooks import PyramidAttentionBroadcastConfig, TaylorSeerCacheConfig

    if arm.startswith("taylorseer-"):
        pipe.transformer.enable_cache(TaylorSeerCacheConfig(
            cache_interval=int(arm.split("-")[1]), disable_cache_before_step=3, taylor_factors_dtype=torch.float32,
            cache_identifiers=[r"transformer_blocks\.\d+"]))
    elif arm == "pab":
        pipe.transformer.enable_cache(PyramidAttentionBroadcastConfig(
            spatial_attention_block_skip_range=2, spatial_attention_timestep_skip_range=(100, 800),
            current_timestep_callback=lambda: pipe.current_timestep))


def video_arm(arm: str, steps: int, instructions: int, full: bool, smoke: bool = False, repeats: int = 1) -> dict:
    """One arm of the video pass; ``full``: the full-size models on the GPU (``smoke``: tiny on CPU)."""
    import torch

    from generation.speed_levers import apply_speed_levers
    from generation.tiny_models import tiny_cogvideox_components
    from generation.videopainter.pipeline import VideoPainterPipeline

    device = "cuda" if full and not smoke else "cpu"
    if full:
        pipe, (width, height) = video_model(smoke)
    else:
        pipe, (width, height) = VideoPainterPipeline(**tiny_cogvideox_components(0)), (96, 64)
        pipe.set_progress_bar_config(disable=True)
    levers = _levers(arm)
    _other_cache(pipe, arm)
    applied = apply_speed_levers(pipe.transformer, extra_modules=(pipe.branch,), compute_dtype=pipe.transformer.dtype,
                                 compile_backend="eager" if device == "cpu" else "inductor", **levers)
    video, masks = _clip(width, height)
    batch = arm == "batch"
    prompts = _prompts(instructions if batch else 1)

    def run(steps_: int):
        common = dict(first_frame=video[0], num_inference_steps=steps_, output_type="pt")
        if batch:
            return pipe(video, masks, prompts, generator=[torch.Generator().manual_seed(42) for _ in prompts],
                        **common).frames
        return pipe(video, masks, prompts[0], generator=torch.Generator().manual_seed(42), **common).frames[None]

    if arm == "compile":
        run(2)                                   # compiles; not timed
    times = []
    for _ in range(repeats):                     # the minimum is reported
        pipe.branch_slot.reset_count()
        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        sync(device)
        start = time.perf_counter()
        frames = run(steps).float()
        sync(device)
        times.append(time.perf_counter() - start)
    blocks = len(pipe.transformer.transformer_blocks) * steps    # a batch runs every block once per step
    out = {"arm": arm, "seconds": min(times), "videos": len(prompts), "peak_gb": _peak_gb(device), "applied": applied,
           "skipped": 1.0 - pipe.branch_slot.block_calls / blocks, "frames": frames.cpu()}
    pipe = None
    _free()
    return out


def flux_arm(arm: str, steps: int, size: tuple[int, int], smoke: bool) -> dict:
    import torch

    from generation.first_frame import FluxFillInpainter
    from generation.speed_levers import apply_speed_levers

    device = "cpu" if smoke else "cuda"
    flux = flux_model(smoke)
    apply_speed_levers(flux.transformer, compute_dtype=flux.transformer.dtype,
                       compile_backend="eager" if smoke else "inductor", **_levers(arm))
    width, height = (96, 64) if smoke else size
    video, masks = _clip(width, height, frames=1)
    inpaint = FluxFillInpainter(flux, num_inference_steps=steps, max_area=width * height,
                                max_sequence_length=32 if smoke else 512)
    if arm == "compile":
        inpaint(video[0], masks[0], "lane", seed=1)
    computed = []   # the last block's attention runs only when the cache did not skip the step
    flux.transformer.single_transformer_blocks[-1].attn.register_forward_pre_hook(lambda *a: computed.append(1))
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    sync(device)
    start = time.perf_counter()
    image = inpaint(video[0], masks[0], _prompts(1)[0], seed=1)
    sync(device)
    out = {"arm": arm, "seconds": time.perf_counter() - start, "peak_gb": _peak_gb(device), "image": image,
           "skipped": 1.0 - len(computed) / steps}
    flux = inpaint = None
    _free()
    return out


def _compare(results: list[dict], key: str = "frames") -> None:
    import numpy as np

    plain = results[0]
    for r in results:
        a, b = np.asarray(r[key], np.float64), np.asarray(plain[key], np.float64)
        if key == "image":
            a, b = a / 255.0, b / 255.0
        if r["arm"] == "batch":     # every video of the batch against the one-by-one run of its instruction
            diff = np.abs(a - b)
        else:
            diff = np.abs(a - b[: len(a)])
        r["ratio"] = plain["seconds"] / r["seconds"] * (r.get("videos", 1) / plain.get("videos", 1))
        r["mean_diff"], r["max_diff"] = float(diff.mean()), float(diff.max())


def cpu_bench(steps: int, instructions: int, repeats: int) -> list[dict]:
    import torch

    torch.set_num_threads(1)
    video_arm("plain", 2, 1, full=False)        # warm-up
    arms = ["plain", *(f"cache-{t}" for t in CACHE_THRESHOLDS), "taylorseer-2", "taylorseer-3", "pab", "float8"]
    results = [video_arm(arm, steps, instructions, full=False, repeats=repeats) for arm in arms]
    _compare(results)
    # instructions: one by one (the plain arm, once per instruction) against one batch
    one_by_one = [video_arm("plain", steps, 1, full=False, repeats=repeats) for _ in range(instructions)]
    batch = video_arm("batch", steps, instructions, full=False, repeats=repeats)
    alone = torch.cat([r["frames"] for r in one_by_one])
    diff = (batch["frames"] - alone).abs()
    sequential = sum(r["seconds"] for r in one_by_one)
    results.append({**batch, "ratio": sequential / batch["seconds"], "mean_diff": float(diff.mean()),
                    "max_diff": float(diff.max()), "sequential_s": sequential})
    return results


def _print(results: list[dict], title: str, per_video: bool = True) -> None:
    print(title)
    print(f"  {'arm':<12} {'seconds':>9} {'ratio':>7} {'skipped':>8} {'mean diff':>10} {'max diff':>9} {'peak GB':>8}")
    for r in results:
        seconds = r["seconds"]
        label = r["arm"] if r["arm"] != "batch" else f"batch of {r['videos']}"
        skipped = f"{r['skipped']:.2f}" if "skipped" in r else "-"
        peak = f"{r['peak_gb']:.2f}" if r["peak_gb"] else "-"
        print(f"  {label:<12} {seconds:>9.2f} {r.get('ratio', 1.0):>6.2f}x {skipped:>8} {r.get('mean_diff', 0):>10.2e} "
              f"{r.get('max_diff', 0):>9.2e} {peak:>8}")
        if r["arm"] == "batch" and "sequential_s" in r:
            print(f"  {'':<12} one by one: {r['sequential_s']:.2f} s for the same {r['videos']} videos")


def gpu_bench(steps: int, instructions: int, flux_size: tuple[int, int], smoke: bool) -> None:
    import torch

    if not smoke and not torch.cuda.is_available():
        raise SystemExit("--gpu needs a CUDA GPU (--gpu-smoke runs the same code on tiny CPU models)")
    name = torch.cuda.get_device_name() if not smoke else "cpu (smoke: tiny models, not a measurement)"
    arms = ["plain", "cache-0.05", "cache-0.1", "float8", "compile", "batch"]
    results = [video_arm(arm, steps, instructions, full=True, smoke=smoke) for arm in arms]
    _compare(results[:-1])
    batch = results[-1]
    batch["ratio"] = results[0]["seconds"] * batch["videos"] / batch["seconds"]
    _print(results, f"GPU video pass on {name}: 49 frames 720x480 (smoke: 96x64), {steps} steps, random bf16 weights; "
           "ratio = plain seconds per video / arm seconds per video; " + GOALS)
    flux = [flux_arm(arm, steps, flux_size, smoke) for arm in ("plain", "cache-0.1", "float8", "compile")]
    _compare(flux, key="image")
    _print(flux, f"GPU FluxFill on {name}: one attempt at {flux_size[0]}x{flux_size[1]} (smoke: 96x64), {steps} steps")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=20, help="diffusion steps (CPU default 20; GPU use 50)")
    parser.add_argument("--instructions", type=int, default=5, help="instructions of the batch arm")
    parser.add_argument("--repeats", type=int, default=3, help="CPU part: runs per arm (the minimum is reported)")
    parser.add_argument("--gpu", action="store_true", help="also run the full-size GPU part")
    parser.add_argument("--gpu-smoke", action="store_true", help="run the GPU part's code on tiny CPU models")
    parser.add_argument("--flux-size", default="1920x1088", help="GPU part: FluxFill working size WxH")
    parser.add_argument("--skip-cpu", action="store_true", help="skip the CPU part")
    args = parser.parse_args(argv)
    import logging

    import diffusers.utils.logging
    import transformers.utils.logging

    logging.basicConfig(level=logging.WARNING)
    for module in (diffusers.utils.logging, transformers.utils.logging):
        module.set_verbosity_error()                  # tiny tokenizers truncate every prompt: noise
        module.disable_progress_bar()
    print(f"machine: {platform.platform()}, {os.cpu_count()} CPU(s), python {sys.version.split()[0]}")
    if not args.skip_cpu:
        _print(cpu_bench(args.steps, args.instructions, args.repeats),
               f"CPU, tiny models (96x64, 49 frames, 4 blocks), {args.steps} steps, one thread; ratio = plain / arm "
               "(batch: one by one / batch); diffs against the plain run (batch: against each instruction alone)")
    if args.gpu or args.gpu_smoke:
        width, height = (int(v) for v in args.flux_size.lower().split("x"))
        gpu_bench(args.steps, args.instructions, (width, height), smoke=args.gpu_smoke)
    else:
        print("GPU part: not run (pass --gpu on a machine with a CUDA GPU)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark of stage 2 (editing): models resident vs reloaded per video, and full-size GPU figures.

CPU part (always): 2 synthetic videos x 5 instructions through ``run_edit`` on the tiny models, loaded
from checkpoint folders on disk through the ``full`` loading code path (``from_pretrained``), so a
reload costs what a reload costs. Two arms in the same process:

- resident (ours): one ``run_edit`` call; the models are loaded once and reused for all 10 items;
- reload per video (upstream VideoPainter's flow: it loads FluxFill and CogVideoX for every video):
  one ``run_edit`` call per video, each loading the models again.

It prints the wall time of each arm and the ratio reload / resident.

GPU part (``--gpu``): the real architectures with random weights (CogVideoX-5b-I2V, the VideoPainter
branch, T5-XXL, FLUX.1-Fill), all resident in bf16: seconds per 49-frame 720x480 clip at 50 steps
(FluxFill first frame + video), peak VRAM, the CogVideoX+branch step time against a plain
CogVideoX I2V step, and the GPU<->CPU move time of both pipelines as a lower bound of upstream's
per-video reload.

    .venv/bin/python bench/editing.py [--videos 2] [--instructions 5] [--gpu]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))   # the packages and tests/fixtures

from full_size_models import stage2_models, sync, timed  # noqa: E402  (bench/ is on sys.path)

from core.lanes import LaneSpec  # noqa: E402
from core.layout import Layout  # noqa: E402
from core.vp_data import write_vp_clip  # noqa: E402
from generation.instructions import DEFAULT_SHORTHANDS  # noqa: E402
from synthetic.scenes import SceneSpec, render_scene  # noqa: E402

LANES = ("single white dashed", "double yellow solid", "single yellow solid")


def _stage1(root: str, videos: int) -> list[str]:
    layout = Layout(root)
    ids = []
    for k in range(videos):
        spec = SceneSpec(width=160, height=96, fps=8.0, seconds=49 / 8, lanes=LaneSpec.parse(LANES[k % 3]), seed=k)
        frames, masks = render_scene(spec)
        video_id = f"bench_clip_{k:04d}"
        write_vp_clip(layout, "seg", video_id, frames, masks, fps=8.0)
        ids.append(video_id)
    return ids


def cpu_bench(videos: int, instructions: int, repeats: int = 2) -> dict[str, float]:
    from generation.config import EditConfig
    from generation.stage import run_edit
    from tests.fixtures.tiny_checkpoints import save_tiny_checkpoints

    work = tempfile.mkdtemp(prefix="lanepaint-bench-")
    root = os.path.join(work, "out")
    ids = _stage1(root, videos)
    paths = save_tiny_checkpoints(os.path.join(work, "ckpt"))
    base = dict(data_run_id="seg", output_root=root, profile="full", cog_device="cpu", flux_device="cpu",
                instructions="||".join(DEFAULT_SHORTHANDS[:instructions]), model_width=96, model_height=64,
                num_inference_steps=2, flux_num_inference_steps=2, flux_max_area=96 * 64,
                flux_max_sequence_length=32, judge=False, metrics=False,   # those: bench/edit_quality.py
                **paths)
    run_edit(EditConfig(run_id="warmup", video_ids=(ids[0],), **(base | {"instructions": DEFAULT_SHORTHANDS[0]})))
    t_resident, t_reload = [], []
    for rep in range(repeats):   # alternate the arms; the minimum of each is reported
        start = time.perf_counter()
        resident = run_edit(EditConfig(run_id=f"resident{rep}", **base))
        t_resident.append(time.perf_counter() - start)
        start = time.perf_counter()
        reload_ok = 0
        for video_id in ids:
            reload_ok += len(run_edit(EditConfig(run_id=f"reload{rep}", video_ids=(video_id,), **base)).ok)
        t_reload.append(time.perf_counter() - start)
        assert len(resident.ok) == reload_ok == videos * instructions, (resident.failed, reload_ok)
    manifest = os.path.join(root, "vp", "resident0", "manifest.json")
    load = json.loads(open(manifest).read())["models"]["load_seconds"]
    return {"items": videos * instructions, "resident_s": min(t_resident), "reload_per_video_s": min(t_reload),
            "ratio": min(t_reload) / min(t_resident), "one_load_s": load, "repeats": repeats,
            "runs": {"resident": t_resident, "reload": t_reload}}


# ---- GPU: the real architectures with random weights (bench/full_size_models.py) ----------------------


def gpu_bench(steps: int, smoke: bool = False) -> dict[str, float | str]:
    import torch

    from generation.first_frame import FluxFillInpainter
    from generation.masking import dilate_masks, resize_frames, resize_masks
    from generation.videopainter.hooks import BranchInjection, background_tokens

    device = "cpu" if smoke else "cuda"
    if not smoke and not torch.cuda.is_available():
        raise SystemExit("--gpu needs a CUDA GPU (--gpu-smoke runs the same code on tiny CPU models)")
    video, flux, (width, height) = stage2_models(smoke)
    cuda = device == "cuda"
    out: dict[str, float | str] = {"gpu": torch.cuda.get_device_name() if cuda else "cpu (smoke: not a measurement)",
                                   "weights_gb": torch.cuda.memory_allocated() / 2**30 if cuda else 0.0}
    # step time: plain CogVideoX I2V vs CogVideoX + branch (CFG batch 2, 13 latent frames, full text length)
    tr, br = video.transformer, video.branch
    cfg, dtype = tr.config, tr.dtype
    h, w = cfg.sample_height, cfg.sample_width
    g = torch.Generator(device).manual_seed(0)
    x = torch.randn(2, 13, 32, h, w, device=device, dtype=dtype, generator=g)
    cond = torch.randn(2, 13, 17, h, w, device=device, dtype=dtype, generator=g)
    text = torch.randn(2, cfg.max_text_seq_length, cfg.text_embed_dim, device=device, dtype=dtype, generator=g)
    t = torch.tensor([500, 500], device=device)
    rotary = video._prepare_rotary_positional_embeddings(height, width, 13, torch.device(device))
    keep = background_tokens((cond[:, :, 16:] > 0).float(), cfg.patch_size)

    def plain():
        with torch.no_grad():
            tr(x, text, t, image_rotary_emb=rotary, return_dict=False)

    def branched():
        with torch.no_grad():
            samples = br(x[:, :, :16], text, cond, t, image_rotary_emb=rotary)
            with BranchInjection(tr, samples, keep):
                tr(x, text, t, image_rotary_emb=rotary, return_dict=False)

    out["plain_step_s"], out["branch_step_s"] = timed(plain, device), timed(branched, device)
    out["branch_overhead"] = out["branch_step_s"] / out["plain_step_s"] - 1.0
    # one 49-frame clip at the model resolution: FluxFill first frame + video, all resident
    spec = SceneSpec(width=width, height=height, fps=8.0, seconds=49 / 8, lanes=LaneSpec.parse("single white dashed"))
    frames, masks = render_scene(spec)
    dilated = dilate_masks(masks, 24)
    inpainter = FluxFillInpainter(flux, num_inference_steps=steps, max_area=width * height,
                                  max_sequence_length=512 if cuda else 32)
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    sync(device)
    start = time.perf_counter()
    first = inpainter(frames[0], dilated[0], "lane single white dashed", seed=42)
    video(resize_frames(frames, (width, height)), resize_masks(dilated, (width, height)), "lane single white dashed",
          first_frame=first, num_inference_steps=steps, generator=torch.Generator().manual_seed(42))
    sync(device)
    out["s_per_clip"] = time.perf_counter() - start
    out["peak_vram_gb"] = torch.cuda.max_memory_allocated() / 2**30 if cuda else 0.0
    # upstream moves/reloads every model per video: GPU -> CPU -> GPU is a lower bound of that cost
    start = time.perf_counter()
    for pipe in (video, flux):
        pipe.to("cpu")
        pipe.to(device)
    sync(device)
    out["reload_lower_bound_s"] = time.perf_counter() - start
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", type=int, default=2)
    parser.add_argument("--instructions", type=int, default=5, choices=range(1, 6))
    parser.add_argument("--repeats", type=int, default=2, help="CPU part: repetitions of each arm (min reported)")
    parser.add_argument("--gpu", action="store_true", help="also run the full-size GPU part")
    parser.add_argument("--gpu-smoke", action="store_true",
                        help="run the GPU part's code on tiny CPU models (checks the script, measures nothing)")
    parser.add_argument("--steps", type=int, default=50, help="GPU part: diffusion steps of both models")
    parser.add_argument("--skip-cpu", action="store_true", help="skip the CPU part")
    args = parser.parse_args(argv)
    import logging

    import diffusers.utils.logging
    import transformers.utils.logging

    logging.basicConfig(level=logging.WARNING)
    diffusers.utils.logging.set_verbosity_error()       # tiny tokenizers truncate every prompt: noise
    transformers.utils.logging.set_verbosity_error()
    diffusers.utils.logging.disable_progress_bar()
    transformers.utils.logging.disable_progress_bar()
    print(f"machine: {platform.platform()}, {os.cpu_count()} CPU(s), python {sys.version.split()[0]}")
    if not args.skip_cpu:
        _print_cpu(cpu_bench(args.videos, args.instructions, args.repeats), args)
    if args.gpu or args.gpu_smoke:
        gpu = gpu_bench(args.steps, smoke=args.gpu_smoke)
        print(f"GPU part on {gpu['gpu']}: full-size architectures (smoke: tiny), random weights, {args.steps} steps:")
        for key in ("weights_gb", "plain_step_s", "branch_step_s", "branch_overhead", "s_per_clip",
                    "peak_vram_gb", "reload_lower_bound_s"):
            print(f"  {key:<22} {gpu[key]:.3f}")
    else:
        print("GPU part: not run (pass --gpu on a machine with a CUDA GPU)")
    return 0


def _print_cpu(cpu: dict, args: argparse.Namespace) -> None:
    print(f"CPU, tiny models from disk, {cpu['items']} items ({args.videos} videos x {args.instructions} "
          f"instructions), min of {cpu['repeats']} alternating runs per arm after a warm-up:")
    print(f"  resident (load once):          {cpu['resident_s']:7.1f} s")
    print(f"  reload per video (upstream):   {cpu['reload_per_video_s']:7.1f} s")
    print(f"  ratio reload / resident:       {cpu['ratio']:7.2f}x   (one model load: {cpu['one_load_s']:.2f} s)")
    print("  all runs (s): " + "; ".join(f"{arm} " + ", ".join(f"{v:.1f}" for v in values)
                                      for arm, values in cpu["runs"].items()))


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark of FluxFill LoRA training (``lanepaint train-lora``).

CPU part (always), tiny FluxFill, one process, two arms of the same training step (fill inputs, forward,
backward, AdamW) alternating over the same batches:

- precomputed (ours): CLIP pooled + T5 embeddings looked up from the table built once per distinct
  prompt (``lora_model.PromptEmbeddings.precompute``; the text encoders can then be freed);
- re-encoded (reference, what a loop that tokenises and encodes the caption of every sample does):
  CLIP and T5 run for every micro-batch.

It prints seconds per optimizer step of each arm (minimum over repeats) and the ratio re-encoded /
precomputed, then the s/step of a whole ``run_train_lora`` call on the same dataset.

GPU part (``--gpu``): FLUX.1-Fill-dev's architecture (transformer and VAE) with random weights in
bf16, rank-128 LoRA on to_q/k/v/out.0, one 1024x1024 image per step (VAE encoding included, 512 T5
tokens), with gradient checkpointing off and on: seconds per step and peak VRAM. ``--gpu-smoke`` runs
that code on the tiny model on CPU to check the script (its numbers mean nothing).

    .venv/bin/python bench/lora_train.py [--steps 6] [--repeats 3] [--gpu | --gpu-smoke]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

# FLUX.1-Fill-dev transformer/config.json and vae/config.json (architecture only).
FLUX_FILL_TRANSFORMER = {"patch_size": 1, "in_channels": 384, "out_channels": 64, "num_layers": 19,
                         "num_single_layers": 38, "attention_head_dim": 128, "num_attention_heads": 24,
                         "joint_attention_dim": 4096, "pooled_projection_dim": 768, "guidance_embeds": True,
                         "axes_dims_rope": (16, 56, 56)}
FLUX_VAE = {"in_channels": 3, "out_channels": 3, "down_block_types": ["DownEncoderBlock2D"] * 4,
            "up_block_types": ["UpDecoderBlock2D"] * 4, "block_out_channels": (128, 256, 512, 512),
            "layers_per_block": 2, "latent_channels": 16, "norm_num_groups": 32, "use_quant_conv": False,
            "use_post_quant_conv": False, "shift_factor": 0.1159, "scaling_factor": 0.3611}
TARGETS = ("to_k", "to_q", "to_v", "to_out.0")


def _dataset(root: str, rows: int) -> str:
    from tests.lora_fixtures import write_dataset

    return write_dataset(root, n=rows, size=(128, 80))


def cpu_bench(steps: int, repeats: int, rows: int = 8) -> dict[str, float]:
    import torch
    from diffusers import FluxFillPipeline

    from core.config import build_config
    from generation.tiny_models import tiny_fluxfill_components
    from training.lane_dataset import read_rows
    from training.lora_config import LoraTrainConfig
    from training.lora_data import BatchPlan, SampleLoader, working_sizes
    from training.lora_model import PromptEmbeddings, add_lora, fill_inputs, flow_matching_loss
    from training.lora_train import run_train_lora

    torch.set_num_threads(1)    # steadier on a shared 2-core machine; both arms alike
    work = tempfile.mkdtemp(prefix="lanepaint-bench-lora-")
    data = _dataset(os.path.join(work, "lanes"), rows)
    table = read_rows(data)
    sizes = working_sizes(data, table, 64 * 64)
    plan = BatchPlan(sizes, 1, 4, 42, 100)
    loader = SampleLoader(data, table, sizes, 24, workers=1)
    batches = [[loader.load(ix) for ix in plan.step_batches(s)] for s in range(steps)]
    loader.close()

    pipe = FluxFillPipeline(**tiny_fluxfill_components(0))
    for module in (pipe.transformer, pipe.vae, pipe.text_encoder, pipe.text_encoder_2):
        module.requires_grad_(False).eval()
    add_lora(pipe.transformer, 128, 128.0, 0.0, TARGETS, 42)
    params = [p for p in pipe.transformer.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-5, weight_decay=1e-2)
    prompts = PromptEmbeddings(pipe, "cpu", 32)
    prompts.precompute((r.prompt, r.text_2) for r in table)

    def run(precomputed: bool) -> float:
        generator = torch.Generator().manual_seed(0)
        start = time.perf_counter()
        for micro in batches:
            for batch in micro:
                if precomputed:
                    embeds, pooled, ids = prompts.get(batch.prompts, batch.prompts_2)
                else:
                    embeds, pooled, ids = prompts.encode(batch.prompts, batch.prompts_2)
                kwargs, target = fill_inputs(pipe, batch.images, batch.masks, embeds, pooled, ids, 30.0, generator)
                (flow_matching_loss(pipe.transformer, kwargs, target) / len(micro)).backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        return (time.perf_counter() - start) / len(batches)

    run(True)
    run(False)   # warm-up
    ours, reference = [], []
    for _ in range(repeats):
        ours.append(run(True))
        reference.append(run(False))
    cfg = build_config(LoraTrainConfig, {
        "data": data, "output": os.path.join(work, "runs"), "profile": "tiny", "max_train_steps": steps,
        "checkpointing_steps": steps, "cache_dir": os.path.join(work, "cache")}, environ={})
    whole = run_train_lora(cfg)
    return {"rows": rows, "prompts": len(prompts.table), "steps": steps, "micro_batches_per_step": 4,
            "precomputed_s_per_step": min(ours), "reencoded_s_per_step": min(reference),
            "ratio_reencoded_over_precomputed": min(reference) / min(ours),
            "runs_precomputed": [round(x, 4) for x in ours], "runs_reencoded": [round(x, 4) for x in reference],
            "run_train_lora_s_per_step": float(whole.get("seconds_per_step"))}


def gpu_bench(steps: int, smoke: bool = False) -> dict[str, dict[str, float]]:
    import torch
    from diffusers import (
        AutoencoderKL,
        FlowMatchEulerDiscreteScheduler,
        FluxFillPipeline,
        FluxTransformer2DModel,
    )

    from generation.tiny_models import tiny_fluxfill_components
    from training.lora_model import add_lora, fill_inputs, flow_matching_loss

    device = "cpu" if smoke else "cuda"
    dtype = torch.float32 if smoke else torch.bfloat16
    size, text_len = (64, 32) if smoke else (1024, 512)
    out: dict[str, dict[str, float]] = {}
    for checkpointing in (False, True):
        if smoke:
            parts = tiny_fluxfill_components(0)
            transformer, vae = parts["transformer"], parts["vae"]
        else:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
            previous = torch.get_default_dtype()
            torch.set_default_dtype(dtype)
            with torch.device(device):
                transformer = FluxTransformer2DModel(**FLUX_FILL_TRANSFORMER)
                vae = AutoencoderKL(**FLUX_VAE)
            torch.set_default_dtype(previous)
        scheduler = FlowMatchEulerDiscreteScheduler(base_image_seq_len=256, base_shift=0.5, max_image_seq_len=4096,
                                                    max_shift=1.15, use_dynamic_shifting=True, shift=3.0)
        pipe = FluxFillPipeline(scheduler=scheduler, vae=vae.requires_grad_(False), text_encoder=None, tokenizer=None,
                                text_encoder_2=None, tokenizer_2=None, transformer=transformer.requires_grad_(False))
        add_lora(pipe.transformer, 128, 128.0, 0.0, TARGETS, 42)
        if checkpointing:
            pipe.transformer.enable_gradient_checkpointing()
        params = [p for p in pipe.transformer.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=1e-5, weight_decay=1e-2)
        generator = torch.Generator(device=device).manual_seed(0)
        cfg = pipe.transformer.config
        images = torch.rand(1, 3, size, size, device=device) * 2 - 1
        masks = (torch.rand(1, 1, size, size, device=device) > 0.5).float()
        embeds = torch.randn(1, text_len, cfg.joint_attention_dim, device=device, dtype=dtype)
        pooled = torch.randn(1, cfg.pooled_projection_dim, device=device, dtype=dtype)
        ids = torch.zeros(text_len, 3, device=device, dtype=dtype)
        autocast = torch.autocast("cuda", dtype=dtype) if not smoke else torch.autocast("cpu", enabled=False)
        times = []
        for i in range(steps + 1):
            if not smoke:
                torch.cuda.synchronize()
            start = time.perf_counter()
            kwargs, target = fill_inputs(pipe, images, masks, embeds, pooled, ids, 30.0, generator, dtype=dtype)
            with autocast:
                loss = flow_matching_loss(pipe.transformer, kwargs, target)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            if not smoke:
                torch.cuda.synchronize()
            if i:                       # the first step is a warm-up
                times.append(time.perf_counter() - start)
        peak = torch.cuda.max_memory_allocated() / 2**30 if not smoke else float("nan")
        out["checkpointing_on" if checkpointing else "checkpointing_off"] = {
            "s_per_step": sum(times) / len(times), "peak_vram_gib": peak, "trainable": sum(p.numel() for p in params)}
        del pipe, transformer, vae, optimizer, params
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--gpu", action="store_true", help="full-size architecture on CUDA, 1024 px")
    parser.add_argument("--gpu-smoke", action="store_true", help="the GPU code path on the tiny model on CPU")
    args = parser.parse_args()
    import logging

    logging.basicConfig(level=logging.WARNING)
    print(f"machine: {platform.machine()} {os.cpu_count()} CPU(s), python {platform.python_version()}")
    cpu = cpu_bench(args.steps, args.repeats)
    print(json.dumps(cpu, indent=1))
    print(f"tiny FluxFill, {cpu['micro_batches_per_step']} micro-batches per step: precomputed embeddings "
          f"{cpu['precomputed_s_per_step']:.4f} s/step, re-encoded every micro-batch {cpu['reencoded_s_per_step']:.4f} "
          f"s/step -> ratio re-encoded / precomputed {cpu['ratio_reencoded_over_precomputed']:.2f}x")
    if args.gpu or args.gpu_smoke:
        import torch

        if args.gpu and not torch.cuda.is_available():
            print("GPU part: not measured (no GPU)")
            return 0
        gpu = gpu_bench(max(2, args.steps // 2), smoke=args.gpu_smoke)
        print(json.dumps(gpu, indent=1))
        off, on = gpu["checkpointing_off"], gpu["checkpointing_on"]
        print(f"{'smoke (tiny, CPU)' if args.gpu_smoke else '1024 px FLUX.1-Fill LoRA'}: checkpointing off "
              f"{off['s_per_step']:.3f} s/step, {off['peak_vram_gib']:.1f} GiB; on {on['s_per_step']:.3f} s/step, "
              f"{on['peak_vram_gib']:.1f} GiB -> time on/off {on['s_per_step'] / off['s_per_step']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Stage 3's driving model, Alpamayo-R1 (our port, ``vla.alpamayo``): what one clip pair costs.

CPU part (tiny profile, the demo's model): one clip's original and edited input planned as one batch of 2
(what stage 3 does) against the reference, two sequential calls of one input each, with the same seed;
seconds per pair and the ratio, best of ``--repeats`` after a warm-up.

GPU part (``--gpu``): the full-size architecture with random weights in bf16 on CUDA: a Qwen3-VL-8B
backbone (36 layers x 4096, vision 27 blocks x 1152, 16-pixel patches merged 2x2), an expert over its KV
cache, 10 flow-matching steps, and 4 cameras x 4 frames of 1920x1080 resized by the processor to
163,840..196,608 pixels as upstream does. Random weights never end their reasoning, so each call samples
exactly ``--reasoning-tokens`` tokens (the released model's cap is 256; its chains of causation are usually
much shorter): prefill tokens per input, seconds per pair (batch of 2) against two sequential calls, peak
GPU memory. The expert's width (``EXPERT``) is an assumption: the released config.json (not readable here)
has the real one; the parameter count is printed. ``--gpu-smoke`` runs the GPU part's code on the CPU with
the same image sizes and token counts and a narrow model (checks the script; measures nothing).

Usage: .venv/bin/python bench/vla_model.py [--repeats 3] [--gpu | --gpu-smoke] [--reasoning-tokens 32,256]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from typing import Any

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# Qwen3-VL-8B-Instruct's text and vision dimensions (its public config.json)
TEXT_8B = {"hidden_size": 4096, "intermediate_size": 12288, "num_hidden_layers": 36, "num_attention_heads": 32,
           "num_key_value_heads": 8, "head_dim": 128, "mrope_section": [24, 20, 20]}
VISION_8B = {"depth": 27, "hidden_size": 1152, "intermediate_size": 4304, "num_heads": 16,
             "num_position_embeddings": 2304, "deepstack_visual_indexes": [8, 16, 24]}
# the expert keeps the backbone's layers, key/value heads and head_dim (it reads the backbone's KV cache);
# its width is assumed (about 2.6B parameters, so that the whole model is about 10B)
EXPERT = {"hidden_size": 2048, "intermediate_size": 8192}
# a narrow stand-in of the same layout for --gpu-smoke
TEXT_SMOKE = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
              "num_key_value_heads": 2, "head_dim": 16, "mrope_section": [4, 2, 2]}
VISION_SMOKE = {"depth": 2, "hidden_size": 32, "intermediate_size": 64, "num_heads": 2,
                "num_position_embeddings": 2304, "deepstack_visual_indexes": [0]}
EXPERT_SMOKE = {"hidden_size": 32, "intermediate_size": 64}
BASE_VOCAB = 151_936          # Qwen3-VL's embedding rows
FUTURE_BINS, HISTORY_BINS = 3000, 1000
MIN_PIXELS, MAX_PIXELS = 163_840, 196_608     # upstream's processor arguments
CAMERA_HW = (1080, 1920)


def _config(tokenizer: Any, smoke: bool) -> Any:
    from vla.alpamayo.config import AlpamayoR1Config
    from vla.alpamayo.tiny import tiny_config

    text, vision, expert = (TEXT_SMOKE, VISION_SMOKE, EXPERT_SMOKE) if smoke else (TEXT_8B, VISION_8B, EXPERT)
    config = tiny_config(tokenizer).to_dict()         # the released layout; the sizes are replaced below
    backbone = config["vlm_config"]
    vocab = max(len(tokenizer), BASE_VOCAB + FUTURE_BINS + HISTORY_BINS + 32)
    section = text["mrope_section"]
    backbone["text_config"].update({k: v for k, v in text.items() if k != "mrope_section"}, vocab_size=vocab)
    backbone["text_config"]["rope_parameters"]["mrope_section"] = section
    backbone["vision_config"].update(vision, out_hidden_size=text["hidden_size"])
    config.update(vocab_size=vocab, traj_vocab_size=FUTURE_BINS + HISTORY_BINS, expert_cfg=dict(expert),
                  model_dtype="float32" if smoke else "bfloat16", min_pixels=MIN_PIXELS, max_pixels=MAX_PIXELS)
    config["traj_tokenizer_cfg"]["num_bins"] = FUTURE_BINS
    config["hist_traj_tokenizer_cfg"]["num_bins"] = HISTORY_BINS
    config["action_in_proj_cfg"].update(num_enc_layers=4, hidden_size=1024 if not smoke else 32,
                                        num_fourier_feats=20)
    config["diffusion_cfg"]["num_inference_steps"] = 10
    for key in ("model_type", "transformers_version"):
        config.pop(key, None)
    return AlpamayoR1Config(**config)


def build(smoke: bool, device: str) -> tuple[Any, Any, Any]:
    """(model, processor, policy): the full-size (or smoke) architecture with random weights on ``device``."""
    import torch

    from core.device import DevicePolicy, resolve_device
    from core.tokenizers import qwen_image_processor_class, tiny_qwen_tokenizer
    from vla.alpamayo.model import AlpamayoR1
    from vla.alpamayo.processor import build_processor
    from vla.alpamayo.tokens import extend_tokenizer

    tokenizer = extend_tokenizer(tiny_qwen_tokenizer(), FUTURE_BINS + HISTORY_BINS, add_special_tokens=True)
    config = _config(tokenizer, smoke)
    config.traj_token_start_idx = int(tokenizer.convert_tokens_to_ids("<i0>"))
    policy = DevicePolicy("cpu", "float32", False) if smoke else resolve_device(device, "full")
    default = torch.get_default_dtype()
    torch.set_default_dtype(policy.dtype)
    try:
        with torch.device(policy.device):
            torch.manual_seed(0)
            model = AlpamayoR1(config).eval()
    finally:
        torch.set_default_dtype(default)
    image_processor = qwen_image_processor_class()(
        patch_size=16, merge_size=2, temporal_patch_size=2, min_pixels=MIN_PIXELS, max_pixels=MAX_PIXELS,
        image_mean=[0.5, 0.5, 0.5], image_std=[0.5, 0.5, 0.5])
    return model, build_processor(image_processor, tokenizer, None), policy


def _inputs(height: int, width: int, seed: int = 0) -> tuple[Any, Any]:
    """An original and an edited input of 4 cameras x 4 frames (noise; the edit changes the front camera)."""
    from vla.model_io import ModelInput

    rng = np.random.default_rng(seed)
    frames = rng.integers(0, 256, (4, 4, height, width, 3), dtype=np.uint8)
    edited = frames.copy()
    edited[1, :, height // 2:] = 255 - edited[1, :, height // 2:]
    t = np.arange(-15, 1) * 0.1
    xyz = np.stack([14.0 * t, np.zeros_like(t), np.zeros_like(t)], -1)
    rot = np.broadcast_to(np.eye(3), (16, 3, 3)).copy()
    cams = np.array([0, 1, 2, 6])
    return ModelInput(frames, cams, xyz, rot), ModelInput(edited, cams, xyz, rot)


def _best(fn, repeats: int, sync) -> float:
    fn()                                   # warm-up
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return min(times)


def pair_vs_sequential(predictor: Any, original: Any, edited: Any, repeats: int, sync) -> tuple[float, float]:
    """Seconds per clip pair: one batch of 2, and two sequential calls of 1 (the reference)."""
    batch = _best(lambda: predictor.predict([original, edited], seed=7), repeats, sync)
    sequential = _best(lambda: (predictor.predict([original], seed=7), predictor.predict([edited], seed=7)),
                       repeats, sync)
    return batch, sequential


def cpu_part(repeats: int) -> None:
    import torch

    from core.device import DevicePolicy
    from vla.alpamayo.loader import load_alpamayo
    from vla.alpamayo.predictor import AlpamayoPredictor

    torch.set_num_threads(max(1, (os.cpu_count() or 1)))
    policy = DevicePolicy("cpu", "float32", False)
    predictor = AlpamayoPredictor(load_alpamayo("tiny", "", policy), policy, num_samples=1, max_new_tokens=16)
    original, edited = _inputs(180, 320)
    batch, sequential = pair_vs_sequential(predictor, original, edited, repeats, lambda: None)
    print(f"CPU, tiny Alpamayo-R1 (the demo's model), 4 cameras x 4 frames of 320x180, 16 reasoning tokens, "
          f"best of {repeats}:")
    print(f"  one pair as a batch of 2 (ours):          {batch:7.3f} s")
    print(f"  two sequential calls (reference):         {sequential:7.3f} s")
    print(f"  ratio sequential / batch:                 {sequential / batch:7.2f}x")


def gpu_part(smoke: bool, lengths: list[int], repeats: int, device: str) -> None:
    import torch

    from vla.alpamayo.loader import LoadedAlpamayo
    from vla.alpamayo.predictor import AlpamayoPredictor
    from vla.alpamayo.processor import tokenize

    if not smoke and not torch.cuda.is_available():
        raise SystemExit("--gpu needs a CUDA GPU (--gpu-smoke runs the same code on the CPU)")
    start = time.perf_counter()
    model, processor, policy = build(smoke, device)
    cuda = policy.is_cuda
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    sync()
    params = sum(p.numel() for p in model.parameters())
    expert = sum(p.numel() for p in model.expert.parameters())
    name = torch.cuda.get_device_name() if cuda else "cpu (smoke: narrow model, not a measurement)"
    weights_gb = torch.cuda.memory_allocated() / 2**30 if cuda else 0.0
    print(f"GPU part on {name}: {params / 1e9:.2f}B parameters (expert {expert / 1e9:.2f}B), {policy.dtype_name}, "
          f"built in {time.perf_counter() - start:.1f}s, weights {weights_gb:.1f} GiB")
    original, edited = _inputs(*((CAMERA_HW[0] // 4, CAMERA_HW[1] // 4) if smoke else CAMERA_HW))
    tokenized = tokenize(processor, [original.frames.reshape(-1, *original.frames.shape[2:])])
    image_tokens = int((tokenized["input_ids"] == model.config.vlm_config["image_token_id"]).sum())
    print(f"  prefill: {tokenized['input_ids'].shape[1]} tokens per input ({image_tokens} image tokens for 16 "
          f"frames; the prompt's text from a stand-in tokenizer)")
    loaded = LoadedAlpamayo(model, processor, {"source": "random full-size architecture"})
    for tokens in lengths:
        predictor = AlpamayoPredictor(loaded, policy, num_samples=1, max_new_tokens=tokens)
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        batch, sequential = pair_vs_sequential(predictor, original, edited, repeats, sync)
        peak = torch.cuda.max_memory_allocated() / 2**30 if cuda else 0.0
        print(f"  {tokens:4d} reasoning tokens: {batch:7.3f} s per pair as a batch of 2, {sequential:7.3f} s as two "
              f"calls (reference) -> {sequential / batch:.2f}x; peak {peak:.1f} GiB")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3, help="timed repetitions after a warm-up (best reported)")
    parser.add_argument("--gpu", action="store_true", help="run the full-size GPU part")
    parser.add_argument("--gpu-smoke", action="store_true", help="run the GPU part's code on the CPU (narrow model)")
    parser.add_argument("--reasoning-tokens", default="32,256", help="GPU part: reasoning lengths, comma-separated")
    parser.add_argument("--device", default="cuda", help="GPU part: cuda or cuda:N")
    parser.add_argument("--skip-cpu", action="store_true", help="skip the CPU part")
    args = parser.parse_args(argv)
    import logging

    import transformers.utils.logging

    logging.basicConfig(level=logging.WARNING)
    transformers.utils.logging.set_verbosity_error()
    print(f"machine: {platform.platform()}, {os.cpu_count()} CPU(s), python {sys.version.split()[0]}")
    if not args.skip_cpu:
        cpu_part(args.repeats)
    if args.gpu or args.gpu_smoke:
        lengths = [int(v) for v in args.reasoning_tokens.split(",") if v.strip()]
        gpu_part(args.gpu_smoke, lengths, args.repeats, args.device)
    else:
        print("GPU part: not run (pass --gpu on a machine with a CUDA GPU)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

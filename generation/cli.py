"""``lanepaint edit``: repaint the lanes of a segmentation run's clips (FluxFill + VideoPainter).

Imports no torch at module top; the stage is imported inside ``run``. Every flag defaults to None
so the environment (``lanepaint env``, section ``edit``) can fill it.
"""

from __future__ import annotations

import argparse

from core.stage_cli import add_common_arguments, report


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common_arguments(parser)
    parser.add_argument("--data-run-id", default=None, help="segmentation run to edit (or DATA_RUN_ID)")
    parser.add_argument("--instructions", default=None,
                        help="instructions separated by '||' or new lines; 'lane <count> <color> <pattern>' "
                             "(single|double, white|yellow, solid|dashed) expands to a full instruction; "
                             "default: five built-in lane edits")
    parser.add_argument("--video-ids", default=None, help="comma-separated video ids (default: all videos)")
    g = parser.add_argument_group("video pass (CogVideoX-5b-I2V + VideoPainter)")
    g.add_argument("--num-inference-steps", type=int, default=None, help="diffusion steps (full 70, tiny 2)")
    g.add_argument("--guidance-scale", type=float, default=None, help="classifier-free guidance (6.0)")
    g.add_argument("--strength", type=float, default=None, help="denoising strength in (0, 1] (1.0)")
    g.add_argument("--seed", type=int, default=None, help="seed of both FluxFill and the video pass (42)")
    g.add_argument("--window-stride", type=int, default=None,
                   help="clips longer than 49 frames: frames between window starts (41)")
    g.add_argument("--max-frames", type=int, default=None, help="edit at most this many frames (0 = all)")
    g.add_argument("--id-lora-path", default=None,
                   help="VideoPainterID LoRA folder: ID resampling across windows of long clips")
    g.add_argument("--cog-model", default=None, help="CogVideoX I2V checkpoint (THUDM/CogVideoX-5b-I2V)")
    g.add_argument("--branch-model", default=None, help="VideoPainter branch repo or folder (TencentARC/VideoPainter)")
    g.add_argument("--branch-subfolder", default=None, help="subfolder of the branch (checkpoints/branch)")
    m = parser.add_argument_group("masks and first frame (FluxFill)")
    m.add_argument("--dilate-size", type=int, default=None, help="mask dilation kernel in pixels (24)")
    m.add_argument("--mask-feather", type=int, default=None, help="feathering width inside the mask in pixels (8)")
    m.add_argument("--keep-masked-pixels", default=None, metavar="BOOL",
                   help="paste back only the masked region of FluxFill's frame: true/false (true)")
    m.add_argument("--flux-guidance-scale", type=float, default=None, help="FluxFill guidance (30)")
    m.add_argument("--flux-num-inference-steps", type=int, default=None, help="FluxFill steps (full 50, tiny 2)")
    m.add_argument("--img-inpainting-lora-path", default=None, help="FluxFill LoRA file or folder")
    m.add_argument("--img-inpainting-lora-scale", type=float, default=None, help="FluxFill LoRA scale (0 = off)")
    m.add_argument("--flux-model", default=None, help="FluxFill checkpoint (black-forest-labs/FLUX.1-Fill-dev)")
    q = parser.add_argument_group("quality: Qwen2.5-VL judge loop and metrics")
    q.add_argument("--no-judge", dest="judge", action="store_const", const=False, default=None,
                   help="no judge: the instruction is FluxFill's caption, one attempt, verdict 'not judged' (VP_JUDGE=0)")
    q.add_argument("--qwen-model", "--llm-model-size", dest="qwen_model", default=None,
                   help="judge model: 7B or 72B (also 3B, 32B), a hub id or a local folder (LLM_MODEL_SIZE, 7B)")
    q.add_argument("--caption-refine-iters", type=int, default=None,
                   help="most FluxFill attempts the judge sees per video (10)")
    q.add_argument("--caption-refine-temperature", type=float, default=None,
                   help="Qwen sampling temperature for captions and verdicts, 0 = greedy (0.1)")
    q.add_argument("--compliance-frames", type=int, default=None,
                   help="frames of the edited clip the judge checks, 0 = no check (4)")
    q.add_argument("--unload-qwen-after-use", dest="unload_qwen_after_use", action="store_const", const=True,
                   default=None, help="free Qwen before each video pass (small GPUs; it reloads once per video)")
    q.add_argument("--qwen-vram-reserve-gib", type=float, default=None,
                   help="GiB of free GPU memory Qwen leaves for the other models when it loads (0 = all on its device)")
    q.add_argument("--no-metrics", dest="metrics", action="store_const", const=False, default=None,
                   help="skip the quality metrics and eval_<video_id>.txt/.json (VP_METRICS=0)")
    q.add_argument("--clip-score-model", default=None, help="CLIP for the CLIP score (openai/clip-vit-large-patch14)")
    q.add_argument("--clip-temporal-model", default=None,
                   help="CLIP for temporal consistency (openai/clip-vit-base-patch32)")
    d = parser.add_argument_group("devices")
    d.add_argument("--cog-device", default=None, help="video models: auto, cpu, cuda, cuda:N (VP_COG_DEVICE)")
    d.add_argument("--flux-device", default=None, help="FluxFill: auto, cpu, cuda, cuda:N (VP_FLUX_DEVICE)")
    d.add_argument("--qwen-device", default=None, help="Qwen2.5-VL judge: auto, cpu, cuda, cuda:N (VP_QWEN_DEVICE)")
    d.add_argument("--offload", choices=["auto", "never", "always"], default=None,
                   help="CPU offload: auto = only when the GPU cannot hold the models (VP_OFFLOAD)")


FIELDS = ("run_id", "output_root", "profile", "overwrite", "cache_dir", "data_run_id", "instructions", "video_ids",
          "num_inference_steps", "guidance_scale", "strength", "seed", "window_stride", "max_frames",
          "id_lora_path", "cog_model", "branch_model", "branch_subfolder", "dilate_size", "mask_feather",
          "keep_masked_pixels", "flux_guidance_scale", "flux_num_inference_steps", "img_inpainting_lora_path",
          "img_inpainting_lora_scale", "flux_model", "cog_device", "flux_device", "qwen_device", "offload",
          "judge", "qwen_model", "caption_refine_iters", "caption_refine_temperature", "compliance_frames",
          "unload_qwen_after_use", "qwen_vram_reserve_gib", "metrics", "clip_score_model", "clip_temporal_model")


def run(args: argparse.Namespace) -> int:
    from core.config import build_config
    from generation.config import EditConfig
    from generation.stage import run_edit

    cfg = build_config(EditConfig, "edit", {name: getattr(args, name) for name in FIELDS})
    return report(run_edit(cfg))

"""Stage 1 benchmarks: CPU pipeline speed, mask cleanup quality, and (on a GPU) SAM2 Hiera-L fps.

    .venv/bin/python bench/segmentation.py            # CPU parts (about a minute on 2 cores)
    .venv/bin/python bench/segmentation.py --gpu      # adds the Hiera-L parts 3 and 4 (CUDA needed)
    .venv/bin/python bench/segmentation.py --gpu-smoke  # part 4's code on the tiny model on the CPU

1. CPU, one 1280x720 synthetic clip: decode + cleanup + PNG mask writing per frame.
   ours: PyAV decode straight to arrays, cleanup and PNG writes in thread pools.
   reference (the seed's approach): frames extracted to JPEG files on disk, read back with OpenCV,
   masks cleaned one by one (each step on the full frame) and written one by one. With an ``ffmpeg`` binary the extraction is
   ``ffmpeg -q:v 2``; without one the JPEGs are written from PyAV-decoded frames with OpenCV
   (quality 95), which the output says. The masks to clean are the clip's ground truth with noise.
2. Cleanup quality: ground-truth road masks of synthetic clips with added holes, islands and
   sidewalk bridges; IoU against the ground truth before and after cleanup, per noise type.
3. GPU only: full-size SAM2.1 Hiera-L (random weights; speed does not depend on them) frames per
   second of our segmenter (arrays -> state) against upstream's recipe (JPEG folder + init_state).
4. GPU only: stage 1 end to end (decode .. every output written), ``run_segment`` pipelined over 4 clips of
   1920x1080, 150 frames each, against upstream's recipe per clip (JPEG folder, init_state, propagate, a PNG
   per mask).
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import cv2
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from core import videoio  # noqa: E402
from core.lanes import LaneSpec  # noqa: E402
from segmentation.cleanup import (  # noqa: E402
    clean_mask,
    clean_masks,
    close_mask,
    default_workers,
    fill_holes,
    iou,
    keep_road_component,
    open_mask,
)
from segmentation.outputs import write_mask_pngs  # noqa: E402
from synthetic.scenes import SceneSpec, render_scene, write_clip  # noqa: E402


# ---- noise models ----------------------------------------------------------------------------------
def add_holes(mask: np.ndarray, rng: np.random.Generator, count: int = 8) -> np.ndarray:
    out = mask.copy()
    ys, xs = np.nonzero(mask)
    h, w = mask.shape
    for _ in range(count if len(ys) else 0):
        k = rng.integers(len(ys))
        axes = (int(rng.integers(w // 160, w // 50) + 1), int(rng.integers(h // 120, h // 45) + 1))
        cv2.ellipse(out.view(np.uint8), (int(xs[k]), int(ys[k])), axes, 0, 0, 360, 0, -1)
    return out


def add_islands(mask: np.ndarray, rng: np.random.Generator, count: int = 8) -> np.ndarray:
    out = mask.copy()
    h, w = mask.shape
    for _ in range(count):
        x, y = int(rng.integers(0, w)), int(rng.integers(0, int(h * 0.7)))
        if mask[y, x]:
            continue
        axes = (int(rng.integers(w // 200, w // 60) + 1), int(rng.integers(h // 150, h // 60) + 1))
        cv2.ellipse(out.view(np.uint8), (x, y), axes, 0, 0, 360, 1, -1)
    return out


def add_sidewalk_bridges(mask: np.ndarray, rng: np.random.Generator, count: int = 2) -> np.ndarray:
    """A sidewalk patch beside the road (clear of it), joined to it only by a thin (3-5 px) bridge."""
    out = mask.copy()
    h, w = mask.shape
    rows = np.nonzero(mask.any(axis=1))[0]
    for _ in range(count if len(rows) else 0):
        y = int(rng.integers(rows[len(rows) // 3], rows[-1]))
        patch_w, patch_h = w // 12, h // 16
        ya, yb = max(0, y - patch_h), min(h, y + patch_h)
        band = np.nonzero(mask[ya:yb].any(axis=0))[0]
        right = bool(rng.integers(2))
        gap = int(rng.integers(w // 60, w // 25))
        if right:
            x0, x1 = min(w, int(band[-1]) + gap), min(w, int(band[-1]) + gap + patch_w)
        else:
            x0, x1 = max(0, int(band[0]) - gap - patch_w), max(0, int(band[0]) - gap)
        if x1 - x0 < 4:
            continue
        out[ya:yb, x0:x1] = True
        cols = np.nonzero(mask[y])[0]
        edge = int(cols[-1] if right else cols[0])
        bx0, bx1 = (edge, x0) if right else (x1 - 1, edge)
        out[y:y + int(rng.integers(3, 6)), bx0:bx1 + 1] = True
    return out


NOISES = {
    "holes": lambda m, r: add_holes(m, r),
    "islands": lambda m, r: add_islands(m, r),
    "sidewalk bridges": lambda m, r: add_sidewalk_bridges(m, r),
    "all three": lambda m, r: add_sidewalk_bridges(add_islands(add_holes(m, r), r), r),
}


# ---- 1. CPU pipeline ----------------------------------------------------------------------------------
def seed_cleanup(mask: np.ndarray) -> np.ndarray:
    """The straightforward per-frame cleanup (each step on the full frame), as the seed ran it.
    Same output as ``clean_mask`` (tests/test_segmentation_cleanup.py checks that)."""
    return fill_holes(close_mask(keep_road_component(open_mask(mask)))).astype(bool)


def reference_pipeline(video: str, noisy: np.ndarray, work: str) -> dict[str, float]:
    """The seed's approach: JPEGs on disk, read back with OpenCV, masks cleaned and written one by one."""
    jpg_dir, mask_dir = os.path.join(work, "jpg"), os.path.join(work, "ref_masks")
    os.makedirs(jpg_dir)
    os.makedirs(mask_dir)
    phases = dict.fromkeys(("extract JPEGs", "read JPEGs", "clean", "write PNGs"), 0.0)
    t0 = time.perf_counter()
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg:
        subprocess.run([ffmpeg, "-v", "error", "-i", video, "-q:v", "2", "-start_number", "0",
                        os.path.join(jpg_dir, "%05d.jpg")], check=True)
    else:
        for t, frame in enumerate(videoio.iter_frames(video, fps=None)):
            cv2.imwrite(os.path.join(jpg_dir, f"{t:05d}.jpg"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR),
                        [cv2.IMWRITE_JPEG_QUALITY, 95])
    phases["extract JPEGs"] = time.perf_counter() - t0
    for t, name in enumerate(sorted(os.listdir(jpg_dir))):
        t0 = time.perf_counter()
        frame = cv2.cvtColor(cv2.imread(os.path.join(jpg_dir, name)), cv2.COLOR_BGR2RGB)
        t1 = time.perf_counter()
        assert frame.shape[:2] == noisy[t].shape
        cleaned = seed_cleanup(noisy[t])
        t2 = time.perf_counter()
        cv2.imwrite(os.path.join(mask_dir, f"{t:05d}.png"), cleaned.astype(np.uint8) * 255)
        t3 = time.perf_counter()
        phases["read JPEGs"] += t1 - t0
        phases["clean"] += t2 - t1
        phases["write PNGs"] += t3 - t2
    return phases


def our_pipeline(video: str, noisy: np.ndarray, work: str, workers: int) -> dict[str, float]:
    """What the stage runs: PyAV decode to arrays, thread-pool cleanup, thread-pool PNG writes."""
    t0 = time.perf_counter()
    frames = videoio.decode(video, fps=None)
    t1 = time.perf_counter()
    assert frames.shape[:3] == noisy.shape
    cleaned = clean_masks(noisy, workers)
    t2 = time.perf_counter()
    write_mask_pngs(os.path.join(work, "masks"), cleaned, workers)
    t3 = time.perf_counter()
    return {"decode": t1 - t0, "clean": t2 - t1, "write PNGs": t3 - t2}


def bench_cpu(seconds: float, repeats: int, workers: int) -> dict[str, float]:
    spec = SceneSpec(width=1280, height=720, fps=8.0, seconds=seconds, seed=1,
                     lanes=LaneSpec.parse("double yellow dashed"))
    runs: dict[str, list[dict[str, float]]] = {"reference": [], "ours": []}
    with tempfile.TemporaryDirectory(prefix="lanepaint-bench-") as tmp:
        clip = write_clip(spec, tmp, name="bench_clip_1280x720")
        gt = np.load(clip.masks_path)["arr_0"].astype(bool)
        rng = np.random.default_rng(0)
        noisy = np.stack([NOISES["all three"](m, rng) for m in gt])
        for k in range(repeats):  # alternate, so both see the same machine load
            for name in ("reference", "ours"):
                work = tempfile.mkdtemp(dir=tmp, prefix=f"{name}{k}-")
                phases = reference_pipeline(clip.video_path, noisy, work) if name == "reference" else \
                    our_pipeline(clip.video_path, noisy, work, workers)
                runs[name].append(phases)
                shutil.rmtree(work)
    n = len(gt)
    total = {name: statistics.median(sum(p.values()) for p in r) / n for name, r in runs.items()}
    extraction = "ffmpeg -q:v 2" if shutil.which("ffmpeg") else "no ffmpeg binary: PyAV decode + OpenCV JPEG q95"
    print(f"\n1. CPU decode + cleanup + PNG write, 1280x720, {n} frames, median of {repeats} runs (workers={workers})")
    for name, label in (("reference", f"reference, the seed's approach ({extraction} to disk, cv2.imread, "
                                      "per-frame full-frame cleanup, PNGs one by one)"),
                        ("ours", "ours (PyAV to arrays, thread-pool bounding-box cleanup + PNGs)")):
        parts = {k: statistics.median(p[k] for p in runs[name]) / n * 1000 for k in runs[name][0]}
        print(f"   {label}: {total[name] * 1000:.1f} ms/frame")
        print("      " + ", ".join(f"{k} {v:.1f}" for k, v in parts.items()))
    ratio = total["reference"] / total["ours"]
    print(f"   ratio: ours is {ratio:.2f}x faster (goal >= 3x)")
    return {"ref_ms": total["reference"] * 1000, "ours_ms": total["ours"] * 1000, "ratio": ratio}


# ---- 2. cleanup quality --------------------------------------------------------------------------------
def bench_quality(frames_per_clip: int) -> None:
    clips = [SceneSpec(width=1280, height=720, fps=8.0, seconds=frames_per_clip / 8.0, seed=s,
                       lanes=LaneSpec.parse(lanes), curve=curve)
             for s, lanes, curve in ((0, "single white solid", 0.0006), (1, "double yellow dashed", -0.0008),
                                     (2, "single yellow dashed", 0.0))]
    gts = [render_scene(spec)[1] for spec in clips]
    print(f"\n2. Cleanup quality: IoU vs ground truth, {len(clips)} synthetic clips x {frames_per_clip} frames, 1280x720")
    print(f"   {'noise':<18} {'before':>8} {'after':>8}")
    for name, noise in NOISES.items():
        rng = np.random.default_rng(1)
        before, after = [], []
        for gt in gts:
            noisy = np.stack([noise(m, rng) for m in gt])
            cleaned = clean_masks(noisy)
            before += [iou(n, g) for n, g in zip(noisy, gt, strict=True)]
            after += [iou(c, g) for c, g in zip(cleaned, gt, strict=True)]
        print(f"   {name:<18} {np.mean(before):8.4f} {np.mean(after):8.4f}")
    clean_only = [iou(clean_mask(m), m) for gt in gts for m in gt]
    print(f"   {'none (clean GT)':<18} {1.0:8.4f} {np.mean(clean_only):8.4f}")


def upstream_recipe(predictor, policy, frames: np.ndarray, jpeg_dir: str, png_dir: str | None = None) -> None:
    """Upstream SAM2's video recipe: the frames as a JPEG folder, ``init_state`` on it, one prompt on frame 0,
    ``propagate_in_video``; with ``png_dir`` each mask written as a PNG as it comes."""
    import torch

    from segmentation.prompts import get_strategy

    for t, frame in enumerate(frames):
        cv2.imwrite(os.path.join(jpeg_dir, f"{t:05d}.jpg"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    with torch.inference_mode(), policy.autocast():
        state = predictor.init_state(jpeg_dir)
        prompt = get_strategy("points6").prompt_for(frames[0])
        predictor.add_new_points_or_box(state, 0, 1, points=prompt.points, labels=prompt.labels)
        for t, _ids, logits in predictor.propagate_in_video(state):
            if png_dir is not None:
                cv2.imwrite(os.path.join(png_dir, f"{t:05d}.png"), (logits[0, 0] > 0).cpu().numpy().astype(np.uint8) * 255)


def random_hiera_large(device: str, image_mode: bool = False):
    """SAM2.1 Hiera-L (the video predictor, or the plain model) with random weights: speed does not depend on them."""
    from sam2.build_sam import build_sam2, build_sam2_video_predictor

    from segmentation.config import MODEL_CONFIGS

    build = build_sam2 if image_mode else build_sam2_video_predictor
    return build(MODEL_CONFIGS["large"], ckpt_path=None, device=device)


# ---- 3. GPU: Hiera-L fps ------------------------------------------------------------------------------
def bench_gpu(frames: int) -> None:
    try:
        import torch
    except ImportError:
        torch = None
    if torch is None or not torch.cuda.is_available():
        print("\n3. GPU SAM2.1 Hiera-L fps: not measured (no GPU)")
        return

    from core.device import resolve_device
    from segmentation.config import SegmentConfig
    from segmentation.sam2_model import LoadedPredictor, RoadSegmenter

    policy = resolve_device("cuda", "full")
    torch.manual_seed(0)
    predictor = random_hiera_large(policy.device)
    video, _ = render_scene(SceneSpec(width=1280, height=720, fps=8.0, seconds=frames / 8.0, seed=0))
    segmenter = RoadSegmenter(LoadedPredictor(predictor, policy, {}), SegmentConfig(window=0))
    segmenter.segment(video[:4])  # warm-up
    torch.cuda.synchronize()
    start = time.perf_counter()
    segmenter.segment(video)
    torch.cuda.synchronize()
    ours = len(video) / (time.perf_counter() - start)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        upstream_recipe(predictor, policy, video, tmp)
        torch.cuda.synchronize()
        upstream = len(video) / (time.perf_counter() - start)
    print(f"\n3. GPU SAM2.1 Hiera-L (random weights), {len(video)} frames 1280x720 on {policy.describe()}")
    print(f"   upstream recipe (JPEG folder + init_state): {upstream:6.1f} fps")
    print(f"   ours (arrays -> state):                     {ours:6.1f} fps   ratio {ours / upstream:.2f}x")


# ---- 4. end to end: decode .. write, ours (the pipelined stage) against upstream's JPEG-folder recipe -----
def bench_end_to_end(clips: int, seconds: float, size: tuple[int, int], smoke: bool) -> None:
    """Frames per second of ``run_segment`` (fetch, decode, SAM2, cleanup, PNGs, tinted video, hand-off;
    pipelined) against upstream's recipe per clip (frames to a JPEG folder, ``init_state``, one prompt,
    ``propagate_in_video``, one PNG per mask): SAM2.1 Hiera-L with random weights on the GPU, or with
    ``smoke`` the tiny model on the CPU (checks the code; measures nothing)."""
    import torch

    import segmentation.sam2_model as sam2_model
    from core.config import build_config
    from core.device import resolve_device
    from segmentation.config import SegmentConfig
    from segmentation.stage import run_segment

    if not smoke and not torch.cuda.is_available():
        print("\n4. GPU stage 1 end to end: not measured (no GPU)")
        return
    device = "cpu" if smoke else "cuda"
    width, height = size
    frames_per_clip = int(round(seconds * 10))

    def random_large(cfg, policy, image_mode):   # the stage's full loader, with random weights
        return random_hiera_large(policy.device, image_mode), {"name": "SAM2.1 Hiera-L (random weights)",
                                                               "source": "random"}

    if not smoke:
        sam2_model._load_full = random_large
    with tempfile.TemporaryDirectory() as tmp:
        videos = [write_clip(SceneSpec(width=width, height=height, fps=10.0, seconds=seconds, seed=k), tmp,
                             name=f"clip_{k}.camera_front_wide_120fov").video_path for k in range(clips)]
        settings = {"inputs": tuple(videos), "profile": "tiny" if smoke else "full", "device": device, "fps": 10.0,
                    "max_frames": frames_per_clip, "plan_moment": False, "window": 0}
        run_segment(build_config(SegmentConfig, {**settings, "inputs": tuple(videos[:1]), "run_id": "warmup",
                                                 "output_root": f"{tmp}/warm"}, environ={}))
        start = time.perf_counter()
        result = run_segment(build_config(SegmentConfig, {**settings, "run_id": "ours", "output_root": f"{tmp}/out"},
                                          environ={}))
        ours_s = time.perf_counter() - start
        assert len(result.ok) == clips, result.failed
        cfg = build_config(SegmentConfig, {**settings, "run_id": "x", "output_root": f"{tmp}/x"}, environ={})
        policy = resolve_device(device, cfg.profile)
        predictor = sam2_model.load_predictor(cfg, policy).predictor
        start = time.perf_counter()
        for k, path in enumerate(videos):
            frames = videoio.decode(path, fps=10.0, max_frames=frames_per_clip)
            jpegs, pngs = os.path.join(tmp, f"jpg{k}"), os.path.join(tmp, f"png{k}")
            os.makedirs(jpegs)
            os.makedirs(pngs)
            upstream_recipe(predictor, policy, frames, jpegs, pngs)
        if device == "cuda":
            torch.cuda.synchronize()
        upstream_s = time.perf_counter() - start
    total = clips * frames_per_clip
    what = "tiny SAM2 on the CPU (smoke: not a measurement)" if smoke else f"SAM2.1 Hiera-L on {policy.describe()}"
    print(f"\n4. Stage 1 end to end, {clips} clips x {frames_per_clip} frames {width}x{height}, {what}")
    print(f"   upstream recipe (JPEG folder, init_state, PNG per mask): {total / upstream_s:7.1f} fps")
    print(f"   ours (run_segment, pipelined, every output):             {total / ours_s:7.1f} fps   "
          f"ratio {upstream_s / ours_s:.2f}x   (goal on an H100: >= 60 fps)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=6.25, help="length of the 1280x720 clip (8 fps)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--workers", type=int, default=0, help="threads for our pipeline (0: CPUs, max 8)")
    parser.add_argument("--quality-frames", type=int, default=8)
    parser.add_argument("--gpu", action="store_true", help="also run the Hiera-L comparison (CUDA)")
    parser.add_argument("--gpu-frames", type=int, default=64)
    parser.add_argument("--gpu-smoke", action="store_true",
                        help="only the end-to-end part's code, on the tiny model on the CPU (measures nothing)")
    parser.add_argument("--e2e-clips", type=int, default=4, help="end to end: clips (15 s at 10 fps each)")
    parser.add_argument("--e2e-size", default="1920x1080", help="end to end: clip size WxH")
    args = parser.parse_args()
    print(f"lanepaint stage 1 bench: {platform.machine()} {os.cpu_count()} CPU(s), python {platform.python_version()}, "
          f"opencv {cv2.__version__}")
    if args.gpu_smoke:
        bench_end_to_end(2, 1.2, (128, 80), smoke=True)
        return
    bench_cpu(args.seconds, args.repeats, default_workers(args.workers))
    bench_quality(args.quality_frames)
    if args.gpu:
        bench_gpu(args.gpu_frames)
        width, height = (int(v) for v in args.e2e_size.lower().split("x"))
        bench_end_to_end(args.e2e_clips, 15.0, (width, height), smoke=False)
    else:
        print("\n3. GPU SAM2.1 Hiera-L fps: not run (pass --gpu on a CUDA machine)")
        print("4. GPU stage 1 end to end: not run (pass --gpu on a CUDA machine)")


if __name__ == "__main__":
    main()

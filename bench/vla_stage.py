"""Stage 3 on CPU: where a video's time goes, against named reference approaches measured in the same run.

1. Camera frames for t0: our at-or-before seek (``physical_ai_av``'s ``SeekVideoReader`` decoding
   only the 4 frames' GOPs) vs the reference "decode the whole camera clip and index it".
2. One video end to end: tiny Alpamayo-R1 and the constant-velocity baseline (decode, dataset, inference, render).
3. Overlay + comparison encode: x264 preset ``veryfast`` (ours) vs the x264 default ``medium``
   (reference), both CRF 18 yuv420p, at 1280x720 panels.

Usage: .venv/bin/python bench/vla_stage.py [--width 640 --height 360 --fps 30]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import sys
import tempfile
import time
import zipfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from core import storage, videoio  # noqa: E402
from core.layout import Layout  # noqa: E402
from synthetic.av_dataset import FRONT_CAMERA, AVDatasetSpec, write_av_dataset  # noqa: E402


def _best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=360)
    parser.add_argument("--fps", type=float, default=30.0, help="dataset camera rate (PhysicalAI-AV: 30)")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    work = tempfile.mkdtemp(prefix="bench-vla-")
    start = time.perf_counter()
    spec = AVDatasetSpec(clips=1, fps=args.fps, width=args.width, height=args.height)
    av = write_av_dataset(spec, os.path.join(work, "hf"), os.path.join(work, "in"))
    print(f"dataset: 1 clip, 4 cameras, {args.width}x{args.height} front at {args.fps:g} fps, "
          f"{spec.duration_s:.1f} s (written in {time.perf_counter() - start:.1f}s)")

    from core.moment import plan_moment
    from vla.driving_data import DrivingData, at_or_before

    data = DrivingData(av.cache_dir)
    clip = av.clips[0]
    reader = data.avdi.get_clip_feature(clip.clip_id, FRONT_CAMERA)
    video_id = f"{clip.clip_id}.{FRONT_CAMERA}"
    moment = plan_moment(videoio.probe(clip.input_video).last_frame_s, 10.0)   # as stage 1 plans it
    t0 = int(reader.timestamps[0]) + int(round(moment.t0_s * 1e6))
    idx = at_or_before(reader.timestamps, t0 - 100_000 * np.arange(3, -1, -1), clip.clip_id, FRONT_CAMERA)
    chunk = data.avdi.features.get_chunk_feature_filename(clip.chunk, FRONT_CAMERA)
    with data.avdi.open_file(chunk) as fh, zipfile.ZipFile(fh) as zf:
        mp4 = zf.read(f"{clip.clip_id}.{FRONT_CAMERA}.mp4")

    def ours():
        reader.decode_images_from_frame_indices(idx)

    def reference():
        import av as pyav

        with pyav.open(io.BytesIO(mp4)) as container:
            frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
        return [frames[i] for i in idx]

    t_ours, t_ref = _best(ours, args.repeat), _best(reference, args.repeat)
    print(f"[1] 4 frames of one camera: seek {t_ours * 1000:.1f} ms vs full decode {t_ref * 1000:.1f} ms "
          f"(reference) -> {t_ref / t_ours:.1f}x")

    from vla import visdata
    from vla.render import comparison_frames, overlay_frames

    root = os.path.join(work, "out")
    uri = Layout(root).vp_edit_video("b1", "lane_double_yellow_solid", video_id)
    with storage.atomic_path(uri) as tmp:
        videoio.encode(videoio.decode_times(clip.input_video, moment.frame_times()), tmp, fps=moment.fps)
    storage.write_text(uri[:-4] + ".json", json.dumps({"instruction": "bench", "moment": moment.as_dict()}))
    from vla.config import EvaluateConfig
    from vla.stage import run_evaluate

    result = run_evaluate(EvaluateConfig(video_data=Layout(root).vp_run("b1"), run_id="b1", output_root=root,
                                         profile="tiny", dataset_dir=av.cache_dir))
    record = storage.read_text(Layout(root).alpamayo_file("b1", "lane_double_yellow_solid",
                                                         f"{clip.clip_id}.{FRONT_CAMERA}", "_inference.json"))
    timings = json.loads(storage.read_text(result.manifest_uri))["items"]
    (item,) = timings.values()
    phases = " ".join(f"{k}={v:.2f}s" for k, v in item["timings"].items())
    print(f"[2] one video end to end (tiny Alpamayo-R1 and the baseline, 4 cameras, render on): {item['seconds']:.2f}s  {phases}; "
          f"minADE {json.loads(record)['min_ade_meters']:.3f} m")

    vis = visdata.load(Layout(root).alpamayo_file("b1", "lane_double_yellow_solid",
                                                  f"{clip.clip_id}.{FRONT_CAMERA}", "_vis_data.npz"))
    import cv2

    big = np.stack([np.stack([cv2.resize(f.transpose(1, 2, 0), (1280, 720)).transpose(2, 0, 1) for f in cam])
                    for cam in vis.image_frames])
    vis = visdata.VisData(**{**vis.__dict__, "image_frames": big, "original_frames": big[1]})
    frames = overlay_frames(vis), comparison_frames(vis)
    sizes = {}

    def encode(preset):
        def run():
            total = 0
            for k, seq in enumerate(frames):
                path = os.path.join(work, f"{preset}{k}.mp4")
                videoio.encode(seq, path, fps=10, crf=18, preset=preset)
                total += os.path.getsize(path)
            sizes[preset] = total
        return run

    t_fast = _best(encode("veryfast"), max(1, args.repeat - 1))
    t_medium = _best(encode("medium"), max(1, args.repeat - 1))
    print(f"[3] overlay+comparison encode ({len(frames[0])} frames, 1280x720 and 2564x720): veryfast "
          f"{t_fast:.2f}s ({sizes['veryfast'] / 1e6:.2f} MB) vs medium {t_medium:.2f}s "
          f"({sizes['medium'] / 1e6:.2f} MB, reference) -> {t_medium / t_fast:.1f}x")
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

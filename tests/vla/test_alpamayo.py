"""Alpamayo-R1 adapter: runs only where ``alpamayo_r1`` is installed and a CUDA GPU is present (VLA image).

The checkpoint comes from ALPAMAYO_MODEL_PATH (a local folder or hub id; default nvidia/Alpamayo-R1-10B).
"""

import json

import numpy as np
import pytest

pytest.importorskip("alpamayo_r1")
pytest.importorskip("physical_ai_av")

import os  # noqa: E402

from core import storage, videoio  # noqa: E402
from core.layout import Layout  # noqa: E402
from synthetic.av_dataset import FRONT_CAMERA, AVDatasetSpec, write_av_dataset  # noqa: E402
from vla.config import DEFAULT_MODEL_PATH, EvaluateConfig  # noqa: E402
from vla.stage import run_evaluate  # noqa: E402


@pytest.mark.gpu
@pytest.mark.slow
def test_alpamayo_dual_inference_on_the_synthetic_fixture(tmp_path):
    av = write_av_dataset(AVDatasetSpec(clips=1, input_seconds=2.0, width=320, height=192),
                          str(tmp_path / "hf"), str(tmp_path / "inputs"))
    clip = av.clips[0]
    video_id = f"{clip.clip_id}.{FRONT_CAMERA}"
    root = str(tmp_path / "out")
    uri = Layout(root).vp_edit_video("g1", "lane_double_yellow_solid", video_id)
    with storage.atomic_path(uri) as tmp:
        videoio.encode(videoio.decode(clip.input_video, fps=8)[:16], tmp, fps=8)
    cfg = EvaluateConfig(video_data=Layout(root).vp_run("g1"), run_id="g1", output_root=root, model="alpamayo",
                         model_path=os.environ.get("ALPAMAYO_MODEL_PATH") or DEFAULT_MODEL_PATH, num_traj_samples=2,
                         dataset_dir=av.cache_dir)
    result = run_evaluate(cfg)
    assert result.exit_code == 0, result.failed
    record = json.loads(storage.read_text(Layout(root).alpamayo_file("g1", "lane_double_yellow_solid", video_id,
                                                                     "_inference.json")))
    assert record["num_trajectories"] == 2 and len(record["reasoning_traces"]) == 2
    assert all(isinstance(t, str) and t for t in record["reasoning_traces"])
    assert record["metrics"]["gpu_memory_peak_gb"] > 1.0
    assert np.isfinite(record["min_ade_meters"]) and np.isfinite(record["original_min_ade_meters"])

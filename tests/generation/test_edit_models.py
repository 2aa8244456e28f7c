"""The memory plan: which pipelines stay resident on the GPU and which fall back to CPU offload."""

from generation.edit_models import PipelineNeed, plan_placement

GB = 1024 ** 3
VIDEO = PipelineNeed("video", "cuda:0", 22 * GB, 11 * GB)          # CogVideoX-5b-I2V + T5-XXL + branch
FLUX = PipelineNeed("first-frame", "cuda:0", 34 * GB, 24 * GB)     # FLUX.1-Fill + T5-XXL + CLIP


def test_everything_resident_when_the_gpu_holds_weights_and_reserve():
    offload, lines = plan_placement([VIDEO, FLUX], {"cuda:0": 79 * GB}, 20 * GB)
    assert offload == {"video": False, "first-frame": False}
    assert "video resident, first-frame resident" in lines[0] and "fits" in lines[0]


def test_largest_pipeline_is_offloaded_first_and_only_as_needed():
    offload, _ = plan_placement([VIDEO, FLUX], {"cuda:0": 70 * GB}, 20 * GB)
    assert offload == {"video": False, "first-frame": True}            # 22 + 24 + 20 <= 70 < 22 + 34 + 20
    offload, lines = plan_placement([VIDEO, FLUX], {"cuda:0": 40 * GB}, 20 * GB)
    assert offload == {"video": True, "first-frame": True}
    assert "MAY NOT FIT" in lines[0]                                  # 11 + 24 + 20 > 40


def test_modes_and_devices():
    offload, _ = plan_placement([VIDEO, FLUX], {"cuda:0": 200 * GB}, 0, mode="always")
    assert all(offload.values())
    offload, _ = plan_placement([VIDEO, FLUX], {"cuda:0": 1 * GB}, 0, mode="never")
    assert not any(offload.values())
    split = [VIDEO, PipelineNeed("first-frame", "cuda:1", 34 * GB, 24 * GB)]
    offload, lines = plan_placement(split, {"cuda:0": 40 * GB, "cuda:1": 40 * GB}, 5 * GB)
    assert offload == {"video": False, "first-frame": False} and len(lines) == 2
    cpu = [PipelineNeed("video", "cpu", GB, GB)]
    offload, lines = plan_placement(cpu, {}, 20 * GB)
    assert offload == {"video": False} and lines == ["cpu: video 1.00 GB: resident"]
    assert plan_placement([PipelineNeed("video", "cpu", 3 * 2**20, 2**20)], {}, 0)[1] == ["cpu: video 3.0 MB: resident"]

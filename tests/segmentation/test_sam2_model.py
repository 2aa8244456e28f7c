"""The SAM2 wrapper with the tiny profile (seeded random weights, CPU): state from arrays, prompts,
directions, windows."""

import numpy as np
import pytest
from PIL import Image

torch = pytest.importorskip("torch")
pytest.importorskip("sam2")

from core.device import resolve_device  # noqa: E402
from segmentation import sam2_model  # noqa: E402
from segmentation.config import SegmentConfig  # noqa: E402
from segmentation.sam2_model import (  # noqa: E402
    TINY_IMAGE_SIZE,
    init_state_from_frames,
    load_segmenter,
)
from synthetic.scenes import SceneSpec, render_scene  # noqa: E402


@pytest.fixture(scope="module")
def clip():
    frames, _ = render_scene(SceneSpec(width=128, height=80, fps=8, seconds=1.5, seed=2))
    return frames  # 12 frames


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def segmenter():
    return load_segmenter(SegmentConfig(profile="tiny"), resolve_device("cpu", "tiny"))


def _with(segmenter, **options):
    """The same loaded model with other prompt/direction/window options."""
    cfg = SegmentConfig(profile="tiny", **options)
    return sam2_model.RoadSegmenter(segmenter.loaded, cfg)


def test_tiny_profile_is_small_seeded_and_in_eval_mode(segmenter):
    desc = segmenter.loaded.description
    assert desc["image_size"] == TINY_IMAGE_SIZE and desc["parameters"] < 10_000_000
    assert desc["profile"] == "tiny" and desc["seed"] == 4 and "float32" in desc["device"]
    assert not segmenter.predictor.training
    again = load_segmenter(SegmentConfig(profile="tiny"), resolve_device("cpu", "tiny"))
    for a, b in zip(segmenter.predictor.parameters(), again.predictor.parameters(), strict=True):
        assert torch.equal(a, b)


@pytest.mark.filterwarnings("ignore:cannot import name '_C'")
def test_state_from_arrays_matches_sam2s_own_loader(segmenter, clip, tmp_path):
    """sam2's init_state on a folder of the same frames (saved losslessly under <i>.jpg names, which
    PIL opens by content) must hold the same images, sizes and tables as our state."""
    frames = clip[:4]
    for i, frame in enumerate(frames):
        Image.fromarray(frame).save(tmp_path / f"{i}.jpg", format="PNG")
    predictor = segmenter.predictor
    theirs = predictor.init_state(str(tmp_path), offload_video_to_cpu=True)
    ours = init_state_from_frames(predictor, frames, offload_video_to_cpu=True)
    assert set(ours) == set(theirs)
    for key in ("num_frames", "video_height", "video_width", "offload_video_to_cpu", "offload_state_to_cpu",
                "device", "storage_device"):
        assert ours[key] == theirs[key], key
    assert (ours["video_height"], ours["video_width"]) == (80, 128)
    our_images = torch.stack([ours["images"][i] for i in range(len(frames))])
    assert our_images.dtype == torch.float32 and our_images.shape == theirs["images"].shape == (4, 3, 64, 64)
    torch.testing.assert_close(our_images, theirs["images"], rtol=0, atol=1e-6)

    # and the predictor gives the same masks on both states
    points = np.array([[64.0, 68.0], [40.0, 60.0]], np.float32)
    outs = []
    for state in (theirs, ours):
        predictor.add_new_points_or_box(state, 0, 1, points=points, labels=np.ones(2, np.int32))
        outs.append([(logits[0, 0] > 0).numpy() for _, _, logits in predictor.propagate_in_video(state)])
    assert len(outs[1]) == 4 and all(np.array_equal(a, b) for a, b in zip(*outs, strict=True))


def test_state_rejects_bad_frames(segmenter):
    with pytest.raises(ValueError, match="uint8"):
        init_state_from_frames(segmenter.predictor, np.zeros((2, 8, 8, 3), np.float32))


def test_segment_gives_video_sized_boolean_masks_restores_threads(segmenter, clip):
    from core.device import torch_threads

    with torch_threads(2):
        masks = segmenter.segment(clip)
        assert torch.get_num_threads() == 2   # the segmenter ran with one thread and restored ours
    assert masks.shape == clip.shape[:3] and masks.dtype == bool
    assert masks.any(axis=(1, 2)).all()   # the seeded tiny model gives a non-empty mask on every frame
    assert np.array_equal(segmenter.segment(clip), masks)   # deterministic


def _spy(monkeypatch, segmenter):
    calls = {"state_frames": [], "masks": [], "points": []}
    real_state = sam2_model.init_state_from_frames

    def state_spy(predictor, frames, *args, **kwargs):
        calls["state_frames"].append(len(frames))
        return real_state(predictor, frames, *args, **kwargs)

    predictor = segmenter.predictor
    real_mask, real_points = predictor.add_new_mask, predictor.add_new_points_or_box

    def mask_spy(state, frame_idx, obj_id, mask):
        calls["masks"].append((frame_idx, np.array(mask)))
        return real_mask(state, frame_idx, obj_id, mask)

    def points_spy(state, frame_idx, obj_id, **kwargs):
        calls["points"].append((state["num_frames"], frame_idx, kwargs.get("box") is not None))
        return real_points(state, frame_idx, obj_id, **kwargs)

    monkeypatch.setattr(sam2_model, "init_state_from_frames", state_spy)
    monkeypatch.setattr(predictor, "add_new_mask", mask_spy)
    monkeypatch.setattr(predictor, "add_new_points_or_box", points_spy)
    return calls


def test_windows_bound_the_state_and_reseed_from_the_previous_mask(monkeypatch, segmenter, clip):
    seg = _with(segmenter, window=5)
    calls = _spy(monkeypatch, segmenter)
    masks = seg.segment(clip)                       # 12 frames: windows [0,5) [4,9) [8,12)
    assert calls["state_frames"] == [5, 5, 4]
    assert calls["points"] == [(5, 0, False)]       # prompted once, on frame 0
    assert [f for f, _ in calls["masks"]] == [0, 0]  # later windows seeded on their first frame...
    assert np.array_equal(calls["masks"][0][1], masks[4])   # ...with the mask of the shared frame
    assert np.array_equal(calls["masks"][1][1], masks[8])
    assert masks.shape == clip.shape[:3] and masks.any(axis=(1, 2)).all()


def test_backward_windows_and_reprompts(monkeypatch, segmenter, clip):
    seg = _with(segmenter, window=7, direction="backward", reprompt_every=4, prompt="box")
    calls = _spy(monkeypatch, segmenter)
    masks = seg.segment(clip)                       # windows [5,12) then [0,6); prompts at 11, 7, 3
    assert calls["state_frames"] == [7, 6]
    # first window: frame 11 (local 6) then the re-prompt at 7 (local 2); second: re-prompt at 3
    assert calls["points"] == [(7, 6, True), (7, 2, True), (6, 3, True)]
    assert [f for f, _ in calls["masks"]] == [5]    # seeded on its last frame (global 5, shared)
    assert np.array_equal(calls["masks"][0][1], masks[5])
    assert masks.any(axis=(1, 2)).all()


def test_one_window_equals_no_window(segmenter, clip):
    assert np.array_equal(_with(segmenter, window=0).segment(clip), _with(segmenter, window=12).segment(clip))


def test_a_segmentation_asked_to_stop_stops_at_the_next_frame(segmenter, clip):
    asked = []

    def stop_after_three():
        asked.append(1)
        return len(asked) > 3

    with pytest.raises(sam2_model.SegmentationStopped, match="segmentation stopped at frame 3 of 12"):
        segmenter.segment(clip, should_stop=stop_after_three)
    assert len(asked) == 4


def test_model_input_made_ahead_gives_the_same_masks_and_a_wrong_one_is_an_error(segmenter, clip):
    seg = _with(segmenter, window=5)                # windows slice the squares as they slice the frames
    square = seg.model_input(clip)
    assert square.shape == (12, segmenter.predictor.image_size, segmenter.predictor.image_size, 3)
    assert np.array_equal(seg.segment(clip, square), seg.segment(clip))
    with pytest.raises(ValueError, match="model input .* does not match 5 frames"):
        seg.segment(clip, square[:, :8])


@pytest.mark.gpu
@pytest.mark.parametrize("offload_video, offload_state", [(True, False), (False, True)])
def test_tiny_on_gpu_under_autocast_with_offload_options(clip, offload_video, offload_state):
    cfg = SegmentConfig(profile="tiny", device="cuda", window=5, offload_video_to_cpu=offload_video,
                        offload_state_to_cpu=offload_state)
    seg = load_segmenter(cfg, resolve_device("cuda", "tiny"))
    assert seg.policy.is_cuda and seg.loaded.description["device"].startswith("cuda")
    masks = seg.segment(clip)
    assert masks.shape == clip.shape[:3] and masks.dtype == bool

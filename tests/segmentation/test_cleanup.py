"""Stage 1 pieces without torch: mask cleanup steps, stats, prompts, windows, config, video ids."""

import numpy as np
import pytest

from core.errors import UsageError
from segmentation.cleanup import (
    LOW_COVERAGE,
    clean_mask,
    clean_masks,
    close_mask,
    fill_holes,
    iou,
    keep_road_component,
    mask_stats,
    open_mask,
    reference_pixel,
)
from segmentation.config import SegmentConfig, edit_command
from segmentation.prompts import (
    POINTS6,
    STRATEGIES,
    Prompt,
    get_strategy,
    plan_windows,
    prompt_frames,
)
from segmentation.stage import plan_items
from synthetic.scenes import SceneSpec, render_scene

H, W = 60, 80


def _road() -> np.ndarray:
    """A trapezoid-ish road: bottom 40 rows, columns 10..69."""
    m = np.zeros((H, W), np.uint8)
    m[20:, 10:70] = 1
    return m


# ---- cleanup steps on hand-made masks -------------------------------------------------------------
def test_opening_removes_specks_and_thin_bridges_keeps_body():
    m = _road()
    m[5:8, 5:8] = 1            # 3x3 speck
    m[10:20, 40:42] = 1        # 2-px wide bridge up from the road
    out = open_mask(m)
    assert out.dtype == np.uint8 and set(np.unique(out)) <= {0, 1}
    assert out[5:8, 5:8].sum() == 0 and out[10:18, 40:42].sum() == 0
    assert out[30:55, 20:60].all()      # interior untouched


def test_keep_component_at_reference_point():
    m = np.zeros((H, W), np.uint8)
    x, y = reference_pixel(H, W)
    assert (x, y) == (40, 51)
    m[45:58, 30:50] = 1            # small blob under the reference point
    m[0:30, 0:80] = 1              # larger blob elsewhere
    out = keep_road_component(m)
    assert out[y, x] == 1 and out[0:30].sum() == 0 and out.sum() == 13 * 20


def test_keep_largest_when_reference_point_is_not_road():
    m = np.zeros((H, W), np.uint8)
    m[0:10, 0:10] = 1              # 100 px
    m[20:30, 50:75] = 1            # 250 px, not under the reference point
    out = keep_road_component(m)
    assert out.sum() == 250 and out[25, 60] == 1
    assert keep_road_component(np.zeros((H, W), np.uint8)).sum() == 0


def test_keep_component_uses_8_connectivity():
    m = np.zeros((H, W), np.uint8)
    x, y = reference_pixel(H, W)
    m[y, x] = m[y - 1, x - 1] = m[y - 2, x - 2] = 1     # diagonal chain
    assert keep_road_component(m).sum() == 3


def test_closing_bridges_gaps():
    m = _road()
    m[20:, 38:42] = 0              # a 4-px gap (a lane marking the model missed)
    out = close_mask(m)
    assert out[30:55, 38:42].all()


def test_fill_holes_fills_interior_but_not_border_notches():
    m = _road()
    m[35:45, 30:40] = 0            # interior hole
    m[50:60, 12:16] = 0            # notch open to the bottom border
    out = fill_holes(m)
    assert out[35:45, 30:40].all()
    assert out[50:60, 12:16].sum() == 0  # reachable from the border: stays background
    assert out.sum() == _road().sum() - 40


def test_clean_mask_pipeline_and_thread_pool_agree():
    gt = _road().astype(bool)
    noisy = gt.copy()
    noisy[30:33, 30:33] = False        # hole
    noisy[2:6, 2:6] = True             # island
    noisy[5:20, 60:61] = True          # 1-px bridge
    cleaned = clean_mask(noisy)
    assert cleaned.dtype == bool
    assert iou(cleaned, gt) > iou(noisy, gt) and iou(cleaned, gt) > 0.97
    stack = np.stack([noisy, gt, np.zeros_like(gt)])
    out = clean_masks(stack, workers=2)
    assert out.shape == stack.shape and out.dtype == bool
    assert np.array_equal(out[0], cleaned) and np.array_equal(out[1], clean_mask(gt)) and not out[2].any()
    assert np.array_equal(clean_masks(stack, workers=1), out)


def test_cleanup_accepts_0_255_masks():
    m = _road() * 255
    assert np.array_equal(clean_mask(m), clean_mask(_road().astype(bool)))


def test_stats_coverage_iou_and_flags():
    a = np.zeros((4, 10, 10), bool)
    a[0, :5] = True                    # 50%
    a[1, :5] = True                    # 50%, IoU 1 with frame 0
    a[2, :5, :5] = True                # 25%, IoU 0.5
    stats = mask_stats(a)              # frame 3 empty: flagged
    assert stats.coverage == (0.5, 0.5, 0.25, 0.0)
    assert stats.consecutive_iou == (1.0, 0.5, 0.0)
    assert stats.low_coverage_frames == (3,)
    summary = stats.as_dict()
    assert summary["low_coverage_threshold"] == LOW_COVERAGE and summary["min_consecutive_iou"] == 0.0
    assert iou(np.zeros((2, 2), bool), np.zeros((2, 2), bool)) == 1.0


def test_cleanup_improves_noisy_synthetic_ground_truth():
    _, gt = render_scene(SceneSpec(width=160, height=96, fps=8, seconds=0.25, seed=3))
    rng = np.random.default_rng(0)
    noisy = gt.copy()
    for t in range(len(gt)):
        for _ in range(6):             # holes inside the road, islands in the sky/verge
            y, x = rng.integers(60, 90), rng.integers(40, 120)
            noisy[t, y:y + 3, x:x + 3] = False
            y, x = rng.integers(0, 30), rng.integers(0, 150)
            noisy[t, y:y + 4, x:x + 4] = True
    cleaned = clean_masks(noisy)
    before = np.mean([iou(n, g) for n, g in zip(noisy, gt, strict=True)])
    after = np.mean([iou(c, g) for c, g in zip(cleaned, gt, strict=True)])
    assert after > before and after > 0.97


# ---- prompts and schedules --------------------------------------------------------------------------
def test_default_prompt_is_the_six_issue_points_in_pixels():
    frame = np.zeros((101, 201, 3), np.uint8)
    p = get_strategy("points6").prompt_for(frame)
    assert p.points.shape == (6, 2) and p.box is None and p.labels.tolist() == [1] * 6
    assert np.allclose(p.points, np.array(POINTS6) * [200, 100])
    assert p.points[0].tolist() == [100.0, 85.0]


def test_nine_point_and_box_strategies():
    frame = np.zeros((100, 200, 3), np.uint8)
    nine = get_strategy("points9").prompt_for(frame)
    assert nine.points.shape == (9, 2) and (nine.points[:, 1] >= 0.5 * 99).all()
    box = get_strategy("box").prompt_for(frame)
    x0, y0, x1, y1 = box.box
    assert x0 < x1 and y0 < y1 and y0 >= 50 and y1 == 99
    assert box.points.shape == (1, 2)
    assert set(STRATEGIES) == {"points6", "points9", "box"}
    with pytest.raises(UsageError, match="unknown prompt strategy"):
        get_strategy("clicks")
    with pytest.raises(ValueError):
        Prompt()


@pytest.mark.parametrize("n, every, direction, expected", [
    (10, 0, "forward", [0]),
    (10, 4, "forward", [0, 4, 8]),
    (10, 0, "backward", [9]),
    (10, 4, "backward", [9, 5, 1]),
    (1, 3, "forward", [0]),
    (0, 3, "forward", []),
])
def test_prompt_frames(n, every, direction, expected):
    assert prompt_frames(n, every, direction) == expected


@pytest.mark.parametrize("n, window, direction, expected", [
    (10, 0, "forward", [(0, 10)]),
    (10, 10, "forward", [(0, 10)]),
    (10, 4, "forward", [(0, 4), (3, 7), (6, 10)]),
    (11, 4, "forward", [(0, 4), (3, 7), (6, 10), (9, 11)]),
    (10, 4, "backward", [(6, 10), (3, 7), (0, 4)]),
    (5, 2, "forward", [(0, 2), (1, 3), (2, 4), (3, 5)]),
])
def test_windows_share_one_frame_and_cover_the_clip(n, window, direction, expected):
    spans = plan_windows(n, window, direction)
    assert spans == expected
    covered = set().union(*(range(s, e) for s, e in spans))
    assert covered == set(range(n)) and all(e - s <= max(window, n if window == 0 else window) for s, e in spans)


# ---- config, ids, next command --------------------------------------------------------------------
@pytest.mark.parametrize("kwargs, message", [
    ({"run_id": "../up"}, "invalid run id"),
    ({"run_id": "a b"}, "invalid run id"),
    ({"output_root": " "}, "--output-root must not be empty"),
    ({"max_frames": 0}, "--max-frames must be >= 1"),
    ({"fps": 0}, r"--fps 0: must be in \(0, 120\]"),
    ({"fps": 1e9}, r"--fps 1e\+09: must be in \(0, 120\]"),       # defect: 150 copies of frame 0, "ready"
    ({"fps": float("inf")}, r"--fps inf: must be in"),              # defect: OverflowError in every item
    ({"fps": float("nan")}, r"--fps nan: must be in"),
    ({"window": 1}, "window"),
    ({"reprompt_every": -1}, "--reprompt-every must be >= 0"),
    ({"prompt": "clicks"}, "--prompt 'clicks': use one of points6"),
    ({"direction": "sideways"}, "direction"),
    ({"profile": "tiny", "vos_optimized": True}, "--vos-optimized"),
    ({"model_config": "configs/x.yaml"}, "--checkpoint"),
    ({"device": "tpu"}, "device"),
])
def test_config_rejects_bad_values(kwargs, message):
    with pytest.raises(UsageError, match=message):
        SegmentConfig(**kwargs)


def test_config_from_env_and_cli():
    from core.config import build_config

    cfg = build_config(SegmentConfig, {"fps": 5.0},
                       environ={"SAM2_MAX_FRAMES": "40", "SAM2_PROMPT": "box", "SAM2_WINDOW": "0", "SAM2_FPS": "2"})
    assert (cfg.max_frames, cfg.prompt, cfg.window, cfg.fps) == (40, "box", 0, 5.0)
    assert SegmentConfig().max_frames == 150 and SegmentConfig().fps == 8.0


def test_edit_command_quotes_values():
    assert edit_command("r1", "out dir", "tiny") == "lanepaint edit --data-run-id r1 --output-root 'out dir' --profile tiny"


def test_video_ids_from_file_stems():
    items = plan_items(["gs://b/chunk_0001/clip.camera_front_wide_120fov.mp4", "/a/clip_0001.mp4",
                        "/b/clip_0001.mp4", "/c/bad name.mp4", "/d/abc.mp4"])
    assert [i.video_id for i in items[:2]] == ["clip.camera_front_wide_120fov", "clip_0001"]
    assert [i.error is None for i in items] == [True, True, False, False, False]
    assert "VideoPainter's layout needs at least 4 characters" in items[4].error
    items = items[1:]
    assert "duplicate video id 'clip_0001'" in items[1].error and items[1].item_id == "/b/clip_0001.mp4"
    assert items[2].error.startswith("invalid video id") and items[2].item_id == "/c/bad name.mp4"


def test_bounding_box_shortcut_equals_the_full_frame_steps():
    rng = np.random.default_rng(5)
    masks = [_road(), np.zeros((H, W), np.uint8), np.ones((H, W), np.uint8)]
    m = np.zeros((H, W), np.uint8)
    m[2:20, 3:30] = 1                 # reference point outside the box: largest component
    m[10:14, 40:44] = 1
    masks.append(m)
    for _ in range(12):               # random blobs, some touching the borders
        m = np.zeros((H, W), np.uint8)
        for _ in range(int(rng.integers(1, 6))):
            y, x = int(rng.integers(0, H)), int(rng.integers(0, W))
            m[max(0, y - 12):y + 12, max(0, x - 15):x + 15] = 1
        m[rng.random((H, W)) < 0.05] ^= 1
        masks.append(m)
    for m in masks:
        full = fill_holes(close_mask(keep_road_component(open_mask(m)))).astype(bool)
        assert np.array_equal(clean_mask(m), full)

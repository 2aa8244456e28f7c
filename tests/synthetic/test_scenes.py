import json
import os

import numpy as np
import pytest

from core import videoio
from core.errors import UsageError
from core.lanes import LaneSpec
from orchestrator.cli import main
from synthetic.scenes import SceneSpec, render_scene


def test_cli_writes_clip_and_masks_that_decode_at_8fps(tmp_path, capsys):
    out = tmp_path / "synth"
    code = main(["synth", "--out", str(out), "--lanes", "double yellow solid", "--seconds", "3", "--fps", "10",
                 "--width", "320", "--height", "180"])
    assert code == 0
    video = out / "synth_double_yellow_solid_s0.mp4"
    masks = np.load(out / "synth_double_yellow_solid_s0_masks.npz", allow_pickle=False)["arr_0"]
    meta = json.loads((out / "synth_double_yellow_solid_s0.json").read_text())
    assert masks.shape == (30, 180, 320) and masks.dtype == np.uint8 and set(np.unique(masks)) == {0, 1}
    assert meta["lanes"] == {"count": "double", "color": "yellow", "pattern": "solid"}
    frames = videoio.decode(str(video), fps=8)
    assert frames.shape == (24, 180, 320, 3)
    assert str(video) in capsys.readouterr().out


def test_deterministic_by_seed():
    spec = SceneSpec(width=96, height=64, fps=5, seconds=1, seed=7)
    f1, m1 = render_scene(spec)
    f2, m2 = render_scene(spec)
    f3, _ = render_scene(SceneSpec(width=96, height=64, fps=5, seconds=1, seed=8))
    assert np.array_equal(f1, f2) and np.array_equal(m1, m2)
    assert not np.array_equal(f1, f3)


def _paint_pixels(frame: np.ndarray, mask: np.ndarray, rgb) -> np.ndarray:
    close = np.abs(frame.astype(int) - np.array(rgb)).sum(-1) < 40
    return close & mask


@pytest.mark.parametrize("color, rgb", [("white", (236, 236, 230)), ("yellow", (232, 186, 42))])
def test_marking_colour(color, rgb):
    frames, masks = render_scene(SceneSpec(width=320, height=180, fps=5, seconds=0.2, lighting=0.0,
                                           lanes=LaneSpec("single", color, "solid")))
    assert _paint_pixels(frames[0], masks[0], rgb).sum() > 50


def test_dashes_move_and_solid_lines_do_not_break():
    common = dict(width=320, height=180, fps=10, seconds=1, lighting=0.0, shake_px=0.0, curve=0.0)
    dashed, masks = render_scene(SceneSpec(lanes=LaneSpec("single", "white", "dashed"), **common))
    solid, _ = render_scene(SceneSpec(lanes=LaneSpec("single", "white", "solid"), **common))
    white = (236, 236, 230)
    rows_dashed = [_paint_pixels(f, m, white).any(axis=1) for f, m in zip(dashed, masks, strict=False)]
    rows_solid = _paint_pixels(solid[0], masks[0], white).any(axis=1)
    road_rows = masks[0].any(axis=1)
    assert rows_solid[road_rows].mean() > 0.9             # a solid line covers nearly every road row
    assert 0.05 < rows_dashed[0][road_rows].mean() < 0.7  # a dashed one only some rows
    assert not np.array_equal(rows_dashed[0], rows_dashed[5])  # and the dashes move with ego speed


def test_double_has_two_lines():
    frames, masks = render_scene(SceneSpec(width=640, height=360, fps=5, seconds=0.2, lighting=0.0,
                                           lanes=LaneSpec("double", "white", "solid")))
    row = _paint_pixels(frames[0], masks[0], (236, 236, 230))[340]
    runs = np.flatnonzero(np.diff(row.astype(int)) == 1)
    assert len(runs) == 2


def test_mask_is_the_road_in_the_lower_half():
    _, masks = render_scene(SceneSpec(width=160, height=96, fps=5, seconds=0.2))
    m = masks[0]
    assert not m[: int(0.4 * 96)].any()
    assert m[-1, 80]                      # the road is under the camera
    assert 0.1 < m.mean() < 0.5


@pytest.mark.parametrize("text", ["double yellow solid", "lane solid yellow double", "dashed"])
def test_lane_spec_parse(text):
    spec = LaneSpec.parse(text)
    assert set(spec.words().split()) >= set(w for w in text.split() if w != "lane")


@pytest.mark.parametrize("text, message", [("triple white solid", "unknown word 'triple'"),
                                           ("single double", "count given twice"), ("", "empty")])
def test_lane_spec_errors(text, message):
    with pytest.raises(UsageError, match=message):
        LaneSpec.parse(text)


def test_cli_usage_errors_exit_2(tmp_path, capsys):
    assert main(["synth", "--out", str(tmp_path), "--lanes", "purple"]) == 2
    assert "unknown word 'purple'" in capsys.readouterr().err
    assert not os.listdir(tmp_path)

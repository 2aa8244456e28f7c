"""Stage 3 pieces against hand-computed values: minADE, statistics, projection, baseline, vis data, render CLI."""

import math

import numpy as np
import pytest

from core import videoio
from core.edited_clips import parse_video_id
from core.errors import LanepaintError, UsageError
from orchestrator.cli import main
from synthetic.av_dataset import EgoArc
from vla import visdata
from vla.baseline import ctrv_rollout, yaw_matrices, yaw_of
from vla.config import EvaluateConfig
from vla.metrics import bootstrap_ci, min_ade, paired_delta_stats, sign_flip_p_value
from vla.render import focal_length, project_points


# ---- minADE -----------------------------------------------------------------------------------------
def test_min_ade_takes_the_best_sample_of_mean_xy_error():
    gt = np.stack([np.arange(64.0), np.zeros(64), np.zeros(64)], axis=-1)
    far = gt + np.array([3.0, 4.0, 0.0])          # 5 m off at every waypoint
    near = gt + np.array([0.0, 1.0, 7.0])         # 1 m off in XY; z must not count
    assert min_ade(np.stack([far, near]), gt) == pytest.approx(1.0)
    assert min_ade(far, gt) == pytest.approx(5.0)
    ramp = gt.copy()
    ramp[:, 1] = np.arange(64.0)                  # lateral error 0..63 -> mean 31.5
    assert min_ade(ramp[None], gt) == pytest.approx(31.5)
    with pytest.raises(ValueError, match="do not match"):
        min_ade(np.zeros((1, 10, 3)), gt)


# ---- statistics -------------------------------------------------------------------------------------
def test_bootstrap_interval_of_two_values_is_their_range():
    # resampled means of [0, 1] are 0, 0.5, 1 with p = 1/4, 1/2, 1/4: 2.5% -> 0 and 97.5% -> 1
    assert bootstrap_ci(np.array([0.0, 1.0]), samples=20000, seed=3) == (0.0, 1.0)
    assert bootstrap_ci(np.array([0.7, 0.7, 0.7]), samples=500) == pytest.approx((0.7, 0.7))


def test_sign_flip_p_values_by_hand():
    # [1, 2, 3]: of the 8 sign patterns only +++ and --- reach |mean| = 2 -> p = 2/8
    assert sign_flip_p_value(np.array([1.0, 2.0, 3.0]))[0] == pytest.approx(0.25)
    # [1, 2, 3, 4]: only ++++ and ---- reach |sum| = 10 -> 2/16
    p, how = sign_flip_p_value(np.array([1.0, 2.0, 3.0, 4.0]))
    assert p == pytest.approx(0.125) and how.startswith("exact (16")
    # [1, -1]: the observed mean is 0, every pattern reaches it
    assert sign_flip_p_value(np.array([1.0, -1.0]))[0] == 1.0
    assert sign_flip_p_value(np.zeros(5))[0] == 1.0
    # n = 20 > 16: Monte Carlo, (1 + hits) / (1 + draws); only all-equal signs reach the observed mean
    p, how = sign_flip_p_value(np.ones(20), samples=999, seed=1)
    assert how == "monte carlo (999 draws)" and p == pytest.approx(1 / 1000, abs=2 / 1000)


def test_paired_delta_stats():
    stats = paired_delta_stats(np.array([1.5, 2.0, 4.0]), np.array([0.5, 0.0, 1.0]), bootstrap_samples=2000)
    assert (stats.n, stats.mean, stats.median) == (3, pytest.approx(2.0), pytest.approx(2.0))
    assert stats.p_value == pytest.approx(0.25)   # deltas [1, 2, 3]
    assert 1.0 <= stats.ci_low <= stats.mean <= stats.ci_high <= 3.0
    with pytest.raises(ValueError):
        paired_delta_stats(np.array([1.0]), np.array([1.0, 2.0]))


# ---- projection -------------------------------------------------------------------------------------
def test_projection_by_hand():
    f = 640 / math.tan(math.radians(60))            # 1280 px wide, 120 degree FOV
    assert focal_length(1280, 120) == pytest.approx(f)
    pts = np.array([[10.0, 0.0, 0.0],    # straight ahead on the ground, camera 1.5 m up
                    [10.0, 2.0, 0.0],    # 2 m to the left
                    [10.0, 0.0, 1.5],    # at camera height: on the horizon
                    [0.4, 0.0, 0.0],     # z_cam = 0.4 <= 0.5: dropped
                    [-5.0, 0.0, 0.0]])   # behind: dropped
    uv, ok = project_points(pts, "camera_front_wide_120fov", 1280, 720)
    assert ok.tolist() == [True, True, True, False, False]
    assert uv[0] == pytest.approx([640.0, 360.0 + f * 0.15])
    assert uv[1] == pytest.approx([640.0 - f * 0.2, 360.0 + f * 0.15])
    assert uv[2] == pytest.approx([640.0, 360.0])
    # a left-looking camera (yaw +90): a point 10 m to the left is centred, forward goes right
    uv, ok = project_points(np.array([[0.0, 10.0, 1.5], [1.0, 10.0, 1.5]]), "camera_cross_left_120fov", 1280, 720)
    assert ok.all() and uv[0] == pytest.approx([640.0, 360.0]) and uv[1][0] == pytest.approx(640.0 + f * 0.1)
    # a 30 degree tele camera: f = 640 / tan(15 deg)
    uv, _ = project_points(np.array([[20.0, 1.0, 1.5]]), "camera_front_tele_30fov", 1280, 720)
    assert uv[0][0] == pytest.approx(640.0 - 640 / math.tan(math.radians(15)) / 20)


# ---- baseline ---------------------------------------------------------------------------------------
def test_ctrv_straight_history_continues_the_line():
    t = np.arange(-15, 1) * 0.1
    hist = np.stack([10.0 * t, np.zeros(16), np.zeros(16)], axis=-1)
    xyz, rot = ctrv_rollout(hist, yaw_matrices(np.zeros(16)))
    assert xyz.shape == (64, 3) and rot.shape == (64, 3, 3)
    assert np.allclose(xyz[:, 0], np.arange(1, 65) * 1.0) and np.allclose(xyz[:, 1:], 0.0)


def test_ctrv_reproduces_a_constant_curvature_arc():
    ego = EgoArc(speed_mps=12.0, kappa=-0.004)
    t0 = 5.0
    hist_xyz, hist_yaw = ego.in_frame_at(t0, t0 + np.arange(-15, 1) * 0.1)
    gt_xyz, gt_yaw = ego.in_frame_at(t0, t0 + np.arange(1, 65) * 0.1)
    xyz, rot = ctrv_rollout(hist_xyz, yaw_matrices(hist_yaw))
    assert min_ade(xyz, gt_xyz) < 1e-3
    assert np.allclose(yaw_of(rot), gt_yaw, atol=1e-4)
    assert gt_xyz[-1, 1] < -5.0    # the arc turns right: the test is not about a straight line


# ---- names and config ----------------------------------------------------------------------------
def test_video_id_parsing():
    assert parse_video_id("abc-1.camera_front_wide_120fov") == ("abc-1", "camera_front_wide_120fov")
    with pytest.raises(LanepaintError, match="does not parse"):
        parse_video_id("nodot")
    with pytest.raises(LanepaintError, match="does not parse"):
        parse_video_id("a.b.camera_front_wide_120fov")
    with pytest.raises(LanepaintError, match="unknown camera 'camera_bogus_99fov'"):
        parse_video_id("clip.camera_bogus_99fov")


def test_config_validation_and_model_choice():
    cfg = EvaluateConfig(video_data="x", profile="tiny")
    assert cfg.resolved_model == "alpamayo" and cfg.max_generation_length == 16
    assert EvaluateConfig(video_data="x").max_generation_length == 256
    assert EvaluateConfig(video_data="x", model="constant-velocity").resolved_model == "constant-velocity"
    with pytest.raises(UsageError, match="num-traj-samples"):
        EvaluateConfig(video_data="x", num_traj_samples=0)
    with pytest.raises(UsageError, match="cameras"):
        EvaluateConfig(video_data="x", cameras=("front",))
    with pytest.raises(UsageError, match="video-data"):
        EvaluateConfig()
    assert cfg.wants("c.cam", "c", "c.cam_vp_edit_sample0.mp4")
    assert EvaluateConfig(video_data="x", video_name="c, d").wants("c.cam", "c", "f")
    assert not EvaluateConfig(video_data="x", video_name="d").wants("c.cam", "c", "f")


def test_an_uncached_checkpoint_offline_is_one_line(tmp_path, monkeypatch):
    """No alpamayo_r1 package is needed; an offline node without the checkpoint gets a one-line error."""
    from vla.models import load_model

    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(LanepaintError) as err:
        load_model("alpamayo", profile="full", model_path="nvidia/Alpamayo-R1-10B", num_traj_samples=1,
                   device="cpu", offline=True)
    assert "cannot read the Alpamayo-R1 config of nvidia/Alpamayo-R1-10B" in str(err.value)
    assert "\n" not in str(err.value)


# ---- vis data and rendering --------------------------------------------------------------------------
def _vis(height=48, width=64) -> visdata.VisData:
    rng = np.random.default_rng(0)
    gt = np.stack([np.arange(1, 65) * 1.2, np.linspace(0, -3, 64), np.zeros(64)], axis=-1)
    pred = np.stack([gt + [0, 1.0, 0], gt + [0, -1.0, 0]])
    rot = np.broadcast_to(np.eye(3), (64, 3, 3)).copy()
    hist = np.stack([np.arange(-15, 1) * 1.2, np.zeros(16), np.zeros(16)], axis=-1)
    frames = rng.integers(0, 255, size=(2, 4, 3, height, width), dtype=np.uint8)
    return visdata.VisData(
        pred_xyz=pred, pred_rot=np.stack([rot, rot]), gt_future_xyz=gt, gt_future_rot=rot,
        ego_history_xyz=hist, ego_history_rot=np.broadcast_to(np.eye(3), (16, 3, 3)).copy(),
        image_frames=frames, camera_indices=np.array([1, 6]), original_pred_xyz=pred[:1],
        original_pred_rot=np.stack([rot]), original_frames=frames[0], edited_camera_index=1,
        min_ade=1.0, original_min_ade=1.0, t0_us=6_200_000, frame_fps=8.0, clip_id="clip-a",
        camera_name="camera_front_wide_120fov", video_id="clip-a.camera_front_wide_120fov")


def test_vis_data_round_trip_without_pickle(tmp_path):
    path = str(tmp_path / "v_vis_data.npz")
    visdata.save(_vis(), path)
    with np.load(path, allow_pickle=False) as npz:
        assert npz["pred_xyz"].shape == (2, 64, 3) and npz["image_frames"].shape == (2, 4, 3, 48, 64)
        assert str(npz["camera_name"]) == "camera_front_wide_120fov"
    back = visdata.load(path)
    assert back.clip_id == "clip-a" and back.t0_us == 6_200_000 and back.edited_frames().shape == (4, 48, 64, 3)
    (tmp_path / "bad_vis_data.npz").write_bytes(b"not an npz")
    with pytest.raises(LanepaintError, match="bad_vis_data.npz: unreadable npz"):
        visdata.load(str(tmp_path / "bad_vis_data.npz"))


def test_render_cli_one_file_and_a_folder(tmp_path, capsys):
    good = tmp_path / "runs" / "a" / "clip-a.camera_front_wide_120fov_vis_data.npz"
    good.parent.mkdir(parents=True)
    visdata.save(_vis(), str(good))
    assert main(["render", str(good), "--fps", "8"]) == 0
    overlay = tmp_path / "runs" / "a" / "clip-a.camera_front_wide_120fov_overlay.mp4"
    comparison = tmp_path / "runs" / "a" / "clip-a.camera_front_wide_120fov_comparison.mp4"
    o, c = videoio.decode(str(overlay), fps=None), videoio.decode(str(comparison), fps=None)
    # 4 context frames, 32 reveal frames, 1 s hold; small frames are drawn at 480 px high
    assert o.shape == (4 + 32 + 8, 480, 640, 3) and c.shape == (44, 480, 2 * 640 + 4, 3)
    red = (o[..., 0] > 180) & (o[..., 1] < 90) & (o[..., 2] < 90)
    assert red[3].sum() < red[-1].sum()                  # the ground truth appears during the reveal
    assert videoio.probe(str(overlay)).fps == pytest.approx(8.0)
    # a folder: the good file is done (skipped), a broken one fails alone with one line
    (tmp_path / "runs" / "b").mkdir()
    (tmp_path / "runs" / "b" / "x_vis_data.npz").write_bytes(b"junk")
    capsys.readouterr()
    assert main(["render", str(tmp_path / "runs")]) == 1
    out = capsys.readouterr().out
    assert "1 skipped" in out and "FAILED b/x_vis_data.npz: x_vis_data.npz: unreadable npz" in out
    assert main(["render", str(tmp_path / "nothing")]) == 2


def test_render_out_keeps_one_pair_of_videos_per_instruction(tmp_path, capsys):
    """The same clip under two instruction folders: --out used to name files by clip only, so the second
    was skipped as 'already complete' and its videos were never written."""
    name = "clip-a.camera_front_wide_120fov"
    for folder in ("lane_double_yellow_solid", "lane_single_white_dashed"):
        path = tmp_path / "run" / folder / name / f"{name}_vis_data.npz"
        path.parent.mkdir(parents=True)
        visdata.save(_vis(), str(path))
    out = tmp_path / "videos"
    assert main(["render", str(tmp_path / "run"), "--out", str(out), "--fps", "8"]) == 0
    assert "2 ok" in capsys.readouterr().out
    written = sorted(str(p.relative_to(out)) for p in out.rglob("*.mp4"))
    assert written == [f"{folder}/{name}/{name}_{kind}.mp4" for folder in ("lane_double_yellow_solid",
                       "lane_single_white_dashed") for kind in ("comparison", "overlay")]


def test_smallest_attainable_p_matches_the_exact_test_at_its_extreme():
    """With every delta of one sign, the exact test gives its smallest p: 2 / 2^n; below n = 6 that is >= 0.0625."""
    from vla.metrics import smallest_p_value, too_few_pairs

    for n in range(1, 9):
        p, _ = sign_flip_p_value(np.linspace(1.0, 2.0, n))
        assert p == pytest.approx(smallest_p_value(n))
        assert too_few_pairs(n) == (n < 6)
    assert smallest_p_value(40, permutation_samples=999) == pytest.approx(1 / 1000)


def test_holm_adjustment_by_hand():
    """Reference values computed by hand (Holm 1979): sorted p (0.01, 0.02, 0.03, 0.5) x (4, 3, 2, 1),
    made monotone: 0.04, 0.06, 0.06, 0.5, returned in the input order."""
    from vla.metrics import holm_adjust

    assert holm_adjust([0.03, 0.5, 0.01, 0.02]) == pytest.approx([0.06, 0.5, 0.04, 0.06])
    assert holm_adjust([0.4, 0.6]) == pytest.approx([0.8, 0.8])        # capped by monotonicity, then <= 1
    assert holm_adjust([0.9, 0.8]) == pytest.approx([1.0, 1.0])
    assert holm_adjust([]) == []

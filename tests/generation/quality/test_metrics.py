"""Quality metrics against scikit-image / torchmetrics, hand-built masked cases, label, CLIP, eval files."""

import json
import math

import numpy as np
import pytest
import torch
from skimage.metrics import mean_squared_error, peak_signal_noise_ratio, structural_similarity

from core import storage
from core.errors import LanepaintError
from core.layout import Layout
from generation.quality.metrics import QualityScorer, pixel_metrics, ssim_map
from generation.quality.metrics_report import (
    EXCELLENT,
    GOOD,
    MODERATE,
    format_eval_txt,
    quality_label,
    write_eval,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def scorer():
    return QualityScorer("tiny", batch_size=3)


def _t(frames):
    return torch.from_numpy(np.asarray(frames)).permute(0, 3, 1, 2).double() / 255.0


@pytest.fixture(scope="module")
def pair():
    rng = np.random.default_rng(0)
    original = rng.integers(0, 256, (4, 40, 52, 3), dtype=np.uint8)
    noise = rng.integers(-30, 31, original.shape)
    edited = np.clip(original.astype(int) + noise, 0, 255).astype(np.uint8)
    return original, edited


def test_psnr_mse_mae_match_scikit_image(pair):
    original, edited = pair
    ours = pixel_metrics(_t(original), _t(edited))
    for i in range(len(original)):
        a, b = original[i] / 255.0, edited[i] / 255.0
        assert float(ours["psnr"][i]) == pytest.approx(peak_signal_noise_ratio(a, b, data_range=1.0), abs=1e-6)
        assert float(ours["mse"][i]) == pytest.approx(mean_squared_error(a, b), abs=1e-9)
        assert float(ours["mae"][i]) == pytest.approx(np.abs(a - b).mean(), abs=1e-9)


def test_ssim_matches_torchmetrics_full_and_masked(pair):
    from torchmetrics.functional.image import structural_similarity_index_measure as tm_ssim

    original, edited = pair
    a, b = _t(original), _t(edited)
    mask = torch.zeros(a.shape[0], a.shape[2], a.shape[3], dtype=torch.bool)
    mask[:, 12:30, 5:44] = True
    ours, inside = pixel_metrics(a, b), pixel_metrics(a, b, mask)
    for i in range(len(a)):
        value, full_map = tm_ssim(b[i:i + 1], a[i:i + 1], data_range=1.0, return_full_image=True)
        assert float(ours["ssim"][i]) == pytest.approx(float(value), abs=1e-6)
        assert float(inside["ssim"][i]) == pytest.approx(float(full_map[0][:, mask[i]].mean()), abs=1e-6)


def test_ssim_close_to_scikit_image_away_from_borders(pair):
    """scikit-image drops the 5 px border instead of reflecting it; inside, the maps agree."""
    original, edited = pair
    smap = ssim_map(_t(original[:1]), _t(edited[:1]))[0].mean(dim=0)
    _, sk_map = structural_similarity(original[0] / 255.0, edited[0] / 255.0, data_range=1.0, channel_axis=-1,
                                      gaussian_weights=True, sigma=1.5, use_sample_covariance=False, full=True)
    np.testing.assert_allclose(smap[5:-5, 5:-5].numpy(), sk_map.mean(axis=-1)[5:-5, 5:-5], atol=1e-6)


def test_masked_metrics_on_hand_built_cases():
    a = torch.zeros(2, 3, 20, 20, dtype=torch.float64)
    b = a.clone()
    b[:, :, 5:10, 5:10] = 0.5                         # the change sits exactly in the mask
    b[1, :, 15:, 15:] = 0.1                           # frame 1 also changed outside the mask
    mask = torch.zeros(2, 20, 20, dtype=torch.bool)
    mask[:, 5:10, 5:10] = True
    inside = pixel_metrics(a, b, mask)
    outside = pixel_metrics(a, b, ~mask)
    assert inside["mse"].tolist() == pytest.approx([0.25, 0.25])       # only masked pixels count
    assert inside["mae"].tolist() == pytest.approx([0.5, 0.5])
    assert inside["psnr"].tolist() == pytest.approx([10 * math.log10(4)] * 2)
    assert float(outside["mse"][0]) == 0.0 and math.isinf(float(outside["psnr"][0]))
    assert float(outside["mse"][1]) == pytest.approx(0.01 * 25 / (400 - 25))
    smap = ssim_map(a, b)
    expected = [float(smap[i][:, mask[i]].mean()) for i in range(2)]
    assert inside["ssim"].tolist() == pytest.approx(expected)
    assert float(outside["ssim"][0]) < 1.0      # windows at the mask border see the change
    empty = pixel_metrics(a, b, torch.zeros_like(mask))
    assert all(math.isnan(v) for v in empty["mse"].tolist() + empty["ssim"].tolist())


def test_quality_label_thresholds():
    assert quality_label({"psnr": 41, "ssim": 0.96, "lpips": 0.05})["label"] == EXCELLENT
    assert quality_label({"psnr": 41, "ssim": 0.96, "lpips": None})["label"] == EXCELLENT
    assert quality_label({"psnr": 40.0, "ssim": 0.96, "lpips": 0.2})["label"] == GOOD    # 40 is not > 40
    assert quality_label({"psnr": 30, "ssim": 0.95, "lpips": 0.09})["label"] == GOOD     # 0.95 is not > 0.95
    assert quality_label({"psnr": 30, "ssim": 0.5, "lpips": 0.1})["label"] == MODERATE   # 0.1 is not < 0.1
    no_lpips = quality_label({"psnr": 30, "ssim": 0.99, "lpips": None})
    assert no_lpips["label"] == GOOD and no_lpips["earned"]["lpips"] is False and "LPIPS unavailable" in no_lpips["note"]
    assert no_lpips["evaluated"] == ["psnr", "ssim"] and "evaluated on 2 of 3 criteria" in no_lpips["note"]
    assert quality_label({"psnr": float("inf"), "ssim": 1.0})["points"] == 2


def test_lpips_runs_without_torchvision_and_the_label_uses_three_criteria(scorer, pair):
    original, edited = pair
    result = scorer.score(original, edited, np.ones(original.shape[:3], bool), "lane")
    assert scorer.lpips is not None and result["lpips"] == {"available": True, "reason": None}
    assert result["full"]["lpips"] > 0 and len(result["per_frame"]["full"]["lpips"]) == 4
    assert result["label"]["evaluated"] == ["psnr", "ssim", "lpips"] and "note" not in result["label"]


def test_lpips_unavailable_is_reported_not_invented(pair, monkeypatch):
    from generation.quality import lpips_net

    def offline(*args, **kwargs):
        raise OSError("<urlopen error [Errno -3] Temporary failure in name resolution>")

    monkeypatch.setattr(lpips_net.torch.hub, "load_state_dict_from_url", offline)
    scorer = QualityScorer("tiny", batch_size=2)
    scorer.lpips, scorer.lpips_reason = __import__("generation.quality.metrics", fromlist=["x"]).load_lpips(
        "full", scorer.policy)
    original, edited = pair
    result = scorer.score(original, edited, np.ones(original.shape[:3], bool), "lane")
    assert scorer.lpips is None and "name resolution" in scorer.lpips_reason
    assert result["lpips"] == {"available": False, "reason": scorer.lpips_reason}
    assert result["full"]["lpips"] is None and result["masked"]["lpips"] is None
    assert "lpips" not in result["per_frame"]["full"]
    assert result["label"]["evaluated"] == ["psnr", "ssim"] and "LPIPS unavailable" in result["label"]["note"]


def test_lpips_values_are_averaged_when_available(pair):
    original, edited = pair
    scorer = QualityScorer("tiny", batch_size=3, lpips=False)
    scorer.lpips = lambda a, b: (a - b).abs().mean(dim=(1, 2, 3)) # any per-frame function: the plumbing
    scorer.lpips_reason = None
    mask = np.zeros(original.shape[:3], bool)
    mask[1:, 10:30, 10:30] = True                     # frame 0 has no mask pixels
    result = scorer.score(original, edited, mask, "lane")
    per = np.abs(original / 255.0 - edited / 255.0).mean(axis=(1, 2, 3))
    assert result["full"]["lpips"] == pytest.approx(per.mean())
    assert math.isnan(result["per_frame"]["masked"]["lpips"][0])
    assert result["masked"]["lpips"] is not None


def test_score_blocks_ranges_and_clip_metrics(scorer, pair):
    original, edited = pair
    mask = np.zeros(original.shape[:3], bool)
    mask[:, 20:, 10:40] = True
    result = scorer.score(original, edited, mask, "add a double yellow line")
    assert result["frames"] == 4 and (result["height"], result["width"]) == (40, 52)
    assert result["mask_coverage_pct"] == pytest.approx(100 * mask.mean())
    full, masked, background = result["full"], result["masked"], result["background"]
    frame_psnr = [peak_signal_noise_ratio(original[i] / 255.0, edited[i] / 255.0, data_range=1.0) for i in range(4)]
    frame_mse = [mean_squared_error(original[i] / 255.0, edited[i] / 255.0) for i in range(4)]
    assert full["psnr"] == pytest.approx(10 * math.log10(1 / np.mean(frame_mse)), abs=1e-9)
    assert full["psnr_frame_mean"] == pytest.approx(float(np.mean(frame_psnr)), abs=1e-6)
    assert full["identical_frames"] == 0
    for block in (full, masked):
        assert 0.0 <= block["clip_score"] <= 100.0
        assert -1.0 <= block["temporal_consistency"] <= 1.0 + 1e-6
    assert set(background) == {"psnr", "psnr_frame_mean", "identical_frames", "ssim", "mse", "mae"}
    assert len(result["per_frame"]["full"]["psnr"]) == 4
    assert result["label"]["label"] in (EXCELLENT, GOOD, MODERATE)
    same = scorer.score(original, original, mask, "add a double yellow line")
    assert math.isinf(same["full"]["psnr"]) and same["full"]["ssim"] == pytest.approx(1.0)
    assert same["full"]["identical_frames"] == 4 and same["full"]["psnr_frame_mean"] is None
    assert same["full"]["mse"] == 0.0 and same["label"]["points"] == 3 and same["full"]["lpips"] == 0.0
    one = scorer.score(original[:1], edited[:1], mask[:1], "x")
    assert one["full"]["temporal_consistency"] is None


def test_one_identical_frame_leaves_the_clip_psnr_finite_and_the_label_honest(scorer):
    """A clip at about 20 dB with one untouched frame: the mean of per-frame PSNR was +inf and earned the
    PSNR > 40 point; the clip PSNR (of the mean MSE) stays near 20 dB and the identical frame is counted."""
    rng = np.random.default_rng(3)
    original = rng.integers(40, 200, (4, 24, 32, 3), dtype=np.uint8)
    noise = rng.normal(0, 25.5, original.shape)                 # sigma 0.1 of the range: about 20 dB
    edited = np.clip(original + noise, 0, 255).astype(np.uint8)
    edited[2] = original[2]
    result = scorer.score(original, edited, np.zeros(original.shape[:3], bool), "x")
    full = result["full"]
    mse = [mean_squared_error(original[i] / 255.0, edited[i] / 255.0) for i in range(4)]
    assert math.isfinite(full["psnr"]) and full["psnr"] == pytest.approx(10 * math.log10(1 / np.mean(mse)), abs=1e-9)
    assert 19 < full["psnr"] < 23 and full["identical_frames"] == 1
    finite = [peak_signal_noise_ratio(original[i] / 255.0, edited[i] / 255.0, data_range=1.0) for i in (0, 1, 3)]
    assert full["psnr_frame_mean"] == pytest.approx(float(np.mean(finite)), abs=1e-6)
    assert result["label"]["earned"]["psnr"] is False and result["label"]["label"] != EXCELLENT
    assert result["per_frame"]["full"]["psnr"][2] == float("inf")


def test_clip_embeddings_are_normalised_and_batch_independent(scorer, pair):
    original, _ = pair
    frames = torch.from_numpy(original)
    together = scorer.clip_score.image_embeds(frames)
    apart = torch.cat([scorer.clip_score.image_embeds(frames[i:i + 1]) for i in range(len(frames))])
    assert together.shape == (4, 16) and torch.allclose(together.norm(dim=-1), torch.ones(4), atol=1e-5)
    assert torch.allclose(together, apart, atol=1e-5)
    text = scorer.clip_score.text_embeds(["lane " * 200])       # longer than 77 tokens: truncated
    assert text.shape == (1, 16)
    assert scorer.clip_temporal is not scorer.clip_score


def test_bad_inputs_are_one_line_errors(scorer, pair):
    original, edited = pair
    masks = np.zeros(original.shape[:3], bool)
    with pytest.raises(LanepaintError, match="does not match the original"):
        scorer.score(original, edited[:3], masks, "x")
    with pytest.raises(LanepaintError, match="masks"):
        scorer.score(original, edited, masks[:, :10], "x")
    with pytest.raises(LanepaintError, match="uint8"):
        scorer.score(original.astype(np.float32), edited, masks, "x")
    with pytest.raises(LanepaintError, match="smaller than the 11x11"):
        scorer.score(original[:, :8, :8], edited[:, :8, :8], masks[:, :8, :8], "x")


def test_eval_txt_and_json(storage_root, scorer, pair):
    original, edited = pair
    mask = np.zeros(original.shape[:3], bool)
    mask[:, 20:, 10:40] = True
    scores = scorer.score(original, original, mask, "add a double yellow line")
    info = {"original": "in/clip_0001.mp4", "edited": "out/clip_0001_vp_edit_sample0.mp4",
            "masks": "in/all_masks.npz", "fps": 8.0}
    txt_uri, json_uri = write_eval(Layout(storage_root), "run1", "double_yellow", "clip_0001", scores, info)
    assert txt_uri.endswith("eval_clip_0001.txt") and json_uri.endswith("eval_clip_0001.json")
    record = json.loads(storage.read_text(json_uri))
    assert record["video_id"] == "clip_0001" and record["fps"] == 8.0
    assert record["resolution"] == {"width": 52, "height": 40} and record["frames"] == 4
    assert record["paths"]["edited"] == info["edited"]
    assert record["full"]["psnr"] == "inf" and record["background"]["mse"] == 0.0
    assert record["label"]["label"] == scores["label"]["label"]
    assert record["mask_coverage_pct"] == pytest.approx(100 * mask.mean())
    text = storage.read_text(txt_uri)
    for needle in ("clip_0001", "in/clip_0001.mp4", "52x40", "8.00 fps", f"{100 * mask.mean():.2f} %",
                   "Full frame", "Inside the mask", f"{'PSNR (dB, of the mean MSE)':<33} inf", f"{'identical frames':<33} 4",
                   "temporal consistency",
                   f"Quality: {scores['label']['label']}"):
        assert needle in text, needle
    if scores["lpips"]["available"] is False:
        assert f"{'LPIPS':<33} unavailable (" in text
    assert text == format_eval_txt(record)


def test_full_clip_loader_reads_a_local_checkpoint_folder(scorer, pair, tmp_path):
    from generation.quality.clip_model import load_clip

    scorer.clip_score.model.save_pretrained(tmp_path)
    scorer.clip_score.tokenizer.save_pretrained(tmp_path)
    full = load_clip(str(tmp_path), "full", scorer.policy)
    frames = torch.from_numpy(pair[0])
    assert torch.allclose(full.image_embeds(frames), scorer.clip_score.image_embeds(frames), atol=1e-6)
    assert torch.allclose(full.text_embeds(["two white lines"]), scorer.clip_score.text_embeds(["two white lines"]),
                          atol=1e-6)
    assert full.describe()["source"] == str(tmp_path)


def test_negative_strides_and_numeric_masks_are_accepted(scorer, pair):
    original, edited = pair
    mask = np.zeros(original.shape[:3], np.uint8)
    mask[:, 20:, 10:40] = 255                              # 0/255 masks: > 0.5 is the edited area
    flipped = scorer.score(original[..., ::-1], edited[..., ::-1], mask, "x")
    as_bool = scorer.score(np.ascontiguousarray(original[..., ::-1]), np.ascontiguousarray(edited[..., ::-1]),
                           mask > 0, "x")
    assert flipped["masked"]["mse"] == pytest.approx(as_bool["masked"]["mse"])


@pytest.mark.gpu
def test_gpu_pixel_metrics_match_cpu(scorer, pair):
    original, edited = pair
    mask = np.zeros(original.shape[:3], bool)
    mask[:, 20:, 10:40] = True
    on_gpu = QualityScorer("tiny", device="cuda").score(original, edited, mask, "lane")
    on_cpu = scorer.score(original, edited, mask, "lane")
    for block in ("full", "masked", "background"):
        for key in ("psnr", "ssim", "mse", "mae"):
            assert on_gpu[block][key] == pytest.approx(on_cpu[block][key], abs=1e-9)

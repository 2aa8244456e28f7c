"""--metrics-protocol videopainter against VideoPainter's evaluation, step by step as upstream does it:
evaluate/eval_inpainting.py calls MetricsCalculator.calculate_*(ori, comp) and, for the masked block,
calculate_*(ori, comp, mask_gt=1-mask) per frame (torchmetrics metrics on float32 images in [0,1]), then
averages the frames; temporal consistency squashes each frame to the CLIP input size without normalising."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torchmetrics.functional import mean_absolute_error, mean_squared_error
from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

from generation.quality.metrics import QualityScorer

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def clip():
    rng = np.random.default_rng(5)
    original = rng.integers(0, 256, (3, 36, 64, 3), dtype=np.uint8)
    edited = np.clip(original.astype(int) + rng.integers(-40, 41, original.shape), 0, 255).astype(np.uint8)
    edited[1] = original[1]                                   # an identical frame: +inf upstream too
    mask = np.zeros(original.shape[:3], bool)
    mask[:, 18:, 8:40] = True
    return original, edited, mask


@pytest.fixture(scope="module")
def scored(clip):
    scorer = QualityScorer("tiny", batch_size=2, protocol="videopainter")
    original, edited, mask = clip
    return scorer, scorer.score(original, edited, mask, "add a lane", caption="a road with a new lane")


def _upstream_frame(ori: np.ndarray, comp: np.ndarray, mask_gt: np.ndarray | None):
    pred = torch.tensor(ori.astype(np.float32) / 255).permute(2, 0, 1).unsqueeze(0)
    gt_img = comp.astype(np.float32) / 255
    if mask_gt is not None:
        gt_img = gt_img * mask_gt.astype(np.float32)
    gt = torch.tensor(gt_img).permute(2, 0, 1).unsqueeze(0)
    return {"psnr": float(peak_signal_noise_ratio(pred, gt, data_range=1.0)),
            "ssim": float(structural_similarity_index_measure(pred, gt, data_range=1.0)),
            "mse": float(mean_squared_error(pred.contiguous(), gt.contiguous())),
            "mae": float(mean_absolute_error(pred.contiguous(), gt.contiguous()))}


def test_pixel_metrics_match_upstreams_calls(clip, scored):
    original, edited, mask = clip
    _, result = scored
    vp = result["videopainter"]
    for prefix in ("", "masked_"):
        frames = [_upstream_frame(o, c, (1 - m[..., None].astype(np.uint8)) if prefix else None)
                  for o, c, m in zip(original, edited, mask, strict=True)]
        for key in ("psnr", "ssim", "mse", "mae"):
            expected = sum(f[key] for f in frames) / len(frames)
            if math.isinf(expected):
                assert math.isinf(vp[prefix + key]), prefix + key
            else:
                assert vp[prefix + key] == pytest.approx(expected, rel=1e-4, abs=1e-6), prefix + key
    assert math.isinf(vp["psnr"])                 # upstream's mean of per-frame PSNR with an identical frame
    assert math.isfinite(result["full"]["psnr"])  # ours: of the mean MSE
    assert vp["masked_psnr"] < 20                 # the unmasked edit's blacked-out inside counts as error


def test_clip_texts_and_temporal_consistency_follow_upstream(clip, scored):
    original, edited, mask = clip
    scorer, result = scored
    vp = result["videopainter"]
    assert vp["caption"] == "a road with a new lane"
    text = scorer.clip_score.text_embeds(["a road with a new lane"])[0]
    frames = torch.from_numpy(edited)
    expected = float((100 * (scorer.clip_score.image_embeds(frames) @ text).clamp(min=0)).double().mean())
    assert vp["clip_score"] == pytest.approx(expected, rel=1e-5)
    model = scorer.clip_temporal.model
    size = scorer.clip_temporal.image_size
    for key, weight in (("temporal_consistency", 1.0), ("masked_temporal_consistency", mask)):
        x = torch.from_numpy(edited).permute(0, 3, 1, 2).float() / 255
        x = x * torch.as_tensor(weight, dtype=torch.float32).reshape(-1, 1, *x.shape[-2:]) if key.startswith("m") else x
        x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        with torch.no_grad():
            feats = model.get_image_features(pixel_values=x)
        feats = getattr(feats, "pooler_output", feats)
        feats = feats / feats.norm(dim=-1, keepdim=True)
        expected = float((feats[1:] * feats[:-1]).sum(dim=-1).mean())
        assert vp[key] == pytest.approx(expected, rel=1e-5, abs=1e-6), key


def test_lanepaint_protocol_has_no_videopainter_block(clip):
    original, edited, mask = clip
    result = QualityScorer("tiny", batch_size=2).score(original, edited, mask, "add a lane")
    assert "videopainter" not in result
    with pytest.raises(ValueError, match="metrics protocol must be one of lanepaint, videopainter"):
        QualityScorer("tiny", protocol="vp")

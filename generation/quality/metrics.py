"""Per-video quality metrics between the original and the edited clip, on full frames and in the mask.

Entry point: ``QualityScorer(profile, device, batch_size=None)`` (frames per batch: 8 on GPU, 2 on
CPU), built once per stage run (it holds the CLIP models and LPIPS), then per video
``score(original, edited, masks, instruction) -> dict`` and
``metrics_report.write_eval(layout, run_id, folder, video_id, scores, info)``.

Inputs: ``original``/``edited`` uint8 [T,H,W,3], ``masks`` [T,H,W] (bool or numeric; the edited
area is ``mask > 0.5``). Frames go to the device one batch at a time (uint8), every metric of a
batch is computed there, and only the per-frame numbers come back at the end.

Definitions (images scaled to [0,1], data range 1; each metric per frame, then the mean over frames,
except the clip PSNR):

- full frame: MSE and MAE over all pixels and channels (the same numbers as scikit-image); the clip
  PSNR = 10 log10(1 / mean of the per-frame MSE), finite unless every frame is identical; beside it
  ``psnr_frame_mean`` = the mean of the finite per-frame PSNR values (10 log10(1 / MSE) per frame) and
  ``identical_frames`` = how many frames have MSE 0 (their PSNR is +inf and is left out of that mean); SSIM with an 11-tap Gaussian window (sigma 1.5, K1 0.01, K2 0.03) on
  reflect-padded images, the mean of the per-pixel SSIM map over pixels and channels - the same
  numbers as torchmetrics' SSIM, which upstream's evaluation calculator uses; LPIPS
  (SqueezeNet 1.1, as torchmetrics and upstream compute it; ``lpips_net``, no torchvision needed).
- ``masked`` (inside the mask, applied to BOTH images): MSE/MAE/PSNR over masked pixels only; SSIM
  = the full-frame SSIM map averaged over masked pixels (windows at the mask border also see
  pixels outside it); LPIPS, CLIP score and
  temporal consistency on mask-composited images (outside the mask set to black). Frames without
  masked pixels are left out of the masked means (no frame with pixels: ``None``).
- ``background`` (outside the mask, the part that should not change): MSE/MAE/PSNR/SSIM as above.
- CLIP score = 100 x max(cos(image, instruction), 0) per edited frame (torchmetrics' definition,
  CLIP ViT-L/14); temporal consistency = mean cosine similarity of CLIP ViT-B/32 embeddings of
  adjacent edited frames (``None`` for a one-frame clip).
- A frame with zero error has PSNR +inf: it counts in ``identical_frames`` and in the mean MSE, so one
  untouched frame no longer makes the clip's PSNR +inf (it did when the clip PSNR was the mean of the
  per-frame values). Only a clip identical in every frame has PSNR +inf (written as "inf").
Pixel metrics run in float64 so they match the references to 1e-9; CLIP in the device dtype.

``protocol="videopainter"`` adds a ``videopainter`` block computed exactly as VideoPainter's evaluation
(``evaluate/metrics.py`` ``MetricsCalculator`` and ``eval_inpainting.py``) does, beside ours:

- float32; clip value = plain mean of the per-frame values (PSNR's +inf included);
- "masked" metrics compare the whole original with the edit multiplied by (1 - mask), not the masked
  pixels of both (ours);
- CLIP score against the caption of the video (here: the prompt the video model was given), every frame
  counted (ours: the instruction, masked frames without mask pixels left out);
- temporal consistency: each frame squashed whole to 224x224, bilinear, without CLIP's normalisation
  (ours: resized on the short side, centre-cropped, normalised: at 1280x720, 56% of the width is never seen).
SSIM is torchmetrics' >= 1.5 definition (reflect-padded borders averaged in) for both; torchmetrics < 1.5
cropped the borders, so upstream numbers computed with it differ slightly.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from core.device import DevicePolicy, resolve_device
from core.errors import LanepaintError, one_line
from core.logs import progress
from generation.quality.clip_model import CLIP_SCORE_MODEL, CLIP_TEMPORAL_MODEL, ClipEmbedder, load_clip
from generation.quality.metrics_report import quality_label, write_eval

log = logging.getLogger(__name__)

SSIM_WINDOW, SSIM_SIGMA, SSIM_K1, SSIM_K2 = 11, 1.5, 0.01, 0.03
PIXEL_KEYS = ("psnr", "ssim", "mse", "mae")
# Frames per batch: large batches suit the GPU's caching allocator; on CPU every fresh 60+ MB
# float64 temporary costs page faults, and 2 frames per batch ran 3.5x faster than 8 (bench/).
GPU_BATCH, CPU_BATCH = 8, 2
PROTOCOLS = ("lanepaint", "videopainter")
VP_KEYS = ("psnr", "ssim", "lpips", "mse", "mae")

LpipsFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def load_lpips(profile: str, policy: DevicePolicy, cache_dir: str | None = None) -> tuple[LpipsFn | None, str | None]:
    """(fn(a, b) -> [N] for float [N,3,H,W] in [0,1], None) or (None, why LPIPS is unavailable).

    LPIPS with SqueezeNet 1.1 as torchmetrics computes it, in plain torch (``lpips_net``: no torchvision):
    full: ImageNet backbone and LPIPS v0.1 heads; tiny: the same network with seeded random weights.
    """
    from generation.quality.lpips_net import load_squeeze_lpips

    try:
        net = load_squeeze_lpips(profile, policy.device, cache_dir)
    except Exception as exc:  # offline without the cached backbone, a corrupt checkpoint, ...
        reason = one_line(exc)
        log.warning("LPIPS unavailable: %s", reason)
        return None, reason

    def lpips(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return net(a.float(), b.float())

    lpips.net = net  # type: ignore[attr-defined]   (the manifest fingerprints its weights)
    return lpips, None


def _gaussian(device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    x = torch.arange(SSIM_WINDOW, device=device, dtype=dtype) - (SSIM_WINDOW - 1) / 2
    g = torch.exp(-(x**2) / (2 * SSIM_SIGMA**2))
    return g / g.sum()


def _filter_valid(x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """Separable filter of [..., H, W] by taps ``g``, 'valid' region only, accumulated in place from
    shifted slices (far faster than a depthwise float64 conv2d on CPU; plain elementwise kernels on GPU)."""
    k = len(g)
    taps = [float(t) for t in g]
    h, w = x.shape[-2] - k + 1, x.shape[-1] - k + 1
    rows = x[..., :w] * taps[0]
    for i in range(1, k):
        rows.add_(x[..., i:i + w], alpha=taps[i])
    out = rows[..., :h, :] * taps[0]
    for i in range(1, k):
        out.add_(rows[..., i:i + h, :], alpha=taps[i])
    return out


def ssim_map(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """SSIM map [N,C,H,W] of images [N,C,H,W] in [0,1]: Gaussian window, borders reflect-padded."""
    h, w = a.shape[-2:]
    if h < SSIM_WINDOW or w < SSIM_WINDOW:
        raise LanepaintError(f"frames of {w}x{h} are smaller than the {SSIM_WINDOW}x{SSIM_WINDOW} SSIM window")
    g = _gaussian(a.device, a.dtype)
    pad = (SSIM_WINDOW - 1) // 2
    a, b = (F.pad(x, (pad, pad, pad, pad), mode="reflect") for x in (a, b))
    mu_a, mu_b, e_aa, e_bb, e_ab = (_filter_valid(x, g) for x in (a, b, a * a, b * b, a * b))
    var_a, var_b = (e_aa - mu_a**2).clamp(min=0), (e_bb - mu_b**2).clamp(min=0)
    cov = e_ab - mu_a * mu_b
    c1, c2 = SSIM_K1**2, SSIM_K2**2
    return ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))


def _psnr(mse: torch.Tensor) -> torch.Tensor:
    return 10.0 * torch.log10(1.0 / mse)  # mse 0 -> +inf, nan stays nan


def pixel_metrics(a: torch.Tensor, b: torch.Tensor, region: torch.Tensor | None = None,
                  smap: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Per-frame PSNR/SSIM/MSE/MAE of [N,C,H,W] images in [0,1]; ``region`` [N,H,W] bool restricts
    them to its pixels (nan for a frame whose region is empty). ``smap``: a precomputed ``ssim_map``."""
    diff = a - b
    smap = ssim_map(a, b) if smap is None else smap
    if region is None:
        mse = (diff**2).mean(dim=(1, 2, 3))
        mae = diff.abs().mean(dim=(1, 2, 3))
        ssim = smap.mean(dim=(1, 2, 3))
    else:
        r = region[:, None].to(a.dtype)
        count = r.sum(dim=(1, 2, 3)) * a.shape[1]
        mse = (diff**2 * r).sum(dim=(1, 2, 3)) / count
        mae = (diff.abs() * r).sum(dim=(1, 2, 3)) / count
        ssim = (smap * r).sum(dim=(1, 2, 3)) / count
    return {"psnr": _psnr(mse), "ssim": ssim, "mse": mse, "mae": mae}


def _psnr_block(per_frame: dict[str, torch.Tensor]) -> dict[str, Any]:
    """The clip's PSNR values from per-frame MSE and PSNR (frames without pixels, nan, left out)."""
    mse = per_frame["mse"][~torch.isnan(per_frame["mse"])]
    psnr = per_frame["psnr"][~torch.isnan(per_frame["psnr"])]
    if mse.numel() == 0:
        return {"psnr": None, "psnr_frame_mean": None, "identical_frames": 0}
    finite = psnr[torch.isfinite(psnr)]
    return {"psnr": float(_psnr(mse.mean())),
            "psnr_frame_mean": float(finite.mean()) if finite.numel() else None,
            "identical_frames": int((mse == 0).sum())}


def _pixel_block(per_frame: dict[str, torch.Tensor]) -> dict[str, Any]:
    """The clip values of one block: PSNR from the mean MSE (``_psnr_block``), the others their frame mean."""
    return {**_psnr_block(per_frame), **{k: _mean(per_frame[k]) for k in PIXEL_KEYS if k != "psnr"}}


def _mean(values: torch.Tensor) -> float | None:
    """Mean over frames, nan frames left out (None when none is left); +inf propagates."""
    if values.numel() == 0:
        return None
    finite_or_inf = values[~torch.isnan(values)]
    return float(finite_or_inf.mean()) if finite_or_inf.numel() else None


class QualityScorer:
    """Scores edited clips against their originals; load once per stage run, reuse for every video."""

    def __init__(self, profile: str = "full", device: str | None = None, batch_size: int | None = None,
                 clip_score_model: str = CLIP_SCORE_MODEL, clip_temporal_model: str = CLIP_TEMPORAL_MODEL,
                 cache_dir: str | None = None, lpips: bool = True, protocol: str = "lanepaint"):
        if batch_size is not None and batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if protocol not in PROTOCOLS:
            raise ValueError(f"metrics protocol must be one of {', '.join(PROTOCOLS)}, got {protocol!r}")
        self.protocol = protocol
        self.profile = profile
        self.policy = resolve_device(device, profile)
        self.batch_size = batch_size or (GPU_BATCH if self.policy.is_cuda else CPU_BATCH)
        self.clip_score = load_clip(clip_score_model, profile, self.policy, cache_dir)
        self.clip_temporal: ClipEmbedder = (self.clip_score if clip_temporal_model == clip_score_model
                                            else load_clip(clip_temporal_model, profile, self.policy, cache_dir))
        self.lpips, self.lpips_reason = (load_lpips(profile, self.policy, cache_dir) if lpips
                                         else (None, "LPIPS switched off"))

    write_eval = staticmethod(write_eval)   # (layout, run_id, folder, video_id, scores, info) -> (txt, json)

    def describe(self) -> dict[str, Any]:
        return {"clip_score": self.clip_score.describe(), "clip_temporal": self.clip_temporal.describe(),
                "lpips": {"available": self.lpips is not None, "reason": self.lpips_reason,
                          "net": "squeezenet1_1 + LPIPS v0.1 heads"}, "device": self.policy.describe()}

    def _check(self, original: np.ndarray, edited: np.ndarray, masks: np.ndarray) -> None:
        if original.ndim != 4 or original.shape[-1] != 3 or original.dtype != np.uint8:
            raise LanepaintError(f"original clip must be uint8 [T,H,W,3], got {original.dtype} {list(original.shape)}")
        if edited.shape != original.shape or edited.dtype != np.uint8:
            raise LanepaintError(f"edited clip {edited.dtype} {list(edited.shape)} does not match the original "
                                 f"{original.dtype} {list(original.shape)}")
        if masks.shape != original.shape[:3]:
            raise LanepaintError(f"masks {list(masks.shape)} do not match the clip {list(original.shape[:3])}")
        if len(original) == 0:
            raise LanepaintError("the clip has no frames")

    def _videopainter_pixels(self, o8: torch.Tensor, e8: torch.Tensor, m: torch.Tensor,
                             full_lpips: torch.Tensor | None) -> dict[str, torch.Tensor]:
        """Per-frame values of VideoPainter's ``MetricsCalculator`` (evaluate/metrics.py, eval_inpainting.py):
        float32 images in [0,1]; full frame (original, edit); "masked" = (original, edit x (1 - mask)),
        upstream's call ``calculate_*(ori, comp, mask_gt=1-mask)``. ``full_lpips``: the batch's full-frame
        LPIPS already computed (None: LPIPS unavailable)."""
        a = o8.permute(0, 3, 1, 2).float() / 255.0
        b = e8.permute(0, 3, 1, 2).float() / 255.0
        outside = b * (1.0 - m[:, None].float())
        out: dict[str, torch.Tensor] = {}
        for prefix, other in (("", b), ("masked_", outside)):
            diff = a - other
            mse = (diff**2).mean(dim=(1, 2, 3))
            out[f"{prefix}psnr"] = _psnr(mse)
            out[f"{prefix}ssim"] = ssim_map(a, other).mean(dim=(1, 2, 3))
            out[f"{prefix}mse"] = mse
            out[f"{prefix}mae"] = diff.abs().mean(dim=(1, 2, 3))
        if full_lpips is not None:   # the full-frame LPIPS is ours: the same float32 images (x / 255 either way)
            out["lpips"] = full_lpips.float()
            out["masked_lpips"] = self.lpips(a, outside)
        out["_squashed"] = self.clip_temporal.squashed_image_embeds(b)
        out["_squashed_masked"] = self.clip_temporal.squashed_image_embeds(b * m[:, None].float())
        return out

    @staticmethod
    def _videopainter_block(per: dict[str, torch.Tensor], score: torch.Tensor, score_m: torch.Tensor,
                            caption: str) -> dict[str, Any]:
        """Clip values as upstream reports them: the plain mean over frames (an identical frame's +inf
        included), CLIP score of every frame against the caption, temporal consistency of squashed,
        unnormalised frames."""
        def mean(values: torch.Tensor) -> float:
            return float(values.double().mean())

        def temporal(embeds: torch.Tensor) -> float | None:
            return mean((embeds[1:] * embeds[:-1]).sum(dim=-1)) if len(embeds) > 1 else None

        block: dict[str, Any] = {"caption": caption}
        for prefix in ("", "masked_"):
            for key in VP_KEYS:
                name = f"{prefix}{key}"
                block[name] = mean(per[name]) if name in per else None
        block["clip_score"] = mean(score)
        block["masked_clip_score"] = mean(score_m)
        block["temporal_consistency"] = temporal(per["_squashed"])
        block["masked_temporal_consistency"] = temporal(per["_squashed_masked"])
        return block

    @torch.inference_mode()
    def score(self, original: np.ndarray, edited: np.ndarray, masks: np.ndarray, instruction: str,
              caption: str | None = None) -> dict[str, Any]:
        """Every metric of one clip (see the module docstring), plus the quality label. With the
        ``videopainter`` protocol also a ``videopainter`` block (its CLIP text: ``caption``, else the
        instruction)."""
        original, edited, masks = np.asarray(original), np.asarray(edited), np.asarray(masks)
        self._check(original, edited, masks)
        device = torch.device(self.policy.device)
        frames, height, width = original.shape[:3]
        per: dict[str, dict[str, list[torch.Tensor]]] = {k: {} for k in ("full", "masked", "background")}
        emb: dict[str, list[torch.Tensor]] = {"score": [], "score_m": [], "temp": [], "temp_m": []}
        mask_pixels: list[torch.Tensor] = []
        vp: dict[str, list[torch.Tensor]] = {}
        text = self.clip_score.text_embeds([instruction])
        starts = range(0, frames, self.batch_size)
        for start in progress(starts, desc="metrics", total=len(starts), unit="batch"):
            stop = min(start + self.batch_size, frames)
            o8 = torch.from_numpy(np.ascontiguousarray(original[start:stop])).to(device, non_blocking=True)
            e8 = torch.from_numpy(np.ascontiguousarray(edited[start:stop])).to(device, non_blocking=True)
            m = torch.from_numpy(np.ascontiguousarray(masks[start:stop] > 0.5)).to(device)
            a = o8.permute(0, 3, 1, 2).to(torch.float64) / 255.0
            b = e8.permute(0, 3, 1, 2).to(torch.float64) / 255.0
            smap = ssim_map(a, b)
            groups = {"full": pixel_metrics(a, b, None, smap), "masked": pixel_metrics(a, b, m, smap),
                      "background": pixel_metrics(a, b, ~m, smap)}
            m4 = m[:, None].to(a.dtype)
            if self.lpips is not None:
                groups["full"]["lpips"] = self.lpips(a, b).double()
                groups["masked"]["lpips"] = self.lpips(a * m4, b * m4).double()
            for group, values in groups.items():
                for key, value in values.items():
                    per[group].setdefault(key, []).append(value)
            e_masked = e8 * m[..., None].to(e8.dtype)
            emb["score"].append(self.clip_score.image_embeds(e8))
            emb["score_m"].append(self.clip_score.image_embeds(e_masked))
            emb["temp"].append(self.clip_temporal.image_embeds(e8))
            emb["temp_m"].append(self.clip_temporal.image_embeds(e_masked))
            mask_pixels.append(m.flatten(1).sum(dim=1))
            if self.protocol == "videopainter":
                for key, value in self._videopainter_pixels(o8, e8, m, groups["full"].get("lpips")).items():
                    vp.setdefault(key, []).append(value)
        pixels = torch.cat(mask_pixels)
        present = pixels > 0
        coverage = float(pixels.sum())
        clip = {k: torch.cat(v) for k, v in emb.items()}
        full_frame = {k: torch.cat(v).cpu() for k, v in per["full"].items()}
        masked = {k: torch.cat(v).cpu() for k, v in per["masked"].items()}
        background = {k: torch.cat(v).cpu() for k, v in per["background"].items()}
        if "lpips" in masked:  # a frame without mask pixels has no masked LPIPS
            masked["lpips"][~present.cpu()] = float("nan")

        def clip_score(embeds: torch.Tensor, keep: torch.Tensor) -> float | None:
            values = 100.0 * (embeds @ text[0]).clamp(min=0)
            return _mean(values[keep].double().cpu())

        def temporal(embeds: torch.Tensor, keep: torch.Tensor) -> float | None:
            if len(embeds) < 2:
                return None
            cos = (embeds[1:] * embeds[:-1]).sum(dim=-1)
            return _mean(cos[keep[1:] & keep[:-1]].double().cpu())

        everything = torch.ones_like(present)
        out: dict[str, Any] = {
            "instruction": instruction, "frames": int(frames), "height": int(height), "width": int(width),
            "mask_coverage_pct": 100.0 * coverage / (frames * height * width),
            "full": {**_pixel_block(full_frame),
                     "lpips": _mean(full_frame["lpips"]) if "lpips" in full_frame else None,
                     "clip_score": clip_score(clip["score"], everything),
                     "temporal_consistency": temporal(clip["temp"], everything)},
            "masked": {**_pixel_block(masked),
                       "lpips": _mean(masked["lpips"]) if "lpips" in masked else None,
                       "clip_score": clip_score(clip["score_m"], present),
                       "temporal_consistency": temporal(clip["temp_m"], present)},
            "background": _pixel_block(background),
            "per_frame": {"full": {k: [float(x) for x in v] for k, v in full_frame.items()},
                          "masked": {k: [float(x) for x in v] for k, v in masked.items()}},
            "lpips": {"available": self.lpips is not None, "reason": self.lpips_reason},
            "profile": self.profile,
        }
        if self.protocol == "videopainter":
            vp_caption = caption or instruction
            vp_text = self.clip_score.text_embeds([vp_caption])[0]
            joined = {k: torch.cat(v) for k, v in vp.items()}
            out["videopainter"] = self._videopainter_block(
                joined, 100.0 * (clip["score"] @ vp_text).clamp(min=0), 100.0 * (clip["score_m"] @ vp_text).clamp(min=0),
                vp_caption)
        out["label"] = quality_label(out["full"])
        log.info("metrics: PSNR %s SSIM %s label %s", _fmt(out["full"]["psnr"]), _fmt(out["full"]["ssim"]),
                 out["label"]["label"])
        return out


def _fmt(value: float | None) -> str:
    if value is None:
        return "n/a"
    return "inf" if math.isinf(value) else f"{value:.4f}"

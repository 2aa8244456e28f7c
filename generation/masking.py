"""Mask processing and compositing for stage 2 (numpy + OpenCV, no torch).

- ``dilate_masks``: grow the road masks (square kernel of ``dilate_size`` pixels, as upstream
  VideoPainter does with cv2.dilate) so the edit covers the mask edges without seams.
- ``feather_alpha``: a compositing weight that is exactly 0 outside the dilated mask and ramps to 1
  over ``feather`` pixels inside it, so the composite never changes a pixel outside the mask.
- ``composite``: generated pixels inside the mask, original pixels outside, per frame.
- ``resize_frames`` / ``resize_masks``: between the clip's resolution and the model's.
"""

from __future__ import annotations

import cv2
import numpy as np


def _as_stack(masks: np.ndarray) -> tuple[np.ndarray, bool]:
    masks = np.asarray(masks)
    if masks.ndim == 2:
        return masks[None], True
    if masks.ndim != 3:
        raise ValueError(f"masks must be [H, W] or [T, H, W], got shape {masks.shape}")
    return masks, False


def dilate_masks(masks: np.ndarray, size: int) -> np.ndarray:
    """Binary dilation of ``[T, H, W]`` (or ``[H, W]``) masks with a ``size`` x ``size`` kernel."""
    stack, single = _as_stack(masks)
    binary = (stack > 0).astype(np.uint8)
    if size > 1:
        kernel = np.ones((size, size), np.uint8)
        binary = np.stack([cv2.dilate(m, kernel) for m in binary])
    out = binary.astype(bool)
    return out[0] if single else out


def feather_alpha(masks: np.ndarray, feather: int) -> np.ndarray:
    """Float32 weights in [0, 1]: 0 outside the mask, ``min(1, d / feather)`` inside, where ``d`` is
    the distance (px) to the nearest pixel outside the mask. ``feather=0``: the hard mask."""
    stack, single = _as_stack(masks)
    binary = (stack > 0).astype(np.uint8)
    if feather <= 0:
        alpha = binary.astype(np.float32)
    else:
        alpha = np.empty(binary.shape, np.float32)
        for i, m in enumerate(binary):
            if m.all():   # no pixel outside: the transform has nothing to measure from
                alpha[i] = 1.0
                continue
            dist = cv2.distanceTransform(m, cv2.DIST_L2, 3)
            alpha[i] = np.clip(dist / float(feather), 0.0, 1.0)
    return alpha[0] if single else alpha


def composite(original: np.ndarray, generated: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """``original * (1 - alpha) + generated * alpha`` as uint8; pixels with alpha 0 are untouched.

    ``original``/``generated``: ``[T, H, W, 3]`` (or ``[H, W, 3]``) uint8 of the same shape;
    ``alpha``: ``[T, H, W]`` (or ``[H, W]``) in [0, 1].
    """
    original = np.asarray(original)
    generated = np.asarray(generated)
    if original.shape != generated.shape:
        raise ValueError(f"original {original.shape} and generated {generated.shape} differ")
    if alpha.shape != original.shape[:-1]:
        raise ValueError(f"alpha {alpha.shape} does not match frames {original.shape}")
    a = alpha[..., None].astype(np.float32)
    blended = original.astype(np.float32) * (1.0 - a) + generated.astype(np.float32) * a
    blended = np.clip(np.rint(blended), 0, 255).astype(np.uint8)
    return np.where(a > 0, blended, original)


def resize_frames(frames: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize ``[T, H, W, 3]`` uint8 frames to ``size=(width, height)`` (area when shrinking)."""
    frames = np.asarray(frames)
    width, height = size
    if frames.shape[1:3] == (height, width):
        return frames.copy()
    shrink = width * height < frames.shape[1] * frames.shape[2]
    interp = cv2.INTER_AREA if shrink else cv2.INTER_CUBIC
    return np.stack([cv2.resize(f, (width, height), interpolation=interp) for f in frames])


def resize_masks(masks: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize ``[T, H, W]`` boolean masks to ``size=(width, height)`` with nearest neighbour."""
    stack, single = _as_stack(masks)
    width, height = size
    out = np.stack([cv2.resize(m.astype(np.uint8), (width, height), interpolation=cv2.INTER_NEAREST)
                    for m in stack]).astype(bool)
    return out[0] if single else out


def fit_to_area(width: int, height: int, max_area: int, multiple: int = 16) -> tuple[int, int]:
    """The largest size with the clip's aspect ratio, at most ``max_area`` pixels, whose sides are
    multiples of ``multiple`` (at least one ``multiple`` each)."""
    scale = min(1.0, (max_area / float(width * height)) ** 0.5)
    w = max(multiple, int(width * scale) // multiple * multiple)
    h = max(multiple, int(height * scale) // multiple * multiple)
    return w, h

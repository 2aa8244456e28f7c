"""Road mask cleanup, frame by frame in a thread pool (OpenCV releases the GIL), and mask stats.

Per frame, in this order:

1. opening with a 7x7 ellipse (removes specks and thin bridges, e.g. to the sidewalk);
2. keep the connected component (8-connected) that contains the reference point (W/2, 0.85H),
   or the largest one when the reference point is not road;
3. closing with a 9x9 ellipse, 2 iterations (closes gaps along lane markings);
4. fill interior holes: background not reachable from the image border by flood fill is road.

Stats: per-frame coverage (road fraction), IoU between consecutive masks, and the frames below
``LOW_COVERAGE`` (1%) which are flagged.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import cv2
import numpy as np

from segmentation.prompts import REFERENCE_POINT

OPEN_KERNEL = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (7, 7))
CLOSE_KERNEL = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (9, 9))
CLOSE_ITERATIONS = 2
LOW_COVERAGE = 0.01


def default_workers(requested: int = 0) -> int:
    return requested if requested > 0 else max(1, min(8, os.cpu_count() or 1))


def _u8(mask: np.ndarray) -> np.ndarray:
    """uint8 0/1 from bool, 0/1 or 0/255 input."""
    m = np.asarray(mask)
    m = m.view(np.uint8) if m.dtype == bool else (m > 0).astype(np.uint8)
    return np.ascontiguousarray(m)


def _open(m: np.ndarray) -> np.ndarray:
    return cv2.morphologyEx(m, cv2.MORPH_OPEN, OPEN_KERNEL)


def _keep(m: np.ndarray) -> np.ndarray:
    h, w = m.shape
    x, y = reference_pixel(h, w)
    if m[y, x]:
        flood = np.zeros((h + 2, w + 2), np.uint8)
        cv2.floodFill(m, flood, (x, y), 1, 0, 0, 8 | cv2.FLOODFILL_MASK_ONLY | (1 << 8))
        return flood[1:-1, 1:-1]
    count, labels, stats, _ = cv2.connectedComponentsWithStats(m, connectivity=8)
    if count <= 1:
        return np.zeros_like(m)
    largest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    return (labels == largest).view(np.uint8)


def _close(m: np.ndarray) -> np.ndarray:
    return cv2.morphologyEx(np.ascontiguousarray(m), cv2.MORPH_CLOSE, CLOSE_KERNEL, iterations=CLOSE_ITERATIONS)


def _fill(m: np.ndarray) -> np.ndarray:
    reach = np.pad(m, 1)  # a ring of background connects every border pixel
    cv2.floodFill(reach, None, (0, 0), 2, 0, 0, 4)
    return (reach[1:-1, 1:-1] < 2).view(np.uint8)  # road (1) or a hole the border cannot reach (0)


def reference_pixel(height: int, width: int) -> tuple[int, int]:
    """(x, y) of the reference point (W/2, 0.85H), clipped into the frame."""
    x = min(width - 1, int(width * REFERENCE_POINT[0]))
    y = min(height - 1, int(height * REFERENCE_POINT[1]))
    return x, y


def open_mask(mask: np.ndarray) -> np.ndarray:
    """Step 1: morphological opening, 7x7 ellipse. Returns uint8 0/1."""
    return _open(_u8(mask))


def keep_road_component(mask: np.ndarray) -> np.ndarray:
    """Step 2: the 8-connected component holding the reference point, else the largest one."""
    return np.ascontiguousarray(_keep(_u8(mask)))


def close_mask(mask: np.ndarray) -> np.ndarray:
    """Step 3: morphological closing, 9x9 ellipse, 2 iterations."""
    return _close(_u8(mask))


def fill_holes(mask: np.ndarray) -> np.ndarray:
    """Step 4: background regions that the border cannot reach by flood fill become road."""
    return np.ascontiguousarray(_fill(_u8(mask)))


# Closing and hole filling only look this far outside the road component's bounding box (closing:
# 8 px of dilation, then 8 px of erosion around those), so running them on that box plus this
# margin gives the full-frame result.
_MARGIN = 2 * CLOSE_ITERATIONS * (CLOSE_KERNEL.shape[0] // 2) + 1


def clean_mask(mask: np.ndarray) -> np.ndarray:
    """All four steps on one ``[H, W]`` mask; returns bool. Steps 3 and 4 (the costly ones) run on
    the kept component's bounding box plus a margin they cannot reach past: the same result as on
    the full frame, at a fraction of the cost when the road fills part of the frame."""
    road = _keep(_open(_u8(mask)))
    h, w = road.shape
    out = np.zeros((h, w), dtype=np.uint8)
    bx, by, bw, bh = cv2.boundingRect(road)
    if bw == 0:
        return out.view(bool)
    x0, y0 = max(0, bx - _MARGIN), max(0, by - _MARGIN)
    x1, y1 = min(w, bx + bw + _MARGIN), min(h, by + bh + _MARGIN)
    out[y0:y1, x0:x1] = _fill(_close(road[y0:y1, x0:x1]))
    return out.view(bool)


def clean_masks(masks: np.ndarray, workers: int = 0) -> np.ndarray:
    """``clean_mask`` on every frame of ``[T, H, W]``, in a thread pool; returns bool ``[T, H, W]``."""
    masks = np.asarray(masks)
    out = np.empty(masks.shape, dtype=bool)
    n = default_workers(workers)

    def one(t: int) -> None:
        out[t] = clean_mask(masks[t])

    if n == 1 or len(masks) < 2:
        for t in range(len(masks)):
            one(t)
    else:
        with ThreadPoolExecutor(max_workers=n) as pool:
            list(pool.map(one, range(len(masks))))
    return out


def iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two boolean masks (1.0 when both are empty)."""
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    union = np.count_nonzero(a | b)
    return 1.0 if union == 0 else np.count_nonzero(a & b) / union


@dataclass(frozen=True)
class MaskStats:
    coverage: tuple[float, ...]          # per frame, fraction of pixels that are road
    consecutive_iou: tuple[float, ...]   # IoU(frame t-1, frame t) for t >= 1
    low_coverage_frames: tuple[int, ...]  # frames below LOW_COVERAGE

    @property
    def mean_coverage(self) -> float:
        return float(np.mean(self.coverage)) if self.coverage else 0.0

    def summary(self) -> dict[str, object]:
        ious = self.consecutive_iou
        return {
            "frames": len(self.coverage),
            "mean_coverage": round(self.mean_coverage, 6),
            "min_coverage": round(min(self.coverage), 6) if self.coverage else 0.0,
            "mean_consecutive_iou": round(float(np.mean(ious)), 6) if ious else 1.0,
            "min_consecutive_iou": round(min(ious), 6) if ious else 1.0,
            "low_coverage_frames": list(self.low_coverage_frames),
        }

    def as_dict(self) -> dict[str, object]:
        return self.summary() | {
            "low_coverage_threshold": LOW_COVERAGE,
            "coverage": [round(c, 6) for c in self.coverage],
            "consecutive_iou": [round(v, 6) for v in self.consecutive_iou],
        }


def mask_stats(masks: np.ndarray) -> MaskStats:
    """Coverage per frame, consecutive IoU, and the frames flagged for coverage below 1%."""
    masks = np.asarray(masks, bool)
    flat = masks.reshape(len(masks), -1)
    coverage = tuple(float(v) for v in flat.mean(axis=1)) if flat.size else tuple(0.0 for _ in masks)
    ious = tuple(iou(masks[t - 1], masks[t]) for t in range(1, len(masks)))
    low = tuple(t for t, c in enumerate(coverage) if c < LOW_COVERAGE)
    return MaskStats(coverage, ious, low)

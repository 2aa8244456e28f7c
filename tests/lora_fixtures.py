"""Small lane datasets for the LoRA tests, written by hand in the ``training.lane_dataset`` format."""

from __future__ import annotations

import os

import cv2
import numpy as np

from training.lane_dataset import DatasetRow, write_rows

PROMPTS = ("road with double yellow solid lane markings", "road with single white dashed lane markings")


def write_dataset(root: str, n: int = 5, size: tuple[int, int] = (128, 80), extra_rows: tuple[DatasetRow, ...] = ()) -> str:
    """``n`` random frames with a road-like mask (two prompts alternating), plus ``extra_rows`` as given."""
    width, height = size
    os.makedirs(os.path.join(root, "images"), exist_ok=True)
    os.makedirs(os.path.join(root, "masks"), exist_ok=True)
    rng = np.random.default_rng(0)
    rows = []
    for i in range(n):
        image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        mask = np.zeros((height, width), np.uint8)
        mask[height // 2:, (i * 5) % (width // 4):width - width // 5] = 255
        cv2.imwrite(os.path.join(root, "images", f"s{i}.png"), image)
        cv2.imwrite(os.path.join(root, "masks", f"s{i}.png"), mask)
        rows.append(DatasetRow(f"images/s{i}.png", f"masks/s{i}.png", PROMPTS[i % 2], PROMPTS[i % 2]))
    write_rows(root, rows + list(extra_rows))
    return root

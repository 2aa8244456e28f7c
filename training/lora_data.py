"""Lane dataset -> FluxFill training batches: the sample order and the pixels (numpy + torch tensors).

- ``BatchPlan``: which rows each optimizer step uses, on each process, for any step number, without
  state: epoch ``e`` is the permutation ``default_rng([seed, e])`` of the rows, grouped by working size
  (rows whose images resize to the same size share batches), cut into global batches of
  ``batch_size x processes`` rows (under DDP a short last batch of a size is filled up by wrapping
  around, so every process gets ``batch_size`` rows), ordered by where each batch starts in the
  permutation. An optimizer step takes ``gradient_accumulation`` consecutive global batches of one
  epoch (the last step of an epoch may take fewer). Resuming at step N therefore needs only N.
- ``SampleLoader``: reads rows in threads (``lane_dataset.load_sample``), dilates the mask as stage 2
  does (``masking.dilate_masks``, ``dilate_size`` px at the dataset's resolution), resizes like stage
  2's FluxFill call (``masking.fit_to_area`` with multiples of 16, area for the image, nearest for
  the mask) and returns tensors shaped as ``FluxFillPipeline`` preprocesses them: images in [-1, 1]
  ``[B, 3, H, W]``, masks in {0, 1} ``[B, 1, H, W]``.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from core.errors import LanepaintError
from generation.masking import dilate_masks, fit_to_area, resize_frames, resize_masks
from training.lane_dataset import DatasetRow, load_sample, resolve

log = logging.getLogger(__name__)

Size = tuple[int, int]   # (width, height)


def working_sizes(root: str, rows: Sequence[DatasetRow], max_area: int, workers: int = 8) -> list[Size]:
    """The training size of each row: its image size fitted to ``max_area`` (multiples of 16); only the
    PNG headers are read. ``root`` must be local (``lane_dataset.local_copy``)."""

    def one(row: DatasetRow) -> Size:
        with Image.open(resolve(root, row.image)) as image:
            width, height = image.size
        return fit_to_area(width, height, max_area, multiple=16)

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        return list(pool.map(one, rows))


class BatchPlan:
    """Rows per optimizer step and process (see the module docstring)."""

    def __init__(self, sizes: Sequence[Size], batch_size: int, gradient_accumulation: int, seed: int,
                 epochs: int, max_train_steps: int | None = None, num_processes: int = 1, process_index: int = 0):
        if not sizes:
            raise LanepaintError("no training rows")
        self.sizes = list(sizes)
        self.batch_size, self.accumulation, self.seed = batch_size, gradient_accumulation, seed
        self.num_processes, self.process_index = num_processes, process_index
        self._cache: tuple[int, list[list[int]]] | None = None
        self.micro_batches_per_epoch = len(self.epoch_batches(0))
        self.steps_per_epoch = math.ceil(self.micro_batches_per_epoch / gradient_accumulation)
        self.total_steps = int(max_train_steps) if max_train_steps else epochs * self.steps_per_epoch
        self.epochs = math.ceil(self.total_steps / self.steps_per_epoch)

    def epoch_batches(self, epoch: int) -> list[list[int]]:
        """The global batches (row indices) of one epoch, in training order."""
        if self._cache is not None and self._cache[0] == epoch:
            return self._cache[1]
        order = np.random.default_rng([self.seed, epoch]).permutation(len(self.sizes)).tolist()
        buckets: dict[Size, list[int]] = {}
        for index in order:
            buckets.setdefault(self.sizes[index], []).append(index)
        per_batch = self.batch_size * self.num_processes
        position = {index: pos for pos, index in enumerate(order)}
        batches = []
        for rows in buckets.values():
            for start in range(0, len(rows), per_batch):
                chunk = rows[start:start + per_batch]
                if self.num_processes > 1 and len(chunk) < per_batch:
                    chunk = chunk + [rows[i % len(rows)] for i in range(per_batch - len(chunk))]
                batches.append(chunk)
        batches.sort(key=lambda chunk: position[chunk[0]])
        self._cache = (epoch, batches)
        return batches

    def step_batches(self, step: int) -> list[list[int]]:
        """This process's micro-batches (row indices) for optimizer step ``step`` (0-based)."""
        epoch, within = divmod(step, self.steps_per_epoch)
        group = self.epoch_batches(epoch)[within * self.accumulation:(within + 1) * self.accumulation]
        lo = self.process_index * self.batch_size
        return [chunk[lo:lo + self.batch_size] if self.num_processes > 1 else chunk for chunk in group]

    def describe(self) -> str:
        return (f"{len(self.sizes)} row(s), {self.micro_batches_per_epoch} batch(es) of {self.batch_size} x "
                f"{self.num_processes} process(es) per epoch, accumulation {self.accumulation}: "
                f"{self.steps_per_epoch} step(s) per epoch, {self.total_steps} step(s) over {self.epochs} epoch(s)")


@dataclass
class Batch:
    indices: list[int]
    images: torch.Tensor        # [B, 3, H, W] float32 in [-1, 1]
    masks: torch.Tensor         # [B, 1, H, W] float32, 1 = inpaint
    prompts: list[str]          # CLIP prompts
    prompts_2: list[str]        # T5 prompts


def prepare_sample(rgb: np.ndarray, mask: np.ndarray, size: Size, dilate_size: int) -> tuple[np.ndarray, np.ndarray]:
    """(image float32 [3, H, W] in [-1, 1], mask float32 [1, H, W] in {0, 1}) at ``size``: the mask
    dilated at the source resolution, then both resized the way stage 2 resizes FluxFill's input."""
    dilated = dilate_masks(mask, dilate_size)
    image = resize_frames(rgb[None], size)[0].astype(np.float32) / 255.0
    small = resize_masks(dilated, size).astype(np.float32)
    return np.ascontiguousarray(image.transpose(2, 0, 1)) * 2.0 - 1.0, small[None]


class SampleLoader:
    """Loads batches of rows in background threads: ``submit(indices)`` returns a future ``Batch``."""

    def __init__(self, root: str, rows: Sequence[DatasetRow], sizes: Sequence[Size], dilate_size: int,
                 workers: int = 4):
        self.root, self.rows, self.sizes, self.dilate_size = root, list(rows), list(sizes), dilate_size
        self._pool = ThreadPoolExecutor(max_workers=max(1, min(workers, os.cpu_count() or 1)),
                                        thread_name_prefix="lora-data")

    def load(self, indices: Sequence[int]) -> Batch:
        images, masks = [], []
        for index in indices:
            row = self.rows[index]
            rgb, mask = load_sample(self.root, row)
            image, small = prepare_sample(rgb, mask, self.sizes[index], self.dilate_size)
            images.append(image)
            masks.append(small)
        return Batch(list(indices), torch.from_numpy(np.stack(images)), torch.from_numpy(np.stack(masks)),
                     [self.rows[i].prompt for i in indices], [self.rows[i].text_2 for i in indices])

    def submit(self, indices: Sequence[int]) -> Future[Batch]:
        return self._pool.submit(self.load, list(indices))

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

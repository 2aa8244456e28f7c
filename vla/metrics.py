"""minADE and the paired statistics of its change under an edit.

- ``min_ade``: min over samples of the mean XY L2 distance to the ground truth over the waypoints.
- ``plan_displacement``: how far the plan moved between the original and the edited input (ADE/FDE of
  the paired samples), the direct measure of the edit's effect.
- ``paired_delta_stats``: for paired values (edited, original) of one instruction, the deltas
  ``edited - original`` with mean, median, a percentile bootstrap 95% interval of the mean
  (seeded), and a two-sided paired permutation test of "mean delta = 0" by sign flips: exact
  (all 2^n sign patterns) up to n = 16, else Monte Carlo with the (1 + hits) / (1 + draws) rule.
- ``smallest_p_value``: the smallest p-value the sign-flip test can give for n pairs (2 / 2^n exactly):
  below n = 6 it is at least 0.0625, so no effect however large can reach p < 0.05 (``too_few_pairs``).
- ``holm_adjust``: Holm's step-down adjustment of the p-values of a run's instructions (family-wise error).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

EXACT_PERMUTATION_MAX_N = 16


def min_ade(pred_xyz: np.ndarray, gt_xyz: np.ndarray) -> float:
    """``pred_xyz [S, T, 3]`` (or ``[T, 3]``) against ``gt_xyz [T, 3]``: min over S of mean XY error."""
    pred = np.asarray(pred_xyz, dtype=np.float64)
    gt = np.asarray(gt_xyz, dtype=np.float64)
    if pred.ndim == 2:
        pred = pred[None]
    if pred.shape[1:] != gt.shape or gt.ndim != 2 or gt.shape[1] < 2:
        raise ValueError(f"minADE: predictions {pred.shape} do not match ground truth {gt.shape}")
    ade = np.linalg.norm(pred[..., :2] - gt[None, :, :2], axis=-1).mean(axis=-1)
    return float(ade.min())


def plan_displacement(original_xyz: np.ndarray, edited_xyz: np.ndarray) -> dict[str, object]:
    """How far the plan moved: per sample ``k``, the mean (ADE) and final (FDE) XY distance between the
    edited input's trajectory ``k`` and the original input's trajectory ``k`` (paired samples start from the
    same noise), and their means over the samples. Inputs ``[S, T, 3]``."""
    a = np.asarray(original_xyz, dtype=np.float64)
    b = np.asarray(edited_xyz, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 3:
        raise ValueError(f"plan displacement: trajectories {a.shape} and {b.shape} do not pair")
    dist = np.linalg.norm(a[..., :2] - b[..., :2], axis=-1)          # [S, T]
    ade, fde = dist.mean(axis=-1), dist[:, -1]
    return {"ade_meters": float(ade.mean()), "fde_meters": float(fde.mean()),
            "ade_per_sample": [float(v) for v in ade], "fde_per_sample": [float(v) for v in fde]}


@dataclass(frozen=True)
class DeltaStats:
    n: int
    mean: float
    median: float
    ci_low: float
    ci_high: float
    p_value: float
    permutation: str          # "exact (2^n sign flips)" or "monte carlo (N draws)"
    bootstrap_samples: int

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def bootstrap_ci(values: np.ndarray, samples: int = 10000, seed: int = 0,
                 level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean (resampling with replacement, seeded)."""
    values = np.asarray(values, dtype=np.float64)
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), size=(samples, len(values)))].mean(axis=1)
    tail = (1.0 - level) / 2.0 * 100.0
    low, high = np.percentile(means, [tail, 100.0 - tail])
    return float(low), float(high)


def sign_flip_p_value(deltas: np.ndarray, samples: int = 10000, seed: int = 0) -> tuple[float, str]:
    """Two-sided paired permutation p-value of mean(deltas) = 0 (sign flips)."""
    deltas = np.asarray(deltas, dtype=np.float64)
    n = len(deltas)
    observed = abs(deltas.mean())
    tol = 1e-12 * max(1.0, float(np.abs(deltas).max()))
    if n <= EXACT_PERMUTATION_MAX_N:
        signs = np.array(list(itertools.product((1.0, -1.0), repeat=n)))
        means = np.abs(signs @ deltas) / n
        return float(np.mean(means >= observed - tol)), f"exact ({len(signs)} sign flips)"
    rng = np.random.default_rng(seed)
    signs = rng.choice((1.0, -1.0), size=(samples, n))
    hits = int(np.sum(np.abs(signs @ deltas) / n >= observed - tol))
    return (1.0 + hits) / (1.0 + samples), f"monte carlo ({samples} draws)"


def paired_delta_stats(edited: np.ndarray, original: np.ndarray, bootstrap_samples: int = 10000,
                       permutation_samples: int = 10000, seed: int = 0) -> DeltaStats:
    edited = np.asarray(edited, dtype=np.float64)
    original = np.asarray(original, dtype=np.float64)
    if edited.shape != original.shape or edited.ndim != 1 or len(edited) == 0:
        raise ValueError(f"paired statistics need two equal, non-empty 1-D arrays, got {edited.shape} "
                         f"and {original.shape}")
    deltas = edited - original
    low, high = bootstrap_ci(deltas, bootstrap_samples, seed)
    p, how = sign_flip_p_value(deltas, permutation_samples, seed)
    return DeltaStats(len(deltas), float(deltas.mean()), float(np.median(deltas)), low, high, p, how,
                      bootstrap_samples)


def smallest_p_value(n: int, permutation_samples: int = 10000) -> float:
    """The smallest two-sided sign-flip p-value attainable with ``n`` pairs (see ``sign_flip_p_value``)."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if n <= EXACT_PERMUTATION_MAX_N:
        return 2.0 / 2.0**n              # only the observed signs and their mirror image reach |mean|
    return 1.0 / (1.0 + permutation_samples)


def too_few_pairs(n: int, alpha: float = 0.05, permutation_samples: int = 10000) -> bool:
    """True when ``n`` pairs can never give p < ``alpha``, whatever the data."""
    return smallest_p_value(n, permutation_samples) >= alpha


def holm_adjust(p_values: list[float]) -> list[float]:
    """Holm-adjusted p-values, in the input order: the k-th smallest (k from 0) times (m - k), made
    monotone and capped at 1."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [0.0] * m
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[index]))
        adjusted[index] = running
    return adjusted


def instruction_delta_stats(pairs: dict[str, tuple[Sequence[float], Sequence[float]]], bootstrap_samples: int = 10000,
                            permutation_samples: int = 10000, seed: int = 0) -> dict[str, dict[str, object]]:
    """Per instruction, from its (edited, original) values: ``paired_delta_stats`` plus the smallest attainable
    p, whether n is too small for p < 0.05, and the Holm-adjusted p over all the instructions given."""
    out: dict[str, dict[str, object]] = {}
    for name, (edited, original) in pairs.items():
        stats = paired_delta_stats(np.asarray(edited, dtype=np.float64), np.asarray(original, dtype=np.float64),
                                   bootstrap_samples, permutation_samples, seed)
        out[name] = {**stats.as_dict(), "smallest_attainable_p": smallest_p_value(stats.n, permutation_samples),
                     "too_few_pairs": too_few_pairs(stats.n, permutation_samples=permutation_samples)}
    for entry, p_holm in zip(out.values(), holm_adjust([e["p_value"] for e in out.values()]), strict=True):
        entry["p_holm"] = p_holm
    return out


def finite_or_none(value: float | None) -> float | None:
    """JSON-safe float: NaN/inf become None."""
    if value is None or not math.isfinite(value):
        return None
    return float(value)

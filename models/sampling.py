"""Bounded, class-stratified row samples: fit what does not need every row (baselines) on a fixed budget."""

from __future__ import annotations

import numpy as np
import pandas as pd


def stratified_sample(y, max_rows: int, seed: int = 0) -> np.ndarray:
    """Sorted positions of at most `max_rows` rows, each class kept in its own proportion.

    All positions when there are no more than `max_rows` rows (small data is left exactly as it is). Otherwise
    every class keeps round(share × max_rows) rows, at least one, drawn without replacement with `seed`; the
    base rate of the sample equals the full data's to within one row.
    """
    y = np.asarray(y)
    n = len(y)
    if max_rows <= 0:
        raise ValueError(f"max_rows must be positive, got {max_rows}")
    if n <= max_rows:
        return np.arange(n)
    rng = np.random.default_rng(seed)
    picked = []
    for cls in np.unique(y):
        where = np.flatnonzero(y == cls)
        k = max(1, int(round(len(where) * max_rows / n)))
        picked.append(rng.choice(where, size=min(k, len(where)), replace=False))
    return np.sort(np.concatenate(picked))


def downsample_negatives(y, rate: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Every positive and a random `rate` share of the negatives: (sorted positions, weights).

    Kept negatives weigh 1 / rate and positives 1, so the weighted log loss, and with it the fitted
    probabilities, are those of the full data in expectation (the mean predicted probability stays at the base
    rate). `rate` 1 keeps every row with weight 1.
    """
    y = np.asarray(y)
    if not 0 < rate <= 1:
        raise ValueError(f"negative sampling rate must be in (0, 1], got {rate}")
    if rate == 1:
        return np.arange(len(y)), np.ones(len(y))
    keep = (y == 1) | (np.random.default_rng(seed).random(len(y)) < rate)
    positions = np.flatnonzero(keep)
    return positions, np.where(y[positions] == 1, 1.0, 1.0 / rate)


def cluster_sample(groups, max_rows: int, seed: int = 0) -> np.ndarray:
    """Sorted positions of whole groups (an account's rows) drawn at random until at least `max_rows` rows, or
    every row when there are no more than `max_rows`. A group is never split, so statistics that count a group as
    one cluster (effective sizes) stay valid on the sample. Missing group keys each count as a group of their own.
    """
    if max_rows <= 0:
        raise ValueError(f"max_rows must be positive, got {max_rows}")
    keys = np.asarray(groups, dtype=object)
    n = len(keys)
    if n <= max_rows:
        return np.arange(n)
    missing = pd.isna(keys)
    codes = np.full(n, -1, dtype=np.int64)
    _, codes[~missing] = np.unique(keys[~missing].astype(str), return_inverse=True)
    n_named = int(codes.max()) + 1 if (~missing).any() else 0
    codes[missing] = n_named + np.arange(int(missing.sum()))
    sizes = np.bincount(codes)
    order = np.random.default_rng(seed).permutation(len(sizes))
    chosen = order[: int(np.searchsorted(np.cumsum(sizes[order]), max_rows)) + 1]
    return np.flatnonzero(np.isin(codes, chosen))

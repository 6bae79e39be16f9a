"""Leakage guard: a single column that predicts the label almost perfectly was probably filled in afterwards."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from models.evaluate import fast_auc

DEFAULT_MAX_AUC = 0.95


@dataclass(frozen=True)
class LeakWarning:
    column: str
    auc: float

    def message(self, threshold: float = DEFAULT_MAX_AUC) -> str:
        return (f"possible leakage: column {self.column!r} alone predicts the label with AUC {self.auc:.3f} "
                f"(> {threshold}); drop it in the profile if it is filled in after the outcome")


def single_column_auc(x: pd.Series, y: np.ndarray, n_folds: int = 5, seed: int = 0) -> float:
    """The AUC of one column used alone, ≥ 0.5 by symmetry (NaN when the label has one class).

    Numbers are ranked as they are, missing values placed at whichever end fits better. Categories (and
    missingness) are scored by their positive rate *out of fold*, so an id-like column with a value per row
    scores ≈ 0.5 instead of a spurious 1.0.
    """
    y = np.asarray(y, dtype=int)
    if len(np.unique(y)) < 2:
        return float("nan")
    if pd.api.types.is_numeric_dtype(x.dtype) and not pd.api.types.is_bool_dtype(x.dtype):
        values = pd.to_numeric(x, errors="coerce").astype(float).to_numpy()
        missing = np.isnan(values)
        if missing.all():
            return 0.5
        if not missing.any():  # nothing to place at either end: one ranking
            auc = fast_auc(y, values)
            return float(max(0.5, auc, 1.0 - auc))
        best = 0.5
        for fill in (np.nanmin(values) - 1.0, np.nanmax(values) + 1.0):
            auc = fast_auc(y, np.where(missing, fill, values))
            best = max(best, auc, 1.0 - auc)
        return float(best)
    key = pd.Series(x.astype(object).where(x.notna(), "__missing__").astype(str).to_numpy())
    codes, uniques = pd.factorize(key)  # each value once: the folds' rates are counts per code
    folds = np.random.default_rng(seed).integers(0, n_folds, len(y))
    prior = y.mean()
    score = np.empty(len(y))
    for k in range(n_folds):
        held = folds == k
        sums = np.bincount(codes[~held], weights=y[~held], minlength=len(uniques))
        counts = np.bincount(codes[~held], minlength=len(uniques))
        rate = (sums + prior) / (counts + 1.0)  # one pseudo-observation at the prior
        score[held] = np.where(counts[codes[held]] > 0, rate[codes[held]], prior)  # a value unseen out of fold: prior
    auc = fast_auc(y, score)
    return float(max(auc, 1.0 - auc))


def leakage_warnings(X: pd.DataFrame, y, threshold: float = DEFAULT_MAX_AUC) -> list[LeakWarning]:
    """Columns whose single-column AUC against ``y`` exceeds ``threshold``, most suspicious first."""
    y = np.asarray(y, dtype=int)
    found = []
    for col in X.columns:
        auc = single_column_auc(X[col], y)
        if np.isfinite(auc) and auc > threshold:
            found.append(LeakWarning(str(col), auc))
    return sorted(found, key=lambda w: -w.auc)

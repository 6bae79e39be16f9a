"""The conversion model with its trees compiled to machine code (lleaves): the same probabilities, faster predict.

Only the booster's raw score is swapped for the compiled one; column preparation, calibration and contributions
stay the ConversionModel's own, so the compiled path cannot drift from the reference one (tests compare them).
"""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd


class CompiledConversionModel:
    """Wraps a fitted ConversionModel and a compiled `lleaves.Model` of the same booster (best iteration)."""

    def __init__(self, model, compiled, n_jobs: int = 2):
        self.model = model
        self.compiled = compiled
        self.n_jobs = n_jobs
        self.feature_names_in_ = model.feature_names_in_
        self.best_iteration_ = model.best_iteration_
        self.booster_ = model.booster_

    def _margin(self, X: pd.DataFrame, prepared: bool = False) -> np.ndarray:
        """The compiled trees' log-odds (lleaves returns the probability), plus any logistic offset."""
        X = X if prepared else self.model._prepare(X)
        p = np.clip(np.asarray(self.compiled.predict(X, n_jobs=self.n_jobs), dtype=float), 1e-15, 1 - 1e-15)
        margin = np.log(p / (1.0 - p))
        if getattr(self.model, "offset_model_", None) is not None:
            margin = margin + self.model._offset(X)
        return margin

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        fast = copy.copy(self.model)  # shallow: shares the booster, blend and calibrator, swaps only `_margin`
        fast._margin = self._margin
        return fast.predict_proba(X)

    def contributions(self, X: pd.DataFrame) -> pd.DataFrame:
        return self.model.contributions(X)

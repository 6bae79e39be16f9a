"""Modelling helpers for labelled rows without snapshots: hold-out splits, fitting with a validation part,
and stratified k-fold cross-validated ROC AUC (the protocol of published results on flat lead data sets)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold, train_test_split

from models.conversion import BoosterConfig, ConversionModel


def holdout_split(y: np.ndarray, time: np.ndarray | pd.Series | None = None, test_share: float = 0.2,
                  seed: int = 42) -> tuple[np.ndarray, np.ndarray]:
    """(train, test) row positions: the latest ``test_share`` of rows by ``time`` when given (ties stay on
    one side), otherwise a stratified random split."""
    y = np.asarray(y, dtype=int)
    n = len(y)
    if time is not None:
        t = pd.Series(np.asarray(time))
        order = np.argsort(t.to_numpy(), kind="stable")
        cut_value = t.iloc[order[int(np.floor(n * (1 - test_share)))]]
        test = np.flatnonzero((t >= cut_value).to_numpy())
        train = np.flatnonzero((t < cut_value).to_numpy())
        return train, test
    idx = np.arange(n)
    train, test = train_test_split(idx, test_size=test_share, stratify=y, random_state=seed)
    return np.sort(train), np.sort(test)


def fit_with_validation(X: pd.DataFrame, y: np.ndarray, config: BoosterConfig, calibration: str = "isotonic",
                        time: np.ndarray | pd.Series | None = None, val_share: float = 0.2) -> ConversionModel:
    """A ConversionModel whose early stopping and calibration use a validation part of the training rows:
    the latest rows when ``time`` is given (as the model will be used), otherwise a stratified sample."""
    y = np.asarray(y, dtype=int)
    fit_idx, val_idx = holdout_split(y, time, val_share, config.seed)
    if len(np.unique(y[val_idx])) < 2 or len(np.unique(y[fit_idx])) < 2:
        fit_idx, val_idx = holdout_split(y, None, val_share, config.seed)
    X = X.reset_index(drop=True)
    return ConversionModel(config, calibration=calibration).fit(
        X.iloc[fit_idx], y[fit_idx], X.iloc[val_idx], y[val_idx]
    )


def cross_validated_auc(X: pd.DataFrame, y: np.ndarray, config: BoosterConfig, n_folds: int = 5,
                        groups: np.ndarray | None = None, calibration: str = "none") -> list[float]:
    """ROC AUC of each of ``n_folds`` stratified folds (grouped when ``groups`` is given: rows of one lead
    never sit on both sides). Each fold's model stops early on a stratified part of its training folds."""
    y = np.asarray(y, dtype=int)
    X = X.reset_index(drop=True)
    if groups is None:
        splitter = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=config.seed)
        splits = splitter.split(np.zeros(len(y)), y)
    else:
        splitter = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=config.seed)
        splits = splitter.split(np.zeros(len(y)), y, groups)
    scores = []
    for train, test in splits:
        model = fit_with_validation(X.iloc[train], y[train], config, calibration)
        scores.append(float(roc_auc_score(y[test], model.predict_proba(X.iloc[test])[:, 1])))
    return scores

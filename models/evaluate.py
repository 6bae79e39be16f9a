"""Evaluation metrics for probabilistic lead scores, computed on probabilities (never on hard labels)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score


def lift_at(y: np.ndarray, p: np.ndarray, fraction: float) -> tuple[float, float]:
    """(lift, capture) of the top `fraction` of leads by score: conversion rate vs base rate, share of wins."""
    y = np.asarray(y, dtype=float)
    n_top = max(1, int(round(len(y) * fraction)))
    top = np.argsort(-np.asarray(p), kind="stable")[:n_top]
    base = y.mean()
    if base == 0:
        return float("nan"), float("nan")
    return float(y[top].mean() / base), float(y[top].sum() / y.sum())


def expected_calibration_error(y: np.ndarray, p: np.ndarray, n_bins: int = 10) -> float:
    """ECE over equal-count bins: the weighted mean |observed rate - mean predicted| (robust to skewed scores)."""
    table = reliability_table(y, p, n_bins)
    return float((table["count"] * (table["observed"] - table["predicted"]).abs()).sum() / table["count"].sum())


def reliability_table(y: np.ndarray, p: np.ndarray, n_bins: int = 10) -> pd.DataFrame:
    frame = pd.DataFrame({"y": np.asarray(y, dtype=float), "p": np.asarray(p, dtype=float)})
    frame["bin"] = pd.qcut(frame["p"].rank(method="first"), q=min(n_bins, len(frame)), labels=False)
    table = frame.groupby("bin").agg(predicted=("p", "mean"), observed=("y", "mean"), count=("y", "size"))
    return table.reset_index(drop=True)


def classification_metrics(y, p, top_fraction: float = 0.10) -> dict[str, float]:
    y = np.asarray(y, dtype=int)
    p = np.asarray(p, dtype=float)
    lift, capture = lift_at(y, p, top_fraction)
    return {
        "roc_auc": float(roc_auc_score(y, p)),
        "pr_auc": float(average_precision_score(y, p)),
        "brier": float(brier_score_loss(y, p)),
        "log_loss": float(log_loss(y, np.clip(p, 1e-9, 1 - 1e-9), labels=[0, 1])),
        "ece": expected_calibration_error(y, p),
        f"lift_top{int(round(top_fraction * 100))}": lift,
        f"capture_top{int(round(top_fraction * 100))}": capture,
        "base_rate": float(y.mean()),
        "n": int(len(y)),
        "n_positive": int(y.sum()),
    }


def bootstrap_ci(y, p, metric=roc_auc_score, n_boot: int = 200, seed: int = 0, alpha: float = 0.05) -> tuple[float, float]:
    """Percentile bootstrap interval of `metric(y, p)`; resamples lacking a class are skipped."""
    y = np.asarray(y)
    p = np.asarray(p)
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(n_boot):
        idx = rng.integers(0, len(y), len(y))
        if y[idx].min() == y[idx].max():
            continue
        values.append(metric(y[idx], p[idx]))
    if not values:
        return float("nan"), float("nan")
    lo, hi = np.quantile(values, [alpha / 2, 1 - alpha / 2])
    return float(lo), float(hi)

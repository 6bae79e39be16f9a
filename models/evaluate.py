"""Evaluation metrics for probabilistic lead scores, computed on probabilities (never on hard labels)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score

from models.config import TOP_FRACTIONS, EvaluateConfig  # noqa: F401 - EvaluateConfig re-exported


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


ECE_WARN = 0.05  # a held-out calibration error above this is a warning (metrics.json, the CLI, the report)


def calibration_warning(ece: float, n: int | None = None, ci: tuple[float, float] | None = None,
                        limit: float = ECE_WARN) -> str | None:
    """The warning for a held-out ECE above `limit`, else None. `n` (held-out rows) and `ci` (its bootstrap
    interval) go into the message: on a small hold-out the ECE is noisy."""
    if not np.isfinite(ece) or ece <= limit:
        return None
    where = f" on {n:,} held-out rows" if n is not None else ""
    interval = f" (95% CI {ci[0]:.3f}-{ci[1]:.3f})" if ci is not None else ""
    return (f"calibration: held-out ECE {ece:.3f}{interval}{where} is above {limit:.2f}: the probabilities "
            f"(p_convert, expected value, the SQL threshold) are off by that much on average; check the hold-out "
            f"against the training rows (a label or population shift) before acting on them")


def reliability_table(y: np.ndarray, p: np.ndarray, n_bins: int = 10) -> pd.DataFrame:
    """Equal-count bins of the score (ties broken by position): mean predicted, observed rate and count per bin."""
    y = np.asarray(y, dtype=float)
    p = np.asarray(p, dtype=float)
    n_bins = max(1, min(n_bins, len(y)))
    order = np.argsort(p, kind="stable")
    bins = np.empty(len(y), dtype=np.int64)
    bins[order] = (np.arange(len(y)) * n_bins) // max(len(y), 1)
    count = np.bincount(bins, minlength=n_bins).astype(float)
    return pd.DataFrame({"predicted": np.bincount(bins, weights=p, minlength=n_bins) / count,
                         "observed": np.bincount(bins, weights=y, minlength=n_bins) / count,
                         "count": count.astype(np.int64)})


def fast_auc(y: np.ndarray, p: np.ndarray, keys: np.ndarray | None = None) -> float:
    """ROC AUC by the rank-sum (Mann-Whitney) formula with mid-ranks for ties; equals sklearn's, much faster.
    ``keys``: `sort_keys` of ``p`` (the same ranks, sorted faster)."""
    from scipy.stats import rankdata

    y = np.asarray(y).astype(bool)
    n_pos = int(y.sum())
    n_neg = len(y) - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(p if keys is None else keys)
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


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




def precision_at_k(y: np.ndarray, p: np.ndarray, k: int) -> float:
    """Share of converters among the k highest-scored leads (what a sales team of capacity k would see)."""
    y = np.asarray(y, dtype=float)
    k = int(min(max(k, 1), len(y)))
    top = np.argsort(-np.asarray(p), kind="stable")[:k]
    return float(y[top].mean())


def sort_keys(p: np.ndarray) -> np.ndarray | None:
    """Each score's rank among the distinct scores as a 16-bit integer (None past 65,535 distinct scores, or with
    a missing score): sorting these orders the rows, ties included, exactly as sorting the scores, and numpy sorts
    16-bit integers by radix, many times faster. Taken once for a sample and gathered for each bootstrap resample."""
    p = np.asarray(p, dtype=float)
    if not np.isfinite(p).all():
        return None
    distinct, ranks = np.unique(p, return_inverse=True)
    if len(distinct) > np.iinfo(np.uint16).max:
        return None
    return ranks.astype(np.uint16)


def all_metrics(y: np.ndarray, p: np.ndarray, top_fractions: tuple[float, ...] = TOP_FRACTIONS,
                capacity_k: int | None = None, keys: np.ndarray | None = None) -> dict[str, float]:
    """Every metric of `full_report` for one sample, from two sorts shared by all of them: the same values as the
    one-metric functions (`fast_auc`, scikit-learn's average precision, Brier and log loss, `lift_at`,
    `precision_at_k`, `expected_calibration_error`), fast enough to run on hundreds of bootstrap resamples.
    ``keys``: `sort_keys` of ``p``; the same values, faster."""
    y = np.asarray(y, dtype=int)
    p = np.asarray(p, dtype=float)
    yf = y.astype(float)
    n, n_pos = len(y), int(y.sum())
    out = {"roc_auc": fast_auc(y, p, keys)}
    # best first; ties keep their positions (lift_at, precision_at_k)
    desc = np.argsort(-p if keys is None else np.iinfo(np.uint16).max - keys, kind="stable")
    y_desc, p_desc = yf[desc], p[desc]
    # average precision over distinct thresholds (scikit-learn's definition): sum of (R_k - R_k-1) * P_k
    ends = np.r_[np.flatnonzero(np.diff(p_desc)), n - 1]
    tps = np.cumsum(y_desc)[ends]
    precision = tps / (ends + 1)
    recall = tps / n_pos if n_pos else np.zeros_like(tps)
    out["pr_auc"] = float(np.sum(np.diff(np.r_[0.0, recall]) * precision)) if n_pos else 0.0
    out["brier"] = float(np.mean((p - yf) ** 2))
    q = np.clip(p, 1e-9, 1 - 1e-9)
    out["log_loss"] = float(-np.mean(yf * np.log(q) + (1 - yf) * np.log1p(-q)))
    n_bins = max(1, min(10, n))
    bins = np.empty(n, dtype=np.int64)
    bins[np.argsort(p if keys is None else keys, kind="stable")] = (np.arange(n) * n_bins) // max(n, 1)
    count = np.bincount(bins, minlength=n_bins).astype(float)
    gap = np.abs(np.bincount(bins, weights=yf, minlength=n_bins) - np.bincount(bins, weights=p, minlength=n_bins))
    out["ece"] = float(gap[count > 0].sum() / count.sum())  # sum |observed - predicted| x count / rows
    wins = np.cumsum(y_desc)
    for f in top_fractions:
        pct = int(round(f * 100))
        n_top = max(1, int(round(n * f)))
        won = wins[n_top - 1]
        out[f"lift_top{pct}"] = float((won / n_top) / yf.mean()) if n_pos else float("nan")
        out[f"capture_top{pct}"] = float(won / n_pos) if n_pos else float("nan")
    if capacity_k:
        k = int(min(max(capacity_k, 1), n))
        out[f"precision_at_{capacity_k}"] = float(wins[k - 1] / k)
    return out


def full_report(y, p, top_fractions: tuple[float, ...] = TOP_FRACTIONS, capacity_k: int | None = None,
                n_boot: int = 200, seed: int = 0, alpha: float = 0.05) -> dict[str, dict[str, float]]:
    """Every metric with its percentile-bootstrap interval: {name: {value, ci_low, ci_high}}.

    All metrics share the same bootstrap resamples (rows drawn with replacement; resamples lacking a class
    are skipped), so their intervals are consistent with each other.
    """
    y = np.asarray(y, dtype=int)
    p = np.asarray(p, dtype=float)
    top_fractions = tuple(top_fractions)
    keys = sort_keys(p)
    values = all_metrics(y, p, top_fractions, capacity_k, keys)
    draws: dict[str, list[float]] = {name: [] for name in values}
    for idx in bootstrap_indices(y, n_boot, seed):
        for name, v in all_metrics(y[idx], p[idx], top_fractions, capacity_k,
                                   None if keys is None else keys[idx]).items():
            draws[name].append(v)
    out = {}
    for name, value in values.items():
        lo, hi = (np.quantile(draws[name], [alpha / 2, 1 - alpha / 2]) if draws[name] else (np.nan, np.nan))
        out[name] = {"value": value, "ci_low": float(lo), "ci_high": float(hi)}
    return out


def bootstrap_indices(y: np.ndarray, n_boot: int, seed: int = 0) -> list[np.ndarray]:
    """`n_boot` resamples of row positions, each holding both classes."""
    y = np.asarray(y)
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n_boot):
        idx = rng.integers(0, len(y), len(y))
        if y[idx].min() != y[idx].max():
            out.append(idx)
    return out


def paired_auc_test(y, p_a, p_b, n_boot: int = 1000, seed: int = 0, alpha: float = 0.05) -> dict[str, float]:
    """Paired bootstrap of AUC(b) - AUC(a) on the same rows: the difference, its interval and a p-value.

    The p-value is two-sided: twice the smaller share of resampled differences on either side of zero
    (floored at 1 / n_resamples).
    """
    y = np.asarray(y, dtype=int)
    p_a = np.asarray(p_a, dtype=float)
    p_b = np.asarray(p_b, dtype=float)
    if not (len(y) == len(p_a) == len(p_b)):
        raise ValueError(f"paired test needs scores of the same rows: {len(y)}, {len(p_a)}, {len(p_b)}")
    diff = fast_auc(y, p_b) - fast_auc(y, p_a)
    keys_a, keys_b = sort_keys(p_a), sort_keys(p_b)  # the same ranks, sorted faster (see `full_report`)
    diffs = np.array([fast_auc(y[i], p_b[i], None if keys_b is None else keys_b[i])
                      - fast_auc(y[i], p_a[i], None if keys_a is None else keys_a[i])
                      for i in bootstrap_indices(y, n_boot, seed)])
    lo, hi = np.quantile(diffs, [alpha / 2, 1 - alpha / 2])
    tail = min((diffs <= 0).mean(), (diffs >= 0).mean())
    p_value = float(min(1.0, max(2 * tail, 1.0 / len(diffs))))
    return {"auc_a": fast_auc(y, p_a), "auc_b": fast_auc(y, p_b), "auc_diff": diff,
            "ci_low": float(lo), "ci_high": float(hi), "p_value": p_value, "n_boot": int(len(diffs))}


def feature_importance(model, X: pd.DataFrame, n: int = 1_000, seed: int = 0) -> pd.Series:
    """What drives a model's score, largest first: a tree model's gain importance; for a model without trees (the
    logistic fallback) the mean absolute log-odds contribution over a sample of at most `n` rows of `X`."""
    if hasattr(model, "feature_importance"):
        return model.feature_importance()
    sample = X.sample(n=min(n, len(X)), random_state=seed) if len(X) else X
    return model.contributions(sample).abs().mean().sort_values(ascending=False)

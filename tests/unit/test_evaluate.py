"""Evaluation metrics: exact values on small cases, bootstrap intervals, the paired AUC test, gains."""

import numpy as np
import pytest

from models.evaluate import (
    all_metrics,
    bootstrap_indices,
    expected_calibration_error,
    fast_auc,
    full_report,
    lift_at,
    paired_auc_test,
    precision_at_k,
    sort_keys,
)

Y = np.array([1, 0, 1, 0, 0, 0, 0, 0, 0, 1])
P = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.05])


def test_precision_lift_and_capture_on_a_hand_checked_ranking():
    assert precision_at_k(Y, P, 2) == 0.5 and precision_at_k(Y, P, 3) == pytest.approx(2 / 3)
    assert precision_at_k(Y, P, 100) == pytest.approx(0.3)  # K beyond the rows: all of them
    lift, capture = lift_at(Y, P, 0.2)  # top 2 rows: one of the three conversions
    assert capture == pytest.approx(1 / 3) and lift == pytest.approx(0.5 / 0.3)


def test_ece_is_zero_for_matching_rates_and_the_shift_for_a_shifted_score():
    rng = np.random.default_rng(0)
    p = rng.uniform(0.0, 0.5, 200_000)
    y = (rng.random(len(p)) < p).astype(int)
    assert expected_calibration_error(y, p) < 0.005
    assert expected_calibration_error(y, np.clip(p + 0.1, 0, 1)) == pytest.approx(0.1, abs=0.005)


def test_full_report_intervals_bracket_the_values():
    rng = np.random.default_rng(1)
    p = rng.random(3000) * 0.4
    y = (rng.random(3000) < p).astype(int)
    rep = full_report(y, p, (0.05, 0.1, 0.2), capacity_k=100, n_boot=100)
    assert set(rep) >= {"roc_auc", "pr_auc", "brier", "log_loss", "ece", "lift_top5", "capture_top20", "precision_at_100"}
    for name, v in rep.items():
        assert v["ci_low"] <= v["value"] <= v["ci_high"], name
    assert 0.6 < rep["roc_auc"]["value"] < 0.8 and rep["roc_auc"]["ci_high"] - rep["roc_auc"]["ci_low"] < 0.06


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_all_metrics_equal_the_one_metric_functions_with_ties(seed):
    """The bootstrap's shared-sort metrics are the same numbers as the functions (and scikit-learn) one by one."""
    from sklearn.metrics import average_precision_score, brier_score_loss, log_loss

    rng = np.random.default_rng(seed)
    n = [50, 999, 4000][seed]
    p = np.round(rng.random(n) * 0.6, [2, 3, 6][seed])  # rounded scores: many ties
    y = (rng.random(n) < p).astype(int)
    got = all_metrics(y, p, (0.05, 0.1, 0.2), capacity_k=37)
    expected = {"roc_auc": fast_auc(y, p), "pr_auc": average_precision_score(y, p), "brier": brier_score_loss(y, p),
                "log_loss": log_loss(y, np.clip(p, 1e-9, 1 - 1e-9), labels=[0, 1]),
                "ece": expected_calibration_error(y, p), "precision_at_37": precision_at_k(y, p, 37)}
    for f in (0.05, 0.1, 0.2):
        lift, capture = lift_at(y, p, f)
        expected[f"lift_top{int(round(f * 100))}"], expected[f"capture_top{int(round(f * 100))}"] = lift, capture
    assert set(got) == set(expected)
    for name, value in expected.items():
        assert got[name] == pytest.approx(value, rel=1e-9, abs=1e-12), name


def test_paired_auc_test_detects_a_better_score_and_not_an_identical_one():
    rng = np.random.default_rng(2)
    signal = rng.standard_normal(4000)
    y = (rng.random(4000) < 1 / (1 + np.exp(-(2 * signal - 2)))).astype(int)
    weak = signal + 2.0 * rng.standard_normal(4000)
    same = paired_auc_test(y, weak, weak, n_boot=200)
    assert same["auc_diff"] == 0.0 and same["p_value"] == 1.0
    better = paired_auc_test(y, weak, signal, n_boot=200)
    assert better["auc_diff"] > 0.1 and better["ci_low"] > 0 and better["p_value"] <= 0.01
    assert paired_auc_test(y, signal, weak, n_boot=200)["auc_diff"] == pytest.approx(-better["auc_diff"])
    with pytest.raises(ValueError, match="same rows"):
        paired_auc_test(y, weak[:-1], signal)


def test_fast_auc_equals_sklearn_with_ties():
    from sklearn.metrics import roc_auc_score

    from models.evaluate import fast_auc

    rng = np.random.default_rng(4)
    y = rng.integers(0, 2, 5000)
    p = np.round(rng.random(5000) + 0.3 * y, 2)  # many ties
    assert fast_auc(y, p) == pytest.approx(roc_auc_score(y, p), abs=1e-12)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_bootstrap_sort_keys_give_exactly_the_plain_metrics(seed):
    """`full_report` sorts each resample by 16-bit rank keys: every resample's metrics are bit-for-bit those of
    sorting the scores themselves, ties (isotonic steps) included."""
    rng = np.random.default_rng(seed)
    n = [300, 5000, 20000][seed]
    p = np.round(rng.random(n) * 0.5, [2, 3, 5][seed])
    y = (rng.random(n) < p).astype(int)
    keys = sort_keys(p)
    assert keys is not None and keys.dtype == np.uint16
    assert np.array_equal(np.argsort(keys, kind="stable"), np.argsort(p, kind="stable"))
    for idx in bootstrap_indices(y, 5, seed):
        assert all_metrics(y[idx], p[idx], (0.05, 0.1), 37, keys[idx]) == all_metrics(y[idx], p[idx], (0.05, 0.1), 37)
    rep = full_report(y, p, (0.05, 0.1), capacity_k=37, n_boot=20, seed=seed)
    draws = [all_metrics(y[i], p[i], (0.05, 0.1), 37) for i in bootstrap_indices(y, 20, seed)]
    for name, v in rep.items():
        expected = np.quantile([d[name] for d in draws], [0.025, 0.975])
        assert (v["ci_low"], v["ci_high"]) == (float(expected[0]), float(expected[1])), name


def test_sort_keys_fall_back_for_many_distinct_or_missing_scores():
    assert sort_keys(np.linspace(0, 1, 70_000)) is None  # more distinct scores than 16 bits hold
    assert sort_keys(np.array([0.1, np.nan, 0.3])) is None
    assert sort_keys(np.array([0.3, -0.0, 0.0, 0.1])).tolist() == [2, 0, 0, 1]


def test_paired_auc_test_is_the_same_with_sort_keys(monkeypatch):
    import models.evaluate as ev

    rng = np.random.default_rng(5)
    p_a = np.round(rng.random(3000), 2)
    p_b = np.round(np.clip(p_a + rng.normal(0, 0.2, 3000), 0, 1), 3)
    y = (rng.random(3000) < p_a).astype(int)
    fast = paired_auc_test(y, p_a, p_b, n_boot=200)
    monkeypatch.setattr(ev, "sort_keys", lambda p: None)
    assert paired_auc_test(y, p_a, p_b, n_boot=200) == fast

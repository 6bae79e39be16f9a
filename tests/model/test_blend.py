"""models/blend.py: the spline logistic model, the LightGBM + logistic blend, inner splits and k-fold AUC."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from models.baselines import LogisticBaseline
from models.blend import (
    BlendConfig,
    BlendedModel,
    SplineLogistic,
    add_share_columns,
    choose_by_auc,
    cross_validated_auc,
    fit_blend,
    fit_logistic_grid,
    inner_split,
)
from models.conversion import BoosterConfig

FAST = BoosterConfig(learning_rate=0.1, num_leaves=7, min_child_samples=10, n_estimators=200,
                     early_stopping_rounds=20, n_jobs=1, seed=0)


def hump_data(n: int = 2000, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """Conversion peaks at middling time on site (a bent curve), plus a categorical with a rare level."""
    rng = np.random.default_rng(seed)
    minutes = rng.exponential(10, n)
    source = rng.choice(["web", "ads", "referral", "fax"], n, p=[0.5, 0.3, 0.195, 0.005])
    logit = 2.0 - 0.08 * (minutes - 8) ** 2 / 4 + np.where(source == "referral", 1.0, 0.0)
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    minutes[rng.random(n) < 0.05] = np.nan  # some missing, as in real exports
    X = pd.DataFrame({"minutes": minutes, "source": pd.Categorical(source)})
    return X, y


def test_spline_logistic_fits_a_bent_curve_that_a_straight_logistic_cannot():
    X, y = hump_data()
    Xt, yt = hump_data(seed=1)
    spline = roc_auc_score(yt, SplineLogistic(C=1.0).fit(X, y).predict_proba(Xt)[:, 1])
    straight = roc_auc_score(yt, LogisticBaseline(C=1.0).fit(X, y).predict_proba(Xt)[:, 1])
    assert spline > straight + 0.05, (spline, straight)


def test_spline_logistic_contributions_add_up_to_its_log_odds():
    X, y = hump_data(500)
    model = SplineLogistic(C=0.3).fit(X, y)
    contrib = model.contributions(X.head(20))
    assert list(contrib.columns) == ["minutes", "source"]
    intercept = model.intercept_
    np.testing.assert_allclose(contrib.sum(axis=1) + intercept, model.decision_function(X.head(20)), atol=1e-9)


def test_spline_logistic_groups_rare_levels_and_takes_unseen_ones():
    X, y = hump_data(2000)
    model = SplineLogistic(min_category_count=20).fit(X, y)
    assert "fax" in model.design_.rare_["source"]  # 0.5% of rows: grouped, not a level of its own
    assert "fax" not in model.design_.levels_["source"] and "web" in model.design_.levels_["source"]
    new = X.head(3).assign(source=pd.Categorical(["telex", "web", None]))
    p = model.predict_proba(new)[:, 1]
    assert np.isfinite(p).all() and p.shape == (3,)


def test_choose_by_auc_breaks_ties_towards_the_preferred_end():
    y = np.array([0, 0, 1, 1])
    perfect, wrong = np.array([0.1, 0.2, 0.8, 0.9]), np.array([0.9, 0.8, 0.2, 0.1])
    assert choose_by_auc({0.0: wrong, 0.5: perfect, 1.0: perfect}, y) == 1.0
    assert choose_by_auc({0.1: perfect, 0.3: perfect, 1.0: wrong}, y, prefer="smaller") == 0.1
    assert choose_by_auc({0.0: perfect, 1.0: wrong}, y) == 0.0


def test_blend_leans_on_the_trees_when_only_trees_can_see_the_signal():
    """An XOR of two binary features: invisible to an additive model, easy for trees."""
    rng = np.random.default_rng(3)
    n = 3000
    a, b = rng.integers(0, 2, n), rng.integers(0, 2, n)
    y = ((a ^ b) == 1).astype(int)
    y = np.where(rng.random(n) < 0.1, 1 - y, y)
    X = pd.DataFrame({"a": a.astype(float), "b": b.astype(float), "noise": rng.normal(size=n)})
    model = fit_blend(X, y, BlendConfig(booster=FAST, refit=False))
    assert model.blend_weight_ >= 0.8
    assert model.validation_roc_auc_ > 0.85


def test_blend_uses_the_logistic_part_when_the_signal_is_a_smooth_curve():
    X, y = hump_data(3000)
    model = fit_blend(X, y, BlendConfig(booster=FAST, refit=False))
    assert model.blend_weight_ < 1.0  # the spline curve adds to (or replaces) the trees' steps
    assert model.logistic_C_ in BlendConfig().logistic_Cs


def test_blend_contributions_add_up_to_the_blended_log_odds():
    X, y = hump_data(1500)
    model = fit_blend(X, y, BlendConfig(booster=FAST, category_shares=True))
    rows = X.head(25)
    w = model.blend_weight_
    tree_bias = model.booster_.predict(model._prepare(rows), pred_contrib=True,
                                       num_iteration=model.best_iteration_)[:, -1]
    intercept = model.linear_.intercept_
    total = model.contributions(rows).sum(axis=1) + w * tree_bias + (1 - w) * intercept
    np.testing.assert_allclose(total, model.decision_function(rows), atol=1e-6)


def test_blend_scores_string_categoricals_like_categoricals_and_leaves_input_alone():
    X, y = hump_data(1500)
    model = fit_blend(X, y, BlendConfig(booster=FAST, category_shares=True))
    served = X.head(50).assign(source=X["source"].head(50).astype(object))
    before = served.copy()
    np.testing.assert_allclose(model.predict_proba(served), model.predict_proba(X.head(50)))
    pd.testing.assert_frame_equal(served, before)
    p = model.predict_proba(X)[:, 1]
    assert (p > 0).all() and (p < 1).all()


def test_refit_keeps_the_choices_and_uses_every_row():
    X, y = hump_data(1500)
    once = fit_blend(X, y, BlendConfig(booster=FAST, refit=False))
    refit = fit_blend(X, y, BlendConfig(booster=FAST, refit=True))
    assert (refit.blend_weight_, refit.logistic_C_, refit.best_iteration_, refit.calibration_) == \
        (once.blend_weight_, once.logistic_C_, once.best_iteration_, once.calibration_)
    assert once.n_fit_rows_ == 1200 and refit.n_fit_rows_ == 1500


def test_blend_refuses_a_validation_part_with_one_outcome():
    X, y = hump_data(300)
    with pytest.raises(ValueError, match="both outcomes"):
        BlendedModel(BlendConfig(booster=FAST)).fit(X, y, X.head(10), np.zeros(10, dtype=int))


def test_inner_split_by_time_validates_on_the_latest_rows():
    y = np.tile([0, 1], 50)
    fit_idx, val_idx = inner_split(y, 0.2, time=np.arange(100))
    assert val_idx.tolist() == list(range(80, 100)) and fit_idx.tolist() == list(range(80))


def test_inner_split_by_group_keeps_each_group_on_one_side():
    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(40), 5)
    y = rng.integers(0, 2, 200)
    fit_idx, val_idx = inner_split(y, 0.25, seed=1, groups=groups)
    assert set(groups[fit_idx]).isdisjoint(groups[val_idx])
    assert len(fit_idx) + len(val_idx) == 200


def test_inner_split_falls_back_to_stratified_when_a_side_lacks_an_outcome():
    y = np.array([0] * 90 + [1] * 10)  # all conversions in the earliest rows: the latest 20% hold none
    fit_idx, val_idx = inner_split(y, 0.2, time=np.arange(100)[::-1])
    assert y[val_idx].sum() == 2 and y[fit_idx].sum() == 8


def test_cross_validated_auc_fits_on_training_folds_only():
    X, y = hump_data(600)
    X = X.assign(row=np.arange(600, dtype=float))
    seen = []

    def fit(Xf, yf, extra):
        seen.append(set(Xf["row"].astype(int)))
        return SplineLogistic().fit(Xf.drop(columns="row"), yf)

    scores = cross_validated_auc(lambda Xf, yf, e: _DropRow(fit(Xf, yf, e)), X, y, n_folds=3, seed=0)
    assert len(scores) == 3 and all(0.5 < s < 1 for s in scores)
    assert all(len(s) == 400 for s in seen)  # two thirds of the rows each time ...
    assert set.union(*seen) == set(range(600)) and not set.intersection(*seen)  # ... each row held out once


class _DropRow:
    def __init__(self, model):
        self.model = model

    def predict_proba(self, X):
        return self.model.predict_proba(X.drop(columns="row"))


def test_category_shares_come_from_the_training_rows():
    X, y = hump_data(1000)
    model = fit_blend(X, y, BlendConfig(booster=FAST, refit=False, category_shares=True))
    fit_rows = 800
    assert sum(model.shares_["source"].values()) == pytest.approx(1.0)
    assert model.shares_["source"]["web"] == pytest.approx(
        (X["source"].iloc[model_rows(model, X)] == "web").sum() / fit_rows)
    prepared = model._prepare(pd.DataFrame({"minutes": [1.0, 2.0, 3.0],
                                            "source": pd.Categorical(["web", "telex", None])}))
    assert prepared["source_share"].iloc[0] == model.shares_["source"]["web"]
    # a value unseen in training is unknown to the model, as a missing one is
    assert np.isnan(prepared["source_share"].iloc[1]) and np.isnan(prepared["source_share"].iloc[2])
    raw = add_share_columns(pd.DataFrame({"source": ["web", "telex", None]}), {"source": {"web": 0.5}})
    assert raw["source_share"].iloc[0] == 0.5 and raw["source_share"].iloc[1] == 0.0
    assert np.isnan(raw["source_share"].iloc[2])
    assert set(model.feature_importance().index) == {"minutes", "source"}  # the share's gain counts for `source`
    assert not fit_blend(X, y, BlendConfig(booster=FAST, refit=False)).shares_  # off by default


@pytest.mark.parametrize("kind", ["object", "category", "string", "float"])
def test_share_columns_equal_a_row_by_row_lookup(kind):
    rng = np.random.default_rng(3)
    pool = ["web", "event", "telex", "7", None] if kind != "float" else [1.0, 2.0, 7.0, np.nan]
    col = pd.Series(rng.choice(np.array(pool, dtype=object), 2000), dtype=None if kind == "float" else object)
    col = col.astype(kind) if kind != "object" else col
    shares = {"src": {"web": 0.4, "event": 0.25, "7": 0.1, "7.0": 0.05, "1.0": 0.2}}
    got = add_share_columns(pd.DataFrame({"src": col}), shares)["src_share"].to_numpy()
    expected = [np.nan if pd.isna(v) else shares["src"].get(str(v), 0.0) for v in col.astype("object")]
    np.testing.assert_array_equal(got, np.array(expected, dtype=float))


def model_rows(model, X):
    """Positions of the rows the model was fitted on (fit_blend's stratified inner split, seed of FAST)."""
    from models.blend import inner_split

    y = hump_data(len(X))[1]
    return inner_split(y, 0.2, FAST.seed)[0]


def test_the_logistic_grid_shares_its_preprocessing_and_equals_separate_fits():
    X, y = hump_data(800)
    grid = fit_logistic_grid(X, y, (0.1, 1.0))
    assert grid[0.1].design_ is grid[1.0].design_
    assert grid[1.0].C == 1.0 and grid[0.1].C == 0.1
    for C in (0.1, 1.0):
        # C = 1.0 starts from C = 0.1's optimum: the same optimum as a fit from zero, within the solver's tolerance
        alone = SplineLogistic(C=C).fit(X, y)
        assert penalised_loss(grid[C], X, y) == pytest.approx(penalised_loss(alone, X, y), rel=1e-6)
        assert roc_auc_score(y, grid[C].decision_function(X)) == pytest.approx(
            roc_auc_score(y, alone.decision_function(X)), abs=1e-4)
        np.testing.assert_allclose(grid[C].decision_function(X), alone.decision_function(X), atol=0.2)


def penalised_loss(model: SplineLogistic, X: pd.DataFrame, y) -> float:
    """scikit-learn's objective: C x the summed log loss + half the squared coefficients (intercept unpenalised)."""
    z = model.decision_function(X)
    y = np.asarray(y)
    return float(model.C * np.sum(np.logaddexp(0, z) - y * z) + 0.5 * np.sum(model.lr_.coef_ ** 2))


def test_a_warm_started_spline_logistic_reaches_the_optimum_in_fewer_newton_steps():
    X, y = hump_data(2000)
    cold = SplineLogistic(C=1.0).fit(X, y)
    warm = SplineLogistic(C=1.0).fit(X, y, start=SplineLogistic(C=0.3).fit(X, y))
    assert warm.lr_.n_iter_[0] < cold.lr_.n_iter_[0]
    assert penalised_loss(warm, X, y) == pytest.approx(penalised_loss(cold, X, y), rel=1e-6)
    # a start of other columns (another design) is not used: the fit starts from zero
    other = SplineLogistic(C=1.0).fit(X[[X.columns[0]]], y)
    assert SplineLogistic(C=1.0).fit(X, y, start=other).lr_.n_iter_[0] == cold.lr_.n_iter_[0]


def _reference_inputs(X: pd.DataFrame, spline: bool, min_frequency: int, handle_unknown: str):
    """The per-column scikit-learn pipeline the vectorised `LinearDesign` replaced (signed log, median imputation
    with a missing-indicator, a B-spline basis, standardisation; one-hot with rare levels grouped)."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, SplineTransformer, StandardScaler

    from models.baselines import signed_log

    numeric = [c for c in X if not isinstance(X[c].dtype, pd.CategoricalDtype)]
    categorical = [c for c in X if c not in numeric]
    steps = []
    for i, col in enumerate(numeric):
        inner = [("log", FunctionTransformer(signed_log)),
                 ("impute", SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True))]
        if spline:
            inner.append(("spline", ColumnTransformer([("curve", SplineTransformer(
                n_knots=5, degree=3, knots="quantile", extrapolation="constant"), [0])], remainder="passthrough")))
        inner.append(("scale", StandardScaler()))
        steps.append((f"num{i}", Pipeline(inner), [col]))
    steps.append(("cat", OneHotEncoder(handle_unknown=handle_unknown, min_frequency=min_frequency,
                                       sparse_output=False), categorical))
    strings = X.copy()
    for col in categorical:
        strings[col] = X[col].astype("object").where(X[col].notna(), "missing").astype(str)
    return ColumnTransformer(steps).fit(strings), strings


@pytest.mark.parametrize("kind", ["spline", "baseline"])
def test_the_vectorised_design_builds_the_inputs_of_the_scikit_learn_pipeline(kind):
    X, y = hump_data(3000)
    X["visits"] = np.random.default_rng(5).poisson(3, len(X)).astype(float)  # no missing values: no indicator
    X.loc[X.index[:40], "source"] = None
    if kind == "spline":
        model = SplineLogistic(C=0.3, min_category_count=10).fit(X, y)
        reference, strings = _reference_inputs(X, True, 10, "infrequent_if_exist")
    else:
        model = LogisticBaseline(C=0.3).fit(X, y)
        reference, strings = _reference_inputs(X, False, 20, "ignore")
    np.testing.assert_allclose(model.design_.transform(X), reference.transform(strings), atol=1e-9)
    # an unseen level: the infrequent input (spline model) or no input at all (baseline), as scikit-learn does
    new = X.head(5).assign(source=pd.Categorical(["telex", "web", None, "fax", "ads"]))
    new_strings = strings.head(5).assign(source=["telex", "web", "missing", "fax", "ads"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scikit-learn warns about the unknown level
        expected = reference.transform(new_strings)
    np.testing.assert_allclose(model.design_.transform(new), expected, atol=1e-9)


@pytest.mark.parametrize("n_knots", [5, None])
def test_fitting_the_design_gives_exactly_the_inputs_transform_gives(n_knots):
    from models.baselines import LinearDesign

    X, _ = hump_data(2000)
    X.loc[X.index[:30], "source"] = None
    X.loc[X.index[10:60], X.columns[0]] = np.nan  # a number with missing values: its indicator input
    numeric = [c for c in X if not isinstance(X[c].dtype, pd.CategoricalDtype)]
    categorical = [c for c in X if c not in numeric]
    fitted = LinearDesign(numeric, categorical, n_knots=n_knots, min_category_count=20)
    Z = fitted.fit_transform(X)
    again = LinearDesign(numeric, categorical, n_knots=n_knots, min_category_count=20).fit(X)
    np.testing.assert_array_equal(Z, again.transform(X))
    np.testing.assert_array_equal(Z, fitted.transform(X))
    assert Z.shape[1] == len(fitted.owners_) and fitted.owners_.tolist() == again.owners_.tolist()


def test_folds_fitted_side_by_side_score_as_folds_fitted_one_after_another():
    X, y = hump_data(1200)

    def fit(Xf, yf, _groups):
        return fit_blend(Xf, yf, BlendConfig(booster=FAST))  # one LightGBM thread per fold

    progress = []
    alone = cross_validated_auc(fit, X, y, 4, seed=0)
    side_by_side = cross_validated_auc(fit, X, y, 4, seed=0, n_jobs=2, on_fold=lambda d, n: progress.append((d, n)))
    assert side_by_side == alone  # the same scores, in fold order
    assert progress == [(1, 4), (2, 4), (3, 4), (4, 4)]
    assert len(set(alone)) > 1  # four different folds, not one repeated

"""Behaviour of the conversion model, its baselines, the small-data fallback and the served pyfunc."""

import dataclasses

import numpy as np
import pandas as pd
import pytest
from _synthetic import GATES, feature_table

from features.build import feature_columns
from models.baselines import LogisticBaseline, PointsRuleScore, rule_points
from models.config import ScoreConfig, TrainConfig
from models.conversion import P_CEIL, BoosterConfig, ConversionModel, choose_calibration
from models.evaluate import expected_calibration_error
from models.pyfunc import OUTPUT_COLUMNS, LeadScoreModel
from models.training import fallback_reason, split_train_validation

FAST = BoosterConfig(learning_rate=0.1, n_estimators=150, early_stopping_rounds=20, min_child_samples=40,
                     n_jobs=1, seed=1)


@pytest.fixture(scope="module")
def table():
    return feature_table()


@pytest.fixture(scope="module")
def parts(table):
    fit, val = split_train_validation(table, group_share=0.25)
    test = table[table["split"] == "test"]
    cols = feature_columns(table)
    return fit, val, test, cols


def _fit(parts, **config):
    fit, val, _, cols = parts
    return ConversionModel(dataclasses.replace(FAST, **config), calibration="auto").fit(
        fit[cols], fit["label"], val[cols], val["label"])


@pytest.mark.slow
def test_more_high_intent_engagement_never_lowers_the_score_with_monotone_constraints(parts):
    model = _fit(parts, monotone_increasing=("n_high_intent_30d", "engagement_decayed"))
    rows = parts[2][parts[3]].head(300)
    previous = model.predict_proba(rows)[:, 1]
    for step in range(1, 6):
        more = rows.assign(n_high_intent_30d=rows["n_high_intent_30d"] + step,
                           engagement_decayed=rows["engagement_decayed"] + 5.0 * step)
        p = model.predict_proba(more)[:, 1]
        assert (p >= previous - 1e-12).all()
        previous = p
    assert previous.mean() > model.predict_proba(rows)[:, 1].mean()  # and it does rise on average


@pytest.mark.slow
def test_without_constraints_the_option_changes_the_booster(parts):
    free = _fit(parts)
    constrained = _fit(parts, monotone_increasing=("n_high_intent_30d",))
    assert "monotone_constraints" not in free.booster_.get_params() or not free.booster_.get_params()["monotone_constraints"]
    cons = constrained.booster_.get_params()["monotone_constraints"]
    assert cons[list(constrained.feature_names_in_).index("n_high_intent_30d")] == 1 and sum(cons) == 1


def test_the_booster_builds_histograms_column_wise_and_grows_the_trees_lightgbms_own_choice_grows(parts):
    import lightgbm as lgb

    model = _fit(parts)
    params = model.booster_.get_params()
    assert params["force_col_wise"] is True
    fit, _, test, cols = parts
    # the same settings with LightGBM choosing the histogram layout itself: the very same trees
    own = lgb.LGBMClassifier(**{**params, "force_col_wise": False, "n_estimators": model.best_iteration_})
    own.fit(model._prepare(fit[cols]), fit["label"].astype(int))
    X = model._prepare(test[cols])
    np.testing.assert_array_equal(model.booster_.predict(X, raw_score=True, num_iteration=model.best_iteration_),
                                  own.predict(X, raw_score=True))


@pytest.mark.slow
def test_calibrated_probabilities_match_observed_rates_and_are_never_certain(parts):
    table = feature_table(n_per_snapshot=5000, seed=2)  # 1,250 validation rows for the calibrator
    fit, val = split_train_validation(table, group_share=0.25)
    cols = parts[3]
    model = ConversionModel(FAST, calibration="auto").fit(fit[cols], fit["label"], val[cols], val["label"])
    big = feature_table(n_per_snapshot=8000, seed=9)
    test = big[big["split"] == "test"]  # 8,000 fresh rows: bin noise well below the tolerance
    p = model.predict_proba(test[cols])[:, 1]
    assert model.calibration_ in ("isotonic", "sigmoid")
    assert expected_calibration_error(test["label"].to_numpy(), p) < 0.025
    assert abs(p.mean() - test["label"].mean()) < 0.02
    assert p.max() <= P_CEIL < 1.0 and p.min() > 0.0


def test_calibration_choice_follows_out_of_fold_log_loss():
    rng = np.random.default_rng(3)
    raw = rng.random(4000)
    # A sigmoid-shaped truth on the logit of the raw score: Platt scaling is the right family.
    y = (rng.random(4000) < 1 / (1 + np.exp(-(4 * np.log(raw / (1 - raw)) - 1)))).astype(int)
    assert choose_calibration(raw, y) == "sigmoid"
    # A step-shaped truth no sigmoid can follow: isotonic wins.
    y_step = (rng.random(4000) < np.where(raw > 0.7, 0.9, np.where(raw > 0.3, 0.05, 0.5))).astype(int)
    assert choose_calibration(raw, y_step) == "isotonic"


@pytest.mark.slow
def test_baselines_learn_the_signal_and_the_model_beats_them(parts):
    from sklearn.metrics import roc_auc_score

    fit, _, test, cols = parts
    logistic = LogisticBaseline().fit(fit[cols], fit["label"])
    rule = PointsRuleScore().fit(fit[cols], fit["label"])
    y = test["label"].to_numpy()
    auc = {name: roc_auc_score(y, m.predict_proba(test[cols])[:, 1])
           for name, m in {"logistic": logistic, "rule": rule, "model": _fit(parts)}.items()}
    # The rule sees fit, seniority and engagement but not the intent counts: some signal, the least.
    assert 0.55 < auc["rule"] < auc["logistic"] and auc["rule"] < auc["model"]
    # The truth is logistic here, so the linear baseline is near the ceiling; the boosted model comes close.
    assert auc["model"] > auc["logistic"] - 0.02
    # The rule's points are hand-set: fitting changes only the map to probability, which is monotone.
    order = np.argsort(rule_points(test), kind="stable")
    assert (np.diff(rule.predict_proba(test)[order, 1]) >= -1e-12).all()


def test_rule_points_add_fit_engagement_and_confirmed_bant():
    row = pd.DataFrame({"icp_industry": [1.0], "icp_size": [1.0], "icp_country": [0.0], "seniority_level": [6.0],
                        "engagement_decayed": [0.0], "bant_budget_confirmed": [1.0], "bant_need_confirmed": [0.0]})
    assert rule_points(row)[0] == pytest.approx(25 + 25 + 35 + 0 + 10)


def test_small_data_falls_back_to_logistic_with_a_plain_reason():
    p = TrainConfig(min_positives=100)
    assert fallback_reason(150, p) is None
    reason = fallback_reason(42, p)
    assert reason.startswith("only 42 conversions") and "train.min_positives = 100" in reason and "logistic" in reason


@pytest.mark.slow
def test_pyfunc_contract_scores_gates_and_status(parts):
    model = _fit(parts)
    s = ScoreConfig(gates=GATES, threshold=0.05)
    bundle = LeadScoreModel(model, s.gates, s.threshold, s.unknown_policy, s.tiers, categorical=("industry",))
    assert bundle.input_columns == bundle.feature_columns + ["annual_revenue"]
    rows = parts[2].head(50).assign(annual_revenue=np.nan)
    wire = bundle.input_example(rows)
    assert wire["industry"].map(type).isin([str, type(None)]).all()
    out = bundle.predict(None, wire.assign(lead_id=rows["lead_id"].to_numpy()))
    assert list(out.columns) == [c for c in OUTPUT_COLUMNS if c not in ("gate_need", "gate_timeline")]
    assert np.allclose(out["p_convert"], model.predict_proba(rows)[:, 1])
    assert (out["score"] == np.rint(100 * out["p_convert"])).all()
    junior = out["gate_authority"].eq("fail").to_numpy()
    assert junior.any() and (out.loc[junior, "status"] == "disqualified").all()
    assert (rows["seniority_level"].to_numpy()[junior] < 4).all()
    sql = out["status"].eq("sql")
    assert (out.loc[sql, "p_convert"] >= 0.05).all() and out["is_sql"].equals(sql)
    # a column only a gate reads may be absent: that answer is unknown, exactly as if it were sent empty
    without = bundle.score(rows.drop(columns="annual_revenue"))
    pd.testing.assert_frame_equal(without, bundle.score(rows))
    # a model feature may not be absent
    with pytest.raises(ValueError, match=r"missing required column\(s\) \['seniority_level'\]"):
        bundle.score(rows.drop(columns="seniority_level"))


@pytest.mark.slow
def test_tuning_is_bounded_by_trials_and_returns_a_usable_config(parts):
    pytest.importorskip("optuna")
    from models.training import tune_config

    fit, val, _, cols = parts
    p = TrainConfig(n_jobs=1, n_estimators=60, early_stopping_rounds=10, tune=True, tune_trials=3,
                    tune_timeout_seconds=120)
    config, record = tune_config(fit, val, cols, p)
    assert record["tune_trials_run"] == 3 and 0.5 < record["tune_best_val_auc"] <= 1.0
    assert config.num_leaves == record["tuned_num_leaves"] and config.n_jobs == 1 and config.n_estimators == 60


@pytest.mark.slow
def test_boosting_from_the_logistic_offset_keeps_monotonicity_and_explains_the_log_odds(parts):
    model = _fit(parts, boost_from_logistic=True, monotone_increasing=("n_high_intent_30d",))
    assert "n_high_intent_30d" not in model.offset_model_.feature_names_in_  # constrained features: booster only
    rows = parts[2][parts[3]].head(200)
    p0 = model.predict_proba(rows)[:, 1]
    p1 = model.predict_proba(rows.assign(n_high_intent_30d=rows["n_high_intent_30d"] + 3))[:, 1]
    assert (p1 >= p0 - 1e-12).all() and p1.mean() > p0.mean()
    # Per-feature contributions (trees + logistic part) plus the two intercepts give the raw log-odds exactly.
    contrib = model.contributions(rows)
    bias = model.booster_.predict_proba(model._prepare(rows), pred_contrib=True,
                                        num_iteration=model.best_iteration_)[:, -1]
    intercept = model.offset_model_.intercept_
    raw = model._raw(rows)
    assert np.allclose(contrib.sum(axis=1) + bias + intercept, np.log(raw / (1 - raw)), atol=1e-6)


def test_validation_holds_out_whole_accounts_of_the_latest_snapshot(table):
    fit, val = split_train_validation(table, group_share=0.25, seed=3)
    train = table[table["split"] == "train"]
    latest = train["as_of"].max()
    assert (val["as_of"] == latest).all() and (fit["as_of"] < latest).all()
    assert not set(fit["account_id"]) & set(val["account_id"])  # no account is both fitted on and validated
    assert 0.15 < val["account_id"].nunique() / train["account_id"].nunique() < 0.35
    plain_fit, plain_val = split_train_validation(table, group_share=0.0)
    assert len(plain_val) == (train["as_of"] == latest).sum() and len(plain_fit) == (train["as_of"] < latest).sum()


def test_blend_weight_prefers_the_trees_on_a_tie_and_mixes_when_the_linear_part_adds_signal():
    from models.conversion import choose_blend_weight

    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 4000)
    a, b = rng.normal(size=4000), rng.normal(size=4000)
    assert choose_blend_weight(y + 0.0 * a, y + 0.0 * b, y) == 1.0  # both perfect: a tie goes to the trees
    assert choose_blend_weight(y + a, rng.normal(size=4000), y) == 1.0  # linear part is noise: trees alone
    w = choose_blend_weight(y + a, y + b, y)  # two equally good, independent views: an even mix is best
    assert 0.3 <= w <= 0.7


@pytest.mark.slow
def test_blended_model_explains_its_log_odds_and_refit_keeps_trees_weight_and_calibrator(parts):
    fit, val, test, cols = parts
    model = _fit(parts, blend_logistic=True)
    assert model.blend_model_ is not None and 0.0 <= model.blend_weight_ <= 1.0
    rows = test[cols].head(200)
    w = model.blend_weight_
    contrib = model.contributions(rows)
    bias = model.booster_.predict_proba(model._prepare(rows), pred_contrib=True,
                                        num_iteration=model.best_iteration_)[:, -1]
    intercept = model.blend_model_.intercept_
    raw = model._raw(rows)
    assert np.allclose(contrib.sum(axis=1) + w * bias + (1 - w) * intercept, np.log(raw / (1 - raw)), atol=1e-6)

    trees, calibrator, before = model.best_iteration_, model.calibrator_, model.predict_proba(rows)[:, 1]
    everything = pd.concat([fit, val])
    model.refit(everything[cols], everything["label"])
    assert model.booster_.n_estimators == trees and model.booster_.booster_.num_trees() == trees
    assert model.calibrator_ is calibrator and model.blend_weight_ == w and model.n_refit_rows_ == len(everything)
    after = model.predict_proba(rows)[:, 1]
    assert not np.allclose(before, after)  # new rows, new trees ...
    assert np.corrcoef(before, after)[0, 1] > 0.9  # ... telling the same story


@pytest.mark.slow
def test_refitting_on_every_training_row_keeps_held_out_calibration(parts):
    table = feature_table(n_per_snapshot=5000, seed=2)  # as the calibration test: 1,250 validation rows
    fit, val = split_train_validation(table, group_share=0.25)
    cols = parts[3]
    model = ConversionModel(FAST, calibration="auto").fit(fit[cols], fit["label"], val[cols], val["label"])
    big = feature_table(n_per_snapshot=8000, seed=9)
    test = big[big["split"] == "test"]
    y = test["label"].to_numpy()
    ece_before = expected_calibration_error(y, model.predict_proba(test[cols])[:, 1])
    everything = table[table["split"] == "train"]  # validation accounts and the held-out share of the rest too
    model.refit(everything[cols], everything["label"])
    p = model.predict_proba(test[cols])[:, 1]
    assert model.n_refit_rows_ == len(everything) > len(fit) + len(val)
    assert expected_calibration_error(y, p) < max(0.025, ece_before + 0.005)
    assert abs(p.mean() - y.mean()) < 0.02


@pytest.mark.parametrize(("values", "categories"), [
    (pd.Series(pd.Categorical(["a", "b", None, "c", "a"], categories=["a", "b", "c"])), ["a", "b", "c"]),
    (pd.Series(pd.Categorical(["c", "x", None, "a"], categories=["x", "c", "a"])), ["a", "b", "c"]),  # unseen, reordered
    (pd.Series(pd.Categorical([], categories=["a"])), ["a", "b"]),
    (pd.Series(["a", "q", None, "c"], dtype="string"), ["a", "b", "c"]),
    (pd.Series(["a", "q", None, np.nan], dtype=object), ["a", "b", "c"]),
    (pd.Series([1, 2, 3, None], dtype="Int64"), [1, 2, 5]),
    (pd.Series(pd.Categorical([2, 7, 1])), [1, 2, 5]),
])
def test_scoring_categories_are_the_training_levels_with_unseen_values_missing(values, categories):
    """`as_categories` (what the model's predict uses) equals pandas' value-by-value construction: the same
    levels, the same code per row, an unseen or missing value coded -1."""
    import warnings

    from models.conversion import as_categories

    with warnings.catch_warnings():  # pandas deprecates unseen values in this constructor; as_categories never uses it
        warnings.simplefilter("ignore")
        expected = pd.Categorical(values.astype("object"), categories=categories)
    got = as_categories(values, categories)
    assert got.dtype == expected.dtype
    assert got.codes.tolist() == expected.codes.tolist()
    assert (got.codes == -1).sum() == values.isna().sum() + sum(
        v not in categories for v in values.dropna().tolist())


@pytest.mark.parametrize("kind", ["logistic", "spline"])
def test_a_linear_model_saved_before_the_linear_design_fails_at_load_with_a_message(kind):
    """A pickled LogisticBaseline / SplineLogistic from before LinearDesign (a scikit-learn ``pipeline_``) stops
    at load with what to do, mapped to the CLI's model exit code; today's pickles load and predict the same."""
    import pickle

    from models.baselines import IncompatibleModelError
    from models.blend import SplineLogistic
    from pipeline.cli import EXIT_MODEL, exit_code_for

    df = feature_table(n_per_snapshot=300, seed=3)
    X, y = df[feature_columns(df)], df["label"].astype(int).to_numpy()
    model = (LogisticBaseline() if kind == "logistic" else SplineLogistic()).fit(X, y)
    again = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(again.predict_proba(X), model.predict_proba(X))

    old = type(model).__new__(type(model))
    old.__dict__.update({k: v for k, v in model.__dict__.items() if k not in ("design_", "lr_")},
                        pipeline_="a scikit-learn Pipeline")
    with pytest.raises(IncompatibleModelError, match="older leadscore.*retrain") as err:
        pickle.loads(pickle.dumps(old))
    assert exit_code_for(err.value) == EXIT_MODEL

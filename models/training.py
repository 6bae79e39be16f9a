"""The train stage's core: one fit of the conversion model for both variants of the pipeline.

* four-table exports (``snapshots``): monthly point-in-time snapshots; the calibrated LightGBM model
  (`models.conversion`) stops early and is calibrated on the latest training snapshot's held-out accounts, then
  (below ``large_data_rows``) refitted on every training row; logistic and points-rule baselines beside it.
* flat exports (``flat``): one row per lead; the calibrated blend of LightGBM and a spline logistic model
  (`models.blend`), its choices made on an inner validation part (the latest rows when the export has time).

With fewer than ``min_positives`` conversions the regularised logistic model is the model, and the metrics say
why. `TrainConfig` is the ``train:`` section of params.yaml: the one definition of every training setting.
Pure: data frames and configs in, fitted models and metrics out; no files, no params, no MLflow.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from features.build import CATEGORICAL_FEATURES, feature_columns
from features.schema import FLAT, FLAT_TIME, SNAPSHOTS, VARIANTS
from features.sets import select_feature_set
from features.split import FLAT_TEST_SHARE, flat_split, holdout_split  # noqa: F401 - re-exported
from models import blend
from models.baselines import LogisticBaseline, PointsRuleScore, is_categorical
from models.config import TrainConfig
from models.conversion import BoosterConfig, ConversionModel
from models.evaluate import classification_metrics
from models.sampling import downsample_negatives, stratified_sample

# A random quarter of the accounts of the latest training snapshot validates (see split_train_validation).
VALIDATION_GROUP_SHARE = 0.25

Log = Callable[[str], None]
Progress = Callable[[int, int], None]  # (done, total): boosting rounds or folds, for a progress display


def _quiet(_: str) -> None:
    pass


@dataclass
class TrainResult:
    """What `fit` returns: the model, its yardsticks, the columns it reads and what was chosen (metrics)."""

    model: Any
    baselines: dict[str, Any]
    columns: list[str]
    metrics: dict[str, Any] = field(default_factory=dict)


# ------------------------------------------------------------------------------------------ choices


def split_train_validation(table: pd.DataFrame, group_share: float = 0.0,
                           seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Earlier training snapshots to fit on, the latest one as the (later) validation period — split by account.

    The same lead (and account) appears in many monthly snapshots with the same outcome ahead of it, so a
    validation snapshot of leads the trees have already seen rewards memorising them (account fingerprints such
    as exact size and revenue): early stopping then picks far too many trees. A random `group_share` of the
    accounts (leads when there is no account_id) is held out: only their rows of the latest snapshot validate,
    and none of their rows are fitted on. `group_share = 0` gives the plain temporal split.
    """
    train = table[table["split"] == "train"]
    dates = sorted(train["as_of"].unique())
    if len(dates) < 2:
        return train, train.iloc[0:0]
    earlier, latest = train[train["as_of"] < dates[-1]], train[train["as_of"] == dates[-1]]
    if group_share <= 0:
        return earlier, latest
    key = "account_id" if "account_id" in train and train["account_id"].notna().any() else "lead_id"
    groups = pd.Index(train[key].dropna().unique()).sort_values()
    rng = np.random.default_rng(seed)
    held = set(groups[rng.random(len(groups)) < group_share])
    return earlier[~earlier[key].isin(held)], latest[latest[key].isin(held)]


def learning_rate_for(n_rows: int, c: TrainConfig, variant: str = SNAPSHOTS) -> float:
    """The booster's learning rate for `n_rows` fitted rows of a `variant` table.

    Snapshot tables: `learning_rate`, and `large_data_learning_rate` from `large_data_rows` on. A million leads
    give ~2M snapshot rows, where 0.02 wants ~1,300 trees (a 5-minute fit and a slow scorer) and 0.1 reaches the
    same validation AUC with about a fifth of them. Below that the demo keeps 0.02: at 0.05 it stops at 139 trees
    instead of 659 and loses 0.0024 of held-out AUC (its 167k rows are ~8 monthly snapshots of the same leads).

    Flat tables (one row per lead): `flat_fast_learning_rate` from `flat_fast_rows` rows on. On UCI bank's 33k
    rows 0.05 needs 2.5x fewer trees than 0.02 for 0.0008 less cross-validated AUC; the small real sets (X
    Education, Olist: 6-8k rows) keep 0.02, where Olist loses 0.0035 at 0.05 (docs/results.md).
    """
    if n_rows >= c.large_data_rows:
        return c.large_data_learning_rate
    if variant == FLAT and n_rows >= c.flat_fast_rows:
        return c.flat_fast_learning_rate
    return c.learning_rate


def patience_for(learning_rate: float, c: TrainConfig, variant: str = FLAT) -> int:
    """Early-stopping rounds of a `variant` table's booster at `learning_rate`. Flat tables: `early_stopping_rounds`
    is set for `c.learning_rate`; a larger step waits proportionally fewer rounds (the same distance in the loss),
    never fewer than 10. Snapshot tables keep `early_stopping_rounds` at every rate, as the large-data rate was
    measured."""
    if variant != FLAT:
        return c.early_stopping_rounds
    return max(10, int(round(c.early_stopping_rounds * c.learning_rate / learning_rate)))


def negative_sample_for(y: np.ndarray, c: TrainConfig) -> tuple[np.ndarray, np.ndarray]:
    """Rows (and weights) the booster fits on: all of them below `large_data_rows`; from there on every positive
    and a `large_data_negative_rate` share of the negatives, weighted 1 / rate so the probabilities stay those of
    the full data (the calibrator is fitted on the untouched validation period all the same)."""
    if len(y) < c.large_data_rows:
        return np.arange(len(y)), np.ones(len(y))
    return downsample_negatives(y, c.large_data_negative_rate, seed=c.seed)


def booster_config(c: TrainConfig, *, n_rows: int = 0, variant: str = SNAPSHOTS, **overrides) -> BoosterConfig:
    """The LightGBM settings of a `TrainConfig` for a fit on `n_rows` rows of a `variant` table (the one
    translation of the two)."""
    rate = learning_rate_for(n_rows, c, variant)
    config = BoosterConfig(
        learning_rate=rate, num_leaves=c.num_leaves, min_child_samples=c.min_child_samples,
        n_estimators=c.n_estimators, early_stopping_rounds=patience_for(rate, c, variant), subsample=c.subsample,
        colsample_bytree=c.colsample_bytree, reg_lambda=c.reg_lambda, n_jobs=c.n_jobs, seed=c.seed,
        monotone_increasing=tuple(c.monotone_increasing), boost_from_logistic=c.boost_from_logistic,
        logistic_C=c.logistic_C, blend_logistic=c.blend_logistic, logistic_max_rows=c.baseline_max_rows,
    )
    return dataclasses.replace(config, **overrides)


def fallback_reason(n_positives: int, c: TrainConfig) -> str | None:
    """Why the logistic baseline replaces LightGBM, or None when there are conversions enough."""
    if n_positives < c.min_positives:
        return (f"only {n_positives} conversions in the training rows (train.min_positives = "
                f"{c.min_positives}): too few for a boosted model, using the regularised logistic regression")
    return None


def model_columns(table_columns: list[str], c: TrainConfig) -> tuple[list[str], list[str]]:
    """(the columns the model reads, excluded names that are not in the table) for a feature table's columns."""
    excluded = set(c.exclude_features)
    cols = [col for col in select_feature_set(table_columns, c.feature_set) if col not in excluded]
    return cols, sorted(excluded - set(table_columns))


def tune_config(fit_part: pd.DataFrame, val_part: pd.DataFrame, cols: list[str], c: TrainConfig,
                log: Log = _quiet) -> tuple[BoosterConfig, dict]:
    """Optuna search of the booster's shape on the validation period, bounded by trials and time."""
    try:
        import optuna
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise RuntimeError("train.tune = true needs optuna: pip install -e '.[tune]'") from exc
    from sklearn.metrics import roc_auc_score

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    y_fit, y_val = fit_part["label"].astype(int), val_part["label"].astype(int).to_numpy()

    def objective(trial) -> float:
        cfg = booster_config(
            c, learning_rate=trial.suggest_float("learning_rate", 0.02, 0.15, log=True),
            num_leaves=trial.suggest_int("num_leaves", 7, 63, log=True),
            min_child_samples=trial.suggest_int("min_child_samples", 20, 500, log=True),
            colsample_bytree=trial.suggest_float("colsample_bytree", 0.3, 1.0),
            reg_lambda=trial.suggest_float("reg_lambda", 1e-2, 30.0, log=True),
        )
        model = ConversionModel(cfg, calibration="none").fit(fit_part[cols], y_fit, val_part[cols], y_val)
        trial.set_user_attr("best_iteration", model.best_iteration_)
        return float(roc_auc_score(y_val, model.predict_proba(val_part[cols])[:, 1]))

    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=c.seed))
    study.optimize(objective, n_trials=c.tune_trials, timeout=c.tune_timeout_seconds)
    best = study.best_trial
    log(f"tuning: {len(study.trials)} trials, best validation AUC {best.value:.4f} with {best.params}")
    return booster_config(c, **best.params), {"tune_trials_run": len(study.trials), "tune_best_val_auc": best.value,
                                              **{f"tuned_{k}": v for k, v in best.params.items()}}


# --------------------------------------------------------------------------------------------- fits


def fit(table: pd.DataFrame, c: TrainConfig, variant: str = SNAPSHOTS, *, category_shares: bool = False,
        log: Log = _quiet, on_round: Progress | None = None) -> TrainResult:
    """The model of one pipeline variant, fitted on the ``split == "train"`` rows of a feature table;
    ``on_round(done, total)`` reports the boosting rounds of the snapshot variant's fits (progress)."""
    if variant == SNAPSHOTS:
        return fit_snapshots(table, c, log=log, on_round=on_round)
    if variant == FLAT:
        return fit_flat(table, c, category_shares=category_shares, log=log)
    raise ValueError(f"unknown pipeline variant {variant!r}: choose one of {list(VARIANTS)}")


def fit_snapshots(table: pd.DataFrame, c: TrainConfig, log: Log = _quiet,
                  on_round: Progress | None = None) -> TrainResult:
    """Four-table exports: the calibrated booster (or the logistic fallback) and the baselines on the snapshots."""
    table = table[table["split"] == "train"]
    fit_part, val_part = split_train_validation(table, VALIDATION_GROUP_SHARE, seed=c.seed)
    cols, unknown = model_columns(feature_columns(table), c)
    if unknown:
        log(f"train.exclude_features: {unknown} not in the feature table (ignored)")
    # Below large_data_rows the final model is refitted on every training row.
    refit = c.refit_full and len(fit_part) < c.large_data_rows
    y_fit = fit_part["label"].astype(int)
    y_val = val_part["label"].astype(int)
    n_positives = int(y_fit.sum() + y_val.sum())
    reason = fallback_reason(n_positives, c)

    start = time.perf_counter()
    extra: dict = {}
    if reason:
        log(f"small data: {reason}")
        model = LogisticBaseline(C=c.logistic_C).fit(pd.concat([fit_part[cols], val_part[cols]]),
                                                     pd.concat([y_fit, y_val]))
        model_kind = "logistic_fallback"
    else:
        config = booster_config(c, n_rows=len(fit_part))
        if c.tune and len(val_part) and y_val.nunique() == 2:
            config, extra = tune_config(fit_part, val_part, cols, c, log)
        rows, weight = negative_sample_for(y_fit.to_numpy(), c)
        if len(rows) < len(fit_part):
            log(f"large data: fitting the trees on all {int(y_fit.sum()):,} positives and "
                f"{c.large_data_negative_rate:.0%} of the negatives ({len(rows):,} of {len(fit_part):,} rows, "
                f"negatives weighted {1 / c.large_data_negative_rate:.2f})")
            extra["n_fit_rows_sampled"] = int(len(rows))
        model = ConversionModel(config, calibration=c.calibration).fit(
            fit_part.iloc[rows][cols], y_fit.iloc[rows], val_part[cols], y_val,
            sample_weight=None if len(rows) == len(fit_part) else weight, on_round=on_round)
        model_kind = "lightgbm"
    fit_seconds = time.perf_counter() - start
    # Baselines are yardsticks, not the model: a stratified sample of at most baseline_max_rows rows fits them.
    sample = stratified_sample(y_fit.to_numpy(), c.baseline_max_rows, seed=c.seed)
    X_base, y_base = fit_part.iloc[sample][cols], y_fit.iloc[sample]
    baselines = {"logistic": LogisticBaseline(C=c.logistic_C).fit(X_base, y_base),
                 "points_rule": PointsRuleScore().fit(X_base, y_base)}
    del X_base
    # Validation scores of the models fitted without the validation period (before any refit): a fair comparison.
    scored_validation = len(val_part) > 0 and y_val.nunique() == 2
    validation_scores = {"model": model.predict_proba(val_part[cols])[:, 1],
                         **{n: b.predict_proba(val_part[cols])[:, 1] for n, b in baselines.items()}} \
        if scored_validation else {}

    refit_rows = 0
    if refit:
        # Early stopping and calibration held the latest snapshot's validation accounts out; now that trees, blend
        # weight and calibrator are chosen, every training row goes into the final fit (model and baselines alike,
        # so the held-out comparison stays fair). Large tables skip this: the hold-out costs them little.
        X_all, y_all = table[cols], table["label"].astype(int)
        start = time.perf_counter()
        model = model.refit(X_all, y_all, on_round=on_round) if hasattr(model, "refit") else \
            LogisticBaseline(C=c.logistic_C).fit(X_all, y_all)
        fit_seconds += time.perf_counter() - start
        baselines = {"logistic": LogisticBaseline(C=c.logistic_C).fit(X_all, y_all),
                     "points_rule": PointsRuleScore().fit(X_all, y_all)}
        refit_rows = len(X_all)
        del X_all

    metrics = {"fit_seconds": round(fit_seconds, 2), "best_iteration": int(getattr(model, "best_iteration_", 0)),
               "n_train": int(len(fit_part)), "n_validation": int(len(val_part)), "n_positives": n_positives,
               "n_features": len(cols), "model_kind": model_kind, "n_baseline_rows": int(len(sample)),
               "variant": SNAPSHOTS, **extra}
    if reason:
        metrics["fallback_reason"] = reason
    else:
        metrics["calibration"] = model.calibration_
        metrics["learning_rate"] = float(model.config.learning_rate)
    if refit_rows:
        metrics["n_refit_rows"] = int(refit_rows)
    if scored_validation:
        val = classification_metrics(y_val, validation_scores["model"])
        metrics.update({f"validation_{k}": v for k, v in val.items() if k in ("roc_auc", "pr_auc", "brier", "ece")})
        for name in baselines:
            metrics[f"validation_baseline_{name}_roc_auc"] = classification_metrics(
                y_val, validation_scores[name])["roc_auc"]
    if getattr(model, "blend_model_", None) is not None:
        metrics["blend_weight_trees"] = float(model.blend_weight_)
    log(f"trained {model_kind} on {len(fit_part):,} rows in {fit_seconds:.1f}s ({c.n_jobs} threads), "
        f"{metrics['best_iteration']} trees, validation AUC {metrics.get('validation_roc_auc', float('nan')):.4f}")
    return TrainResult(model, baselines, cols, metrics)


def _flat_parts(table: pd.DataFrame, c: TrainConfig) -> tuple[pd.DataFrame, np.ndarray, pd.Series | None, list[str]]:
    train = table[table["split"] == "train"].reset_index(drop=True)
    cols, _ = model_columns(feature_columns(train), c)
    t = train[FLAT_TIME] if FLAT_TIME in train and train[FLAT_TIME].notna().any() else None
    return train[cols], train["label"].astype(int).to_numpy(), t, cols


def flat_fitter(c: TrainConfig, reason: str | None, category_shares: bool = False):
    """``fit(X, y, time)`` for flat rows: the logistic fallback when ``reason`` says so, else the calibrated blend
    of LightGBM and the spline logistic model (choices on an inner validation part, the latest rows by ``time``)."""
    if reason:
        return lambda X, y, time=None: LogisticBaseline(C=c.logistic_C).fit(X, y)

    def fit_rows(X, y, time=None):  # the booster's rate (and patience) by the rows it fits on
        config = blend.BlendConfig(booster=booster_config(c, n_rows=len(X), variant=FLAT), calibration=c.calibration,
                                   category_shares=category_shares)
        return blend.fit_blend(X, y, config, time=time)

    return fit_rows


def fit_flat(table: pd.DataFrame, c: TrainConfig, category_shares: bool = False, log: Log = _quiet) -> TrainResult:
    """Flat exports: the calibrated blend (or the logistic fallback) and a logistic baseline on the train rows."""
    X, y, t, cols = _flat_parts(table, c)
    reason = fallback_reason(int(y.sum()), c)
    if reason:
        log(f"small data: {reason}")
    start = time.perf_counter()
    model = flat_fitter(c, reason, category_shares)(X, y, t)
    fit_seconds = time.perf_counter() - start
    sample = stratified_sample(y, c.baseline_max_rows, seed=c.seed)
    baselines = {"logistic": LogisticBaseline(C=c.logistic_C).fit(X.iloc[sample], y[sample])}
    metrics: dict[str, Any] = {"fit_seconds": round(fit_seconds, 2), "n_train": int(len(y)),
                               "n_positives": int(y.sum()), "n_features": len(cols), "variant": FLAT,
                               "category_shares": bool(category_shares)}
    if reason:
        metrics.update({"model_kind": "logistic_fallback", "fallback_reason": reason, "best_iteration": 0})
    else:
        metrics.update({"model_kind": type(model).__name__, "best_iteration": int(model.best_iteration_),
                        "calibration": getattr(model, "calibration_", "none")})
        if isinstance(model, blend.BlendedModel):
            metrics.update({"blend_weight_trees": float(model.blend_weight_), "logistic_C": float(model.logistic_C_),
                            "validation_roc_auc": round(float(model.validation_roc_auc_), 4)})
    log(f"trained {metrics['model_kind']} on {len(y):,} rows in {fit_seconds:.1f}s ({c.n_jobs} threads)")
    return TrainResult(model, baselines, cols, metrics)


# ----------------------------------------------------------------------------------- cross-validation


def cross_validate(table: pd.DataFrame, c: TrainConfig, variant: str = SNAPSHOTS, n_folds: int = 5, *,
                   category_shares: bool = False, on_fold: Progress | None = None,
                   folds: list[int] | None = None) -> list[float]:
    """ROC AUC of each of ``n_folds`` stratified folds of the labelled rows (train and test splits), each fold's
    model fitted by the same `fit` as the final one, choosing everything inside its training folds.

    Snapshot tables are folded by lead (a lead's snapshots never sit on both sides of a fold).
    """
    labelled = table[table["split"].isin(["train", "test"])].reset_index(drop=True)
    y = labelled["label"].astype(int).to_numpy()
    # folds side by side, one thread each (blend.cross_validated_auc): c.n_jobs folds at once
    n_parallel, c = max(1, min(c.n_jobs, n_folds)), dataclasses.replace(c, n_jobs=1)
    if variant == FLAT:
        X, _, _, cols = _flat_parts(labelled.assign(split="train"), c)
        reason = fallback_reason(int(labelled.loc[labelled["split"] == "train", "label"].astype(int).sum()), c)
        fitter = flat_fitter(c, reason, category_shares)  # the final model's kind, in every fold
        # no time inside a fold: stratified folds mix periods anyway
        return blend.cross_validated_auc(lambda Xf, yf, _g: fitter(Xf, yf, None), X, y, n_folds, c.seed,
                                         on_fold=on_fold, n_jobs=n_parallel, folds=folds)
    if variant != SNAPSHOTS:
        raise ValueError(f"unknown pipeline variant {variant!r}: choose one of {list(VARIANTS)}")
    groups = labelled["lead_id"].astype("string").to_numpy()

    def fit_fold(_X, _y, positions):
        # the fold's rows as one training table: the latest snapshot among them validates, as in the full fit
        return _Columns(fit_snapshots(labelled.iloc[positions].assign(split="train"), c))

    return blend.cross_validated_auc(fit_fold, labelled, y, n_folds, c.seed, groups=groups, pass_positions=True,
                                     on_fold=on_fold, n_jobs=n_parallel, folds=folds)


class _Columns:
    """A fitted TrainResult's model reading its own columns of a whole feature table (for cross-validation)."""

    def __init__(self, result: TrainResult):
        self.result = result

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        return self.result.model.predict_proba(X[self.result.columns])


def categorical_columns(X: pd.DataFrame) -> tuple[str, ...]:
    """The categorical model inputs of a feature frame (the snapshot table's own, or a flat export's)."""
    return tuple(col for col in X.columns if col in CATEGORICAL_FEATURES or is_categorical(X[col]))

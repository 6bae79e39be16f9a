"""The conversion model: LightGBM with early stopping on a later period, then probability calibration.

One fitted object carries the column order, the categorical encoding, the booster and the calibrator, so
scoring cannot drift from training.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression

from models.config import CALIBRATIONS


@dataclass(frozen=True)
class BoosterConfig:
    learning_rate: float = 0.03
    num_leaves: int = 31
    min_child_samples: int = 100
    n_estimators: int = 2000
    early_stopping_rounds: int = 100
    subsample: float = 0.8
    colsample_bytree: float = 0.8
    reg_lambda: float = 1.0
    n_jobs: int = 1
    seed: int = 42
    # Features the score may only rise with (LightGBM monotone constraints), e.g. high-intent engagement counts.
    monotone_increasing: tuple[str, ...] = ()
    # Boost from a regularised logistic regression's log-odds (init_score) instead of from a constant: the trees
    # learn what the additive model misses. Monotone features are left out of the logistic part, so their
    # constraints hold for the whole score.
    boost_from_logistic: bool = False
    logistic_C: float = 0.1
    # Blend the booster's log-odds with a regularised logistic regression's (fitted on the same rows), the weight
    # chosen on the validation period among 0, 0.1, ..., 1 by ROC AUC; calibration then maps the blend.
    blend_logistic: bool = False
    # The logistic part (blend or offset) is fitted on a class-stratified sample of at most this many rows
    # (0: every row). At a million leads it fitted on 1.9M rows took longer than the trees and peaked at 9.8 GB.
    logistic_max_rows: int = 0


def lightgbm_params(cfg: BoosterConfig) -> dict:
    """The LightGBM classifier's settings of a `BoosterConfig` (every booster leadscore fits takes these).

    Histograms are built column-wise (`force_col_wise`): the same trees, bit for bit, as LightGBM's own choice,
    which on these tables and 1-2 threads is row-wise after a timing test and 15-20 % slower (the demo's 659-tree
    fit: 17.6 s -> 15.3 s, its refit 23.7 s -> 20.0 s; LightGBM recommends column-wise for few threads)."""
    return {"objective": "binary", "learning_rate": cfg.learning_rate, "num_leaves": cfg.num_leaves,
            "min_child_samples": cfg.min_child_samples, "n_estimators": cfg.n_estimators,
            "subsample": cfg.subsample, "subsample_freq": 1, "colsample_bytree": cfg.colsample_bytree,
            "reg_lambda": cfg.reg_lambda, "n_jobs": cfg.n_jobs, "random_state": cfg.seed, "verbose": -1,
            "force_col_wise": True}


class ConversionModel(ClassifierMixin, BaseEstimator):
    """Calibrated LightGBM classifier over the feature table's columns.

    `fit` takes a training frame and a *later* validation frame: the booster stops early on the validation
    period and the calibrator maps its raw scores to probabilities on that same later period, which is how
    the model will be used (trained on the past, applied to the future).

    Class imbalance is left to the unweighted log loss (no re-weighting or resampling, which would distort the
    probabilities); calibration `auto` picks isotonic or sigmoid by cross-validated log loss on the
    validation period.
    """

    def __init__(self, config: BoosterConfig | None = None, calibration: str = "isotonic"):
        self.config = config
        self.calibration = calibration

    def fit(self, X: pd.DataFrame, y, X_val: pd.DataFrame | None = None, y_val=None,
            sample_weight=None, on_round: Callable[[int, int], None] | None = None) -> ConversionModel:
        """`sample_weight` (optional) weighs the training rows of the booster, e.g. 1 / rate for negatives kept at
        that rate by down-sampling (models/sampling.py), so its log loss is the full data's in expectation.
        `on_round(done, total)`, when given, is called after each boosting round (progress; never stored)."""
        cfg = self.config or BoosterConfig()
        if self.calibration not in CALIBRATIONS:
            raise ValueError(f"calibration must be one of {list(CALIBRATIONS)}, not {self.calibration!r}")
        self.feature_names_in_ = np.array(list(X.columns), dtype=object)
        self.categories_ = {c: list(X[c].cat.categories) for c in X.columns if isinstance(X[c].dtype, pd.CategoricalDtype)}
        y = np.asarray(y, dtype=int)
        self.classes_ = np.array([0, 1])
        self.booster_ = lgb.LGBMClassifier(**lightgbm_params(cfg),
                                           **_monotone_kwargs(list(X.columns), cfg.monotone_increasing))
        self.offset_model_ = None
        if cfg.boost_from_logistic:
            from models.baselines import LogisticBaseline

            self.offset_model_ = LogisticBaseline(C=cfg.logistic_C).fit(
                *_bounded(X[self._linear_columns()], y, cfg.logistic_max_rows, cfg.seed))
        fit_kwargs = {}
        if self.offset_model_ is not None:
            fit_kwargs["init_score"] = self._offset(X)
        if X_val is not None and len(X_val):
            X_val = self._prepare(X_val)
            fit_kwargs.update({
                **eval_kwargs(X_val, np.asarray(y_val, dtype=int)),
                "eval_metric": "binary_logloss",
                "callbacks": [lgb.early_stopping(cfg.early_stopping_rounds, verbose=False)],
            })
            if self.offset_model_ is not None:
                fit_kwargs["eval_init_score"] = [self._offset(X_val)]
        if on_round is not None:
            fit_kwargs["callbacks"] = [*fit_kwargs.get("callbacks", []), round_callback(on_round)]
        self.booster_.fit(self._prepare(X), y, sample_weight=sample_weight, **fit_kwargs)
        self.best_iteration_ = int(self.booster_.best_iteration_ or self.booster_.n_estimators)
        self.blend_model_, self.blend_weight_ = None, 1.0
        if cfg.blend_logistic and X_val is not None and len(X_val) and len(np.unique(y_val)) == 2:
            from models.baselines import LogisticBaseline

            self.blend_model_ = LogisticBaseline(C=cfg.logistic_C).fit(
                *_bounded(X[self._linear_columns()], y, cfg.logistic_max_rows, cfg.seed))
            self.blend_weight_ = choose_blend_weight(
                self._margin(X_val, prepared=True), _logit(self.blend_model_.predict_proba(X_val)[:, 1]),
                np.asarray(y_val, dtype=int))

        self.calibrator_ = None
        self.calibration_ = "none"
        if self.calibration != "none":
            X_cal, y_cal = (X_val, np.asarray(y_val, dtype=int)) if X_val is not None and len(X_val) else (X, y)
            raw = self._raw(X_cal, prepared=True) if X_cal is X_val else self._raw(X)
            self.calibration_ = choose_calibration(raw, y_cal, cfg.seed) if self.calibration == "auto" \
                else self.calibration
            self.calibrator_ = fit_calibrator(self.calibration_, raw, y_cal)
        return self

    def _linear_columns(self) -> list[str]:
        """The logistic part's columns (offset or blend): all but the monotone ones, whose constraint must hold for
        the whole score."""
        monotone = set((self.config or BoosterConfig()).monotone_increasing)
        return [c for c in self.feature_names_in_ if c not in monotone]

    def _prepare(self, X: pd.DataFrame) -> pd.DataFrame:
        X = select_model_columns(X, self.feature_names_in_)
        for col, cats in self.categories_.items():
            X[col] = as_categories(X[col], cats)
        return X

    def _offset(self, X: pd.DataFrame) -> np.ndarray:
        """Log-odds of the logistic part (0 without one)."""
        if getattr(self, "offset_model_", None) is None:
            return np.zeros(len(X))
        return _logit(self.offset_model_.predict_proba(X)[:, 1])

    def _margin(self, X: pd.DataFrame, prepared: bool = False) -> np.ndarray:
        """Log-odds of the boosted part: the trees plus, with boost_from_logistic, the logistic offset."""
        X = X if prepared else self._prepare(X)
        margin = self.booster_.predict(X, raw_score=True, num_iteration=self.best_iteration_)
        if getattr(self, "offset_model_", None) is not None:
            margin = margin + self._offset(X)
        return margin

    def _raw(self, X: pd.DataFrame, prepared: bool = False) -> np.ndarray:
        """The uncalibrated probability: the booster's, or its blend with the logistic part on the log-odds scale."""
        X = X if prepared else self._prepare(X)
        margin = self._margin(X, prepared=True)
        if getattr(self, "blend_model_", None) is not None:
            w = self.blend_weight_
            margin = w * margin + (1.0 - w) * _logit(self.blend_model_.predict_proba(X)[:, 1])
        return 1.0 / (1.0 + np.exp(-margin))

    def refit(self, X: pd.DataFrame, y, on_round: Callable[[int, int], None] | None = None) -> ConversionModel:
        """Fit the trees (and the logistic part) again on more rows, typically all training snapshots.

        Early stopping and calibration need rows the model has not seen, so `fit` holds the latest snapshot's
        validation accounts out; once the number of trees, the blend weight and the calibrator are chosen, this
        spends every training row on the final fit and keeps those choices. The calibrator was fitted on
        out-of-sample scores of a model of the same shape, which is what the refitted model's scores on new leads
        are too.
        """
        from models.baselines import LogisticBaseline

        cfg = self.config or BoosterConfig()
        y = np.asarray(y, dtype=int)
        X = X[list(self.feature_names_in_)]
        params = {**self.booster_.get_params(), "n_estimators": self.best_iteration_}
        booster = lgb.LGBMClassifier(**params)
        fit_kwargs = {}
        if getattr(self, "offset_model_", None) is not None:
            self.offset_model_ = LogisticBaseline(C=cfg.logistic_C).fit(X[self._linear_columns()], y)
            fit_kwargs["init_score"] = self._offset(X)
        if on_round is not None:
            fit_kwargs["callbacks"] = [round_callback(on_round)]
        booster.fit(self._prepare(X), y, **fit_kwargs)
        self.booster_ = booster
        if getattr(self, "blend_model_", None) is not None:
            self.blend_model_ = LogisticBaseline(C=cfg.logistic_C).fit(X[self._linear_columns()], y)
        self.n_refit_rows_ = len(X)
        return self

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        p = apply_calibrator(self.calibrator_, self._raw(X))
        return np.column_stack([1.0 - p, p])

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return (self.predict_proba(X)[:, 1] >= 0.5).astype(int)

    def contributions(self, X: pd.DataFrame) -> pd.DataFrame:
        """Per-row SHAP contributions (log-odds) of each feature; costly, so call it on the rows that need it."""
        contrib = self.booster_.predict_proba(self._prepare(X), pred_contrib=True, num_iteration=self.best_iteration_)
        out = pd.DataFrame(contrib[:, :-1], columns=list(self.feature_names_in_), index=X.index)
        if getattr(self, "offset_model_", None) is not None:  # plus the logistic part's per-feature log-odds
            linear = self.offset_model_.contributions(X)
            out[linear.columns] = out[linear.columns].to_numpy() + linear.to_numpy()
        if getattr(self, "blend_model_", None) is not None:  # the blend is linear in log-odds: so are its parts
            w = self.blend_weight_
            linear = self.blend_model_.contributions(X)
            out = out * w
            out[linear.columns] = out[linear.columns].to_numpy() + (1.0 - w) * linear.to_numpy()
        return out

    def feature_importance(self) -> pd.Series:
        gain = self.booster_.booster_.feature_importance(importance_type="gain")
        return pd.Series(gain, index=list(self.feature_names_in_)).sort_values(ascending=False)


# Isotonic steps are fitted on a finite sample: a top block of a few all-positive rows would say p = 1.000.
# Probabilities are kept inside [P_FLOOR, P_CEIL]; no lead is ever certain.
P_FLOOR, P_CEIL = 1e-4, 0.995


def round_callback(on_round: Callable[[int, int], None]):
    """A LightGBM callback calling ``on_round(rounds done, rounds at most)`` after each boosting round."""
    def callback(env) -> None:
        on_round(env.iteration - env.begin_iteration + 1, env.end_iteration - env.begin_iteration)

    return callback


def fit_calibrator(method: str, raw: np.ndarray, y: np.ndarray):
    """A map from raw scores to probabilities: isotonic (monotone steps) or sigmoid (Platt on the logit)."""
    raw = np.asarray(raw, dtype=float)
    y = np.asarray(y, dtype=int)
    if method == "none":
        return None
    if method == "isotonic":
        return IsotonicRegression(out_of_bounds="clip", y_min=P_FLOOR, y_max=P_CEIL).fit(raw, y)
    if method == "sigmoid":
        return LogisticRegression(C=1e6).fit(_logit(raw).reshape(-1, 1), y)
    raise ValueError(f"calibration must be one of {list(CALIBRATIONS)}, not {method!r}")


def apply_calibrator(calibrator, raw: np.ndarray) -> np.ndarray:
    raw = np.asarray(raw, dtype=float)
    if calibrator is None:
        p = raw
    elif isinstance(calibrator, IsotonicRegression):
        p = calibrator.predict(raw)
    else:
        p = calibrator.predict_proba(_logit(raw).reshape(-1, 1))[:, 1]
    return np.clip(p, P_FLOOR, P_CEIL)


def choose_calibration(raw: np.ndarray, y: np.ndarray, seed: int = 0, n_folds: int = 5) -> str:
    """isotonic or sigmoid, whichever has the lower out-of-fold log loss on (raw, y)."""
    from sklearn.metrics import log_loss
    from sklearn.model_selection import StratifiedKFold

    raw = np.asarray(raw, dtype=float)
    y = np.asarray(y, dtype=int)
    if y.sum() < n_folds or (1 - y).sum() < n_folds:
        return "sigmoid"  # too few of a class to fit steps
    losses = {}
    for method in ("isotonic", "sigmoid"):
        oof = np.empty(len(y))
        for fit_idx, held_idx in StratifiedKFold(n_folds, shuffle=True, random_state=seed).split(raw, y):
            oof[held_idx] = apply_calibrator(fit_calibrator(method, raw[fit_idx], y[fit_idx]), raw[held_idx])
        losses[method] = log_loss(y, oof, labels=[0, 1])
    return min(losses, key=losses.get)


BLEND_WEIGHTS = tuple(np.round(np.linspace(0.0, 1.0, 11), 2))


def choose_blend_weight(tree_logit: np.ndarray, linear_logit: np.ndarray, y: np.ndarray,
                        weights: tuple[float, ...] = BLEND_WEIGHTS) -> float:
    """The weight w of the trees in w * trees + (1 - w) * linear (log-odds) with the best ROC AUC on (.., y).

    Ties (within 1e-9) go to the larger weight (the booster alone, w = 1, wins a tie), so a blend is used only
    when it helps. Shared by this model and the flat tables' `models.blend.BlendedModel`.
    """
    from sklearn.metrics import roc_auc_score

    y = np.asarray(y, dtype=int)
    scores = {w: roc_auc_score(y, w * tree_logit + (1.0 - w) * linear_logit) for w in weights}
    best = max(scores.values())
    return float(max(w for w, v in scores.items() if v >= best - 1e-9))


_HAS_EVAL_XY = "eval_X" in inspect.signature(lgb.LGBMClassifier.fit).parameters


def eval_kwargs(X_val: pd.DataFrame, y_val: np.ndarray) -> dict:
    """The validation data for early stopping: `eval_X`/`eval_y` where LightGBM has them (4.6+ deprecates
    `eval_set`), `eval_set` on older 4.x."""
    if _HAS_EVAL_XY:
        return {"eval_X": (X_val,), "eval_y": (y_val,)}
    return {"eval_set": [(X_val, y_val)]}


def _monotone_kwargs(columns: list[str], increasing: tuple[str, ...]) -> dict:
    """LightGBM monotone constraints: +1 for the listed features present in `columns`, 0 elsewhere."""
    if not increasing:
        return {}
    wanted = set(increasing)
    constraints = [1 if c in wanted else 0 for c in columns]
    if not any(constraints):
        return {}
    return {"monotone_constraints": constraints, "monotone_constraints_method": "advanced"}


def as_categories(values: pd.Series, categories) -> pd.Categorical:
    """`values` as a Categorical over exactly `categories` (a value outside them is missing), as LightGBM was
    trained on them. A categorical column (the feature table's) is recoded through its categories, not row by
    row: the same result as ``pd.Categorical(values.astype(object), categories=categories)``, without a Python
    object per row (about 1.4 s of a million-row scoring)."""
    dtype = pd.CategoricalDtype(categories, ordered=False)
    if isinstance(values.dtype, pd.CategoricalDtype):
        codes = values.cat.codes.to_numpy()
        if not values.cat.categories.equals(dtype.categories):
            where = dtype.categories.get_indexer(values.cat.categories)  # -1: a level the model never saw
            codes = np.where(codes < 0, -1, where[codes])
    else:  # looked up by value; missing and unseen values get -1
        codes = dtype.categories.get_indexer(pd.Index(values.astype("object")))
    return pd.Categorical.from_codes(codes, dtype=dtype)


def select_model_columns(X: pd.DataFrame, names) -> pd.DataFrame:
    """A copy of `X` with exactly the model's columns in training order; a missing one is an error naming it."""
    missing = [c for c in names if c not in X.columns]
    if missing:
        raise ValueError(f"feature table is missing column(s) the model was trained on: {missing}")
    return X.loc[:, list(names)].copy()


def _bounded(X: pd.DataFrame, y: np.ndarray, max_rows: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """(X, y), or a class-stratified sample of at most `max_rows` of their rows (`max_rows` 0: all of them)."""
    if not max_rows or len(y) <= max_rows:
        return X, y
    from models.sampling import stratified_sample

    idx = stratified_sample(y, max_rows, seed)
    return X.iloc[idx], y[idx]


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))

"""Flat lead tables (one row per lead, a few thousand rows): a calibrated blend of LightGBM and a spline logistic
regression on the log-odds scale, every choice made on an inner validation split of the training rows.

* `SplineLogistic`: L2 logistic regression where each number enters as a cubic B-spline of log1p(value) plus a
  missing-indicator (a bent curve instead of one slope: time on site converts best in the middle range), and
  each categorical one-hot with rare levels grouped (`min_category_count`).
* `BlendedModel`: on the fit part, the booster stops early on the validation part; the logistic L2 strength is
  chosen from `logistic_Cs` by validation ROC AUC; the trees' weight w in ``w * trees + (1 - w) * logistic``
  (log-odds) is chosen from `blend_weights` by validation ROC AUC (ties go to the trees); the calibrator maps the
  blend to probabilities on that same validation part. With `refit`, both parts are then refitted on every
  training row with the chosen shape (trees, C, w and calibrator are kept). Nothing is chosen on rows the
  caller holds out, so cross-validated scores of this model are honest.
* `category_shares` (optional): each categorical also as the share of training rows holding its value.
* `cross_validated_auc`: stratified (or grouped) k-fold ROC AUC of any model factory.

Pure logic: no params files, disk or MLflow.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import GroupShuffleSplit, StratifiedGroupKFold, StratifiedKFold, train_test_split

from models.baselines import LinearDesign, check_linear_state, is_categorical, one_blas_thread
from models.conversion import (
    P_CEIL,
    P_FLOOR,
    BoosterConfig,
    apply_calibrator,
    choose_blend_weight,
    choose_calibration,
    eval_kwargs,
    fit_calibrator,
    lightgbm_params,
    select_model_columns,
)

DEFAULT_WEIGHTS: tuple[float, ...] = tuple(float(w) for w in np.round(np.linspace(0.0, 1.0, 11), 2))
DEFAULT_CS: tuple[float, ...] = (0.03, 0.1, 0.3, 1.0)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.asarray(z, dtype=float)))


class SplineLogistic(ClassifierMixin, BaseEstimator):
    """L2 logistic regression over spline-expanded log numbers, missing-indicators and one-hot categoricals."""

    def __setstate__(self, state: dict) -> None:
        check_linear_state(self, state)
        super().__setstate__(state)

    def __init__(self, C: float = 0.3, n_knots: int = 5, min_category_count: int = 10, max_iter: int = 3000):
        self.C = C
        self.n_knots = n_knots
        self.min_category_count = min_category_count
        self.max_iter = max_iter

    def fit(self, X: pd.DataFrame, y, X_val: pd.DataFrame | None = None, y_val=None,  # noqa: ARG002
            start: SplineLogistic | None = None) -> SplineLogistic:
        """Fit on (X, y); ``start``: a fitted model of the same columns whose coefficients the solver starts from
        (the optimum is the same, reached in fewer Newton steps when ``start`` is close to it)."""
        Z = self._fit_design(X)
        init = None
        if start is not None and start.design_.owners_.tolist() == self.design_.owners_.tolist():
            init = (start.lr_.coef_, start.lr_.intercept_)
        return self.fit_inputs(Z, y, init)

    def _fit_design(self, X: pd.DataFrame) -> np.ndarray:
        """Fit the design on `X`; returns `X`'s inputs (`LinearDesign.fit_transform`)."""
        self.feature_names_in_ = np.array(list(X.columns), dtype=object)
        self.categorical_ = [c for c in X.columns if is_categorical(X[c])]
        self.numeric_ = [c for c in X.columns if c not in self.categorical_]
        self.classes_ = np.array([0, 1])
        self.design_ = LinearDesign(self.numeric_, self.categorical_, n_knots=self.n_knots,
                                    min_category_count=self.min_category_count)
        return self.design_.fit_transform(self._prepare(X))

    def fit_inputs(self, Z: np.ndarray, y, init: tuple[np.ndarray, np.ndarray] | None = None) -> SplineLogistic:
        """The regression alone on the design's inputs ``Z`` (the design already fitted); ``init``: (coefficients,
        intercept) the Newton solver starts from instead of zero (a warm start: the same optimum, fewer steps)."""
        lr = LogisticRegression(C=self.C, max_iter=self.max_iter, solver="newton-cholesky",
                                warm_start=init is not None)
        if init is not None:
            lr.coef_, lr.intercept_ = np.array(init[0], dtype=float), np.array(init[1], dtype=float)
        with one_blas_thread():
            self.lr_ = lr.fit(Z, np.asarray(y, dtype=int))
        return self

    @property
    def intercept_(self) -> float:
        return float(self.lr_.intercept_[0])

    def _prepare(self, X: pd.DataFrame) -> pd.DataFrame:
        return select_model_columns(X, self.feature_names_in_)

    def decision_function(self, X: pd.DataFrame) -> np.ndarray:
        return self.lr_.decision_function(self.design_.transform(self._prepare(X)))

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        p = np.clip(_sigmoid(self.decision_function(X)), P_FLOOR, P_CEIL)
        return np.column_stack([1.0 - p, p])

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return (self.predict_proba(X)[:, 1] >= 0.5).astype(int)

    def contributions(self, X: pd.DataFrame) -> pd.DataFrame:
        """Per-row log-odds contribution of each input column (coefficient x transformed value, summed over the
        column's spline basis, missing-indicator or one-hot levels; the intercept is left out)."""
        Z = self.design_.transform(self._prepare(X))
        parts = self.design_.contributions(Z, self.lr_.coef_[0], self.feature_names_in_)
        return pd.DataFrame(parts, index=X.index, columns=list(self.feature_names_in_))


def fit_logistic_grid(X: pd.DataFrame, y, Cs, n_knots: int = 5, min_category_count: int = 10) -> dict:
    """`SplineLogistic` for each L2 strength in ``Cs``: the design (splines, one-hot) is fitted and applied once
    and shared, only the regression is refitted per C, along a warm-started path from the strongest L2 to the
    weakest (each fit starts from the previous optimum: the same models as fitting each from scratch, within the
    solver's tolerance, in fewer Newton steps)."""
    first = SplineLogistic(Cs[0], n_knots, min_category_count)
    Z = first._fit_design(X)
    models: dict[float, SplineLogistic] = {}
    init = None
    for C in sorted(float(C) for C in Cs):
        model = SplineLogistic(C, n_knots, min_category_count)
        model.__dict__.update({k: v for k, v in first.__dict__.items() if k.endswith("_")})
        models[C] = model.fit_inputs(Z, y, init)
        init = (model.lr_.coef_, model.lr_.intercept_)
    return {float(C): models[float(C)] for C in Cs}


@dataclass(frozen=True)
class BlendConfig:
    """How `BlendedModel` fits; every tuple is a grid searched on the inner validation split."""

    booster: BoosterConfig = BoosterConfig()
    logistic_Cs: tuple[float, ...] = DEFAULT_CS
    blend_weights: tuple[float, ...] = DEFAULT_WEIGHTS
    n_knots: int = 5
    min_category_count: int = 10
    calibration: str = "auto"
    refit: bool = True  # after choosing on the validation part, refit both parts on every training row
    # each categorical also as the share of training rows with its value (landing pages, sources): rare and
    # common values become comparable, which neither the trees' category splits nor one-hot levels give
    category_shares: bool = False


SHARE_SUFFIX = "_share"


def category_shares(X: pd.DataFrame, columns) -> dict[str, dict[str, float]]:
    """For each categorical column, the share of rows holding each value (missing values not counted)."""
    n = max(len(X), 1)
    return {c: {str(k): v / n for k, v in X[c].dropna().astype(str).value_counts().items()} for c in columns}


def add_share_columns(X: pd.DataFrame, shares: dict[str, dict[str, float]]) -> pd.DataFrame:
    """A copy of ``X`` with ``<col>_share`` for each column in ``shares``: 0 for a value never seen, missing
    for a missing value."""
    out = X.copy()
    for col, share in shares.items():
        codes, uniques = pd.factorize(X[col], use_na_sentinel=True)  # each distinct value looked up once
        looked_up = np.array([share.get(str(v), 0.0) for v in uniques] + [np.nan], dtype=float)
        out[f"{col}{SHARE_SUFFIX}"] = looked_up[codes]  # code -1 (missing) takes the trailing NaN
    return out


def choose_by_auc(candidates: dict[float, np.ndarray], y: np.ndarray, prefer: str = "larger") -> float:
    """The key whose scores have the best ROC AUC on ``y``; ties (within 1e-9) go to the larger (or smaller) key."""
    y = np.asarray(y, dtype=int)
    aucs = {k: roc_auc_score(y, s) for k, s in candidates.items()}
    best = max(aucs.values())
    tied = [k for k, v in aucs.items() if v >= best - 1e-9]
    return float(max(tied) if prefer == "larger" else min(tied))


class BlendedModel(ClassifierMixin, BaseEstimator):
    """Calibrated blend of LightGBM and `SplineLogistic` (see the module docstring); ConversionModel's interface."""

    def __init__(self, config: BlendConfig | None = None):
        self.config = config

    def fit(self, X: pd.DataFrame, y, X_val: pd.DataFrame, y_val) -> BlendedModel:
        cfg = self.config or BlendConfig()
        b = cfg.booster
        y = np.asarray(y, dtype=int)
        y_val = np.asarray(y_val, dtype=int)
        if len(np.unique(y_val)) < 2 or len(np.unique(y)) < 2:
            raise ValueError("BlendedModel needs both outcomes in the fit part and in the validation part")
        self.feature_names_in_ = np.array(list(X.columns), dtype=object)
        self.categories_ = {c: list(X[c].cat.categories) if isinstance(X[c].dtype, pd.CategoricalDtype)
                            else sorted(X[c].dropna().astype(str).unique())
                            for c in X.columns if is_categorical(X[c])}
        self.classes_ = np.array([0, 1])
        self.shares_ = category_shares(X, self.categories_) if cfg.category_shares else {}
        self.booster_ = lgb.LGBMClassifier(**lightgbm_params(b))
        Xf, Xv = self._prepare(X), self._prepare(X_val)
        self.booster_.fit(Xf, y, **eval_kwargs(Xv, y_val), eval_metric="binary_logloss",
                          callbacks=[lgb.early_stopping(b.early_stopping_rounds, verbose=False)])
        self.best_iteration_ = int(self.booster_.best_iteration_ or b.n_estimators)
        tree_val = self.booster_.predict(Xv, raw_score=True, num_iteration=self.best_iteration_)

        linear = fit_logistic_grid(Xf, y, cfg.logistic_Cs, cfg.n_knots, cfg.min_category_count)
        linear_val = {C: m.decision_function(Xv) for C, m in linear.items()}
        # smaller C (stronger L2) on a tie: the simpler model
        self.logistic_C_ = choose_by_auc(linear_val, y_val, prefer="smaller")
        self.linear_ = linear[self.logistic_C_]
        lin_val = linear_val[self.logistic_C_]
        self.blend_weight_ = choose_blend_weight(tree_val, lin_val, y_val, cfg.blend_weights)
        blend_val = _sigmoid(self.blend_weight_ * tree_val + (1 - self.blend_weight_) * lin_val)
        self.validation_roc_auc_ = float(roc_auc_score(y_val, blend_val))
        self.calibration_ = choose_calibration(blend_val, y_val, b.seed) if cfg.calibration == "auto" \
            else cfg.calibration
        self.calibrator_ = fit_calibrator(self.calibration_, blend_val, y_val)
        self.n_fit_rows_ = len(X)
        if cfg.refit:
            X_all = pd.concat([X, X_val], ignore_index=True)
            y_all = np.concatenate([y, y_val])
            if cfg.category_shares:
                self.shares_ = category_shares(X_all, self.categories_)
            X_all = self._prepare(X_all)
            # a part the blend gives no weight is not refitted: it adds nothing to a score (w = 1: trees only)
            if self.blend_weight_ > 0:
                self.booster_ = lgb.LGBMClassifier(**{**self.booster_.get_params(),
                                                      "n_estimators": self.best_iteration_})
                self.booster_.fit(X_all, y_all)
            if self.blend_weight_ < 1:
                self.linear_ = SplineLogistic(self.logistic_C_, cfg.n_knots, cfg.min_category_count).fit(
                    X_all, y_all, start=self.linear_)
            self.n_fit_rows_ = len(X_all)
        return self

    def _prepare(self, X: pd.DataFrame) -> pd.DataFrame:
        """The model's frame: its columns typed as in training, plus the category-share columns."""
        X = select_model_columns(X, self.feature_names_in_)
        for col, cats in self.categories_.items():
            X[col] = pd.Categorical(X[col].astype("object").where(X[col].notna(), None), categories=cats)
        for col in X.columns:
            if col not in self.categories_:
                X[col] = pd.to_numeric(X[col], errors="coerce").astype(float)
        return add_share_columns(X, getattr(self, "shares_", {}))

    def decision_function(self, X: pd.DataFrame) -> np.ndarray:
        """The blend's log-odds before calibration."""
        w = self.blend_weight_
        prepared = self._prepare(X)
        out = np.zeros(len(prepared))
        if w > 0:
            out += w * self.booster_.predict(prepared, raw_score=True, num_iteration=self.best_iteration_)
        if w < 1:
            out += (1 - w) * self.linear_.decision_function(prepared)
        return out

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        p = apply_calibrator(self.calibrator_, _sigmoid(self.decision_function(X)))
        return np.column_stack([1.0 - p, p])

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return (self.predict_proba(X)[:, 1] >= 0.5).astype(int)

    def contributions(self, X: pd.DataFrame) -> pd.DataFrame:
        """Per-row log-odds contributions: w x the trees' SHAP values + (1 - w) x the logistic part's."""
        w = self.blend_weight_
        prepared = self._prepare(X)
        shap = self.booster_.predict(prepared, pred_contrib=True, num_iteration=self.best_iteration_)
        trees = pd.DataFrame(shap[:, :-1], columns=list(prepared.columns), index=X.index)
        both = w * trees + (1 - w) * self.linear_.contributions(prepared)
        return self._fold_shares(both)

    def _fold_shares(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Per input column: a share column's part is its categorical column's."""
        out = frame[list(self.feature_names_in_)].copy()
        for col in getattr(self, "shares_", {}):
            out[col] = out[col].to_numpy() + frame[f"{col}{SHARE_SUFFIX}"].to_numpy()
        return out

    def feature_importance(self) -> pd.Series:
        gain = self.booster_.booster_.feature_importance(importance_type="gain")
        names = self.booster_.booster_.feature_name()
        by_input = self._fold_shares(pd.DataFrame([gain], columns=names))
        return by_input.iloc[0].sort_values(ascending=False)


def inner_split(y: np.ndarray, val_share: float = 0.2, seed: int = 42, time=None,
                groups=None) -> tuple[np.ndarray, np.ndarray]:
    """(fit, validation) positions inside the training rows: the latest ``val_share`` by ``time`` when given;
    else whole groups (an account's or lead's rows on one side) when ``groups`` is given; else stratified.
    Falls back to a stratified split when the chosen one leaves a side with one outcome only."""
    y = np.asarray(y, dtype=int)
    idx = np.arange(len(y))
    fit_idx = val_idx = None
    if time is not None:
        t = pd.Series(np.asarray(time))
        order = np.argsort(t.to_numpy(), kind="stable")
        cut = t.iloc[order[int(np.floor(len(y) * (1 - val_share)))]]
        fit_idx, val_idx = idx[(t < cut).to_numpy()], idx[(t >= cut).to_numpy()]
    elif groups is not None:
        splitter = GroupShuffleSplit(n_splits=1, test_size=val_share, random_state=seed)
        fit_idx, val_idx = next(splitter.split(idx, y, np.asarray(groups)))
    if fit_idx is None or len(np.unique(y[fit_idx])) < 2 or len(np.unique(y[val_idx])) < 2:
        fit_idx, val_idx = train_test_split(idx, test_size=val_share, stratify=y, random_state=seed)
    return np.sort(fit_idx), np.sort(val_idx)


def fit_blend(X: pd.DataFrame, y, config: BlendConfig, time=None, groups=None, val_share: float = 0.2) -> BlendedModel:
    """A BlendedModel whose choices use an inner validation part of (X, y) (see `inner_split`)."""
    y = np.asarray(y, dtype=int)
    X = X.reset_index(drop=True)
    fit_idx, val_idx = inner_split(y, val_share, config.booster.seed, time, groups)
    return BlendedModel(config).fit(X.iloc[fit_idx], y[fit_idx], X.iloc[val_idx], y[val_idx])


def cross_validated_auc(fit: Callable[[pd.DataFrame, np.ndarray, np.ndarray | None], object], X: pd.DataFrame, y,
                        n_folds: int = 5, seed: int = 42, groups=None, pass_positions: bool = False,
                        on_fold: Callable[[int, int], None] | None = None, n_jobs: int = 1,
                        folds: list[int] | None = None) -> list[float]:
    """ROC AUC on each of ``n_folds`` stratified folds (grouped when ``groups`` is given) of the model that
    ``fit(X_train, y_train, extra)`` returns, where ``extra`` is the training rows' groups (None without groups)
    or, with ``pass_positions``, their positions in ``X``. Everything the model chooses, it chooses inside the
    training folds. ``on_fold(done, n_folds)`` is called after each fold (progress).

    ``n_jobs`` > 1 fits that many folds at once in threads (LightGBM and the linear algebra release the GIL):
    ``fit`` should then use one thread itself. On a few tens of thousands of rows a booster gains little from a
    second thread, two folds side by side almost twice as much. The scores come back in fold order either way.

    ``folds``: fit only these folds (indices of the same split), their scores in that order: workers that share
    one cross-validation between them each take folds.
    """
    y = np.asarray(y, dtype=int)
    X = X.reset_index(drop=True)
    if groups is None:
        splits = StratifiedKFold(n_folds, shuffle=True, random_state=seed).split(np.zeros(len(y)), y)
    else:
        splits = StratifiedGroupKFold(n_folds, shuffle=True, random_state=seed).split(np.zeros(len(y)), y, groups)
    splits = list(splits)
    if folds is not None:
        splits = [splits[i] for i in folds]

    def one(fold: tuple[np.ndarray, np.ndarray]) -> float:
        train, test = fold
        extra = train if pass_positions else (None if groups is None else np.asarray(groups)[train])
        model = fit(X.iloc[train].reset_index(drop=True), y[train], extra)
        return float(roc_auc_score(y[test], model.predict_proba(X.iloc[test])[:, 1]))

    scores: list[float] = [0.0] * len(splits)
    with contextlib.ExitStack() as stack:
        if n_jobs > 1:
            stack.enter_context(one_blas_thread())
            pool = stack.enter_context(ThreadPoolExecutor(max_workers=n_jobs))
            futures = {pool.submit(one, fold): i for i, fold in enumerate(splits)}
            finished = ((futures[f], f.result()) for f in as_completed(futures))
        else:
            finished = ((i, one(fold)) for i, fold in enumerate(splits))
        for done, (i, score) in enumerate(finished, start=1):
            scores[i] = score
            if on_fold is not None:
                on_fold(done, n_folds)
    return scores

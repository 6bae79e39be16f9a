"""Baselines the conversion model must beat, trained and evaluated on the same split.

* `LogisticBaseline`: a regularised logistic regression pipeline (signed-log numbers, median imputation with
  missing-indicators, standardisation, one-hot categoricals, L2). It is also the small-data fallback: with few
  conversions a linear model is the honest choice.
* `PointsRuleScore`: the traditional marketing-automation lead score — fit points plus engagement points plus
  points for confirmed BANT answers — with its points mapped to probabilities by isotonic regression on the
  training rows (the points themselves are hand-set, not learned).

Both have the interface of `ConversionModel`: `fit(X, y, X_val, y_val)`, `predict_proba(X)`,
`feature_names_in_`.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import SplineTransformer
from threadpoolctl import threadpool_limits

from features.subscores import engagement_score, fit_score
from models.conversion import P_CEIL, P_FLOOR, select_model_columns


def signed_log(x):
    x = np.asarray(x, dtype=float)
    return np.sign(x) * np.log1p(np.abs(x))


def is_categorical(series: pd.Series) -> bool:
    return isinstance(series.dtype, pd.CategoricalDtype) or series.dtype == object or \
        pd.api.types.is_string_dtype(series.dtype)


def one_blas_thread():
    """A context in which BLAS runs one thread. The linear models' Newton steps multiply matrices of a few hundred
    columns: on 2 cores beside LightGBM's OpenMP threads, a second BLAS thread makes them several times slower."""
    return threadpool_limits(limits=1, user_api="blas")


class LinearDesign:
    """The inputs of a linear model, built in a few vectorised steps (one fitted object, not a pipeline per column).

    * numbers: signed log, median imputation with a missing-indicator (for a column with missing values in
      training), optionally a cubic B-spline basis of the imputed value (``n_knots``, quantile knots, constant
      beyond the ends), then standardised;
    * categoricals: one-hot of the levels seen at least ``min_category_count`` times; rarer levels share an
      "infrequent" input; missing is the level "missing". An unseen level goes to the infrequent input when
      ``unknown_as_infrequent`` and one exists, else to no input (all zeros).

    `owners_` names the input column of each output column, so per-column contributions add up exactly.
    """

    def __init__(self, numeric: list[str], categorical: list[str], n_knots: int | None = None,
                 min_category_count: int = 10, unknown_as_infrequent: bool = True):
        self.numeric = list(numeric)
        self.categorical = list(categorical)
        self.n_knots = n_knots
        self.min_category_count = min_category_count
        self.unknown_as_infrequent = unknown_as_infrequent

    def _logs(self, X: pd.DataFrame) -> np.ndarray:
        """The numbers' signed logs (NaN where missing or not a number), a column per number."""
        return np.column_stack([signed_log(pd.to_numeric(X[c], errors="coerce").to_numpy(dtype=float,
                                                                                        na_value=np.nan))
                                for c in self.numeric]) if self.numeric else np.zeros((len(X), 0))

    def _filled(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(values with the training medians where missing, where they were missing)."""
        missing = np.isnan(values)
        return np.where(missing, self.medians_, values), missing

    @staticmethod
    def _labels(X: pd.DataFrame, col: str) -> tuple[np.ndarray, np.ndarray]:
        """(labels, codes): each row's value as text is ``labels[codes]``; a missing value is "missing"."""
        s = X[col]
        if not isinstance(s.dtype, pd.CategoricalDtype):
            s = s.astype("object").where(s.notna(), "missing").astype(str).astype("category")
        labels = np.append(s.cat.categories.astype(str).to_numpy(dtype=object), "missing")
        codes = s.cat.codes.to_numpy().astype(np.int64)
        return labels, np.where(codes < 0, len(labels) - 1, codes)

    def fit(self, X: pd.DataFrame) -> LinearDesign:
        self._fit(X)
        return self

    def fit_transform(self, X: pd.DataFrame) -> np.ndarray:
        """`fit(X).transform(X)`, the same values, with the numbers' logs, imputation and blocks computed once
        (half the design's time on the demo's 265k training rows)."""
        return self._inputs(X, self._fit(X))

    def _fit(self, X: pd.DataFrame) -> np.ndarray:
        """Fit on `X`; returns its numeric block (what `transform` computes for `X` before standardising)."""
        values = self._logs(X)
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # an all-missing column: its median is 0
            medians = np.nanmedian(values, axis=0) if len(values) else np.zeros(values.shape[1])
        self.medians_ = np.where(np.isnan(medians), 0.0, medians)
        filled, missing = self._filled(values)
        self.indicators_ = np.flatnonzero(missing.any(axis=0))
        self.spline_ = None
        if self.n_knots and self.numeric:
            self.spline_ = SplineTransformer(n_knots=self.n_knots, degree=3, knots="quantile",
                                             extrapolation="constant").fit(filled)
        self.levels_: dict[str, list[str]] = {}
        self.rare_: dict[str, list[str]] = {}
        self.infrequent_: dict[str, bool] = {}
        for col in self.categorical:
            labels, codes = self._labels(X, col)
            counts = pd.Series(np.bincount(codes, minlength=len(labels)), index=labels).groupby(level=0).sum()
            counts = counts[counts > 0]
            self.levels_[col] = sorted(counts.index[counts >= self.min_category_count])
            self.rare_[col] = sorted(counts.index[counts < self.min_category_count])
            self.infrequent_[col] = bool(self.rare_[col])
        numeric_block = self._numeric_block(filled, missing)
        self.mean_ = numeric_block.mean(axis=0) if len(numeric_block) else np.zeros(numeric_block.shape[1])
        std = numeric_block.std(axis=0) if len(numeric_block) else np.ones(numeric_block.shape[1])
        self.scale_ = np.where(std > 0, std, 1.0)
        owners = list(self._numeric_owners())
        for col in self.categorical:
            owners += [col] * (len(self.levels_[col]) + self.infrequent_[col])
        self.owners_ = np.array(owners, dtype=object)
        self.n_rows_ = len(X)
        return numeric_block

    def _numeric_block(self, filled: np.ndarray, missing: np.ndarray) -> np.ndarray:
        """Per number: its spline basis (or its value), then its missing-indicator (columns grouped by number)."""
        k = len(self.numeric)
        if self.spline_ is not None:
            basis = self.spline_.transform(filled)
            width = basis.shape[1] // max(k, 1)
            parts = [basis[:, i * width:(i + 1) * width] for i in range(k)]
        else:
            parts = [filled[:, [i]] for i in range(k)]
        ind = set(self.indicators_.tolist())
        blocks = [np.column_stack([p, missing[:, [i]].astype(float)]) if i in ind else p for i, p in enumerate(parts)]
        return np.hstack(blocks) if blocks else np.zeros((len(filled), 0))

    def _numeric_owners(self):
        width = (self.spline_.n_features_out_ // len(self.numeric)) if self.spline_ is not None else 1
        ind = set(self.indicators_.tolist())
        for i, col in enumerate(self.numeric):
            yield from [col] * (width + (i in ind))

    def transform(self, X: pd.DataFrame) -> np.ndarray:
        return self._inputs(X, self._numeric_block(*self._filled(self._logs(X))))

    def _inputs(self, X: pd.DataFrame, numeric_block: np.ndarray) -> np.ndarray:
        """The model's inputs: `X`'s numeric block (`_numeric_block`) standardised, then the one-hot blocks."""
        out = [(numeric_block - self.mean_) / self.scale_]
        for col in self.categorical:
            levels = self.levels_[col]
            width = len(levels) + self.infrequent_[col]
            labels, label_codes = self._labels(X, col)
            codes = pd.Index(levels).get_indexer(labels)[label_codes]
            block = np.zeros((len(X), width))
            rows = np.arange(len(X))
            known = codes >= 0
            block[rows[known], codes[known]] = 1.0
            if self.infrequent_[col]:
                # rare levels of training share the "infrequent" input; an unseen level too, or no input at all
                other = ~known if self.unknown_as_infrequent else np.isin(labels, self.rare_[col])[label_codes]
                block[rows[other], width - 1] = 1.0
            out.append(block)
        return np.hstack(out)

    def contributions(self, Z: np.ndarray, coef: np.ndarray, columns) -> np.ndarray:
        """Per-row sum of coef x input over each input column's outputs, in the order of `columns`."""
        index = {c: j for j, c in enumerate(columns)}
        owner = np.array([index[o] for o in self.owners_], dtype=np.int64)
        onto = np.zeros((len(owner), len(index)))
        onto[np.arange(len(owner)), owner] = 1.0
        return (Z * coef) @ onto


class IncompatibleModelError(RuntimeError):
    """A saved model this leadscore cannot run: its parts were saved by an older version."""


def check_linear_state(model: object, state: dict) -> None:
    """Unpickling a linear model: one saved before `LinearDesign` (2026-11-30) holds a scikit-learn pipeline
    (``pipeline_``) where this version reads ``design_`` and ``lr_``; say so at load time, not as an
    AttributeError at the first prediction."""
    if "pipeline_" in state and "design_" not in state:
        raise IncompatibleModelError(
            f"this model's {type(model).__name__} was saved by an older leadscore (a scikit-learn pipeline, before "
            "2026-11-30) and cannot score with this version: retrain it (`leadscore run` or `dvc repro`) and "
            "register the new version")


class LogisticBaseline(ClassifierMixin, BaseEstimator):
    """L2-regularised logistic regression over all feature columns."""

    def __setstate__(self, state: dict) -> None:
        check_linear_state(self, state)
        super().__setstate__(state)

    def __init__(self, C: float = 0.1, max_iter: int = 2000):
        self.C = C
        self.max_iter = max_iter

    def fit(self, X: pd.DataFrame, y, X_val: pd.DataFrame | None = None, y_val=None) -> LogisticBaseline:  # noqa: ARG002
        """Fit on (X, y). The validation period is not needed: the L2 strength is fixed and no early stopping."""
        self.feature_names_in_ = np.array(list(X.columns), dtype=object)
        self.categorical_ = [c for c in X.columns if is_categorical(X[c])]
        numeric = [c for c in X.columns if c not in self.categorical_]
        self.classes_ = np.array([0, 1])
        X = select_model_columns(X, self.feature_names_in_)
        self.design_ = LinearDesign(numeric, self.categorical_, n_knots=None, min_category_count=20,
                                    unknown_as_infrequent=False)
        Z = self.design_.fit_transform(X)
        with one_blas_thread():
            self.lr_ = LogisticRegression(C=self.C, max_iter=self.max_iter, solver="newton-cholesky").fit(
                Z, np.asarray(y, dtype=int))
        return self

    @property
    def intercept_(self) -> float:
        return float(self.lr_.intercept_[0])

    def decision_function(self, X: pd.DataFrame) -> np.ndarray:
        return self.lr_.decision_function(self.design_.transform(select_model_columns(X, self.feature_names_in_)))

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        p = np.clip(1.0 / (1.0 + np.exp(-self.decision_function(X))), P_FLOOR, P_CEIL)
        return np.column_stack([1.0 - p, p])

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return (self.predict_proba(X)[:, 1] >= 0.5).astype(int)

    def contributions(self, X: pd.DataFrame) -> pd.DataFrame:
        """Per-row log-odds contribution of each input column: coefficient x transformed value, summed over the
        column's derived inputs (its value, missing-indicator, one-hot levels); the intercept is left out."""
        Z = self.design_.transform(select_model_columns(X, self.feature_names_in_))
        parts = self.design_.contributions(Z, self.lr_.coef_[0], self.feature_names_in_)
        return pd.DataFrame(parts, index=X.index, columns=list(self.feature_names_in_))


# Points for each confirmed BANT answer from a qualification call (the classic "sales accepted" bonus).
BANT_POINTS = {"bant_budget_confirmed": 10.0, "bant_authority_confirmed": 10.0, "bant_need_confirmed": 10.0,
               "bant_timeline_confirmed": 10.0}
RULE_COLUMNS = ("icp_industry", "icp_size", "icp_country", "seniority_level", "engagement_decayed", *BANT_POINTS)


def rule_points(X: pd.DataFrame) -> np.ndarray:
    """Fit score (0-100) + engagement score (0-100) + 10 per confirmed BANT answer (0-40); absent columns score 0."""
    X = X.reindex(columns=list(dict.fromkeys([*X.columns, *RULE_COLUMNS])))
    points = (fit_score(X, unknown_as_null=False).to_numpy(dtype=float)
              + engagement_score(X, unknown_as_null=False).to_numpy(dtype=float))
    for col, w in BANT_POINTS.items():
        if col in X:
            points = points + w * (pd.to_numeric(X[col], errors="coerce").fillna(0).to_numpy(dtype=float) > 0.5)
    return points


class PointsRuleScore(ClassifierMixin, BaseEstimator):
    """Hand-set points; only the map from points to probability is fitted (isotonic, on the training rows)."""

    def fit(self, X: pd.DataFrame, y, X_val: pd.DataFrame | None = None, y_val=None) -> PointsRuleScore:  # noqa: ARG002
        self.feature_names_in_ = np.array([c for c in RULE_COLUMNS if c in X.columns], dtype=object)
        self.classes_ = np.array([0, 1])
        self.calibrator_ = IsotonicRegression(out_of_bounds="clip", y_min=P_FLOOR, y_max=P_CEIL).fit(
            rule_points(X), np.asarray(y, dtype=int))
        return self

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        p = np.clip(self.calibrator_.predict(rule_points(X)), P_FLOOR, P_CEIL)
        return np.column_stack([1.0 - p, p])

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return (self.predict_proba(X)[:, 1] >= 0.5).astype(int)

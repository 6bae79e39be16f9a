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

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

from features.subscores import engagement_score, fit_score
from models.conversion import P_CEIL, P_FLOOR, select_model_columns


def signed_log(x):
    x = np.asarray(x, dtype=float)
    return np.sign(x) * np.log1p(np.abs(x))


def is_categorical(series: pd.Series) -> bool:
    return isinstance(series.dtype, pd.CategoricalDtype) or series.dtype == object or \
        pd.api.types.is_string_dtype(series.dtype)


def linear_inputs(X: pd.DataFrame, names, categorical) -> pd.DataFrame:
    """The columns `names` as a linear model's pipeline takes them: categoricals as strings ("missing" for NA),
    everything else as floats (NaN where not a number)."""
    X = select_model_columns(X, names)
    for col in X.columns:
        if col in categorical:
            X[col] = X[col].astype("object").where(X[col].notna(), "missing").astype(str)
        else:
            X[col] = pd.to_numeric(X[col], errors="coerce").astype(float)
    return X


class LogisticBaseline(ClassifierMixin, BaseEstimator):
    """L2-regularised logistic regression over all feature columns."""

    def __init__(self, C: float = 0.1, max_iter: int = 2000):
        self.C = C
        self.max_iter = max_iter

    def fit(self, X: pd.DataFrame, y, X_val: pd.DataFrame | None = None, y_val=None) -> LogisticBaseline:  # noqa: ARG002
        """Fit on (X, y). The validation period is not needed: the L2 strength is fixed and no early stopping."""
        self.feature_names_in_ = np.array(list(X.columns), dtype=object)
        self.categorical_ = [c for c in X.columns if is_categorical(X[c])]
        numeric = [c for c in X.columns if c not in self.categorical_]
        self.classes_ = np.array([0, 1])
        steps = [("num", Pipeline([
            ("log", FunctionTransformer(signed_log, feature_names_out="one-to-one")),
            ("impute", SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True)),
            ("scale", StandardScaler()),
        ]), numeric)]
        if self.categorical_:
            steps.append(("cat", OneHotEncoder(handle_unknown="ignore", min_frequency=20), self.categorical_))
        self.pipeline_ = Pipeline([
            ("prep", ColumnTransformer(steps)),
            ("lr", LogisticRegression(C=self.C, max_iter=self.max_iter)),
        ])
        self.pipeline_.fit(self._prepare(X), np.asarray(y, dtype=int))
        return self

    def _prepare(self, X: pd.DataFrame) -> pd.DataFrame:
        return linear_inputs(X, self.feature_names_in_, self.categorical_)

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        p = np.clip(self.pipeline_.predict_proba(self._prepare(X))[:, 1], P_FLOOR, P_CEIL)
        return np.column_stack([1.0 - p, p])

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return (self.predict_proba(X)[:, 1] >= 0.5).astype(int)

    def contributions(self, X: pd.DataFrame) -> pd.DataFrame:
        """Per-row log-odds contribution of each input column: coefficient x transformed value, summed over the
        column's derived inputs (its value, missing-indicator, one-hot levels); the intercept is left out."""
        prep, lr = self.pipeline_.named_steps["prep"], self.pipeline_.named_steps["lr"]
        Z = prep.transform(self._prepare(X))
        Z = Z.toarray() if hasattr(Z, "toarray") else np.asarray(Z)
        parts = Z * lr.coef_[0]
        cats = sorted(self.categorical_, key=len, reverse=True)
        owner = []
        for name in prep.get_feature_names_out():
            kind, _, rest = name.partition("__")
            if kind == "num":
                owner.append(rest.removeprefix("missingindicator_"))
            else:
                owner.append(next(c for c in cats if rest.startswith(f"{c}_")))
        out = pd.DataFrame(0.0, index=X.index, columns=list(self.feature_names_in_))
        for j, col in enumerate(owner):
            out[col] = out[col].to_numpy() + parts[:, j]
        return out


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

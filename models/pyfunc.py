"""The served lead score: one MLflow pyfunc bundling the fitted model, the BANT gates and the SQL decision policy.

Contract (stable; `leadscore score --model models:/...` and `mlflow models serve` rely on it)
---------------------------------------------------------------------------------------------------------
Input: a table of feature rows, one per lead, as the `featurize` stage writes them —
  * every column in ``input_columns`` (the model's features, then the gate columns that are not features,
    such as ``annual_revenue``); numbers as numbers (ints are accepted where doubles are declared),
    categoricals (industry, region, department, lead_source, form_use_case) as plain strings, missing as null;
  * ``lead_id`` (text; in the signature, required by `predict`, echoed back in every answer); other extra columns
    are ignored.
  A column only a gate reads may be absent, and that gate's answer is then unknown. `predict` (the served entry)
  refuses a request with :class:`RequestError` (a ValueError, and an MlflowException so that the scoring server
  answers 400 with the short message and no stack trace) when it lacks ``lead_id`` or a model feature, when a
  number is not finite (``Infinity``, ``1e400``), negative where training never saw a negative value, or beyond
  ``bounds`` (1,000 times the largest magnitude seen in training, at least 1e6), or when it has more than
  ``max_rows`` rows (10,000; env ``LEADSCORE_SERVING_MAX_ROWS`` overrides at serving time).
Output: a table with one row per input row, in input order, with the columns of ``OUTPUT_COLUMNS``:
  lead_id (always from `predict`; from `score` when given), p_convert (calibrated probability of closed-won within the horizon, 0-1),
  score (round(100 * p_convert), 0-100), tier (A/B/C/D by params score.tiers), gate_<name> for each gate in
  params score.gates (pass / fail / unknown), status (sql / needs_call / nurture / disqualified),
  status_reason (text) and is_sql (bool).

The gates and the decision are the very functions of models/gates.py and models/ranking.py; this module only
wires them to the fitted model so that serving cannot drift from the batch stage.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE
from mlflow.pyfunc import PythonModel

from models.gates import GATE_ORDER, evaluate_gates, parse_gates
from models.ranking import DecisionPolicy, assign_tiers, decide

OUTPUT_COLUMNS = ("lead_id", "p_convert", "score", "tier", *(f"gate_{g}" for g in GATE_ORDER), "status",
                  "status_reason", "is_sql")
ID_COLUMN = "lead_id"
DEFAULT_MAX_ROWS = 10_000
MAX_ROWS_ENV = "LEADSCORE_SERVING_MAX_ROWS"
BOUND_FACTOR, MIN_BOUND = 1_000.0, 1e6  # upper bound of a number: 1,000 x the largest seen in training, >= 1e6


class RequestError(MlflowException, ValueError):
    """A request the served model refuses. Short message; the scoring server answers 400 without a stack trace."""

    def __init__(self, message: str):
        super().__init__(message, error_code=INVALID_PARAMETER_VALUE)


def value_bounds(rows: pd.DataFrame, columns: list[str], categorical: tuple[str, ...] = ()) -> dict[str, tuple[float, float]]:
    """(lowest, highest) value accepted per numeric column, from training rows: 0 as the floor of a column never
    negative in `rows` (counts, sizes, levels), and +-max(1,000 x its largest magnitude, 1e6) as the ceiling."""
    out = {}
    for col in columns:
        if col not in rows.columns or col in categorical:
            continue
        values = rows[col]
        if not pd.api.types.is_numeric_dtype(values.dtype) or pd.api.types.is_bool_dtype(values.dtype):
            continue
        finite = values.to_numpy(dtype="float64", na_value=np.nan)
        finite = finite[np.isfinite(finite)]
        if not len(finite):
            continue
        top = max(BOUND_FACTOR * float(np.abs(finite).max()), MIN_BOUND)
        out[col] = (0.0 if finite.min() >= 0 else -top, top)
    return out


def _rows_text(mask: np.ndarray) -> str:
    where = np.flatnonzero(mask)
    shown = ", ".join(str(i) for i in where[:5])
    return f"row {shown}" if len(where) == 1 else f"rows {shown}" + (f" (and {len(where) - 5} more)" if len(where) > 5 else "")


class LeadScoreModel(PythonModel):
    """Feature rows in, probability, score, tier, gates and SQL status out (see the module docstring).

    `model` is any fitted classifier with `predict_proba(frame)` and `feature_names_in_` (the calibrated
    ConversionModel or the logistic fallback); `gates` is the params `score.gates` mapping; `threshold`,
    `unknown_policy` and `tiers` are the decision policy of params `score`.
    """

    # Defaults for bundles pickled before these existed.
    bounds: Mapping[str, tuple[float, float]] = {}
    max_rows: int = DEFAULT_MAX_ROWS

    def __init__(self, model: Any, gates: Mapping[str, Any], threshold: float = 0.10,
                 unknown_policy: str = "call_queue", tiers: Mapping[str, float] | None = None,
                 categorical: tuple[str, ...] = (), bounds: Mapping[str, tuple[float, float]] | None = None,
                 max_rows: int = DEFAULT_MAX_ROWS):
        self.model = model
        self.gate_config = dict(gates)
        self.policy = DecisionPolicy(threshold, unknown_policy, dict(tiers or {"A": 0.30, "B": 0.15, "C": 0.05}))
        # Fails now, not at serving time, on a malformed config; no gates configured means no gate columns.
        self.gates = parse_gates(self.gate_config) if self.gate_config else []
        self.categorical = tuple(categorical)
        self.bounds = {str(k): (float(lo), float(hi)) for k, (lo, hi) in (bounds or {}).items()}
        self.max_rows = int(max_rows)

    @property
    def feature_columns(self) -> list[str]:
        return [str(c) for c in self.model.feature_names_in_]

    @property
    def input_columns(self) -> list[str]:
        """Required input columns: the model's features, then the gate columns that are not features."""
        features = self.feature_columns
        extra = [c for g in self.gates for c in g.columns() if c not in features]
        return features + list(dict.fromkeys(extra))

    def input_example(self, rows: pd.DataFrame) -> pd.DataFrame:
        """`rows` reduced to ``lead_id`` and the input columns in their wire form (strings for the id and the
        categoricals, floats for numbers); rows without a ``lead_id`` get one ("example-<n>")."""
        out = rows.loc[:, self.input_columns].copy()
        ids = rows[ID_COLUMN] if ID_COLUMN in rows.columns else pd.Series(
            [f"example-{i}" for i in range(len(rows))], index=rows.index)
        out.insert(0, ID_COLUMN, ids.astype("object").where(ids.notna(), None).map(lambda v: v if v is None else str(v)))
        for col in out.columns[1:]:
            if col in self.categorical or isinstance(out[col].dtype, pd.CategoricalDtype) or out[col].dtype == object \
                    or pd.api.types.is_string_dtype(out[col].dtype):
                out[col] = out[col].astype("object").where(out[col].notna(), None)
            else:
                out[col] = pd.to_numeric(out[col], errors="coerce").astype("float64")
        return out

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:  # noqa: ARG002
        rows = pd.DataFrame(model_input)
        self.check_request(rows)
        return self.score(rows)

    def request_limit(self) -> int:
        """Rows per request: env LEADSCORE_SERVING_MAX_ROWS (a positive integer) when set, else ``max_rows``."""
        raw = os.environ.get(MAX_ROWS_ENV, "").strip()
        return int(raw) if raw.isdigit() and int(raw) > 0 else self.max_rows

    def check_request(self, rows: pd.DataFrame) -> None:
        """Refuse (RequestError, one short line) a request the model must not score; see the module docstring."""
        limit = self.request_limit()
        if len(rows) > limit:
            raise RequestError(f"{len(rows):,} rows in one request; at most {limit:,} ({MAX_ROWS_ENV})")
        missing = [c for c in (ID_COLUMN, *self.feature_columns) if c not in rows.columns]
        if missing:
            more = f" and {len(missing) - 10} more" if len(missing) > 10 else ""
            raise RequestError(f"missing required column(s): {', '.join(missing[:10])}{more}")
        if rows[ID_COLUMN].isna().any():
            raise RequestError(f"column {ID_COLUMN}: empty in {_rows_text(rows[ID_COLUMN].isna().to_numpy())}")
        features = set(self.feature_columns)
        for col in self.input_columns:
            if col not in rows.columns or col in self.categorical:
                continue
            values = rows[col]
            if pd.api.types.is_bool_dtype(values.dtype):
                continue
            if pd.api.types.is_numeric_dtype(values.dtype):
                numbers = values.to_numpy(dtype="float64", na_value=np.nan)
            elif col in features or col in self.bounds:  # numbers sent as text (CSV); a gate-only column may be text
                parsed = pd.to_numeric(values, errors="coerce")
                bad = (values.notna() & parsed.isna()).to_numpy()
                if bad.any():
                    raise RequestError(f"column {col}: not a number in {_rows_text(bad)}")
                numbers = parsed.to_numpy(dtype="float64", na_value=np.nan)
            else:
                continue
            infinite = np.isinf(numbers)
            if infinite.any():
                raise RequestError(f"column {col}: non-finite value (Infinity, or beyond 1.8e308) in {_rows_text(infinite)}")
            lo, hi = self.bounds.get(col, (-math.inf, math.inf))
            with np.errstate(invalid="ignore"):
                below, above = numbers < lo, numbers > hi
            if below.any():
                kind = "negative" if lo == 0 else "out-of-range"
                raise RequestError(f"column {col}: {kind} value in {_rows_text(below)}; accepted {lo:g} to {hi:g}")
            if above.any():
                raise RequestError(f"column {col}: out-of-range value in {_rows_text(above)}; accepted {lo:g} to {hi:g}")

    def score(self, rows: pd.DataFrame) -> pd.DataFrame:
        features = set(self.feature_columns)
        # A column only a gate reads may be absent: its answer is unknown (a missing answer is not a "no").
        absent = [c for c in self.input_columns if c not in rows.columns and c not in features]
        if absent:
            rows = rows.assign(**{c: np.nan for c in absent})
        missing = [c for c in self.input_columns if c not in rows.columns]
        if missing:
            raise ValueError(f"input is missing required column(s) {missing}; "
                             f"the model needs {len(self.input_columns)} columns (see LeadScoreModel.input_columns)")
        rows = rows.reset_index(drop=True)
        frame = rows.loc[:, self.input_columns].copy()
        for col in frame.columns:  # numeric model features sent as text (CSV, JSON) become numbers
            textual = frame[col].dtype == object or pd.api.types.is_string_dtype(frame[col].dtype)
            if col in features and col not in self.categorical and textual:
                frame[col] = pd.to_numeric(frame[col], errors="coerce")
        p = np.clip(self.model.predict_proba(frame[self.feature_columns])[:, 1].astype(float), 0.0, 1.0)
        gate_table = evaluate_gates(frame, self.gates)
        decision = decide(gate_table, p, self.policy)
        out = pd.DataFrame(index=frame.index)
        if "lead_id" in rows:
            out["lead_id"] = rows["lead_id"].astype("object")
        out["p_convert"] = p
        out["score"] = np.rint(100 * p).astype(np.int64)
        out["tier"] = assign_tiers(p, self.policy.tiers)
        out = out.join(gate_table.astype("object")).join(decision)
        out["is_sql"] = out["is_sql"].astype(bool)
        return out

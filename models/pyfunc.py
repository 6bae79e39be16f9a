"""The served lead score: one MLflow pyfunc bundling the fitted model, the BANT gates and the SQL decision policy.

Contract (stable; `leadscore score --model models:/...` and `mlflow models serve` rely on it)
---------------------------------------------------------------------------------------------------------
Input: a table of feature rows, one per lead, as the `featurize` stage writes them —
  * every column in ``input_columns`` (the model's features, then the gate columns that are not features,
    such as ``annual_revenue``); numbers as numbers (ints are accepted where doubles are declared),
    categoricals (industry, region, department, lead_source, form_use_case) as plain strings, missing as null;
  * optionally ``lead_id`` (echoed back); other extra columns are ignored.
  A missing model feature is refused with a ValueError naming the columns; a column only a gate reads may be
  absent, and that gate's answer is then unknown.
Output: a table with one row per input row, in input order, with the columns of ``OUTPUT_COLUMNS``:
  lead_id (only when given), p_convert (calibrated probability of closed-won within the horizon, 0-1),
  score (round(100 * p_convert), 0-100), tier (A/B/C/D by params score.tiers), gate_<name> for each gate in
  params score.gates (pass / fail / unknown), status (sql / needs_call / nurture / disqualified),
  status_reason (text) and is_sql (bool).

The gates and the decision are the very functions of models/gates.py and models/ranking.py; this module only
wires them to the fitted model so that serving cannot drift from the batch stage.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from mlflow.pyfunc import PythonModel

from models.gates import GATE_ORDER, evaluate_gates, parse_gates
from models.ranking import DecisionPolicy, assign_tiers, decide

OUTPUT_COLUMNS = ("lead_id", "p_convert", "score", "tier", *(f"gate_{g}" for g in GATE_ORDER), "status",
                  "status_reason", "is_sql")


class LeadScoreModel(PythonModel):
    """Feature rows in, probability, score, tier, gates and SQL status out (see the module docstring).

    `model` is any fitted classifier with `predict_proba(frame)` and `feature_names_in_` (the calibrated
    ConversionModel or the logistic fallback); `gates` is the params `score.gates` mapping; `threshold`,
    `unknown_policy` and `tiers` are the decision policy of params `score`.
    """

    def __init__(self, model: Any, gates: Mapping[str, Any], threshold: float = 0.10,
                 unknown_policy: str = "call_queue", tiers: Mapping[str, float] | None = None,
                 categorical: tuple[str, ...] = ()):
        self.model = model
        self.gate_config = dict(gates)
        self.policy = DecisionPolicy(threshold, unknown_policy, dict(tiers or {"A": 0.30, "B": 0.15, "C": 0.05}))
        # Fails now, not at serving time, on a malformed config; no gates configured means no gate columns.
        self.gates = parse_gates(self.gate_config) if self.gate_config else []
        self.categorical = tuple(categorical)

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
        """`rows` reduced to the input columns in their wire form (strings for categoricals, floats for numbers)."""
        out = rows.loc[:, self.input_columns].copy()
        for col in out.columns:
            if col in self.categorical or isinstance(out[col].dtype, pd.CategoricalDtype) or out[col].dtype == object \
                    or pd.api.types.is_string_dtype(out[col].dtype):
                out[col] = out[col].astype("object").where(out[col].notna(), None)
            else:
                out[col] = pd.to_numeric(out[col], errors="coerce").astype("float64")
        return out

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:  # noqa: ARG002
        return self.score(pd.DataFrame(model_input))

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

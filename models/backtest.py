"""Criteria backtest: replay the SQL decision on past snapshots whose outcomes are known, and tune it.

Input is a scored frame of a past as-of date (the columns of `sql_leads`: `is_sql`, `p_convert`,
`expected_deal_size`, `gate_*`) with the outcome that followed (`label`: closed-won within the horizon) and,
when known, the amount actually won (`won_amount`). Pure code: frames in, numbers and frames out.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

DEFAULT_THRESHOLDS = tuple(float(t) for t in np.round(np.arange(0.0, 0.61, 0.01), 2))


def _require(frame: pd.DataFrame, columns: Sequence[str], where: str) -> None:
    missing = [c for c in columns if c not in frame]
    if missing:
        raise KeyError(f"{where}: missing column(s) {missing}")


def _labels(frame: pd.DataFrame, label: str) -> np.ndarray:
    return frame[label].fillna(0).to_numpy(dtype=int)


def realised_value(frame: pd.DataFrame, label: str = "label") -> np.ndarray:
    """What each lead actually brought: its won amount when known, else its expected deal size when it won."""
    if "won_amount" in frame:
        return frame["won_amount"].fillna(0).to_numpy(dtype=float)
    _require(frame, ["expected_deal_size"], "realised_value")
    return _labels(frame, label) * frame["expected_deal_size"].to_numpy(dtype=float)


def decision_performance(frame: pd.DataFrame, label: str = "label") -> dict[str, float]:
    """Precision and recall of `is_sql` against closed-won; conversion of SQLs vs everyone else."""
    _require(frame, ["is_sql", label], "decision_performance")
    y = _labels(frame, label)
    sql = frame["is_sql"].to_numpy(dtype=bool)
    n_sql, n_won = int(sql.sum()), int(y.sum())
    sql_won = int(y[sql].sum())
    non_sql_rate = float(y[~sql].mean()) if (~sql).any() else float("nan")
    precision = sql_won / n_sql if n_sql else float("nan")
    return {
        "n_leads": int(len(frame)),
        "n_won": n_won,
        "n_sql": n_sql,
        "n_sql_won": sql_won,
        "precision": float(precision),
        "recall": sql_won / n_won if n_won else float("nan"),
        "sql_conversion": float(precision),
        "non_sql_conversion": non_sql_rate,
        "base_rate": float(y.mean()) if len(y) else float("nan"),
        "sql_lift": float(precision / non_sql_rate) if n_sql and non_sql_rate > 0 else float("nan"),
    }


def performance_by_snapshot(frame: pd.DataFrame, label: str = "label", by: str = "as_of") -> pd.DataFrame:
    """`decision_performance` per as-of date: is the decision stable over time?"""
    _require(frame, [by], "performance_by_snapshot")
    rows = [{by: key, **decision_performance(part, label)} for key, part in frame.groupby(by, sort=True)]
    return pd.DataFrame(rows)


def gate_losses(frame: pd.DataFrame, gate_columns: Sequence[str], label: str = "label") -> pd.DataFrame:
    """Per gate: leads it failed, future winners among them, and winners that *only* this gate threw away.

    Sorted by winners failed, most first: the top row is the criterion that costs the most business.
    """
    _require(frame, [*gate_columns, label], "gate_losses")
    y = _labels(frame, label)
    failed = frame[list(gate_columns)].to_numpy(dtype=object) == "fail"
    n_failed_gates = failed.sum(axis=1)
    total = y.sum()
    rows = []
    for j, col in enumerate(gate_columns):
        f = failed[:, j]
        won_failed = int(y[f].sum())
        rows.append({
            "gate": col.removeprefix("gate_"),
            "n_failed": int(f.sum()),
            "winners_failed": won_failed,
            "share_of_winners_failed": won_failed / total if total else float("nan"),
            "winners_failed_only_here": int(y[f & (n_failed_gates == 1)].sum()),
            "conversion_when_failed": float(y[f].mean()) if f.any() else float("nan"),
            "conversion_when_not_failed": float(y[~f].mean()) if (~f).any() else float("nan"),
        })
    return pd.DataFrame(rows).sort_values(["winners_failed", "gate"], ascending=[False, True]).reset_index(drop=True)


def _eligible(frame: pd.DataFrame, gate_columns: Sequence[str]) -> np.ndarray:
    """Every gate passed: the leads the probability threshold (or capacity) chooses among."""
    return (frame[list(gate_columns)].to_numpy(dtype=object) == "pass").all(axis=1)


def threshold_sweep(frame: pd.DataFrame, gate_columns: Sequence[str], cost_per_sql: float,
                    thresholds: Sequence[float] = DEFAULT_THRESHOLDS, label: str = "label") -> pd.DataFrame:
    """Replay "every gate passes and p_convert >= t" for each t: SQLs, wins, precision, recall and value.

    `realised_value` = what the SQLs actually won minus `cost_per_sql` per SQL handed to sales;
    `expected_value` = what the model promised for them (p × deal size) minus the same cost.
    """
    _require(frame, [*gate_columns, "p_convert", "expected_deal_size", label], "threshold_sweep")
    y = _labels(frame, label)
    p = frame["p_convert"].to_numpy(dtype=float)
    value = realised_value(frame, label)
    promised = p * frame["expected_deal_size"].to_numpy(dtype=float)
    eligible = _eligible(frame, gate_columns)
    total = y.sum()
    rows = []
    for t in thresholds:
        sql = eligible & (p >= t)
        n = int(sql.sum())
        rows.append({
            "threshold": float(t),
            "n_sql": n,
            "n_won": int(y[sql].sum()),
            "precision": float(y[sql].mean()) if n else float("nan"),
            "recall": float(y[sql].sum() / total) if total else float("nan"),
            "realised_value": float(value[sql].sum() - cost_per_sql * n),
            "expected_value": float(promised[sql].sum() - cost_per_sql * n),
        })
    return pd.DataFrame(rows)


def capacity_sweep(frame: pd.DataFrame, gate_columns: Sequence[str], cost_per_sql: float,
                   label: str = "label") -> pd.DataFrame:
    """Hand the top k gate-passing leads by expected value to sales, for every k: cumulative wins and value."""
    _require(frame, [*gate_columns, "p_convert", "expected_deal_size", label], "capacity_sweep")
    eligible = _eligible(frame, gate_columns)
    part = frame.loc[eligible]
    y = _labels(part, label)
    ev = part["p_convert"].to_numpy(dtype=float) * part["expected_deal_size"].to_numpy(dtype=float)
    order = np.argsort(-ev, kind="stable")
    k = np.arange(1, len(order) + 1)
    won = np.cumsum(y[order])
    value = np.cumsum(realised_value(part, label)[order])
    return pd.DataFrame({
        "capacity": k,
        "n_won": won,
        "precision": won / k,
        "min_p_convert": np.minimum.accumulate(part["p_convert"].to_numpy(dtype=float)[order]),
        "realised_value": value - cost_per_sql * k,
        "expected_value": np.cumsum(ev[order]) - cost_per_sql * k,
    })


def best_row(sweep: pd.DataFrame, column: str = "realised_value", prefer_smaller: str | None = None) -> dict:
    """The sweep row maximising `column`; ties go to the cheapest option (fewest SQLs / smallest capacity)."""
    if sweep.empty:
        return {}
    top = sweep[sweep[column] == sweep[column].max()]
    if prefer_smaller and prefer_smaller in top:
        top = top.sort_values(prefer_smaller)
    return {k: (v.item() if hasattr(v, "item") else v) for k, v in top.iloc[0].to_dict().items()}

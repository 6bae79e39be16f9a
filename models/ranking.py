"""Decide and prioritise: SQL status from gates and probability, expected value, tiers and rank."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from models.gates import FAIL, UNKNOWN

SQL, NEEDS_CALL, NURTURE, DISQUALIFIED = "sql", "needs_call", "nurture", "disqualified"
# Order in the ranked table: hand-over first, then the call queue, then the rest.
STATUS_ORDER = {SQL: 0, NEEDS_CALL: 1, NURTURE: 2, DISQUALIFIED: 3}
SIZE_BANDS = np.array([0, 10, 50, 200, 1_000, 5_000, 20_000, np.inf])


@dataclass(frozen=True)
class DecisionPolicy:
    threshold: float = 0.10
    unknown_policy: str = "call_queue"  # or "fail"
    tiers: Mapping[str, float] = field(default_factory=lambda: {"A": 0.30, "B": 0.15, "C": 0.05})

    def __post_init__(self) -> None:
        if self.unknown_policy not in ("fail", "call_queue"):
            raise ValueError(f"unknown_policy must be 'fail' or 'call_queue', not {self.unknown_policy!r}")
        if not 0.0 <= self.threshold <= 1.0:
            raise ValueError(f"threshold must be a probability in [0, 1], not {self.threshold}")


@dataclass(frozen=True)
class DealSizeModel:
    """Expected deal size per company-size band, from won opportunities known at scoring time."""

    by_band: Mapping[int, float]
    default: float

    def predict(self, employees: pd.Series) -> np.ndarray:
        band = size_band(employees)
        return np.array([self.by_band.get(int(b), self.default) for b in range(len(SIZE_BANDS))])[band]


def size_band(employees: pd.Series) -> np.ndarray:
    values = pd.to_numeric(employees, errors="coerce").astype(float).fillna(0).to_numpy()
    return np.clip(np.searchsorted(SIZE_BANDS, values, side="right") - 1, 0, len(SIZE_BANDS) - 1)


def fit_deal_size(won_amounts: pd.Series, employees: pd.Series, default: float, min_deals: int = 5) -> DealSizeModel:
    """Median won amount per size band; bands with fewer than `min_deals` wins fall back to `default`."""
    frame = pd.DataFrame({"amount": pd.to_numeric(won_amounts, errors="coerce"), "band": size_band(employees)})
    frame = frame.dropna()
    stats = frame.groupby("band")["amount"].agg(["median", "size"])
    by_band = {int(b): float(row["median"]) for b, row in stats.iterrows() if row["size"] >= min_deals}
    return DealSizeModel(by_band=by_band, default=float(default))


def assign_tiers(p: np.ndarray, tiers: Mapping[str, float]) -> np.ndarray:
    """Letter tier by probability lower bounds (highest bound first); below every bound is 'D'."""
    out = np.full(len(p), "D", dtype=object)
    for name, bound in sorted(tiers.items(), key=lambda kv: kv[1]):
        out[np.asarray(p) >= bound] = name
    return out


def decide(gates: pd.DataFrame, p_convert: np.ndarray, policy: DecisionPolicy) -> pd.DataFrame:
    """Status and reason per lead. A lead failing any gate is never an SQL."""
    gate_names = [c.removeprefix("gate_") for c in gates.columns]
    values = gates.to_numpy(dtype=object)
    failed = values == FAIL
    unknown = values == UNKNOWN
    if policy.unknown_policy == "fail":
        failed = failed | unknown
        unknown = np.zeros_like(unknown)
    any_failed = failed.any(axis=1)
    any_unknown = unknown.any(axis=1)
    above = np.asarray(p_convert) >= policy.threshold

    status = np.where(
        any_failed, DISQUALIFIED, np.where(any_unknown, np.where(above, NEEDS_CALL, NURTURE), np.where(above, SQL, NURTURE))
    )
    reasons = []
    for i in range(len(status)):
        if any_failed[i]:
            reasons.append("failed gate: " + ", ".join(n for n, f in zip(gate_names, failed[i], strict=True) if f))
        elif status[i] == NEEDS_CALL:
            reasons.append("confirm on a call: " + ", ".join(n for n, u in zip(gate_names, unknown[i], strict=True) if u))
        elif status[i] == NURTURE:
            reasons.append(f"p_convert {p_convert[i]:.3f} below threshold {policy.threshold:.3f}")
        else:
            reasons.append("all gates pass and p_convert clears the threshold")
    return pd.DataFrame({"status": status, "status_reason": reasons, "is_sql": status == SQL}, index=gates.index)


def rank_leads(status: pd.Series, expected_value: np.ndarray) -> np.ndarray:
    """1-based rank: status order first (SQL, needs call, nurture, disqualified), then expected value, descending."""
    order_key = status.map(STATUS_ORDER).to_numpy()
    order = np.lexsort((-np.asarray(expected_value, dtype=float), order_key))
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(1, len(order) + 1)
    return rank

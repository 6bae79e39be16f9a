"""Decide and prioritise: SQL status from gates and probability, expected value, tiers and rank."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from models.gates import FAIL, UNKNOWN, texts_of

SQL, NEEDS_CALL, NURTURE, DISQUALIFIED = "sql", "needs_call", "nurture", "disqualified"
WITH_SALES = "with_sales"  # sales already works the lead (open opportunity, converted, working status): no decision
# Order in the ranked table: hand-over first, then the call queue, then the rest; leads with sales listed apart.
STATUS_ORDER = {SQL: 0, NEEDS_CALL: 1, NURTURE: 2, DISQUALIFIED: 3, WITH_SALES: 4}
STATUSES = tuple(STATUS_ORDER)  # the statuses by their order code
WITH_SALES_REASON = "already with sales (an open opportunity, converted, or a working CRM status)"
SIZE_BANDS = np.array([0, 10, 50, 200, 1_000, 5_000, 20_000, np.inf])


@dataclass(frozen=True)
class DecisionPolicy:
    """How gates and probability become a status.

    `sql_rule` "threshold": an SQL clears `threshold`; "capacity": the `capacity` gate-passing leads of highest
    priority (expected value) are SQLs, whatever their probability. Either way a failed gate is never an SQL.
    """

    threshold: float = 0.10
    unknown_policy: str = "call_queue"  # or "fail"
    tiers: Mapping[str, float] = field(default_factory=lambda: {"A": 0.30, "B": 0.15, "C": 0.05})
    sql_rule: str = "threshold"  # or "capacity"
    capacity: int | None = None

    def __post_init__(self) -> None:
        if self.unknown_policy not in ("fail", "call_queue"):
            raise ValueError(f"unknown_policy must be 'fail' or 'call_queue', not {self.unknown_policy!r}")
        if not 0.0 <= self.threshold <= 1.0:
            raise ValueError(f"threshold must be a probability in [0, 1], not {self.threshold}")
        if self.sql_rule not in ("threshold", "capacity"):
            raise ValueError(f"sql_rule must be 'threshold' or 'capacity', not {self.sql_rule!r}")
        if self.sql_rule == "capacity" and (self.capacity is None or self.capacity < 0):
            raise ValueError("sql_rule 'capacity' needs a capacity >= 0 (the week's hand-over slots)")


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


def _joined_names(mask: np.ndarray, names: list[str], prefix: str) -> tuple[np.ndarray, list[str]]:
    """(per row a code, the texts): `prefix` + the names whose column is True, joined by ", " (each distinct
    pattern joined once)."""
    if mask.shape[1] == 0:
        return np.zeros(len(mask), dtype=np.int64), [prefix]
    code = mask.astype(np.int64) @ (1 << np.arange(mask.shape[1], dtype=np.int64))
    patterns, inverse = np.unique(code, return_inverse=True)
    return inverse, [prefix + ", ".join(n for j, n in enumerate(names) if int(c) >> j & 1) for c in patterns]


def decide(gates: pd.DataFrame, p_convert: np.ndarray, policy: DecisionPolicy,
           priority: np.ndarray | None = None, with_sales: np.ndarray | None = None) -> pd.DataFrame:
    """Status and reason per lead. A lead failing any gate is never an SQL; a lead already `with_sales` is
    never an SQL nor queued for a call (status ``with_sales``), whatever its gates and probability.

    `priority` (expected value) orders the gate-passing leads when `policy.sql_rule` is "capacity".
    """
    taken = np.zeros(len(p_convert), dtype=bool) if with_sales is None else np.asarray(with_sales, dtype=bool)
    gate_names = [c.removeprefix("gate_") for c in gates.columns]
    failed = _outcome_is(gates, FAIL)
    unknown = _outcome_is(gates, UNKNOWN)
    if policy.unknown_policy == "fail":
        failed = failed | unknown
        unknown = np.zeros_like(unknown)
    any_failed = failed.any(axis=1)
    any_unknown = unknown.any(axis=1)
    p_convert = np.asarray(p_convert, dtype=float)
    above = p_convert >= policy.threshold
    qualified = ~any_failed & ~any_unknown & ~taken
    if policy.sql_rule == "capacity":
        key = np.asarray(priority if priority is not None else p_convert, dtype=float)
        candidates = np.flatnonzero(qualified)
        best = candidates[np.argsort(-key[candidates], kind="stable")][: policy.capacity]
        is_sql = np.zeros(len(p_convert), dtype=bool)
        is_sql[best] = True
    else:
        is_sql = qualified & above

    # status codes: STATUS_ORDER's values, turned into text once at the end (not one Python string per row)
    code = np.where(any_failed, STATUS_ORDER[DISQUALIFIED],
                    np.where(is_sql, STATUS_ORDER[SQL],
                             np.where(any_unknown & above, STATUS_ORDER[NEEDS_CALL], STATUS_ORDER[NURTURE])))
    code = code.astype(np.int8)
    code[taken] = STATUS_ORDER[WITH_SALES]
    # reasons as codes into `texts` too: a handful of gate patterns, at most ~1,000 probabilities below the bar
    texts = ["all gates pass and p_convert clears the threshold" if policy.sql_rule != "capacity"
             else f"all gates pass and within the hand-over capacity of {policy.capacity}"]
    reason = np.zeros(len(code), dtype=np.int64)

    def put(rows: np.ndarray, codes: np.ndarray | int, labels) -> None:
        reason[rows] = len(texts) + codes
        texts.extend(labels)

    if any_failed.any():
        put(any_failed, *_joined_names(failed[any_failed], gate_names, "failed gate: "))
    needs_call = code == STATUS_ORDER[NEEDS_CALL]
    if needs_call.any():
        put(needs_call, *_joined_names(unknown[needs_call], gate_names, "confirm on a call: "))
    nurture = code == STATUS_ORDER[NURTURE]
    if nurture.any():
        codes, labels = _prefixed(_three_decimals(p_convert[nurture]), "p_convert ",
                                  f" below threshold {policy.threshold:.3f}")
        if policy.sql_rule == "capacity":  # a gate-passing lead beyond the capacity: that, not its probability
            codes = np.where(qualified[nurture], len(labels), codes)
            labels = [*labels, f"all gates pass but beyond the hand-over capacity of {policy.capacity}"]
        put(nurture, codes, labels)
    if taken.any():
        put(taken, 0, [WITH_SALES_REASON])
    reasons = texts_of(reason, texts, "str")
    return pd.DataFrame({"status": texts_of(code, STATUSES, "str"), "status_reason": reasons,
                         "is_sql": code == STATUS_ORDER[SQL]}, index=gates.index)


def _outcome_is(gates: pd.DataFrame, value: str) -> np.ndarray:
    """(rows, gates) booleans: the gate's outcome is `value` (column by column, no object copy of the table)."""
    if not len(gates.columns):
        return np.zeros((len(gates), 0), dtype=bool)
    return np.column_stack([gates[c].eq(value).fillna(False).to_numpy(dtype=bool) for c in gates.columns])


def _three_decimals(values: np.ndarray) -> np.ndarray:
    """`"{:.3f}".format(v)` of each value (object array). Values in [0, 1] not within 1e-6 of a rounding tie are
    rounded in numpy (at most 1,001 distinct texts, formatted once); the others are formatted one by one."""
    values = np.asarray(values, dtype=float)
    scaled = values * 1000
    frac = scaled - np.floor(scaled)
    with np.errstate(invalid="ignore"):
        plain = (values >= 0) & (values <= 1) & (np.abs(frac - 0.5) > 1e-6)
    out = np.empty(len(values), dtype=object)
    if plain.any():
        thousandths = np.floor(scaled[plain] + 0.5).astype(np.int64)
        distinct, inverse = np.unique(thousandths, return_inverse=True)
        texts = np.array([f"{k // 1000}.{k % 1000:03d}" for k in distinct.tolist()], dtype=object)
        out[plain] = texts[inverse]
    other = np.flatnonzero(~plain)
    if len(other):
        out[other] = [f"{v:.3f}" for v in values[other].tolist()]
    return out


def _prefixed(texts: np.ndarray, prefix: str, suffix: str) -> tuple[np.ndarray, list[str]]:
    """(per element a code, the texts): prefix + text + suffix, each distinct text joined once."""
    codes, distinct = pd.factorize(texts)
    return codes, [prefix + t + suffix for t in distinct]


def rank_leads(status: pd.Series, expected_value: np.ndarray) -> np.ndarray:
    """1-based rank: status order first (SQL, needs call, nurture, disqualified, with sales), then expected value,
    descending."""
    codes, distinct = pd.factorize(pd.Series(status))  # a few statuses: look each up once; missing -> -1
    order_key = np.array([*(STATUS_ORDER.get(v, np.nan) for v in distinct), np.nan], dtype=float)[codes]
    order = np.lexsort((-np.asarray(expected_value, dtype=float), order_key))
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(1, len(order) + 1)
    return rank

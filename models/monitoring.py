"""Monitoring: population drift (PSI, KS) between training and scored leads; the SQL funnel; conversion by group.

Pure code: DataFrames and arrays in, DataFrames out. Thresholds are passed in by the caller (params `report:`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import ks_2samp

OK, WARN, DRIFT = "ok", "warn", "drift"
MISSING_BIN = "<missing>"
# A bin that is empty on one side would make PSI infinite; this floor keeps it finite and comparable.
PSI_FLOOR = 1e-4


@dataclass(frozen=True)
class DriftThresholds:
    """When a column counts as drifted. PSI rule of thumb: < 0.1 stable, 0.1-0.25 watch, > 0.25 shifted.

    The KS test alone flags everything on large samples (tiny p-values for tiny shifts), so it flags only
    when the shift is both significant (`ks_alpha`) and large (`ks_min_statistic`).
    """

    psi_warn: float = 0.10
    psi_drift: float = 0.25
    ks_alpha: float = 0.01
    ks_min_statistic: float = 0.10
    n_bins: int = 10

    def __post_init__(self) -> None:
        if not 0 <= self.psi_warn <= self.psi_drift:
            raise ValueError(f"need 0 <= psi_warn <= psi_drift, got {self.psi_warn} and {self.psi_drift}")
        if not 0 < self.ks_alpha < 1:
            raise ValueError(f"ks_alpha must be in (0, 1), not {self.ks_alpha}")
        if self.n_bins < 2:
            raise ValueError(f"n_bins must be at least 2, not {self.n_bins}")


def _is_numeric(values: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)


def _shares(codes: pd.Series, bins: Sequence) -> np.ndarray:
    counts = codes.value_counts().reindex(bins, fill_value=0).to_numpy(dtype=float)
    total = counts.sum()
    return counts / total if total else counts


def binned_shares(reference: pd.Series, current: pd.Series, n_bins: int = 10) -> pd.DataFrame:
    """Share of each population per bin: quantile bins of the reference for numbers, levels for categories.

    Missing values get a bin of their own: a column that starts arriving empty is drift too.
    """
    reference = pd.Series(reference).reset_index(drop=True)
    current = pd.Series(current).reset_index(drop=True)
    if _is_numeric(reference) and _is_numeric(current):
        ref = reference.astype(float)
        cur = current.astype(float)
        edges = np.unique(np.nanquantile(ref.dropna(), np.linspace(0, 1, n_bins + 1))) if ref.notna().any() else []
        if len(edges) <= 2:  # (near-)constant reference: one bin per distinct reference value
            levels = np.unique(ref.dropna().to_numpy())
            r, c = ref.to_numpy(), cur.to_numpy()
            ref_codes = pd.Series(np.where(np.isnan(r), MISSING_BIN, r.astype(str)))
            cur_codes = pd.Series(np.where(np.isnan(c), MISSING_BIN,
                                           np.where(np.isin(c, levels), c.astype(str), "<other>")))
            order = [*levels.astype(str), "<other>"]
        else:
            # Open-ended outer bins (current values beyond the reference range still count), and each inner
            # edge moved to the midpoint between the reference values around it: the reference partition is
            # unchanged, but a current value equal to a reference value up to rounding lands in the same bin.
            uniq = np.unique(ref.dropna().to_numpy())
            idx = np.clip(np.searchsorted(uniq, edges[1:-1], side="left"), 1, len(uniq) - 1)
            inner = np.unique((uniq[idx - 1] + uniq[idx]) / 2)
            labels = [f"<{inner[0]:.4g}"] + [f"[{a:.4g}, {b:.4g})" for a, b in zip(inner[:-1], inner[1:], strict=True)]
            labels += [f">={inner[-1]:.4g}"]

            def code(x: pd.Series) -> pd.Series:
                idx = np.searchsorted(inner, x.to_numpy(), side="right")
                return pd.Series(np.where(x.isna(), MISSING_BIN, np.array(labels, dtype=object)[np.minimum(idx, len(labels) - 1)]))

            ref_codes, cur_codes = code(ref), code(cur)
            order = labels
    else:
        ref_codes = reference.astype("object").where(reference.notna(), MISSING_BIN).astype(str)
        cur_codes = current.astype("object").where(current.notna(), MISSING_BIN).astype(str)
        order = []
    present = set(pd.unique(ref_codes)) | set(pd.unique(cur_codes))
    bins = [b for b in order if b in present]
    bins += sorted(present - set(bins) - {MISSING_BIN}) + ([MISSING_BIN] if MISSING_BIN in present else [])
    return pd.DataFrame({"bin": bins, "reference": _shares(ref_codes, bins), "current": _shares(cur_codes, bins)})


def psi(reference: pd.Series, current: pd.Series, n_bins: int = 10) -> float:
    """Population stability index: sum over bins of (cur - ref) * ln(cur / ref). 0 = identical."""
    shares = binned_shares(reference, current, n_bins)
    ref = np.maximum(shares["reference"].to_numpy(), PSI_FLOOR)
    cur = np.maximum(shares["current"].to_numpy(), PSI_FLOOR)
    return float(np.sum((cur - ref) * np.log(cur / ref)))


def ks(reference: pd.Series, current: pd.Series) -> tuple[float, float]:
    """Two-sample Kolmogorov-Smirnov (statistic, p-value) on the non-missing values; NaN for categories."""
    reference, current = pd.Series(reference), pd.Series(current)
    if not (_is_numeric(reference) and _is_numeric(current)):
        return float("nan"), float("nan")
    ref = reference.dropna().to_numpy(dtype=float)
    cur = current.dropna().to_numpy(dtype=float)
    if len(ref) == 0 or len(cur) == 0:
        return float("nan"), float("nan")
    result = ks_2samp(ref, cur, method="asymp")  # exact p-values are slow and pointless at these sizes
    return float(result.statistic), float(result.pvalue)


def drift_flag(psi_value: float, ks_statistic: float, ks_pvalue: float, t: DriftThresholds) -> str:
    ks_shift = (not np.isnan(ks_statistic)) and ks_pvalue < t.ks_alpha and ks_statistic >= t.ks_min_statistic
    if psi_value >= t.psi_drift or ks_shift:
        return DRIFT
    if psi_value >= t.psi_warn:
        return WARN
    return OK


def drift_table(reference: pd.DataFrame, current: pd.DataFrame, columns: Sequence[str],
                thresholds: DriftThresholds | None = None) -> pd.DataFrame:
    """One row per column: PSI, KS, means and missing shares on both sides, and the flag; worst first."""
    t = thresholds or DriftThresholds()
    missing = [c for c in columns if c not in reference or c not in current]
    if missing:
        raise KeyError(f"drift_table: column(s) {missing} missing from the reference or the current population")
    rows = []
    for col in columns:
        ref, cur = reference[col], current[col]
        numeric = _is_numeric(ref) and _is_numeric(cur)
        value_psi = psi(ref, cur, t.n_bins)
        stat, pvalue = ks(ref, cur)
        rows.append({
            "feature": col,
            "kind": "numeric" if numeric else "categorical",
            "psi": value_psi,
            "ks_statistic": stat,
            "ks_pvalue": pvalue,
            "reference_mean": float(ref.astype(float).mean()) if numeric else float("nan"),
            "current_mean": float(cur.astype(float).mean()) if numeric else float("nan"),
            "reference_missing": float(ref.isna().mean()),
            "current_missing": float(cur.isna().mean()),
            "flag": drift_flag(value_psi, stat, pvalue, t),
        })
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    severity = table["flag"].map({DRIFT: 0, WARN: 1, OK: 2})
    return table.assign(_s=severity).sort_values(["_s", "psi"], ascending=[True, False]).drop(columns="_s").reset_index(drop=True)


def sql_funnel(scored: pd.DataFrame, gate_columns: Sequence[str], label: str | None = None) -> pd.DataFrame:
    """Leads → survived each gate in turn (not failed) → every gate passed → SQL → won (when labels are known).

    `scored` needs the gate columns (pass / fail / unknown) and `is_sql`. Each step is a subset of the one before.
    """
    needed = [*gate_columns, "is_sql"] + ([label] if label else [])
    missing = [c for c in needed if c not in scored]
    if missing:
        raise KeyError(f"sql_funnel: missing column(s) {missing}")
    n = len(scored)
    keep = np.ones(n, dtype=bool)
    steps = [("leads", keep.copy())]
    for col in gate_columns:
        keep &= scored[col].to_numpy(dtype=object) != "fail"
        steps.append((f"{col.removeprefix('gate_')} not failed", keep.copy()))
    all_pass = (scored[list(gate_columns)].to_numpy(dtype=object) == "pass").all(axis=1)
    steps.append(("every gate passed", keep & all_pass))
    is_sql = scored["is_sql"].to_numpy(dtype=bool)
    steps.append(("SQL", is_sql))
    y = scored[label].fillna(0).to_numpy(dtype=int) if label else None
    if y is not None:
        steps.append(("SQL and won", is_sql & (y == 1)))
    rows = []
    for name, mask in steps:
        row = {"step": name, "n": int(mask.sum()), "share_of_leads": float(mask.mean()) if n else float("nan")}
        if y is not None:
            row["n_won"] = int(y[mask].sum())
            row["share_of_winners"] = float(y[mask].sum() / y.sum()) if y.sum() else float("nan")
            row["conversion"] = float(y[mask].mean()) if mask.any() else float("nan")
        rows.append(row)
    return pd.DataFrame(rows)


def conversion_by(frame: pd.DataFrame, column: str, label: str = "label", order: Sequence | None = None) -> pd.DataFrame:
    """Leads, wins, conversion rate and share of all wins per value of `column`."""
    for col in (column, label):
        if col not in frame:
            raise KeyError(f"conversion_by: missing column {col!r}")
    y = frame[label].fillna(0).astype(int)
    table = (pd.DataFrame({"group": frame[column].astype("object"), "y": y})
             .groupby("group", dropna=False)["y"].agg(n="size", n_won="sum").reset_index())
    table["conversion"] = table["n_won"] / table["n"]
    total = y.sum()
    table["share_of_winners"] = table["n_won"] / total if total else float("nan")
    if order is not None:
        rank = {v: i for i, v in enumerate(order)}
        table = table.assign(_o=table["group"].map(rank).fillna(len(rank))).sort_values("_o").drop(columns="_o")
    return table.reset_index(drop=True)


def conversion_by_gate(frame: pd.DataFrame, gate_columns: Sequence[str], label: str = "label") -> pd.DataFrame:
    """For every gate and outcome (pass / unknown / fail): leads, wins, conversion and share of wins."""
    parts = []
    for col in gate_columns:
        part = conversion_by(frame, col, label, order=("pass", "unknown", "fail"))
        part.insert(0, "gate", col.removeprefix("gate_"))
        parts.append(part.rename(columns={"group": "outcome"}))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def gains_table(y, p, n_points: int = 50) -> pd.DataFrame:
    """Cumulative gains and lift: leads taken in score order (best first) vs the share of all wins they hold."""
    y = np.asarray(y, dtype=float)
    p = np.asarray(p, dtype=float)
    if len(y) == 0 or y.sum() == 0:
        raise ValueError("gains_table: needs at least one positive outcome")
    order = np.argsort(-p, kind="stable")
    captured = np.cumsum(y[order]) / y.sum()
    fractions = np.linspace(0, 1, n_points + 1)[1:]
    k = np.maximum(1, np.round(fractions * len(y)).astype(int))
    share = captured[k - 1]
    return pd.DataFrame({"share_of_leads": k / len(y), "share_of_winners": share, "lift": share / (k / len(y))})

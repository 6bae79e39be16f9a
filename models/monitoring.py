"""Monitoring: population drift (PSI, KS) between training and scored leads; the SQL funnel; conversion by group.

Pure code: DataFrames and arrays in, DataFrames out. Thresholds are passed in by the caller (params `report:`).

The drift rule (`drift_table`, thresholds in `DriftThresholds`): a column raises an alarm only when the shift is
large enough to matter *and* measured on enough independent rows to be told apart from sampling noise.

- Sample size: each side needs at least `min_rows` *effective* rows; below that the column gets the flag
  ``few_rows`` and never alarms. Rows that are not independent samples count less: with `cluster_column` (the
  account id) the leads of one account, and one lead's monthly snapshots, form one cluster, and the effective
  size is that of an independent sample as precise as the cluster-robust (sandwich) variance of the bin shares.
  (A firmographic column of 51,000 demo leads from 15,000 accounts, a few with hundreds of leads, is worth about
  3,500 independent rows.)
- Effect size, PSI: the PSI of two samples of one distribution is not 0 but about (bins - 1) * (1/n_ref + 1/n_cur)
  (`psi_noise`; a chi-square with bins - 1 degrees of freedom, scaled) - more with clustered rows. That expected
  noise (sum over bins of the variance of the share difference over the share, `psi_noise` in the table) is
  subtracted; `psi_excess` is compared with `psi_warn` / `psi_drift`.
- Effect size, KS: drift needs p < `ks_alpha` (computed for the effective sizes) *and* a statistic >=
  `ks_min_statistic`. The default 0.2 is the KS statistic of the shift PSI calls drift: a normal location shift of
  d standard deviations has PSI about d**2 and KS statistic 2 * Phi(d / 2) - 1, so PSI 0.25 (d = 0.5) is KS 0.20.
- Calendar columns (`trend_columns`: the lead's age, days since an event, counts to date; and the score, which
  depends on them) move with the as-of date by construction, so any gap between the training snapshots and the
  scored date shifts them whatever happens to the leads. When the reference holds several as-of dates, such a
  column is compared with the reference *projected to the current date* (basis ``trend``): each bin's share is
  fitted as a straight line in the date over the reference snapshots and read off at the current date; for ages
  (`age_columns`) the quantiles are projected instead, as they grow linearly with the pool's age span. The noise
  uses the projection's weights (an extrapolation is less precise than a sample). KS is not computed against a
  projection; PSI alone decides for these columns.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import ks_2samp, kstwo

OK, WARN, DRIFT = "ok", "warn", "drift"
FEW_ROWS = "few_rows"  # too few rows on one side to judge: never an alarm
MISSING_BIN = "<missing>"
# A bin that is empty on one side would make PSI infinite; this floor keeps it finite and comparable.
PSI_FLOOR = 1e-4


@dataclass(frozen=True)
class DriftThresholds:
    """When a column counts as drifted. PSI rule of thumb: < 0.1 stable, 0.1-0.25 watch, > 0.25 shifted.

    PSI is compared after subtracting its expected sampling noise (see the module docstring). The KS test alone
    flags everything on large samples (tiny p-values for tiny shifts), so it flags only when the shift is both
    significant (`ks_alpha`) and large (`ks_min_statistic`, 0.2: the KS size of a PSI-0.25 shift). A side with
    fewer than `min_rows` rows is not judged (flag ``few_rows``).
    """

    psi_warn: float = 0.10
    psi_drift: float = 0.25
    ks_alpha: float = 0.01
    ks_min_statistic: float = 0.20
    n_bins: int = 10
    min_rows: int = 200

    def __post_init__(self) -> None:
        if not 0 <= self.psi_warn <= self.psi_drift:
            raise ValueError(f"need 0 <= psi_warn <= psi_drift, got {self.psi_warn} and {self.psi_drift}")
        if not 0 < self.ks_alpha < 1:
            raise ValueError(f"ks_alpha must be in (0, 1), not {self.ks_alpha}")
        if self.n_bins < 2:
            raise ValueError(f"n_bins must be at least 2, not {self.n_bins}")
        if self.min_rows < 1:
            raise ValueError(f"min_rows must be at least 1, not {self.min_rows}")


def _is_numeric(values: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)


def _shares(codes: np.ndarray, bins: Sequence) -> np.ndarray:
    """Share of each bin among integer bin codes (an index into `bins`)."""
    counts = np.bincount(np.asarray(codes, dtype=np.int64), minlength=len(bins)).astype(float)
    total = counts.sum()
    return counts / total if total else counts


def binned_shares(reference: pd.Series, current: pd.Series, n_bins: int = 10) -> pd.DataFrame:
    """Share of each population per bin: quantile bins of the reference for numbers, levels for categories.

    Missing values get a bin of their own: a column that starts arriving empty is drift too.
    """
    ref_codes, cur_codes, bins = _bin_codes(reference, current, n_bins)
    return pd.DataFrame({"bin": bins, "reference": _shares(ref_codes, bins), "current": _shares(cur_codes, bins)})


def _bin_codes(reference: pd.Series, current: pd.Series, n_bins: int) -> tuple[np.ndarray, np.ndarray, list]:
    """Each value's bin on both sides as an index into the bins (the reference's quantile bins or levels, then
    other levels sorted, then the missing bin; only bins holding a value on either side), and the bins' labels."""
    reference = pd.Series(reference).reset_index(drop=True)
    current = pd.Series(current).reset_index(drop=True)
    if _is_numeric(reference) and _is_numeric(current):
        ref = reference.astype(float).to_numpy()
        cur = current.astype(float).to_numpy()
        ref_ok = ref[~np.isnan(ref)]
        edges = np.unique(np.quantile(ref_ok, np.linspace(0, 1, n_bins + 1))) if len(ref_ok) else []
        if len(edges) <= 2:  # (near-)constant reference: one bin per distinct reference value
            levels = np.unique(ref_ok)
            labels = [*levels.astype(str), "<other>"]

            def code(x: np.ndarray) -> np.ndarray:
                pos = np.clip(np.searchsorted(levels, x), 0, max(0, len(levels) - 1))
                known = (levels[pos] == x) if len(levels) else np.zeros(len(x), dtype=bool)
                return np.where(known, pos, len(levels))
        else:
            # Open-ended outer bins (current values beyond the reference range still count), and each inner
            # edge moved to the midpoint between the reference values around it: the reference partition is
            # unchanged, but a current value equal to a reference value up to rounding lands in the same bin.
            uniq = np.unique(ref_ok)
            idx = np.clip(np.searchsorted(uniq, edges[1:-1], side="left"), 1, len(uniq) - 1)
            inner = np.unique((uniq[idx - 1] + uniq[idx]) / 2)
            labels = [f"<{inner[0]:.4g}"] + [f"[{a:.4g}, {b:.4g})" for a, b in zip(inner[:-1], inner[1:], strict=True)]
            labels += [f">={inner[-1]:.4g}"]

            def code(x: np.ndarray) -> np.ndarray:
                return np.minimum(np.searchsorted(inner, x, side="right"), len(labels) - 1)

        missing = len(labels)
        ref_raw = np.where(np.isnan(ref), missing, code(np.nan_to_num(ref)))
        cur_raw = np.where(np.isnan(cur), missing, code(np.nan_to_num(cur)))
        labels = [*labels, MISSING_BIN]
    else:
        values = pd.concat([reference.astype("object"), current.astype("object")], ignore_index=True)
        text = values.where(values.notna(), MISSING_BIN).astype(str)
        codes, uniques = pd.factorize(text, sort=True)
        labels = [u for u in uniques if u != MISSING_BIN] + ([MISSING_BIN] if MISSING_BIN in set(uniques) else [])
        remap = pd.Index(labels).get_indexer(uniques)
        ref_raw, cur_raw = remap[codes[: len(reference)]], remap[codes[len(reference):]]
    present = np.flatnonzero(np.bincount(ref_raw, minlength=len(labels)) + np.bincount(cur_raw, minlength=len(labels)))
    compact = np.full(len(labels), -1)
    compact[present] = np.arange(len(present))
    return compact[ref_raw], compact[cur_raw], [labels[i] for i in present]


def _psi_of_shares(reference: np.ndarray, current: np.ndarray) -> float:
    ref = np.maximum(np.asarray(reference, dtype=float), PSI_FLOOR)
    cur = np.maximum(np.asarray(current, dtype=float), PSI_FLOOR)
    return float(np.sum((cur - ref) * np.log(cur / ref)))


def psi(reference: pd.Series, current: pd.Series, n_bins: int = 10) -> float:
    """Population stability index: sum over bins of (cur - ref) * ln(cur / ref). 0 = identical."""
    shares = binned_shares(reference, current, n_bins)
    return _psi_of_shares(shares["reference"].to_numpy(), shares["current"].to_numpy())


def psi_noise(n_bins: int, n_reference: float, n_current: float) -> float:
    """The PSI expected between two samples of one distribution: (bins - 1) * (1/n_reference + 1/n_current).

    PSI is the symmetrised Kullback-Leibler divergence of the binned shares; for two samples of one distribution
    it is asymptotically chi-square with bins - 1 degrees of freedom divided by n_ref * n_cur / (n_ref + n_cur).
    At 200 rows a side and 10 bins that is 0.09, nearly the `psi_warn` threshold; at 50,000 it is 0.0004.
    This is the independent-rows case of `drift_table`'s estimate, which also counts clustered rows.
    """
    if n_reference <= 0 or n_current <= 0:
        return float("inf")
    return max(0, n_bins - 1) * (1.0 / n_reference + 1.0 / n_current)


def _cluster_codes(clusters, n: int) -> np.ndarray:
    """Integer cluster ids (None: every row is its own cluster); each missing id is a cluster of its own."""
    if clusters is None:
        return None
    codes = pd.factorize(pd.Series(clusters).reset_index(drop=True))[0]
    lone = codes < 0
    codes[lone] = codes.max(initial=-1) + 1 + np.arange(int(lone.sum()))
    return codes


def _share_variance(codes: pd.Series, bins: list, row_weights: np.ndarray, clusters: np.ndarray | None,
                    shares: np.ndarray) -> np.ndarray:
    """Per bin, the variance of the weighted share estimate sum_r w_r [code_r == bin], cluster-robust: the rows of
    one cluster (the leads of one account, one lead's monthly snapshots) are not independent samples.

    var_b = sum over clusters c of (W_cb - p_b W_c)^2, W_cb the weight of cluster c's rows in bin b and W_c of all
    its rows. With one row per cluster and w = 1/n this is the multinomial p_b (1 - p_b) / n."""
    k = len(bins)
    b = np.asarray(codes, dtype=np.int64)
    w = np.asarray(row_weights, dtype=float)
    keep = b >= 0
    p = np.asarray(shares, dtype=float)
    if clusters is None:  # every row its own cluster: sum_r w_r^2 ([r in b] - p_b)^2
        in_bin = np.bincount(b[keep], weights=w[keep] ** 2, minlength=k)
        return np.maximum(in_bin * (1 - 2 * p) + p**2 * float(w @ w), 0.0)
    c = np.asarray(clusters, dtype=np.int64)
    w_c = np.bincount(c, weights=w)
    w_cb = np.bincount(c[keep] * k + b[keep], weights=w[keep], minlength=len(w_c) * k).reshape(-1, k)
    return np.maximum((w_cb**2).sum(axis=0) - 2 * p * (w_cb * w_c[:, None]).sum(axis=0) + p**2 * float(w_c @ w_c), 0.0)


def _effective_rows(shares: np.ndarray, variance: np.ndarray, row_weights: np.ndarray) -> float:
    """The size of an independent sample whose shares would be as precise: sum p(1-p) / sum var."""
    total = float(variance.sum())
    spread = float(np.sum(shares * (1 - shares)))
    independent = float(1.0 / np.sum(np.asarray(row_weights) ** 2))  # the rows themselves, when all independent
    return min(spread / total, independent) if total > 0 and spread > 0 else independent


def _trend_projection(reference_dates, current_dates):
    """Project per-snapshot quantities of the reference to the current as-of dates by a weighted least-squares
    line in the date. Returns the reference dates per row, the snapshot dates, a function mapping per-snapshot
    values (dates x k) to the projection at the current dates (k), and each reference row's weight in that
    projection (the projection of a share is sum_r weight_r [row r in the bin]; the weights sum to 1)."""
    ref_dates = pd.to_datetime(pd.Series(reference_dates)).reset_index(drop=True)
    cur_dates = pd.to_datetime(pd.Series(current_dates)).reset_index(drop=True)
    dates = np.sort(ref_dates.unique())
    if len(dates) < 2:
        raise ValueError("trend projection: the reference needs at least two distinct as-of dates")
    origin = dates[-1]
    x = (dates - origin) / np.timedelta64(1, "D")
    rows = ref_dates.value_counts().reindex(dates).to_numpy(dtype=float)
    X = np.column_stack([np.ones_like(x), x])
    xtwx_inv = np.linalg.pinv(X.T @ (X * rows[:, None]))
    targets = cur_dates.value_counts()
    at = (targets.index.to_numpy(dtype="datetime64[ns]") - origin) / np.timedelta64(1, "D")
    target_weights = targets.to_numpy(dtype=float) / targets.sum()
    a = target_weights @ np.column_stack([np.ones_like(at), at])  # the line is linear: average the dates first
    per_date = a @ xtwx_inv @ X.T  # one row of a snapshot -> its weight in the projection
    row_weights = per_date[np.searchsorted(dates, ref_dates.to_numpy(dtype="datetime64[ns]"))]

    def project(values: np.ndarray) -> np.ndarray:
        return (per_date * rows) @ np.asarray(values, dtype=float)

    return ref_dates, dates, project, row_weights


def trend_shares(reference: pd.Series, reference_dates, current: pd.Series, current_dates,
                 n_bins: int = 10) -> tuple[pd.DataFrame, float]:
    """Bin shares of the reference projected to the current as-of date(s), and the projection's effective rows.

    The bins are the pooled reference's (as in `binned_shares`). Each bin's share is fitted by least squares as a
    straight line in the as-of date over the reference snapshots (weighted by their rows) and read off at the
    current date (the mean of the current rows' dates); negative projections are clipped and the shares
    renormalised. The effective rows (1 / sum of the squared row weights, independent rows) are the size of one
    sample as precise as the projection. Needs at least two distinct reference dates.
    """
    table, _, weights = _trend_table(reference, reference_dates, current, current_dates, n_bins)
    return table, float(1.0 / np.sum(weights**2))


def _trend_table(reference, reference_dates, current, current_dates, n_bins):
    ref_codes, cur_codes, bins = _bin_codes(reference, current, n_bins)
    ref_dates, dates, project, weights = _trend_projection(reference_dates, current_dates)
    date_idx = np.searchsorted(dates, ref_dates.to_numpy(dtype="datetime64[ns]"))
    counts = np.bincount(date_idx * len(bins) + ref_codes, minlength=len(dates) * len(bins)).reshape(len(dates), -1)
    projected = np.clip(project(counts / counts.sum(axis=1, keepdims=True)), 0.0, None)
    projected = projected / max(float(projected.sum()), 1e-12)
    table = pd.DataFrame({"bin": bins, "reference": projected, "current": _shares(cur_codes, bins)})
    return table, (ref_codes, cur_codes, bins), weights


def _continuous(values: pd.Series, n_bins: int) -> bool:
    """Numbers with no value holding half a quantile bin or more: each quantile bin then holds 1 / n_bins."""
    values = pd.Series(values).dropna()
    return (_is_numeric(values) and len(values) >= 20 * n_bins
            and values.value_counts(normalize=True, sort=False).max() < 0.5 / n_bins)


def _quantile_trend_table(reference, reference_dates, current, current_dates, n_bins):
    """For a continuous calendar column: the reference's quantiles (and missing share) fitted as straight lines in
    the as-of date and read off at the current date; the current values binned by those projected quantiles then
    fill each bin with (1 - missing) / n_bins when nothing but the calendar moved. (An age grows with the pool's
    age span, so its quantiles move along a line where bin shares on fixed edges do not.)

    The reference rows are binned by their own snapshot's quantiles: the cluster-robust variance of those codes
    under the projection weights is the noise of the projected quantiles (the quantile's influence function)."""
    ref_dates, dates, project, weights = _trend_projection(reference_dates, current_dates)
    ref = pd.Series(reference).reset_index(drop=True).astype(float)
    cur = pd.Series(current).reset_index(drop=True).astype(float)
    grid = np.linspace(0, 1, n_bins + 1)[1:-1]
    bins = [f"q{j + 1}/{n_bins}" for j in range(n_bins)] + [MISSING_BIN]
    r = ref.to_numpy()
    ref_codes = np.full(len(r), n_bins)  # the missing bin unless a value
    per_date = []
    for d in dates:
        rows = np.flatnonzero((ref_dates == d).to_numpy())
        v = r[rows]
        ok = ~np.isnan(v)
        edges = np.quantile(v[ok], grid)
        per_date.append([*edges, float(1 - ok.mean())])
        ref_codes[rows[ok]] = np.searchsorted(edges, v[ok], side="right")
    projected = project(np.array(per_date))
    edges, missing = np.maximum.accumulate(projected[:-1]), float(np.clip(projected[-1], 0.0, 1.0))
    c = cur.to_numpy()
    cur_codes = np.where(np.isnan(c), n_bins, np.searchsorted(edges, np.nan_to_num(c), side="right"))
    expected = np.append(np.full(n_bins, (1 - missing) / n_bins), missing)
    if not (missing > 0 or np.isnan(r).any() or np.isnan(c).any()):  # no missing bin
        bins, expected = bins[:-1], expected[:-1]
    table = pd.DataFrame({"bin": bins, "reference": expected, "current": _shares(cur_codes, bins)})
    return table, (ref_codes, cur_codes, bins), weights


def trend_mean(reference: pd.Series, reference_dates, current_dates) -> float:
    """The reference's mean (of the non-missing values) projected to the current dates like `trend_shares`."""
    ref_dates, dates, project, _ = _trend_projection(reference_dates, current_dates)
    means = pd.Series(pd.Series(reference).to_numpy(dtype=float)).groupby(ref_dates.to_numpy()).mean().reindex(dates)
    return float(project(means.fillna(means.mean()).to_numpy()))


def ks(reference: pd.Series, current: pd.Series, n_reference: float | None = None,
       n_current: float | None = None) -> tuple[float, float]:
    """Two-sample Kolmogorov-Smirnov (statistic, p-value) on the non-missing values; NaN for categories.

    `n_reference` / `n_current`, when given, are the effective sample sizes the p-value is computed for (rows
    that are not independent samples count less); by default the numbers of non-missing values.
    """
    reference, current = pd.Series(reference), pd.Series(current)
    if not (_is_numeric(reference) and _is_numeric(current)):
        return float("nan"), float("nan")
    ref = reference.dropna().to_numpy(dtype=float)
    cur = current.dropna().to_numpy(dtype=float)
    if len(ref) == 0 or len(cur) == 0:
        return float("nan"), float("nan")
    if n_reference is None and n_current is None:
        result = ks_2samp(ref, cur, method="asymp")  # exact p-values are slow and pointless at these sizes
        return float(result.statistic), float(result.pvalue)
    ref, cur = np.sort(ref), np.sort(cur)
    grid = np.concatenate([ref, cur])
    stat = float(np.max(np.abs(np.searchsorted(ref, grid, side="right") / len(ref)
                               - np.searchsorted(cur, grid, side="right") / len(cur))))
    m = min(float(n_reference or len(ref)), len(ref))
    n = min(float(n_current or len(cur)), len(cur))
    return stat, float(kstwo.sf(stat, max(1, round(m * n / (m + n)))))


def drift_flag(psi_value: float, ks_statistic: float, ks_pvalue: float, t: DriftThresholds,
               n_reference: float | None = None, n_current: float | None = None) -> str:
    """ok / warn / drift from the PSI effect size (`psi_excess` in `drift_table`) and KS; ``few_rows`` when a side
    has fewer than `t.min_rows` rows (when the row counts are given)."""
    if n_reference is not None and n_current is not None and min(n_reference, n_current) < t.min_rows:
        return FEW_ROWS
    ks_shift = (not np.isnan(ks_statistic)) and ks_pvalue < t.ks_alpha and ks_statistic >= t.ks_min_statistic
    if psi_value >= t.psi_drift or ks_shift:
        return DRIFT
    if psi_value >= t.psi_warn:
        return WARN
    return OK


def drift_table(reference: pd.DataFrame, current: pd.DataFrame, columns: Sequence[str],
                thresholds: DriftThresholds | None = None, trend_columns: Sequence[str] = (),
                date_column: str = "as_of", cluster_column: str | None = None,
                age_columns: Sequence[str] = ()) -> pd.DataFrame:
    """One row per column: PSI, its excess over the expected sampling noise, KS, means and missing shares on both
    sides, the effective sample sizes and the flag; worst first. The rule is the module docstring's.

    `trend_columns` (calendar columns) are compared with the reference projected to the current date
    (`trend_shares`, basis ``trend``) when both frames have `date_column` and the reference holds at least two
    as-of dates; otherwise, like every other column, with the pooled reference (basis ``pooled``).
    `age_columns` are trend columns that are ages (time since an event): as the pool's age span grows their
    quantiles move along a line, so their quantiles are projected (`_quantile_trend_table`) rather than the shares
    of fixed bins; a count to date or a score is projected by its bin shares.
    `cluster_column` (e.g. the account id), when both frames have it, groups rows that are not independent
    samples: the noise and the effective sizes (``neff_*``) are then cluster-robust. Without it every row counts.
    """
    t = thresholds or DriftThresholds()
    missing = [c for c in columns if c not in reference or c not in current]
    if missing:
        raise KeyError(f"drift_table: column(s) {missing} missing from the reference or the current population")
    ages = set(age_columns) & set(columns)
    trend = (set(trend_columns) & set(columns)) | ages
    can_project = (date_column in reference and date_column in current
                   and pd.Series(reference[date_column]).nunique() >= 2)
    clustered = cluster_column is not None and cluster_column in reference and cluster_column in current
    ref_clusters = _cluster_codes(reference[cluster_column] if clustered else None, len(reference))
    cur_clusters = _cluster_codes(current[cluster_column] if clustered else None, len(current))
    cur_weights = np.full(len(current), 1.0 / max(1, len(current)))
    rows = []
    for col in columns:
        ref, cur = reference[col].reset_index(drop=True), current[col].reset_index(drop=True)
        numeric = _is_numeric(ref) and _is_numeric(cur)
        if col in trend and can_project:
            quantiles = col in ages and numeric and _continuous(ref, t.n_bins) and bool(
                ref.notna().groupby(reference[date_column].to_numpy()).sum().min() >= 20 * t.n_bins)
            shares, (ref_codes, cur_codes, bins), ref_weights = (_quantile_trend_table if quantiles else _trend_table)(
                ref, reference[date_column], cur, current[date_column], t.n_bins)
            basis = "trend"
            # The reference described at the current date: its projected mean and missing share.
            ref_mean = trend_mean(ref, reference[date_column], current[date_column]) if numeric else float("nan")
            ref_missing = float(shares.set_index("bin")["reference"].get(MISSING_BIN, 0.0))
        else:
            ref_codes, cur_codes, bins = _bin_codes(ref, cur, t.n_bins)
            shares = pd.DataFrame({"bin": bins, "reference": _shares(ref_codes, bins),
                                   "current": _shares(cur_codes, bins)})
            ref_weights = np.full(len(ref), 1.0 / max(1, len(ref)))
            basis = "pooled"
            ref_mean = float(ref.astype(float).mean()) if numeric else float("nan")
            ref_missing = float(ref.isna().mean())
        p_ref, p_cur = shares["reference"].to_numpy(), shares["current"].to_numpy()
        var_ref = _share_variance(ref_codes, bins, ref_weights, ref_clusters, p_ref)
        var_cur = _share_variance(cur_codes, bins, cur_weights, cur_clusters, p_cur)
        value_psi = _psi_of_shares(p_ref, p_cur)
        # E[PSI] under no shift: sum over bins of Var(cur share - ref share) / share (second order in the shift).
        noise = float(np.sum((var_ref + var_cur) / np.maximum((p_ref + p_cur) / 2, PSI_FLOOR)))
        excess = max(0.0, value_psi - noise)
        n_ref = _effective_rows(p_ref, var_ref, ref_weights)
        n_cur = _effective_rows(p_cur, var_cur, cur_weights)
        stat, pvalue = float("nan"), float("nan")
        if basis == "pooled" and min(n_ref * ref.notna().mean(), n_cur * cur.notna().mean()) >= t.min_rows:
            stat, pvalue = ks(ref, cur, n_ref * ref.notna().mean(), n_cur * cur.notna().mean())
        rows.append({
            "feature": col,
            "kind": "numeric" if numeric else "categorical",
            "basis": basis,
            "psi": value_psi,
            "psi_noise": noise,
            "psi_excess": excess,
            "ks_statistic": stat,
            "ks_pvalue": pvalue,
            "reference_mean": ref_mean,
            "current_mean": float(cur.astype(float).mean()) if numeric else float("nan"),
            "reference_missing": ref_missing,
            "current_missing": float(cur.isna().mean()),
            "neff_reference": round(n_ref),
            "neff_current": round(n_cur),
            "flag": drift_flag(excess, stat, pvalue, t, n_ref, n_cur),
        })
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    severity = table["flag"].map({DRIFT: 0, WARN: 1, OK: 2, FEW_ROWS: 3})
    return (table.assign(_s=severity).sort_values(["_s", "psi_excess", "psi"], ascending=[True, False, False])
            .drop(columns="_s").reset_index(drop=True))


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

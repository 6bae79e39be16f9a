"""Stage `report`: one self-contained HTML monitoring report — model quality, SQL funnel, criteria backtest, drift.

Everything is computed by pure code in `models.monitoring` and `models.backtest`; this module loads the stage
outputs, calls it, draws the plots (embedded as base64 PNG) and writes the HTML plus a metrics JSON.
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from features.build import decision_population, feature_columns
from features.sets import age_columns, calendar_columns
from models import backtest as bt
from models import monitoring as mon
from models.config import ScoreConfig
from models.decision import rows_to_score, score_frame
from models.evaluate import (
    ECE_WARN,
    calibration_warning,
    classification_metrics,
    feature_importance,
    reliability_table,
)
from models.gates import GATE_ORDER
from models.ranking import WITH_SALES
from models.sampling import cluster_sample
from pipeline.artifacts import features_variant, load_model
from pipeline.io import find_table, read_json, read_table, write_atomic, write_csv, write_json
from pipeline.params import ReportParams
from pipeline.progress import log

REPORT_FILE = "report.html"
METRICS_FILE = "monitoring.json"
GATE_COLUMNS = tuple(f"gate_{g}" for g in GATE_ORDER)
TIER_ORDER = ("A", "B", "C", "D")
INK, ACCENT, MUTED, WARM, BAD = "#1f3b73", "#2a9d8f", "#9aa5b1", "#e9a23b", "#c8553d"


class DriftDetected(RuntimeError):
    """Drift above the thresholds was flagged and the caller asked to fail on it."""


# ---------------------------------------------------------------------------------------------- data


# Training rows scored as the score-drift reference, at most (whole accounts drawn): about 5 s on one thread with
# the demo's model; the demo's 265k training snapshots took 25 s, half the report. The feature drift reads them all.
SCORE_REFERENCE_ROWS = 50_000


def won_amounts(rows: pd.DataFrame, opportunities: pd.DataFrame | None, horizon_days: int,
                default_deal_size: float = 0.0) -> pd.Series:
    """Amount each lead of one as-of snapshot actually won within the label window [as_of, as_of + horizon).

    A flat export has no opportunities: a won lead is worth the default deal size.
    """
    if opportunities is None:
        return rows["label"].fillna(0).astype(float).reset_index(drop=True) * default_deal_size
    as_of = pd.Timestamp(rows["as_of"].iloc[0])
    closed = pd.to_datetime(opportunities["closed_at"])
    won = opportunities[(opportunities["stage"] == "closed_won") & (closed >= as_of)
                        & (closed < as_of + pd.Timedelta(days=horizon_days))]
    per_lead = pd.to_numeric(won["amount"], errors="coerce").fillna(0).groupby(won["lead_id"]).sum()
    return rows["lead_id"].map(per_lead).fillna(0.0).astype(float)


def backtest_frame(table: pd.DataFrame, model, info: dict, accounts: pd.DataFrame, opportunities: pd.DataFrame,
                   p: ScoreConfig, horizon_days: int, p_test: np.ndarray | None = None) -> pd.DataFrame:
    """Replay the score stage on each held-out snapshot (outcomes known) and attach what followed. `p_test`: the
    model's probabilities of the table's held-out rows, in the table's order, when already computed."""
    parts = []
    test = table[table["split"] == "test"].reset_index(drop=True)
    for as_of, rows in test.groupby("as_of", sort=True):
        known = None if p_test is None else np.asarray(p_test)[rows.index.to_numpy()]
        rows = rows.reset_index(drop=True)
        scored = score_frame(rows, model, accounts, opportunities, p, info.get("model_version", "?"),
                             info.get("run_id", "?"), pd.Timestamp(as_of), p_convert=known)
        outcome = pd.DataFrame({"lead_id": rows["lead_id"], "label": rows["label"].fillna(0).astype(int),
                                "won_amount": won_amounts(rows, opportunities, horizon_days, p.default_deal_size).to_numpy()})
        parts.append(scored.merge(outcome, on="lead_id", how="left", validate="one_to_one"))
    if not parts:
        raise ValueError("no held-out (split == 'test') rows in the feature table: nothing to backtest")
    return pd.concat(parts, ignore_index=True)


def drift_tables(model, cols: list[str], train_rows: pd.DataFrame, now_rows: pd.DataFrame,
                 scored_now: pd.DataFrame | None, p_now: np.ndarray, thresholds: mon.DriftThresholds,
                 seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray, np.ndarray]:
    """(feature drift, score drift, reference training scores, current scores compared) between the training rows
    and the leads the decision is made for now (leads already with sales left out, as training leaves them out).

    The rule is `models.monitoring`'s: noise-corrected PSI and KS effect sizes on enough effective rows (the
    leads of one account are one cluster), calendar columns (and the score, which depends on them) compared
    with the training snapshots' trend projected to the scored date.
    """
    current = decision_population(now_rows).reset_index(drop=True)
    drift = mon.drift_table(train_rows, current, cols, thresholds, trend_columns=calendar_columns(cols),
                            age_columns=age_columns(cols), cluster_column="account_id")
    # The score's reference: the training snapshots' scores, on whole accounts drawn up to
    # SCORE_REFERENCE_ROWS rows (one-thread predictions of every training row took most of the report's time);
    # the drift rule's effective sizes count the accounts drawn.
    meta = [c for c in ("as_of", "account_id") if c in train_rows]
    groups = train_rows["account_id"] if "account_id" in train_rows else np.arange(len(train_rows))
    reference = train_rows.iloc[cluster_sample(groups, SCORE_REFERENCE_ROWS, seed)].reset_index(drop=True)
    # Both sides at the scored table's precision (6 decimals): isotonic scores are steps, and a step value
    # rounded on one side only would shift its whole mass past the other's and fake a large KS statistic.
    p_train = model.predict_proba(reference[cols])[:, 1].round(6)
    if scored_now is not None and "status" in scored_now:
        keep = (scored_now["status"] != WITH_SALES).to_numpy()
        now_meta = scored_now.loc[keep, [c for c in meta if c in scored_now]].reset_index(drop=True)
        p_current = np.round(np.asarray(p_now, dtype=float)[keep], 6)
    elif len(p_now) == len(now_rows):
        keep = now_rows["lead_id"].isin(current["lead_id"]).to_numpy() if "lead_id" in now_rows else slice(None)
        now_meta = now_rows.loc[keep, meta].reset_index(drop=True)
        p_current = np.round(np.asarray(p_now, dtype=float)[keep], 6)
    else:
        now_meta, p_current = pd.DataFrame(index=range(len(p_now))), np.round(np.asarray(p_now, dtype=float), 6)
    if "as_of" in now_meta:
        now_meta["as_of"] = pd.to_datetime(now_meta["as_of"])
    score_drift = mon.drift_table(reference[meta].assign(score=p_train), now_meta.assign(score=p_current),
                                  ["score"], thresholds, trend_columns=["score"], cluster_column="account_id")
    return drift, score_drift, p_train, p_current


def previous_model_comparison(info: dict, X: pd.DataFrame, y: np.ndarray, p_current: np.ndarray,
                              top_fraction: float) -> dict[str, Any]:
    """The previous registered version scored on the *same* held-out rows as the current one, when it exists."""
    name, _, version = str(info.get("model_version", "")).partition("/")
    if not version.isdigit():
        return {"note": "the current model is not a registered version: nothing to compare with"}
    try:
        from pipeline import tracking

        tracking.configure()
        import mlflow

        client = mlflow.MlflowClient()
        versions = sorted(int(v.version) for v in client.search_model_versions(f"name='{name}'"))
        earlier = [v for v in versions if v < int(version)]
        if not earlier:
            return {"note": f"{name}/{version} is the first registered version: nothing to compare with"}
        previous = earlier[-1]
        old = _load_version(f"models:/{name}/{previous}")
        p_old = single_threaded(old).predict_proba(X)[:, 1]
    except Exception as exc:  # a missing store or an incompatible old model must not sink the report
        return {"note": f"comparison with the previous version unavailable: {type(exc).__name__}: {exc}"}
    now = classification_metrics(y, p_current, top_fraction)
    before = classification_metrics(y, p_old, top_fraction)
    keys = ["roc_auc", "pr_auc", "brier", "ece", "log_loss", *[k for k in now if k.startswith(("lift_", "capture_"))]]
    table = pd.DataFrame({"metric": keys, "current": [now[k] for k in keys], "previous": [before[k] for k in keys]})
    table["change"] = table["current"] - table["previous"]
    return {"current": f"{name}/{version}", "previous": f"{name}/{previous}", "table": table, "p_previous": p_old}


def _load_version(uri: str):
    """The classifier of a registered version: the pyfunc bundle's when the score stage knows how, else sklearn."""
    import mlflow

    try:
        from pipeline.tracking import load_registered

        return load_registered(uri)[0]
    except Exception:  # an older version logged with the sklearn flavour only
        return mlflow.sklearn.load_model(uri)


def single_threaded(model):
    """The model predicting on one thread: the report is not latency-bound, and on shared cores a multithreaded
    LightGBM predict competing with other processes runs many times slower."""
    booster = getattr(model, "booster_", None)
    if booster is not None and hasattr(booster, "set_params"):
        booster.set_params(n_jobs=1)
    return model


def shap_sample(model, X: pd.DataFrame, n: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    sample = X.sample(n=min(n, len(X)), random_state=seed) if len(X) else X
    return sample, model.contributions(sample)


# ---------------------------------------------------------------------------------------------- plots


def _png(fig) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _figure(w: float = 5.2, h: float = 3.6):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": 9, "axes.spines.top": False, "axes.spines.right": False,
                         "axes.titleweight": "bold", "axes.titlesize": 10, "axes.grid": True, "grid.alpha": 0.25})
    return plt.subplots(figsize=(w, h))


def _percent():
    from matplotlib.ticker import PercentFormatter

    return PercentFormatter(xmax=1.0, decimals=None)  # as many decimals as the tick spacing needs


def _curve(y, p, p_prev, curve, summary: str, x_y):
    """A figure with the current model's curve and, when given, the previous version's on the same rows."""
    fig, ax = _figure()
    for scores, name, color, lw in ((p, "current", INK, 2), (p_prev, "previous", WARM, 1.5)):
        if scores is not None:
            a, b, _ = curve(y, scores)
            xs, ys = x_y(a, b)
            ax.plot(xs, ys, color=color, lw=lw, label=f"{name} ({summary(y, scores)})")
    return fig, ax


def plot_roc(y, p, p_prev=None) -> str:
    from sklearn.metrics import roc_auc_score, roc_curve

    fig, ax = _curve(y, p, p_prev, roc_curve, lambda t, s: f"AUC {roc_auc_score(t, s):.3f}", lambda f, t: (f, t))
    ax.plot([0, 1], [0, 1], "--", color=MUTED, lw=1)
    ax.set(title="ROC — held-out period", xlabel="false positive rate", ylabel="true positive rate")
    ax.legend(loc="lower right", frameon=False)
    return _png(fig)


def plot_pr(y, p, p_prev=None) -> str:
    from sklearn.metrics import average_precision_score, precision_recall_curve

    fig, ax = _curve(y, p, p_prev, precision_recall_curve,
                     lambda t, s: f"AP {average_precision_score(t, s):.3f}", lambda prec, rec: (rec, prec))
    ax.axhline(np.mean(y), ls="--", color=MUTED, lw=1, label=f"base rate {np.mean(y):.3f}")
    ax.set(title="Precision-recall", xlabel="recall", ylabel="precision", ylim=(0, 1.02))
    ax.legend(loc="upper right", frameon=False)
    return _png(fig)


def plot_reliability(y, p) -> str:
    fig, ax = _figure()
    rel = reliability_table(y, p)
    top = float(max(rel["predicted"].max(), rel["observed"].max()) * 1.08)
    ax.plot([0, top], [0, top], "--", color=MUTED, lw=1, label="perfect calibration")
    ax.plot(rel["predicted"], rel["observed"], "o-", color=INK, lw=2, label="deciles of p_convert")
    ax.set(title="Reliability", xlabel="mean predicted probability", ylabel="observed conversion rate",
           xlim=(0, top), ylim=(0, top))
    ax.legend(loc="upper left", frameon=False)
    return _png(fig)


def plot_gains(gains: pd.DataFrame) -> str:
    fig, ax = _figure()
    x = np.concatenate([[0], gains["share_of_leads"]])
    ax.plot(x, np.concatenate([[0], gains["share_of_winners"]]), color=INK, lw=2, label="model")
    ax.plot([0, 1], [0, 1], "--", color=MUTED, lw=1, label="random order")
    ax.set(title="Cumulative gains and lift", xlabel="share of leads called (best score first)",
           ylabel="share of future winners reached")
    ax2 = ax.twinx()
    ax2.plot(gains["share_of_leads"], gains["lift"], color=ACCENT, lw=1.5, label="lift")
    ax2.set_ylabel("lift", color=ACCENT)
    ax2.grid(False)
    ax2.spines["right"].set_visible(True)
    lines = ax.get_lines()[:2] + ax2.get_lines()
    ax.legend(lines, [line.get_label() for line in lines], loc="center right", frameon=False)
    return _png(fig)


def _log_bins(*arrays: np.ndarray, n: int = 30) -> np.ndarray:
    values = np.concatenate(arrays)
    low = max(1e-4, float(np.quantile(values, 0.001)))
    return np.geomspace(low, max(low * 10, float(values.max()) * 1.01), n)


def _share_hist(ax, values: np.ndarray, bins: np.ndarray, color: str, label: str, filled: bool) -> None:
    values = np.clip(values, bins[0], bins[-1])  # the lowest scores pile into the first bin, none is dropped
    weights = np.full(len(values), 1.0 / max(1, len(values)))
    if filled:
        ax.hist(values, bins=bins, weights=weights, color=color, alpha=0.35, label=label)
    else:
        ax.hist(values, bins=bins, weights=weights, histtype="step", color=color, lw=2, label=label)


def plot_score_by_outcome(y, p) -> str:
    fig, ax = _figure()
    bins = _log_bins(p)
    _share_hist(ax, p[y == 0], bins, MUTED, f"did not convert (n={int((y == 0).sum()):,})", True)
    _share_hist(ax, p[y == 1], bins, INK, f"closed won (n={int((y == 1).sum()):,})", False)
    ax.set(title="Score distribution by outcome", xlabel="p_convert (log scale)", ylabel="share of the group",
           xscale="log")
    ax.yaxis.set_major_formatter(_percent())
    ax.legend(frameon=False, loc="upper left")
    return _png(fig)


def plot_funnel(funnel: pd.DataFrame, title: str) -> str:
    fig, ax = _figure(5.8, 3.4)
    steps = funnel["step"].tolist()[::-1]
    counts = funnel["n"].to_numpy()[::-1]
    colors = [ACCENT if s.startswith("SQL") else INK for s in steps]
    ax.barh(steps, counts, color=colors)
    for i, c in enumerate(counts):
        ax.text(c, i, f" {c:,}", va="center", fontsize=8)
    ax.set(title=title, xlabel="leads", xscale="log")
    ax.grid(axis="y", visible=False)
    return _png(fig)


def plot_conversion_by_tier(table: pd.DataFrame) -> str:
    fig, ax = _figure(4.6, 3.4)
    ax.bar(table["group"].astype(str), table["conversion"], color=INK)
    for i, row in table.reset_index(drop=True).iterrows():
        ax.text(i, row["conversion"], f"{row['conversion']:.1%}\nn={row['n']:,}", ha="center", va="bottom", fontsize=8)
    ax.set(title="Conversion by tier (held-out)", xlabel="tier", ylabel="closed-won rate",
           ylim=(0, max(0.05, table["conversion"].max() * 1.3)))
    ax.yaxis.set_major_formatter(_percent())
    return _png(fig)


def plot_conversion_by_gate(table: pd.DataFrame) -> str:
    fig, ax = _figure(5.8, 3.4)
    gates = list(dict.fromkeys(table["gate"]))
    width = 0.26
    for j, (outcome, color) in enumerate((("pass", ACCENT), ("unknown", MUTED), ("fail", BAD))):
        part = table[table["outcome"] == outcome].set_index("gate").reindex(gates)
        ax.bar(np.arange(len(gates)) + (j - 1) * width, part["conversion"].fillna(0), width, color=color, label=outcome)
    ax.set_xticks(np.arange(len(gates)), gates)
    ax.set(title="Conversion by gate outcome (held-out)", ylabel="closed-won rate")
    ax.yaxis.set_major_formatter(_percent())
    ax.legend(frameon=False)
    return _png(fig)


def plot_threshold(sweep: pd.DataFrame, current: float, best: float) -> str:
    fig, ax = _figure(5.8, 3.6)
    ax.plot(sweep["threshold"], sweep["realised_value"] / 1e3, color=INK, lw=2, label="realised (what closed)")
    ax.plot(sweep["threshold"], sweep["expected_value"] / 1e3, color=ACCENT, lw=1.5, ls="--", label="expected (model)")
    ax.axvline(current, color=MUTED, lw=1, label=f"current threshold {current:.2f}")
    ax.axvline(best, color=WARM, lw=1.5, label=f"best realised {best:.2f}")
    ax.set(title="Value of the SQL decision vs threshold", xlabel="p_convert threshold (all gates pass)",
           ylabel="value net of sales cost (k$)")
    ax.legend(frameon=False, fontsize=8)
    return _png(fig)


def plot_capacity(sweep: pd.DataFrame, best: int) -> str:
    fig, ax = _figure(5.8, 3.6)
    ax.plot(sweep["capacity"], sweep["realised_value"] / 1e3, color=INK, lw=2, label="realised")
    ax.plot(sweep["capacity"], sweep["expected_value"] / 1e3, color=ACCENT, lw=1.5, ls="--", label="expected")
    ax.axvline(best, color=WARM, lw=1.5, label=f"best capacity {best:,}")
    ax.set(title="Value vs sales capacity (top-k by expected value)", xlabel="SQLs handed to sales",
           ylabel="value net of sales cost (k$)")
    ax.legend(frameon=False, fontsize=8)
    return _png(fig)


def plot_importance(importance: pd.Series, top: int = 15) -> str:
    fig, ax = _figure(5.6, 4.4)
    imp = importance.head(top)[::-1]
    ax.barh(imp.index, imp.to_numpy() / importance.sum(), color=INK)
    ax.set(title="Feature importance (share of total gain)", xlabel="share of gain")
    ax.xaxis.set_major_formatter(_percent())
    ax.grid(axis="y", visible=False)
    return _png(fig)


def plot_shap(sample: pd.DataFrame, contrib: pd.DataFrame, top: int = 12) -> str:
    fig, ax = _figure(5.6, 4.4)
    order = contrib.abs().mean().sort_values(ascending=False).head(top).index[::-1]
    rng = np.random.default_rng(0)
    points = None
    for i, col in enumerate(order):
        values = contrib[col].to_numpy()
        raw = sample[col]
        if pd.api.types.is_numeric_dtype(raw) and not pd.api.types.is_bool_dtype(raw):
            color = raw.rank(pct=True).to_numpy(dtype=float)
        else:
            color = np.full(len(raw), np.nan)
        jitter = rng.uniform(-0.3, 0.3, len(values))
        grey = np.isnan(color)
        ax.scatter(values[grey], i + jitter[grey], s=4, color=MUTED, alpha=0.5, linewidths=0)
        points = ax.scatter(values[~grey], i + jitter[~grey], s=4, c=color[~grey], cmap="coolwarm", vmin=0, vmax=1,
                            alpha=0.7, linewidths=0)
    ax.axvline(0, color="#444", lw=0.8)
    ax.set_yticks(np.arange(len(order)), order)
    ax.set(title=f"SHAP summary ({len(sample):,} held-out leads)", xlabel="contribution to log-odds")
    ax.grid(axis="y", visible=False)
    if points is not None:
        bar = fig.colorbar(points, ax=ax, pad=0.01, fraction=0.04)
        bar.set_ticks([0, 1], labels=["low", "high"])
        bar.set_label("feature value (rank)")
    return _png(fig)


def plot_score_drift(p_train: np.ndarray, p_current: np.ndarray, value_psi: float) -> str:
    fig, ax = _figure(5.8, 3.4)
    bins = _log_bins(p_train, p_current)
    _share_hist(ax, p_train, bins, MUTED, f"training period (n={len(p_train):,})", True)
    _share_hist(ax, p_current, bins, INK, f"scored now (n={len(p_current):,})", False)
    ax.set(title=f"Score distribution: training vs scored (PSI {value_psi:.3f})", xlabel="p_convert (log scale)",
           ylabel="share of leads", xscale="log")
    ax.yaxis.set_major_formatter(_percent())
    ax.legend(frameon=False, loc="upper left")
    return _png(fig)


# ---------------------------------------------------------------------------------------------- html

CSS = """
*{box-sizing:border-box}body{font-family:-apple-system,'Segoe UI',Roboto,Helvetica,Arial,sans-serif;margin:0;
background:#f4f6f9;color:#1d2733;line-height:1.45}header{background:#1f3b73;color:#fff;padding:22px 36px}
header h1{margin:0;font-size:24px}header p{margin:4px 0 0;opacity:.85;font-size:13px}
main{max-width:1240px;margin:0 auto;padding:18px 28px 40px}section{background:#fff;border-radius:10px;
box-shadow:0 1px 3px rgba(0,0,0,.08);padding:18px 22px;margin:18px 0}h2{margin:0 0 4px;font-size:18px;color:#1f3b73}
.lead{margin:0 0 12px;color:#52606d;font-size:13px}.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(150px,1fr));
gap:12px}.card{background:#fff;border-radius:10px;box-shadow:0 1px 3px rgba(0,0,0,.08);padding:12px 16px;border-top:4px solid #2a9d8f}
.card.bad{border-top-color:#c8553d}.card.warn{border-top-color:#e9a23b}.card .v{font-size:20px;font-weight:700;white-space:nowrap}
.card .k{font-size:12px;color:#52606d}.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(360px,1fr));gap:14px;
align-items:start}img{max-width:100%;height:auto;display:block}table{border-collapse:collapse;font-size:12.5px;width:100%;
margin:6px 0}th,td{padding:5px 9px;border-bottom:1px solid #e4e7eb;text-align:right}th{background:#f0f3f7;color:#323f4b}
td:first-child,th:first-child{text-align:left}tr.drift td{background:#fbe9e5}tr.warn td{background:#fdf3e1}
.flag{font-weight:700;border-radius:4px;padding:1px 6px;font-size:11px}.flag.drift{background:#c8553d;color:#fff}
.flag.warn{background:#e9a23b;color:#fff}.flag.ok{background:#d9f0ec;color:#1b6b60}.note{color:#52606d;font-size:12.5px}
details summary{cursor:pointer;color:#1f3b73;font-size:13px;margin:6px 0}footer{color:#7b8794;font-size:12px;text-align:center}
"""


def _fmt(value: Any, kind: str = "") -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "–"
    if kind == "pct":
        return f"{value:.1%}"
    if kind == "money":
        return f"${value:,.0f}"
    if kind == "p":
        return f"{value:.4f}" if value >= 1e-3 else ("≈ 0" if value == 0 else f"{value:.1e}")
    if isinstance(value, bool | np.bool_):
        return "yes" if value else "no"
    if isinstance(value, int | np.integer):
        return f"{value:,}"
    if isinstance(value, float | np.floating):
        return f"{value:,.4f}" if abs(value) < 10 else f"{value:,.0f}"
    if value is pd.NA or value is pd.NaT:
        return "–"
    return html.escape(str(value))


def _table(df: pd.DataFrame, kinds: dict[str, str] | None = None, row_class: str | None = None) -> str:
    kinds = kinds or {}
    head = "".join(f"<th>{html.escape(str(c).replace('_', ' '))}</th>" for c in df.columns if c != row_class)
    body = []
    for _, row in df.iterrows():
        cls = f' class="{html.escape(str(row[row_class]))}"' if row_class else ""
        cells = []
        for c in df.columns:
            if c == row_class:
                continue
            if c == "flag":
                cells.append(f'<td><span class="flag {html.escape(str(row[c]))}">{html.escape(str(row[c]))}</span></td>')
            else:
                cells.append(f"<td>{_fmt(row[c], kinds.get(c, ''))}</td>")
        body.append(f"<tr{cls}>{''.join(cells)}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _img(b64: str, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{b64}">'


def _card(value: str, key: str, level: str = "") -> str:
    return f'<div class="card {level}"><div class="v">{value}</div><div class="k">{html.escape(key)}</div></div>'


# ---------------------------------------------------------------------------------------------- weekly page

CHANGES_FILE = "changes.csv"  # written by the score stage beside sql_leads (models.changes.diff_scorings)
HANDOVER_PER_REP = 10  # SQLs listed per rep in the report's hand-over list
TOP_NEW_SQLS = 15
WEEKLY_ANCHOR = "<section><h2>Model quality</h2>"  # the weekly sections go first, right after the cards


def handover_table(scored: pd.DataFrame | None, contacts: pd.DataFrame | None = None,
                   per_rep: int = HANDOVER_PER_REP) -> pd.DataFrame:
    """This week's hand-over: the SQLs assigned to each rep in queue order (at most `per_rep` a rep), with the
    lead's name and company when the export has them, score, tier, what changed and the reasons."""
    columns = ["rep", "queue_position", "lead_id", "name", "company", "job_title", "score", "tier", "change",
               "reasons_for", "reasons_against"]
    if scored is None or "assigned_rep" not in scored or len(scored) == 0:
        return pd.DataFrame(columns=columns)
    rep = scored["assigned_rep"].astype("string")
    handed = scored[rep.notna() & (rep.str.strip() != "")]
    if "is_sql" in handed:
        handed = handed[handed["is_sql"].fillna(False).astype(bool)]
    order = [c for c in ("assigned_rep", "queue_position", "rank") if c in handed]
    handed = handed.sort_values(order, na_position="last").groupby("assigned_rep", sort=True).head(per_rep)
    out = handed.rename(columns={"assigned_rep": "rep"})
    if contacts is not None and "lead_id" in contacts and len(out):
        extra = [c for c in ("first_name", "last_name", "company", "job_title") if c in contacts and c not in out]
        if extra:
            out = out.merge(contacts.drop_duplicates("lead_id")[["lead_id", *extra]], on="lead_id", how="left")
    if "first_name" in out or "last_name" in out:
        parts = [out[c].astype("string").fillna("") for c in ("first_name", "last_name") if c in out]
        name = parts[0] if len(parts) == 1 else (parts[0] + " " + parts[1])
        out = out.assign(name=name.str.strip().replace("", pd.NA))
    return out[[c for c in columns if c in out]].reset_index(drop=True)


def change_summary(changes: pd.DataFrame | None, scored: pd.DataFrame | None = None,
                   top: int = TOP_NEW_SQLS) -> dict[str, Any] | None:
    """What changed since the previous scoring, from the score stage's changes.csv: leads per change kind (every
    kind, zeros included), whether there was a previous scoring at all, and the top new SQLs by rank (with score,
    rep and reasons from the scored table). None without changes.csv."""
    from models.changes import CHANGE_KINDS, NEW_SQL

    if changes is None or "change" not in changes:
        return None
    counts = changes["change"].value_counts()
    by_kind = pd.DataFrame({"change": list(CHANGE_KINDS),
                            "leads": [int(counts.get(k, 0)) for k in CHANGE_KINDS]})
    had_previous = bool("status_previous" in changes and changes["status_previous"].notna().any())
    new = changes[changes["change"] == NEW_SQL]
    if "rank" in new:
        new = new.sort_values("rank", na_position="last")
    new = new.head(top)
    cols = [c for c in ("lead_id", "rank", "tier", "status_previous", "tier_previous") if c in new]
    new = new[cols]
    if scored is not None and "lead_id" in scored and len(new):
        extra = [c for c in ("score", "assigned_rep", "reasons_for") if c in scored]
        new = new.merge(scored[["lead_id", *extra]].drop_duplicates("lead_id"), on="lead_id", how="left")
    return {"by_kind": by_kind, "had_previous": had_previous, "new_sqls": new.reset_index(drop=True),
            "n_new_sql": int(counts.get(NEW_SQL, 0))}


def weekly_sections(handover: pd.DataFrame, changes: dict[str, Any] | None, per_rep: int = HANDOVER_PER_REP) -> str:
    """The hand-over list and the changes since last week as two report sections (HTML)."""
    if len(handover):
        per = handover.groupby("rep", sort=True).size()
        who = ", ".join(f"{html.escape(str(r))} ({n})" for r, n in per.items())
        body = _table(handover)
        lead = (f"The SQLs handed to each rep this week, in queue order (at most {per_rep} a rep here; the full "
                f"queues are <code>queues/&lt;rep&gt;.csv</code>): {who}. Reasons say why the score is high or low.")
    else:
        body, lead = "<p class='note'>No SQL was handed to a rep in this scoring.</p>", "The SQLs handed to reps."
    out = f"<section><h2>This week's hand-over</h2><p class='lead'>{lead}</p>{body}</section>\n"
    if changes is None:
        text = f"<p class='note'>No {CHANGES_FILE} beside the scored table: nothing to compare with.</p>"
    else:
        kinds = _table(changes["by_kind"][changes["by_kind"]["leads"] > 0])
        first = ("" if changes["had_previous"] else
                 "<p class='note'>No previous scoring was kept: every lead is new (score history starts now).</p>")
        new = (_table(changes["new_sqls"]) if len(changes["new_sqls"])
               else "<p class='note'>No new SQL since the previous scoring.</p>")
        text = (f"{first}<div class='grid'><div>{kinds}</div><div><h3>Top new SQLs ({changes['n_new_sql']:,} in "
                f"all)</h3>{new}</div></div>")
    out += ("<section><h2>What changed since last week</h2><p class='lead'>Each lead against the previous "
            f"scoring kept in the history (<code>{CHANGES_FILE}</code>): new SQLs, upgraded and downgraded status "
            f"or tier, SQLs dropped, new leads.</p>{text}</section>\n")
    return out


def with_weekly_sections(page: str, sections: str) -> str:
    """`page` with the weekly sections inserted before its model-quality section (or its footer)."""
    anchor = WEEKLY_ANCHOR if WEEKLY_ANCHOR in page else "<footer>"
    return page.replace(anchor, sections + anchor, 1) if sections else page


def read_weekly(scored_dir: Path, validated_dir: Path, scored: pd.DataFrame | None) -> tuple[pd.DataFrame, dict | None]:
    """(hand-over list, change summary) from the scored folder, names and companies from the validated leads."""
    from pipeline.export import CONTACT_FIELDS, contact_table

    try:
        accounts = read_table(find_table(validated_dir, "accounts"))
    except FileNotFoundError:  # a flat export: names from its leads only, if any
        accounts = None
    try:
        path = find_table(validated_dir, "leads")
    except FileNotFoundError:
        path = None
    leads = None
    if path is not None and path.suffix == ".parquet":  # only the id and contact columns of a large table
        import pyarrow.parquet as pq

        have = set(pq.read_schema(path).names)
        leads = pd.read_parquet(path, columns=[c for c in ("lead_id", "account_id", *CONTACT_FIELDS) if c in have])
    elif path is not None:
        leads = read_table(path)
    contacts = contact_table(leads, accounts)
    path = Path(scored_dir) / CHANGES_FILE
    changes = pd.read_csv(path) if path.exists() else None
    return handover_table(scored, contacts), change_summary(changes, scored)


# ---------------------------------------------------------------------------------------------- picklists

VALIDATION_FILE = "validation.json"  # written by the validate stage into the same reports folder


def picklist_table(validation: dict | None) -> pd.DataFrame:
    """Per picklist column of validation.json's ``other``: how many values outside the contract's list were kept
    as the catch-all, and the most frequent of them. No rows for a flat export or an older validation.json."""
    rows = [{"column": f"{table}.{col}", "kept_as": o["to"], "values": int(o["mapped"]),
             "top_values": ", ".join(f"{v['value']} ({v['count']:,})" for v in o["top"])}
            for table, cols in ((validation or {}).get("other") or {}).items() for col, o in cols.items()]
    return pd.DataFrame(rows, columns=["column", "kept_as", "values", "top_values"])


def picklist_section(validation: dict | None) -> str:
    """The report section on picklist values outside the contract ("" when validation.json has no picklists)."""
    table = picklist_table(validation)
    if table.empty:
        return ""
    mapped = table[table["values"] > 0]
    body = (_table(mapped) if len(mapped) else
            "<p class='note'>Every picklist value was one the contract knows: nothing was kept as Other.</p>")
    return ("<section><h2>Picklist values outside the contract</h2><p class='lead'>Industry, lead source, use "
            "case and activity type values that are not in the contract's lists are kept as the list's catch-all "
            "(<code>Other</code>; activity types <code>other</code>) instead of quarantining their rows. A frequent "
            "one that means a known value belongs in the profile's <code>values</code> map. Counted by the "
            f"<code>validate</code> stage (<code>{VALIDATION_FILE}</code>).</p>{body}</section>")


def with_picklist_section(page: str, validation: dict | None) -> str:
    """`page` with the picklist section inserted before its footer (or the end of its main part)."""
    section = picklist_section(validation)
    anchor = "<footer>" if "<footer>" in page else "</main>"
    return page.replace(anchor, section + "\n" + anchor, 1) if section else page


def read_validation(reports_dir: Path) -> dict | None:
    path = Path(reports_dir) / VALIDATION_FILE
    return read_json(path) if path.exists() else None


def render_html(r: dict[str, Any]) -> str:
    """The report page from the computed results `r` (figures already base64 PNG)."""
    perf, drift, s = r["performance"], r["drift"], r["summary"]
    n_drift, n_warn = s["drift_n_flagged"], s["drift_n_warn"]
    cards = "".join([
        _card(f"{s['roc_auc']:.3f}", "held-out ROC AUC"),
        _card(f"{s['ece']:.4f}", "calibration error (ECE)" + (f" above {ECE_WARN:.2f}" if s["ece"] > ECE_WARN
                                                              else ""), "warn" if s["ece"] > ECE_WARN else ""),
        _card(_fmt(s["n_sql_now"]), f"SQLs among {s['n_scored_now']:,} scored leads"),
        _card(f"{perf['precision']:.1%} / {perf['recall']:.1%}", "backtest precision / recall of SQL"),
        _card(f"{s['recommended_threshold']:.2f}", f"best threshold (current {s['current_threshold']:.2f})",
              "warn" if abs(s["recommended_threshold"] - s["current_threshold"]) > 1e-9 else ""),
        _card(f"{n_drift} / {n_warn}", f"features drifted / to watch (of {s['drift_n_features']})",
              "bad" if n_drift else ("warn" if n_warn else "")),
        _card(f"{s['score_psi']:.3f}", "score PSI, training → now", "bad" if s["score_drift"] else ""),
    ])
    cmp_ = r["comparison"]
    if "table" in cmp_:
        comparison = (f"<p class='lead'>Both models scored on the same held-out rows: current "
                      f"<b>{html.escape(cmp_['current'])}</b> vs previous <b>{html.escape(cmp_['previous'])}</b>. "
                      "Higher is better for AUC, lift and capture; lower for Brier, ECE and log loss.</p>"
                      + _table(cmp_["table"]))
    else:
        comparison = f"<p class='note'>{html.escape(cmp_['note'])}</p>"
    gl = r["gate_losses"]
    worst = gl.iloc[0] if len(gl) else None
    worst_text = (f"The <b>{html.escape(worst['gate'])}</b> gate threw away the most future winners: "
                  f"{int(worst['winners_failed']):,} of {perf['n_won']:,} ({worst['share_of_winners_failed']:.1%}), "
                  f"{int(worst['winners_failed_only_here']):,} of them failed no other gate." if worst is not None else "")
    flagged = drift[drift["flag"].isin([mon.DRIFT, mon.WARN])]
    rest = drift[~drift["flag"].isin([mon.DRIFT, mon.WARN])]
    score_cols = ["feature", "basis", "psi", "psi_excess", "reference_mean", "current_mean", "flag"]
    drift_cols = ["feature", "kind", "basis", "psi", "psi_excess", "ks_statistic", "ks_pvalue", "reference_mean",
                  "current_mean", "reference_missing", "current_missing", "neff_reference", "neff_current", "flag"]
    dkinds = {"reference_missing": "pct", "current_missing": "pct", "ks_pvalue": "p"}
    drift_html = (_table(flagged[drift_cols].assign(row=flagged["flag"]), dkinds, row_class="row") if len(flagged)
                  else "<p class='note'>No feature crossed the thresholds.</p>")
    drift_html += (f"<details><summary>{len(rest)} stable features ({int((rest['flag'] == mon.FEW_ROWS).sum())} "
                   f"not judged: few rows)</summary>{_table(rest[drift_cols], dkinds)}</details>" if len(rest) else "")
    t = r["thresholds"]
    f = r["figures"]
    rec_thr, rec_cap = r["best_threshold"], r["best_capacity"]
    cur = r["current_row"]
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>leadscore monitoring report</title>
<meta name="viewport" content="width=device-width, initial-scale=1"><style>{CSS}</style></head><body>
<header><h1>leadscore — monitoring report</h1><p>model {html.escape(s['model_version'])} · held-out snapshot
{html.escape(s['backtest_as_of'])} (outcomes known) · scored population as of {html.escape(s['scored_as_of'])} ·
generated {html.escape(s['generated_at'])}</p></header><main>
<div class="cards">{cards}</div>
{"".join(f"<p class='note'><b>Warning</b>: {html.escape(w)}</p>" for w in [calibration_warning(s["ece"])] if w)}

<section><h2>Model quality</h2><p class="lead">On the held-out period ({perf['n_leads']:,} leads,
{perf['n_won']:,} closed won within the horizon): ranking (ROC, precision-recall, gains), calibration
(reliability) and how the scores of winners and non-winners separate.</p><div class="grid">
{_img(f['roc'], 'ROC curve')}{_img(f['pr'], 'precision-recall curve')}{_img(f['reliability'], 'reliability diagram')}
{_img(f['gains'], 'gains and lift')}{_img(f['score_by_outcome'], 'score distribution by outcome')}</div></section>

<section><h2>Compared with the previous model version</h2>{comparison}</section>

<section><h2>SQL funnel</h2><p class="lead">Leads → each BANT gate survived in turn (a gate not failed:
passed or unknown) → every gate passed → SQL (also clears the probability threshold). Left: the population
scored now; right: the held-out snapshot replayed, with what closed.</p><div class="grid">
{_img(f['funnel_now'], 'SQL funnel now')}{_img(f['funnel_backtest'], 'SQL funnel backtest')}</div>
{_table(r['funnel_backtest'], {'share_of_leads': 'pct', 'share_of_winners': 'pct', 'conversion': 'pct'})}</section>

<section><h2>Conversion by tier and by gate</h2><p class="lead">Held-out snapshot. A good tier order shows
falling conversion from A to D; a useful gate shows lower conversion on <i>fail</i> than on <i>pass</i>.</p>
<div class="grid">{_img(f['tier'], 'conversion by tier')}{_img(f['gate'], 'conversion by gate')}</div><div class="grid">
<div>{_table(r['by_tier'].rename(columns={'group': 'tier'}), {'conversion': 'pct', 'share_of_winners': 'pct'})}</div>
<div>{_table(r['by_gate'], {'conversion': 'pct', 'share_of_winners': 'pct'})}</div></div></section>

<section><h2>Criteria backtest</h2><p class="lead">The SQL decision replayed on the held-out snapshot and
checked against what actually closed won. Value = won amounts of the SQLs minus
{_fmt(r['cost_per_sql'], 'money')} of sales effort per SQL (params <code>report.cost_per_sql</code>).</p>
<div class="cards">{_card(f"{perf['precision']:.1%}", 'precision: SQLs that closed won')}
{_card(f"{perf['recall']:.1%}", 'recall: winners that were SQLs')}
{_card(f"{perf['sql_conversion']:.1%} vs {perf['non_sql_conversion']:.1%}", 'conversion SQL vs non-SQL')}
{_card(_fmt(perf['n_sql']), 'SQLs in the backtest')}
{_card(f"{rec_thr['threshold']:.2f}", f"threshold maximising value ({_fmt(rec_thr['realised_value'], 'money')})")}
{_card(_fmt(int(rec_cap['capacity'])), f"capacity maximising value ({_fmt(rec_cap['realised_value'], 'money')})")}</div>
<p>At the current threshold {s['current_threshold']:.2f}, the gates and threshold pick {_fmt(cur.get('n_sql'))} SQLs worth
{_fmt(cur.get('realised_value'), 'money')} net; at {rec_thr['threshold']:.2f} they would pick {_fmt(int(rec_thr['n_sql']))}
worth {_fmt(rec_thr['realised_value'], 'money')} (precision {_fmt(rec_thr['precision'], 'pct')}, recall
{_fmt(rec_thr['recall'], 'pct')}). {worst_text}</p>
<div class="grid">{_img(f['threshold'], 'value vs threshold')}{_img(f['capacity'], 'value vs capacity')}</div>
<h3>Future winners thrown away, by gate</h3>{_table(gl, {'share_of_winners_failed': 'pct', 'conversion_when_failed': 'pct',
'conversion_when_not_failed': 'pct'})}</section>

<section><h2>What drives the score</h2><p class="lead">Gain importance of the booster, and SHAP contributions
on a random sample of held-out leads (each dot a lead; red = high feature value, blue = low, grey = category).</p>
<div class="grid">{_img(f['importance'], 'feature importance')}{_img(f['shap'], 'SHAP summary')}</div></section>

<section><h2>Drift: training period → scored population</h2><p class="lead">PSI over quantile bins of the
training period (missing values a bin of their own) and a two-sample KS test per feature and for the score, on
the leads the decision is for (not those already with sales). An alarm needs an effect that matters on a sample
large enough to see it. Flag <b>drift</b>: PSI beyond its expected sampling noise (<i>psi excess</i>) ≥
{t.psi_drift} or (KS p &lt; {t.ks_alpha} and KS statistic ≥ {t.ks_min_statistic}); <b>warn</b>: psi excess ≥
{t.psi_warn}; <b>few_rows</b>: fewer than {t.min_rows} effective rows on a side (the leads of one account count
as one cluster), not judged. Calendar columns (lead age, days since an event, counts to date) and the score grow
with the as-of date by construction: they are compared with the training snapshots' trend projected to the scored
date (basis <i>trend</i>; reference mean = the projection). Thresholds in params <code>report:</code>.</p>
<div class="grid">{_img(f['score_drift'], 'score drift')}<div>{_table(r['score_drift_row'][score_cols], dkinds)}</div></div>
{drift_html}</section>
<footer>leadscore · self-contained report (no external resources) · full drift table in drift.csv</footer>
</main></body></html>
"""


# ---------------------------------------------------------------------------------------------- stage


def run(features_path: Path, models_dir: Path, package_dir: Path | None, validated_dir: Path, scored_dir: Path,
        reports_dir: Path, p: ReportParams, score_p: ScoreConfig, horizon_days: int, top_fraction: float = 0.10) -> dict:
    """Compute everything, write report.html, monitoring.json, drift.csv and the DVC plot CSVs; return the summary.

    Raises DriftDetected after writing everything when `p.fail_on_drift` and some drift was flagged.
    """
    reports_dir = Path(reports_dir)
    table = pd.read_parquet(features_path)
    variant = features_variant(features_path)
    model, info = load_model(models_dir, package_dir)
    model = single_threaded(model)
    cols = list(model.feature_names_in_)
    missing = sorted(set(cols) - set(feature_columns(table)))
    if missing:
        raise ValueError(f"{features_path}: missing feature column(s) the model needs: {missing}")
    accounts = opportunities = None
    if variant != "flat":
        accounts = read_table(find_table(validated_dir, "accounts"))
        opportunities = read_table(find_table(validated_dir, "opportunities"))
    thresholds = mon.DriftThresholds(p.psi_warn, p.psi_drift, p.ks_alpha, p.ks_min_statistic, p.n_bins, p.min_rows)

    # Model quality on the held-out period.
    test = table[table["split"] == "test"].reset_index(drop=True)
    y = test["label"].fillna(0).astype(int).to_numpy()
    p_test = model.predict_proba(test[cols])[:, 1]
    quality = classification_metrics(y, p_test, top_fraction)
    gains = mon.gains_table(y, p_test)
    comparison = previous_model_comparison(info, test[cols], y, p_test, top_fraction)

    # Criteria backtest: the score stage replayed where outcomes are known.
    back = backtest_frame(table, model, info, accounts, opportunities, score_p, horizon_days, p_test)
    gates = [c for c in GATE_COLUMNS if c in back]
    perf = bt.decision_performance(back)
    losses = bt.gate_losses(back, gates)
    sweep = bt.threshold_sweep(back, gates, p.cost_per_sql)
    capacity = bt.capacity_sweep(back, gates, p.cost_per_sql)
    best_thr = bt.best_row(sweep, prefer_smaller="n_sql")
    best_cap = bt.best_row(capacity, prefer_smaller="capacity") or {"capacity": 0, "realised_value": 0.0}
    current = bt.threshold_sweep(back, gates, p.cost_per_sql, thresholds=[score_p.threshold]).iloc[0].to_dict()
    funnel_back = mon.sql_funnel(back, gates, label="label")
    by_tier = mon.conversion_by(back, "tier", order=[t for t in TIER_ORDER if t in set(back["tier"])]) \
        if "tier" in back else pd.DataFrame()
    by_gate = mon.conversion_by_gate(back, gates)

    # The population scored now: the score stage's table when present, else the score split re-scored.
    now_rows = rows_to_score(table, variant)[0].reset_index(drop=True)
    scored_path = Path(scored_dir) / "sql_leads.parquet"
    if scored_path.exists():
        scored_now = pd.read_parquet(scored_path)
        p_now = scored_now["p_convert"].to_numpy(dtype=float)
    else:
        scored_now, p_now = None, model.predict_proba(now_rows[cols])[:, 1]
    funnel_now = (mon.sql_funnel(scored_now, [c for c in GATE_COLUMNS if c in scored_now])
                  if scored_now is not None and "is_sql" in scored_now else None)

    # Drift between the training period and the population being scored (module docstring of models.monitoring).
    train_rows = table[table["split"] == "train"].reset_index(drop=True)
    drift, score_drift, p_train, p_drift = drift_tables(model, cols, train_rows, now_rows, scored_now, p_now,
                                                        thresholds, p.seed)
    p_now = np.round(p_now, 6)

    sample, contrib = shap_sample(model, test[cols], p.shap_sample, p.seed)
    importance = feature_importance(model, test[cols], p.shap_sample, p.seed)

    s = {
        "model_version": str(info.get("model_version", "?")),
        "backtest_as_of": ", ".join(str(pd.Timestamp(d).date()) for d in sorted(back["as_of"].unique())),
        "scored_as_of": str(pd.Timestamp(now_rows["as_of"].iloc[0]).date()) if len(now_rows) else "–",
        "generated_at": pd.Timestamp.now(tz="UTC").strftime("%Y-%m-%d %H:%M UTC"),
        "roc_auc": quality["roc_auc"], "ece": quality["ece"],
        "n_scored_now": int(len(p_now)),
        "n_sql_now": int(scored_now["is_sql"].sum()) if scored_now is not None and "is_sql" in scored_now else None,
        "current_threshold": float(score_p.threshold),
        "recommended_threshold": float(best_thr["threshold"]),
        "drift_n_features": int(len(drift)),
        "drift_n_flagged": int((drift["flag"] == mon.DRIFT).sum()),
        "drift_n_warn": int((drift["flag"] == mon.WARN).sum()),
        "drift_n_few_rows": int((drift["flag"] == mon.FEW_ROWS).sum()),
        "score_psi": float(score_drift["psi"].iloc[0]),
        "score_drift": bool(score_drift["flag"].iloc[0] == mon.DRIFT),
    }
    figures = {
        "roc": plot_roc(y, p_test, comparison.get("p_previous")),
        "pr": plot_pr(y, p_test, comparison.get("p_previous")),
        "reliability": plot_reliability(y, p_test),
        "gains": plot_gains(gains),
        "score_by_outcome": plot_score_by_outcome(y, p_test),
        "funnel_now": plot_funnel(funnel_now, "SQL funnel — scored now") if funnel_now is not None
        else plot_funnel(funnel_back, "SQL funnel — held-out snapshot"),
        "funnel_backtest": plot_funnel(funnel_back, "SQL funnel — held-out snapshot"),
        "tier": plot_conversion_by_tier(by_tier),
        "gate": plot_conversion_by_gate(by_gate),
        "threshold": plot_threshold(sweep, score_p.threshold, best_thr["threshold"]),
        "capacity": plot_capacity(capacity, int(best_cap["capacity"])),
        "importance": plot_importance(importance),
        "shap": plot_shap(sample, contrib),
        "score_drift": plot_score_drift(p_train, p_drift, s["score_psi"]),
    }
    page = render_html({
        "summary": s, "performance": perf, "drift": drift, "comparison": comparison, "gate_losses": losses,
        "thresholds": thresholds, "figures": figures, "best_threshold": best_thr, "best_capacity": best_cap,
        "current_row": current, "funnel_backtest": funnel_back, "by_tier": by_tier, "by_gate": by_gate,
        "cost_per_sql": p.cost_per_sql, "score_drift_row": score_drift,
    })

    metrics = {
        "drift_n_features": s["drift_n_features"], "drift_n_flagged": s["drift_n_flagged"],
        "drift_n_warn": s["drift_n_warn"], "drift_n_few_rows": s["drift_n_few_rows"],
        "score_psi": s["score_psi"], "score_drift": s["score_drift"],
        "backtest_precision": perf["precision"], "backtest_recall": perf["recall"],
        "backtest_n_sql": perf["n_sql"], "backtest_n_won": perf["n_won"],
        "backtest_sql_conversion": perf["sql_conversion"], "backtest_non_sql_conversion": perf["non_sql_conversion"],
        "current_threshold": s["current_threshold"], "current_realised_value": float(current["realised_value"]),
        "recommended_threshold": s["recommended_threshold"],
        "recommended_threshold_realised_value": float(best_thr["realised_value"]),
        "recommended_capacity": int(best_cap["capacity"]),
        "recommended_capacity_realised_value": float(best_cap["realised_value"]),
        "worst_gate_winners_failed": int(losses["winners_failed"].iloc[0]) if len(losses) else 0,
        "previous_model_roc_auc_change": float(comparison["table"].set_index("metric").loc["roc_auc", "change"])
        if "table" in comparison else None,
    }
    # The weekly page: this week's hand-over per rep and what changed since the previous scoring.
    handover, changes = read_weekly(scored_dir, validated_dir, scored_now)
    page = with_weekly_sections(page, weekly_sections(handover, changes))
    metrics["handover_n_listed"] = int(len(handover))
    if changes is not None:
        metrics.update({f"changes_{k}": int(n) for k, n in zip(changes["by_kind"]["change"],
                                                                changes["by_kind"]["leads"], strict=True)})
    write_json({k: v for k, v in metrics.items() if v is not None}, reports_dir / METRICS_FILE)
    write_csv(pd.concat([score_drift, drift], ignore_index=True), reports_dir / "drift.csv")
    write_csv(sweep, reports_dir / "plots" / "threshold_sweep.csv")
    write_csv(capacity, reports_dir / "plots" / "capacity.csv")
    page = with_picklist_section(page, read_validation(reports_dir))
    page = with_history_section(page, reports_dir)
    out = write_atomic(reports_dir / REPORT_FILE, lambda tmp: tmp.write_text(page, encoding="utf-8"))
    worst = losses["gate"].iloc[0] if len(losses) else "–"
    log(f"report {out}: {s['drift_n_flagged']} drifted / {s['drift_n_warn']} to watch of {s['drift_n_features']} "
        f"features, score PSI {s['score_psi']:.3f}; backtest precision {perf['precision']:.1%} recall "
        f"{perf['recall']:.1%}; best threshold {s['recommended_threshold']:.2f} "
        f"(current {score_p.threshold:.2f}); most winners lost at gate {worst}")
    summary = {**metrics, "report": str(out), "worst_gate": worst}
    if p.fail_on_drift and (s["drift_n_flagged"] or s["score_drift"]):
        flagged = drift.loc[drift["flag"] == mon.DRIFT, "feature"].tolist() + (["score"] if s["score_drift"] else [])
        raise DriftDetected(f"drift flagged in {len(flagged)} column(s): {', '.join(flagged)} (report: {out})")
    return summary


# ---------------------------------------------------------------------------------------------- browser check

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_chromium() -> str | None:
    import shutil

    return next((path for name in CHROMIUM_NAMES if (path := shutil.which(name))), None)


def screenshot(html_path: Path, png_path: Path, width: int = 1280, height: int = 2300, out_width: int = 900,
               colors: int = 96) -> Path:
    """Render the report in headless Chromium (a real browser) and save a small PNG of its top.

    The PNG is downscaled to `out_width` and palette-quantised so it stays small enough to commit.
    """
    import subprocess
    import tempfile

    from PIL import Image

    exe = find_chromium()
    if exe is None:
        raise FileNotFoundError("no Chromium found (tried " + ", ".join(CHROMIUM_NAMES)
                                + "); on Debian: apt-get install -y chromium")
    html_path = Path(html_path).resolve()
    if not html_path.exists():
        raise FileNotFoundError(f"{html_path}: report not found; run `leadscore report` first")
    with tempfile.TemporaryDirectory(prefix="leadscore-chromium-") as tmp:
        raw = Path(tmp) / "shot.png"
        cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
               f"--user-data-dir={Path(tmp) / 'profile'}", f"--window-size={width},{height}",
               f"--screenshot={raw}", html_path.as_uri()]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=180, check=False)
        if done.returncode != 0 or not raw.exists():
            raise RuntimeError(f"chromium failed ({done.returncode}): {done.stderr[-800:]}")
        image = Image.open(raw).convert("RGB")
        if out_width and image.width > out_width:
            image = image.resize((out_width, round(image.height * out_width / image.width)), Image.LANCZOS)
        small = image.quantize(colors=colors, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
        return write_atomic(png_path, lambda t: small.save(t, format="PNG", optimize=True))


# ---------------------------------------------------------------------------------------------- score history trend
HISTORY_DIR = "score_history"  # the score stage's history (pipeline/history.py), in the same reports folder


def history_trend(entries: list[dict]) -> pd.DataFrame:
    """One row per kept scoring: date, model, leads scored, SQLs, handed over, with sales, p_convert quartiles."""
    rows = []
    for e in entries:
        q = e.get("p_convert_quantiles") or {}
        counts = e.get("status_counts") or {}
        rows.append({"as_of": e.get("as_of", ""), "scored_at": str(e.get("scored_at", ""))[:16],
                     "model_version": e.get("model_version", ""), "leads": int(e.get("n_scored", 0)),
                     "sql": int(e.get("n_sql", 0)), "handed_over": int(e.get("n_assigned", 0)),
                     "with_sales": int(counts.get(WITH_SALES, 0)),
                     "p10": q.get("0.1"), "median_p": q.get("0.5"), "p90": q.get("0.9")})
    return pd.DataFrame(rows)


def plot_history(trend: pd.DataFrame) -> str:
    fig, ax = _figure(9.5, 3.2)  # the report's style
    fig.clf()
    ax, ax2 = fig.subplots(1, 2)
    x = np.arange(len(trend))
    labels = [f"{a}\n{m.split('/')[-1] if m else ''}" for a, m in zip(trend["as_of"], trend["model_version"],
                                                                       strict=True)]
    ax.plot(x, trend["sql"], "o-", label="SQLs")
    ax.plot(x, trend["handed_over"], "s--", label="handed over")
    ax.set(title="SQLs per scoring", xticks=x)
    ax.set_xticklabels(labels, fontsize=7)
    ax.legend(fontsize=8)
    ax2.fill_between(x, trend["p10"].astype(float), trend["p90"].astype(float), alpha=0.25, label="p10-p90")
    ax2.plot(x, trend["median_p"].astype(float), "o-", label="median")
    ax2.set(title="p_convert of the leads decided on", xticks=x)
    ax2.set_xticklabels(labels, fontsize=7)
    ax2.legend(fontsize=8)
    fig.tight_layout()
    return _png(fig)


def history_section(entries: list[dict]) -> str:
    """The trend of SQL counts and score distribution over the kept score history ("" without history)."""
    if not entries:
        return ""
    trend = history_trend(entries)
    plot = _img(plot_history(trend), "SQLs and score distribution per scoring") if len(trend) > 1 else ""
    return ("<section><h2>Week by week</h2><p class='lead'>Every distinct scoring kept in the score history "
            f"(<code>{HISTORY_DIR}/</code>; a rerun of the same export adds none): leads scored, SQLs, leads handed "
            "over and already with sales, and the spread of p_convert over the leads the decision is for "
            f"(labels: scoring date and model version).</p>{plot}{_table(trend)}</section>")


def with_history_section(page: str, reports_dir: Path) -> str:
    path = Path(reports_dir) / HISTORY_DIR / "index.json"
    section = history_section(list(read_json(path)) if path.exists() else [])
    anchor = "<footer>" if "<footer>" in page else "</main>"
    return page.replace(anchor, section + "\n" + anchor, 1) if section else page

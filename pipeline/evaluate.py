"""Stage `evaluate`: held-out metrics with bootstrap CIs for the model and its baselines, the oracle ceiling on
demo data, and plots (PNG for people, CSV for `dvc plots`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from models.evaluate import TOP_FRACTIONS, classification_metrics, full_report, lift_at, reliability_table
from pipeline import tracking
from pipeline.io import write_atomic, write_csv, write_json
from pipeline.params import EvaluateParams
from pipeline.progress import log
from pipeline.train import load_baselines, load_model

PLOTS = ("roc", "pr", "calibration", "gains", "importance")


def oracle_scores(truth_dir: Path, raw_dir: Path, test: pd.DataFrame, horizon_days: int) -> np.ndarray | None:
    """The demo generator's Bayes-optimal probability for the held-out rows, or None outside demo data."""
    truth_path = Path(truth_dir) / "truth.parquet"
    if not truth_path.exists():
        return None
    from features.demo_crm import oracle_probability
    from pipeline.io import find_table, read_table

    truth = pd.read_parquet(truth_path)
    opps = read_table(find_table(raw_dir, "opportunities"))
    opps = opps[opps["lead_id"].isin(truth["lead_id"])]
    as_of = pd.Timestamp(test["as_of"].iloc[0])
    oracle = oracle_probability(truth, opps, as_of, horizon_days)
    return oracle.reindex(test["lead_id"]).to_numpy(dtype=float)


def held_out(table: pd.DataFrame) -> pd.DataFrame:
    return table[table["split"] == "test"].reset_index(drop=True)


def flat_metrics(report: dict[str, dict[str, float]], prefix: str = "") -> dict[str, float]:
    """{name: value, name_ci_low: .., name_ci_high: ..} from a full_report."""
    out = {}
    for name, v in report.items():
        out[f"{prefix}{name}"] = v["value"]
        out[f"{prefix}{name}_ci_low"] = v["ci_low"]
        out[f"{prefix}{name}_ci_high"] = v["ci_high"]
    return out


def run(features_path: Path, models_dir: Path, reports_dir: Path, p: EvaluateParams, horizon_days: int,
        truth_dir: Path | None = None, raw_dir: Path | None = None) -> dict:
    table = pd.read_parquet(features_path)
    test = held_out(table)
    model, info = load_model(models_dir)
    y = test["label"].astype(int).to_numpy()
    p_hat = model.predict_proba(test[list(model.feature_names_in_)])[:, 1]
    fractions = tuple(p.top_fractions) or TOP_FRACTIONS
    report = full_report(y, p_hat, fractions, p.capacity_k, n_boot=p.n_bootstrap)
    metrics = classification_metrics(y, p_hat, p.top_fraction)  # the foundation's keys, kept for readers
    metrics.update(flat_metrics(report))

    baselines = load_baselines(models_dir)
    for name, base in baselines.items():
        p_base = base.predict_proba(test[list(base.feature_names_in_)])[:, 1]
        base_report = full_report(y, p_base, fractions, p.capacity_k, n_boot=p.n_bootstrap)
        metrics.update({f"baseline_{name}_{k}": v for k, v in flat_metrics(base_report).items()
                        if not k.endswith(("_ci_low", "_ci_high")) or k.startswith("roc_auc")})
    if baselines:
        metrics["beats_baselines"] = bool(all(metrics["roc_auc"] > metrics[f"baseline_{n}_roc_auc"] for n in baselines))

    if truth_dir is not None:
        oracle = oracle_scores(truth_dir, raw_dir, test, horizon_days)
        if oracle is not None:
            known = ~np.isnan(oracle)
            metrics["oracle_roc_auc"] = float(roc_auc_score(y[known], oracle[known]))
            metrics["oracle_gap"] = metrics["oracle_roc_auc"] - metrics["roc_auc"]
            metrics["oracle_coverage"] = float(known.mean())
    reports_dir = Path(reports_dir)
    write_json(metrics, reports_dir / "metrics.json")
    importance = model.feature_importance() if hasattr(model, "feature_importance") else None
    curves = write_curves(y, p_hat, reports_dir, importance, fractions)
    log(f"held-out AUC {metrics['roc_auc']:.4f} [{metrics['roc_auc_ci_low']:.4f}, {metrics['roc_auc_ci_high']:.4f}], "
        f"PR AUC {metrics['pr_auc']:.4f}, Brier {metrics['brier']:.4f}, ECE {metrics['ece']:.4f}"
        + (f", oracle AUC {metrics['oracle_roc_auc']:.4f}" if "oracle_roc_auc" in metrics else "")
        + "".join(f"; {n} baseline AUC {metrics[f'baseline_{n}_roc_auc']:.4f}" for n in baselines))
    log_to_mlflow(info, metrics, [reports_dir / "metrics.json", *curves])
    return metrics


def gains_table(y: np.ndarray, p_hat: np.ndarray, n_points: int = 50) -> pd.DataFrame:
    """Cumulative gains and lift: share of leads contacted (best first) vs share of conversions captured."""
    rows = []
    for fraction in np.linspace(1 / n_points, 1.0, n_points):
        lift, capture = lift_at(y, p_hat, float(fraction))
        rows.append({"fraction": round(float(fraction), 4), "capture": capture, "lift": lift})
    return pd.DataFrame(rows)


def write_curves(y: np.ndarray, p_hat: np.ndarray, reports_dir: Path, importance: pd.Series | None = None,
                 fractions: tuple[float, ...] = TOP_FRACTIONS) -> list[Path]:
    """ROC, PR, calibration, gains/lift and importance as CSV (DVC plots) and PNGs (one per plot + a panel)."""
    from sklearn.metrics import precision_recall_curve, roc_curve

    fpr, tpr, _ = roc_curve(y, p_hat)
    prec, rec, _ = precision_recall_curve(y, p_hat)
    data = {
        "roc": pd.DataFrame({"fpr": fpr, "tpr": tpr}),
        "pr": pd.DataFrame({"recall": rec, "precision": prec}),
        "calibration": reliability_table(y, p_hat),
        "gains": gains_table(y, p_hat),
    }
    if importance is not None:
        share = importance / importance.sum() if importance.sum() > 0 else importance
        data["importance"] = pd.DataFrame({"feature": share.index, "gain_share": share.to_numpy()})
    plots_dir = reports_dir / "plots"
    paths = [write_csv(frame, plots_dir / f"{name}.csv") for name, frame in data.items()]

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def draw(name: str, ax) -> None:
        d = data[name]
        if name == "roc":
            ax.plot(d["fpr"], d["tpr"])
            ax.plot([0, 1], [0, 1], "--", color="grey")
            ax.set(title="ROC (held-out period)", xlabel="false positive rate", ylabel="true positive rate")
        elif name == "pr":
            ax.plot(d["recall"], d["precision"])
            ax.axhline(np.mean(y), ls="--", color="grey")
            ax.set(title="Precision-recall", xlabel="recall", ylabel="precision")
        elif name == "calibration":
            ax.plot(d["predicted"], d["observed"], "o-")
            top = max(d["predicted"].max(), d["observed"].max()) * 1.05
            ax.plot([0, top], [0, top], "--", color="grey")
            ax.set(title="Calibration (equal-count bins)", xlabel="mean predicted p", ylabel="observed rate")
        elif name == "gains":
            ax.plot(d["fraction"], d["capture"], label="model")
            ax.plot([0, 1], [0, 1], "--", color="grey", label="random")
            for f in fractions:
                ax.axvline(f, color="lightgrey", lw=0.8)
            ax.set(title="Cumulative gains", xlabel="share of leads, best first", ylabel="share of conversions")
            ax.legend(loc="lower right")
        else:
            top = d.head(20).iloc[::-1]
            ax.barh(top["feature"], top["gain_share"])
            ax.set(title="Feature importance (gain share, top 20)", xlabel="share of total gain")
            ax.tick_params(axis="y", labelsize=7)

    names = [n for n in PLOTS if n in data]
    for name in names:
        fig, ax = plt.subplots(figsize=(6, 4.5) if name != "importance" else (7, 6))
        draw(name, ax)
        fig.tight_layout()
        paths.append(write_atomic(plots_dir / f"{name}.png", lambda tmp, fig=fig: fig.savefig(tmp, format="png", dpi=90)))
        plt.close(fig)
    fig, axes = plt.subplots(1, len(names), figsize=(5 * len(names), 4.5))
    for name, ax in zip(names, np.atleast_1d(axes), strict=True):
        draw(name, ax)
    fig.tight_layout()
    paths.append(write_atomic(reports_dir / "evaluation.png", lambda tmp: fig.savefig(tmp, format="png", dpi=80)))
    plt.close(fig)
    return paths


def log_to_mlflow(info: dict, metrics: dict, artifacts: list[Path]) -> None:
    """Held-out metrics and plots onto the training run (by id: independent of the active experiment)."""
    import time

    tracking.configure()
    from mlflow import MlflowClient
    from mlflow.entities import Metric

    client = MlflowClient()
    now = int(time.time() * 1000)
    batch = [Metric(f"test_{k}", float(v), now, 0) for k, v in metrics.items()
             if isinstance(v, int | float) and not isinstance(v, bool) and np.isfinite(v)]
    for i in range(0, len(batch), 500):
        client.log_batch(info["run_id"], metrics=batch[i:i + 500])
    for path in artifacts:
        client.log_artifact(info["run_id"], str(path), artifact_path="evaluation")

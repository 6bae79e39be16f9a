"""Stage `evaluate`: held-out metrics of the model (and, on demo data, the oracle ceiling) with plots."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from features.build import feature_columns
from models.evaluate import bootstrap_ci, classification_metrics, reliability_table
from pipeline import tracking
from pipeline.io import write_atomic, write_csv, write_json
from pipeline.params import EvaluateParams
from pipeline.progress import log
from pipeline.train import load_model


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


def run(features_path: Path, models_dir: Path, reports_dir: Path, p: EvaluateParams, horizon_days: int,
        truth_dir: Path | None = None, raw_dir: Path | None = None) -> dict:
    table = pd.read_parquet(features_path)
    test = table[table["split"] == "test"].reset_index(drop=True)
    model, info = load_model(models_dir)
    y = test["label"].astype(int).to_numpy()
    p_hat = model.predict_proba(test[feature_columns(table)])[:, 1]
    metrics = classification_metrics(y, p_hat, p.top_fraction)
    lo, hi = bootstrap_ci(y, p_hat, roc_auc_score, n_boot=p.n_bootstrap)
    metrics["roc_auc_ci_low"], metrics["roc_auc_ci_high"] = lo, hi
    if truth_dir is not None:
        oracle = oracle_scores(truth_dir, raw_dir, test, horizon_days)
        if oracle is not None:
            known = ~np.isnan(oracle)
            metrics["oracle_roc_auc"] = float(roc_auc_score(y[known], oracle[known]))
            metrics["oracle_gap"] = metrics["oracle_roc_auc"] - metrics["roc_auc"]
            metrics["oracle_coverage"] = float(known.mean())
    reports_dir = Path(reports_dir)
    write_json(metrics, reports_dir / "metrics.json")
    curves = write_curves(y, p_hat, reports_dir)
    log(f"held-out AUC {metrics['roc_auc']:.4f} [{lo:.4f}, {hi:.4f}], PR AUC {metrics['pr_auc']:.4f}, "
        f"Brier {metrics['brier']:.4f}, ECE {metrics['ece']:.4f}"
        + (f", oracle AUC {metrics['oracle_roc_auc']:.4f}" if "oracle_roc_auc" in metrics else ""))
    log_to_mlflow(info, metrics, curves)
    return metrics


def write_curves(y: np.ndarray, p_hat: np.ndarray, reports_dir: Path) -> list[Path]:
    """ROC, PR and calibration data as CSV (DVC plots) and one PNG for people."""
    from sklearn.metrics import precision_recall_curve, roc_curve

    fpr, tpr, _ = roc_curve(y, p_hat)
    prec, rec, _ = precision_recall_curve(y, p_hat)
    roc = pd.DataFrame({"fpr": fpr, "tpr": tpr})
    pr = pd.DataFrame({"recall": rec, "precision": prec})
    rel = reliability_table(y, p_hat)
    paths = [write_csv(roc, reports_dir / "plots" / "roc.csv"), write_csv(pr, reports_dir / "plots" / "pr.csv"),
             write_csv(rel, reports_dir / "plots" / "calibration.csv")]

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    axes[0].plot(fpr, tpr)
    axes[0].plot([0, 1], [0, 1], "--", color="grey")
    axes[0].set(title="ROC (held-out period)", xlabel="false positive rate", ylabel="true positive rate")
    axes[1].plot(rec, prec)
    axes[1].axhline(y.mean(), ls="--", color="grey")
    axes[1].set(title="Precision-recall", xlabel="recall", ylabel="precision")
    axes[2].plot(rel["predicted"], rel["observed"], "o-")
    top = max(rel["predicted"].max(), rel["observed"].max()) * 1.05
    axes[2].plot([0, top], [0, top], "--", color="grey")
    axes[2].set(title="Calibration", xlabel="mean predicted p", ylabel="observed conversion rate")
    fig.tight_layout()
    png = reports_dir / "evaluation.png"
    write_atomic(png, lambda tmp: fig.savefig(tmp, format="png", dpi=90))
    plt.close(fig)
    return [*paths, png]


def log_to_mlflow(info: dict, metrics: dict, artifacts: list[Path]) -> None:
    tracking.configure()
    import mlflow

    with mlflow.start_run(run_id=info["run_id"]):
        mlflow.log_metrics({f"test_{k}": float(v) for k, v in metrics.items()
                            if isinstance(v, int | float) and np.isfinite(v)})
        for path in artifacts:
            mlflow.log_artifact(str(path), artifact_path="evaluation")

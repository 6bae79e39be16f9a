"""`leadscore compare A B`: two model versions on the same held-out rows — metrics with CIs, paired AUC test.

A and B are MLflow run ids, `runs:/<id>/model`, `models:/<name>/<version>` or `models:/<name>@<alias>`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from models.evaluate import TOP_FRACTIONS, full_report, paired_auc_test
from pipeline import tracking
from pipeline.io import read_rows

COMPARED = ("roc_auc", "pr_auc", "brier", "log_loss", "ece", "lift_top10", "capture_top10")
LOWER_IS_BETTER = {"brier", "log_loss", "ece"}


class ModelRefError(ValueError):
    """A model reference that MLflow cannot resolve or load."""


def model_uri(ref: str) -> str:
    """The MLflow URI of a reference: URIs pass through, a bare run id means that run's logged `model`."""
    ref = ref.strip()
    if ref.startswith(("models:/", "runs:/")):
        return ref
    if not ref or "/" in ref or ":" in ref:
        raise ModelRefError(f"{ref!r}: not a run id, runs:/<id>/model, models:/<name>/<version> or models:/<name>@<alias>")
    return f"runs:/{ref}/model"


def load_classifier(ref: str):
    """The fitted classifier behind a reference (through the one registry loader, `tracking.load_registered`)."""
    uri = model_uri(ref)
    try:
        return tracking.load_registered(uri)[0]
    except tracking.ModelLoadError as exc:
        raise ModelRefError(f"cannot load model {ref!r} ({uri}): {exc}") from None


def describe_version(ref: str) -> str:
    """`name/version` for a registry reference, else the reference itself."""
    uri = model_uri(ref)
    if not uri.startswith("models:/"):
        return uri
    from mlflow import MlflowClient

    name, sep, alias = uri.removeprefix("models:/").partition("@")
    if sep:
        try:
            return f"{name}/{MlflowClient().get_model_version_by_alias(name, alias).version} (@{alias})"
        except Exception:  # noqa: BLE001
            return uri
    return uri.removeprefix("models:/")


@dataclass(frozen=True)
class Comparison:
    a: str
    b: str
    n_rows: int
    n_positive: int
    table: pd.DataFrame  # metric, a, a_ci_low, a_ci_high, b, b_ci_low, b_ci_high, diff (b - a), better
    paired_auc: dict  # auc_a, auc_b, auc_diff, ci_low, ci_high, p_value, n_boot

    def as_dict(self) -> dict:
        return {"a": self.a, "b": self.b, "n_rows": self.n_rows, "n_positive": self.n_positive,
                "metrics": self.table.to_dict(orient="records"), "paired_auc": self.paired_auc}


def held_out_rows(features_path: Path) -> pd.DataFrame:
    test = read_rows(features_path, "split", ["test"]).reset_index(drop=True)
    if test.empty or test["label"].nunique() < 2:
        raise ValueError(f"{features_path}: the held-out (split == 'test') rows need both outcomes to compare models")
    return test


def predictions(model, rows: pd.DataFrame, ref: str) -> np.ndarray:
    cols = [str(c) for c in model.feature_names_in_]
    missing = [c for c in cols if c not in rows.columns]
    if missing:
        raise ValueError(f"model {ref!r} needs feature column(s) the held-out rows lack: {missing}")
    return model.predict_proba(rows[cols])[:, 1]


def compare_predictions(y: np.ndarray, p_a: np.ndarray, p_b: np.ndarray, a: str = "A", b: str = "B",
                        n_boot: int = 1000, capacity_k: int | None = None, seed: int = 0) -> Comparison:
    """Metrics with bootstrap CIs for both score vectors on the same rows, and the paired AUC test."""
    rep_a = full_report(y, p_a, TOP_FRACTIONS, capacity_k, n_boot=min(n_boot, 200), seed=seed)
    rep_b = full_report(y, p_b, TOP_FRACTIONS, capacity_k, n_boot=min(n_boot, 200), seed=seed)
    names = [m for m in COMPARED if m in rep_a] + [m for m in rep_a if m.startswith("precision_at_")]
    rows = []
    for m in names:
        va, vb = rep_a[m]["value"], rep_b[m]["value"]
        better = "b" if (vb < va if m in LOWER_IS_BETTER else vb > va) else ("a" if va != vb else "=")
        rows.append({"metric": m, "a": va, "a_ci_low": rep_a[m]["ci_low"], "a_ci_high": rep_a[m]["ci_high"],
                     "b": vb, "b_ci_low": rep_b[m]["ci_low"], "b_ci_high": rep_b[m]["ci_high"], "diff": vb - va,
                     "better": better})
    paired = paired_auc_test(y, p_a, p_b, n_boot=n_boot, seed=seed)
    return Comparison(a, b, int(len(y)), int(np.sum(y)), pd.DataFrame(rows), paired)


def compare_versions(ref_a: str, ref_b: str, features_path: Path, n_boot: int = 1000, capacity_k: int | None = None) -> Comparison:
    rows = held_out_rows(features_path)
    y = rows["label"].astype(int).to_numpy()
    p_a = predictions(load_classifier(ref_a), rows, ref_a)
    p_b = predictions(load_classifier(ref_b), rows, ref_b)
    return compare_predictions(y, p_a, p_b, describe_version(ref_a), describe_version(ref_b), n_boot, capacity_k)


def render(c: Comparison) -> str:
    """A plain-text table (what the CLI prints)."""
    lines = [f"A = {c.a}", f"B = {c.b}",
             f"held-out rows: {c.n_rows:,} ({c.n_positive:,} conversions); 95% bootstrap intervals", "",
             f"{'metric':<18}{'A':>10}  {'[95% CI]':<20}{'B':>10}  {'[95% CI]':<20}{'B - A':>9}  better"]
    for r in c.table.itertuples():
        lines.append(f"{r.metric:<18}{r.a:>10.4f}  [{r.a_ci_low:.4f}, {r.a_ci_high:.4f}]  {r.b:>10.4f}  "
                     f"[{r.b_ci_low:.4f}, {r.b_ci_high:.4f}]  {r.diff:>+9.4f}  {r.better}")
    t = c.paired_auc
    lines += ["", f"paired bootstrap ({t['n_boot']} resamples of the same rows): AUC(B) - AUC(A) = "
                  f"{t['auc_diff']:+.4f} [{t['ci_low']:+.4f}, {t['ci_high']:+.4f}], p = {t['p_value']:.3g}"]
    return "\n".join(lines)

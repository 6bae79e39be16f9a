"""Stage `train`: fit the calibrated conversion model on earlier snapshots, log it to MLflow."""

from __future__ import annotations

import time
from pathlib import Path

import joblib
import numpy as np
import pandas as pd

from features.build import feature_columns
from models.conversion import BoosterConfig, ConversionModel
from models.evaluate import classification_metrics
from pipeline import tracking
from pipeline.io import read_json, write_atomic, write_json
from pipeline.params import TrainParams
from pipeline.progress import log

MODEL_FILE = "model.joblib"
MODEL_INFO = "model_info.json"


def split_train_validation(table: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Train snapshots minus the latest one, and the latest one as the (later) validation period."""
    train = table[table["split"] == "train"]
    dates = sorted(train["as_of"].unique())
    if len(dates) < 2:
        return train, train.iloc[0:0]
    return train[train["as_of"] < dates[-1]], train[train["as_of"] == dates[-1]]


def signature_frame(X: pd.DataFrame) -> pd.DataFrame:
    """Categoricals as plain strings: what a caller of the served model sends."""
    X = X.copy()
    for col in X.columns:
        if isinstance(X[col].dtype, pd.CategoricalDtype):
            X[col] = X[col].astype("object").where(X[col].notna(), None)
    return X


def run(features_path: Path, out_dir: Path, reports_dir: Path, p: TrainParams, source_tag: str = "demo") -> dict:
    table = pd.read_parquet(features_path)
    fit_part, val_part = split_train_validation(table)
    cols = [c for c in feature_columns(table) if c not in set(p.exclude_features)]
    config = BoosterConfig(
        learning_rate=p.learning_rate, num_leaves=p.num_leaves, min_child_samples=p.min_child_samples,
        n_estimators=p.n_estimators, early_stopping_rounds=p.early_stopping_rounds, subsample=p.subsample,
        colsample_bytree=p.colsample_bytree, reg_lambda=p.reg_lambda, n_jobs=p.n_jobs, seed=p.seed,
    )
    start = time.perf_counter()
    model = ConversionModel(config, calibration=p.calibration).fit(
        fit_part[cols], fit_part["label"].astype(int), val_part[cols], val_part["label"].astype(int)
    )
    fit_seconds = time.perf_counter() - start
    metrics = {"fit_seconds": round(fit_seconds, 2), "best_iteration": model.best_iteration_,
               "n_train": int(len(fit_part)), "n_validation": int(len(val_part))}
    if len(val_part) and val_part["label"].nunique() == 2:
        val = classification_metrics(val_part["label"].astype(int), model.predict_proba(val_part[cols])[:, 1])
        metrics.update({f"validation_{k}": v for k, v in val.items() if k in ("roc_auc", "pr_auc", "brier", "ece")})
    log(f"trained on {len(fit_part):,} rows in {fit_seconds:.1f}s, {model.best_iteration_} trees, "
        f"validation AUC {metrics.get('validation_roc_auc', float('nan')):.4f}")

    out_dir = Path(out_dir)
    write_atomic(out_dir / MODEL_FILE, lambda tmp: joblib.dump(model, tmp))
    info = log_to_mlflow(model, fit_part[cols], metrics, p, source_tag, features_path)
    write_json(info, out_dir / MODEL_INFO)
    write_json(metrics, Path(reports_dir) / "train_metrics.json")
    return metrics


def log_to_mlflow(model: ConversionModel, X: pd.DataFrame, metrics: dict, p: TrainParams, source_tag: str,
                  features_path: Path) -> dict:
    tracking.configure()
    import mlflow
    from mlflow.models import infer_signature

    mlflow.set_experiment(p.experiment)
    example = signature_frame(X.head(5))
    with mlflow.start_run(run_name=f"train-{source_tag}") as run:
        mlflow.set_tags({"git_commit": tracking.git_commit(), "source": source_tag, "stage": "train",
                         "features_path": str(features_path)})
        mlflow.log_params({f"train.{k}": v for k, v in vars(p).items()})
        mlflow.log_metrics({k: float(v) for k, v in metrics.items() if isinstance(v, int | float) and np.isfinite(v)})
        signature = infer_signature(example, model.predict_proba(X.head(5))[:, 1])
        logged = mlflow.sklearn.log_model(
            sk_model=model, name="model", signature=signature, input_example=example,
            pip_requirements=tracking.model_requirements(), code_paths=tracking.model_code_paths(),
            registered_model_name=p.registered_model, skops_trusted_types=tracking.TRUSTED_MODEL_TYPES,
        )
        version = getattr(logged, "registered_model_version", None)
    return {"run_id": run.info.run_id, "experiment": p.experiment, "registered_model": p.registered_model,
            "model_version": f"{p.registered_model}/{version}" if version else run.info.run_id,
            "model_uri": logged.model_uri}


def load_model(models_dir: Path) -> tuple[ConversionModel, dict]:
    models_dir = Path(models_dir)
    return joblib.load(models_dir / MODEL_FILE), read_json(models_dir / MODEL_INFO)

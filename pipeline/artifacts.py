"""The fitted model on disk: the one save and load, used by every stage and driver."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import joblib

from features.schema import SNAPSHOTS
from pipeline.io import read_json, write_atomic, write_json

MODEL_FILE = "model.joblib"
BASELINES_FILE = "baselines.joblib"
TRAIN_METRICS = "train_metrics.json"
MODEL_INFO = "model_info.json"  # in the package folder: MLflow run, registered version, model URI


def features_variant(features_path: Path) -> str:
    """The pipeline variant a feature table was built for (`snapshots.json` beside it; snapshots without one)."""
    path = Path(features_path).parent / "snapshots.json"
    return read_json(path).get("variant", SNAPSHOTS) if path.exists() else SNAPSHOTS


def save_model(models_dir: Path, model: Any, baselines: dict[str, Any], metrics: dict[str, Any]) -> None:
    """The fitted model, its baselines and what training chose, each written atomically."""
    models_dir = Path(models_dir)
    write_atomic(models_dir / MODEL_FILE, lambda tmp: joblib.dump(model, tmp))
    write_atomic(models_dir / BASELINES_FILE, lambda tmp: joblib.dump(baselines, tmp))
    write_json(metrics, models_dir / TRAIN_METRICS)


def load_model(models_dir: Path, package_dir: Path | None = None) -> tuple[Any, dict[str, Any]]:
    """(fitted model, model info): the info of the packaged version when `package_dir` holds one, else a local
    description (no MLflow run)."""
    models_dir = Path(models_dir)
    path = models_dir / MODEL_FILE
    if not path.exists():
        raise FileNotFoundError(f"{path}: no trained model; run the train stage first (`dvc repro` or `leadscore run`)")
    info_path = Path(package_dir) / MODEL_INFO if package_dir is not None else None
    info = read_json(info_path) if info_path is not None and info_path.exists() else \
        {"run_id": "", "model_version": f"local:{models_dir}", "model_uri": str(path)}
    return joblib.load(path), info


def load_baselines(models_dir: Path) -> dict[str, Any]:
    path = Path(models_dir) / BASELINES_FILE
    return joblib.load(path) if path.exists() else {}


def load_train_metrics(models_dir: Path) -> dict[str, Any]:
    path = Path(models_dir) / TRAIN_METRICS
    return read_json(path) if path.exists() else {}


def write_model_info(package_dir: Path, info: dict[str, Any]) -> Path:
    return write_json(info, Path(package_dir) / MODEL_INFO)

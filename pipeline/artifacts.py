"""The fitted model on disk: the one save and load, used by every stage and driver.

A model file is code: unpickling it runs whatever it says. So `save_model` records the SHA-256 of every file it
writes (``artefact_sha256`` in `train_metrics.json`, copied into `model_info.json` by the package stage) and every
load checks the file against that record *before* unpickling it; a file without a record or with another hash
is refused (:class:`ModelIntegrityError`). See docs/model.md, "Models are trusted code".
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import joblib

from features.schema import SNAPSHOTS
from pipeline.io import read_json, write_atomic, write_json

MODEL_FILE = "model.joblib"
BASELINES_FILE = "baselines.joblib"
TRAIN_METRICS = "train_metrics.json"
MODEL_INFO = "model_info.json"  # in the package folder: MLflow run, registered version, model URI
HASHES = "artefact_sha256"  # key in train_metrics.json / model_info.json: file name -> SHA-256 (hex)
# key in the models folder's train_metrics.json: {"started": .., "finished": ..} (epoch seconds) of the train stage,
# so the MLflow run the package stage logs spans the training (its duration is the work's, in one process or two)
TRAINING_TIME = "training_time"


class ModelIntegrityError(ValueError):
    """A model file whose SHA-256 does not match its record (or has none): refused before it is unpickled."""


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def check_sha256(path: Path, expected: str | None, record: str) -> None:
    """Refuse `path` unless its SHA-256 is `expected` (the hash `record` holds for it). Reads, never unpickles."""
    if not expected:
        raise ModelIntegrityError(
            f"{path}: no SHA-256 recorded for this model file in {record}; refusing to load it (a model file is "
            "code). Retrain (`dvc repro train`) or re-package it so that its hash is recorded")
    actual = sha256_file(path)
    if actual != expected:
        raise ModelIntegrityError(
            f"{path}: SHA-256 {actual[:16]}... does not match the hash recorded in {record} ({expected[:16]}...); "
            "refusing to load it: the file was changed or replaced after it was recorded (a model file is code)")


def features_variant(features_path: Path) -> str:
    """The pipeline variant a feature table was built for (`snapshots.json` beside it; snapshots without one)."""
    path = Path(features_path).parent / "snapshots.json"
    return read_json(path).get("variant", SNAPSHOTS) if path.exists() else SNAPSHOTS


def save_model(models_dir: Path, model: Any, baselines: dict[str, Any], metrics: dict[str, Any]) -> None:
    """The fitted model, its baselines and what training chose (with the SHA-256 of both files), each written
    atomically. `metrics` itself is not changed."""
    models_dir = Path(models_dir)
    write_atomic(models_dir / MODEL_FILE, lambda tmp: joblib.dump(model, tmp))
    write_atomic(models_dir / BASELINES_FILE, lambda tmp: joblib.dump(baselines, tmp))
    hashes = {name: sha256_file(models_dir / name) for name in (MODEL_FILE, BASELINES_FILE)}
    write_json({**metrics, HASHES: hashes}, models_dir / TRAIN_METRICS)


def _check_recorded(models_dir: Path, name: str, package_dir: Path | None = None) -> Path:
    """`models_dir/name` after its hash was checked against train_metrics.json (and model_info.json if it records one)."""
    path = Path(models_dir) / name
    check_sha256(path, load_train_metrics(models_dir).get(HASHES, {}).get(name), str(Path(models_dir) / TRAIN_METRICS))
    info_path = Path(package_dir) / MODEL_INFO if package_dir is not None else None
    if info_path is not None and info_path.exists():
        packaged = read_json(info_path).get(HASHES, {}).get(name)
        if packaged:  # the package stage recorded the model it bundled: the info must describe this very file
            check_sha256(path, packaged, str(info_path))
    return path


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
    return joblib.load(_check_recorded(models_dir, MODEL_FILE, package_dir)), info


def load_baselines(models_dir: Path) -> dict[str, Any]:
    path = Path(models_dir) / BASELINES_FILE
    return joblib.load(_check_recorded(models_dir, BASELINES_FILE)) if path.exists() else {}


def load_train_metrics(models_dir: Path) -> dict[str, Any]:
    path = Path(models_dir) / TRAIN_METRICS
    return read_json(path) if path.exists() else {}


def write_model_info(package_dir: Path, info: dict[str, Any]) -> Path:
    return write_json(info, Path(package_dir) / MODEL_INFO)

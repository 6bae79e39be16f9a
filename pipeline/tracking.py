"""MLflow at the edge: the tracking store, run tagging and model logging. Called by stages, never at import."""

from __future__ import annotations

import os
import subprocess
from importlib import metadata
from pathlib import Path

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
# MLflow 3 stores sklearn models with skops, which loads only types it is told to trust: ours and LightGBM's.
TRUSTED_MODEL_TYPES = [
    "collections.OrderedDict",
    "lightgbm.basic.Booster",
    "lightgbm.sklearn.LGBMClassifier",
    "models.conversion.BoosterConfig",
    "models.conversion.ConversionModel",
    "sklearn.isotonic.IsotonicRegression",
    "sklearn.linear_model._logistic.LogisticRegression",
]


def configure() -> str:
    """Point MLflow at the project's store (env MLFLOW_TRACKING_URI overrides) with telemetry off."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    import mlflow

    uri = os.environ.get("MLFLOW_TRACKING_URI", DEFAULT_TRACKING_URI)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return uri


def git_commit(cwd: Path | None = None) -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() or "unknown"


def model_requirements() -> list[str]:
    """Pinned runtime requirements of the logged model (explicit: inference is slow and records test tools)."""
    packages = ("lightgbm", "scikit-learn", "pandas", "numpy", "pyarrow", "mlflow")
    return [f"{name}=={metadata.version(name)}" for name in packages]


def model_code_paths() -> list[str]:
    """The packages a logged model needs to unpickle, wherever the caller's working directory is."""
    import features
    import models

    return [str(Path(models.__file__).parent), str(Path(features.__file__).parent)]


def model_signature(example, output):
    """MLflow's signature of the served model from an input example and its output.

    The integer outputs (rank, score) are never missing, so MLflow's hint about integer columns that cannot hold
    missing values does not apply to them and is silenced here (the inputs are all doubles or strings).
    """
    import warnings

    from mlflow.models import infer_signature

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer column")
        return infer_signature(example, output)

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


CHAMPION, CHALLENGER = "champion", "challenger"


def loggable_params(sections: dict[str, object]) -> dict[str, str]:
    """`section.field` -> value (as text, cut to MLflow's limit) for every field of every given config; a nested
    config's fields as `section.field.sub` (featurize.icp.industries)."""
    import dataclasses

    out = {}
    for name, config in sections.items():
        fields = {f.name: getattr(config, f.name) for f in dataclasses.fields(config)} \
            if dataclasses.is_dataclass(config) else dict(config)
        for key, value in fields.items():
            if dataclasses.is_dataclass(value):
                out.update(loggable_params({f"{name}.{key}": value}))
            else:
                out[f"{name}.{key}"] = str(value)[:6000]
    return out


def log_model_run(bundle, example, metrics: dict, configs: dict[str, object], tags: dict[str, str], *,
                  experiment: str, run_name: str, registered_model: str | None = None,
                  artifacts: dict[str, dict] | None = None, artifact_location: str | None = None) -> dict:
    """The one MLflow logging of a trained model: a run in `experiment` with `tags`, every field of `configs` as
    params (``train.*``, ``featurize.*``, ``score.*``, ...), the numeric `metrics`, JSON `artifacts`, and the served
    pyfunc `bundle` (registered as `registered_model` when given: the first version becomes ``@champion``, later
    ones ``@challenger`` until `leadscore promote` moves the alias). A new experiment keeps its artifacts at
    `artifact_location` when given (else the store's default). Returns what `model_info.json` records.
    """
    import math

    configure()
    import mlflow
    from mlflow import MlflowClient

    if artifact_location and mlflow.get_experiment_by_name(experiment) is None:
        mlflow.create_experiment(experiment, artifact_location=artifact_location)
    mlflow.set_experiment(experiment)
    signature = model_signature(example, bundle.score(example))
    with mlflow.start_run(run_name=run_name) as run:
        mlflow.set_tags({"git_commit": git_commit(Path(__file__).parent), **tags})
        mlflow.log_params(loggable_params(configs))
        mlflow.log_metrics({k: float(v) for k, v in metrics.items()
                            if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)})
        for name, payload in (artifacts or {}).items():
            mlflow.log_dict(payload, name)
        logged = mlflow.pyfunc.log_model(
            name="model", python_model=bundle, signature=signature, input_example=example,
            pip_requirements=model_requirements(), code_paths=model_code_paths(),
            registered_model_name=registered_model,
        )
        version = getattr(logged, "registered_model_version", None)
    alias = None
    if registered_model and version is not None:
        client = MlflowClient()
        try:
            client.get_model_version_by_alias(registered_model, CHAMPION)
            alias = CHALLENGER
        except mlflow.exceptions.MlflowException:
            alias = CHAMPION  # the first registered version
        client.set_registered_model_alias(registered_model, alias, str(version))
    return {"run_id": run.info.run_id, "experiment": experiment, "registered_model": registered_model,
            "model_version": f"{registered_model}/{version}" if version else run.info.run_id,
            "model_uri": logged.model_uri, "alias": alias, "tracking_uri": mlflow.get_tracking_uri()}


def log_test_metrics(run_id: str, metrics: dict, artifacts: list[Path]) -> None:
    """Held-out metrics (``test_*``) and files onto an existing run, by id (independent of the active experiment)."""
    import math
    import time

    configure()
    from mlflow import MlflowClient
    from mlflow.entities import Metric

    client = MlflowClient()
    now = int(time.time() * 1000)
    batch = [Metric(f"test_{k}", float(v), now, 0) for k, v in metrics.items()
             if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)]
    for i in range(0, len(batch), 500):
        client.log_batch(run_id, metrics=batch[i:i + 500])
    for path in artifacts:
        client.log_artifact(run_id, str(path), artifact_path="evaluation")


class ModelLoadError(ValueError):
    """A model URI cannot be loaded (unknown run, version or alias; unreadable artifact)."""


def load_registered(model_uri: str):
    """(fitted model, the bundled policy as ScoreConfig overrides, model version, run id) from an MLflow model URI.

    The one registry loader. A pyfunc bundle (models/pyfunc.py) brings its own gates and decision policy, so batch
    scoring agrees with the served model; a plain sklearn-flavoured model brings only the classifier.
    """
    configure()
    import mlflow

    overrides: dict = {}
    try:
        loaded = mlflow.pyfunc.load_model(model_uri)
    except Exception as exc:  # noqa: BLE001 - MLflow raises many kinds; the message is what the user needs
        raise ModelLoadError(f"cannot load model {model_uri!r}: {exc}") from None
    try:
        bundle = loaded.unwrap_python_model()
    except Exception:  # noqa: BLE001 - not a python_model pyfunc (e.g. the sklearn flavour)
        bundle = None
    if bundle is not None and hasattr(bundle, "gate_config") and hasattr(bundle, "model"):
        model = bundle.model
        overrides = {"gates": dict(bundle.gate_config), "threshold": bundle.policy.threshold,
                     "unknown_policy": bundle.policy.unknown_policy, "tiers": dict(bundle.policy.tiers)}
    else:
        try:
            model = mlflow.sklearn.load_model(model_uri, skops_trusted_types=TRUSTED_MODEL_TYPES)
        except TypeError:  # an MLflow without the skops argument
            model = mlflow.sklearn.load_model(model_uri)
    version = model_uri
    if model_uri.startswith("models:/"):
        try:
            from mlflow.tracking import MlflowClient

            name, _, ref = model_uri.removeprefix("models:/").partition("@")
            if ref:
                version = f"{name}/{MlflowClient().get_model_version_by_alias(name, ref).version}"
            else:
                version = model_uri.removeprefix("models:/")
        except Exception:  # noqa: BLE001 - an unregistered URI keeps its own name as the version
            pass
    return model, overrides, version, loaded.metadata.run_id or ""

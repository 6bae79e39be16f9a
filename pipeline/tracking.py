"""MLflow at the edge: the tracking store, run tagging and model logging. Called by stages, never at import."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from importlib import metadata
from pathlib import Path

from pipeline.artifacts import ModelIntegrityError, sha256_file
from pipeline.secrets import hide_password

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
# A logged model is code (its python_model.pkl is a pickle, its code/ folder is imported), so every file of it is
# hashed when it is logged: the manifest (path -> SHA-256) is a run artifact, its own SHA-256 the tag SHA256_TAG on
# the run and on the registered version; `load_registered` checks the files against them before loading.
SHA256_TAG = "leadscore.sha256"
MODEL_MANIFEST = "model_sha256.json"
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
    digest = record_model_hashes(logged.model_uri, run.info.run_id, registered_model, version)
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
            "model_uri": logged.model_uri, "alias": alias, "tracking_uri": hide_password(mlflow.get_tracking_uri()),
            "model_sha256": digest}


# Written by MLflow into a registered model's folder when it is downloaded (name and version, read as YAML, never
# executed): not part of the logged model, so not in its manifest.
_DOWNLOAD_ONLY = frozenset({"registered_model_meta"})


def file_manifest(folder: Path) -> dict[str, str]:
    """Relative path (posix) -> SHA-256 of every file under `folder` (but MLflow's download-only metadata)."""
    folder = Path(folder)
    paths = (p for p in sorted(folder.rglob("*")) if p.is_file())
    return {p.relative_to(folder).as_posix(): sha256_file(p) for p in paths
            if p.relative_to(folder).as_posix() not in _DOWNLOAD_ONLY}


def manifest_digest(manifest: dict[str, str]) -> str:
    return hashlib.sha256(json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def record_model_hashes(model_uri: str, run_id: str, registered_model: str | None = None,
                        version: str | int | None = None) -> str:
    """Hash every file of the logged model at `model_uri` and record it: the manifest as the artifact
    `model_sha256.json` of run `run_id`, its SHA-256 as tag `leadscore.sha256` on the run and on the registered
    version (when given). Returns that SHA-256. Call it right after logging any model that should be loadable."""
    import tempfile

    import mlflow
    from mlflow import MlflowClient

    with tempfile.TemporaryDirectory(prefix="leadscore-hash-") as tmp:
        manifest = file_manifest(Path(mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=tmp)))
    digest = manifest_digest(manifest)
    client = MlflowClient()
    client.log_dict(run_id, manifest, MODEL_MANIFEST)
    client.set_tag(run_id, SHA256_TAG, digest)
    if registered_model and version is not None:
        client.set_model_version_tag(registered_model, str(version), SHA256_TAG, digest)
    return digest


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
    local = verified_model_dir(model_uri)  # raises before anything of the model is unpickled or imported
    try:
        loaded = mlflow.pyfunc.load_model(local)
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
            model = mlflow.sklearn.load_model(local, skops_trusted_types=TRUSTED_MODEL_TYPES)
        except TypeError:  # an MLflow without the skops argument
            model = mlflow.sklearn.load_model(local)
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


def _recorded_digests(model_uri: str, local: Path) -> tuple[dict[str, str], str | None]:
    """({where: recorded SHA-256 of the manifest}, run id) for the model at `model_uri`, downloaded to `local`.

    The record comes from the tracking store, never from the model's own files: the registered version's tag and
    its run's tag for ``models:/<name>/<version>`` and ``models:/<name>@<alias>``, the run's tag for ``runs:/``;
    for a folder or a logged-model id the run named in its MLmodel (a forged run id finds no matching record).
    """
    import yaml
    from mlflow import MlflowClient

    client = MlflowClient()
    records: dict[str, str] = {}
    run_id: str | None = None
    if model_uri.startswith("models:/"):
        ref = model_uri.removeprefix("models:/")
        name, _, alias = ref.partition("@")
        try:
            if alias:
                mv = client.get_model_version_by_alias(name, alias)
            elif "/" in name:
                mv = client.get_model_version(*name.split("/")[:2])
            else:
                mv = None  # models:/m-<id>: a logged model, not a registered version
        except Exception:  # noqa: BLE001 - the download already worked: this is a logged-model id
            mv = None
        if mv is not None:
            run_id = mv.run_id
            if mv.tags.get(SHA256_TAG):
                records[f"the tag {SHA256_TAG} of registered version {mv.name}/{mv.version}"] = mv.tags[SHA256_TAG]
    elif model_uri.startswith("runs:/"):
        run_id = model_uri.removeprefix("runs:/").split("/")[0]
    if not run_id:
        mlmodel = local / "MLmodel"
        run_id = (yaml.safe_load(mlmodel.read_text()) or {}).get("run_id") if mlmodel.exists() else None
    if run_id:
        try:
            tag = client.get_run(run_id).data.tags.get(SHA256_TAG)
        except Exception:  # noqa: BLE001 - an unknown run has no record
            tag = None
        if tag:
            records[f"the tag {SHA256_TAG} of run {run_id}"] = tag
    return records, run_id


def verified_model_dir(model_uri: str) -> str:
    """A local copy of the model at `model_uri` whose every file matches the SHA-256 recorded when it was logged.

    Raises ModelIntegrityError (naming the file) for a changed, added or missing file, or a model with no record;
    ModelLoadError when the model cannot be found. Only reads bytes: nothing of the model is unpickled or imported.
    The copy lives in a temporary folder removed at exit.
    """
    import atexit
    import shutil
    import tempfile

    import mlflow

    tmp = tempfile.mkdtemp(prefix="leadscore-model-")
    atexit.register(shutil.rmtree, tmp, ignore_errors=True)
    try:
        local = Path(mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=f"{tmp}/model"))
    except Exception as exc:  # noqa: BLE001 - MLflow raises many kinds; the message is what the user needs
        raise ModelLoadError(f"cannot load model {model_uri!r}: {exc}") from None
    records, run_id = _recorded_digests(model_uri, local)
    if not records or not run_id:
        raise ModelIntegrityError(
            f"model {model_uri!r} ({local}): no SHA-256 recorded for it in the tracking store (tag {SHA256_TAG}); "
            "refusing to load it (a model is code). Log it with `leadscore package` (or "
            "tracking.record_model_hashes) so that its files are hashed")
    if len(set(records.values())) > 1:
        raise ModelIntegrityError(f"model {model_uri!r}: the recorded hashes disagree ({records}); refusing to load it")
    where, expected = next(iter(records.items()))
    try:
        manifest_path = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=MODEL_MANIFEST,
                                                            dst_path=f"{tmp}/record")
        manifest = json.loads(Path(manifest_path).read_text())
    except Exception:  # noqa: BLE001 - a missing or unreadable manifest is as good as no record
        manifest = None
    if not isinstance(manifest, dict) or manifest_digest(manifest) != expected:
        raise ModelIntegrityError(
            f"model {model_uri!r}: the file manifest {MODEL_MANIFEST} of run {run_id} does not match the hash in "
            f"{where}; refusing to load the model")
    actual = file_manifest(local)
    for name in sorted(set(actual) | set(manifest)):
        if name not in actual:
            raise ModelIntegrityError(f"{local / name}: recorded in {MODEL_MANIFEST} but missing; refusing to load "
                                      f"model {model_uri!r}")
        if actual[name] != manifest.get(name):
            state = "is not in the record" if name not in manifest else "does not match the recorded hash"
            raise ModelIntegrityError(
                f"{local / name}: SHA-256 {actual[name][:16]}... {state} ({MODEL_MANIFEST} of run {run_id}, checked "
                f"against {where}); refusing to load model {model_uri!r}: a model file is code and this one was "
                "changed or replaced after the model was logged")
    return str(local)

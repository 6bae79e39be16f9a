"""MLflow at the edge: the tracking store, run tagging and model logging. Called by stages, never at import."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import subprocess
import time
import warnings
from contextlib import contextmanager
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
    """Point MLflow at the project's store (env MLFLOW_TRACKING_URI overrides) with telemetry off.

    A sqlite store given by a relative path is pinned to its absolute path here, so that working in the store's
    folder (`in_store`) does not move the store."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    import mlflow

    uri = os.environ.get("MLFLOW_TRACKING_URI", DEFAULT_TRACKING_URI)
    folder = store_folder(uri)
    if folder is not None and not Path(uri.removeprefix(SQLITE_PREFIX)).is_absolute():
        uri = SQLITE_PREFIX + os.path.abspath(uri.removeprefix(SQLITE_PREFIX))  # the query (if any) kept
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return uri


def _import_mlflow() -> None:
    import mlflow  # noqa: F401
    import mlflow.store.model_registry.sqlalchemy_store  # noqa: F401
    import mlflow.store.tracking.sqlalchemy_store  # noqa: F401
    from mlflow import MlflowClient  # noqa: F401


def _open_store() -> None:
    """Open the tracking store (MLflow keeps it per URI: its engine, its schema check) with one small query, so
    that a run logged later waits for the logging alone."""
    configure()
    from mlflow import MlflowClient

    with in_store():
        MlflowClient().search_experiments(max_results=1)


class StageRunLogger:
    """`log_stage_run` done by a forked helper process that imports MLflow (4-5 s of imports) and opens the
    tracking store as soon as it is created, beside the caller's work and without holding the caller's
    interpreter; the caller hands it the run's arguments at the end (`log`) and waits only for the logging itself.
    Where MLflow is imported already (e.g. `leadscore run`) or where it does not fork (not Linux, or fork refused),
    `log` calls `log_stage_run` in this process.

    The helper is forked and ordered as the SQL table's writer is (`pipeline.export.SqlWriter`: a multiprocessing
    fork context and a pipe): a caller that never calls `log` (an error; `close` by the context manager) or dies
    closes the pipe, and the helper exits without logging anything."""

    def __init__(self) -> None:
        import sys

        self._process = None
        if "mlflow" in sys.modules or not sys.platform.startswith("linux"):  # where fork is safe (as SqlWriter)
            return
        import multiprocessing

        ctx = multiprocessing.get_context("fork")
        self._orders, child_end = ctx.Pipe()
        try:
            with warnings.catch_warnings():  # Python 3.12+ warns on forking a threaded process
                warnings.simplefilter("ignore", DeprecationWarning)
                self._process = ctx.Process(target=_logging_child, args=(child_end, self._orders),
                                            name="mlflow-logger", daemon=True)
                self._process.start()
        except OSError:  # no fork (e.g. strict memory overcommit): the run is logged in this process
            self._process = None
            self._orders.close()
        finally:
            child_end.close()

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def log(self, stage: str, train_run_id: str, **kwargs) -> str:
        """`log_stage_run(stage, train_run_id, **kwargs)`, by the helper when there is one; its error is raised
        here as a RuntimeError with the helper's message."""
        if self._process is None:
            return log_stage_run(stage, train_run_id, **kwargs)
        try:
            self._orders.send({"stage": stage, "train_run_id": train_run_id, **kwargs})
            kind, value = self._orders.recv()
        except (EOFError, OSError):
            kind, value = "error", "the MLflow logging process ended without logging the run"
        finally:
            self.close()
        if kind != "ok":
            raise RuntimeError(value)
        return value

    def close(self) -> None:
        """Tell the helper to exit without logging (when `log` was not called) and reap it."""
        if self._process is None:
            return
        self._orders.close()
        self._process.join()
        self._process = None

    def __enter__(self) -> StageRunLogger:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _logging_child(orders, parents_end) -> None:
    """The forked helper of `StageRunLogger`: import MLflow, wait for the run's arguments, log it, answer."""
    parents_end.close()
    with contextlib.suppress(Exception):  # what fails here fails again, with its message, in log_stage_run
        _import_mlflow()
        _open_store()
    try:
        order = orders.recv()
    except EOFError:  # closed unused, or the caller died: nothing to log
        return
    try:
        answer = ("ok", log_stage_run(**order))
    except BaseException as exc:  # noqa: BLE001 - reported to the caller, which warns
        answer = ("error", f"{type(exc).__name__}: {exc}")
    with contextlib.suppress(OSError):
        orders.send(answer)


# --------------------------------------------------------------------------------- a store that can be moved
# MLflow resolves a relative local artifact location to an absolute path when it creates an experiment (from the
# working directory), and derives every run's, logged model's and registered version's location from it: a moved
# folder then points at the old place. A relative location stored as such is kept relative all the way down and
# resolved at read time against the working directory. So each experiment leadscore creates in a sqlite store gets
# the location `mlruns/<experiment id>` (relative), and leadscore does its MLflow work from the store's folder
# (`in_store`); `make ui` starts the UI there. Moving the folder (mlflow.db with mlruns/) then keeps every model.
SQLITE_PREFIX = "sqlite:///"
ARTIFACT_FOLDER = "mlruns"
# The MLflow UI's kind of an experiment (MLflow 3): "custom_model_development" is its model-training view (runs,
# metrics, models), "genai_development" the GenAI view (traces). See docs/mlflow.md.
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
MODEL_TRAINING_KIND = "custom_model_development"


def store_file(uri: str | None = None) -> Path | None:
    """The file of a sqlite store (None for another kind of store or an in-memory one)."""
    uri = uri or os.environ.get("MLFLOW_TRACKING_URI", DEFAULT_TRACKING_URI)
    path = uri.removeprefix(SQLITE_PREFIX).split("?")[0]
    if not uri.startswith(SQLITE_PREFIX) or path in ("", ":memory:"):
        return None
    return Path(os.path.abspath(path))


def store_folder(uri: str | None = None) -> Path | None:
    """The folder of a sqlite store file (None for another kind of store or an in-memory one)."""
    file = store_file(uri)
    return None if file is None else file.parent


@contextmanager
def in_store():
    """Work in the sqlite store's folder, where its relative artifact locations resolve (elsewhere: no change)."""
    import mlflow

    folder = store_folder(mlflow.get_tracking_uri())
    before = os.getcwd()
    if folder is not None and folder.is_dir():
        os.chdir(folder)
    try:
        yield folder
    finally:
        os.chdir(before)


def ensure_experiment(name: str) -> str:
    """The id of experiment `name`, created when missing with a location relative to a sqlite store's folder;
    tagged for the MLflow UI's model-training view either way."""
    import sqlite3

    import mlflow
    from mlflow import MlflowClient

    client = MlflowClient()
    found = client.get_experiment_by_name(name)
    if found is None:
        experiment_id = client.create_experiment(name, tags={EXPERIMENT_KIND_TAG: MODEL_TRAINING_KIND})
        file = store_file(mlflow.get_tracking_uri())
        if file is not None:
            # MLflow has no API to store a relative location (create_experiment makes it absolute): set it on the
            # new, still empty experiment's row.
            with sqlite3.connect(file) as db:
                db.execute("UPDATE experiments SET artifact_location = ? WHERE experiment_id = ?",
                           (f"{ARTIFACT_FOLDER}/{experiment_id}", int(experiment_id)))
            db.close()
        return experiment_id
    if found.tags.get(EXPERIMENT_KIND_TAG) != MODEL_TRAINING_KIND:
        client.set_experiment_tag(found.experiment_id, EXPERIMENT_KIND_TAG, MODEL_TRAINING_KIND)
    return found.experiment_id


def run_name(stage: str, profile: str | None, data_date: str | None) -> str:
    """What a run did, as the MLflow UI lists it: ``train demo 2026-10-01``."""
    return " ".join(part for part in (stage, profile, data_date) if part)


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


def finite_metrics(metrics: dict) -> dict[str, float]:
    """The numeric, finite values of `metrics` (flags, texts, lists and NaN are not MLflow metrics)."""
    import math

    return {k: float(v) for k, v in metrics.items()
            if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)}


def table_dataset(sample, n_rows: int, source: str, name: str, digest: str, targets: str | None = None):
    """A table as an MLflow dataset input without reading it whole: the schema from `sample` (MLflow infers a
    pandas schema value by value, minutes on a training table), the profile from the table's `n_rows`, and the
    table's own content `digest` (at most 36 characters, MLflow's limit)."""
    import mlflow
    from mlflow.data.pandas_dataset import PandasDataset

    class TableDataset(PandasDataset):
        @property
        def profile(self) -> dict[str, int]:
            return {"num_rows": int(n_rows), "num_elements": int(n_rows) * int(self.df.shape[1])}

    with warnings.catch_warnings():
        # a local path is a LocalArtifactDatasetSource whichever way MLflow reads it; the integer-column hint is
        # about serving signatures, not a dataset's description
        warnings.filterwarnings("ignore", message="The specified dataset source can be interpreted")
        warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer column")
        resolved = mlflow.data.from_pandas(sample.head(0), source=source, targets=targets, name=name, digest=digest)
        dataset = TableDataset(df=sample, source=resolved.source, targets=targets, name=name, digest=digest[:36])
        _ = dataset.schema  # inferred (and cached) here, under the filters above
    return dataset


def log_model_run(bundle, example, metrics: dict, configs: dict[str, object], tags: dict[str, str], *,
                  experiment: str, run_name: str, registered_model: str | None = None,
                  artifacts: dict[str, dict] | None = None, start_time: float | None = None, dataset=None,
                  version_tags: dict[str, str] | None = None, description: str | None = None) -> dict:
    """The one MLflow logging of a trained model: a run named `run_name` in `experiment` (`ensure_experiment`) with
    `tags`, every field of `configs` as params (``train.*``, ``featurize.*``, ``score.*``, ``input.*``, ...), the
    numeric `metrics`, JSON `artifacts`, the training table `dataset` (`table_dataset`) as its input, and the served
    pyfunc `bundle` (registered as `registered_model` when given: the first version becomes ``@champion``, later
    ones ``@challenger`` until `leadscore promote` moves the alias; the version gets `version_tags` and
    `description`). The run starts at `start_time` (epoch seconds; the training's start, so its duration is the
    work's) else now, and ends when the model is logged. Returns what `model_info.json` records.
    """
    configure()
    import mlflow
    from mlflow import MlflowClient

    signature = model_signature(example, bundle.score(example))
    with in_store():
        client = MlflowClient()
        experiment_id = ensure_experiment(experiment)
        mlflow.set_experiment(experiment_id=experiment_id)
        created = client.create_run(
            experiment_id, run_name=run_name, tags={"git_commit": git_commit(Path(__file__).parent), **tags},
            start_time=None if start_time is None else int(start_time * 1000))
        with mlflow.start_run(run_id=created.info.run_id) as run:
            mlflow.log_params(loggable_params(configs))
            mlflow.log_metrics(finite_metrics(metrics))
            for name, payload in (artifacts or {}).items():
                mlflow.log_dict(payload, name)
            if dataset is not None:
                mlflow.log_input(dataset, context="training")
            logged = mlflow.pyfunc.log_model(
                name="model", python_model=bundle, signature=signature, input_example=example,
                pip_requirements=model_requirements(), code_paths=model_code_paths(),
                registered_model_name=registered_model,
            )
            version = getattr(logged, "registered_model_version", None)
        digest = record_model_hashes(logged.model_uri, run.info.run_id, registered_model, version)
        alias = None
        if registered_model and version is not None:
            try:
                client.get_model_version_by_alias(registered_model, CHAMPION)
                alias = CHALLENGER
            except mlflow.exceptions.MlflowException:
                alias = CHAMPION  # the first registered version
            client.set_registered_model_alias(registered_model, alias, str(version))
            for key, value in (version_tags or {}).items():
                client.set_model_version_tag(registered_model, str(version), key, str(value))
            if description:
                client.update_model_version(registered_model, str(version), description=description)
            if not client.get_registered_model(registered_model).description:
                client.update_registered_model(registered_model, description=REGISTERED_MODEL_DESCRIPTION)
    return {"run_id": run.info.run_id, "experiment": experiment, "registered_model": registered_model,
            "model_version": f"{registered_model}/{version}" if version else run.info.run_id,
            "model_uri": logged.model_uri, "alias": alias, "tracking_uri": hide_password(mlflow.get_tracking_uri()),
            "model_sha256": digest}


def earlier_run_of(experiment: str, tag: str, value: str) -> str | None:
    """The id of a run of `experiment` whose tag `tag` is `value` (the same model file logged before), else None."""
    configure()
    from mlflow import MlflowClient

    client = MlflowClient()
    found = client.get_experiment_by_name(experiment)
    if found is None or not value:
        return None
    runs = client.search_runs([found.experiment_id], f"tags.`{tag}` = '{value}'", max_results=1)
    return runs[0].info.run_id if runs else None


REGISTERED_MODEL_DESCRIPTION = (
    "leadscore's served lead-scoring model: the calibrated conversion probability of each open lead, its BANT gate "
    "verdicts and the SQL decision policy in one pyfunc. @champion is what reps get; @challenger is scored in shadow "
    "until `leadscore promote` moves the alias.")
TRAIN_RUN_TAG = "leadscore.train_run_id"  # on an evaluate or score run: the training run of the model it used
STAGE_TAG = "leadscore.stage"


def log_stage_run(stage: str, train_run_id: str, *, start_time: float, params: dict[str, str],
                  metrics: dict, tags: dict[str, str] | None = None, artifacts: list[Path] | None = None,
                  data_date: str | None = None) -> str:
    """A finished run of `stage` (evaluate, score) nested under the training run of the model it used: in that
    run's experiment, with tag ``mlflow.parentRunId`` (the MLflow UI lists it under the training run) and
    ``leadscore.train_run_id``, named ``<stage> <profile> <data date>``, from `start_time` (epoch seconds) to now.
    Returns its run id. One process or many (`dvc repro` runs each stage apart): the link is the training run's id,
    which every stage reads from ``model_info.json`` or from the registered version it scores with."""
    configure()
    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param

    artifacts = [Path(a).resolve() for a in artifacts or []]  # before in_store changes the working directory
    with in_store():
        client = MlflowClient()
        parent = client.get_run(train_run_id)
        profile = parent.data.tags.get("profile") or parent.data.tags.get("source")
        run = client.create_run(
            parent.info.experiment_id, start_time=int(start_time * 1000), run_name=run_name(stage, profile, data_date),
            tags={"mlflow.parentRunId": train_run_id, TRAIN_RUN_TAG: train_run_id, STAGE_TAG: stage,
                  "git_commit": git_commit(Path(__file__).parent), **({"profile": profile} if profile else {}),
                  **(tags or {})})
        run_id = run.info.run_id
        now = int(time.time() * 1000)
        batch = [Metric(k, v, now, 0) for k, v in finite_metrics(metrics).items()]
        plist = [Param(k, str(v)[:6000]) for k, v in params.items()]
        for i in range(0, max(len(batch), len(plist)), 100):
            client.log_batch(run_id, metrics=batch[i:i + 100], params=plist[i:i + 100])
        for path in artifacts:
            client.log_artifact(run_id, str(path), artifact_path=stage)
        client.set_terminated(run_id, "FINISHED")
    return run_id


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

    with in_store(), tempfile.TemporaryDirectory(prefix="leadscore-hash-") as tmp:
        manifest = file_manifest(Path(mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=tmp)))
        digest = manifest_digest(manifest)
        client = MlflowClient()
        client.log_dict(run_id, manifest, MODEL_MANIFEST)
        client.set_tag(run_id, SHA256_TAG, digest)
        if registered_model and version is not None:
            client.set_model_version_tag(registered_model, str(version), SHA256_TAG, digest)
    return digest


def log_test_metrics(run_id: str, metrics: dict, artifacts: list[Path], model_version: str | None = None,
                     version_tags: dict[str, str] | None = None) -> None:
    """Held-out metrics (``test_*``) and files onto an existing run, by id (independent of the active experiment);
    `version_tags` onto the registered `model_version` (``name/version``) when given."""
    configure()
    from mlflow import MlflowClient
    from mlflow.entities import Metric

    artifacts = [Path(a).resolve() for a in artifacts]  # before in_store changes the working directory
    with in_store():
        client = MlflowClient()
        now = int(time.time() * 1000)
        batch = [Metric(f"test_{k}", v, now, 0) for k, v in finite_metrics(metrics).items()]
        for i in range(0, len(batch), 500):
            client.log_batch(run_id, metrics=batch[i:i + 500])
        for path in artifacts:
            client.log_artifact(run_id, str(path), artifact_path="evaluation")
        name, _, version = (model_version or "").partition("/")
        if name and version.isdigit():
            for key, value in (version_tags or {}).items():
                client.set_model_version_tag(name, version, key, str(value))


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
    with in_store():
        return _verified_model_dir(model_uri)


def _verified_model_dir(model_uri: str) -> str:
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

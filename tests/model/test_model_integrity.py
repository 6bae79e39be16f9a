"""A model file is code (issue 15, item 4): every model artefact is hashed when it is written or logged, and a file
whose SHA-256 does not match the record is refused before it is unpickled. A hostile pickle must never run."""

from __future__ import annotations

import shutil
from pathlib import Path

import joblib
import pytest
from _synthetic import GATES, feature_table
from conftest import isolated_store

from models.baselines import LogisticBaseline
from models.config import ScoreConfig
from pipeline.artifacts import (
    BASELINES_FILE,
    HASHES,
    MODEL_FILE,
    MODEL_INFO,
    TRAIN_METRICS,
    ModelIntegrityError,
    load_baselines,
    load_model,
    save_model,
)
from pipeline.io import read_json, write_json

COLS = ["n_high_intent_30d", "seniority_level", "engagement_decayed"]


class Payload:
    """Unpickling this creates the marker file: proof that the pickle ran."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _fit() -> tuple[LogisticBaseline, object]:
    table = feature_table(60)
    return LogisticBaseline().fit(table[COLS], table["label"]), table


def test_save_model_records_the_sha256_of_both_files(tmp_path):
    model, _ = _fit()
    save_model(tmp_path, model, {"rule": 1}, {"n_train": 3})
    hashes = read_json(tmp_path / TRAIN_METRICS)[HASHES]
    assert set(hashes) == {MODEL_FILE, BASELINES_FILE} and all(len(h) == 64 for h in hashes.values())
    loaded, info = load_model(tmp_path)
    assert list(loaded.feature_names_in_) == COLS and info["run_id"] == ""
    assert load_baselines(tmp_path) == {"rule": 1}


@pytest.mark.parametrize("name", [MODEL_FILE, BASELINES_FILE])
def test_a_hostile_model_file_is_refused_before_it_runs(tmp_path, name):
    model, _ = _fit()
    models = tmp_path / "04_models"
    save_model(models, model, {}, {})
    marker = tmp_path / "pwned"
    joblib.dump(Payload(marker), models / name)
    loader = load_model if name == MODEL_FILE else load_baselines
    with pytest.raises(ModelIntegrityError, match=rf"{name}: SHA-256 .* does not match the hash recorded in"):
        loader(models)
    assert not marker.exists()


def test_a_model_file_without_a_record_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    models = tmp_path / "04_models"
    models.mkdir()
    joblib.dump(Payload(marker), models / MODEL_FILE)  # dropped in a folder: no train_metrics.json at all
    with pytest.raises(ModelIntegrityError, match=r"model\.joblib: no SHA-256 recorded"):
        load_model(models)
    write_json({"n_train": 1}, models / TRAIN_METRICS)  # metrics written before hashes existed
    with pytest.raises(ModelIntegrityError, match="no SHA-256 recorded"):
        load_model(models)
    assert not marker.exists()


def test_the_package_record_must_describe_the_same_file(tmp_path):
    model, _ = _fit()
    save_model(tmp_path / "models", model, {}, {})
    write_json({"run_id": "r1", HASHES: {MODEL_FILE: "0" * 64}}, tmp_path / "package" / MODEL_INFO)
    with pytest.raises(ModelIntegrityError, match=r"does not match the hash recorded in .*model_info\.json"):
        load_model(tmp_path / "models", tmp_path / "package")
    good = read_json(tmp_path / "models" / TRAIN_METRICS)[HASHES]
    write_json({"run_id": "r1", HASHES: good}, tmp_path / "package" / MODEL_INFO)
    assert load_model(tmp_path / "models", tmp_path / "package")[1]["run_id"] == "r1"


# --- the MLflow pyfunc --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    from pipeline import package, tracking

    store = tmp_path_factory.mktemp("integrity")
    mp = isolated_store(store)
    model, table = _fit()
    served, example = package.bundle(model, table[table["split"] == "train"], ScoreConfig(gates=GATES))
    info = tracking.log_model_run(served, example, {}, {"score": ScoreConfig(gates=GATES)}, {},
                                  experiment="integrity", run_name="r", registered_model="lc-integrity")
    yield {"store": store, "info": info, "example": example}
    mp.undo()


def _store_dir(info: dict) -> Path:
    """The logged model's folder inside the local artifact store (where an attacker with disk access writes)."""
    from mlflow import MlflowClient
    from mlflow.utils.file_utils import local_file_uri_to_path

    logged = MlflowClient().get_logged_model(info["model_uri"].removeprefix("models:/"))
    return Path(local_file_uri_to_path(logged.artifact_location))


@pytest.mark.slow
def test_logging_records_the_hash_on_run_version_and_model_info(registry):
    from mlflow import MlflowClient

    from pipeline import tracking

    info = registry["info"]
    digest = info["model_sha256"]
    assert len(digest) == 64
    client = MlflowClient()
    assert client.get_run(info["run_id"]).data.tags[tracking.SHA256_TAG] == digest
    assert client.get_model_version("lc-integrity", "1").tags[tracking.SHA256_TAG] == digest
    model, overrides, version, run_id = tracking.load_registered("models:/lc-integrity@champion")
    assert list(model.feature_names_in_) == COLS and version == "lc-integrity/1" and run_id == info["run_id"]
    assert overrides["gates"] == GATES


@pytest.mark.slow
@pytest.mark.parametrize("target", ["python_model.pkl", "code/models/pyfunc.py"])
def test_a_tampered_pyfunc_folder_is_refused_before_it_runs(registry, tmp_path, target):
    import mlflow

    from pipeline import tracking

    folder = Path(mlflow.artifacts.download_artifacts(artifact_uri=registry["info"]["model_uri"],
                                                     dst_path=str(tmp_path / "copy")))
    marker = tmp_path / "pwned"
    if target.endswith(".pkl"):
        joblib.dump(Payload(marker), folder / target)
    else:
        (folder / target).write_text(f"open({str(marker)!r}, 'w')\n")
    with pytest.raises(ModelIntegrityError, match=rf"{target}: SHA-256 .* does not match the recorded hash"):
        tracking.load_registered(str(folder))
    assert not marker.exists()


@pytest.mark.slow
def test_a_hostile_pickle_in_the_artifact_store_is_refused_for_every_uri(registry, tmp_path):
    from pipeline import tracking

    info = registry["info"]
    pickle_path = _store_dir(info) / "python_model.pkl"
    original = pickle_path.read_bytes()
    marker = tmp_path / "pwned"
    try:
        joblib.dump(Payload(marker), pickle_path)
        for uri in ("models:/lc-integrity@champion", "models:/lc-integrity/1", f"runs:/{info['run_id']}/model",
                    info["model_uri"]):
            with pytest.raises(ModelIntegrityError, match=r"python_model\.pkl: SHA-256 .* does not match"):
                tracking.load_registered(uri)
        assert not marker.exists()
    finally:
        pickle_path.write_bytes(original)
    tracking.load_registered("models:/lc-integrity@champion")  # the original loads again


@pytest.mark.slow
def test_a_model_logged_without_hashes_is_refused(registry, tmp_path):
    import mlflow

    from pipeline import tracking

    folder = Path(mlflow.artifacts.download_artifacts(artifact_uri=registry["info"]["model_uri"],
                                                     dst_path=str(tmp_path / "copy")))
    marker = tmp_path / "pwned"
    joblib.dump(Payload(marker), folder / "python_model.pkl")
    mlmodel = folder / "MLmodel"  # a forged run id: no record to match
    mlmodel.write_text(mlmodel.read_text().replace(registry["info"]["run_id"], "0" * 32))
    with pytest.raises(ModelIntegrityError, match="no SHA-256 recorded"):
        tracking.load_registered(str(folder))
    shutil.rmtree(folder)
    assert not marker.exists()

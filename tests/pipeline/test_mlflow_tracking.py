"""MLflow as ML engineers use it: the stages on the small Salesforce fixture, then what the store holds — the
experiment's kind, run names, a train run that spans the training, every param, the training table as a dataset,
tagged and described registered versions, evaluate and score runs nested under the train run, and a store that
still opens after its folder moved."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from _stages import run_stages
from conftest import isolated_store

from pipeline import package, tracking
from pipeline.artifacts import TRAINING_TIME, load_model
from pipeline.io import read_json
from pipeline.params import load_params

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "tests" / "fixtures" / "salesforce"
EXPERIMENT, NAME = "mlflow-tracking-test", "mlflow-tracking-test-model"


@pytest.fixture(scope="module")
def tracked(tmp_path_factory):
    root = tmp_path_factory.mktemp("tracking")
    mp = isolated_store(root)
    base = load_params(ROOT / "params.yaml")
    prm = dataclasses.replace(
        base,
        train=dataclasses.replace(base.train, n_jobs=1, experiment=EXPERIMENT, registered_model=NAME),
        evaluate=dataclasses.replace(base.evaluate, n_bootstrap=20),
    )
    stages = run_stages(root, prm, "salesforce", FIXTURE, upto="score", source="salesforce")
    from mlflow import MlflowClient

    client = MlflowClient()
    info = stages["package"]
    yield {"root": root, "stages": stages, "client": client, "info": info, "run": client.get_run(info["run_id"]),
           "snapshots": read_json(stages["paths"]["features"] / "snapshots.json")}
    mp.undo()


def _children(tracked) -> dict[str, object]:
    runs = tracked["client"].search_runs([tracked["run"].info.experiment_id],
                                         f"tags.`{tracking.TRAIN_RUN_TAG}` = '{tracked['info']['run_id']}'")
    return {r.data.tags[tracking.STAGE_TAG]: r for r in runs}


def test_experiment_opens_in_the_model_training_view(tracked):
    experiment = tracked["client"].get_experiment_by_name(EXPERIMENT)
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"


def test_runs_are_named_by_stage_profile_and_data_date(tracked):
    export_date = tracked["snapshots"]["score"]["as_of"][-1]
    test_date = tracked["snapshots"]["test"]["as_of"][-1]
    assert tracked["run"].info.run_name == f"train salesforce {export_date}"
    children = _children(tracked)
    assert children["evaluate"].info.run_name == f"evaluate salesforce {test_date}"
    assert children["score"].info.run_name == f"score salesforce {tracked['stages']['score']['as_of']}"


def test_train_run_spans_the_training(tracked):
    """The run starts when the train stage started (not when the package stage logged it), so its duration
    covers the fit."""
    run = tracked["run"].info
    timing = read_json(tracked["stages"]["paths"]["models"] / "train_metrics.json")[TRAINING_TIME]
    fit_ms = tracked["stages"]["train"]["fit_seconds"] * 1000
    assert run.start_time == int(timing["started"] * 1000)
    assert run.end_time >= timing["finished"] * 1000
    assert run.end_time - run.start_time >= fit_ms > 0


def test_repackaging_for_a_policy_change_gets_a_run_of_its_own_time(tracked, tmp_path):
    """The same fitted model packaged again with another threshold did no training: its run starts now and names
    the run that logged the model first."""
    import time

    P, prm = tracked["stages"]["paths"], tracked["stages"]["params"]
    policy = dataclasses.replace(prm.score, threshold=prm.score.threshold / 2)
    before = time.time() * 1000
    info = package.run(P["features"] / "features.parquet", P["models"], tmp_path,
                       {"ingest": {"profile": "salesforce"}, "train": prm.train, "score": policy},
                       source="salesforce", experiment=EXPERIMENT, registered_model=None)
    run = tracked["client"].get_run(info["run_id"])
    assert run.data.tags["leadscore.repackaged_from"] == tracked["info"]["run_id"]
    assert run.info.start_time >= before - 1000 > tracked["run"].info.start_time
    assert run.data.params["score.threshold"] == str(policy.threshold)


def test_params_cover_features_training_policy_profile_and_input(tracked):
    params, prm = tracked["run"].data.params, tracked["stages"]["params"]
    assert params["featurize.horizon_days"] == str(prm.featurize.horizon_days)
    assert params["featurize.icp.min_employees"] == str(prm.featurize.icp.min_employees)
    assert params["train.num_leaves"] == str(prm.train.num_leaves) and params["train.n_jobs"] == "1"
    assert params["score.threshold"] == str(prm.score.threshold)
    assert params["score.unknown_policy"] == prm.score.unknown_policy
    assert params["ingest.profile"] == "salesforce"
    digest = tracked["run"].data.tags["data_version"]
    assert params["input.digest"] == digest and digest.startswith("md5:") and len(digest) == 36


def test_training_table_is_logged_as_a_dataset_input(tracked):
    import json

    inputs = tracked["run"].inputs.dataset_inputs
    assert len(inputs) == 1
    dataset = inputs[0].dataset
    assert dataset.name == "salesforce-train"
    assert dataset.digest == tracked["run"].data.params["input.digest"].removeprefix("md5:")
    assert json.loads(dataset.profile)["num_rows"] == tracked["snapshots"]["train"]["rows"] > 0
    assert "label" in dataset.schema and "n_high_intent_30d" in dataset.schema
    assert {t.key: t.value for t in inputs[0].tags}["mlflow.data.context"] == "training"


def test_registered_version_is_tagged_and_described(tracked):
    client, info = tracked["client"], tracked["info"]
    version = client.get_model_version(NAME, info["model_version"].split("/")[1])
    tags, run_tags = version.tags, tracked["run"].data.tags
    assert tags["git_commit"] == run_tags["git_commit"] == tracking.git_commit(ROOT)
    assert tags["data_digest"] == run_tags["data_version"]
    model, _ = load_model(tracked["stages"]["paths"]["models"])
    assert tags["feature_set"] == "all" and tags["n_features"] == str(len(model.feature_names_in_))
    assert tags["validation_roc_auc"] == f"{tracked['stages']['train']['validation_roc_auc']:.4f}"
    assert tags["test_roc_auc"] == f"{tracked['stages']['evaluate']['roc_auc']:.4f}"  # added by evaluate
    assert f"{len(model.feature_names_in_)} features" in version.description
    assert "salesforce export" in version.description and "validation ROC AUC" in version.description
    assert client.get_registered_model(NAME).description == tracking.REGISTERED_MODEL_DESCRIPTION


def test_evaluate_and_score_runs_nest_under_the_train_run(tracked):
    children, run_id = _children(tracked), tracked["info"]["run_id"]
    assert set(children) == {"evaluate", "score"}
    for child in children.values():
        assert child.data.tags["mlflow.parentRunId"] == run_id and child.info.status == "FINISHED"
        assert child.info.start_time <= child.info.end_time
    evaluate, score = children["evaluate"], children["score"]
    assert evaluate.data.metrics["roc_auc"] == pytest.approx(tracked["stages"]["evaluate"]["roc_auc"])
    assert evaluate.data.params["evaluate.n_bootstrap"] == "20"
    with tracking.in_store():
        files = {f.path for f in tracked["client"].list_artifacts(evaluate.info.run_id, "evaluate")}
    assert {"evaluate/metrics.json", "evaluate/roc.png"} <= files
    assert score.data.metrics["n_sql"] == tracked["stages"]["score"]["n_sql"]
    assert score.data.params["score.threshold"] == str(tracked["stages"]["params"].score.threshold)
    assert score.data.tags["model_version"] == tracked["info"]["model_version"]  # the champion: this run's model


def test_a_moved_store_still_opens(tracked, tmp_path, monkeypatch):
    """The package stage logs into a store in one folder; the folder moves; from anywhere, the registered model
    loads (its SHA-256 manifest checked) and the runs and their artifacts list at the new place."""
    import mlflow
    from mlflow import MlflowClient

    P = tracked["stages"]["paths"]
    prm = tracked["stages"]["params"]
    old, new, elsewhere = tmp_path / "store", tmp_path / "moved" / "store", tmp_path / "elsewhere"
    for folder in (old, new.parent, elsewhere):
        folder.mkdir(parents=True)
    # a copy of the module's store file: its schema is created already (a fresh sqlite store spends ~15 s on it)
    shutil.copy(tracked["root"] / "mlflow.db", old / "mlflow.db")
    monkeypatch.chdir(elsewhere)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{old / 'mlflow.db'}")
    info = package.run(P["features"] / "features.parquet", P["models"], tmp_path / "package",
                       {"ingest": {"profile": "salesforce"}, "train": prm.train, "featurize": prm.featurize,
                        "score": prm.score}, source="salesforce", experiment="moved", registered_model="moved-model")
    experiment = MlflowClient().get_experiment_by_name("moved")
    assert experiment.artifact_location == f"mlruns/{experiment.experiment_id}"  # stored relative
    assert (old / "mlruns" / experiment.experiment_id).is_dir() and not (elsewhere / "mlruns").exists()

    shutil.move(old, new)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{new / 'mlflow.db'}")
    tracking.configure()
    model, overrides, version, run_id = tracking.load_registered("models:/moved-model@champion")
    assert version == "moved-model/1" and run_id == info["run_id"] and overrides["threshold"] == prm.score.threshold
    rows = pd.read_parquet(P["features"] / "features.parquet", filters=[("split", "==", "test")]).head(50)
    local, _ = load_model(P["models"])
    columns = list(local.feature_names_in_)
    np.testing.assert_allclose(model.predict_proba(rows[columns])[:, 1], local.predict_proba(rows[columns])[:, 1])
    client = MlflowClient()
    runs = client.search_runs([experiment.experiment_id])
    assert [r.info.run_id for r in runs] == [info["run_id"]]
    with tracking.in_store() as folder:
        assert folder == new
        assert {"model_sha256.json", "train_metrics.json"} <= {f.path for f in client.list_artifacts(run_id)}
    monkeypatch.chdir(new)  # MLflow's own loader (mlflow models serve, the UI) from the store's folder
    served = mlflow.pyfunc.load_model("models:/moved-model/1")
    assert served.metadata.run_id == run_id

"""`leadscore run` on small flat exports: plain errors for too few labels, the small-data fallback, MLflow logging."""

from __future__ import annotations

import json
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from pipeline.cli import EXIT_CONFIG, app
from pipeline.params import Params
from pipeline.run import experiment_name, run
from pipeline.sources.profiles import ProfileError, parse_profile

PROFILE = {"name": "tiny", "kind": "flat", "id": "Lead ID", "label": {"column": "Converted", "positive": ["1"],
                                                                      "negative": ["0"]},
           "numeric": ["Visits"], "categorical": ["Source"], "missing": ["Select"],
           "overrides": {"train": {"min_child_samples": 10, "n_estimators": 200}}}


def export(tmp_path: Path, n: int, positives: int, seed: int = 0) -> Path:
    """``n`` labelled leads, ``positives`` of them converted; more visits, more conversions."""
    rng = np.random.default_rng(seed)
    y = np.zeros(n, dtype=int)
    y[rng.choice(n, positives, replace=False)] = 1
    visits = rng.poisson(2 + 3 * y)
    source = np.where(rng.random(n) < 0.5, "Google", "Referral")
    df = pd.DataFrame({"Lead ID": [f"L{i:05d}" for i in range(n)], "Visits": visits, "Source": source,
                       "Converted": y})
    path = tmp_path / "leads.csv"
    df.to_csv(path, index=False)
    return path


def test_thirty_rows_with_three_conversions_get_a_plain_error(tmp_path):
    path = export(tmp_path, 30, 3)
    with pytest.raises(ProfileError) as err:
        run(parse_profile(PROFILE, "tiny"), path, tmp_path / "work", Params(), n_jobs=1, track=False)
    assert str(err.value) == (f"{path}: label 'Converted': 3 converted and 27 not converted among 30 labelled rows; "
                              f"a hold-out and 5-fold cross-validation need at least 5 of each")
    assert not (tmp_path / "work").exists()  # nothing half-written


def test_cli_run_on_thirty_rows_exits_with_the_message(tmp_path):
    path = export(tmp_path, 30, 2)
    profile = tmp_path / "tiny.yaml"
    profile.write_text(json.dumps(PROFILE))
    result = CliRunner().invoke(app, ["run", "--profile", str(profile), "--input", str(path), "--workdir",
                                      str(tmp_path / "work"), "--n-jobs", "1", "--no-track"])
    assert result.exit_code == EXIT_CONFIG  # the profile's label cannot support the hold-out and CV: docs/cli.md
    assert "2 converted and 28 not converted among 30 labelled rows" in result.stderr
    assert "Traceback" not in result.output


def test_thirty_rows_with_enough_of_each_fall_back_to_the_logistic_model(tmp_path):
    """30 rows, 10 conversions: below train.min_positives (100), so the regularised logistic model, and why."""
    metrics = run(parse_profile(PROFILE, "tiny"), export(tmp_path, 30, 10), tmp_path / "work", Params(), n_jobs=1,
                  track=False)
    assert metrics["model_kind"] == "logistic_fallback"
    assert metrics["fallback_reason"].startswith("only 8 conversions in the training rows (train.min_positives = 100)")
    assert len(metrics["cv_roc_auc_folds"]) == 5 and metrics["n_train"] + metrics["n_test"] == 30
    assert type(joblib.load(tmp_path / "work" / "data" / "04_models" / "model.joblib")).__name__ == "LogisticBaseline"


def test_enough_conversions_fit_the_blend(tmp_path):
    metrics = run(parse_profile(PROFILE, "tiny"), export(tmp_path, 600, 200), tmp_path / "work", Params(),
                  n_jobs=1, track=False)
    assert metrics["model_kind"] == "BlendedModel" and "fallback_reason" not in metrics
    assert 0.0 <= metrics["blend_weight_trees"] <= 1.0 and metrics["calibration"] in ("isotonic", "sigmoid")
    assert metrics["cv_roc_auc"] > 0.8  # visits separate the outcomes well


@pytest.mark.slow
def test_run_logs_an_experiment_per_profile_to_the_store_in_the_environment(tmp_path, monkeypatch):
    import mlflow

    store = tmp_path / "store"
    store.mkdir()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{store / 'mlflow.db'}")
    monkeypatch.chdir(store)
    workdir = tmp_path / "work"
    profile = parse_profile(PROFILE, "tiny")
    metrics = run(profile, export(tmp_path, 400, 30), workdir, Params(), n_jobs=1)  # 30 < 100: the fallback
    info = json.loads((workdir / "metrics.json").read_text())["mlflow"]
    assert info["experiment"] == experiment_name(profile) == "leadscore-run-tiny"
    assert not (workdir / "mlflow.db").exists()  # the store of the environment, not the work folder's

    mlflow.set_tracking_uri(f"sqlite:///{store / 'mlflow.db'}")
    logged = mlflow.get_run(info["run_id"])
    assert logged.data.metrics["test_cv_roc_auc"] == pytest.approx(metrics["cv_roc_auc"])  # evaluate adds it
    assert logged.data.params["train.min_positives"] == "100" and logged.data.params["train.min_child_samples"] == "10"
    assert logged.data.tags["model_kind"] == "logistic_fallback"
    assert logged.data.tags["fallback_reason"] == metrics["fallback_reason"]
    served = mlflow.pyfunc.load_model(info["model_uri"])
    rows = pd.DataFrame({"visits": [0.0, 9.0], "source": ["Google", "Referral"]})
    out = served.predict(rows.assign(lead_id=["a", "b"]))  # lead_id: in the signature and every answer
    model = joblib.load(workdir / "data" / "04_models" / "model.joblib")
    np.testing.assert_allclose(out["p_convert"], model.predict_proba(rows)[:, 1], rtol=1e-6)
    assert out["p_convert"].iloc[1] > out["p_convert"].iloc[0]


@pytest.mark.slow
def test_run_without_a_store_in_the_environment_tracks_inside_the_work_folder(tmp_path, monkeypatch):
    import mlflow

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    workdir = tmp_path / "work"
    run(parse_profile(PROFILE, "tiny"), export(tmp_path, 600, 200), workdir, Params(), n_jobs=1)
    info = json.loads((workdir / "metrics.json").read_text())["mlflow"]
    assert info["tracking_uri"] == f"sqlite:///{(workdir / 'mlflow.db').resolve()}"
    mlflow.set_tracking_uri(info["tracking_uri"])
    monkeypatch.chdir(workdir)  # MLflow resolves the store's relative artifact locations from the store's folder
    logged = mlflow.get_run(info["run_id"])
    assert logged.data.tags["model_kind"] == "BlendedModel" and "blend_weight_trees" in logged.data.metrics
    rows = pd.DataFrame({"visits": [1.0, 4.0, None], "source": ["Google", "Referral", None]})
    served = mlflow.pyfunc.load_model(info["model_uri"]).predict(rows.assign(lead_id=["a", "b", "c"]))
    model = joblib.load(workdir / "data" / "04_models" / "model.joblib")
    np.testing.assert_allclose(served["p_convert"], model.predict_proba(rows)[:, 1], rtol=1e-6)
    assert (workdir / "mlruns").is_dir() and not (tmp_path / "mlruns").exists()  # artifacts beside the store

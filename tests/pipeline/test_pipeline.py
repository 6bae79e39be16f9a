"""The stages chained on a small generated CRM in a temporary folder, MLflow pointed there too."""

import dataclasses
import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from _stages import run_stages
from conftest import isolated_store

from pipeline.io import read_json
from pipeline.params import load_params

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def run_pipeline(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("pipeline")
    mp = isolated_store(tmp)
    params = load_params(ROOT / "params.yaml")
    prm = dataclasses.replace(
        params,
        demo=dataclasses.replace(params.demo, n_leads=4000, seed=7),
        train=dataclasses.replace(params.train, n_jobs=1, n_estimators=300, experiment="test-pipeline"),
        evaluate=dataclasses.replace(params.evaluate, n_bootstrap=20),
    )
    out = run_stages(tmp, prm, upto="score")
    out["raw_counts"] = out["ingest"]["rows_read"]
    out["validation"] = out["validate"]
    out["snapshots"] = out["featurize"]
    yield out
    mp.undo()


def test_validation_counts_add_up_and_catch_every_injected_dirty_row(run_pipeline):
    counts = run_pipeline["validation"]["counts"]
    dirty = pd.read_parquet(run_pipeline["paths"]["truth"] / "dirty_rows.parquet")
    for table, c in counts.items():
        assert c["rows_in"] == c["valid"] + c["quarantined"] == run_pipeline["raw_counts"][table]
        quarantine = pd.read_csv(run_pipeline["paths"]["validated"] / "quarantine" / f"{table}.csv")
        assert len(quarantine) == c["quarantined"]
        assert quarantine["reason"].notna().all()
        injected = set(dirty.loc[dirty["table"] == table, "row"])
        assert injected <= set(quarantine["source_row"]), table


def test_features_have_train_test_score_splits(run_pipeline):
    s = run_pipeline["snapshots"]
    assert s["train"]["rows"] > 0 and s["train"]["positives"] > 20
    assert s["test"]["rows"] > 0 and s["test"]["positives"] > 5
    assert s["score"]["rows"] > 0 and s["score"]["positives"] == 0


def test_model_beats_chance_and_sits_below_the_oracle(run_pipeline):
    m = run_pipeline["evaluate"]
    assert 0.65 < m["roc_auc"] <= m["oracle_roc_auc"] + 0.02
    assert m["roc_auc_ci_low"] <= m["roc_auc"] <= m["roc_auc_ci_high"]
    assert 0 <= m["brier"] < m["base_rate"]  # better than always predicting zero
    assert read_json(run_pipeline["paths"]["reports"] / "metrics.json")["roc_auc"] == m["roc_auc"]


def test_scored_table_is_consistent_in_every_export(run_pipeline):
    scored_dir = run_pipeline["paths"]["scored"]
    table = pd.read_parquet(scored_dir / "sql_leads.parquet")
    with sqlite3.connect(scored_dir / "leadscore.db") as conn:
        from_db = pd.read_sql("SELECT * FROM sql_leads ORDER BY rank", conn)
    csv = pd.read_csv(scored_dir / "sql_leads.csv")
    assert len(table) == len(from_db) == len(csv) == run_pipeline["snapshots"]["score"]["rows"]
    assert from_db["lead_id"].tolist() == table["lead_id"].tolist() == csv["lead_id"].tolist()
    required = {"lead_id", "rank", "score", "p_convert", "expected_value", "tier", "is_sql", "gate_budget",
                "gate_authority", "gate_need", "gate_timeline", "model_version", "scored_at"}
    assert required <= set(table.columns)
    assert table["rank"].tolist() == list(range(1, len(table) + 1))
    assert table["score"].between(0, 100).all()
    assert run_pipeline["score"]["n_sql"] == int(table["is_sql"].sum()) > 0


def test_no_sql_fails_a_gate_and_sqls_are_ordered_by_expected_value(run_pipeline):
    table = pd.read_parquet(run_pipeline["paths"]["scored"] / "sql_leads.parquet")
    gates = table[[c for c in table.columns if c.startswith("gate_")]]
    sql = table[table["is_sql"]]
    assert (gates.loc[sql.index] == "pass").all().all()
    assert (sql["p_convert"] >= run_pipeline["params"].score.threshold).all()
    assert np.all(np.diff(sql["expected_value"].to_numpy()) <= 0)
    assert sql["rank"].max() == len(sql)  # SQLs occupy the top ranks
    failed = (gates == "fail").any(axis=1)
    with_sales = table["status"] == "with_sales"
    assert (table.loc[failed & ~with_sales, "status"] == "disqualified").all()


def test_leads_already_with_sales_are_never_handed_over(run_pipeline):
    """A lead with an opportunity open at the scoring date is sales' already: never an SQL, never in a queue."""
    table = pd.read_parquet(run_pipeline["paths"]["scored"] / "sql_leads.parquet")
    features = pd.read_parquet(run_pipeline["paths"]["features"] / "features.parquet",
                               filters=[("split", "==", "score")])
    open_opp = set(features.loc[features["has_open_opportunity"] == 1, "lead_id"])
    assert open_opp, "the demo has leads with an open opportunity at the export"
    with_sales = table[table["lead_id"].isin(open_opp)]
    assert (with_sales["status"] == "with_sales").all()
    assert not with_sales["is_sql"].any()
    assert with_sales["assigned_rep"].isna().all() and with_sales["call_queue_position"].isna().all()
    assert with_sales["rank"].min() > table.loc[table["status"] != "with_sales", "rank"].max()  # listed apart, last
    queues = run_pipeline["paths"]["scored"] / "queues"
    queued = pd.concat([pd.read_csv(f, dtype=str) for f in queues.glob("*.csv")], ignore_index=True)
    assert not set(queued["lead_id"]) & open_opp


def test_run_is_tracked_in_mlflow_with_a_registered_version(run_pipeline):
    import mlflow

    info = read_json(run_pipeline["paths"]["package"] / "model_info.json")
    run = mlflow.get_run(info["run_id"])
    assert run.data.metrics["test_roc_auc"] == pytest.approx(run_pipeline["evaluate"]["roc_auc"])
    assert "git_commit" in run.data.tags
    assert info["model_version"].startswith("leadscore-conversion/")

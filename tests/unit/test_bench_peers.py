"""The benchmark's peers (benchmarks/peers.py): the naive pandas scorer writes what leadscore's score stage writes
(the same leads in the same order with the same scores) when the policy makes the rank the probability order, and
the leadscore ÷ peer ratios are read from the JSON results as written."""

from __future__ import annotations

import json
import sqlite3

import numpy as np
import pandas as pd
import pytest

from benchmarks import peers
from benchmarks import run as bench
from models.config import ScoreConfig
from models.conversion import BoosterConfig, ConversionModel
from pipeline import score as score_stage
from pipeline.artifacts import load_model, save_model
from tests._synthetic import feature_table


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny snapshot feature table (its last snapshot the open leads), a small model saved as the train stage
    saves it, and validated accounts / opportunities (one size band, no won deal: one deal size for every lead)."""
    root = tmp_path_factory.mktemp("peers")
    table = feature_table(n_per_snapshot=300, seed=3)
    fit, val = table[table["split"] == "train"], table[table["split"] == "test"]
    cols = [c for c in table.columns if c not in ("lead_id", "account_id", "as_of", "split", "label")]
    model = ConversionModel(BoosterConfig(n_estimators=20, n_jobs=1, min_child_samples=10)).fit(
        fit[cols], fit["label"].astype(int), val[cols], val["label"].astype(int))
    save_model(root / "models", model, {}, {})
    rows = val.assign(split="score", label=pd.NA)
    features = root / "features.parquet"
    rows.to_parquet(features, index=False)
    validated = root / "validated"
    validated.mkdir()
    accounts = pd.DataFrame({"account_id": sorted(rows["account_id"].unique())})
    accounts = accounts.assign(company_name="Acme", employees=float("nan"), annual_revenue=float("nan"), country="DE")
    accounts.to_parquet(validated / "accounts.parquet", index=False)
    pd.DataFrame({"opportunity_id": pd.Series(dtype=str), "account_id": pd.Series(dtype=str),
                  "stage": pd.Series(dtype=str), "amount": pd.Series(dtype=float),
                  "created_at": pd.Series(dtype="datetime64[ns]"), "closed_at": pd.Series(dtype="datetime64[ns]")}
                 ).to_parquet(validated / "opportunities.parquet", index=False)
    return root, features, validated, len(rows)


def _sqlite_rows(path, columns="lead_id, score"):
    con = sqlite3.connect(path)
    try:
        return con.execute(f"SELECT {columns} FROM sql_leads ORDER BY rowid").fetchall()
    finally:
        con.close()


def test_naive_peer_writes_leadscores_rows_in_leadscores_order(tiny):
    root, features, validated, n = tiny
    # one gate every lead passes and a threshold of 0: every lead is an SQL, ranked by expected value = p x one
    # deal size, i.e. by probability -- the order the naive peer sorts in
    p = ScoreConfig(threshold=0.0, gates={"authority": {"any": [{"column": "seniority_level", "op": ">=", "value": 0}]}})
    summary = score_stage.run(features, root / "models", None, validated, root / "scored", root / "reports", p)
    model, _ = load_model(root / "models")
    naive = peers.naive_score(features, model, root / "naive")

    assert summary["n_scored"] == naive["rows"] == n
    ours = pd.read_parquet(root / "scored" / "sql_leads.parquet")
    theirs = pd.read_parquet(root / "naive" / "sql_leads.parquet")
    assert ours["lead_id"].tolist() == theirs["lead_id"].tolist()
    assert ours["score"].tolist() == theirs["score"].tolist()
    assert ours["p_convert"].tolist() == theirs["p_convert"].tolist()
    assert ours["rank"].tolist() == theirs["rank"].tolist() == list(range(1, n + 1))
    assert ours["score"].nunique() > 5  # the order is not the file's by accident
    # the CSV and SQLite copies: the same rows in the same order
    ours_csv = pd.read_csv(root / "scored" / "sql_leads.csv", usecols=["lead_id", "score"])
    theirs_csv = pd.read_csv(root / "naive" / "sql_leads.csv", usecols=["lead_id", "score"])
    assert ours_csv.equals(theirs_csv)
    assert _sqlite_rows(root / "scored" / "leadscore.db") == _sqlite_rows(root / "naive" / "leadscore.db")


def _stage(seconds, peak, cpu=None, load=(2.0, 2.5), **detail):
    return {"ok": True, "seconds": seconds, "peak_rss_gb": peak, "cpu_s": cpu if cpu is not None else seconds,
            "load_avg_at_start": [load[0], 1.0, 1.0], "load_avg_at_end": [load[1], 1.0, 1.0],
            "measured_at": "2026-11-30T03:00:00Z", "detail": detail}


def test_ratios_are_read_from_the_json_results(tmp_path, monkeypatch):
    machine = {"cpu": "Test CPU", "nproc": 2, "lightgbm_threads": 2, "load_avg_at_start": [1.5, 1, 1],
               "load_avg_at_end": [2.5, 1, 1], "ram_gb": 8.0, "python": "3.11", "pandas": "3", "lightgbm": "4"}
    stages = {"score": _stage(30.0, 3.0, export_s=10.0), "naive": _stage(20.0, 1.5, load=(1.0, 4.0)),
              "floor": _stage(9.0, 1.0, read_s=2.0, predict_s=3.0)}
    (tmp_path / "bench_100000.json").write_text(json.dumps(
        {"size": 100000, "machine": machine, "stages": stages, "summary": bench.summarise(stages)}))
    (tmp_path / "real_peers.json").write_text(json.dumps({"machine": machine, "sets": {"uci_bank": {
        "run": {**_stage(40.0, 2.0, run_s=36.0, cv_roc_auc=0.802), "process_wall_s": 42.0},
        "lgbm_cv": {**_stage(5.0, 0.5, cv_s=3.0, cv_roc_auc=0.799), "process_wall_s": 6.0},
        "logreg_cv": _stage(6.0, 0.4, cv_s=4.0, cv_roc_auc=0.791)}}}))

    r = peers.ratios(tmp_path)
    s = r["scoring"]["100000"]
    assert s["score_over_naive"] == 1.5 and s["score_peak_over_naive_peak"] == 2.0
    assert s["score_over_floor"] == 6.0 and s["floor_s"] == 5.0
    assert s["load_1m"] == [2.0, 2.5, 1.0, 4.0, 2.0, 2.5]
    u = r["real"]["uci_bank"]
    assert u["run_over_lgbm_cv"] == 12.0 and u["run_peak_over_lgbm_cv_peak"] == 4.0
    assert u["run_process_over_lgbm_cv_process"] == 7.0  # 42 s / 6 s: whole processes, imports and reading included
    assert (u["leadscore_cv_roc_auc"], u["lgbm_cv_roc_auc"], u["logreg_cv_roc_auc"]) == (0.802, 0.799, 0.791)
    assert r["machine"]["cpu"] == "Test CPU"
    assert bench.summarise(stages)["score_over_naive"] == 1.5

    # a forked SQL writer's private memory counts with the stage's peak: (3.0 + 0.75) / 1.5
    stages["score"]["detail"]["sql_writer_private_gb"] = 0.75
    assert bench.summarise(stages)["score_peak_over_naive_peak"] == 2.5
    (tmp_path / "bench_100000.json").write_text(json.dumps(
        {"size": 100000, "machine": machine, "stages": stages, "summary": bench.summarise(stages)}))
    assert peers.ratios(tmp_path)["scoring"]["100000"]["score_peak_over_naive_peak"] == 2.5

    table = peers.ratio_table(r)
    assert "| score ÷ naive pandas scorer | 100,000 leads (2026-11-30) | **1.50** | ≤ 1.0 | missed | 30.0 s / 20.0 s | 1.50 |" in table
    assert "| score ÷ read + predict floor | 100,000 leads (2026-11-30) | **6.00** | ≤ 3.0 | missed |" in table
    assert "| run ÷ plain LightGBM 5-fold CV | uci_bank (2026-11-30) | **12.00** | ≤ 3.0 | missed |" in table
    assert "| uci_bank | 0.802 | 0.799 | 0.791 | 36.0 | 3.0 | 4.0 |" in table
    assert "read included) | uci_bank (2026-11-30) | **7.00** | – | | 42.0 s / 6.0 s |" in table
    assert "Test CPU, 2 cores, LightGBM threads 2" in table and "| 2.00 → 2.50 |" in table

    monkeypatch.setattr(bench, "RESULTS", tmp_path)
    printed = bench.report()  # `python -m benchmarks.run --report`
    assert "score ÷ naive pandas scorer" in printed and "| naive | 20.0 / 20.0 / 1.50 / 1.0 |" in printed


def test_real_data_peers_skip_with_the_reason_when_the_folder_is_absent(tmp_path, capsys):
    assert bench.run_real(["uci_bank"], tmp_path / "absent") is None
    assert f"real-data peers skipped: {tmp_path / 'absent'} is absent" in capsys.readouterr().out


def test_the_hidden_information_columns_are_each_leads_own_hidden_state():
    """benchmarks.hidden_information: every hidden column is the lead's own (joined by lead id, whatever the row
    order), the true BANT flags as 0/1, the driver odds the generator's formula without its noise."""
    from scipy.special import expit

    from benchmarks.hidden_information import HIDDEN, hidden_columns
    from pipeline.sources import demo_crm

    truth = pd.DataFrame({
        "lead_id": ["L1", "L2"], "interest": [1.5, -0.5], "fit": [0.2, -1.0], "authority": [True, False],
        "budget_ok": [False, True], "timeline_ok": [True, True], "need": [False, True],
        "peak_at": pd.to_datetime(["2026-01-01", "2026-02-01"]), "p_opp": [0.5, 0.1], "p_win": [0.4, 0.2],
        "peak_width_days": [5.0, 9.0]})
    table = pd.DataFrame({"lead_id": ["L2", "L1", "L2"], "as_of": pd.to_datetime(["2026-03-01"] * 3), "x": [1, 2, 3]})
    t = hidden_columns(table, truth)
    assert t["h_interest"].tolist() == [-0.5, 1.5, -0.5]
    assert t["h_authority"].tolist() == [0.0, 1.0, 0.0] and t["h_need"].tolist() == [1.0, 0.0, 1.0]
    assert t["h_peak_age"].tolist() == [28.0, 59.0, 28.0]
    assert t["h_log_propensity"].iloc[1] == pytest.approx(np.log(0.5) + np.log(0.4))
    opp = demo_crm.OPP_INTERCEPT + sum(w * {"interest": 1.5, "fit": 0.2, "authority": 1, "budget": 0, "timeline": 1,
                                            "need": 0}[k] for k, w in demo_crm.OPP_WEIGHTS.items())
    win = demo_crm.WIN_INTERCEPT + sum(w * {"interest": 1.5, "fit": 0.2, "authority": 1, "budget": 0, "timeline": 1,
                                            "need": 0}[k] for k, w in demo_crm.WIN_WEIGHTS.items())
    assert t["h_log_drivers"].iloc[1] == pytest.approx(np.log(expit(opp)) + np.log(expit(win)))
    assert {c for cols in HIDDEN.values() for c in cols} <= set(t.columns)

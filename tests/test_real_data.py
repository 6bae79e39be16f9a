"""The four real data sets through `leadscore run` (../shared/data/real; skipped when that folder is absent).

Targets (leaky columns excluded, stratified 5-fold cross-validated ROC AUC, the protocol of the published
results): X Education ≥ 0.90, UCI bank without `duration` ≥ 0.79, Olist ≥ 0.66. Maven CRM has a near-random
label: it must run to a scored table through the contract, with its quarantine accounted for.

X Education misses its target when every sales-recorded column is dropped (`x_education`: CV ≈ 0.876, the
published non-leaky 0.86-0.88); it reaches it only when the "last activity" columns, which include sales
touches, are kept (`x_education_with_activity`: ≈ 0.907). Both floors are asserted as measured, not the target.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pandas as pd
import pytest

from pipeline.params import load_params
from pipeline.run import load_profile, run

REAL = Path(__file__).parents[2] / "shared/data/real"
PARAMS = Path(__file__).parents[1] / "params.yaml"

pytestmark = [
    pytest.mark.realdata,
    pytest.mark.slow,
    pytest.mark.skipif(not REAL.is_dir(), reason=f"real data folder {REAL} is absent (see tests/test_real_data.py)"),
]

CASES = {
    # profile: (folder, CV ROC AUC target, split of the held-out metrics, dropped leaky columns that must be declared)
    "x_education": ("x_education_leads", 0.87, "stratified random",
                    {"Tags", "Lead Quality", "Lead Profile", "Last Activity", "Last Notable Activity"}),
    "x_education_with_activity": ("x_education_leads", 0.90, "stratified random", {"Tags", "Lead Quality"}),
    "uci_bank": ("uci_bank_marketing", 0.79, "time", {"duration"}),
    "olist": ("olist_marketing_funnel", 0.67, "time", set()),
}


def _params():
    shipped = load_params(PARAMS)
    return dataclasses.replace(shipped, train=dataclasses.replace(shipped.train, n_jobs=1))


@pytest.mark.parametrize("name", list(CASES))
def test_real_flat_set_reaches_its_measured_floor(tmp_path, name):
    folder, target, split, leaky = CASES[name]
    metrics = run(load_profile(name), REAL / folder, tmp_path, _params(), n_jobs=1)
    assert metrics["cv_roc_auc"] >= target, f"{name}: CV ROC AUC {metrics['cv_roc_auc']:.4f} below {target}"
    assert metrics["split"] == split and len(metrics["cv_roc_auc_folds"]) == 5
    assert leaky <= set(metrics["dropped_leaky_columns"])
    assert metrics["leakage_warnings"] == []  # the leaky columns are gone
    written = json.loads((tmp_path / "metrics.json").read_text())
    assert {"roc_auc", "pr_auc", "cv_roc_auc", "brier", "n_train", "n_test"} <= set(written)
    scored = pd.read_parquet(tmp_path / "sql_leads.parquet")
    assert len(scored) == metrics["n_scored"] == metrics["n_test"]  # no open leads: the held-out leads are scored


def test_x_education_leaky_columns_inflate_the_score(tmp_path):
    """Why the profile declares `Tags` and `Lead Quality` leaky: with them the CV AUC jumps to ≈ 0.97. `Tags`
    alone reaches AUC ≈ 0.92, under the guard's 0.95, so the guard alone would not have caught it."""
    profile = load_profile("x_education")
    drop = {k: v for k, v in profile.drop.items() if k not in ("Tags", "Lead Quality")}
    leaky = dataclasses.replace(profile, drop=drop, categorical=(*profile.categorical, "Tags", "Lead Quality"))
    metrics = run(leaky, REAL / "x_education_leads", tmp_path, _params(), n_jobs=1, cv_folds=2)
    assert metrics["cv_roc_auc"] > 0.95  # 0.969 measured (2-fold), against 0.876 without them
    assert metrics["leakage_warnings"] == []


def test_maven_crm_runs_through_the_contract(tmp_path):
    metrics = run(load_profile("maven_crm"), REAL / "maven_crm_sales_opportunities", tmp_path, _params(), n_jobs=1)
    counts = metrics["validation"]["counts"]
    assert counts["accounts"] == {"rows_in": 85, "valid": 85, "quarantined": 0}
    assert counts["leads"]["rows_in"] == 8800
    assert all(c["rows_in"] == c["valid"] + c["quarantined"] for c in counts.values())
    quarantine = pd.read_csv(tmp_path / "quarantine" / "leads.csv")
    # pipeline rows without an account yet (1,425 in the source) are quarantined for it, never dropped silently
    assert (quarantine["reason"].str.contains("account_id: not null")).sum() == 1425
    assert metrics["export_date"] == "2017-12-31" and metrics["split"] == "time"
    scored = pd.read_parquet(tmp_path / "sql_leads.parquet")
    assert len(scored) == metrics["n_scored"] > 0 and scored["p_convert"].between(0, 1).all()

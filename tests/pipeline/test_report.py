"""The `report` stage on a small generated CRM: numbers in the page match the data, drift fails schedulers."""

import dataclasses
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from _stages import run_stages
from conftest import isolated_store
from typer.testing import CliRunner

from features.build import feature_columns
from models.sampling import cluster_sample
from pipeline import package, report, score, train
from pipeline.io import read_json
from pipeline.params import load_params

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    """demo data → validate → featurize → train twice (two registered versions) → score → report."""
    tmp = tmp_path_factory.mktemp("report")
    mp = isolated_store(tmp)
    base = load_params(ROOT / "params.yaml")
    prm = dataclasses.replace(
        base,
        demo=dataclasses.replace(base.demo, n_leads=3000, seed=11),
        train=dataclasses.replace(base.train, n_jobs=1, n_estimators=150, experiment="test-report",
                                  registered_model="test-report"),
        report=dataclasses.replace(base.report, shap_sample=200),
    )
    first = run_stages(tmp, dataclasses.replace(prm, train=dataclasses.replace(prm.train, seed=1)), upto="package")
    P = first["paths"]
    features = P["features"] / "features.parquet"
    train.run(features, P["models"], P["reports"], prm.train)  # a second registered version
    package.run(features, P["models"], P["package"], {"train": prm.train, "score": prm.score}, source="test",
                experiment=prm.train.experiment, registered_model=prm.train.registered_model)
    score.run(features, P["models"], P["package"], P["validated"], P["scored"], P["reports"], prm.score)
    summary = report.run(features, P["models"], P["package"], P["validated"], P["scored"], P["reports"], prm.report,
                         prm.score, prm.featurize.horizon_days)
    yield {"tmp": tmp, "paths": P, "params": prm, "summary": summary, "features": features}
    mp.undo()


def test_report_is_one_self_contained_html_page(small_run):
    page = (small_run["paths"]["reports"] / "report.html").read_text()
    assert page.startswith("<!doctype html>")
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(images) == 14
    assert all(len(b) > 1000 for b in images)
    assert not re.search(r'(src|href)="(https?:)?//', page)  # nothing fetched from the network
    for section in ("This week&#x27;s hand-over", "What changed since last week", "Model quality",
                    "Compared with the previous model version", "SQL funnel", "Conversion by tier and by gate",
                    "Criteria backtest", "What drives the score", "Drift:"):
        assert section in page or section.replace("&#x27;", "'") in page
    assert page.index("hand-over</h2>") < page.index("Model quality")  # the weekly page starts with the hand-over


def test_backtest_numbers_agree_with_the_held_out_outcomes(small_run):
    m = read_json(small_run["paths"]["reports"] / "monitoring.json")
    table = pd.read_parquet(small_run["features"])
    test = table[table["split"] == "test"]
    assert m["backtest_n_won"] == int(test["label"].sum())
    n_sql_won = m["backtest_precision"] * m["backtest_n_sql"]
    assert n_sql_won == pytest.approx(round(n_sql_won))  # a whole number of leads
    assert m["backtest_recall"] == pytest.approx(n_sql_won / m["backtest_n_won"])
    sweep = pd.read_csv(small_run["paths"]["reports"] / "plots" / "threshold_sweep.csv")
    assert m["recommended_threshold_realised_value"] == sweep["realised_value"].max()
    assert m["recommended_threshold"] == sweep.loc[sweep["realised_value"].idxmax(), "threshold"]
    current = sweep.loc[np.isclose(sweep["threshold"], small_run["params"].score.threshold)]
    assert m["current_realised_value"] == pytest.approx(current["realised_value"].iloc[0])
    capacity = pd.read_csv(small_run["paths"]["reports"] / "plots" / "capacity.csv")
    assert m["recommended_capacity"] == int(capacity.loc[capacity["realised_value"].idxmax(), "capacity"])
    page = (small_run["paths"]["reports"] / "report.html").read_text()
    assert f"{m['backtest_precision']:.1%} / {m['backtest_recall']:.1%}" in page


def test_drift_numbers_in_the_page_match_the_drift_table(small_run):
    m = read_json(small_run["paths"]["reports"] / "monitoring.json")
    drift = pd.read_csv(small_run["paths"]["reports"] / "drift.csv")
    features = drift[drift["feature"] != "score"]
    assert m["drift_n_features"] == len(features) == len(feature_columns(pd.read_parquet(small_run["features"])))
    assert m["drift_n_flagged"] == int((features["flag"] == "drift").sum())
    assert m["score_psi"] == pytest.approx(drift.loc[drift["feature"] == "score", "psi"].iloc[0])
    page = (small_run["paths"]["reports"] / "report.html").read_text()
    assert f"{m['drift_n_flagged']} / {m['drift_n_warn']}" in page


def test_the_demo_raises_no_drift_alarm(small_run):
    """Training snapshots and the scored snapshot of one demo CRM: the generator does not shift, so no column
    (and not the score) may be flagged, although the scored snapshot is months after every training one."""
    m = read_json(small_run["paths"]["reports"] / "monitoring.json")
    drift = pd.read_csv(small_run["paths"]["reports"] / "drift.csv")
    assert m["drift_n_flagged"] == 0 and m["drift_n_warn"] == 0, drift[~drift["flag"].isin(["ok", "few_rows"])]
    assert not m["score_drift"]
    trend = drift[drift["basis"] == "trend"]["feature"].tolist()
    assert {"lead_age_days", "days_since_first_activity", "score"} <= set(trend)  # calendar columns on their trend


def test_the_score_reference_is_whole_accounts_up_to_its_budget(small_run, monkeypatch):
    """Past SCORE_REFERENCE_ROWS training rows the score's reference is a draw of whole accounts: fewer rows
    scored, no alarm on the demo, and the same scores for the rows drawn."""
    from models import monitoring as mon
    from models.decision import rows_to_score
    from pipeline.artifacts import load_model

    P, prm = small_run["paths"], small_run["params"]
    table = pd.read_parquet(small_run["features"])
    model = report.single_threaded(load_model(P["models"], P["package"])[0])
    cols = list(model.feature_names_in_)
    train_rows = table[table["split"] == "train"].reset_index(drop=True)
    now_rows = rows_to_score(table, "snapshots")[0].reset_index(drop=True)
    p_now = model.predict_proba(now_rows[cols])[:, 1]
    r = prm.report
    thresholds = mon.DriftThresholds(r.psi_warn, r.psi_drift, r.ks_alpha, r.ks_min_statistic, r.n_bins, r.min_rows)
    budget = len(train_rows) // 2
    _, whole, p_all, _ = report.drift_tables(model, cols, train_rows, now_rows, None, p_now, thresholds)
    monkeypatch.setattr(report, "SCORE_REFERENCE_ROWS", budget)
    _, drawn, p_drawn, _ = report.drift_tables(model, cols, train_rows, now_rows, None, p_now, thresholds, seed=3)
    assert len(p_all) == len(train_rows) and budget <= len(p_drawn) < len(train_rows)
    assert whole["flag"].iloc[0] == "ok"
    assert drawn["flag"].iloc[0] in ("ok", "few_rows")  # no alarm; a small draw may be too few to judge
    assert drawn["neff_reference"].iloc[0] < whole["neff_reference"].iloc[0]
    picked = cluster_sample(train_rows["account_id"], budget, 3)
    np.testing.assert_array_equal(p_drawn, p_all[picked])


def test_the_backtest_replays_the_held_out_probabilities_it_is_given(small_run):
    """The report's backtest takes the held-out probabilities the report computed: the same table as scoring the
    rows again, without asking the model a second time."""
    from pipeline.artifacts import load_model
    from pipeline.io import find_table, read_table

    P, prm = small_run["paths"], small_run["params"]
    table = pd.read_parquet(small_run["features"])
    model, info = load_model(P["models"], P["package"])
    model = report.single_threaded(model)
    accounts = read_table(find_table(P["validated"], "accounts"))
    opportunities = read_table(find_table(P["validated"], "opportunities"))
    test = table[table["split"] == "test"].reset_index(drop=True)
    p_test = model.predict_proba(test[list(model.feature_names_in_)])[:, 1]
    again = report.backtest_frame(table, model, info, accounts, opportunities, prm.score,
                                  prm.featurize.horizon_days)

    class Refusing:
        feature_names_in_ = model.feature_names_in_

        def predict_proba(self, X):
            raise AssertionError("the model was asked again")

        def __getattr__(self, name):
            return getattr(model, name)

    given = report.backtest_frame(table, Refusing(), info, accounts, opportunities, prm.score,
                                  prm.featurize.horizon_days, p_test)
    pd.testing.assert_frame_equal(given, again)
    assert len(given) == len(test) and given["p_convert"].between(0, 1).all()


def test_the_hand_over_list_and_the_changes_are_the_scored_tables(small_run):
    P = small_run["paths"]
    scored = pd.read_parquet(P["scored"] / "sql_leads.parquet")
    page = (P["reports"] / "report.html").read_text()
    handed = scored[scored["assigned_rep"].notna()]
    assert len(handed) and not (handed["status"] == "with_sales").any()
    listed = report.handover_table(scored)
    assert set(listed["rep"]) == set(handed["assigned_rep"])
    assert (listed.groupby("rep").size() <= report.HANDOVER_PER_REP).all()
    for rep, rows in listed.groupby("rep"):
        first = handed[handed["assigned_rep"] == rep].sort_values("queue_position").iloc[0]
        assert rows.iloc[0]["lead_id"] == first["lead_id"]  # each rep's list starts with their queue's first
        assert first["lead_id"] in page and str(rep) in page
    assert listed["reasons_for"].notna().all()
    m = read_json(P["reports"] / "monitoring.json")
    assert m["handover_n_listed"] == len(listed)
    changes = pd.read_csv(P["scored"] / "changes.csv")
    for kind, n in changes["change"].value_counts().items():
        assert m[f"changes_{kind}"] == n


def test_changes_since_last_week_are_counted_and_new_sqls_listed():
    from models.changes import diff_scorings

    before = pd.DataFrame({"lead_id": ["a", "b", "c", "d"], "status": ["sql", "sql", "nurture", "nurture"],
                           "tier": ["A", "B", "C", "C"], "rank": [1, 2, 3, 4]})
    now = pd.DataFrame({"lead_id": ["a", "b", "c", "d", "e"], "status": ["sql", "nurture", "sql", "nurture", "sql"],
                        "tier": ["A", "C", "B", "D", "A"], "rank": [2, 4, 3, 5, 1], "score": [40, 9, 22, 4, 55],
                        "assigned_rep": ["Ann", None, "Bo", None, "Ann"], "reasons_for": ["x", None, "y", None, "z"]})
    summary = report.change_summary(diff_scorings(before, now.drop(columns=["score", "assigned_rep"])), now)
    counts = summary["by_kind"].set_index("change")["leads"].to_dict()
    assert counts == {"new_sql": 2, "upgraded": 0, "downgraded": 1, "dropped": 1, "unchanged": 1, "new_lead": 0}
    assert summary["had_previous"] and summary["n_new_sql"] == 2
    assert summary["new_sqls"]["lead_id"].tolist() == ["e", "c"]  # by rank
    assert summary["new_sqls"]["assigned_rep"].tolist() == ["Ann", "Bo"]
    html = report.weekly_sections(report.handover_table(now), summary)
    assert "What changed since last week" in html and "Top new SQLs (2 in all)" in html
    first = report.change_summary(diff_scorings(None, now.drop(columns=["score", "assigned_rep"])), now)
    assert not first["had_previous"] and "No previous scoring was kept" in report.weekly_sections(
        report.handover_table(now), first)
    assert "No changes.csv" in report.weekly_sections(report.handover_table(None), None)


def test_previous_registered_version_is_compared_on_the_same_rows(small_run):
    page = (small_run["paths"]["reports"] / "report.html").read_text()
    assert "current <b>test-report/2</b> vs previous <b>test-report/1</b>" in page
    assert "previous_model_roc_auc_change" in read_json(small_run["paths"]["reports"] / "monitoring.json")


def _shifted_features(small_run, folder: Path) -> Path:
    """The run's feature table with one column of the scored snapshot shifted (a changed tracking rate)."""
    table = pd.read_parquet(small_run["features"])
    in_score = table["split"] == "score"
    table.loc[in_score, "engagement_decayed"] = table.loc[in_score, "engagement_decayed"] * 4 + 20
    folder.mkdir(parents=True, exist_ok=True)
    table.to_parquet(folder / "features.parquet", index=False)
    return folder / "features.parquet"


def test_injected_drift_is_flagged_and_fails_when_asked(small_run, tmp_path):
    P, prm = small_run["paths"], small_run["params"]
    drifted = _shifted_features(small_run, tmp_path / "features")
    reports = tmp_path / "reports"
    p = dataclasses.replace(prm.report, fail_on_drift=True, shap_sample=50)  # the shipped thresholds
    with pytest.raises(report.DriftDetected, match="engagement_decayed"):
        report.run(drifted, P["models"], P["package"], P["validated"], tmp_path / "no_scored", reports, p, prm.score,
                   prm.featurize.horizon_days)
    drift = pd.read_csv(reports / "drift.csv")
    features = drift[drift["feature"] != "score"]
    assert features.loc[features["flag"].isin(["drift", "warn"]), "feature"].tolist() == ["engagement_decayed"]
    assert (reports / "report.html").exists()  # written before failing: the scheduler's operator can read it


def test_cli_exits_3_on_drift_only_when_asked(small_run, tmp_path):
    """`leadscore report --fail-on-drift` for schedulers, with the shipped thresholds: exit 0 on the demo as it
    is (nothing shifted), exit 3 once one column of the scored snapshot is shifted."""
    from pipeline.cli import app

    data = yaml.safe_load((ROOT / "params.yaml").read_text())
    data["report"].update({"shap_sample": 50})
    data["paths"]["reports"] = str(tmp_path / "reports")  # the fixture's report stays as the other tests read it
    (tmp_path / "quiet.yaml").write_text(yaml.safe_dump(data))
    result = CliRunner().invoke(app, ["report", "--params", str(tmp_path / "quiet.yaml"), "--fail-on-drift"])
    assert result.exit_code == 0, result.output
    data["paths"]["features"] = str(_shifted_features(small_run, tmp_path / "shifted").parent)
    (tmp_path / "shifted.yaml").write_text(yaml.safe_dump(data))
    result = CliRunner().invoke(app, ["report", "--params", str(tmp_path / "shifted.yaml"), "--fail-on-drift"])
    assert result.exit_code == 3, result.output
    assert "drift flagged" in result.output and "engagement_decayed" in result.output


@pytest.mark.skipif(shutil.which("chromium") is None and report.find_chromium() is None,
                    reason="Chromium is not installed (Debian: apt-get install -y chromium)")
def test_report_renders_in_a_real_browser(small_run, tmp_path):
    from PIL import Image

    png = report.screenshot(small_run["paths"]["reports"] / "report.html", tmp_path / "shot.png", height=1600)
    image = Image.open(png).convert("RGB")
    assert image.width == 900
    colours = image.getcolors(maxcolors=1 << 16)
    assert colours is not None and len(colours) > 20  # a rendered page, not a blank or error screen
    # The header band is the report's navy (#1f3b73), proving the CSS was applied.
    r, g, b = image.getpixel((450, 10))
    assert max(abs(r - 0x1F), abs(g - 0x3B), abs(b - 0x73)) < 24

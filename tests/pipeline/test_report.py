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
    for section in ("Model quality", "Compared with the previous model version", "SQL funnel",
                    "Conversion by tier and by gate", "Criteria backtest", "What drives the score", "Drift:"):
        assert section in page


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
    assert m["drift_n_features"] == len(features) == len(
        [c for c in pd.read_parquet(small_run["features"]).columns
         if c not in ("lead_id", "account_id", "as_of", "split", "label")])
    assert m["drift_n_flagged"] == int((features["flag"] == "drift").sum())
    assert m["score_psi"] == pytest.approx(drift.loc[drift["feature"] == "score", "psi"].iloc[0])
    page = (small_run["paths"]["reports"] / "report.html").read_text()
    assert f"{m['drift_n_flagged']} / {m['drift_n_warn']}" in page


def test_previous_registered_version_is_compared_on_the_same_rows(small_run):
    page = (small_run["paths"]["reports"] / "report.html").read_text()
    assert "current <b>test-report/2</b> vs previous <b>test-report/1</b>" in page
    assert "previous_model_roc_auc_change" in read_json(small_run["paths"]["reports"] / "monitoring.json")


def test_injected_drift_is_flagged_and_fails_when_asked(small_run, tmp_path):
    P, prm = small_run["paths"], small_run["params"]
    table = pd.read_parquet(small_run["features"])
    in_score = table["split"] == "score"
    table.loc[in_score, "engagement_decayed"] = table.loc[in_score, "engagement_decayed"] * 4 + 20
    drifted = tmp_path / "features.parquet"
    table.to_parquet(drifted, index=False)
    reports = tmp_path / "reports"
    p = dataclasses.replace(prm.report, fail_on_drift=True, psi_drift=0.25, ks_min_statistic=0.5, shap_sample=50)
    with pytest.raises(report.DriftDetected, match="engagement_decayed"):
        report.run(drifted, P["models"], P["package"], P["validated"], tmp_path / "no_scored", reports, p, prm.score,
                   prm.featurize.horizon_days)
    drift = pd.read_csv(reports / "drift.csv").set_index("feature")
    assert drift.loc["engagement_decayed", "flag"] == "drift"
    assert (reports / "report.html").exists()  # written before failing: the scheduler's operator can read it


def test_cli_exits_3_on_drift_only_when_asked(small_run):
    """`leadscore report --fail-on-drift` for schedulers: exit 3 when flagged, 0 when thresholds are not crossed."""
    from pipeline.cli import app

    tmp = small_run["tmp"]
    data = yaml.safe_load((ROOT / "params.yaml").read_text())
    data["report"].update({"psi_warn": 0.0, "psi_drift": 0.0, "shap_sample": 50})  # every column "drifts"
    (tmp / "flagging.yaml").write_text(yaml.safe_dump(data))
    result = CliRunner().invoke(app, ["report", "--params", str(tmp / "flagging.yaml"), "--fail-on-drift"])
    assert result.exit_code == 3, result.output
    assert "drift flagged" in result.output
    data["report"].update({"psi_warn": 99.0, "psi_drift": 99.0, "ks_min_statistic": 1.0})  # nothing can drift
    (tmp / "quiet.yaml").write_text(yaml.safe_dump(data))
    result = CliRunner().invoke(app, ["report", "--params", str(tmp / "quiet.yaml"), "--fail-on-drift"])
    assert result.exit_code == 0, result.output


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

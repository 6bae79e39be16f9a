"""Flat labels declared both ways (issue 13): positive, negative and open values; an undeclared value stops the run
with its count; the open leads are scored, never the hold-out; a miscalibrated hold-out warns; a flat export's
sub-scores are null, not a constant."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from models.decision import HELD_OUT_REPLAY, OPEN_LEADS, rows_to_score
from models.evaluate import ECE_WARN, EvaluateConfig, calibration_warning
from pipeline import evaluate
from pipeline.artifacts import save_model
from pipeline.cli import EXIT_CONFIG, app
from pipeline.params import Params
from pipeline.run import run
from pipeline.sources.exports import apply_overrides, read_flat_export
from pipeline.sources.profiles import LabelValueError, ProfileError, map_flat, parse_profile
from pipeline.sources.readers import read_export

PROFILE = {"name": "crm", "kind": "flat", "id": "Lead ID",
           "label": {"column": "Stage", "positive": ["won"], "negative": ["lost"], "open": ["open", "working"],
                     "blank": "open"},
           "numeric": ["Visits"], "categorical": ["Source"],
           "overrides": {"train": {"min_child_samples": 10, "n_estimators": 100}}}


def export(tmp_path: Path, n: int = 400, n_open: int = 40, n_blank: int = 10, extra: dict[str, int] | None = None,
           seed: int = 0, name: str = "contacts.csv") -> Path:
    """`n` closed leads (won / lost, more visits more wins), `n_open` open ("open" / "working"), `n_blank` with an
    empty stage, and `extra` {value: rows} of other stage values."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.35).astype(int)
    stages = [*np.where(y == 1, "won", "lost"), *(["open", "working"] * n_open)[:n_open], *[""] * n_blank]
    for value, count in (extra or {}).items():
        stages += [value] * count
    m = len(stages)
    visits = np.concatenate([rng.poisson(2 + 3 * y), rng.poisson(3, m - n)])
    df = pd.DataFrame({"Lead ID": [f"L{i:05d}" for i in range(m)], "Visits": visits,
                       "Source": rng.choice(["Web", "Referral"], m), "Stage": stages})
    path = tmp_path / name
    df.to_csv(path, index=False)
    return path


# --------------------------------------------------------------------------------------------- declaring


def test_label_declared_both_ways_maps_won_lost_and_open(tmp_path):
    data = map_flat(read_export(export(tmp_path, n=50, n_open=6, n_blank=4)), parse_profile(PROFILE, "crm"))
    raw = read_export(tmp_path / "contacts.csv")["Stage"].fillna("")
    assert (data.y[raw.eq("won").to_numpy()] == 1).all() and (data.y[raw.eq("lost").to_numpy()] == 0).all()
    assert data.y[raw.isin(["open", "working", ""]).to_numpy()].isna().all()  # open leads: no label
    assert int(data.y.isna().sum()) == 10


def test_values_match_case_insensitively_and_a_numeric_column_read_as_floats():
    profile = parse_profile({**PROFILE, "label": {"column": "Stage", "positive": ["1", "Won"], "negative": ["0"]}}, "p")
    df = pd.DataFrame({"Lead ID": ["a", "b", "c", "d"], "Visits": [1, 2, 3, 4], "Source": ["x"] * 4,
                       "Stage": pd.Series([1.0, 0.0, " WON ", 1], dtype=object)})
    assert map_flat(df, profile).y.tolist() == [1, 0, 1, 1]


@pytest.mark.parametrize(("label", "message"), [
    ({"column": "Stage", "positive": ["won"]},
     "list the negative value(s) of 'Stage' under negative (and those of open leads under open)"),
    ({"column": "Stage", "positive": ["won"], "negative": ["won", "lost"]}, "value 'won' is declared both positive"),
    ({"column": "Stage", "positive": ["won"], "negative": ["lost"], "blank": "won"}, "crm.label.blank: what an empty"),
    ({"column": "Stage", "positive": ["won"], "negative": ["lost"], "open": [""]},
     "crm.label.open: an empty value; say what an empty label means with blank: open"),
    ({"in_file": "deals.csv", "key": "id", "negative": ["x"]}, "go with a label column"),
])
def test_a_label_declared_one_way_or_ambiguously_is_refused(label, message):
    with pytest.raises(ProfileError) as err:
        parse_profile({**PROFILE, "label": label}, "crm")
    assert message in str(err.value)


@pytest.mark.parametrize("value", ["maybe", "Y", "Converted"])
def test_an_undeclared_value_stops_the_run_listing_it_with_its_count(tmp_path, value):
    path = export(tmp_path, extra={value: 3, "lost ": 2})  # "lost " is declared (spaces do not matter)
    with pytest.raises(LabelValueError) as err:
        read_flat_export(parse_profile(PROFILE, "crm"), path)
    message = str(err.value)
    assert message.startswith(f"{path}: column 'Stage': 1 label value(s) the profile 'crm' does not declare: "
                              f"'{value}' (3 rows). Declare each under label positive, negative or open")
    assert isinstance(err.value, ValueError) and "'lost" not in message.split("(declared")[0]


def test_every_undeclared_value_is_listed_in_one_message_most_frequent_first(tmp_path):
    path = export(tmp_path, extra={"maybe": 2, "Y": 5, "Converted": 1})
    with pytest.raises(LabelValueError, match=r"3 label value\(s\) .*: 'Y' \(5 rows\), 'maybe' \(2 rows\), "
                                              r"'Converted' \(1 row\)\. Declare"):
        read_flat_export(parse_profile(PROFILE, "crm"), path)


def test_a_blank_label_is_open_only_when_the_profile_says_so(tmp_path):
    path = export(tmp_path, n_blank=7)
    strict = parse_profile({**PROFILE, "label": {k: v for k, v in PROFILE["label"].items() if k != "blank"}}, "crm")
    with pytest.raises(LabelValueError, match=r"\(empty\) \(7 rows\).*unless the profile says blank: open"):
        read_flat_export(strict, path)
    as_lost = parse_profile({**PROFILE, "label": {**PROFILE["label"], "blank": "negative"}}, "crm")
    table, _ = read_flat_export(as_lost, path)
    assert int(table["label"].isna().sum()) == 40 and int((table["label"] == 0).sum()) >= 7


def test_cli_run_shows_the_undeclared_values_without_a_traceback(tmp_path):
    path = export(tmp_path, extra={"maybe": 4})
    profile = tmp_path / "crm.yaml"
    profile.write_text(json.dumps(PROFILE))
    result = CliRunner().invoke(app, ["run", "--profile", str(profile), "--input", str(path), "--workdir",
                                      str(tmp_path / "work"), "--no-track"])
    assert result.exit_code == EXIT_CONFIG  # the profile does not declare the value
    assert f"error: {path}: column 'Stage': 1 label value(s) the profile 'crm' does not declare: 'maybe' (4 rows)" \
        in result.stderr
    assert "Traceback" not in result.output and not (tmp_path / "work").exists()


# ------------------------------------------------------------------------------------------------ scoring


def test_open_leads_are_scored_and_the_hold_out_is_not(tmp_path):
    path = export(tmp_path, n=400, n_open=40, n_blank=10)
    work = tmp_path / "work"
    metrics = run(parse_profile(PROFILE, "crm"), path, work, Params(), n_jobs=1, cv_folds=0, track=False)
    raw = read_export(path)
    open_ids = set(raw.loc[raw["Stage"].isna() | raw["Stage"].isin(["open", "working"]), "Lead ID"])
    features = pd.read_parquet(work / "data" / "03_features" / "features.parquet")
    held_out = set(features.loc[features["split"] == "test", "lead_id"])
    scored = pd.read_parquet(work / "data" / "05_scored" / "sql_leads.parquet")
    assert metrics["scored"] == OPEN_LEADS and metrics["n_scored"] == 50
    assert set(scored["lead_id"]) == open_ids and not set(scored["lead_id"]) & held_out
    assert set(features.loc[features["split"] == "score", "lead_id"]) == open_ids

    # a flat export has no activity log and no ICP flags: its sub-scores are null, never a constant 0
    assert scored["engagement_score"].isna().all() and scored["fit_score"].isna().all()
    crm = pd.read_csv(work / "data" / "05_scored" / "crm" / "hubspot_contacts.csv")
    assert "leadscore_engagement_score" not in crm and "leadscore_fit_score" not in crm and len(crm) == 50
    sf = pd.read_csv(work / "data" / "05_scored" / "crm" / "salesforce_leads.csv")
    assert "Engagement_Score__c" not in sf and "Lead_Score__c" in sf
    table = pd.read_csv(work / "data" / "05_scored" / "sql_leads.csv")
    assert table["engagement_score"].isna().all()  # the column stays (schema), empty


def test_a_flat_export_without_open_leads_scores_a_labelled_replay_of_the_hold_out():
    table = pd.DataFrame({"lead_id": ["a", "b", "c"], "split": ["train", "test", "test"]})
    rows, what = rows_to_score(table, "flat")
    assert list(rows["lead_id"]) == ["b", "c"] and what == HELD_OUT_REPLAY and "not leads to hand over" in what
    rows, what = rows_to_score(table.assign(split=["train", "test", "score"]), "flat")
    assert list(rows["lead_id"]) == ["c"] and what == OPEN_LEADS


def test_sub_scores_are_null_when_their_inputs_are_absent_not_zero():
    from features.subscores import engagement_score, fit_score

    rows = pd.DataFrame({"icp_industry": [np.nan, 1.0], "icp_size": [np.nan, 0.0], "icp_country": [np.nan, np.nan],
                         "seniority_level": [5.0, np.nan], "engagement_decayed": [np.nan, 0.0]})
    assert fit_score(rows).isna().tolist() == [True, False] and fit_score(rows).iloc[1] == pytest.approx(30.8)
    assert engagement_score(rows).isna().tolist() == [True, False] and engagement_score(rows).iloc[1] == 0.0
    assert engagement_score(rows, unknown_as_null=False).tolist() == [0.0, 0.0]  # the points baseline's reading


# ---------------------------------------------------------------------------------------------- calibration


class ScaledModel:
    """p_convert = the feature `p` × `scale`: a model whose calibration the test chooses."""

    def __init__(self, scale: float) -> None:
        self.scale = scale
        self.feature_names_in_ = np.array(["p"], dtype=object)

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        p = np.clip(X["p"].to_numpy(dtype=float) * self.scale, 0.0, 1.0)
        return np.column_stack([1.0 - p, p])

    def contributions(self, X: pd.DataFrame) -> pd.DataFrame:
        return pd.DataFrame({"p": X["p"].to_numpy(dtype=float)}, index=X.index)


def _evaluate_with(tmp_path: Path, scale: float) -> dict:
    rng = np.random.default_rng(3)
    n = 8_000
    p = rng.uniform(0.05, 0.6, n)
    table = pd.DataFrame({"lead_id": [f"L{i}" for i in range(n)], "account_id": pd.NA,
                          "as_of": pd.Timestamp("2026-01-01"), "split": np.where(np.arange(n) < n // 2, "train", "test"),
                          "label": (rng.random(n) < p).astype("int8"), "p": p})
    features = tmp_path / "features" / "features.parquet"
    features.parent.mkdir(parents=True)
    table.to_parquet(features, index=False)
    models = tmp_path / "models"
    save_model(models, ScaledModel(scale), {}, {})  # the one save: records the model file's SHA-256
    evaluate.run(features, models, None, tmp_path / "reports", EvaluateConfig(n_bootstrap=20), horizon_days=90)
    return json.loads((tmp_path / "reports" / "metrics.json").read_text())


def test_a_calibrated_hold_out_raises_no_warning(tmp_path):
    metrics = _evaluate_with(tmp_path, scale=1.0)
    assert metrics["ece"] < ECE_WARN and metrics["warnings"] == []


def test_a_hold_out_calibration_error_above_005_is_a_warning_in_metrics_json(tmp_path):
    metrics = _evaluate_with(tmp_path, scale=0.5)  # every probability half what it should be
    assert metrics["ece"] > 0.1
    assert len(metrics["warnings"]) == 1
    assert metrics["warnings"][0].startswith(f"calibration: held-out ECE {metrics['ece']:.3f} (95% CI ")
    assert "on 4,000 held-out rows is above 0.05" in metrics["warnings"][0]


def test_calibration_warning_threshold():
    assert calibration_warning(0.05) is None and calibration_warning(float("nan")) is None
    assert calibration_warning(0.0501).startswith("calibration: held-out ECE 0.050 is above 0.05")


def test_a_label_shift_in_the_hold_out_warns_in_run_metrics_the_cli_and_the_report(tmp_path):
    """The time hold-out converts at ~70 % where training converted at ~15 %: the calibrated model is off by half."""
    rng = np.random.default_rng(5)
    n = 500
    late = np.arange(n) >= int(n * 0.8)
    visits = rng.poisson(3, n)
    logit = np.where(late, 0.85, -1.75) + 0.3 * (visits - 3)
    won = rng.random(n) < 1 / (1 + np.exp(-logit))
    df = pd.DataFrame({"Lead ID": [f"L{i:04d}" for i in range(n)], "Visits": visits,
                       "Source": rng.choice(["Web", "Referral"], n),
                       "Created": (pd.Timestamp("2025-01-01") + pd.to_timedelta(np.arange(n) // 2, unit="D"))
                       .strftime("%Y-%m-%d"),
                       "Stage": np.where(won, "won", "lost")})
    path = tmp_path / "shifted.csv"
    df.to_csv(path, index=False)
    profile = tmp_path / "crm.yaml"
    profile.write_text(json.dumps({**PROFILE, "time": "Created"}))
    work = tmp_path / "work"
    result = CliRunner().invoke(app, ["run", "--profile", str(profile), "--input", str(path), "--workdir", str(work),
                                      "--no-track", "--cv-folds", "0", "--n-jobs", "1"])
    assert result.exit_code == 0, result.output
    assert "warning: calibration: held-out ECE" in result.stderr
    summary = json.loads((work / "metrics.json").read_text())
    assert summary["ece"] > ECE_WARN and summary["warnings"][0].startswith("calibration: held-out ECE")
    assert summary["scored"] == HELD_OUT_REPLAY  # no open leads in this export: a labelled replay

    from pipeline import report

    prm = apply_overrides(Params(), parse_profile({**PROFILE, "time": "Created"}, "crm"))  # the flat gates
    P = {k: Path(v) for k, v in vars(prm.paths.under(work)).items()}
    report.run(P["features"] / "features.parquet", P["models"], None, P["validated"], P["scored"], P["reports"],
               prm.report, prm.score, prm.featurize.horizon_days, prm.evaluate.top_fraction)
    page = (P["reports"] / report.REPORT_FILE).read_text()
    assert "calibration error (ECE) above 0.05" in page and "<b>Warning</b>: calibration: held-out ECE" in page

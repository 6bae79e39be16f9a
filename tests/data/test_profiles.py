"""Profiles: value parsing, mapping onto the contract, the shipped profiles, the leakage guard, `leadscore run`."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from features.schema import CONTRACT
from models.leakage import leakage_warnings, single_column_auc
from models.training import holdout_split
from pipeline.cli import EXIT_INPUT, app
from pipeline.params import Params, load_params
from pipeline.run import run
from pipeline.sources.exports import PROFILES_DIR, available_profiles, load_profile, read_tables_export
from pipeline.sources.profiles import (
    blank_missing,
    contract_markdown,
    feature_name,
    map_flat,
    map_values,
    parse_dates,
    parse_number,
    parse_numbers,
    parse_profile,
    per_value,
)
from pipeline.sources.readers import read_export, sniff_delimiter

FIXTURES = Path(__file__).parents[1] / "fixtures"
PARAMS = Path(__file__).parents[2] / "params.yaml"  # the shipped gates and decision policy


@pytest.mark.parametrize(("text", "decimal", "expected"), [
    ("$1,200", "auto", 1200.0),
    ("1.200,50", "auto", 1200.5),
    ("1,234,567.89", "auto", 1234567.89),
    ("1.200.000", "auto", 1200000.0),
    ("1,5", "auto", 1.5),
    ("(300)", "auto", -300.0),
    ("12%", "auto", 12.0),
    ("R$ 3.000,00", "auto", 3000.0),
    ("€ 1 200,50", "auto", 1200.5),
    ("1.200", ",", 1200.0),  # European export: the dot groups thousands
    ("1.200", "auto", 1.2),  # ambiguous alone: an English decimal point
    ("1,200", ".", 1200.0),
    ("abc", "auto", None),
    ("", "auto", None),
    ("inf", "auto", None),
])
def test_parse_number(text, decimal, expected):
    assert parse_number(text, decimal) == expected


def test_parse_numbers_keeps_unparseable_text_for_the_validator():
    out = parse_numbers(pd.Series(["$5", None, "lots"], dtype=object))
    assert out.tolist()[0] == 5.0 and out.isna().tolist()[1] and out.tolist()[2] == "lots"
    assert parse_numbers(pd.Series(["$5", "lots"], dtype=object), keep_text=False).isna().tolist() == [False, True]


def test_parse_dates_tries_formats_in_order_then_iso():
    s = pd.Series(["03/04/2026 02:05 PM", "2026-03-05T10:00:00Z", "05.03.2026", "soon", None], dtype=object)
    out = parse_dates(s, ("%m/%d/%Y %I:%M %p", "%d.%m.%Y"))
    assert out.tolist() == [pd.Timestamp("2026-03-04 14:05"), pd.Timestamp("2026-03-05 10:00"),
                            pd.Timestamp("2026-03-05"), "soon", None]
    clean = parse_dates(pd.Series(["2026-03-04", None], dtype=object))
    assert clean.dtype == "datetime64[ns]" and clean.isna().tolist() == [False, True]


def test_missing_markers_are_case_and_space_insensitive():
    markers = ("select", "unknown", "n/a")
    out = blank_missing(pd.Series(["Select", " N/A ", "UNKNOWN", "Selected", None], dtype=object), markers)
    assert out.isna().tolist() == [True, True, True, False, True]


def test_map_values_leaves_unmapped_values_for_the_validator():
    out = map_values(pd.Series(["Technology", "technology ", "Agriculture", None], dtype=object),
                     {"Technology": "Software"})
    assert out.tolist()[:3] == ["Software", "Software", "Agriculture"] and pd.isna(out.iloc[3])


@pytest.mark.parametrize("dtype", [object, "string", float])
def test_per_value_equals_the_cell_by_cell_transform(dtype):
    rng = np.random.default_rng(7)
    pool = ["Select", " 1,200 ", "n/a", "7", "(300)", "abc", None] if dtype is not float else [1.5, 2.0, np.nan, -3.0]
    s = pd.Series(rng.choice(np.array(pool, dtype=object), 500), dtype=dtype, index=np.arange(500) + 10)
    clean = lambda u: map_values(blank_missing(u, ("select", "n/a")), {"7": "70"})  # noqa: E731
    shared = per_value(s, clean)
    direct = clean(s).astype(object)
    assert shared.index.equals(s.index) and shared.dtype == object
    assert [None if pd.isna(v) else v for v in shared] == [None if pd.isna(v) else v for v in direct]
    numbers = per_value(shared, lambda u: parse_numbers(u, keep_text=False), missing=np.nan)
    expected = parse_numbers(direct, keep_text=False).to_numpy(dtype=float)
    np.testing.assert_array_equal(numbers.to_numpy(), expected)
    assert numbers.dtype == float and (dtype is float or numbers.isna().sum() < len(s))


def test_feature_names_are_model_safe():
    assert feature_name("How did you hear about X Education") == "how_did_you_hear_about_x_education"
    assert feature_name("emp.var.rate") == "emp_var_rate"


@pytest.mark.parametrize("name", ["salesforce", "hubspot", "maven_crm", "x_education", "x_education_with_activity",
                                  "uci_bank", "olist", "flat"])
def test_shipped_profile_parses(name):
    assert name in available_profiles()
    profile = load_profile(name)
    assert profile.name == name
    if profile.kind == "flat":
        assert not set(profile.drop) & {*profile.numeric, *profile.categorical}


def test_real_data_profiles_declare_the_known_leaky_columns():
    assert {"Tags", "Lead Quality", "Lead Profile", "Asymmetrique Activity Index", "Asymmetrique Profile Index",
            "Asymmetrique Activity Score", "Asymmetrique Profile Score"} <= set(load_profile("x_education").drop)
    assert "duration" in load_profile("uci_bank").drop
    olist = load_profile("olist")
    assert olist.label.in_file == "olist_closed_deals_dataset.csv" and olist.categorical == ("origin", "landing_page_id")


def test_flat_profile_rejects_a_leaky_feature():
    with pytest.raises(ValueError, match=r"column\(s\) \['Tags'\] are declared leaky under drop and also used"):
        parse_profile({"kind": "flat", "label": {"column": "y", "positive": ["1"], "negative": ["0"]}, "categorical": ["Tags"],
                       "drop": {"Tags": "sales notes"}}, "p")


@pytest.mark.parametrize(("name", "folder"), [("salesforce", "salesforce"), ("hubspot", "hubspot")])
def test_fixture_maps_onto_the_contract(name, folder):
    mapped, rows_read = read_tables_export(load_profile(name), FIXTURES / folder)
    assert {t: len(mapped[t]) for t in mapped} == {"accounts": 300, "leads": 1200, "activities": 4812,
                                                  "opportunities": 229}
    assert rows_read["activities"] == 4812
    for table, df in mapped.items():
        assert list(df.columns) == [c for c in CONTRACT[table].names if c in df.columns]
    acc = mapped["accounts"].set_index("account_id")
    first = acc.index[0]
    assert acc.loc[first, "industry"] == "Education" and acc.loc[first, "country"] == "GB"
    second = acc.index[1]  # "$7,967,000.00" / "7.967.000,00"
    assert acc.loc[second, "annual_revenue"] == 7_967_000.0 and acc.loc[second, "industry"] == "Professional Services"
    assert set(mapped["activities"]["activity_type"]) <= set(CONTRACT["activities"].column("activity_type").allowed)
    assert set(mapped["opportunities"]["stage"]) == {"closed_won", "closed_lost", "open"}
    assert mapped["leads"]["created_at"].iloc[0] == pd.Timestamp("2025-06-09 09:43")


def test_salesforce_and_hubspot_fixtures_hold_the_same_crm():
    sf, _ = read_tables_export(load_profile("salesforce"), FIXTURES / "salesforce")
    hs, _ = read_tables_export(load_profile("hubspot"), FIXTURES / "hubspot")
    pd.testing.assert_series_equal(sf["opportunities"]["amount"].astype(float), hs["opportunities"]["amount"].astype(float))
    assert sf["leads"]["lead_source"].tolist() == hs["leads"]["lead_source"].tolist()
    assert sf["leads"]["created_at"].tolist() == hs["leads"]["created_at"].tolist()


def test_readers_sniff_delimiter_and_encoding(tmp_path):
    assert sniff_delimiter('"a,b";c;d') == ";" and sniff_delimiter("a\tb") == "\t" and sniff_delimiter("abc") is None
    latin = tmp_path / "latin.csv"
    latin.write_bytes("name;city\nJosé;São Paulo\n".encode("latin-1"))
    df = read_export(latin)
    assert df.to_dict("records") == [{"name": "José", "city": "São Paulo"}]
    assert df.attrs["source"]["delimiter"] == ";" and df.attrs["source"]["encoding"] == "cp1252"
    bom = tmp_path / "bom.csv"
    bom.write_bytes("\ufeffid,zip\n1,007\n".encode())
    assert read_export(bom).columns.tolist() == ["id", "zip"] and read_export(bom)["zip"].tolist() == ["007"]


def test_contract_markdown_documents_every_column_and_the_label():
    text = contract_markdown()
    for table in CONTRACT.values():
        assert f"`{table.name}`" in text
        for col in table.columns:
            assert f"| `{col.name}` | {col.dtype} |" in text
    assert "| `closed_at` | datetime | yes | yes | not before 1990-01-01; not after the export date; ≥ `created_at` |" in text
    assert "How the label is formed" in text and "closed_won" in text


def test_readme_carries_the_generated_contract():
    doc = (Path(__file__).parents[2] / "docs" / "contract.md").read_text()
    assert contract_markdown() in doc, "docs/contract.md is stale: paste the output of `leadscore contract`"


def test_contract_command_prints_the_markdown():
    result = CliRunner().invoke(app, ["contract"])
    assert result.exit_code == 0 and result.stdout == contract_markdown()


# --------------------------------------------------------------------------------------------------
# Leakage guard and splits


def test_leakage_guard_names_the_column():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 1000)
    X = pd.DataFrame({
        "after_the_call": pd.Categorical(np.where(y == 1, "won", rng.choice(["lost", "won"], 1000, p=[0.98, 0.02]))),
        "honest": y + rng.normal(0, 1.5, 1000),
        "row_id": pd.Categorical([str(i) for i in range(1000)]),  # one value per row: not leakage
    })
    warnings = leakage_warnings(X, y)
    assert [w.column for w in warnings] == ["after_the_call"]
    assert "column 'after_the_call' alone predicts the label with AUC 0.99" in warnings[0].message()
    assert 0.6 < single_column_auc(X["honest"], y) < 0.8
    assert single_column_auc(X["row_id"], y) < 0.6
    assert single_column_auc(-X["honest"], y) == pytest.approx(single_column_auc(X["honest"], y))


def test_a_number_scores_by_its_ranking_with_missing_values_at_the_better_end():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(4)
    y = rng.integers(0, 2, 800)
    x = pd.Series(y * 0.8 + rng.normal(0, 1, 800))
    auc = roc_auc_score(y, x)
    assert single_column_auc(x, y) == pytest.approx(max(auc, 1 - auc), abs=1e-12)  # no missing value
    assert single_column_auc(-x, y) == pytest.approx(single_column_auc(x, y), abs=1e-12)
    # the winners' values missing more often: missing ranks above every value (the better end)
    holes = x.mask((y == 1) & (rng.random(800) < 0.5))
    high = roc_auc_score(y, holes.fillna(holes.max() + 1.0))
    low = roc_auc_score(y, holes.fillna(holes.min() - 1.0))
    assert high > low
    assert single_column_auc(holes, y) == pytest.approx(max(0.5, high, 1 - high, low, 1 - low), abs=1e-12)


def test_a_category_scores_by_its_out_of_fold_positive_rate():
    """The categorical path's score, spelled out: per fold, each held-out row gets (wins + prior) / (leads + 1) of
    its value among the other folds' rows, the prior where the value is absent there."""
    from models.evaluate import fast_auc

    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 600)
    x = pd.Series(rng.choice(["a", "b", "c", "rare", None], 600, p=[0.4, 0.3, 0.25, 0.01, 0.04]))
    x[y == 1] = rng.choice(["a", "b", "c"], int(y.sum()), p=[0.6, 0.3, 0.1])
    x[:3] = ["only-once-0", "only-once-1", "only-once-2"]  # values no other fold holds
    key = x.where(x.notna(), "__missing__").astype(str).to_numpy()
    folds = np.random.default_rng(0).integers(0, 5, len(y))
    expected = np.empty(len(y))
    for k in range(5):
        out = folds != k
        for row in np.flatnonzero(~out):
            same = out & (key == key[row])
            expected[row] = (y[same].sum() + y.mean()) / (same.sum() + 1.0) if same.any() else y.mean()
    auc = fast_auc(y, expected)
    assert single_column_auc(x, y) == pytest.approx(max(auc, 1.0 - auc), abs=1e-12)
    assert single_column_auc(x, y) > 0.55  # the categories carry some signal


def test_time_holdout_is_the_latest_rows():
    y = np.array([0, 1] * 10)
    train, test = holdout_split(y, pd.Series(np.arange(20)[::-1]), 0.2)
    assert sorted(test.tolist()) == [0, 1, 2, 3] and len(train) == 16
    train, test = holdout_split(y, None, 0.2)
    assert len(test) == 4 and y[test].sum() == 2  # stratified


# --------------------------------------------------------------------------------------------------
# Flat exports end to end


def flat_export(tmp_path: Path, n: int = 600, leaky: bool = False) -> Path:
    rng = np.random.default_rng(1)
    visits = rng.poisson(3, n)
    source = rng.choice(["Google", "Referral", "Select", "Direct"], n)
    p = 1 / (1 + np.exp(-(visits - 3) * 0.8 - (source == "Referral") * 1.0))
    y = (rng.random(n) < p).astype(int)
    df = pd.DataFrame({
        # the last (open) lead's id is a spreadsheet formula: scored, and neutralised in the CSV export
        "Lead ID": [f"X{i:04d}" for i in range(n - 1)] + ['=HYPERLINK("http://evil.example","click")'],
        "Visits": [f"{v:,}" for v in visits], "Source": source, "Title": "Head of Sales",
        "Converted": np.where(np.arange(n) < n - 50, y.astype(str), ""),  # the last 50 are open leads
        "Sales Notes": np.where(y == 1, "signed", "no answer"),
    })
    if not leaky:
        df = df.drop(columns="Sales Notes")
    path = tmp_path / "leads.csv"
    df.to_csv(path, index=False, sep=";")
    return path


FLAT_PROFILE = {"name": "toy", "kind": "flat", "id": "Lead ID",
                "label": {"column": "Converted", "positive": ["1"], "negative": ["0"], "blank": "open"},
                "numeric": ["Visits"], "categorical": ["Source"], "missing": ["Select"], "job_title": "Title",
                "overrides": {"train": {"min_child_samples": 10, "n_estimators": 300}}}


def test_map_flat_builds_features_label_and_open_leads(tmp_path):
    data = map_flat(read_export(flat_export(tmp_path)), parse_profile(FLAT_PROFILE, "toy"))
    assert list(data.X.columns) == ["visits", "source", "seniority_level", "department"]
    assert data.X["source"].dtype == "category" and "Select" not in data.X["source"].cat.categories
    assert data.y.isna().sum() == 50 and set(data.y.dropna().unique()) == {0, 1}
    assert data.X["seniority_level"].iloc[0] == data.X["seniority_level"].max()


def test_time_features_come_from_the_time_column(tmp_path):
    path = tmp_path / "mql.csv"
    path.write_text("id,first_contact,origin,won\na,2018-01-01,x,1\nb,2018-01-03,y,0\nc,03-01-2018,x,\n")
    profile = parse_profile({"kind": "flat", "id": "id", "label": {"column": "won", "positive": ["1"], "negative": ["0"], "blank": "open"},
                             "time": "first_contact", "date_formats": ["%Y-%m-%d", "%d-%m-%Y"],
                             "categorical": ["origin"], "time_features": True}, "p")
    data = map_flat(read_export(path), profile)
    assert data.X["first_contact_days"].tolist() == [0.0, 2.0, 2.0]
    assert data.X["first_contact_weekday"].tolist() == [0.0, 2.0, 2.0]  # Monday, Wednesday
    assert data.time.tolist() == [pd.Timestamp("2018-01-01"), pd.Timestamp("2018-01-03"), pd.Timestamp("2018-01-03")]
    assert data.y.isna().tolist() == [False, False, True]


@pytest.mark.slow
def test_flat_run_writes_metrics_and_a_scored_table(tmp_path):
    workdir = tmp_path / "work"
    metrics = run(parse_profile(FLAT_PROFILE, "toy"), flat_export(tmp_path), workdir, Params(), n_jobs=1, track=False)
    on_disk = json.loads((workdir / "metrics.json").read_text())
    for key in ("roc_auc", "pr_auc", "cv_roc_auc", "brier", "n_train", "n_test"):
        assert on_disk[key] == metrics[key]
    assert metrics["n_train"] + metrics["n_test"] == 550 and metrics["split"] == "stratified random"
    assert len(metrics["cv_roc_auc_folds"]) == 5 and 0.65 < metrics["cv_roc_auc"] < 0.95
    scored = pd.read_parquet(workdir / "data" / "05_scored" / "sql_leads.parquet")
    assert len(scored) == 50 and scored["lead_id"].str.startswith("X").sum() == 49  # the open leads
    assert scored["p_convert"].between(0, 1).all() and (scored["rank"].sort_values().to_numpy() == np.arange(1, 51)).all()


def test_flat_run_warns_about_a_leaky_column(tmp_path):
    profile = parse_profile({**FLAT_PROFILE, "categorical": ["Source", "Sales Notes"]}, "toy")
    metrics = run(profile, flat_export(tmp_path, leaky=True), tmp_path / "work", Params(), n_jobs=1, track=False)
    assert [w["column"] for w in metrics["leakage_warnings"]] == ["sales_notes"]
    assert metrics["cv_roc_auc"] > 0.99
    csv = (tmp_path / "work" / "data" / "05_scored" / "sql_leads.csv").read_text()
    assert "'=HYPERLINK(" in csv and "\n=HYPERLINK" not in csv and ",=HYPERLINK" not in csv


def test_cli_run_fails_cleanly_on_a_bad_file(tmp_path):
    bad = tmp_path / "leads.csv"
    bad.write_text("Lead ID|Visits\n1|2\n")
    profile = tmp_path / "toy.yaml"
    profile.write_text(json.dumps(FLAT_PROFILE))
    result = CliRunner().invoke(app, ["run", "--profile", str(profile), "--input", str(bad), "--workdir",
                                      str(tmp_path / "work")])
    assert result.exit_code == EXIT_INPUT
    assert f"error: {bad}: '|'-separated; use ',' or ';' as the delimiter" in result.stderr
    assert not (tmp_path / "work").exists()


# --------------------------------------------------------------------------------------------------
# Four-table fixtures end to end


@pytest.mark.slow
@pytest.mark.parametrize("name", ["salesforce", "hubspot"])
def test_four_table_fixture_runs_end_to_end(tmp_path, name):
    shipped = load_params(PARAMS)
    params = dataclasses.replace(shipped, train=dataclasses.replace(shipped.train, n_jobs=1))
    workdir = tmp_path / "work"
    metrics = run(load_profile(name), FIXTURES / name, workdir, params, n_jobs=1, track=False)
    assert metrics["split"] == "time" and metrics["as_of"] == "2026-10-01"  # midnight after the last activity
    # a quarter of the accounts validate (none of their rows fitted on), as in the `train` stage
    assert metrics["n_test"] > 500 and metrics["n_train"] > 1500 and 0 < metrics["n_validation"] < metrics["n_train"]
    # under 100 conversions in the training rows: the regularised logistic fallback, and the reason
    assert metrics["model_kind"] == "logistic_fallback"
    assert metrics["fallback_reason"].endswith("(train.min_positives = 100): too few for a boosted model, using "
                                               "the regularised logistic regression")
    # Better than chance, far from perfect, on the decision population: the leads not already with sales (22
    # held-out conversions of this 1,200-lead fixture, 53 training ones: the logistic fallback). Measured
    # 2026-11-30: hold-out 0.63 / 0.61, 5-fold CV 0.55 / 0.57 (Salesforce / HubSpot); with the leads already with
    # sales counted (their open opportunity gives them away) it was above 0.65.
    shown = {k: metrics.get(k) for k in ("roc_auc", "cv_roc_auc", "n_test", "base_rate_test")}
    assert 0.55 < metrics["roc_auc"] < 0.95 and 0.5 < metrics["cv_roc_auc"] < 0.95, shown
    assert metrics["leakage_warnings"] == []
    counts = metrics["validation"]["counts"]
    assert all(c["rows_in"] == c["valid"] + c["quarantined"] for c in counts.values())
    scored = pd.read_parquet(workdir / "data" / "05_scored" / "sql_leads.parquet")
    assert len(scored) == metrics["n_scored"] > 900
    assert set(scored["status"]) <= {"sql", "needs_call", "nurture", "disqualified", "with_sales"}
    assert (scored["status"] == "with_sales").sum() > 0  # converted and working leads (Status, lifecycle stage)
    assert (workdir / "data" / "02_validated" / "quarantine" / "leads.csv").exists()
    assert (workdir / "data" / "06_reports" / "validation.json").exists()
    assert PROFILES_DIR.joinpath(f"{name}.yaml").exists()


# --------------------------------------------------------------------------------------------------
# X Education: the three last-activity variants


SALES_TOUCHES = ["SMS Sent", "Had a Phone Conversation", "Unreachable", "Approached upfront", "Email Received"]
LEAD_ACTIONS = ["Email Opened", "Page Visited on Website", "Olark Chat Conversation", "Email Link Clicked",
                "Form Submitted on Website", "Converted to Lead", "Unsubscribed", "Email Bounced"]


def x_education_rows(profile) -> pd.DataFrame:
    """Rows with every column the profile reads (plus the dropped ones), one per last-activity value."""
    values = [*SALES_TOUCHES, *LEAD_ACTIONS]
    n = len(values)
    df = pd.DataFrame({c: ["Select"] * n for c in [*profile.source_columns(), *profile.drop]})
    df["Prospect ID"] = [f"p{i}" for i in range(n)]
    df["Converted"] = ["1", "0"] * (n // 2) + ["1"] * (n % 2)
    for col in profile.numeric:
        df[col] = "1"
    df["Last Activity"] = values
    return df


def test_x_education_lead_activity_masks_sales_touches_and_keeps_what_the_lead_did():
    profile = load_profile("x_education_lead_activity")
    data = map_flat(x_education_rows(profile), profile)
    activity = data.X["last_activity"]
    assert activity.iloc[:len(SALES_TOUCHES)].isna().all()  # a rep's action or its outcome: masked
    assert activity.iloc[len(SALES_TOUCHES):].tolist() == LEAD_ACTIONS  # the lead's own actions: kept
    assert "last_notable_activity" not in data.X and "Last Notable Activity" in profile.drop


def test_x_education_profiles_differ_only_in_the_last_activity_columns():
    strict, middle, loose = (load_profile(n) for n in
                             ("x_education", "x_education_lead_activity", "x_education_with_activity"))
    assert set(middle.categorical) - set(strict.categorical) == {"Last Activity"}
    assert set(loose.categorical) - set(strict.categorical) == {"Last Activity", "Last Notable Activity"}
    assert strict.numeric == middle.numeric == loose.numeric
    assert {"Last Activity", "Last Notable Activity"} <= set(strict.drop)
    assert set(middle.values["Last Activity"]) == set(SALES_TOUCHES) and not loose.values
